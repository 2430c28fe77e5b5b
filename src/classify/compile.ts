/**
 * compile(tenant, state) -> Classifier: flattens the forwarding profiles into ONE ordered
 * list of items (rule x destination) whose order is the decision order of the oracle
 * (oracle.ts), then files every item in the table for its destination type. `decide` asks
 * each table for its smallest matching item that passes ports/protocol and returns the
 * precomputed, frozen Decision of the smallest: first match across IP, name and wildcard
 * rules alike, zero allocation, no exceptions.
 *
 * Item order (sections):
 * 1. active Microsoft rules (profile enabled, channel m365 on, link enabled), rule order;
 * 2. every other Microsoft rule, as "exclusive" (bypass: Internet Access never takes M365);
 * 3. active Private Access rules;
 * 4. active Internet Access bypass rules, then 5. its forward rules.
 * Profiles of one type keep their list order; priority is display-only.
 *
 * Local subnets (state.localSubnets, local-subnets.ts): the IPv4 ranges of Private Access
 * items are cut by them; the pieces outside go to the IPv4 table, the pieces inside to a
 * second table, `local`, asked only when it is not empty: when it holds a passing item
 * below the winner, the flow gets the winner's decision with the local-subnet reason
 * (precomputed per subnet and possible winner).
 *
 * Channels that are off (`state.channels[c] === false`, a user toggle or EnableGSA): when
 * no item decides a flow, a second, small set of tables (`OffChannelTables`, built only when
 * an enabled Private or Internet profile's channel is off) holds those profiles' rules in
 * the order they would decide in were the channel on; the first that matches names the
 * cause in the no-match bypass's reason. Flows an item decides never look there.
 */
import type {
  ClientState,
  DestinationSpec,
  PolicySpec,
  ProfileSpec,
  RuleSpec,
  TenantSpec,
} from '../policy/model.js';
import { privateDnsOf, withPrivateDns } from '../policy/private-dns.js';
import { parseCidr, parseIPv4, parseIPv6 } from '../util/ip.js';
import { NO_ITEM } from './candidates.js';
import {
  disabledReason,
  noMatchDecisions,
  offChannelDecisions,
  quicDecision,
  REASON_IPV6,
  type RuleRole,
  ruleDecision,
  staticDecision,
} from './decisions.js';
import { FqdnTable, type NamePattern } from './fqdn-table.js';
import { Ip4Table, type Range4 } from './ip4-table.js';
import { Ip6Table, type Range6 } from './ip6-table.js';
import {
  carveRange,
  type LocalSubnet,
  localSubnetDecision,
  localSubnetsOf,
  mergeSubnets,
} from './local-subnets.js';
import { PortProtoChecks } from './ports.js';
import type { Classifier, Decision, Flow } from './types.js';

/** "No item": larger than every item number (a Smi, see candidates.ts). */
const NONE = NO_ITEM;

interface Entry {
  role: RuleRole;
  profile: ProfileSpec;
  policy: PolicySpec;
  rule: RuleSpec;
}

/** The rules in decision order (see the module comment). */
export function orderedEntries(tenant: TenantSpec, state: ClientState): Entry[] {
  const out: Entry[] = [];
  const ch = state.channels;
  const of = (type: string) => tenant.profiles.filter((p) => p.type === type);
  const active = (p: ProfileSpec) => p.state === 'enabled' && ch[p.type];
  const push = (role: RuleRole, p: ProfileSpec, keep: (q: PolicySpec, r: RuleSpec) => boolean) => {
    for (const q of p.policies) {
      for (const r of q.rules) if (keep(q, r)) out.push({ role, profile: p, policy: q, rule: r });
    }
  };
  const enabled = (q: PolicySpec) => q.linkState === 'enabled';
  for (const p of of('m365')) if (active(p)) push('acquire', p, enabled);
  for (const p of of('m365')) push('exclusive', p, (q) => !(active(p) && enabled(q)));
  for (const p of of('private')) if (active(p)) push('acquire', p, enabled);
  for (const p of of('internet')) {
    if (active(p)) push('acquire', p, (q, r) => enabled(q) && r.action === 'bypass');
  }
  for (const p of of('internet')) {
    if (active(p)) push('acquire', p, (q, r) => enabled(q) && r.action === 'forward');
  }
  return out;
}

