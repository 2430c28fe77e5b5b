/**
 * Candidate lists: for each slot of a table (an elementary address interval, a hash key),
 * the items that may match there, ascending (= rule order), in one flat Int32Array of
 * 4-int records `[item, flags, lo, hi]` with offsets. Each record carries its item's
 * port/protocol check inline (see ports.ts), so checking a candidate touches the cache
 * line the candidate is already in. A list stops after the first item that admits any
 * port and any protocol: nothing after it can ever be the first match.
 */
import { KIND_ANY, KIND_ONE, type PortProtoChecks } from './ports.js';

/**
 * "No item yet": larger than every item number, and a Smi (V8's small integer: at most
 * 2^30 - 1 with pointer compression), so `best` never becomes a boxed heap number on the
 * hot path and table fields keep one representation whether a table is empty or not.
 */
export const NO_ITEM = 0x3fffffff;

/** Ints per candidate record. */
export const REC = 4;

export interface CandidateLists {
  /** Record range of slot s: `off[s]..off[s+1]` (in ints, multiples of REC). */
  readonly off: Int32Array;
  readonly recs: Int32Array;
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
  for (let s = 0; s < slots; s++) off[s + 1] = off[s]! + REC * count[s]!;
  const recs = new Int32Array(off[slots]!);
  const fill = off.slice(0, slots);
  closed.fill(0);
  for (let k = 0; k < n; k++) {
    const it = items[k]!;
    const always = checks.always[it] === 1;
    for (let s = from[k]!; s <= to[k]!; s++) {
      if (closed[s]) continue;
      checks.record(it, recs, fill[s]!);
      fill[s]! += REC;
      if (always) closed[s] = 1;
    }
  }
  return { off, recs };
}

/**
 * First item in records `recs[from..to)` below `best` whose port/protocol check passes,
 * else `best`. `ranges` holds the port ranges of KIND_MANY records.
 */
export function firstPassing(
  recs: Int32Array,
  from: number,
  to: number,
  ranges: Int32Array,
  pbit: number,
  port: number,
  best: number,
): number {
  for (let o = from; o < to; o += REC) {
    const it = recs[o]!;
    if (it >= best) return best;
    const fl = recs[o + 1]!;
    const m = fl & 7;
    if (m !== 0 && (m & pbit) === 0) continue;
    const kind = fl >>> 4;
    if (kind === KIND_ANY) return it;
    if (kind === KIND_ONE) {
      if (port >= recs[o + 2]! && port <= recs[o + 3]!) return it;
      continue;
    }
    const end = recs[o + 3]!;
    for (let i = recs[o + 2]!; i < end; i += 2) {
      if (port < ranges[i]!) break; // sorted: no later range can hold it
      if (port <= ranges[i + 1]!) return it;
    }
  }
  return best;
}
