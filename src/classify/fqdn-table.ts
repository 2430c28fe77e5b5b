/**
 * FQDN matcher: exact names, suffix wildcards (`*.contoso.com`, dnsSuffix `corp.x`) and
 * patterns with `*` elsewhere (`autodiscover.*.onmicrosoft.com`), all in ONE open-addressing
 * hash table keyed by name text. The host is hashed once, right to left (FNV-1a over
 * ASCII-folded char codes), so at each '.' the hash of the suffix to its right is already
 * known: the table is probed there for suffix entries, and at the end for the exact name.
 * A candidate key is confirmed char by char against the host (no substring, no
 * lowercasing: zero allocation). Patterns with an inner `*` are filed under the literal
 * suffix after their last `*` and confirmed by a small glob on the rest. A per-length
 * bitmap skips probes for suffix lengths no key has. Idea from Xray's domain matcher
 * (hash the label-boundary suffixes of the name); ours keeps rule order across types by
 * returning the smallest matching item number.
 */
import { buildCandidateLists, type CandidateLists } from './candidates.js';
import type { PortProtoChecks } from './ports.js';

export interface NamePattern {
  /** 'fqdn' (may hold `*` labels) or 'dnsSuffix' (matches names strictly under it). */
  type: 'fqdn' | 'dnsSuffix';
  /** Lowercase, no trailing dot. */
  value: string;
  item: number;
}

const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 16777619;

/** The table's hash of `s[start..]`, computed right to left with ASCII folding. */
export function suffixHash(s: string, start: number): number {
  let h = FNV_OFFSET;
  for (let i = s.length - 1; i >= start; i--) {
    let c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) c |= 32;
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  return h;
}

/** `host[start..]` equals the lowercase `key`, ASCII-case-insensitively. */
function eqFold(host: string, start: number, key: string): boolean {
  const n = key.length;
  for (let j = 0; j < n; j++) {
    let c = host.charCodeAt(start + j);
    if (c >= 65 && c <= 90) c |= 32;
    if (c !== key.charCodeAt(j)) return false;
  }
  return true;
}

/**
 * Glob `pat[0..plen)` (`*` = any run of characters, dots included) against `host[0..hlen)`,
 * ASCII-case-insensitively. With `*` only as whole labels, this is exactly "each `*` is one
 * or more labels". Iterative with one backtrack point: no recursion, no allocation.
 */
export function globFold(pat: string, plen: number, host: string, hlen: number): boolean {
  let p = 0;
  let s = 0;
  let starP = -1;
  let starS = 0;
  while (s < hlen) {
    if (p < plen) {
      const pc = pat.charCodeAt(p);
      if (pc === 42) {
        starP = p++;
        starS = s;
        continue;
      }
      let c = host.charCodeAt(s);
      if (c >= 65 && c <= 90) c |= 32;
      if (pc === c) {
        p++;
        s++;
        continue;
      }
    }
    if (starP < 0) return false;
    p = starP + 1;
    s = ++starS;
  }
  while (p < plen && pat.charCodeAt(p) === 42) p++;
  return p === plen;
}

const EXACT = 1;
const SUFFIX = 2;

interface KeyBuild {
  exact: number[];
  suffix: number[];
  complex: number[];
}

export class FqdnTable {
  private readonly keys: string[];
  private readonly keyLen: Int32Array;
  /** Per key: [exactSlot, suffixSlot] into `lists` (slot 2k, 2k+1), complex off/end. */
  private readonly lists: CandidateLists;
  private readonly cxOff: Int32Array;
  /** Complex pattern ids, grouped per key, ascending item. */
  private readonly cxList: Int32Array;
  private readonly cxItem: Int32Array;
  private readonly cxPat: string[];
  private readonly cxLen: Int32Array;
  /** Complex ids whose pattern ends in `*` (no literal suffix): tried on every host. */
  private readonly anyList: Int32Array;
  private readonly slotKey: Int32Array;
  private readonly slotHash: Int32Array;
  private readonly mask: number;
  /** lens[n] & EXACT: an exact key of length n exists; & SUFFIX: a suffix/complex key. */
  private readonly lens: Uint8Array;
  private readonly checks: PortProtoChecks;
  private readonly minItem: number;
  private readonly patterns: number;

