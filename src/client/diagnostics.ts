/**
 * The client's diagnostics, shaped after the real GSA client's status and Advanced
 * diagnostics tabs (docs: gsa-facts section 6): the overall state line, the channel list,
 * the forwarding-profile view (rules grouped by profile) and the health checks.
 * Pure functions over a snapshot of the running client, so they are unit-testable.
 */
import { quicTunnelText } from '../classify/decisions.js';
import type { ClientTilesSnapshot } from '../policy/client-config.js';
import type { ChannelName, PlatformSpec, TenantSpec } from '../policy/model.js';

export const CHANNEL_LABEL: Record<ChannelName, string> = {
  m365: 'Microsoft 365',
  private: 'Private Access',
  internet: 'Internet Access',
};

export type ClientStateText =
  | 'Initializing'
  | 'Connected'
  | 'Disabled'
  | 'Disconnected'
  | 'Some channels are unreachable'
  | 'Disabled by your organization';

export interface ChannelStatus {
  channel: ChannelName | 'entra';
  label: string;
  /** The channel forwards traffic now (tile/toggle on and the profile enabled). */
  enabled: boolean;
  /** Tunnel session up (Entra: a token was obtained). */
  up: boolean;
  detail: string;
}

export interface StatusView {
  state: ClientStateText;
  notes: string[];
  tenantId: string | null;
  tenantName: string | null;
  profileSource: string;
  profileLoadedAt: string | null;
  classifierGeneration: number;
  channels: ChannelStatus[];
  tiles: ClientTilesSnapshot['tiles'];
  onboarded: boolean;
  vpnOn: boolean;
  listeners: Record<string, string | null>;
  flows: { active: number };
}

export interface StatusInput {
  tenant: TenantSpec | null;
  profileSource: string;
  profileLoadedAt: number | null;
  generation: number;
  tiles: ClientTilesSnapshot;
  tunnelUp: (c: ChannelName) => boolean;
  tunnelDetail: (c: ChannelName) => string;
  tokenAt: number | null;
  tokenError: string | null;
  listeners: Record<string, string | null>;
  activeFlows: number;
}

const CH: readonly ChannelName[] = ['m365', 'private', 'internet'];

/** The profile of `channel` is enabled in the tenant. */
function profileEnabled(t: TenantSpec | null, c: ChannelName): boolean {
  return t?.profiles.some((p) => p.type === c && p.state === 'enabled') === true;
}

export function statusView(i: StatusInput): StatusView {
  const snap = i.tiles;
  const notes: string[] = [];
  const channels: ChannelStatus[] = [
    {
      channel: 'entra',
      label: 'Entra',
      enabled: true,
      up: i.tokenAt !== null,
      detail: i.tokenAt !== null ? 'token cached' : (i.tokenError ?? 'no token yet'),
    },
  ];
  let unreachable = 0;
  let forwarding = 0;
  for (const c of CH) {
    const enabled = snap.channels[c] && profileEnabled(i.tenant, c);
    const up = i.tunnelUp(c);
    if (enabled) {
      forwarding++;
      if (!up) unreachable++;
    }
    channels.push({
      channel: c,
      label: CHANNEL_LABEL[c],
      enabled,
      up,
      detail: !snap.channels[c]
        ? 'turned off'
        : !profileEnabled(i.tenant, c)
          ? 'profile disabled by the administrator'
          : i.tunnelDetail(c),
    });
  }
  let state: ClientStateText;
  const anyProfile = i.tenant !== null && CH.some((c) => profileEnabled(i.tenant, c));
  if (i.tenant === null) state = 'Initializing';
  else if (!anyProfile) state = 'Disabled by your organization';
  else if (!snap.onboarded) state = 'Initializing';
  else if (!snap.vpnOn || !snap.channels.m365) state = 'Disabled';
  else if (forwarding === 0) state = 'Disabled';
  else if (unreachable > 0) state = 'Some channels are unreachable';
  else state = 'Connected';
  if (snap.tiles.private.visible && !snap.toggles.private) notes.push('Private Access is disabled');
  if (snap.tiles.internet.visible && !snap.toggles.internet)
    notes.push('Internet Access is disabled');
  if (i.tokenAt === null && i.tokenError) notes.push(`Entra: ${i.tokenError}`);
  return {
    state,
    notes,
    tenantId: i.tenant?.tenantId ?? null,
    tenantName: i.tenant?.name ?? null,
    profileSource: i.profileSource,
    profileLoadedAt: i.profileLoadedAt ? new Date(i.profileLoadedAt).toISOString() : null,
    classifierGeneration: i.generation,
    channels,
    tiles: snap.tiles,
    onboarded: snap.onboarded,
    vpnOn: snap.vpnOn,
    listeners: i.listeners,
    flows: { active: i.activeFlows },
  };
}

export interface ProfileRuleView {
  priority: number;
  policy: string;
  policyState: string;
  destination: string;
  protocol: string;
  port: string;
  action: 'tunnel' | 'bypass';
  hardening: 'block' | 'bypass';
  ruleId: string;
  ruleName: string;
  appId: string | null;
}

