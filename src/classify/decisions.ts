/**
 * Decision builders shared by the compiler and the oracle: the one place that says what a
 * Decision for a rule, a static outcome or a QUIC override looks like, so the two can be
 * compared field by field. Compile-time only (these allocate); every result is frozen.
 *
 * Conventions: `channel` is non-null only when `action` is 'tunnel'; a decision made by a
 * rule keeps its profile/policy/rule fields whatever the action (explain shows the rule).
 */
import type {
  ChannelName,
  DestinationSpec,
  M365Group,
  PlatformSpec,
  PolicySpec,
  ProfileSpec,
  RuleSpec,
  TenantSpec,
} from '../policy/model.js';
import type { Decision } from './types.js';

export const REASON_IPV6 = 'IPv6 is not acquired (GSA tunnels IPv4 only)';
export const REASON_DISABLED = 'Global Secure Access is disabled';
export const REASON_NO_MATCH = 'no forwarding profile acquires this flow (goes direct)';
/** The tenant has no enabled profile (the client's "Disabled by your organization"). */
export const REASON_NO_PROFILE = 'no forwarding profile is enabled';

/**
 * The GSA-disabled decision's reason: with `cause` (why no channel forwards: the VPN off,
 * the GSA tile off, not onboarded), `Global Secure Access is disabled: <cause>; nothing is
 * forwarded (goes direct)`; without, REASON_DISABLED.
 */
export function disabledReason(cause: string | undefined): string {
  return cause
    ? `${REASON_DISABLED}: ${cause}; nothing is forwarded (goes direct)`
    : REASON_DISABLED;
}

/**
 * A decision the same for every flow, whatever its address (GSA disabled, no profile
 * enabled; not IPv6, which is the address's doing): an address given to `explain` would
 * change nothing.
 */
export function forwardsNothing(d: Decision): boolean {
  return d.reason.startsWith(REASON_DISABLED) || d.reason.startsWith(REASON_NO_PROFILE);
}

/**
 * How a rule took part in the decision:
 * - `acquire`: it matched in an active profile (forward -> tunnel, bypass -> bypass);
 * - `exclusive`: an M365 rule that is not active (link/profile disabled, channel off) still
 *   keeps the flow away from Internet Access (GSA's read-only "Microsoft Traffic Bypass").
 */
export type RuleRole = 'acquire' | 'exclusive';

function freeze(d: Decision): Decision {
  return Object.freeze(d);
}

/** A decision that no rule made. */
export function staticDecision(reason: string): Decision {
  return freeze({
    action: 'bypass',
    channel: null,
    profileId: null,
    profileName: null,
    policyId: null,
    policyName: null,
    ruleId: null,
    ruleName: null,
    matched: null,
    group: null,
    category: null,
    appId: null,
    fallback: 'bypass',
    reason,
  });
}

/** The destination as written in the spec (`*.sharepoint.com`, `40.96.0.0/13`, `a-b`). */
export function destinationText(d: DestinationSpec): string {
  return d.type === 'ipRange' ? `${d.begin}-${d.end}` : d.value;
}

const PROFILE_LABEL: Record<ChannelName, string> = {
  m365: 'Microsoft traffic',
  private: 'Private Access',
  internet: 'Internet Access',
};

/** Why an M365 rule is not active, for the exclusivity reason. */
export function inactiveCause(
  profile: ProfileSpec,
  policy: PolicySpec,
  channels: Record<ChannelName, boolean>,
): string {
  if (profile.state !== 'enabled') return 'the Microsoft profile is disabled';
  if (!channels.m365) return 'the Microsoft 365 channel is off';
  if (policy.linkState !== 'enabled') return `policy "${policy.name}" is disabled`;
  return 'the Microsoft profile does not acquire it';
}

/** The decision of one rule x destination. */
export function ruleDecision(
  role: RuleRole,
  profile: ProfileSpec,
  policy: PolicySpec,
  rule: RuleSpec,
  dest: DestinationSpec,
  channels: Record<ChannelName, boolean>,
): Decision {
  const tunnel = role === 'acquire' && rule.action === 'forward';
  let reason: string;
  if (role === 'exclusive') {
    reason = `Microsoft traffic (rule "${rule.name}") is left to the Microsoft profile and ${inactiveCause(profile, policy, channels)}; Internet Access never acquires it (goes direct)`;
  } else if (tunnel) {
    reason = `${PROFILE_LABEL[profile.type]} rule "${rule.name}" tunnels it on the ${profile.type} channel`;
  } else {
    reason = `${PROFILE_LABEL[profile.type]} rule "${rule.name}" bypasses it (goes direct)`;
  }
  return freeze({
    action: tunnel ? 'tunnel' : 'bypass',
    channel: tunnel ? profile.type : null,
    profileId: profile.id,
    profileName: profile.name,
    policyId: policy.id,
    policyName: policy.name,
    ruleId: rule.id,
    ruleName: rule.name,
    matched: destinationText(dest),
    group: policy.group ?? null,
    category: rule.category ?? null,
    appId: rule.appId ?? null,
    fallback: rule.fallback ?? profile.fallback,
    reason,
  });
}

