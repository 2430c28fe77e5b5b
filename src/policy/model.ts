/**
 * The normalized GSA policy model: what the loader (`policy/graph.ts`) produces from the
 * Microsoft Graph beta JSON, and what `classify/compile.ts` consumes. Strings only: the
 * classifier turns addresses into numbers when it compiles.
 *
 * Contract: a TenantSpec that came out of the loader is valid (every address parses,
 * every port is 0-65535, every FQDN is lowercased without a trailing dot); compile may
 * rely on it.
 */

/** Graph `trafficForwardingType`; also the name of the client's channel to the edge. */
export type ChannelName = 'm365' | 'private' | 'internet';
export const CHANNELS: readonly ChannelName[] = ['m365', 'private', 'internet'];

export type Protocol = 'tcp' | 'udp';
export type RuleAction = 'forward' | 'bypass';
/** `clientFallbackAction`: what new flows do while the channel's edge is unreachable. */
export type FallbackAction = 'bypass' | 'block';
export type State = 'enabled' | 'disabled';

/** Microsoft profile policy groups, derived from the policy name. */
export type M365Group = 'exchange' | 'sharepoint' | 'common' | 'teams' | 'other';

/** Internet Access policy kinds, in GSA evaluation order. */
export type InternetPolicyKind =
  | 'customBypass'
  | 'defaultBypass'
  | 'microsoftBypass'
  | 'customAcquire'
  | 'defaultAcquire';

export type DestinationSpec =
  /** Lowercase name; `*` may stand for one or more whole labels anywhere (`*.contoso.com`,
   *  `autodiscover.*.onmicrosoft.com`). A leading `*.` does not match the bare parent. */
  | { type: 'fqdn'; value: string }
  /** Private Access DNS suffix: matches every name under the suffix (not the suffix itself). */
  | { type: 'dnsSuffix'; value: string }
  | { type: 'ipAddress'; value: string }
  /** CIDR, IPv4 or IPv6. */
  | { type: 'ipSubnet'; value: string }
  /** Inclusive, same family. */
  | { type: 'ipRange'; begin: string; end: string };

/** Inclusive port range; a single port has from === to. */
export interface PortRange {
  from: number;
  to: number;
}

export interface RuleSpec {
  id: string;
  name: string;
  action: RuleAction;
  /** Empty = any protocol. */
  protocols: Protocol[];
  /** Empty = any port. */
  ports: PortRange[];
  destinations: DestinationSpec[];
  /** m365 rules: default | optimized | allow. */
  category?: string;
  /** Private Access application id (for diagnostics), when the rule is an app segment. */
  appId?: string;
  /** The rule's own `clientFallbackAction`; when absent, its profile's. */
  fallback?: FallbackAction;
  /** Where the rule came from in the source document (for explain and errors). */
  path: string;
}

export interface PolicySpec {
  /** forwardingPolicyLink id. */
  linkId: string;
  linkState: State;
  id: string;
  name: string;
  /** Microsoft profile only. */
  group?: M365Group;
  /** Internet Access profile only. */
  kind?: InternetPolicyKind;
  rules: RuleSpec[];
}

export interface ProfileSpec {
  id: string;
  name: string;
  type: ChannelName;
  state: State;
  /** Smaller wins; used only for display (the evaluation order is fixed: m365, private, internet). */
  priority: number;
  fallback: FallbackAction;
  policies: PolicySpec[];
}

export interface TenantSpec {
  tenantId: string;
  /** Display name of the tenant. */
  name: string;
  profiles: ProfileSpec[];
}

/**
 * Platform behaviour as data (iOS by default, as in the seed document).
 * `quic.ports` are the UDP ports treated as QUIC. QUIC acquired by a profile/group named in
 * `quic.tunnel` is tunneled; other QUIC gets `quic.otherwise`. `quic.scope` says whether
 * `otherwise` applies to all QUIC the client sees ('all': the iOS self-looping VPN sees
 * everything and drops it so apps fall back to TCP) or only to QUIC some profile acquires.
 */
/** Whose managed client-configuration keys a client reads (a platform's `clientConfigKeys`). */
export const KEY_SETS = ['ios', 'android'] as const;
export type KeySet = (typeof KEY_SETS)[number];

export interface PlatformSpec {
  name: string;
  acquireIPv6: boolean;
  /** Whose managed client-configuration keys the client reads: iOS's (EnableGSA, ...; the
   *  default when absent) or Android's (`Global Secure Access`, ...). docs/client-config.md. */
  clientConfigKeys?: KeySet;
  quic: {
    ports: number[];
    tunnel: Array<{ profile: ChannelName; group?: M365Group }>;
    otherwise: 'drop' | 'bypass';
    scope: 'all' | 'acquired';
  };
  /**
   * DNS in TUN capture. `tcp`: 'acquire' (default: DNS over TCP gets the same synthetic
   * answers as over UDP) or 'upstream' (Windows: FQDN rules do not match with DNS over TCP,
   * so its queries are answered as the upstream resolver answers them).
   */
  dns?: { tcp: 'acquire' | 'upstream' };
}

/** What the client's tiles and toggles currently allow, plus the platform. */
export interface ClientState {
  /** Channel on = the client forwards what that profile acquires. Off = that traffic goes direct. */
  channels: Record<ChannelName, boolean>;
  platform: PlatformSpec;
  /**
   * The device's local IPv4 subnets (CIDRs): a Private Access rule's IP destinations do not
   * match an address inside one (GSA tunnels IP segments only outside the device's local
   * subnet; classify/local-subnets.ts). Default none; the client fills it in.
   */
  localSubnets?: readonly string[];
  /**
   * Why no channel forwards, when none does (`the VPN is off (switched off in Settings)`):
   * the GSA-disabled decision's reason names it. Absent: not said.
   */
  disabledCause?: string;
}
