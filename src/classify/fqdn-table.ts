/**
 * FQDN matcher: exact names, suffix wildcards (`*.contoso.com`, dnsSuffix `corp.x`) and
 * patterns with `*` elsewhere (`autodiscover.*.onmicrosoft.com`), all in ONE open-addressing
 * hash table keyed by name text. The host is hashed once, right to left (FNV-1a over
 * ASCII-folded char codes), so at each '.' the hash of the suffix to its right is already
 * known: the table is probed there for suffix entries, and at the end for the exact name.
 * A candidate key is confirmed char by char against the host (no substring, no
 * lowercasing: zero allocation): first natively (`===` for the whole name, `endsWith`
 * for a suffix: 3-7x faster than a charCodeAt loop), then, for hosts with uppercase, a
 * folding loop over the key's chars. A slot is one 8-int record (hash, length, key index,
 * where its candidate records are), so a probe costs one cache line on a miss. Patterns with an inner `*` are filed under the literal
 * suffix after their last `*` and confirmed by a small glob on the rest. A per-length
 * bitmap skips probes for suffix lengths no key has. Idea from Xray's domain matcher
 * (hash the label-boundary suffixes of the name); ours keeps rule order across types by
 * returning the smallest matching item number.
 */

import { globFold } from '../util/glob-fold.js';
import { buildCandidateLists, firstPassing, NO_ITEM } from './candidates.js';
import type { PortProtoChecks } from './ports.js';

export { globFold };

export interface NamePattern {
  /** 'fqdn' (may hold `*` labels) or 'dnsSuffix' (matches names strictly under it). */
  type: 'fqdn' | 'dnsSuffix';
  /** Lowercase, no trailing dot. */
  value: string;
  item: number;
}

const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 16777619;

/**
 * The table's hash of `s[start..]`, right to left, over char codes `| 32` (ASCII letters
 * folded to lowercase without a branch; the few non-letters it also maps only cost a
 * shared hash, never a wrong match).
 */
export function suffixHash(s: string, start: number): number {
  let h = FNV_OFFSET;
  for (let i = s.length - 1; i >= start; i--) h = Math.imul(h ^ (s.charCodeAt(i) | 32), FNV_PRIME);
  return h;
}

/** `host[start..start+n)` equals the lowercase key at `chars[at..at+n)`, ASCII-case-insensitively. */
function eqFold(host: string, start: number, chars: Uint16Array, at: number, n: number): boolean {
  for (let j = 0; j < n; j++) {
    const c = host.charCodeAt(start + j);
    const k = chars[at + j]!;
    if (c !== k && ((c | 32) !== k || k < 97 || k > 122)) return false;
  }
  return true;
}

const EXACT = 1;
const SUFFIX = 2;
/** Slot record: [hash, keyLength (-1 = empty), keyIndex, exactFrom, suffixFrom, suffixTo, complexFrom, complexTo]. */
const SLOT = 8;

interface KeyBuild {
  exact: number[];
  suffix: number[];
  complex: number[];
}

export class FqdnTable {
  private readonly slots: Int32Array;
  private readonly mask: number;
  /** The keys as flat strings: a lowercase host confirms with `===` / `endsWith` (native compare). */
  private readonly keys: string[];
  /** All keys' chars, back to back, for the case-insensitive fallback. */
  private readonly chars: Uint16Array;
  private readonly charOff: Int32Array;
  /** Candidate records (candidates.ts): per key, its exact list then its suffix list. */
  private readonly recs: Int32Array;
  private readonly portRanges: Int32Array;
  /** Complex pattern ids, grouped per key, ascending item. */
  private readonly cxList: Int32Array;
  private readonly cxItem: Int32Array;
  private readonly cxPat: string[];
  private readonly cxLen: Int32Array;
  /** Complex ids whose pattern ends in `*` (no literal suffix): tried on every host. */
  private readonly anyList: Int32Array;
  /** lens[n] & EXACT: an exact key of length n exists; & SUFFIX: a suffix/complex key. */
  private readonly lens: Uint8Array;
  private readonly checks: PortProtoChecks;
  private readonly minItem: number;
  private readonly patterns: number;
  private readonly keyCount_: number;

