/**
 * The client's diagnostics, shaped after the real GSA client's status and Advanced
 * diagnostics tabs (docs: gsa-facts section 6): the overall state line, the channel list,
 * the forwarding-profile view (rules grouped by profile) and the health checks.
 * Pure functions over a snapshot of the running client, so they are unit-testable.
 */
import { createHash } from 'node:crypto';
import { quicTunnelText } from '../classify/decisions.js';
import {
  type ClientTilesSnapshot,
  gsaTileOffText,
  NOT_ONBOARDED,
  pausedText,
  vpnOffText,
} from '../policy/client-config.js';
import type { ChannelName, PlatformSpec, TenantSpec } from '../policy/model.js';
import { cliCommand } from '../util/cli-command.js';
import type { HostnameEntry } from './client.js';

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
  | 'Disabled by your organization'
  | 'No internet';

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
  /** The client configuration file's warnings (an unknown key, a key in the wrong case). */
  warnings: string[];
  /** The advanced diagnostics' Overview tab: user, device, tenant, profile, version. */
  overview: Overview;
  tenantId: string | null;
  tenantName: string | null;
  profileSource: string;
  profileLoadedAt: string | null;
  classifierGeneration: number;
  channels: ChannelStatus[];
  tiles: ClientTilesSnapshot['tiles'];
  onboarded: boolean;
  vpnOn: boolean;
  /** Who may switch the VPN off (EnableVPNToggleInApp, Block users from disabling automatic VPN). */
  vpn: ClientTilesSnapshot['vpn'];
  /** macOS: paused by the user until then (ISO; it resumes by itself), else null. */
  pausedUntil: string | null;
  /** The Windows registry values / macOS settings in force, else null. */
  desktop: ClientTilesSnapshot['desktop'];
  listeners: Record<string, string | null>;
  flows: { active: number };
}

export interface Overview {
  userPrincipalName: string | null;
  userId: string;
  deviceId: string;
  tenantId: string | null;
  /** The forwarding profile in force: a digest of its rules (changes when they change). */
  forwardingProfileId: string | null;
  /** The last time the client checked for a new forwarding profile (ISO). */
  lastChecked: string | null;
  clientVersion: string;
  /**
   * The device certificate the client presents to the edge (mTLS): its SHA-1 thumbprint,
   * subject and expiry; null before the first enrollment. Absent: the client presents none.
   */
  deviceCertificate?: { thumbprint: string; subject: string; notAfter: string } | null;
  /** Why the client presents no device certificate (the edge would not enroll it). */
  deviceCertificateNone?: string;
  /** The file of the state folder the key or certificate could not be written to, and why. */
  deviceCertificateNotKept?: string;
}

export interface StatusInput {
  overview: Omit<Overview, 'tenantId' | 'forwardingProfileId'>;
  tenant: TenantSpec | null;
  /**
   * The tenant the edge serves now (its tokens' `tid`), when the profiles come from the
   * edge: another one than `tenant`'s means the profile in force is the previous tenant's.
   */
  edgeTenantId?: string | null;
  /**
   * The tenant the edge's tokens name, when the profiles come from a file (`--tenant` with a
   * remote edge): another one than the file's means the edge signs in to, and logs every
   * flow under, another tenant than the one whose profiles classify.
   */
  tokenTenantId?: string | null;
  profileSource: string;
  profileLoadedAt: number | null;
  /** Why the last profile fetch or update failed (null when it did not). */
  profileError?: string | null;
  /** Warnings of the client configuration file. */
  configWarnings?: string[];
  generation: number;
  tiles: ClientTilesSnapshot;
  tunnelUp: (c: ChannelName) => boolean;
  tunnelDetail: (c: ChannelName) => string;
  tokenAt: number | null;
  /**
   * When the last cached token expires (ms; absent: never checked). Past it, the token is
   * no use: Entra is down until one is renewed.
   */
  tokenExpiresAt?: number | null;
  tokenError: string | null;
  /**
   * The last attempt to reach the edge (token, profiles, tunnel) failed because this
   * machine has no network toward it (no route, network down, name lookup failing for
   * now): that error's message. Absent or null: not so.
   */
  noNetwork?: string | null;
  listeners: Record<string, string | null>;
  /** TUN capture is on (the client has a hostname table). */
  tunCapture?: boolean;
  /** Flags the commands the notes suggest need to reach this client (` --state-dir <dir>`). */
  commandFlags?: string;
  activeFlows: number;
}

const CH: readonly ChannelName[] = ['m365', 'private', 'internet'];

/** The profile of `channel` is enabled in the tenant. */
function profileEnabled(t: TenantSpec | null, c: ChannelName): boolean {
  return t?.profiles.some((p) => p.type === c && p.state === 'enabled') === true;
}

