/**
 * Flow and Decision: the two records of the hot path.
 *
 * A Flow is a reusable, mutable record the capture stage fills in (no allocation per
 * flow); a Decision is an immutable object the classifier precomputed at compile time and
 * hands back by reference (no allocation per decision).
 */
import type { ChannelName, FallbackAction, M365Group } from '../policy/model.js';
import { qualifySingleLabel } from '../policy/private-dns.js';

export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

export interface Flow {
  /** IP protocol number: 6 (TCP) or 17 (UDP). */
  proto: number;
  /** 4 or 6. */
  family: number;
  /** IPv4 destination as an unsigned 32-bit number (family 4). */
  ip4: number;
  /** IPv6 destination as four big-endian uint32 words (family 6). */
  ip6: Uint32Array;
  /** Destination port. */
  port: number;
  /** Destination name when known (SOCKS/HTTP host, synthetic DNS), lowercase, no trailing dot; else null. */
  host: string | null;
}

export function newFlow(): Flow {
  return { proto: PROTO_TCP, family: 4, ip4: 0, ip6: new Uint32Array(4), port: 0, host: null };
}

/** What happens to the flow. `drop` is silent (QUIC); `block` answers with a reset/refusal. */
export type Verdict = 'tunnel' | 'bypass' | 'block' | 'drop';

export interface Decision {
  readonly action: Verdict;
  /** The channel (= profile type) that acquired the flow, or null when none did. */
  readonly channel: ChannelName | null;
  readonly profileId: string | null;
  readonly profileName: string | null;
  readonly policyId: string | null;
  readonly policyName: string | null;
  readonly ruleId: string | null;
  readonly ruleName: string | null;
  /** The destination spec that matched, as written (`*.sharepoint.com`, `40.96.0.0/13`). */
  readonly matched: string | null;
  readonly group: M365Group | null;
  readonly category: string | null;
  readonly appId: string | null;
  /** Hardening: what to do when `action` is 'tunnel' but the channel's edge is unreachable. */
  readonly fallback: FallbackAction;
  /** One short sentence for `explain` and the logs. */
  readonly reason: string;
}

export interface Classifier {
  /** Never throws, never allocates. */
  decide(flow: Flow): Decision;
  /** Number of compiled rules (destinations x rules), for diagnostics. */
  readonly size: number;
  /**
   * Private DNS for single-label names (policy/private-dns.ts): the suffix the client
   * appends to one (`<appId>.globalsecureaccess.local`) while the Private channel is on and
   * Private DNS is configured; else null. `decide` matches names as given: callers qualify.
   */
  readonly singleLabelSuffix?: string | null;
  /**
   * The same suffix whenever Private DNS is configured, the Private Access channel on or
   * off (`singleLabelSuffix` only while it is on): for saying why a single label goes as
   * given while the channel is off (`singleLabelChannelOff`). Else null.
   */
  readonly privateDnsSuffix?: string | null;
}

/**
 * Private DNS for a single-label `flow.host` (`fs1`): when the classifier has a
 * single-label suffix and acquires the qualified name (`fs1.<appId>.globalsecureaccess.local`,
 * tunneled or blocked by a channel), `flow.host` becomes that name and its decision is
 * returned; else `flow.host` is left as it was and the result is null. Allocates only for
 * a single-label name.
 */
export function decideSingleLabel(classifier: Classifier, flow: Flow): Decision | null {
  const suffix = classifier.singleLabelSuffix;
  const host = flow.host;
  if (!suffix || typeof host !== 'string' || host.includes('.')) return null;
  const q = qualifySingleLabel(host, suffix);
  if (q === null) return null;
  flow.host = q;
  const d = classifier.decide(flow);
  if (d.channel !== null && d.action !== 'bypass') return d;
  flow.host = host;
  return null;
}

/**
 * Private DNS for a single-label `flow.host` while the Private Access channel is off:
 * `decideSingleLabel` leaves the name as given then (it does not travel qualified), so `d`,
 * the label's own decision, says "no forwarding profile acquires this flow" where a full
 * private name says the channel is off. When no rule decided `d` and the qualified name
 * (`fs1.<appId>.globalsecureaccess.local`) meets a rule of a channel that is off, returns
 * that name and its decision (the channel-off bypass naming the rule, no rule fields: the
 * same action as `d`) to use in place of `d`; else null. `flow.host` is left as given.
 * Allocates only for a single-label name.
 */
export function singleLabelChannelOff(
  classifier: Classifier,
  flow: Flow,
  d: Decision,
): { decision: Decision; name: string } | null {
  const suffix = classifier.privateDnsSuffix;
  const host = flow.host;
  if (!suffix || classifier.singleLabelSuffix || d.ruleId !== null) return null;
  if (typeof host !== 'string' || host.includes('.')) return null;
  const name = qualifySingleLabel(host, suffix);
  if (name === null) return null;
  flow.host = name;
  const off = classifier.decide(flow);
  flow.host = host;
  // No rule either, but another reason: the qualified name met a rule of a channel that is
  // off (GSA disabled, IPv6 and the no-match bypass give both names the same one).
  return off.ruleId === null && off.reason !== d.reason ? { decision: off, name } : null;
}
