/**
 * @packageDocumentation
 * Classify: the hot path. `compile(tenant, state)` once per policy or toggle change;
 * `decide(flow)` per new flow: never throws, never allocates, returns a frozen,
 * precomputed Decision. A reload swaps one reference in a ClassifierHandle.
 *
 * @example
 * const handle = new ClassifierHandle(compile(tenant, state));
 * const flow = newFlow();
 * flow.family = 0; flow.host = 'outlook.office365.com'; flow.port = 443;
 * handle.current.decide(flow).action; // 'tunnel'
 * handle.swap(compile(nextTenant, state)); // in-flight callers keep the old one
 */
import type { Classifier } from './types.js';

export { type ClassifierStats, CompiledClassifier, compile, orderedEntries } from './compile.js';
export {
  destinationText,
  disabledReason,
  forwardsNothing,
  quicDecision,
  REASON_DISABLED,
  REASON_IPV6,
  REASON_NO_MATCH,
  REASON_NO_PROFILE,
} from './decisions.js';
export { FqdnTable } from './fqdn-table.js';
export { Ip4Table } from './ip4-table.js';
export { Ip6Table } from './ip6-table.js';
export { compileOracle, OracleClassifier } from './oracle.js';
export { PortProtoChecks, protoBit } from './ports.js';
export * from './types.js';

/** One mutable reference to the live classifier: reload builds a new one and swaps it in whole. */
export class ClassifierHandle {
  private cur: Classifier;
  private gen = 0;

  constructor(initial: Classifier) {
    this.cur = initial;
  }

  get current(): Classifier {
    return this.cur;
  }

  /** Generation number, incremented by each swap (for logs). */
  get generation(): number {
    return this.gen;
  }

  /** Install `next`; returns the previous classifier. */
  swap(next: Classifier): Classifier {
    const prev = this.cur;
    this.cur = next;
    this.gen++;
    return prev;
  }
}