const profileIds = new WeakMap<TenantSpec, string>();

/** A GUID-shaped digest of the tenant's profiles: one id per forwarding profile content. */
export function forwardingProfileId(tenant: TenantSpec): string {
  let id = profileIds.get(tenant);
  if (id === undefined) {
    const h = createHash('sha256').update(JSON.stringify(tenant.profiles)).digest('hex');
    id = `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
    profileIds.set(tenant, id);
  }
  return id;
}

/** The profiles in force are of another tenant than the one the edge's tokens name. */
function tenantMismatchText(tenant: TenantSpec, tokenTenantId: string, source: string): string {
  return `the forwarding profile (${source}) is tenant ${tenant.name}'s (${tenant.tenantId}), but the edge signs in to another tenant, ${tokenTenantId}: its tokens and traffic log are that tenant's`;
}

/** Every cached token has expired (none could be renewed since). */
function tokenExpired(i: { tokenExpiresAt?: number | null }): boolean {
  return i.tokenExpiresAt != null && i.tokenExpiresAt <= Date.now();
}

function expiredText(i: { tokenExpiresAt?: number | null; tokenError: string | null }): string {
  const at = new Date(i.tokenExpiresAt!).toISOString();
  return `token expired at ${at}${i.tokenError ? `; renewal failed: ${i.tokenError}` : ''}`;
}

export function statusView(i: StatusInput): StatusView {
  const snap = i.tiles;
  const notes: string[] = [];
  const channels: ChannelStatus[] = [
    {
      channel: 'entra',
      label: 'Entra',
      enabled: true,
      up: i.tokenAt !== null && !tokenExpired(i),
      detail:
        i.tokenAt === null
          ? (i.tokenError ?? 'no token yet')
          : tokenExpired(i)
            ? expiredText(i)
            : 'token cached',
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
        : i.tenant === null
          ? `no forwarding profile yet${i.profileError ? ` (${i.profileError})` : ''}`
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
  // Every channel that forwards is down (the edge is not reached): Disconnected; some: the
  // real client's "Some channels are unreachable".
  else if (unreachable > 0)
    state = unreachable === forwarding ? 'Disconnected' : 'Some channels are unreachable';
  else state = 'Connected';
  // The edge is not reached because this machine has no network toward it: the real
  // client's "No internet", in place of what not reaching the edge shows (no profile yet,
  // every channel down). States of the configuration (Disabled, ...) stay.
  if (
    i.noNetwork &&
    (state === 'Disconnected' || (state === 'Initializing' && i.tenant === null))
  ) {
    state = 'No internet';
    notes.push(
      `no network toward the edge: ${i.noNetwork}; the client keeps trying and connects once the network is back`,
    );
  }
  if (state === 'Disabled by your organization') {
    // The seed's troubleshooting: a tile missing after the tenant was onboarded -> force stop
    // the app and relaunch it. Here the profiles are fetched again at each poll of the edge;
    // a file read at start (--tenant with --edge, or an in-process edge's) is read once.
    const restart = `restart \`${cliCommand()} up\`, the app's force stop and relaunch`;
    notes.push(
      i.profileSource.startsWith('edge ')
        ? `no forwarding profile is enabled: nothing is forwarded; the client connects at its next profile check once the edge serves an enabled one; an in-process edge serves the --tenant file it read at start: edit it and ${restart}`
        : `no forwarding profile is enabled in ${i.profileSource}, read at start: nothing is forwarded; enable one and ${restart}`,
    );
  }
  if (!snap.onboarded) {
    notes.push(
      `${NOT_ONBOARDED}: nothing is forwarded; \`${cliCommand()} onboard${i.commandFlags ?? ''}\``,
    );
  }
  if (!snap.vpnOn) {
    notes.push(
      `${vpnOffText(snap.vpn.offVia)}: nothing is forwarded; \`${cliCommand()} vpn on${i.commandFlags ?? ''}\``,
    );
  }
  if (snap.pausedUntil) {
    notes.push(
      `${pausedText(snap.pausedUntil)}: nothing is forwarded, every flow goes direct; \`${cliCommand()} resume${i.commandFlags ?? ''}\``,
    );
  }
  if (snap.onboarded && snap.vpnOn && !snap.pausedUntil && !snap.toggles.m365) {
    // As the VPN's note: "Disabled" alone does not say that the tile is why, nor the fix.
    const gsa = snap.tiles.m365;
    const fix = gsa.visible && gsa.userCanToggle;
    notes.push(
      `${gsaTileOffText(gsa)}: nothing is forwarded${fix ? `; \`${cliCommand()} toggle m365 on${i.commandFlags ?? ''}\`` : ''}`,
    );
  }
  if (snap.tiles.private.visible && !snap.toggles.private) notes.push('Private Access is disabled');
  if (snap.tiles.internet.visible && !snap.toggles.internet)
    notes.push('Internet Access is disabled');
  if (!capturing(i.listeners, i.tunCapture === true)) {
    notes.push(
      'nothing captures: the SOCKS5 and HTTP proxies are off and there is no TUN, so no application reaches GSA through this client',
    );
  }
  // (No internet's note already has the token's error when it is the same one.)
  if (
    i.tokenAt === null &&
    i.tokenError &&
    !(state === 'No internet' && i.tokenError === i.noNetwork)
  )
    notes.push(`Entra: ${i.tokenError}`);
  else if (i.tokenAt !== null && tokenExpired(i)) notes.push(`Entra: ${expiredText(i)}`);
  if (i.tenant !== null && i.edgeTenantId && i.edgeTenantId !== i.tenant.tenantId) {
    notes.push(
      `the edge now serves tenant ${i.edgeTenantId}: the profile in force is still ${i.tenant.name}'s until its profiles are fetched`,
    );
  }
  if (i.tenant !== null && i.tokenTenantId && i.tokenTenantId !== i.tenant.tenantId) {
    notes.push(tenantMismatchText(i.tenant, i.tokenTenantId, i.profileSource));
  }
  return {
    state,
    notes,
    warnings: i.configWarnings ?? [],
    overview: {
      ...i.overview,
      tenantId: i.tenant?.tenantId ?? null,
      forwardingProfileId: i.tenant ? forwardingProfileId(i.tenant) : null,
    },
    tenantId: i.tenant?.tenantId ?? null,
    tenantName: i.tenant?.name ?? null,
    profileSource: i.profileSource,
    profileLoadedAt: i.profileLoadedAt ? new Date(i.profileLoadedAt).toISOString() : null,
    classifierGeneration: i.generation,
    channels,
    tiles: snap.tiles,
    onboarded: snap.onboarded,
    vpnOn: snap.vpnOn,
    vpn: snap.vpn,
    pausedUntil: snap.pausedUntil,
    desktop: snap.desktop,
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
  /** The rule's own `clientFallbackAction`, else its profile's (what the classifier applies). */
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
            // The rule's own clientFallbackAction, else its profile's (as the classifier).
            hardening: r.fallback ?? p.fallback,
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
  /** The tenant the edge's tokens name (null or absent: no token yet). */
  tokenTenantId?: string | null;
  profileSource: string;
  /** Why the last profile fetch or update failed (null when it did not). */
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
  /**
   * When the last cached token expires (ms; absent: never checked). Past it, the token is
   * no use: Entra is down until one is renewed.
   */
  tokenExpiresAt?: number | null;
  tokenError: string | null;
  /** As StatusInput's: this machine has no network toward the edge (the error's message). */
  noNetwork?: string | null;
  listeners: Record<string, string | null>;
  /** TUN capture's hostname-acquisition table (its DNS); null in proxy capture. */
  hostnames: HostnameEntry[] | null;
}

