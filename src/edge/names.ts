/** Moved to src/util/names.ts (shared with the client); kept for existing imports. */
export * from '../util/names.js';