  /** `patterns` in ascending item order. */
  constructor(patterns: readonly NamePattern[], checks: PortProtoChecks) {
    this.checks = checks;
    this.portRanges = checks.ranges;
    this.patterns = patterns.length;
    const byKey = new Map<string, KeyBuild>();
    const entry = (k: string): KeyBuild => {
      let e = byKey.get(k);
      if (!e) {
        e = { exact: [], suffix: [], complex: [] };
        byKey.set(k, e);
      }
      return e;
    };
    const cxItem: number[] = [];
    const cxPat: string[] = [];
    const cxLen: number[] = [];
    const anyList: number[] = [];
    let min = NO_ITEM;
    for (const p of patterns) {
      if (p.item < min) min = p.item;
      const v = p.value;
      const star = v.lastIndexOf('*');
      if (p.type === 'dnsSuffix') entry(v).suffix.push(p.item);
      else if (star < 0) entry(v).exact.push(p.item);
      else if (star === 0 && v.charCodeAt(1) === 46) entry(v.slice(2)).suffix.push(p.item);
      else {
        const id = cxItem.length;
        cxItem.push(p.item);
        // A flat copy: slices share their parent and read slower.
        cxPat.push(JSON.parse(JSON.stringify(v)) as string);
        if (v.charCodeAt(star + 1) === 46) {
          // `prefix.*.suffix`: filed under `suffix`, the glob checks `prefix.*`.
          cxLen.push(star + 1);
          entry(v.slice(star + 2)).complex.push(id);
        } else {
          cxLen.push(v.length);
          anyList.push(id);
        }
      }
    }
    this.minItem = min;
    this.cxItem = Int32Array.from(cxItem);
    this.cxPat = cxPat;
    this.cxLen = Int32Array.from(cxLen);
    this.anyList = Int32Array.from(anyList);

    const keys = [...byKey.keys()];
    const K = keys.length;
    this.keyCount_ = K;
    // Candidate lists: slot 2k = exact names of key k, slot 2k+1 = its suffix wildcards.
    const spans: Array<[number, number]> = [];
    const cxOff = new Int32Array(K + 1);
    const cx: number[] = [];
    let maxLen = 0;
    let totalChars = 0;
    for (let k = 0; k < K; k++) {
      const e = byKey.get(keys[k]!)!;
      for (const it of e.exact) spans.push([it, 2 * k]);
      for (const it of e.suffix) spans.push([it, 2 * k + 1]);
      for (const id of e.complex) cx.push(id);
      cxOff[k + 1] = cx.length;
      maxLen = Math.max(maxLen, keys[k]!.length);
      totalChars += keys[k]!.length;
    }
    spans.sort((a, b) => a[0] - b[0]);
    const slotOf = spans.map((x) => x[1]);
    const lists = buildCandidateLists(
      2 * K,
      spans.map((x) => x[0]),
      slotOf,
      slotOf,
      checks,
    );
    this.recs = lists.recs;
    this.cxList = Int32Array.from(cx);
    const lens = new Uint8Array(maxLen + 1);
    const chars = new Uint16Array(totalChars);
    const charOff = new Int32Array(K);
    // Flat copies: a sliced string compares slower.
    this.keys = keys.map((k) => JSON.parse(JSON.stringify(k)) as string);
    let cap = 8;
    while (cap < 2 * K) cap *= 2;
    this.mask = cap - 1;
    const slots = new Int32Array(cap * SLOT);
    for (let s = 0; s < cap; s++) slots[s * SLOT + 1] = -1;
    let at = 0;
    for (let k = 0; k < K; k++) {
      const key = keys[k]!;
      const e = byKey.get(key)!;
      if (e.exact.length > 0) lens[key.length]! |= EXACT;
      if (e.suffix.length > 0 || e.complex.length > 0) lens[key.length]! |= SUFFIX;
      for (let j = 0; j < key.length; j++) chars[at + j] = key.charCodeAt(j);
      charOff[k] = at;
      const h = suffixHash(key, 0);
      let s = h & this.mask;
      while (slots[s * SLOT + 1] !== -1) s = (s + 1) & this.mask;
      const o = s * SLOT;
      slots[o] = h;
      slots[o + 1] = key.length;
      slots[o + 2] = k;
      slots[o + 3] = lists.off[2 * k]!;
      slots[o + 4] = lists.off[2 * k + 1]!;
      slots[o + 5] = lists.off[2 * k + 2]!;
      slots[o + 6] = cxOff[k]!;
      slots[o + 7] = cxOff[k + 1]!;
      at += key.length;
    }
    this.slots = slots;
    this.chars = chars;
    this.charOff = charOff;
    this.lens = lens;
  }

