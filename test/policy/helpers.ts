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