/**
 * Something captures traffic: TUN, or a proxy. The admin API and the PAC server alone
 * capture nothing.
 */
function capturing(listeners: Record<string, string | null>, tun: boolean): boolean {
  return (
    tun || Object.entries(listeners).some(([k, v]) => v !== null && k !== 'admin' && k !== 'pac')
  );
}

/** Health checks modelled on the real client's list (gsa-facts section 6). */
export function healthChecks(i: HealthInput): HealthCheck[] {
  const out: HealthCheck[] = [];
  const add = (name: string, status: CheckStatus, detail: string) =>
    out.push({ name, status, detail });
  // The capture services: the proxies, or TUN capture (it has a hostname table).
  const running = Object.entries(i.listeners).filter(([, v]) => v !== null);
  const tun = i.hostnames !== null;
  const capture = capturing(i.listeners, tun);
  const listed = [...(tun ? ['TUN capture'] : []), ...running.map(([k, v]) => `${k} ${v}`)];
  add(
    'Services running',
    capture ? 'pass' : 'fail',
    capture
      ? listed.join(', ')
      : `no capture: the SOCKS5 and HTTP proxies are off, no TUN${listed.length ? `; ${listed.join(', ')}` : ''}`,
  );
  // A profile in force whose last fetch or update failed still works: a warning.
  add(
    'Forwarding profile present and valid',
    i.tenant === null ? 'fail' : i.profileError !== null ? 'warn' : 'pass',
    i.tenant !== null
      ? `${i.tenant.profiles.length} profiles, ${i.rules} compiled rules (${i.profileSource})${i.profileError !== null ? `; ${i.profileError}` : ''}`
      : (i.profileError ?? 'no forwarding profile yet'),
  );
  // The profiles classify for one tenant while the edge signs in to (and logs) another.
  const tid = i.tokenTenantId;
  add(
    'Forwarding profile of the signed-in tenant',
    i.tenant === null || !tid ? 'skip' : tid !== i.tenant.tenantId ? 'fail' : 'pass',
    i.tenant === null
      ? 'no forwarding profile yet'
      : !tid
        ? 'no token yet'
        : tid !== i.tenant.tenantId
          ? tenantMismatchText(i.tenant, tid, i.profileSource)
          : `tenant ${i.tenant.name} (${tid})`,
  );
  add(
    'Cached token',
    i.tokenAt !== null && !tokenExpired(i) ? 'pass' : 'fail',
    i.tokenAt === null
      ? (i.tokenError ?? 'none')
      : tokenExpired(i)
        ? expiredText(i)
        : `obtained ${new Date(i.tokenAt).toISOString()}`,
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
    } else if (i.tenant !== null && !profileEnabled(i.tenant, c)) {
      add(`Tunneling succeeded (${label})`, 'skip', 'profile disabled by the administrator');
    } else {
      add(`Tunneling succeeded (${label})`, i.tunnelUp(c) ? 'pass' : 'fail', i.tunnelDetail(c));
    }
  }
  const q = i.platform.quic;
  add(
    'QUIC',
    'pass',
    `${i.platform.name}: QUIC (UDP ${q.ports.join(', ')}) ${q.tunnel.length ? `is tunneled only where ${quicTunnelText(i.platform)} rules acquire it` : 'is never tunneled'}; other QUIC ${q.scope === 'acquired' ? 'that a rule acquires ' : ''}is ${q.otherwise === 'drop' ? 'dropped so apps fall back to TCP' : 'sent direct'}${q.scope === 'acquired' && q.otherwise === 'drop' ? ', and QUIC no rule acquires goes direct' : ''}`,
  );
  add(
    'IPv4 preferred',
    i.platform.acquireIPv6 ? 'warn' : 'pass',
    i.platform.acquireIPv6
      ? 'this platform acquires IPv6'
      : 'IPv6 is not acquired (GSA tunnels IPv4); the resolver prefers IPv4 answers',
  );
  if (i.noNetwork) {
    add('Internet reachable', 'fail', `no network toward the edge: ${i.noNetwork}`);
  } else {
    add(
      'Internet reachable',
      'skip',
      'not probed: gsa-emu reaches only the edge and local servers (see Edge reachable)',
    );
  }
  const rows = i.hostnames;
  if (rows === null) {
    const why = 'proxy capture: names arrive in SOCKS5/HTTP requests, no DNS answer is rewritten';
    add('DNS responsive', 'skip', why);
    add('Magic IP received', 'skip', why);
  } else {
    const upstream = rows.filter((r) => !r.acquired || r.originalIp);
    const answered = upstream.filter((r) => r.originalIp);
    const last = answered[answered.length - 1];
    add(
      'DNS responsive',
      last ? 'pass' : upstream.length > 0 ? 'warn' : 'skip',
      last
        ? `the upstream answered ${last.fqdn} (${last.originalIp}) at ${last.time}`
        : upstream.length > 0
          ? `no upstream answer yet for ${upstream.length} name(s) looked up`
          : 'no name looked up upstream yet',
    );
    const magic = rows.filter((r) => r.acquired && r.generatedIp);
    const m = magic[magic.length - 1];
    add(
      'Magic IP received',
      m ? 'pass' : 'skip',
      m
        ? `${m.fqdn} -> ${m.generatedIp} at ${m.time} (${magic.length} acquired name(s))`
        : 'no acquired name looked up yet',
    );
  }
  if (rows === null) {
    add('Proxy disabled', 'skip', 'gsa-emu is the proxy in SOCKS/HTTP capture mode');
    add(
      'DNS over HTTPS disabled',
      'skip',
      'proxy capture: names arrive in SOCKS5/HTTP requests, not from DNS',
    );
  } else {
    add(
      'Proxy disabled',
      'skip',
      'not checked: TUN capture sees what applications send; one set to use a proxy sends it there',
    );
    add(
      'DNS over HTTPS disabled',
      'skip',
      'not checked: an application resolving over HTTPS bypasses the TUN resolver, so FQDN rules do not see its names',
    );
  }
  add('Break-glass disabled', 'pass', 'no break-glass mode in the emulator');
  return out;
}