  /** Slot record offset of the key `host[start..]` (hash `h`), or -1. */
  private find(host: string, start: number, h: number): number {
    const slots = this.slots;
    const mask = this.mask;
    const len = host.length - start;
    let s = h & mask;
    for (;;) {
      const o = s * SLOT;
      const kl = slots[o + 1]!;
      if (kl < 0) return -1;
      if (kl === len && slots[o] === h) {
        // Native compare first (hosts are normally lowercase), then the folding one.
        const k = slots[o + 2]!;
        const key = this.keys[k]!;
        if (start === 0 ? host === key : host.endsWith(key)) return o;
        if (eqFold(host, start, this.chars, this.charOff[k]!, len)) return o;
      }
      s = (s + 1) & mask;
    }
  }

  /** Complex ids `ids[from..to)`: first passing item below `best` whose glob matches `host[0..hlen)`. */
  private scanComplex(
    ids: Int32Array,
    from: number,
    to: number,
    host: string,
    hlen: number,
    pbit: number,
    port: number,
    best: number,
  ): number {
    for (let i = from; i < to; i++) {
      const c = ids[i]!;
      const it = this.cxItem[c]!;
      if (it >= best) return best;
      if (
        this.checks.passes(it, pbit, port) &&
        globFold(this.cxPat[c]!, this.cxLen[c]!, host, hlen)
      ) {
        return it;
      }
    }
    return best;
  }

  /** Smallest passing item below `best` whose pattern matches `host`, else `best`. */
  lookup(host: string, pbit: number, port: number, best: number): number {
    if (best <= this.minItem) return best;
    const lens = this.lens;
    const nl = lens.length;
    const len = host.length;
    const slots = this.slots;
    let h = FNV_OFFSET;
    for (let i = len - 1; i >= 0; i--) {
      const c = host.charCodeAt(i);
      if (c === 46 && len - i - 1 < nl && (lens[len - i - 1]! & SUFFIX) !== 0) {
        const o = this.find(host, i + 1, h);
        if (o >= 0) {
          best = firstPassing(
            this.recs,
            slots[o + 4]!,
            slots[o + 5]!,
            this.portRanges,
            pbit,
            port,
            best,
          );
          if (slots[o + 6]! < slots[o + 7]!) {
            best = this.scanComplex(
              this.cxList,
              slots[o + 6]!,
              slots[o + 7]!,
              host,
              i,
              pbit,
              port,
              best,
            );
          }
        }
      }
      // Fold for the hash only: | 32 also maps some non-letters, which at worst makes
      // two keys share a hash; eqFold decides exactly.
      h = Math.imul(h ^ (c | 32), FNV_PRIME);
    }
    if (len < nl && (lens[len]! & EXACT) !== 0) {
      const o = this.find(host, 0, h);
      if (o >= 0) {
        best = firstPassing(
          this.recs,
          slots[o + 3]!,
          slots[o + 4]!,
          this.portRanges,
          pbit,
          port,
          best,
        );
      }
    }
    const any = this.anyList;
    if (any.length > 0) best = this.scanComplex(any, 0, any.length, host, len, pbit, port, best);
    return best;
  }

  get keyCount(): number {
    return this.keyCount_;
  }

  get bytes(): number {
    let strings = 0;
    for (const k of this.keys) strings += k.length + 16;
    return (
      strings +
      this.slots.byteLength +
      this.chars.byteLength +
      this.charOff.byteLength +
      this.recs.byteLength +
      this.cxList.byteLength +
      this.lens.byteLength
    );
  }

  toString(): string {
    return `fqdn(${this.patterns} patterns, ${this.keyCount_} keys, ${this.cxItem.length} mid-name, table ${this.mask + 1} slots)`;
  }
}