  /** `patterns` in ascending item order. */
  constructor(patterns: readonly NamePattern[], checks: PortProtoChecks) {
    this.checks = checks;
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
    let min = 0x7fffffff;
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
        cxPat.push(v);
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
    this.keys = keys;
    const K = keys.length;
    this.keyLen = Int32Array.from(keys, (k) => k.length);
    // Candidate lists: slot 2k = exact names, slot 2k+1 = suffix wildcards of key k.
    const spans: Array<[number, number]> = [];
    const cxOff = new Int32Array(K + 1);
    const cx: number[] = [];
    let maxLen = 0;
    for (let k = 0; k < K; k++) {
      const e = byKey.get(keys[k]!)!;
      for (const it of e.exact) spans.push([it, 2 * k]);
      for (const it of e.suffix) spans.push([it, 2 * k + 1]);
      cx.push(...e.complex);
      cxOff[k + 1] = cx.length;
      maxLen = Math.max(maxLen, keys[k]!.length);
    }
    spans.sort((a, b) => a[0] - b[0]);
    const slots = spans.map((s) => s[1]);
    this.lists = buildCandidateLists(
      2 * K,
      spans.map((s) => s[0]),
      slots,
      slots,
      checks,
    );
    this.cxOff = cxOff;
    this.cxList = Int32Array.from(cx);
    const lens = new Uint8Array(maxLen + 1);
    for (let k = 0; k < K; k++) {
      const e = byKey.get(keys[k]!)!;
      if (e.exact.length > 0) lens[keys[k]!.length]! |= EXACT;
      if (e.suffix.length > 0 || e.complex.length > 0) lens[keys[k]!.length]! |= SUFFIX;
    }
    this.lens = lens;
    let cap = 8;
    while (cap < 2 * K) cap *= 2;
    this.mask = cap - 1;
    this.slotKey = new Int32Array(cap).fill(-1);
    this.slotHash = new Int32Array(cap);
    for (let k = 0; k < K; k++) {
      const h = suffixHash(keys[k]!, 0);
      let s = h & this.mask;
      while (this.slotKey[s] !== -1) s = (s + 1) & this.mask;
      this.slotKey[s] = k;
      this.slotHash[s] = h;
    }
  }

  /** Key index of `host[start..]` (hash `h`), or -1. */
  private find(host: string, start: number, h: number): number {
    const mask = this.mask;
    const len = host.length - start;
    let s = h & mask;
    for (;;) {
      const k = this.slotKey[s]!;
      if (k < 0) return -1;
      if (this.slotHash[s] === h && this.keyLen[k] === len && eqFold(host, start, this.keys[k]!)) {
        return k;
      }
      s = (s + 1) & mask;
    }
  }

  /** First passing item below `best` in candidate slot `slot`. */
  private scan(slot: number, pbit: number, port: number, best: number): number {
    const items = this.lists.items;
    const end = this.lists.off[slot + 1]!;
    for (let i = this.lists.off[slot]!; i < end; i++) {
      const it = items[i]!;
      if (it >= best) return best;
      if (this.checks.passes(it, pbit, port)) return it;
    }
    return best;
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
    let h = FNV_OFFSET;
    for (let i = len - 1; i >= 0; i--) {
      let c = host.charCodeAt(i);
      if (c === 46 && len - i - 1 < nl && (lens[len - i - 1]! & SUFFIX) !== 0) {
        const k = this.find(host, i + 1, h);
        if (k >= 0) {
          best = this.scan(2 * k + 1, pbit, port, best);
          const o = this.cxOff;
          if (o[k]! < o[k + 1]!) {
            best = this.scanComplex(this.cxList, o[k]!, o[k + 1]!, host, i, pbit, port, best);
          }
        }
      }
      if (c >= 65 && c <= 90) c |= 32;
      h = Math.imul(h ^ c, FNV_PRIME);
    }
    if (len < nl && (lens[len]! & EXACT) !== 0) {
      const k = this.find(host, 0, h);
      if (k >= 0) best = this.scan(2 * k, pbit, port, best);
    }
    const any = this.anyList;
    if (any.length > 0) best = this.scanComplex(any, 0, any.length, host, len, pbit, port, best);
    return best;
  }

  get keyCount(): number {
    return this.keys.length;
  }

  get bytes(): number {
    let strings = 0;
    for (const k of this.keys) strings += 2 * k.length + 16;
    return (
      strings +
      this.keyLen.byteLength +
      this.lists.off.byteLength +
      this.lists.items.byteLength +
      this.slotKey.byteLength +
      this.slotHash.byteLength +
      this.cxList.byteLength +
      this.lens.byteLength
    );
  }

  toString(): string {
    return `fqdn(${this.patterns} patterns, ${this.keys.length} keys, ${this.cxItem.length} mid-name, table ${this.mask + 1} slots)`;
  }
}