/**
 * The rules of enabled Private and Internet profiles whose channel is off (enabled links
 * only), in the order they would decide in were it on: Private, then Internet bypass, then
 * Internet forward. Microsoft rules are not among them: those of a channel that is off are
 * "exclusive" items already.
 */
export function offChannelEntries(tenant: TenantSpec, state: ClientState): Entry[] {
  const out: Entry[] = [];
  const ch = state.channels;
  const off = tenant.profiles.filter((p) => p.state === 'enabled' && !ch[p.type]);
  const push = (type: string, action: RuleSpec['action'] | null) => {
    for (const p of off) {
      if (p.type !== type) continue;
      for (const q of p.policies) {
        if (q.linkState !== 'enabled') continue;
        for (const r of q.rules) {
          if (action === null || r.action === action) {
            out.push({ role: 'acquire', profile: p, policy: q, rule: r });
          }
        }
      }
    }
  };
  push('private', null);
  push('internet', 'bypass');
  push('internet', 'forward');
  return out;
}

/**
 * Tables of `offChannelEntries`, asked only for a flow no item decides. A Private Access
 * IPv4 destination does not cover a local subnet here either (the channel on, it would
 * not take the flow). Allocation-free.
 */
class OffChannelTables {
  readonly decisions: Decision[] = [];
  readonly quic: Decision[] = [];
  private readonly v4: Ip4Table | null;
  private readonly v6: Ip6Table | null;
  private readonly names: FqdnTable | null;
  readonly bytes: number;

  constructor(
    entries: readonly Entry[],
    merged: ReadonlyArray<readonly [number, number]>,
    state: ClientState,
  ) {
    const itemRules: RuleSpec[] = [];
    const v4: Range4[] = [];
    const v6: Range6[] = [];
    const names: NamePattern[] = [];
    for (const e of entries) {
      const { plain, quic } = offChannelDecisions(e.profile, e.rule, state.platform);
      const carve = merged.length > 0 && e.profile.type === 'private';
      for (const d of e.rule.destinations) {
        const item = this.decisions.length;
        this.decisions.push(plain);
        this.quic.push(quic);
        itemRules.push(e.rule);
        const at = v4.length;
        fileDestination(d, item, v4, v6, names);
        if (carve && v4.length > at) {
          const r = v4.pop()!;
          carveRange(
            r.first,
            r.last,
            merged,
            (first, last) => v4.push({ first, last, item }),
            () => {},
          );
        }
      }
    }
    const checks = new PortProtoChecks(itemRules);
    this.v4 = v4.length > 0 ? new Ip4Table(v4, checks) : null;
    this.v6 = v6.length > 0 ? new Ip6Table(v6, checks) : null;
    this.names = names.length > 0 ? new FqdnTable(names, checks) : null;
    this.bytes = (this.v4?.bytes ?? 0) + (this.v6?.bytes ?? 0) + (this.names?.bytes ?? 0);
  }

  /** The first matching item, as in `CompiledClassifier.decide`; NONE if none. */
  lookup(flow: Flow, pbit: number, port: number): number {
    let best = NONE;
    const fam = flow.family;
    if (fam === 4) {
      const x = flow.ip4;
      if (this.v4 !== null && x >>> 0 === x) best = this.v4.lookup(x, pbit, port, best);
    } else if (fam === 6 && this.v6 !== null) {
      const w = flow.ip6;
      if (w != null && w.length >= 4) {
        const w0 = w[0]!;
        const w1 = w[1]!;
        const w2 = w[2]!;
        const w3 = w[3]!;
        if (w0 >>> 0 === w0 && w1 >>> 0 === w1 && w2 >>> 0 === w2 && w3 >>> 0 === w3) {
          best = this.v6.lookup(w0, w1, w2, w3, pbit, port, best);
        }
      }
    }
    const host = flow.host;
    if (this.names !== null && typeof host === 'string') {
      best = this.names.lookup(host, pbit, port, best);
    }
    return best;
  }
}

