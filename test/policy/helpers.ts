/** Shared by the loader's tests. */
import { ConfigError } from '../../src/errors.js';
import { loadTenant } from '../../src/policy/graph.js';

/** The issues loadTenant reports for `json` ([] when it loads); anything else it throws, thrown. */
export function issuesOf(json: unknown): ConfigError['issues'] {
  try {
    loadTenant(json);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  return [];
}

/**
 * `doc` (cloned) with the value at a path picked by `pick` (at each level, an index into
 * its keys, modulo their number) replaced by `v`: the fuzz tests' one-value mutation.
 */
export function mutate(doc: unknown, pick: number[], v: unknown): unknown {
  const root = structuredClone(doc);
  // biome-ignore lint/suspicious/noExplicitAny: walks arbitrary JSON
  let cur: any = root;
  for (let i = 0; i < pick.length; i++) {
    if (typeof cur !== 'object' || cur === null) break;
    const keys = Object.keys(cur);
    if (keys.length === 0) break;
    const k = keys[pick[i]! % keys.length]!;
    if (i === pick.length - 1 || typeof cur[k] !== 'object' || cur[k] === null) {
      cur[k] = v;
      break;
    }
    cur = cur[k];
  }
  return root;
}