export interface ProfileView {
  id: string;
  name: string;
  type: ChannelName;
  state: string;
  priority: number;
  hardening: 'block' | 'bypass';
  rules: ProfileRuleView[];
}

/** The "Forwarding profile" tab: rules grouped by profile, one row per destination. */
export function profileView(t: TenantSpec | null): {
  tenantId: string | null;
  profiles: ProfileView[];
} {
  if (t === null) return { tenantId: null, profiles: [] };
  const profiles = t.profiles.map((p) => {
    const rules: ProfileRuleView[] = [];
    for (const q of p.policies) {
      for (const r of q.rules) {
        const port =
          r.ports.length === 0
            ? 'any'
            : r.ports.map((x) => (x.from === x.to ? `${x.from}` : `${x.from}-${x.to}`)).join(',');
        const protocol = r.protocols.length === 0 ? 'any' : r.protocols.join(',');
        for (const d of r.destinations) {
          rules.push({
            priority: p.priority,
            policy: q.name,
            policyState: q.linkState,
            destination: d.type === 'ipRange' ? `${d.begin}-${d.end}` : d.value,
            protocol,
            port,
            action: r.action === 'forward' ? 'tunnel' : 'bypass',
            hardening: p.fallback,
            ruleId: r.id,
            ruleName: r.name,
            appId: r.appId ?? null,
          });
        }
      }
    }
    return {
      id: p.id,
      name: p.name,
      type: p.type,
      state: p.state,
      priority: p.priority,
      hardening: p.fallback,
      rules,
    };
  });
  profiles.sort((a, b) => a.priority - b.priority);
  return { tenantId: t.tenantId, profiles };
}

export type CheckStatus = 'pass' | 'fail' | 'warn' | 'skip';
export interface HealthCheck {
  name: string;
  status: CheckStatus;
  detail: string;
}

export interface HealthInput {
  tenant: TenantSpec | null;
  profileSource: string;
  profileError: string | null;
  rules: number;
  platform: PlatformSpec;
  channels: Record<ChannelName, boolean>;
  tunnelUp: (c: ChannelName) => boolean;
  tunnelDetail: (c: ChannelName) => string;
  edgeReachable: Record<ChannelName, string | null>;
  edgeHost: string;
  edgeHostResolves: string | null;
  tokenAt: number | null;
  tokenError: string | null;
  listeners: Record<string, string | null>;
}

/** Health checks modelled on the real client's list (gsa-facts section 6). */
export function healthChecks(i: HealthInput): HealthCheck[] {
  const out: HealthCheck[] = [];
  const add = (name: string, status: CheckStatus, detail: string) =>
    out.push({ name, status, detail });
  const running = Object.entries(i.listeners).filter(([, v]) => v !== null);
  add(
    'Services running',
    running.length > 0 ? 'pass' : 'fail',
    running.map(([k, v]) => `${k} ${v}`).join(', ') || 'no listener',
  );
  add(
    'Forwarding profile present and valid',
    i.tenant !== null ? 'pass' : 'fail',
    i.tenant !== null
      ? `${i.tenant.profiles.length} profiles, ${i.rules} compiled rules (${i.profileSource})`
      : (i.profileError ?? 'no forwarding profile yet'),
  );
  add(
    'Cached token',
    i.tokenAt !== null ? 'pass' : 'fail',
    i.tokenAt !== null ? `obtained ${new Date(i.tokenAt).toISOString()}` : (i.tokenError ?? 'none'),
  );
  add(
    'Edge hostname resolves',
    i.edgeHostResolves === null ? 'pass' : 'fail',
    i.edgeHostResolves ?? i.edgeHost,
  );
  for (const c of ['m365', 'private', 'internet'] as const) {
    const label = CHANNEL_LABEL[c];
    const err = i.edgeReachable[c];
    add(
      `Edge reachable (${label})`,
      err === null ? 'pass' : 'fail',
      err ?? `${i.edgeHost} answers`,
    );
    if (!i.channels[c]) {
      add(`Tunneling succeeded (${label})`, 'skip', 'channel turned off');
    } else {
      add(`Tunneling succeeded (${label})`, i.tunnelUp(c) ? 'pass' : 'fail', i.tunnelDetail(c));
    }
  }
  const q = i.platform.quic;
  add(
    'QUIC',
    'pass',
    `${i.platform.name}: QUIC (UDP ${q.ports.join(',')}) tunneled for ${quicTunnelText(i.platform)}; other QUIC ${q.otherwise === 'drop' ? 'dropped so apps fall back to TCP' : 'sent direct'}`,
  );
  add(
    'IPv4 preferred',
    i.platform.acquireIPv6 ? 'warn' : 'pass',
    i.platform.acquireIPv6
      ? 'this platform acquires IPv6'
      : 'IPv6 is not acquired (GSA tunnels IPv4); the resolver prefers IPv4 answers',
  );
  add('Proxy disabled', 'skip', 'gsa-emu is the proxy in SOCKS/HTTP capture mode');
  add('DNS over HTTPS disabled', 'skip', 'applies to TUN capture (hostname acquisition)');
  add('Break-glass disabled', 'pass', 'no break-glass mode in the emulator');
  return out;
}