/** File one destination of `item` in the right table input; false if it does not parse. */
function fileDestination(
  d: DestinationSpec,
  item: number,
  v4: Range4[],
  v6: Range6[],
  names: NamePattern[],
): boolean {
  switch (d.type) {
    case 'fqdn':
    case 'dnsSuffix':
      names.push({ type: d.type, value: d.value, item });
      return true;
    case 'ipAddress':
    case 'ipSubnet': {
      const c = parseCidr(d.value);
      if (typeof c === 'string') return false;
      if (c.family === 4) v4.push({ first: c.first, last: c.last, item });
      else v6.push({ first: c.first, last: c.last, item });
      return true;
    }
    case 'ipRange': {
      const b = parseIPv4(d.begin);
      if (b >= 0) {
        const e = parseIPv4(d.end);
        if (e < 0) return false;
        v4.push({ first: b, last: e, item });
        return true;
      }
      const first = new Uint32Array(4);
      const last = new Uint32Array(4);
      if (!parseIPv6(d.begin, first) || !parseIPv6(d.end, last)) return false;
      v6.push({ first, last, item });
      return true;
    }
  }
}

/** Sizes of the compiled structures, for diagnostics and the benchmark. */
export interface ClassifierStats {
  items: number;
  ip4Ranges: number;
  ip6Ranges: number;
  names: number;
  /** Bytes in the tables' typed arrays and key strings (Decision objects not counted). */
  tableBytes: number;
}

export class CompiledClassifier implements Classifier {
  readonly size: number;
  readonly stats: ClassifierStats;
  private readonly decisions: Decision[];
  private readonly quic: Decision[];
  private readonly quicPort: Uint8Array;
  private readonly v4: Ip4Table;
  private readonly v6: Ip6Table;
  private readonly names: FqdnTable;
  private readonly hasV4: boolean;
  private readonly hasV6: boolean;
  private readonly hasNames: boolean;
  private readonly acquireIPv6: boolean;
  private readonly anyChannel: boolean;
  private readonly ipv6: Decision;
  private readonly disabled: Decision;
  private readonly none: Decision;
  private readonly quicNone: Decision;
  /** Private Access IPv4 items inside a local subnet (null: none, `decide` skips it). */
  private readonly local: Ip4Table | null;
  private readonly hasLocal: boolean;
  private readonly localSubnets: readonly LocalSubnet[];
  /** Per local subnet: winner item (NO_ITEM: none) -> its decision with the local reason. */
  private readonly localDec: ReadonlyArray<ReadonlyMap<number, Decision>>;
  private readonly localQuic: ReadonlyArray<ReadonlyMap<number, Decision>>;
  /** Rules of channels that are off, for the reason of a flow no item decides (null: none). */
  private readonly off: OffChannelTables | null;

  readonly singleLabelSuffix: string | null;
  readonly privateDnsSuffix: string | null;

