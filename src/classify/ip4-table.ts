/**
 * IPv4 matcher: addresses, CIDRs and begin-end ranges of every rule, cut into disjoint
 * elementary intervals each holding its candidate items in rule order. Intervals are
 * `[start, candidateOffset]` pairs in one Uint32Array (the search and the list offset
 * share a cache line). Lookup: a 64K-entry index on the top 16 bits narrows the binary
 * search to the few intervals of that /16 (DIR-24-8 in spirit, without its per-address
 * memory), then the first candidate whose ports/protocol pass. Read-only after
 * construction; allocation-free.
 */
import { formatIPv4 } from '../util/ip.js';
import { buildCandidateLists, firstPassing, NO_ITEM } from './candidates.js';
import type { PortProtoChecks } from './ports.js';

export interface Range4 {
  first: number;
  last: number;
  item: number;
}

export class Ip4Table {
  /**
   * Interval i is `ivl[2i]` (start) and `ivl[2i+1]` (offset of its candidate records);
   * interval 0 starts at 0 so every address has one; a sentinel pair ends the array.
   */
  private readonly ivl: Uint32Array;
  private readonly n: number;
  /** index[b] = interval holding address b << 16; index[65536] = last interval. */
  private readonly index: Int32Array;
  private readonly recs: Int32Array;
  private readonly portRanges: Int32Array;
  /** Smallest item in the table (a flow already matched below it needs no lookup). */
  private readonly minItem: number;
  private readonly ranges: number;

  /** `ranges` in ascending item order. */
  constructor(ranges: readonly Range4[], checks: PortProtoChecks) {
    this.portRanges = checks.ranges;
    this.ranges = ranges.length;
    const bounds = new Set<number>([0]);
    for (const r of ranges) {
      bounds.add(r.first);
      if (r.last < 0xffffffff) bounds.add(r.last + 1);
    }
    const starts = Uint32Array.from(bounds).sort();
    const n = starts.length;
    this.n = n;
    const pos = new Map<number, number>();
    for (let i = 0; i < n; i++) pos.set(starts[i]!, i);
    const items = new Int32Array(ranges.length);
    const from = new Int32Array(ranges.length);
    const to = new Int32Array(ranges.length);
    let min = NO_ITEM;
    ranges.forEach((r, k) => {
      items[k] = r.item;
      from[k] = pos.get(r.first)!;
      to[k] = r.last < 0xffffffff ? pos.get(r.last + 1)! - 1 : n - 1;
      if (r.item < min) min = r.item;
    });
    this.minItem = min;
    const lists = buildCandidateLists(n, items, from, to, checks);
    this.recs = lists.recs;
    const ivl = new Uint32Array(2 * n + 2);
    for (let i = 0; i < n; i++) {
      ivl[2 * i] = starts[i]!;
      ivl[2 * i + 1] = lists.off[i]!;
    }
    ivl[2 * n] = 0xffffffff;
    ivl[2 * n + 1] = lists.off[n]!;
    this.ivl = ivl;
    const index = new Int32Array(65537);
    let j = 0;
    for (let b = 0; b < 65536; b++) {
      const a = b * 65536;
      while (j + 1 < n && starts[j + 1]! <= a) j++;
      index[b] = j;
    }
    index[65536] = n - 1;
    this.index = index;
  }

  /** Smallest passing item below `best` matching address `x` (a uint32), else `best`. */
  lookup(x: number, pbit: number, port: number, best: number): number {
    if (best <= this.minItem) return best;
    const b = x >>> 16;
    const ivl = this.ivl;
    let lo = this.index[b]!;
    let hi = this.index[b + 1]!;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (ivl[2 * mid]! <= x) lo = mid;
      else hi = mid - 1;
    }
    return firstPassing(
      this.recs,
      ivl[2 * lo + 1]!,
      ivl[2 * lo + 3]!,
      this.portRanges,
      pbit,
      port,
      best,
    );
  }

  /** Elementary intervals (for tests and diagnostics). */
  get intervals(): number {
    return this.n;
  }

  /** Bytes held in typed arrays. */
  get bytes(): number {
    return this.ivl.byteLength + this.index.byteLength + this.recs.byteLength;
  }

  toString(): string {
    const head = this.n > 1 ? ` ${formatIPv4(this.ivl[2]!)}..` : '';
    return `ip4(${this.ranges} ranges, ${this.n} intervals, ${this.recs.length / 4} candidates${head})`;
  }
}
