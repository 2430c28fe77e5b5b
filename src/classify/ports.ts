/**
 * Port and protocol checks of compiled items (one item = one rule x one destination),
 * in typed arrays indexed by item number. `passes(item, pbit, port)` is the last step of
 * every lookup: the address/name tables yield candidate items in rule order and the first
 * one whose ports and protocol hold wins.
 *
 * The tables copy each item's check into their candidate records (`record`, flags =
 * protocol mask | kind << 4), so the hot path reads it from the candidate's cache line.
 *
 * Per item: a protocol mask (0 = any, else TCP=1 | UDP=2) and a port kind: any port (no
 * compare at all, so even a garbage port passes, as in the oracle), one inclusive range
 * (the common case: single port or one range, two compares), or several ranges sorted
 * and merged in a shared flat array.
 */
import type { PortRange, Protocol } from '../policy/model.js';

export const PBIT_TCP = 1;
export const PBIT_UDP = 2;
/** A protocol no rule names: passes only rules with an empty protocol list. */
export const PBIT_OTHER = 4;

/** The protocol bit of an IP protocol number. */
export function protoBit(proto: number): number {
  return proto === 6 ? PBIT_TCP : proto === 17 ? PBIT_UDP : PBIT_OTHER;
}

export const KIND_ANY = 0;
export const KIND_ONE = 1;
export const KIND_MANY = 2;

/** Sort and merge ranges (adjacent ones too: ports are integers). */
export function mergePorts(ports: readonly PortRange[]): PortRange[] {
  const s = ports.map((p) => ({ from: p.from, to: p.to })).sort((a, b) => a.from - b.from);
  const out: PortRange[] = [];
  for (const p of s) {
    const last = out[out.length - 1];
    if (last && p.from <= last.to + 1) last.to = Math.max(last.to, p.to);
    else out.push(p);
  }
  return out;
}

export class PortProtoChecks {
  /** Protocol mask per item; 0 = any. */
  readonly proto: Uint8Array;
  /** KIND_ANY | KIND_ONE | KIND_MANY per item. */
  readonly kind: Uint8Array;
  /** KIND_ONE: first port; KIND_MANY: offset into `ranges`. */
  readonly lo: Int32Array;
  /** KIND_ONE: last port; KIND_MANY: end offset into `ranges`. */
  readonly hi: Int32Array;
  /** Flat [from, to, from, to, ...] for KIND_MANY items. */
  readonly ranges: Int32Array;
  /** Items with any port and any protocol: nothing after them in a candidate list matters. */
  readonly always: Uint8Array;

  constructor(
    rules: ReadonlyArray<{ protocols: readonly Protocol[]; ports: readonly PortRange[] }>,
  ) {
    const n = rules.length;
    this.proto = new Uint8Array(n);
    this.kind = new Uint8Array(n);
    this.lo = new Int32Array(n);
    this.hi = new Int32Array(n);
    this.always = new Uint8Array(n);
    const flat: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = rules[i]!;
      let m = 0;
      for (const p of r.protocols) m |= p === 'tcp' ? PBIT_TCP : PBIT_UDP;
      this.proto[i] = m;
      const ports = mergePorts(r.ports);
      if (ports.length === 0) {
        this.kind[i] = KIND_ANY;
      } else if (ports.length === 1) {
        this.kind[i] = KIND_ONE;
        this.lo[i] = ports[0]!.from;
        this.hi[i] = ports[0]!.to;
      } else {
        this.kind[i] = KIND_MANY;
        this.lo[i] = flat.length;
        for (const p of ports) flat.push(p.from, p.to);
        this.hi[i] = flat.length;
      }
      this.always[i] = m === 0 && ports.length === 0 ? 1 : 0;
    }
    this.ranges = Int32Array.from(flat);
  }

  /** Write the item's check as a candidate record `[item, flags, lo, hi]` at `recs[o]`. */
  record(item: number, recs: Int32Array, o: number): void {
    recs[o] = item;
    recs[o + 1] = this.proto[item]! | (this.kind[item]! << 4);
    recs[o + 2] = this.lo[item]!;
    recs[o + 3] = this.hi[item]!;
  }

  /** Do the item's protocol and ports admit the flow? */
  passes(item: number, pbit: number, port: number): boolean {
    const m = this.proto[item]!;
    if (m !== 0 && (m & pbit) === 0) return false;
    const k = this.kind[item]!;
    if (k === KIND_ANY) return true;
    if (k === KIND_ONE) return port >= this.lo[item]! && port <= this.hi[item]!;
    const r = this.ranges;
    const end = this.hi[item]!;
    for (let i = this.lo[item]!; i < end; i += 2) {
      if (port < r[i]!) return false; // sorted: no later range can hold it
      if (port <= r[i + 1]!) return true;
    }
    return false;
  }

  get size(): number {
    return this.proto.length;
  }

  toString(): string {
    let many = 0;
    for (let i = 0; i < this.kind.length; i++) if (this.kind[i] === KIND_MANY) many++;
    return `ports(${this.size} items, ${many} with several ranges)`;
  }
}