  constructor(given: TenantSpec, state: ClientState) {
    const platform = state.platform;
    // The derived destination for single-label names under Private DNS is a rule's like any.
    const tenant = withPrivateDns(given);
    const pdns = privateDnsOf(given);
    this.privateDnsSuffix = pdns?.suffix ?? null;
    this.singleLabelSuffix = state.channels.private ? this.privateDnsSuffix : null;
    const entries = orderedEntries(tenant, state);
    const decisions: Decision[] = [];
    const quic: Decision[] = [];
    const itemRules: RuleSpec[] = [];
    const v4: Range4[] = [];
    const v6: Range6[] = [];
    const names: NamePattern[] = [];
    const subnets = localSubnetsOf(state.localSubnets);
    const merged = mergeSubnets(subnets);
    const ex4: Range4[] = [];
    for (const e of entries) {
      const carve = merged.length > 0 && e.profile.type === 'private';
      for (const d of e.rule.destinations) {
        const item = decisions.length;
        const dec = ruleDecision(e.role, e.profile, e.policy, e.rule, d, state.channels);
        decisions.push(dec);
        itemRules.push(e.rule);
        const at = v4.length;
        fileDestination(d, item, v4, v6, names);
        if (carve && v4.length > at) {
          const r = v4.pop()!;
          carveRange(
            r.first,
            r.last,
            merged,
            (first, last) => v4.push({ first, last, item }),
            (first, last) => ex4.push({ first, last, item }),
          );
        }
      }
    }
    // QUIC variants in a second pass: the primary decisions (the ones nearly every flow
    // returns) then lie together in the heap, which matters once they outgrow the caches.
    for (const dec of decisions) quic.push(quicDecision(dec, platform));
    const checks = new PortProtoChecks(itemRules);
    this.decisions = decisions;
    this.quic = quic;
    this.size = decisions.length;
    this.v4 = new Ip4Table(v4, checks);
    this.v6 = new Ip6Table(v6, checks);
    this.names = new FqdnTable(names, checks);
    this.hasV4 = v4.length > 0;
    this.hasV6 = v6.length > 0;
    this.hasNames = names.length > 0;
    this.quicPort = new Uint8Array(65536);
    for (const p of platform.quic.ports) if (p >= 0 && p <= 65535) this.quicPort[p] = 1;
    this.acquireIPv6 = platform.acquireIPv6;
    const ch = state.channels;
    this.anyChannel = ch.m365 || ch.private || ch.internet;
    this.ipv6 = staticDecision(REASON_IPV6);
    this.disabled = staticDecision(disabledReason(state.disabledCause));
    const none = noMatchDecisions(given, platform);
    this.none = none.plain;
    this.quicNone = none.quic;
    this.localSubnets = subnets;
    this.hasLocal = ex4.length > 0;
    this.local = this.hasLocal ? new Ip4Table(ex4, checks) : null;
    const localDec: Array<Map<number, Decision>> = [];
    const localQuic: Array<Map<number, Decision>> = [];
    if (this.hasLocal) {
      for (const s of subnets) {
        const dec = new Map<number, Decision>();
        const q = new Map<number, Decision>();
        localDec.push(dec);
        localQuic.push(q);
        // The winners possible once an item of `ex4` in `s` was skipped: no item, or a later
        // item whose IPv4 range meets `s`, or a later name item.
        let min = NONE;
        for (const r of ex4)
          if (r.first <= s.last && s.first <= r.last && r.item < min) min = r.item;
        if (min === NONE) continue;
        const add = (item: number) => {
          if (dec.has(item)) return;
          const d = localSubnetDecision(item === NONE ? null : decisions[item]!, s.text);
          dec.set(item, d);
          q.set(item, quicDecision(d, platform));
        };
        add(NONE);
        for (const r of v4) if (r.item > min && r.first <= s.last && s.first <= r.last) add(r.item);
        for (const n of names) if (n.item > min) add(n.item);
      }
    }
    this.localDec = localDec;
    this.localQuic = localQuic;
    const offEntries = this.anyChannel ? offChannelEntries(tenant, state) : [];
    this.off = offEntries.length > 0 ? new OffChannelTables(offEntries, merged, state) : null;
    this.stats = {
      items: decisions.length,
      ip4Ranges: v4.length,
      ip6Ranges: v6.length,
      names: names.length,
      tableBytes:
        this.v4.bytes +
        this.v6.bytes +
        this.names.bytes +
        (this.local?.bytes ?? 0) +
        (this.off?.bytes ?? 0) +
        65536,
    };
  }