/**
 * The decisions for a flow that no active rule decides but that `rule` would have, were the
 * channel of its (enabled) profile on: the no-match bypass (no rule fields: the forwarder
 * treats it as no match), with a reason that names the channel that is off; and its QUIC
 * variant (what `quicDecision` makes of the no-match bypass, saying the same cause).
 */
export function offChannelDecisions(
  profile: ProfileSpec,
  rule: RuleSpec,
  platform: PlatformSpec,
): { plain: Decision; quic: Decision } {
  const label = PROFILE_LABEL[profile.type];
  const cause =
    rule.action === 'forward'
      ? `the ${label} channel is off, so ${label} rule "${rule.name}" does not tunnel it`
      : `the ${label} channel is off; ${label} rule "${rule.name}" would bypass it anyway`;
  const plain = staticDecision(`${cause} (goes direct)`);
  const q = quicDecision(plain, platform);
  return { plain, quic: q === plain ? plain : freeze({ ...q, reason: `${cause}; ${q.reason}` }) };
}

/**
 * The decisions of a flow no rule decides, nor one of a channel that is off (the no-match
 * bypass and its QUIC variant): with no profile of the tenant enabled, REASON_NO_PROFILE
 * says so in both, in front of a QUIC drop's reason.
 */
export function noMatchDecisions(
  tenant: TenantSpec,
  platform: PlatformSpec,
): { plain: Decision; quic: Decision } {
  const anyProfile = tenant.profiles.some((p) => p.state === 'enabled');
  const plain = staticDecision(
    anyProfile ? REASON_NO_MATCH : `${REASON_NO_PROFILE}, so nothing is forwarded (goes direct)`,
  );
  const q = quicDecision(plain, platform);
  if (anyProfile || q === plain) return { plain, quic: q };
  return { plain, quic: freeze({ ...q, reason: `${REASON_NO_PROFILE}; ${q.reason}` }) };
}

const GROUP_LABEL: Record<M365Group, string> = {
  exchange: 'Exchange Online',
  sharepoint: 'SharePoint Online and OneDrive',
  common: 'Microsoft 365 Common',
  teams: 'Microsoft Teams',
  other: 'other Microsoft traffic',
};

/** "Exchange Online", "Exchange Online and Private Access", or "nothing". */
export function quicTunnelText(platform: PlatformSpec): string {
  const names = platform.quic.tunnel.map((e) =>
    e.profile === 'm365' && e.group !== undefined
      ? GROUP_LABEL[e.group]
      : e.profile === 'm365'
        ? 'Microsoft 365'
        : PROFILE_LABEL[e.profile],
  );
  if (names.length === 0) return 'nothing';
  if (names.length === 1) return names[0]!;
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

/** May QUIC acquired on this channel / policy group be tunneled on the platform? */
export function quicTunnelAllowed(
  platform: PlatformSpec,
  channel: ChannelName | null,
  group: M365Group | null,
): boolean {
  for (const e of platform.quic.tunnel) {
    if (e.profile === channel && (e.group === undefined || e.group === group)) return true;
  }
  return false;
}

/**
 * What `d` becomes for a QUIC flow (UDP to one of `platform.quic.ports`): `d` itself, or a
 * frozen copy with action `quic.otherwise` and a reason saying why.
 */
export function quicDecision(d: Decision, platform: PlatformSpec): Decision {
  const q = platform.quic;
  const only = quicTunnelText(platform);
  const then = q.otherwise === 'drop' ? 'dropped so the app falls back to TCP' : 'sent direct';
  let reason: string;
  if (d.action === 'tunnel') {
    if (quicTunnelAllowed(platform, d.channel, d.group)) return d;
    reason = `QUIC to "${d.ruleName}" cannot be tunneled on ${platform.name} (only ${only}); ${then}`;
  } else {
    if (q.scope !== 'all' || d.action === q.otherwise) return d;
    const which = q.tunnel.length ? `only QUIC acquired by ${only} rules` : 'no QUIC';
    // A bypass rule matched: say so, or the reason hides it (the rule id is on the decision).
    reason =
      d.action === 'bypass' && d.ruleName
        ? `"${d.ruleName}" sends this QUIC flow direct, but on ${platform.name} the VPN sees all QUIC and ${which} is tunneled; ${then}`
        : `no rule tunnels this QUIC flow (on ${platform.name} ${which} is tunneled); ${then}`;
  }
  return freeze({ ...d, action: q.otherwise, channel: null, reason });
}
