/**
 * The naive classifier: the executable specification of `decide`. A linear first-match scan
 * over the spec, written to be obviously correct, not fast (it allocates). The compiled
 * classifier must agree with it on every flow (test/classify/property.test.ts); the
 * benchmark measures against it.
 *
 * Semantics, in order:
 * 1. family 6 and the platform does not acquire IPv6 -> bypass.
 * 2. No channel on -> bypass ("disabled").
 * 3. Microsoft profiles (enabled, channel m365 on): first matching rule of an enabled link,
 *    forward -> tunnel on m365, bypass -> bypass.
 * 4. Any other M365 rule that matches (disabled link or profile, channel off) -> bypass:
 *    Microsoft traffic never goes to Internet Access.
 * 5. Private profiles (enabled, channel on): first matching rule of an enabled link. An
 *    IPv4 destination of theirs does not match an address in one of `state.localSubnets`;
 *    when such a destination would have matched (ports and protocol passing) before the
 *    rule that does, the decision of 5-7 gets the local-subnet reason
 *    (`localSubnetDecision`, naming the first local subnet holding the address).
 * 6. Internet profiles (enabled, channel on): first matching bypass rule, then first
 *    matching forward rule, each in rule order.
 * 7. Nothing -> bypass, channel null. When a channel is off, the profiles of it that are
 *    enabled are scanned as in 5 and 6 (links enabled, local subnets skipped, Private first):
 *    the first matching rule names the cause in the reason (`offChannelDecisions`); the
 *    decision is the same bypass.
 * Then QUIC (UDP to `platform.quic.ports`) may turn the decision of 3-7 into
 * `quic.otherwise` (see `quicDecision`; the off-channel variant keeps its cause).
 *
 * A rule matches when one of its destinations matches AND its protocol list is empty or
 * holds the flow's protocol AND its port list is empty or a range holds the port; the
 * first matching destination (in list order) is the one reported.
 *
 * Malformed flow fields count as absent: an `ip4` that is not an integer 0..2^32-1, an
 * `ip6` that is not four such words, a `host` that is not a string. Host names match
 * ASCII-case-insensitively; `*` in an fqdn stands for one or more whole labels (labels
 * split on '.', possibly empty in garbage input); a dnsSuffix `s` matches like `*.s`.
 */
import type { ChannelName, ClientState, ProfileSpec, TenantSpec } from '../policy/model.js';
import { privateDnsOf, withPrivateDns } from '../policy/private-dns.js';
import { cmp6, parseCidr, parseIPv4, parseIPv6 } from '../util/ip.js';
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
import {
  type LocalSubnet,
  localSubnetAt,
  localSubnetDecision,
  localSubnetsOf,
} from './local-subnets.js';
import type { Classifier, Decision, Flow } from './types.js';

type Dest =
  | { kind: 4; first: number; last: number }
  | { kind: 6; first: Uint32Array; last: Uint32Array }
  | { kind: 'name'; labels: string[] };

/** ASCII-only lowercase (what the compiled matcher folds). */
export function asciiLower(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += c >= 65 && c <= 90 ? String.fromCharCode(c | 32) : s[i];
  }
  return out;
}

/** Does the label list `host` match the pattern labels (`*` = one or more labels)? */
export function matchLabels(pat: string[], pi: number, host: string[], hi: number): boolean {
  if (pi === pat.length) return hi === host.length;
  if (pat[pi] === '*') {
    for (let k = hi + 1; k <= host.length; k++) {
      if (matchLabels(pat, pi + 1, host, k)) return true;
    }
    return false;
  }
  return hi < host.length && pat[pi] === host[hi] && matchLabels(pat, pi + 1, host, hi + 1);
}