  decide(flow: Flow): Decision {
    if (flow == null || typeof flow !== 'object') return this.none;
    const fam = flow.family;
    if (fam === 6 && !this.acquireIPv6) return this.ipv6;
    if (!this.anyChannel) return this.disabled;
    const proto = flow.proto;
    const pbit = proto === 6 ? 1 : proto === 17 ? 2 : 4;
    const port = flow.port;
    let best = NONE;
    if (fam === 4) {
      const x = flow.ip4;
      if (this.hasV4 && x >>> 0 === x) best = this.v4.lookup(x, pbit, port, best);
    } else if (fam === 6 && this.hasV6) {
      const w = flow.ip6;
      if (w != null && w.length >= 4) {
        const w0 = w[0]!;
        const w1 = w[1]!;
        const w2 = w[2]!;
        const w3 = w[3]!;
        if (w0 >>> 0 === w0 && w1 >>> 0 === w1 && w2 >>> 0 === w2 && w3 >>> 0 === w3) {
          best = this.v6.lookup(w0, w1, w2, w3, pbit, port, best);
        }
      }
    }
    const host = flow.host;
    if (this.hasNames && typeof host === 'string') {
      best = this.names.lookup(host, pbit, port, best);
    }
    if (this.hasLocal && fam === 4) {
      const d = this.localDecision(flow.ip4, pbit, port, best);
      if (d !== null) return d;
    }
    if (pbit === 2 && typeof port === 'number' && this.quicPort[port] === 1) {
      if (best !== NONE) return this.quic[best]!;
      return this.off === null ? this.quicNone : this.offChannel(flow, pbit, port, true);
    }
    if (best !== NONE) return this.decisions[best]!;
    return this.off === null ? this.none : this.offChannel(flow, pbit, port, false);
  }

  /**
   * The decision of a flow no item decides, with channels off: the no-match bypass (or its
   * QUIC variant), naming the off channel's rule that matches first, if any. Off the common
   * path; allocation-free.
   */
  private offChannel(flow: Flow, pbit: number, port: number, quic: boolean): Decision {
    const off = this.off!;
    const it = off.lookup(flow, pbit, port);
    if (it === NONE) return quic ? this.quicNone : this.none;
    return quic ? off.quic[it]! : off.decisions[it]!;
  }

  /**
   * The decision for IPv4 `x` when a Private Access item inside a local subnet, skipped by
   * the main tables, passes below `best`: `best`'s decision with the local-subnet reason.
   * Else null. Off the common path (only with such items); allocation-free.
   */
  private localDecision(x: number, pbit: number, port: number, best: number): Decision | null {
    if (x >>> 0 !== x || this.local!.lookup(x, pbit, port, best) === best) return null;
    const subnets = this.localSubnets;
    for (let i = 0; i < subnets.length; i++) {
      const s = subnets[i]!;
      if (s.first <= x && x <= s.last) {
        const quic = pbit === 2 && typeof port === 'number' && this.quicPort[port] === 1;
        return (quic ? this.localQuic[i]! : this.localDec[i]!).get(best) ?? null;
      }
    }
    return null;
  }

  /** The matchers, for diagnostics and the benchmark's breakdown. */
  get tables(): { readonly v4: Ip4Table; readonly v6: Ip6Table; readonly names: FqdnTable } {
    return { v4: this.v4, v6: this.v6, names: this.names };
  }

  toString(): string {
    return `classifier(${this.size} items; ${this.v4}; ${this.v6}; ${this.names})`;
  }
}

/** Compile a validated tenant for the client's current state. Throws nothing on a loader-validated spec. */
export function compile(tenant: TenantSpec, state: ClientState): CompiledClassifier {
  return new CompiledClassifier(tenant, state);
}
