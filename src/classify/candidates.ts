/**
 * Candidate lists: for each slot of a table (an elementary address interval, a hash key),
 * the items that may match there, ascending (= rule order), in one flat Int32Array with
 * offsets. A list stops after the first item that admits any port and any protocol:
 * nothing after it can ever be the first match.
 */
import type { PortProtoChecks } from './ports.js';

export interface CandidateLists {
  /** `off[s]..off[s+1]` is slot s's range in `items`. */
  readonly off: Int32Array;
  readonly items: Int32Array;
}

/**
 * Build the lists of `slots` slots from spans: item `items[k]` sits in slots
 * `from[k]..to[k]` (inclusive). Spans must be given in ascending item order.
 */
export function buildCandidateLists(
  slots: number,
  items: ArrayLike<number>,
  from: ArrayLike<number>,
  to: ArrayLike<number>,
  checks: PortProtoChecks,
): CandidateLists {
  const count = new Int32Array(slots + 1);
  const closed = new Uint8Array(slots);
  const n = items.length;
  for (let k = 0; k < n; k++) {
    const always = checks.always[items[k]!] === 1;
    for (let s = from[k]!; s <= to[k]!; s++) {
      if (closed[s]) continue;
      count[s]!++;
      if (always) closed[s] = 1;
    }
  }
  const off = new Int32Array(slots + 1);
  for (let s = 0; s < slots; s++) off[s + 1] = off[s]! + count[s]!;
  const out = new Int32Array(off[slots]!);
  const fill = off.slice(0, slots);
  closed.fill(0);
  for (let k = 0; k < n; k++) {
    const it = items[k]!;
    const always = checks.always[it] === 1;
    for (let s = from[k]!; s <= to[k]!; s++) {
      if (closed[s]) continue;
      out[fill[s]!++] = it;
      if (always) closed[s] = 1;
    }
  }
  return { off, items: out };
}

/** First item of slot `s` below `best` that passes the checks, else `best`. */
export function firstPassing(
  lists: CandidateLists,
  s: number,
  checks: PortProtoChecks,
  pbit: number,
  port: number,
  best: number,
): number {
  const items = lists.items;
  const end = lists.off[s + 1]!;
  for (let i = lists.off[s]!; i < end; i++) {
    const it = items[i]!;
    if (it >= best) return best;
    if (checks.passes(it, pbit, port)) return it;
  }
  return best;
}