function parseDest(d: import('../policy/model.js').DestinationSpec): Dest | null {
  switch (d.type) {
    case 'fqdn':
      return { kind: 'name', labels: d.value.split('.') };
    case 'dnsSuffix':
      return { kind: 'name', labels: ['*', ...d.value.split('.')] };
    case 'ipAddress':
    case 'ipSubnet': {
      const c = parseCidr(d.value);
      if (typeof c === 'string') return null;
      return c.family === 4
        ? { kind: 4, first: c.first, last: c.last }
        : { kind: 6, first: c.first, last: c.last };
    }
    case 'ipRange': {
      const b4 = parseIPv4(d.begin);
      if (b4 >= 0) return { kind: 4, first: b4, last: parseIPv4(d.end) };
      const first = new Uint32Array(4);
      const last = new Uint32Array(4);
      if (!parseIPv6(d.begin, first) || !parseIPv6(d.end, last)) return null;
      return { kind: 6, first, last };
    }
  }
}

function isU32(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffffffff;
}

/** The flow's destination as the oracle sees it (malformed fields dropped). */
interface View {
  ip4: number | null;
  ip6: number[] | null;
  host: string[] | null;
}

function viewOf(flow: Flow): View {
  const ip4 = flow.family === 4 && isU32(flow.ip4) ? flow.ip4 : null;
  let ip6: number[] | null = null;
  const w = flow.ip6 as unknown;
  if (flow.family === 6 && w != null && typeof w === 'object') {
    const a = w as ArrayLike<unknown>;
    if (a.length >= 4 && isU32(a[0]) && isU32(a[1]) && isU32(a[2]) && isU32(a[3])) {
      ip6 = [a[0], a[1], a[2], a[3]];
    }
  }
  const host = typeof flow.host === 'string' ? asciiLower(flow.host).split('.') : null;
  return { ip4, ip6, host };
}

function destMatches(d: Dest, v: View): boolean {
  if (d.kind === 4) return v.ip4 !== null && d.first <= v.ip4 && v.ip4 <= d.last;
  if (d.kind === 6) return v.ip6 !== null && cmp6(d.first, v.ip6) <= 0 && cmp6(v.ip6, d.last) <= 0;
  return v.host !== null && matchLabels(d.labels, 0, v.host, 0);
}

/** A flow in a local subnet: Private Access IPv4 destinations are skipped, and were they? */
interface Skip {
  readonly subnet: LocalSubnet;
  skipped: boolean;
}

interface OracleRule {
  protocols: number[];
  ports: Array<{ from: number; to: number }>;
  action: 'forward' | 'bypass';
  dests: Array<Dest | null>;
  /** Decision per destination, per role. */
  acquire: Decision[];
  exclusive: Decision[];
  /** Profile enabled and its channel off: the no-match bypass naming it (plain, QUIC). */
  off: { plain: Decision; quic: Decision } | null;
}
interface OraclePolicy {
  enabled: boolean;
  rules: OracleRule[];
}
interface OracleProfile {
  active: boolean;
  /** Enabled, but its channel is off. */
  off: boolean;
  policies: OraclePolicy[];
}

/** The linear first-match classifier. */
export class OracleClassifier implements Classifier {
  readonly size: number;
  private readonly m365: OracleProfile[] = [];
  private readonly private_: OracleProfile[] = [];
  private readonly internet: OracleProfile[] = [];
  private readonly acquireIPv6: boolean;
  private readonly anyChannel: boolean;
  private readonly state: ClientState;
  private readonly localSubnets: LocalSubnet[];
  private readonly ipv6 = staticDecision(REASON_IPV6);
  private readonly disabled: Decision;
  private readonly none: Decision;
  private readonly quicNone: Decision;

  readonly singleLabelSuffix: string | null;
  readonly privateDnsSuffix: string | null;

