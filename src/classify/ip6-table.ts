/**
 * IPv6 matcher: the IPv4 design with 128-bit keys. Elementary intervals of every rule's
 * addresses/CIDRs/ranges, starts stored as four big-endian uint32 words per interval in
 * one Uint32Array (Go's netip keeps two 64-bit halves; JS has no cheap 64-bit integer, so
 * four words, compared most significant first: almost always decided by the first).
 * Each interval is a 5-word record `[w0, w1, w2, w3, candidateOffset]`, a sentinel last.
 * A 64K-entry index on the top 16 bits narrows the binary search. BigInt is used only
 * while compiling. Read-only after construction; allocation-free.
 */
import { formatIPv6 } from '../util/ip.js';
import { buildCandidateLists, firstPassing, NO_ITEM } from './candidates.js';
import type { PortProtoChecks } from './ports.js';

export interface Range6 {
  first: ArrayLike<number>;
  last: ArrayLike<number>;
  item: number;
}

const MAX = (1n << 128n) - 1n;

function big(w: ArrayLike<number>): bigint {
  return (
    (BigInt(w[0]! >>> 0) << 96n) |
    (BigInt(w[1]! >>> 0) << 64n) |
    (BigInt(w[2]! >>> 0) << 32n) |
    BigInt(w[3]! >>> 0)
  );
}

export class Ip6Table {
  /** 5 words per interval: start (4 words) and candidate offset; interval 0 starts at ::. */
  private readonly starts: Uint32Array;
  private readonly n: number;
  /** index[b] = interval holding the address whose top 16 bits are b (rest zero). */
  private readonly index: Int32Array;
  private readonly recs: Int32Array;
  private readonly portRanges: Int32Array;
  private readonly minItem: number;
  private readonly ranges: number;

  /** `ranges` in ascending item order. */
  constructor(ranges: readonly Range6[], checks: PortProtoChecks) {
    this.portRanges = checks.ranges;
    this.ranges = ranges.length;
    const firsts = ranges.map((r) => big(r.first));
    const lasts = ranges.map((r) => big(r.last));
    // No Set/Map of BigInt: V8 hashes a BigInt by its low bits, and /64 starts share them.
    const all: bigint[] = [0n];
    for (let k = 0; k < ranges.length; k++) {
      all.push(firsts[k]!);
      if (lasts[k]! < MAX) all.push(lasts[k]! + 1n);
    }
    all.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const sorted: bigint[] = [];
    for (const v of all) if (sorted.length === 0 || sorted[sorted.length - 1] !== v) sorted.push(v);
    const n = sorted.length;
    const pos = (v: bigint): number => {
      let lo = 0;
      let hi = n - 1;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (sorted[mid]! < v) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    this.n = n;
    const starts = new Uint32Array(5 * n + 5);
    for (let i = 0; i < n; i++) {
      const v = sorted[i]!;
      starts[5 * i] = Number((v >> 96n) & 0xffffffffn);
      starts[5 * i + 1] = Number((v >> 64n) & 0xffffffffn);
      starts[5 * i + 2] = Number((v >> 32n) & 0xffffffffn);
      starts[5 * i + 3] = Number(v & 0xffffffffn);
    }
    this.starts = starts;
    const items = new Int32Array(ranges.length);
    const from = new Int32Array(ranges.length);
    const to = new Int32Array(ranges.length);
    let min = NO_ITEM;
    for (let k = 0; k < ranges.length; k++) {
      const it = ranges[k]!.item;
      items[k] = it;
      from[k] = pos(firsts[k]!);
      to[k] = lasts[k]! < MAX ? pos(lasts[k]! + 1n) - 1 : n - 1;
      if (it < min) min = it;
    }
    this.minItem = min;
    const lists = buildCandidateLists(n, items, from, to, checks);
    this.recs = lists.recs;
    for (let i = 0; i <= n; i++) starts[5 * i + 4] = lists.off[i]!;
    const index = new Int32Array(65537);
    let j = 0;
    for (let b = 0; b < 65536; b++) {
      const a = b * 65536;
      // Only word 0 matters: the probe address is b << 112 (other words zero).
      while (j + 1 < n && le0(starts, j + 1, a)) j++;
      index[b] = j;
    }
    index[65536] = n - 1;
    this.index = index;
  }

  /** Smallest passing item below `best` matching (w0, w1, w2, w3), else `best`. */
  lookup(
    w0: number,
    w1: number,
    w2: number,
    w3: number,
    pbit: number,
    port: number,
    best: number,
  ): number {
    if (best <= this.minItem) return best;
    const s = this.starts;
    let lo = this.index[w0 >>> 16]!;
    let hi = this.index[(w0 >>> 16) + 1]!;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      const o = 5 * mid;
      // starts[mid] <= w ?
      const a = s[o]!;
      let le: boolean;
      if (a !== w0) le = a < w0;
      else {
        const b = s[o + 1]!;
        if (b !== w1) le = b < w1;
        else {
          const c = s[o + 2]!;
          le = c !== w2 ? c < w2 : s[o + 3]! <= w3;
        }
      }
      if (le) lo = mid;
      else hi = mid - 1;
    }
    return firstPassing(
      this.recs,
      s[5 * lo + 4]!,
      s[5 * lo + 9]!,
      this.portRanges,
      pbit,
      port,
      best,
    );
  }

  get intervals(): number {
    return this.n;
  }

  get bytes(): number {
    return this.starts.byteLength + this.index.byteLength + this.recs.byteLength;
  }

  toString(): string {
    const s = this.starts;
    const head = this.n > 1 ? ` ${formatIPv6(s.subarray(5, 9))}..` : '';
    return `ip6(${this.ranges} ranges, ${this.n} intervals, ${this.recs.length / 4} candidates${head})`;
  }
}

/** Is interval j's start <= (a, 0, 0, 0)? */
function le0(s: Uint32Array, j: number, a: number): boolean {
  const o = 5 * j;
  if (s[o]! !== a) return s[o]! < a;
  return s[o + 1] === 0 && s[o + 2] === 0 && s[o + 3] === 0;
}
