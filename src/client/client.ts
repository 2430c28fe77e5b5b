/**
 * A running GSA client: tenant (the built-in default, a Graph file, or the edge's profiles
 * polled and hot-swapped), managed client configuration (tiles and toggles), platform,
 * classifier (compiled once, swapped whole on a profile change or a toggle: new flows
 * only, nothing restarts), tunnels to the edge (tokens from EdgeApi), the forwarder, the
 * SOCKS5 / HTTP / PAC listeners and the local admin API.
 *
 * ```ts
 * const client = await startClient({ edge: { url: edge.url, ca: edge.caPem } });
 * // curl --socks5-hostname 127.0.0.1:1080 http://intranet.contoso.test/
 * client.toggle('internet', false);   // refused (ToggleRefusedError) when the admin locked it
 * await client.close();
 * ```
 *
 * Contract: `startClient` throws ConfigError/OpenRelayError before listening when an option
 * is invalid; once started nothing it does throws into the caller: edge outages show as
 * channel states and hardening, profile poll failures as health checks. `close()` stops
 * the listeners, the poller, the tunnels and every relayed flow, and resolves when done.
 */

import { lookup } from 'node:dns/promises';
import { type AddressInfo, connect as netConnect, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { type HttpProxy, startHttpProxy } from '../capture/http-proxy.js';
import type { Credentials } from '../capture/listen.js';
import { type PacServer, pacScript, startPacServer } from '../capture/pac.js';
import { type Socks5Server, startSocks5 } from '../capture/socks5.js';
import { ClassifierHandle, compile } from '../classify/index.js';
import { normalizeLocalSubnet } from '../classify/local-subnets.js';
import type { Classifier } from '../classify/types.js';
import { ConfigError, ListenError, ToggleRefusedError, UsageError } from '../errors.js';
import { type FlowRecord, FlowTable } from '../forward/flow-table.js';
import { Forwarder, type ForwardLogger } from '../forward/forwarder.js';
import { isLoopbackIp, Resolver } from '../forward/resolver.js';
import {
  type ClientConfig,
  type ClientTiles,
  type ClientTilesOptions,
  createClientTiles,
  defaultClientConfig,
  loadClientConfigFile,
  type UserActionOptions,
} from '../policy/client-config.js';
import { loadTenant } from '../policy/graph.js';
import type { ChannelName, ClientState, PlatformSpec, TenantSpec } from '../policy/model.js';
import { loadPlatform } from '../policy/platform.js';
import { loadTenantFile } from '../policy/tenant-file.js';
import { type DownInfo, Tunnels } from '../tunnel/client.js';
import type { SessionOptions } from '../tunnel/session.js';
import { awakeTimeout } from '../util/awake-timeout.js';
import { cliCommand } from '../util/cli-command.js';
import { packageVersion } from '../util/package.js';
import { type AdminApi, startAdminApi } from './admin-api.js';
import { DeviceCertificate } from './device-cert.js';
import {
  type HealthCheck,
  healthChecks,
  profileView,
  type StatusView,
  statusView,
} from './diagnostics.js';
import { EdgeApi, noNetworkCode, tenantOfToken } from './edge-api.js';
import { type ProcessOwnerOptions, ProcessOwners } from './process-owner.js';

export interface HostnameEntry {
  time: string;
  fqdn: string;
  generatedIp: string | null;
  acquired: boolean;
  originalIp: string | null;
}

export interface ClientOptions {
  edge: {
    /** Edge base URL (`https://127.0.0.1:port`, or `http://` without TLS). */
    url: string;
    /** The edge's CA (PEM) to trust. */
    ca?: string | null;
    /** TLS server name when the URL host is an address. */
    servername?: string;
    /**
     * Local address for every connection to the edge (token/profile API, tunnels): TUN host
     * mode binds them to the host's address so policy routing keeps them out of the TUN.
     */
    localAddress?: string;
    /** Token lifetime asked of the edge (s; `up --token-ttl`); default the edge's (3600). */
    tokenTtlSeconds?: number;
    /** The edge's client secret (`up --edge-secret`), for an edge that asks for one. */
    clientSecret?: string;
    /**
     * Present a device certificate (mTLS) on the tunnels, as newer GSA clients do: the key
     * and certificate files in `dir` (client/device-cert.ts), enrolled at the edge
     * (`POST /deviceCertificates`) when missing, expiring or for another device. Default
     * none: an older client. `gsa-emu up` gives its state folder unless
     * `--no-device-certificate`. Only over TLS (an https:// edge).
     */
    deviceCertificate?: { dir: string } | null;
    /**
     * Replace a session the edge says it will close (its token's expiry) before then, as
     * TunnelClient's rotateBeforeClose. Default true; false waits for the edge's close.
     */
    rotateSessions?: boolean;
  };
  /**
   * Where the forwarding profiles come from: 'edge' (default: GET and poll the edge's
   * Graph API, hot-swapped on change), 'default' (the built-in tenant) or a file path.
   */
  tenant?: 'edge' | 'default' | string;
  /** Poll interval for 'edge' (ms). Default 30,000 (the real client: minutes). */
  profilePollMs?: number;
  /** A client configuration, or a file (.json, .yaml, .mobileconfig, .plist, .xml). Default: EnableGSA=2, channels 2, SilentOnboard. */
  clientConfig?: ClientConfig | string;
  /** Platform name (ios, windows, macos, android) or file. Default ios. */
  platform?: string;
  /** The macOS pause's length and clock (tests: resume without waiting); see ClientTilesOptions. */
  pause?: Pick<ClientTilesOptions, 'pauseMs' | 'now' | 'schedule'>;
  /**
   * The device's local IPv4 subnets (CIDRs): Private Access does not tunnel its IP segments
   * inside them (the flow goes on to the later rules). Default: the subnets of this host's
   * non-internal IPv4 interfaces, read once at start (`interfaceSubnets`); [] for none.
   */
  localSubnets?: readonly string[];
  /**
   * Flags the commands the status notes suggest (`onboard`, `vpn on`) need to reach this
   * client: ` --state-dir <dir>` when its state folder is not the default. Default none.
   */
  commandFlags?: string;
  user?: { userId?: string; deviceId?: string; upn?: string };
  /**
   * Listeners. Ports: 0 picks a free one; null disables that listener. The defaults are
   * `gsa-emu up`'s fixed ports for SOCKS and HTTP: tests that run side by side pass 0.
   */
  listen?: {
    /** Default 127.0.0.1. */
    host?: string;
    /** Default 1080. */
    socksPort?: number | null;
    /** Default 8080. */
    httpPort?: number | null;
    /** Default 0 (a free port), when a proxy listens. */
    pacPort?: number | null;
    /** Default 0 (a free port). */
    adminPort?: number | null;
    /** Credentials for SOCKS5 (RFC 1929) and the HTTP proxy (Basic); required off loopback. */
    auth?: Credentials;
    /**
     * When the SOCKS5 (`socks`) or HTTP proxy (`http`) port is in use, listen on any free
     * port instead of failing; `listenNotes` says so. For default ports, not for ports the
     * user chose.
     */
    anyPortIfBusy?: { socks?: boolean; http?: boolean };
  };
  /**
   * Name resolution for classification by address and for bypassed flows (forward/resolver.ts).
   * The defaults are the real client's: the system resolver, and bypassed flows to any
   * address; a test that must stay on loopback sets `system: false, directIp: false`.
   */
  resolver?: {
    /** Name -> address, asked first (as /etc/hosts). */
    hosts?: Record<string, string>;
    /** Where a bypassed flow really connects: `name[:port]` or `ip[:port]` -> `ip[:port]`. */
    dial?: Record<string, string>;
    /** Ask the system resolver for names not in `hosts`. Default true. */
    system?: boolean;
    /** Bypassed flows may dial any address (false: loopback and the dial map only). Default true. */
    directIp?: boolean;
    /** A system lookup's limit (ms). Default 3,000. */
    timeoutMs?: number;
  };
  /**
   * Local address for direct (bypassed) connections: a loopback one (e.g. 127.0.0.3) is used
   * for loopback destinations only; another (TUN host mode: the host's address) for all.
   */
  bypassLocalAddress?: string;
  limits?: {
    keepClosedFlows?: number;
    connectTimeoutMs?: number;
    openTimeoutMs?: number;
    handshakeTimeoutMs?: number;
    /** The HTTP proxy's wait for an upstream's response head (ms; 504 after it). Default 30,000. */
    httpResponseTimeoutMs?: number;
    /** The HTTP proxy's wait for a request body's next byte (ms; 408 after it; 0: never). Default 60,000. */
    httpBodyTimeoutMs?: number;
    udpIdleMs?: number;
    session?: SessionOptions;
  };
  /**
   * Find the local process behind each SOCKS5 / HTTP proxy flow (Linux /proc; the flow's
   * `process` and `processId` fill in shortly after it starts). Default true; false turns
   * it off, an object tunes it (client/process-owner.ts).
   */
  processLookup?: boolean | ProcessOwnerOptions;
  /** Hostname acquisition table (TUN mode's DNS table), when present. */
  hostnames?: () => HostnameEntry[];
  /** More Prometheus text for the admin API's /metrics (TUN mode's), when present. */
  metrics?: () => string;
  /**
   * The admin API's bearer token. Default: a random one per run (`admin.token`); null: no
   * credential (tests only; see client/admin-api.ts).
   */
  adminToken?: string | null;
  log?: ForwardLogger & { error?(obj: object, msg?: string): void };
}

export interface RunningClient {
  readonly forwarder: Forwarder;
  readonly flows: FlowTable;
  readonly tiles: ClientTiles;
  readonly tunnels: Tunnels;
  readonly edgeApi: EdgeApi;
  /** The device certificate presented to the edge (ClientOptions.edge.deviceCertificate), or null. */
  readonly deviceCertificate: DeviceCertificate | null;
  readonly platform: PlatformSpec;
  readonly socks: Socks5Server | null;
  readonly http: HttpProxy | null;
  readonly pac: PacServer | null;
  readonly admin: AdminApi | null;
  /** `host:port` of each listener (null when disabled). */
  readonly addresses: {
    socks: string | null;
    http: string | null;
    pac: string | null;
    admin: string | null;
  };
  /** What did not go as configured while starting the listeners (a busy default port). */
  readonly listenNotes: readonly string[];
  readonly tenant: TenantSpec | null;
  readonly classifier: Classifier;
  readonly generation: number;
  /** The local subnets in force (`ClientOptions.localSubnets`), `network/prefix`. */
  readonly localSubnets: readonly string[];
  status(): ClientStatusView;
  health(): Promise<HealthCheck[]>;
  profile(): ReturnType<typeof profileView>;
  /** Flip a tile; throws ToggleRefusedError when locked or hidden. Swaps the classifier. */
  toggle(channel: ChannelName, on: boolean, who?: UserActionOptions): Record<ChannelName, boolean>;
  /**
   * The user switches the VPN on or off in the app (needs EnableVPNToggleInApp) or in
   * Settings (off is refused with Block users from disabling automatic VPN); throws
   * ToggleRefusedError. Off: nothing is forwarded, every flow goes direct.
   */
  setVpn(
    on: boolean,
    via: 'app' | 'settings',
    who?: UserActionOptions,
  ): Record<ChannelName, boolean>;
  /** macOS: the user pauses the client for 10 minutes (refused elsewhere, and with
   *  HidePauseButton); `resume()` ends it sooner. Throw ToggleRefusedError. */
  pause(): Record<ChannelName, boolean>;
  resume(): Record<ChannelName, boolean>;
  /** The user onboards in the app (the client starts onboarded with SilentOnboard=TRUE). */
  onboard(): Record<ChannelName, boolean>;
  /** Replace the tenant (a Graph document or list); swaps the classifier. */
  setTenantDocument(doc: unknown, source: string): void;
  /**
   * Fetches the edge's profiles now (tenant 'edge'), as a poll would, and applies a changed
   * document once (polls never overlap: a refresh during a poll waits for it, then asks
   * again; refreshes waiting together share that request). Never throws: `error` says why
   * nothing was fetched or applied (no edge to ask, no answer, a rejected document), and the
   * profiles in force stay.
   */
  refreshProfiles(): Promise<ProfileRefresh>;
  /** Resolves once every enabled channel's tunnel is up (or rejects after timeoutMs). */
  waitConnected(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * Why a profile refresh fetched or applied nothing (the admin API's `error` field):
 * `no_edge` (profiles from a file read at start), `edge_unreachable` (the edge did not
 * answer the profile request), `profile_rejected` (it sent a document the client cannot
 * use), `stopping` (the client is closing).
 */
export type ProfileRefreshFailure =
  | 'no_edge'
  | 'edge_unreachable'
  | 'profile_rejected'
  | 'stopping';

/**
 * What a profile refresh did (POST /profile/refresh): the profile fields as GET /status
 * names them, after the refresh.
 */
export interface ProfileRefresh {
  /** null: the edge answered (a new document applied, or none). */
  error: { reason: ProfileRefreshFailure; message: string } | null;
  /** The edge sent another document and it is in force now (a new classifier generation). */
  changed: boolean;
  profileSource: string;
  /** When the profiles in force were loaded (ISO). */
  profileLoadedAt: string | null;
  classifierGeneration: number;
  tenantId: string | null;
}

/** GET /status: the status view and the local subnets in force. */
export type ClientStatusView = StatusView & { localSubnets: string[] };

/**
 * The subnets (`network/prefix`) of the non-internal IPv4 addresses of `ifaces` (default:
 * this host's, `os.networkInterfaces()`, whose `cidr` node derives from the netmask, null
 * for a mask that is not a prefix), in interface order, each once.
 */
export function interfaceSubnets(
  ifaces: NodeJS.Dict<
    Array<{ family: string; internal: boolean; cidr: string | null }>
  > = networkInterfaces(),
): string[] {
  const out: string[] = [];
  for (const list of Object.values(ifaces)) {
    for (const a of list ?? []) {
      if (a.family !== 'IPv4' || a.internal || a.cidr === null) continue;
      const n = normalizeLocalSubnet(a.cidr);
      if (n !== null && !out.includes(n)) out.push(n);
    }
  }
  return out;
}

/** `list` normalized (`network/prefix`); a UsageError names an entry that is not an IPv4 CIDR. */
function localSubnetList(list: readonly string[]): string[] {
  return list.map((s) => {
    const n = typeof s === 'string' ? normalizeLocalSubnet(s) : null;
    if (n === null) throw new UsageError(`local subnet "${s}" is not an IPv4 CIDR (a.b.c.d/n)`);
    return n;
  });
}

/** How long a health probe (the edge's connect, its name's lookup) may take: running time. */
const HEALTH_PROBE_MS = 2000;

const noopLog = { info() {}, warn() {}, debug() {}, error() {} };

/** The signed-in user and device when `user` names none. */
const DEMO_USER = {
  userId: '8d2f5c1a-0b7e-4e6f-9a41-2c3d4e5f6a7b',
  upn: 'alice@contoso.test',
  deviceId: 'b3c1d2e4-5f60-4a7b-8c9d-0e1f2a3b4c5d',
};

function hostPort(a: { address: string; port: number; family?: string }): string {
  return a.family === 'IPv6' || a.address.includes(':')
    ? `[${a.address}]:${a.port}`
    : `${a.address}:${a.port}`;
}

/** An empty tenant: nothing acquired, everything direct (before the first profile arrives). */
function emptyTenant(): TenantSpec {
  return { tenantId: '', name: '(no forwarding profile yet)', profiles: [] };
}

export async function startClient(opts: ClientOptions): Promise<RunningClient> {
  // Called from JavaScript nothing else checks the one required option: a ConfigError
  // naming it, as startEdge's for stateDir, rather than a TypeError from deep inside.
  if (!opts || typeof opts.edge !== 'object' || opts.edge === null) {
    throw new ConfigError([
      { path: 'edge', message: 'the edge to connect to is required: { url, ca }' },
    ]);
  }
  const log = opts.log ?? noopLog;
  // Before anything listens: a bad edge URL must not leave listeners behind.
  const edgeUrl = edgeUrlOf(opts.edge.url);
  // The platform first: it says which managed keys the client reads (iOS's or Android's).
  const platform = loadPlatform(opts.platform ?? 'ios');
  const loadedConfig =
    typeof opts.clientConfig === 'string'
      ? loadClientConfigFile(opts.clientConfig, { platform })
      : null;
  const config =
    loadedConfig?.config ??
    (opts.clientConfig as ClientConfig | undefined) ??
    defaultClientConfig();
  /** The client configuration file's warnings (an unknown key...), for `status`. */
  const configWarnings = (loadedConfig?.warnings ?? []).map(
    (w) => `${opts.clientConfig}: ${w.path ? `${w.path}: ` : ''}${w.message}`,
  );
  const tiles = createClientTiles(config, { platform: platform.name, ...opts.pause });
  const source = opts.tenant ?? 'edge';

  let tenant: TenantSpec | null = null;
  let profileSource = source === 'edge' ? `edge ${opts.edge.url}` : source;
  let profileLoadedAt: number | null = null;
  /** The last successful check for a new profile (an edge poll, 200 or 304). */
  let profileCheckedAt: number | null = null;
  /** Why the last profile document was rejected (null once one loads). */
  let profileError: string | null = null;
  /** Why the last edge poll failed (null once the edge answers one). */
  let pollError: string | null = null;
  /** The first edge poll has ended (answered or failed). */
  let firstPollEnded = false;
  if (source === 'default') {
    tenant = loadTenantFile(undefined).tenant;
    profileSource = 'built-in default tenant';
    profileLoadedAt = Date.now();
  } else if (source !== 'edge') {
    tenant = loadTenantFile(source).tenant;
    profileLoadedAt = Date.now();
  }

  // Read once: an address that comes or goes later changes nothing until a restart.
  const localSubnets =
    opts.localSubnets !== undefined ? localSubnetList(opts.localSubnets) : interfaceSubnets();
  const state = (): ClientState => ({ ...tiles.toClientState(platform), localSubnets });
  const handle = new ClassifierHandle(compile(tenant ?? emptyTenant(), state()));
  const recompile = (why: string): void => {
    handle.swap(compile(tenant ?? emptyTenant(), state()));
    log.info({ generation: handle.generation, why }, 'classifier swapped');
  };

  // The demo user and device, shaped as Entra shapes them: object ids are GUIDs, the UPN
  // is the sign-in name (docs/edge.md shows them in a traffic-log record).
  const user = opts.user ?? {};
  const upn = user.upn ?? (user.userId === undefined ? DEMO_USER.upn : undefined);
  const edgeApi = new EdgeApi({
    url: opts.edge.url,
    ca: opts.edge.ca ?? null,
    ...(opts.edge.localAddress ? { localAddress: opts.edge.localAddress } : {}),
    ...(opts.edge.tokenTtlSeconds !== undefined
      ? { tokenTtlSeconds: opts.edge.tokenTtlSeconds }
      : {}),
    ...(opts.edge.clientSecret !== undefined ? { clientSecret: opts.edge.clientSecret } : {}),
    userId: user.userId ?? DEMO_USER.userId,
    deviceId: user.deviceId ?? DEMO_USER.deviceId,
    ...(upn !== undefined ? { upn } : {}),
    // Every token fetched names the tenant the edge serves (declared below; called later).
    onTenant: (tid) => tenantSeen(tid),
  });
  let tokenError: string | null = null;
  /**
   * This machine has no network toward the edge: the message of the last token, profile or
   * tunnel attempt when its error says so (noNetworkCode), null once an attempt reaches the
   * edge or fails for another reason. The client's "No internet" state.
   */
  let noNetwork: string | null = null;
  const edgeFailed = (err: unknown): void => {
    noNetwork = noNetworkCode(err) !== null ? (err as Error).message : null;
  };
  const edgeReached = (): void => {
    noNetwork = null;
  };
  const deviceCert =
    opts.edge.deviceCertificate && /^https:/i.test(opts.edge.url)
      ? new DeviceCertificate({
          dir: opts.edge.deviceCertificate.dir,
          deviceId: user.deviceId ?? DEMO_USER.deviceId,
          enroll: (csr) => edgeApi.enrollDeviceCertificate(csr),
        })
      : null;
  const tunnels = new Tunnels({
    url: opts.edge.url.replace(/^http/, 'ws'),
    ...(deviceCert
      ? {
          clientCertificate: async () => {
            try {
              return await deviceCert.get();
            } catch (err) {
              log.warn({ err: (err as Error).message }, 'device certificate enrollment failed');
              throw err;
            }
          },
        }
      : {}),
    // `fresh`: the edge refused the last token (restarted with another key, another tenant).
    getToken: async (channel, { fresh }) => {
      try {
        const t = await edgeApi.getToken(channel, { fresh });
        // Not edgeReached(): a cached token comes back without asking the edge.
        tokenError = null;
        return t;
      } catch (err) {
        tokenError = (err as Error).message;
        edgeFailed(err);
        throw err;
      }
    },
    ...(opts.edge.ca ? { ca: opts.edge.ca } : {}),
    ...(opts.edge.servername ? { servername: opts.edge.servername } : {}),
    ...(opts.edge.localAddress ? { localAddress: opts.edge.localAddress } : {}),
    ...(opts.limits?.session ? { limits: opts.limits.session } : {}),
    // A silent edge: the flow whose OPEN timed out gets its fallback, and so do the next.
    ...(opts.limits?.openTimeoutMs ? { openSilenceMs: opts.limits.openTimeoutMs } : {}),
    ...(opts.edge.rotateSessions === false ? { rotateBeforeClose: false } : {}),
  });
  const downInfo = new Map<ChannelName, string>();
  /** The edge's profile poller (tenant 'edge'; set below, once the first token was asked). */
  let poller: ReturnType<EdgeApi['pollProfiles']> | null = null;
  /** A poll started because a channel came up (one at a time). */
  let upPoll: Promise<unknown> | null = null;
  // A Graph list (`{ value: [...] }`) names no tenant: the edge's Graph `GET /organization`
  // gives its id and display name; failing that, the id is the tokens' `tid`.
  let edgeTenant: { tenantId?: string; name?: string } = {};
  /** Profiles from a file: the tenant the edge's tokens name (null: no token yet). */
  let tokenTenantId: string | null = null;
  /**
   * The `tid` of a token just fetched. Another tenant than before: the edge was restarted
   * or replaced for another tenant. Forget its name and the profiles' ETag (the new edge
   * may serve the same document) and poll now: the status then names the new tenant.
   */
  const tenantSeen = (tid: string): void => {
    if (source !== 'edge') {
      // Profiles from a file: the edge's tokens name the tenant the edge serves (and logs
      // every flow under); another one than the file's is said once per tenant id.
      if (tid === tokenTenantId) return;
      tokenTenantId = tid;
      if (tenant !== null && tenant.tenantId !== tid) {
        log.warn(
          { tenantFile: source, fileTenantId: tenant.tenantId, edgeTenantId: tid },
          `the tenant file is tenant ${tenant.name} (${tenant.tenantId}), but the edge signs in to tenant ${tid}: its tokens and traffic log are that tenant's`,
        );
      }
      return;
    }
    if (tid === edgeTenant.tenantId) return;
    const before = edgeTenant.tenantId;
    edgeTenant = { tenantId: tid };
    if (before === undefined || poller === null) return;
    log.warn(
      { from: before, to: tid },
      'the edge serves another tenant now: fetching its forwarding profiles again',
    );
    poller.forgetEtag();
    void poller.pollNow();
  };
  tunnels.on('up', (c: ChannelName) => {
    downInfo.delete(c);
    edgeReached();
    log.info({ channel: c }, 'channel up');
    // The edge is back (or came up after us): with no profile yet, or after a failed poll,
    // poll now rather than a whole interval later.
    const want = tenant === null || pollError !== null;
    if (poller !== null && firstPollEnded && upPoll === null && want) {
      upPoll = poller.pollNow().finally(() => {
        upPoll = null;
      });
    }
  });
  tunnels.on('rotated', (c: ChannelName) => {
    log.info({ channel: c }, 'session replaced before the edge closes it (token expiry)');
  });
  tunnels.on('rotateFailed', (c: ChannelName, info: { reason: string }) => {
    log.warn(
      { channel: c, reason: info.reason },
      'could not replace the session before the edge closes it: flows will wait for a reconnect',
    );
  });
  tunnels.on('down', (c: ChannelName, info: DownInfo) => {
    // No error: the edge closed the session or refused the upgrade, so it was reached.
    if (info.error) edgeFailed(info.error);
    else edgeReached();
    // The edge refused the device certificate itself (another device CA: the edge's state
    // was reset; expired; another device): enroll again before the next attempt.
    if (deviceCert && /device-certificate-(untrusted|expired|mismatch)/.test(info.reason))
      deviceCert.invalidate();
    downInfo.set(
      c,
      `${info.reason}${info.retryInMs >= 0 ? ` (retry in ${info.retryInMs} ms)` : ''}`,
    );
    // A refused upgrade: its HTTP status and close code (also in the reason's text).
    log.warn(
      {
        channel: c,
        reason: info.reason,
        ...(info.status !== undefined ? { status: info.status } : {}),
        ...(info.code !== undefined ? { code: info.code } : {}),
        attempt: info.attempt,
        retryInMs: info.retryInMs,
      },
      'channel down',
    );
  });
  tunnels.start();

  const flows = new FlowTable({ keepClosed: opts.limits?.keepClosedFlows ?? 1000 });
  const r = opts.resolver ?? {};
  const resolver = new Resolver({
    ...(r.hosts ? { hosts: r.hosts } : {}),
    ...(r.dial ? { dial: r.dial } : {}),
    ...(r.system !== undefined ? { system: r.system } : {}),
    ...(r.directIp !== undefined ? { directIp: r.directIp } : {}),
    ...(r.timeoutMs !== undefined ? { timeoutMs: r.timeoutMs } : {}),
  });
  // The process column of proxy flows, looked up off the data path: the lookup starts when
  // the proxy accepts the connection (while its handshake runs), so a flow's OPEN carries
  // the name when the scan was quick, and otherwise says it is pending; the answer then
  // follows in META, after the flow ended if need be (the edge holds its log record).
  const owners =
    opts.processLookup === false
      ? null
      : new ProcessOwners(typeof opts.processLookup === 'object' ? opts.processLookup : {});
  const listenerOf = (rec: FlowRecord): number | null => {
    if (rec.protocol !== 'tcp' || !isLoopbackIp(rec.sourceIp)) return null;
    const l = rec.capture === 'socks' ? socks : rec.capture === 'http' ? http : null;
    return l ? l.address.port : null;
  };
  const processOf = (rec: FlowRecord): { name: string; pid: number } | 'pending' | null => {
    const port = listenerOf(rec);
    if (owners === null || port === null) return null;
    const p = owners.peek(rec.sourcePort, port);
    return p === undefined ? 'pending' : p;
  };
  if (owners?.enabled) {
    flows.onChange((rec, event) => {
      if (event !== 'open' || rec.process !== null) return;
      const port = listenerOf(rec);
      if (port === null) return;
      void owners.lookup(rec.sourcePort, port).then((p) => {
        if (rec.process === null) forwarder.setProcess(rec, p?.name ?? null, p?.pid);
      });
    });
  }

  const forwarder = new Forwarder({
    classifier: () => handle.current,
    tunnels,
    clientState: state,
    resolver,
    flows,
    log,
    ...(opts.bypassLocalAddress ? { bypassLocalAddress: opts.bypassLocalAddress } : {}),
    ...(opts.limits?.connectTimeoutMs ? { connectTimeoutMs: opts.limits.connectTimeoutMs } : {}),
    ...(opts.limits?.openTimeoutMs ? { openTimeoutMs: opts.limits.openTimeoutMs } : {}),
    ...(opts.limits?.udpIdleMs ? { udpIdleMs: opts.limits.udpIdleMs } : {}),
    ...(owners?.enabled ? { processOf } : {}),
  });

  tiles.onChange(() => recompile('tile toggled'));

  const learnEdgeTenant = async (): Promise<void> => {
    if (edgeTenant.name !== undefined) return;
    try {
      const org = await edgeApi.getOrganization();
      edgeTenant = { tenantId: org.id, name: org.displayName };
      return;
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'cannot read the edge tenant (GET organization)');
    }
    if (edgeTenant.tenantId !== undefined) return;
    try {
      const tid = tenantOfToken(await edgeApi.getToken('m365'));
      if (tid !== undefined) edgeTenant = { tenantId: tid };
    } catch {}
  };
  const setTenantDocument = (doc: unknown, src: string): void => {
    try {
      tenant = loadTenant(doc, {
        file: src,
        ...(edgeTenant.tenantId !== undefined ? { tenantId: edgeTenant.tenantId } : {}),
        ...(edgeTenant.name !== undefined ? { name: edgeTenant.name } : {}),
      });
      profileSource = src;
      profileLoadedAt = Date.now();
      profileError = null;
      recompile(`profiles from ${src}`);
    } catch (err) {
      profileError = (err as Error).message;
      log.warn({ err: profileError }, 'forwarding profile rejected; keeping the previous one');
    }
  };

  if (source === 'edge') {
    // The start waits at most 5 s in all for the edge (token, then first profile): an edge
    // that does not answer (a hung host, a lost route) must not hold the start for each
    // request's timeout in turn.
    const startBy = Date.now() + 5000;
    const untilStartBy = (): Promise<void> =>
      new Promise((res) => setTimeout(res, Math.max(0, startBy - Date.now())).unref());
    // Still no answer at the deadline: status says so (the banner's reason) until it ends.
    const STILL_WAITING = `no answer from the edge ${opts.edge.url} within 5 s (still waiting)`;
    let tokenPending = true;
    // A new token: tenantSeen learns the edge's tenant from it.
    const firstToken = edgeApi.getToken('m365').then(
      () => {
        tokenPending = false;
        if (tokenError === STILL_WAITING) tokenError = null;
        edgeReached();
      },
      (err: unknown) => {
        tokenPending = false;
        tokenError = (err as Error).message;
        edgeFailed(err);
      },
    );
    await Promise.race([firstToken, untilStartBy()]);
    if (tokenPending && tokenError === null) tokenError = STILL_WAITING;
    let first: () => void = () => {};
    const firstDone = new Promise<void>((res) => {
      first = res;
    });
    poller = edgeApi.pollProfiles({
      intervalMs: opts.profilePollMs ?? 30_000,
      onChange: async (doc) => {
        await learnEdgeTenant();
        setTenantDocument(doc, `edge ${opts.edge.url}`);
        first();
      },
      onChecked: () => {
        profileCheckedAt = Date.now();
        pollError = null;
        firstPollEnded = true;
        edgeReached();
      },
      onError: (err) => {
        pollError = `cannot fetch forwarding profiles: ${err.message}`;
        edgeFailed(err);
        firstPollEnded = true;
        log.warn({ err: err.message }, 'profile poll failed');
        first();
      },
    });
    // Start with the edge's profile when it answers quickly; otherwise start with none
    // (everything direct) and pick it up on a later poll.
    await Promise.race([firstDone, untilStartBy()]);
  }

  const l = opts.listen ?? {};
  const host = l.host ?? '127.0.0.1';
  const opened: Array<{ close(): Promise<void> }> = [];
  const listenNotes: string[] = [];
  /** `start(port)`, or `start(0)` when `port` is in use and `fallback` allows it. */
  const startOnPort = async <T>(
    start: (port: number) => Promise<T>,
    port: number,
    fallback: boolean | undefined,
  ): Promise<T> => {
    try {
      return await start(port);
    } catch (err) {
      if (!fallback || port === 0 || !(err instanceof ListenError) || err.errno !== 'EADDRINUSE')
        throw err;
      const started = await start(0);
      listenNotes.push(
        `the ${err.what}'s default port ${port} is in use: it listens on a free port`,
      );
      return started;
    }
  };
  let socks: Socks5Server | null = null;
  let http: HttpProxy | null = null;
  /** Starts the process lookup of each loopback connection a proxy accepts. */
  const prefetchOwners = (server: Server): void => {
    if (!owners?.enabled) return;
    const port = (server.address() as AddressInfo).port;
    server.on('connection', (sock: Socket) => {
      const peerIp = sock.remoteAddress;
      if (sock.remotePort !== undefined && peerIp !== undefined && isLoopbackIp(peerIp)) {
        void owners.lookup(sock.remotePort, port, {
          peerIp,
          listenerIp: sock.localAddress ?? '127.0.0.1',
        });
      }
    });
  };
  let pac: PacServer | null = null;
  let admin: AdminApi | null = null;
  const addresses = {
    socks: null as string | null,
    http: null as string | null,
    pac: null as string | null,
    admin: null as string | null,
  };
  try {
    if (l.socksPort !== null) {
      socks = await startOnPort(
        (port) =>
          startSocks5({
            forwarder,
            host,
            port,
            ...(l.auth ? { auth: l.auth } : {}),
            ...(opts.limits?.handshakeTimeoutMs
              ? { handshakeTimeoutMs: opts.limits.handshakeTimeoutMs }
              : {}),
            log,
          }),
        l.socksPort ?? 1080,
        l.anyPortIfBusy?.socks,
      );
      opened.push(socks);
      addresses.socks = hostPort(socks.address);
      prefetchOwners(socks.server);
    }
    const script = pacScript({ socks: addresses.socks, http: null });
    if (l.httpPort !== null) {
      // The HTTP proxy's own port is known only after listen: build the PAC text after.
      http = await startOnPort(
        (port) =>
          startHttpProxy({
            forwarder,
            host,
            port,
            ...(l.auth ? { auth: l.auth } : {}),
            ...(opts.limits?.httpResponseTimeoutMs
              ? { responseTimeoutMs: opts.limits.httpResponseTimeoutMs }
              : {}),
            ...(opts.limits?.httpBodyTimeoutMs !== undefined
              ? { bodyTimeoutMs: opts.limits.httpBodyTimeoutMs }
              : {}),
            pacScript: script,
            log,
          }),
        l.httpPort ?? 8080,
        l.anyPortIfBusy?.http,
      );
      opened.push(http);
      addresses.http = hostPort(http.address);
      prefetchOwners(http.server);
      http.pacScript = pacScript({
        socks: addresses.socks,
        http: addresses.http,
      });
    }
    if (l.pacPort !== null && (addresses.socks || addresses.http)) {
      pac = await startPacServer({
        host,
        port: l.pacPort ?? 0,
        socks: addresses.socks,
        http: addresses.http,
        proxiesAuthenticated: l.auth !== undefined,
      });
      opened.push(pac);
      addresses.pac = pac.url;
    }
  } catch (err) {
    for (const o of opened) await o.close().catch(() => {});
    poller?.stop();
    owners?.close();
    await tunnels.close();
    await edgeApi.close();
    throw err;
  }

  const edgePort = Number(edgeUrl.port || (edgeUrl.protocol === 'https:' ? 443 : 80));
  const edgeHost = edgeUrl.hostname.replace(/^\[|\]$/g, '');

  /** Why the last profile fetch or update failed, for status and health (null: it did not). */
  const profileProblem = (): string | null =>
    pollError ?? (profileError !== null ? `forwarding profile rejected: ${profileError}` : null);

  const tunnelDetail = (c: ChannelName): string =>
    tunnels.isUp(c) ? 'tunnel up' : (downInfo.get(c) ?? 'connecting');

  const client: RunningClient = {
    forwarder,
    flows,
    tiles,
    tunnels,
    edgeApi,
    deviceCertificate: deviceCert,
    platform,
    socks,
    http,
    pac,
    get admin() {
      return admin;
    },
    addresses,
    listenNotes,
    get tenant() {
      return tenant;
    },
    get classifier() {
      return handle.current;
    },
    get generation() {
      return handle.generation;
    },
    localSubnets,
    status: () => ({
      ...statusView({
        overview: {
          userPrincipalName: upn ?? null,
          userId: user.userId ?? DEMO_USER.userId,
          deviceId: user.deviceId ?? DEMO_USER.deviceId,
          lastChecked: new Date(profileCheckedAt ?? profileLoadedAt ?? Date.now()).toISOString(),
          clientVersion: packageVersion(),
          ...(deviceCert ? { deviceCertificate: deviceCert.info() } : {}),
          ...(deviceCert?.none ? { deviceCertificateNone: deviceCert.none } : {}),
          ...(deviceCert?.notKept ? { deviceCertificateNotKept: deviceCert.notKept } : {}),
        },
        tenant,
        ...(source === 'edge' ? { edgeTenantId: edgeTenant.tenantId ?? null } : { tokenTenantId }),
        profileSource,
        profileLoadedAt,
        profileError: profileProblem(),
        configWarnings,
        generation: handle.generation,
        tiles: tiles.snapshot(),
        tunnelUp: (c) => tunnels.isUp(c),
        tunnelDetail,
        // When the newest cached token was issued (not the last getToken call: a cached
        // token comes back on every reconnect attempt, also while the edge is down).
        tokenAt: edgeApi.lastTokenObtainedAt(),
        tokenExpiresAt: edgeApi.lastTokenExpiresAt(),
        tokenError,
        noNetwork,
        listeners: addresses,
        tunCapture: opts.hostnames !== undefined,
        ...(opts.commandFlags ? { commandFlags: opts.commandFlags } : {}),
        activeFlows: flows.activeCount,
      }),
      localSubnets: [...localSubnets],
    }),
    async health() {
      // The probes' 2 s count only the time this process ran (awakeTimeout): an event-loop
      // stall (a loaded host, GC) is not the edge's silence, and the answer that came
      // during it is read before the bound is judged.
      const probe = (): Promise<string | null> =>
        new Promise((res) => {
          const s = netConnect({ host: edgeHost, port: edgePort });
          const timer = awakeTimeout(HEALTH_PROBE_MS, () => {
            s.destroy();
            res(`no answer from ${edgeHost}:${edgePort} within 2 s`);
          });
          s.once('connect', () => {
            timer.cancel();
            s.destroy();
            res(null);
          });
          s.once('error', (e: NodeJS.ErrnoException) => {
            timer.cancel();
            res(`${e.code ?? 'error'} ${edgeHost}:${edgePort}`);
          });
        });
      // Bounded as the probe is: a lookup waits on the libuv thread pool and on DNS servers,
      // either of which may not answer, and /health must still answer.
      const resolve = (): Promise<string | null> =>
        new Promise((res) => {
          const timer = awakeTimeout(HEALTH_PROBE_MS, () =>
            res(`no answer resolving ${edgeHost} within 2 s`),
          );
          lookup(edgeHost).then(
            () => {
              timer.cancel();
              res(null);
            },
            (e: NodeJS.ErrnoException) => {
              timer.cancel();
              res(`cannot resolve ${edgeHost}: ${e.code}`);
            },
          );
        });
      const [reach, resolves] = await Promise.all([probe(), resolve()]);
      return healthChecks({
        tenant,
        // The tenant the edge's tokens name: the edge's own while its profiles are fetched.
        tokenTenantId: source === 'edge' ? (edgeTenant.tenantId ?? null) : tokenTenantId,
        profileSource,
        profileError: profileProblem(),
        rules: handle.current.size,
        platform,
        channels: tiles.state(),
        tunnelUp: (c) => tunnels.isUp(c),
        tunnelDetail,
        // One edge serves every channel here; the real client has one host per channel.
        edgeReachable: { m365: reach, private: reach, internet: reach },
        edgeHost: hostPort({ address: edgeHost, port: edgePort }),
        edgeHostResolves: resolves,
        tokenAt: edgeApi.lastTokenObtainedAt(),
        tokenExpiresAt: edgeApi.lastTokenExpiresAt(),
        tokenError,
        noNetwork,
        listeners: addresses,
        hostnames: opts.hostnames ? opts.hostnames() : null,
      });
    },
    profile: () => profileView(tenant),
    toggle(channel, on, who) {
      return tiles.toggle(channel, on, who);
    },
    setVpn: (on, via, who) => tiles.setVpn(on, via, who),
    pause: () => tiles.pause(),
    resume: () => tiles.resume(),
    onboard: () => tiles.onboard(),
    setTenantDocument,
    async refreshProfiles() {
      const out = poller === null ? null : await poller.pollNow();
      let error: ProfileRefresh['error'] = null;
      const kept = `the client keeps the profiles it had (classifier generation ${handle.generation})`;
      if (out === null) {
        error = {
          reason: 'no_edge',
          message: `this client's forwarding profiles come from ${profileSource}, read at start (--tenant), not from its edge: there is nothing to fetch; restart \`${cliCommand()} up\` to read the file again`,
        };
      } else if (out.status === 'stopped') {
        error = { reason: 'stopping', message: 'the client is stopping' };
      } else if (out.status === 'error') {
        error = {
          reason: 'edge_unreachable',
          message: `cannot fetch forwarding profiles from the edge ${opts.edge.url}: ${out.error.message}; ${kept}`,
        };
      } else if (profileError !== null) {
        // The edge answered, and the document it serves is one setTenantDocument refused:
        // new now, or (a 304) the one it refused before. The old profiles stay.
        error = {
          reason: 'profile_rejected',
          message: `the edge ${opts.edge.url} ${out.changed ? 'sent' : 'still serves'} forwarding profiles the client cannot use: ${profileError}; ${kept}`,
        };
      }
      return {
        error,
        changed: error === null && out !== null && 'changed' in out && out.changed,
        profileSource,
        profileLoadedAt: profileLoadedAt === null ? null : new Date(profileLoadedAt).toISOString(),
        classifierGeneration: handle.generation,
        tenantId: tenant?.tenantId ?? null,
      };
    },
    async waitConnected(timeoutMs = 10_000) {
      const want = (['m365', 'private', 'internet'] as const).filter((c) => tiles.state()[c]);
      await Promise.all(want.map((c) => tunnels.client(c)?.waitUp(timeoutMs)));
    },
    async close() {
      tiles.close();
      poller?.stop();
      owners?.close();
      if (admin) await admin.close().catch(() => {});
      for (const o of opened.reverse()) await o.close().catch(() => {});
      forwarder.close();
      await tunnels.close();
      await edgeApi.close();
    },
  };

  if (l.adminPort !== null) {
    try {
      admin = await startAdminApi(client, {
        host: '127.0.0.1',
        port: l.adminPort ?? 0,
        ...(opts.hostnames ? { hostnames: opts.hostnames } : {}),
        ...(opts.metrics ? { metrics: opts.metrics } : {}),
        ...(opts.adminToken !== undefined ? { token: opts.adminToken } : {}),
      });
      addresses.admin = hostPort(admin.address);
    } catch (err) {
      await client.close();
      throw err;
    }
  }
  return client;
}

export { ToggleRefusedError };

/** The edge's URL (http or https), or a UsageError naming `what` and what is wrong. */
export function edgeUrlOf(url: string, what = 'the edge URL'): URL {
  let u: URL | null = null;
  try {
    u = new URL(url);
  } catch {}
  if (u === null || (u.protocol !== 'https:' && u.protocol !== 'http:')) {
    throw new UsageError(`${what} "${url}" is not an http(s) URL (https://host:port)`);
  }
  // The client signs in with the edge's tokens; a URL with credentials is refused by fetch.
  // Not echoed: the password is not repeated on the terminal.
  if (u.username !== '' || u.password !== '') {
    throw new UsageError(
      `${what} (${u.protocol}//...@${u.host}) has a user name or password: the edge URL is https://host:port, and the client signs in with the edge's tokens`,
    );
  }
  // The client asks the edge at fixed paths from its root (/oauth2/..., /tunnel/<channel>):
  // a path would prefix them all (and be taken for a tenant id), a query or fragment be lost.
  const extra =
    u.pathname !== '/'
      ? `a path (${u.pathname})`
      : u.search !== '' || url.includes('?')
        ? 'a query'
        : u.hash !== '' || url.includes('#')
          ? 'a fragment'
          : null;
  if (extra !== null) {
    throw new UsageError(
      `${what} "${url}" has ${extra}: the edge URL is https://host:port (or http://host:port), nothing after the port`,
    );
  }
  return u;
}