  constructor(given: TenantSpec, state: ClientState) {
    const tenant = withPrivateDns(given);
    const pdns = privateDnsOf(given);
    this.privateDnsSuffix = pdns?.suffix ?? null;
    this.singleLabelSuffix = state.channels.private ? this.privateDnsSuffix : null;
    this.state = state;
    this.disabled = staticDecision(disabledReason(state.disabledCause));
    ({ plain: this.none, quic: this.quicNone } = noMatchDecisions(given, state.platform));
    this.localSubnets = localSubnetsOf(state.localSubnets);
    this.acquireIPv6 = state.platform.acquireIPv6;
    this.anyChannel = state.channels.m365 || state.channels.private || state.channels.internet;
    let size = 0;
    for (const p of tenant.profiles) {
      const prof = this.profile(p, state.channels);
      size += prof.policies.reduce(
        (n, q) => n + q.rules.reduce((m, r) => m + r.dests.length, 0),
        0,
      );
      const list: Record<ChannelName, OracleProfile[]> = {
        m365: this.m365,
        private: this.private_,
        internet: this.internet,
      };
      list[p.type].push(prof);
    }
    this.size = size;
  }

  private profile(p: ProfileSpec, channels: Record<ChannelName, boolean>): OracleProfile {
    const off = p.state === 'enabled' && !channels[p.type];
    return {
      active: p.state === 'enabled' && channels[p.type],
      off,
      policies: p.policies.map((q) => ({
        enabled: q.linkState === 'enabled',
        rules: q.rules.map((r) => {
          const dec = (role: RuleRole) =>
            r.destinations.map((d) => ruleDecision(role, p, q, r, d, channels));
          return {
            protocols: r.protocols.map((x) => (x === 'tcp' ? 6 : 17)),
            ports: r.ports,
            action: r.action,
            dests: r.destinations.map(parseDest),
            acquire: dec('acquire'),
            exclusive: p.type === 'm365' ? dec('exclusive') : [],
            off: off ? offChannelDecisions(p, r, this.state.platform) : null,
          };
        }),
      })),
    };
  }

  /**
   * Index of the first matching destination of `r`, or -1. With `skip`, IPv4 destinations
   * do not match; one that would have sets `skip.skipped`.
   */
  private static match(r: OracleRule, flow: Flow, v: View, skip: Skip | null = null): number {
    if (r.protocols.length > 0 && !r.protocols.includes(flow.proto)) return -1;
    if (r.ports.length > 0 && !r.ports.some((p) => p.from <= flow.port && flow.port <= p.to)) {
      return -1;
    }
    for (let i = 0; i < r.dests.length; i++) {
      const d = r.dests[i];
      if (!d || !destMatches(d, v)) continue;
      if (skip !== null && d.kind === 4) {
        skip.skipped = true;
        continue;
      }
      return i;
    }
    return -1;
  }

  /** A Skip when the flow's IPv4 address is in a local subnet (for Private rules), else null. */
  private skipFor(v: View): Skip | null {
    if (v.ip4 === null) return null;
    const s = localSubnetAt(this.localSubnets, v.ip4);
    return s === null ? null : { subnet: s, skipped: false };
  }

  /**
   * First matching rule (and destination index) of an enabled link in the profiles of
   * `list` that are `which` (active, or enabled with the channel off), with `action`
   * filter; null if none.
   */
  private static first(
    list: OracleProfile[],
    flow: Flow,
    v: View,
    action: 'forward' | 'bypass' | null,
    skip: Skip | null,
    which: 'active' | 'off',
  ): { r: OracleRule; i: number } | null {
    for (const p of list) {
      if (!p[which]) continue;
      for (const q of p.policies) {
        if (!q.enabled) continue;
        for (const r of q.rules) {
          if (action !== null && r.action !== action) continue;
          const i = OracleClassifier.match(r, flow, v, skip);
          if (i >= 0) return { r, i };
        }
      }
    }
    return null;
  }

  /** First match in the active profiles of `list`, with `action` filter; null if none. */
  private static scan(
    list: OracleProfile[],
    flow: Flow,
    v: View,
    action: 'forward' | 'bypass' | null,
    skip: Skip | null = null,
  ): Decision | null {
    const m = OracleClassifier.first(list, flow, v, action, skip, 'active');
    return m === null ? null : m.r.acquire[m.i]!;
  }

