/** Moved to src/util/hosts-map.ts (shared with the client's dial map); kept for existing imports. */
export * from '../util/hosts-map.js';