  /**
   * For a flow no rule decides: the first rule of a profile whose channel is off that
   * would have (were it on), as its no-match bypass (`quic`: the QUIC variant); else null.
   */
  private offChannel(flow: Flow, v: View, quic: boolean): Decision | null {
    // With the private channel off, skipFor only makes its IPv4 destinations not match.
    const skip = this.skipFor(v);
    const m =
      OracleClassifier.first(this.private_, flow, v, null, skip, 'off') ??
      OracleClassifier.first(this.internet, flow, v, 'bypass', null, 'off') ??
      OracleClassifier.first(this.internet, flow, v, 'forward', null, 'off');
    if (m === null) return null;
    return quic ? m.r.off!.quic : m.r.off!.plain;
  }

  /** The decision of steps 3-6 (before QUIC), or null when no rule decides. */
  private classify(flow: Flow): Decision | null {
    const v = viewOf(flow);
    const m = OracleClassifier.scan(this.m365, flow, v, null);
    if (m) return m;
    for (const p of this.m365) {
      for (const q of p.policies) {
        for (const r of q.rules) {
          const i = OracleClassifier.match(r, flow, v);
          if (i >= 0) return r.exclusive[i]!;
        }
      }
    }
    const skip = this.skipFor(v);
    const d =
      OracleClassifier.scan(this.private_, flow, v, null, skip) ??
      OracleClassifier.scan(this.internet, flow, v, 'bypass') ??
      OracleClassifier.scan(this.internet, flow, v, 'forward');
    if (skip?.skipped) return localSubnetDecision(d, skip.subnet.text);
    return d;
  }

  /**
   * Every rule that matches the flow, in evaluation order, as the decision each would make
   * (before the QUIC step): for `explain --all` and diagnostics. Allocates; not for the
   * hot path. The first entry is what `decide` acts on unless the flow is IPv6 not
   * acquired, GSA is disabled, or QUIC rewrites it (`decide` also words the reason of a
   * flow in a local subnet; the skipped Private Access IP rules are not listed).
   */
  explainAll(flow: Flow): Decision[] {
    if (flow == null || typeof flow !== 'object') return [];
    const v = viewOf(flow);
    const out: Decision[] = [];
    const skip = this.skipFor(v);
    const each = (
      list: OracleProfile[],
      role: 'acquire' | 'exclusive',
      action: string | null,
      sk: Skip | null = null,
    ) => {
      for (const p of list) {
        if (role === 'acquire' && !p.active) continue;
        for (const q of p.policies) {
          if (role === 'acquire' && !q.enabled) continue;
          if (role === 'exclusive' && p.active && q.enabled) continue;
          for (const r of q.rules) {
            if (action !== null && r.action !== action) continue;
            const i = OracleClassifier.match(r, flow, v, sk);
            if (i >= 0) out.push(role === 'acquire' ? r.acquire[i]! : r.exclusive[i]!);
          }
        }
      }
    };
    each(this.m365, 'acquire', null);
    each(this.m365, 'exclusive', null);
    each(this.private_, 'acquire', null, skip);
    each(this.internet, 'acquire', 'bypass');
    each(this.internet, 'acquire', 'forward');
    return out;
  }

  decide(flow: Flow): Decision {
    if (flow == null || typeof flow !== 'object') return this.none;
    if (flow.family === 6 && !this.acquireIPv6) return this.ipv6;
    if (!this.anyChannel) return this.disabled;
    const platform = this.state.platform;
    const quic = flow.proto === 17 && platform.quic.ports.includes(flow.port);
    const d = this.classify(flow);
    if (d !== null) return quic ? quicDecision(d, platform) : d;
    const off = this.offChannel(flow, viewOf(flow), quic);
    if (off !== null) return off;
    return quic ? this.quicNone : this.none;
  }
}

/** The oracle as a Classifier. */
export function compileOracle(tenant: TenantSpec, state: ClientState): Classifier {
  return new OracleClassifier(tenant, state);
}
