/**
 * The mock GSA edge: one node:http(s) server carrying the token endpoint and JWKS
 * (identity.ts), the Graph-shaped control API (control-api.ts) and the tunnel upgrade
 * (`/tunnel/<channel>`, tunnel/server.ts) whose streams go to egress (egress.ts).
 *
 * ```ts
 * const edge = await startEdge({ stateDir, hostsMap: { 'www.contoso.test': '127.0.0.1:8080' },
 *                                egress: { systemResolver: false, directIp: false } });
 * const token = await edge.issueToken({ userId: 'alice', deviceId: 'dev1', channel: 'internet' });
 * // TunnelClient({ url: edge.url, ca: edge.caPem, getToken: ... })
 * await edge.close();
 * ```
 *
 * Stateless per session: nothing outlives a session except the traffic log and the tenant
 * document; edges sharing a `stateDir` share the signing key and the TLS material, so any of
 * them accepts a client's token behind an L4 load balancer.
 *
 * Contract: `startEdge` validates every option (ConfigError) before listening; `close()`
 * stops accepting, sends GOAWAY to every session, waits up to `limits.graceMs`, resets
 * what is left, flushes the log and resolves when every socket is gone. `kill()` drops
 * everything at once without GOAWAY (a crashed edge, for tests).
 */
import { randomUUID } from 'node:crypto';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { ConfigError } from '../errors.js';
import { defaultTenantDocument } from '../policy/default-tenant.js';
import type { ChannelName } from '../policy/model.js';
import { CloseCode } from '../tunnel/frame.js';
import { createTunnelServer, type TunnelServer } from '../tunnel/server.js';
import type { Session, SessionOptions } from '../tunnel/session.js';
import type { TlsMaterial } from '../tunnel/tls.js';
import type { MetaUpdate } from '../tunnel/types.js';
import type { HostsConfig } from '../util/hosts-map.js';
import { listenOn } from '../util/listen.js';
import { DEFAULT_LOG_MAX_BYTES } from '../util/log-rotation.js';
import { packageVersion } from '../util/package.js';
import { LIBRARY_STATE_DIR, makeDirs, stateDirError } from '../util/state-dir.js';
import { type TimerAt, timerAt } from '../util/timer-at.js';
import { Connector } from './connector.js';
import { createControlApi, sendGraphError } from './control-api.js';
import {
  checkDeviceCertificate,
  DEVICE_CERTIFICATE_MODES,
  type DeviceCa,
  type DeviceCertificateMode,
  handleDeviceCertificateRequest,
  loadOrCreateDeviceCa,
} from './device-ca.js';
import { Egress, type EgressOptions, type FlowContext } from './egress.js';
import type { FilteringConfig } from './filter.js';
import { WebFilter } from './filter.js';
import {
  type Audience,
  bearerOf,
  handleIdentityRequest,
  Issuer,
  type Principal,
  type TokenEndpointOptions,
} from './identity.js';
import { machineNames } from './machine-names.js';
import { TenantStore } from './tenant.js';
import { TrafficLog } from './traffic-log.js';

/** A tenant id the edge takes: a DNS label (a GUID, or a short name such as `contoso`). */
export const TENANT_ID_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})$/;
export interface EdgeLimits {
  /** TCP connect timeout to destinations (ms). Default 10,000. */
  connectTimeoutMs?: number;
  /** Idle TCP flows are reset after this (ms); 0 = never. Default 0. */
  tcpIdleTimeoutMs?: number;
  /** Idle UDP flows are closed after this (ms). Default 60,000. */
  udpIdleTimeoutMs?: number;
  /**
   * Largest UDP datagram from the client sent to the destination (bytes); longer ones are
   * dropped, counted (GET /health `datagramsDropped.tooLarge`) and logged ('datagram too
   * large', one line a minute per flow). Default 65,507.
   */
  maxDatagramSize?: number;
  /** Traffic log records kept in memory. Default 10,000. */
  logCapacity?: number;
  /** close(): how long sessions get after GOAWAY (ms). Default 5,000. */
  graceMs?: number;
  /** HTTP request headers timeout (ms). Default 10,000. */
  headersTimeoutMs?: number;
  /** Tunnel session limits (windows, frame size, keepalive, max streams). */
  session?: SessionOptions;
  /**
   * Tunnel sessions one principal (tenant + user + device + channel) may hold at once; one
   * more is refused with HTTP 429 (close code 4403). Default 16.
   */
  maxSessionsPerPrincipal?: number;
  /**
   * Close a session (code 4419 AUTH_EXPIRED) when the token it was opened with expires, and
   * say when on the upgrade (x-gsa-session-closes-in): gsa-emu's client replaces the session
   * before then; streams still open on it at the close are reset. Default false.
   */
  closeOnTokenExpiry?: boolean;
}

/**
 * Bounds the edge's 'tunnel refused' lines. A client retrying a refused upgrade with
 * TunnelClient's backoff (full jitter, at most 10 s: about one attempt in 5 s per channel
 * once at the cap) would otherwise log a line per attempt, and one without backoff, or many
 * clients of one principal, any number a second. Per key (the edge's: status, reason,
 * channel and who) the first `perKey` refusals of a window are logged, and `total` lines in
 * all; the next line of a key says how many of its refusals were not logged (`suppressed`),
 * and the line that reaches `total` says so (`limitReached`). A key quiet for a window is
 * forgotten (with its count), so the table holds at most about 2 x `total` keys.
 * The edge's 'datagram too large' lines are bounded the same way (key: the flow, one line).
 */
export class RefusalLogLimit {
  /** Refusals not logged, in all. */
  unlogged = 0;
  private readonly windowMs: number;
  private readonly perKey: number;
  private readonly total: number;
  private windowStart = Number.NEGATIVE_INFINITY;
  private lines = 0;
  private readonly keys = new Map<string, { lines: number; suppressed: number; seen: number }>();

  constructor(o: { windowMs?: number; perKey?: number; total?: number } = {}) {
    this.windowMs = o.windowMs ?? 60_000;
    this.perKey = o.perKey ?? 5;
    this.total = o.total ?? 100;
  }

  /** Keys remembered. */
  get size(): number {
    return this.keys.size;
  }

  /** Null: do not log this refusal. Otherwise log it, with the counts to show. */
  admit(key: string, now = Date.now()): { suppressed: number; limitReached?: true } | null {
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now;
      this.lines = 0;
      for (const [k, e] of this.keys) {
        if (now - e.seen >= this.windowMs) this.keys.delete(k);
        else e.lines = 0;
      }
    }
    let e = this.keys.get(key);
    if (e !== undefined) e.seen = now;
    if (this.lines >= this.total || (e !== undefined && e.lines >= this.perKey)) {
      // A new key over the total is counted in `unlogged` only: no entry, so a flood of
      // distinct keys cannot grow the table.
      if (e !== undefined) e.suppressed++;
      this.unlogged++;
      return null;
    }
    if (e === undefined) {
      e = { lines: 0, suppressed: 0, seen: now };
      this.keys.set(key, e);
    }
    const suppressed = e.suppressed;
    e.suppressed = 0;
    e.lines++;
    this.lines++;
    return this.lines === this.total ? { suppressed, limitReached: true } : { suppressed };
  }
}

/** A pino-compatible logger (the subset the edge uses). */
export interface EdgeLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface EdgeOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (an ephemeral port). */
  port?: number;
  /** HTTPS/WSS with the local CA from tunnel/tls.ts (default true); false = plain HTTP/WS. */
  tls?: boolean;
  /** Signing key, TLS material. Created when missing. */
  stateDir: string;
  /**
   * Device certificates (mTLS) on the edge's TLS connections: `optional` (default) asks
   * every client for one and refuses a tunnel whose certificate is not from the edge's
   * device CA, not valid now or for another device than its token's, but lets a client
   * that presents none (an older client) in; `required` refuses that one too (401); `off`
   * asks for none. `required` needs `tls`. Clients enroll at `POST /deviceCertificates`
   * whatever the mode (docs/decisions/edge-device-certificates.md).
   */
  deviceCertificates?: DeviceCertificateMode;
  /** Keep the signing key in stateDir (default true); false = a fresh key per start. */
  persistKey?: boolean;
  /**
   * The longest token lifetime (`ttlSeconds`) the token endpoint issues, in whole seconds;
   * a longer request is refused with 400 `invalid_request`. Default 86,400.
   */
  maxTokenTtlSeconds?: number;
  /**
   * The token endpoint issues tokens only to requests carrying this secret (`client_secret`,
   * or HTTP Basic); unset: to anyone asking for the edge's tenant. `gsa-emu edge` sets it
   * when it listens beyond loopback (docs/decisions/edge-client-secret.md).
   */
  clientSecret?: string;
  /**
   * Extra names for the TLS certificate (the channel host names are always added; with a
   * wildcard `host`, also this machine's addresses and name: `Edge.machineNames`).
   */
  hostnames?: string[];
  /** The tenant's Graph forwarding-profile document. Default: the built-in default tenant. */
  tenantDoc?: unknown;
  /**
   * Tenant id and display name when `tenantDoc` is a Graph list (`{ value: [...] }`), which
   * carries neither (defaults: the all-zero GUID, "Graph forwarding profiles"). A tenant
   * document's own `tenantId` and `name` win.
   */
  tenantId?: string;
  tenantName?: string;
  /** Internet / M365 egress: names and remaps consulted before the system resolver. */
  hostsMap?: HostsConfig;
  /** The private network connector's names and remaps. */
  connectorHosts?: HostsConfig;
  /**
   * The connector's DNS search suffixes for single-label names (Private DNS). Default: the
   * tenant's Private DNS suffixes (policy/private-dns.ts).
   */
  connectorSearch?: string[];
  /** Web content filtering. Default: nothing blocked. */
  filtering?: FilteringConfig;
  /** JSON-lines traffic log; null/undefined = memory only. */
  logFile?: string | null;
  /**
   * Bytes past which `logFile` is renamed `<logFile>.1` (replacing an older one) and a new
   * file begun; 0 = never. Default 1 GiB (util/log-rotation.ts).
   */
  logMaxBytes?: number;
  /** Egress switches; tests and demos set both false so nothing leaves the machine. */
  egress?: Pick<EgressOptions, 'systemResolver' | 'directIp' | 'processWaitMs'> & {
    connectorDirectIp?: boolean;
  };
  limits?: EdgeLimits;
  /** URL prefix of the tunnel. Default '/tunnel'. */
  tunnelPath?: string;
  /** Session and refusal events (pino works). Flows go to the traffic log, not here. */
  log?: EdgeLogger;
}

export interface EdgeTokenRequest {
  userId?: string;
  upn?: string;
  deviceId?: string;
  channel: Audience;
  ttlSeconds?: number;
  /** Default: the edge's tenant (give another to make wrong-tenant tokens). */
  tenantId?: string;
}

export interface Edge {
  /** `https://127.0.0.1:port` (or `http://`): the token endpoint, JWKS, control API, tunnel base. */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /**
   * With a wildcard `host` (0.0.0.0, `::`): this machine's addresses and name, which the
   * certificate also holds (machine-names.ts); else empty.
   */
  readonly machineNames: readonly string[];
  /** The CA clients must trust (PEM), or null without TLS. */
  readonly caPem: string | null;
  /**
   * The device CA (PEM) that signs device certificates (`<stateDir>/device-ca.pem`); null
   * where none are asked for (`deviceCertificates: 'off'`, or no TLS).
   */
  readonly deviceCaPem: string | null;
  /** `EdgeOptions.deviceCertificates` in force. */
  readonly deviceCertificates: DeviceCertificateMode;
  readonly tenantId: string;
  readonly tenant: TenantStore;
  readonly issuer: Issuer;
  readonly logs: TrafficLog;
  /** Sessions currently open. */
  readonly sessions: ReadonlySet<Session>;
  /** Flows currently relayed. */
  readonly activeFlows: number;
  issueToken(req: EdgeTokenRequest): Promise<string>;
  /** GOAWAY, grace period, then close everything. Idempotent. */
  close(opts?: { graceMs?: number }): Promise<void>;
  /** Drop every connection at once (no GOAWAY): a crashed edge. Idempotent. */
  kill(): Promise<void>;
}

/** The TLS names of a tenant's channel hosts: `<tenantId>.<channel>.client.globalsecureaccess.test`. */
export function channelHostnames(tenantId: string): string[] {
  return ['m365', 'private', 'internet'].map(
    (c) => `${tenantId}.${c}.client.globalsecureaccess.test`,
  );
}

interface SessionPrincipal extends Omit<Principal, 'channel'> {
  [key: string]: unknown;
  channel: ChannelName;
  sessionId: string;
  agentVersion: string;
  /** When the edge closes the session (closeOnTokenExpiry: its token's expiry), or null. */
  closesAt: number | null;
  /** The thumbprint of the device certificate presented, or null. */
  deviceCertificate: string | null;
}

export async function startEdge(opts: EdgeOptions): Promise<Edge> {
  if (!opts || typeof opts.stateDir !== 'string' || opts.stateDir === '') {
    throw new ConfigError([{ path: 'stateDir', message: 'a state folder is required' }]);
  }
  if (opts.tenantId !== undefined && !TENANT_ID_RE.test(opts.tenantId)) {
    throw new ConfigError([
      { path: 'tenantId', message: `${JSON.stringify(opts.tenantId)} is not a tenant id (a GUID)` },
    ]);
  }
  const host = opts.host ?? '127.0.0.1';
  const useTls = opts.tls ?? true;
  const certMode = opts.deviceCertificates ?? 'optional';
  if (!DEVICE_CERTIFICATE_MODES.includes(certMode)) {
    throw new ConfigError([
      {
        path: 'deviceCertificates',
        message: `must be one of ${DEVICE_CERTIFICATE_MODES.join(', ')}, not ${JSON.stringify(certMode)}`,
      },
    ]);
  }
  if (certMode === 'required' && !useTls) {
    throw new ConfigError([
      {
        path: 'deviceCertificates',
        message:
          "'required' needs TLS (a device certificate is presented in the TLS handshake), and tls is false",
      },
    ]);
  }
  const limits = opts.limits ?? {};
  const maxDatagram = limits.maxDatagramSize;
  if (maxDatagram !== undefined && !(Number.isInteger(maxDatagram) && maxDatagram >= 1)) {
    throw new ConfigError([
      {
        path: 'limits.maxDatagramSize',
        message: `must be a whole number of bytes, at least 1, not ${maxDatagram}`,
      },
    ]);
  }
  const maxTtl = opts.maxTokenTtlSeconds;
  if (maxTtl !== undefined && !(Number.isSafeInteger(maxTtl) && maxTtl >= 1)) {
    throw new ConfigError([
      {
        path: 'maxTokenTtlSeconds',
        message: `must be a whole number of seconds, at least 1, not ${maxTtl}`,
      },
    ]);
  }
  const secret = opts.clientSecret;
  if (secret !== undefined && (secret.length < 16 || secret.length > 1024)) {
    throw new ConfigError([
      {
        path: 'clientSecret',
        message: `must be 16 to 1024 characters, not ${secret.length}`,
      },
    ]);
  }
  const store = new TenantStore(opts.tenantDoc ?? defaultTenantDocument(), {
    ...(opts.tenantId !== undefined ? { tenantId: opts.tenantId } : {}),
    ...(opts.tenantName !== undefined ? { name: opts.tenantName } : {}),
  });
  const tenantId = store.tenantId;
  const elog: EdgeLogger = opts.log ?? { info() {}, warn() {} };
  const tokenRefusalLog = new RefusalLogLimit();
  const tokenOpts: TokenEndpointOptions = {
    tenantId,
    ...(secret !== undefined ? { clientSecret: secret } : {}),
    // Refused token requests in the operational log, at most a few lines a minute per kind
    // and address (a client retrying with a wrong secret).
    onRefused: (req, r) => {
      const remote = req.socket.remoteAddress ?? null;
      const admitted = tokenRefusalLog.admit(JSON.stringify([r.status, r.error, remote]));
      if (admitted === null) return;
      elog.warn(
        {
          status: r.status,
          error: r.error,
          description: r.description,
          remote,
          ...(admitted.suppressed > 0 ? { suppressed: admitted.suppressed } : {}),
          ...(admitted.limitReached ? { limitReached: true } : {}),
        },
        'token refused',
      );
    },
  };
  const filter = new WebFilter(opts.filtering ?? {});
  const connector = new Connector({
    hosts: opts.connectorHosts ?? {},
    directIp: opts.egress?.connectorDirectIp ?? false,
    ...(opts.connectorSearch ? { searchSuffixes: opts.connectorSearch } : {}),
  });
  // A folder that cannot be made (a file on its path, no permission, a read-only file
  // system) is said of stateDir, as the CLI says it of --state-dir.
  // The file system's error is its cause: the CLI says it again of --state-dir.
  const dirError = (err: unknown) => {
    const e = stateDirError(err, opts.stateDir, LIBRARY_STATE_DIR);
    if (e === null) return err;
    if (e.cause === undefined)
      Object.defineProperty(e, 'cause', { value: err, writable: true, configurable: true });
    return e;
  };
  let issuer: Issuer;
  try {
    makeDirs(opts.stateDir);
    issuer = await Issuer.create({
      ...(opts.persistKey === false ? {} : { stateDir: opts.stateDir }),
      ...(maxTtl !== undefined ? { maxTtlSeconds: maxTtl } : {}),
    });
  } catch (err) {
    throw dirError(err);
  }
  const log = new TrafficLog({
    file: opts.logFile ?? null,
    capacity: limits.logCapacity ?? 10_000,
    maxFileBytes: opts.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES,
  });
  const datagramLog = new RefusalLogLimit({ perKey: 1 });
  const egress = new Egress(
    {
      hostsMap: opts.hostsMap ?? {},
      ...(opts.egress?.systemResolver !== undefined
        ? { systemResolver: opts.egress.systemResolver }
        : {}),
      ...(opts.egress?.directIp !== undefined ? { directIp: opts.egress.directIp } : {}),
      ...(opts.egress?.processWaitMs !== undefined
        ? { processWaitMs: opts.egress.processWaitMs }
        : {}),
      ...(limits.connectTimeoutMs !== undefined
        ? { connectTimeoutMs: limits.connectTimeoutMs }
        : {}),
      ...(limits.tcpIdleTimeoutMs !== undefined
        ? { tcpIdleTimeoutMs: limits.tcpIdleTimeoutMs }
        : {}),
      ...(limits.udpIdleTimeoutMs !== undefined
        ? { udpIdleTimeoutMs: limits.udpIdleTimeoutMs }
        : {}),
      ...(maxDatagram !== undefined ? { maxDatagramSize: maxDatagram } : {}),
    },
    {
      log,
      filter,
      connector,
      privateApps: () => store.privateApps,
      nameOf: (id) => store.nameOf(id),
      onDatagramTooLarge: (d) => {
        const admitted = datagramLog.admit(`${d.sessionId}/${d.streamId}`);
        if (admitted === null) return;
        elog.warn(
          {
            ...d,
            ...(admitted.suppressed > 0 ? { suppressed: admitted.suppressed } : {}),
            ...(admitted.limitReached ? { limitReached: true } : {}),
          },
          'datagram too large',
        );
      },
    },
  );
  // On every address: a client elsewhere knows it by an address or name of this machine.
  const ownNames = machineNames(host);
  let tlsMaterial: TlsMaterial | null;
  let deviceCa: DeviceCa | null;
  /** Without TLS no certificate can be presented: nothing to ask for. */
  const askCert: DeviceCertificateMode = useTls ? certMode : 'off';
  try {
    tlsMaterial = useTls
      ? await (await import('../tunnel/tls.js')).loadOrCreateTls(opts.stateDir, [
          ...channelHostnames(tenantId),
          ...(opts.hostnames ?? []),
          ...ownNames,
        ])
      : null;
    // Made only where certificates are asked for: an edge without TLS, or `off`, writes
    // no device CA and has no enrollment endpoint (404: its clients present none).
    deviceCa = askCert !== 'off' ? await loadOrCreateDeviceCa(opts.stateDir) : null;
  } catch (err) {
    // A folder where a file goes, a read-only or full disk: said of stateDir, as above.
    throw dirError(err);
  }
  const sockets = new Set<Socket>();
  const expiryTimers = new Map<Session, TimerAt>();
  const refusalLog = new RefusalLogLimit();
  let tunnel: TunnelServer | undefined;
  const agentFallback = 'unknown';

  const controlApi = createControlApi({
    store,
    log,
    issuer,
    health: () => ({
      tenantId,
      version: packageVersion(),
      sessions: tunnel?.sessions.size ?? 0,
      activeFlows: egress.activeFlows,
      flows: { ...egress.stats },
      datagramsDropped: { ...egress.datagramsDropped },
      etag: store.etag,
      logRecords: log.size,
      deviceCertificates: askCert,
    }),
  });

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://edge.invalid');
    } catch {
      sendGraphError(res, 400, 'BadRequest', 'bad request URL');
      return;
    }
    (async () => {
      if (await handleIdentityRequest(issuer, tokenOpts, req, res, url.pathname)) return;
      if (
        deviceCa &&
        (await handleDeviceCertificateRequest(deviceCa, issuer, tenantId, req, res, url.pathname))
      )
        return;
      if (await controlApi(req, res, url)) return;
      sendGraphError(res, 404, 'ResourceNotFound', `no resource at ${url.pathname}`);
    })().catch((err: unknown) => {
      if (!res.headersSent) sendGraphError(res, 500, 'InternalServerError', String(err));
      else res.destroy();
    });
  };

  const server: Server = tlsMaterial
    ? (createHttpsServer(
        {
          cert: tlsMaterial.cert,
          key: tlsMaterial.key,
          // Ask for a device certificate but let the handshake through whatever comes: the
          // tunnel upgrade then refuses with an HTTP status and words (authenticate), not
          // an opaque TLS alert. Only the device CA is trusted for it.
          ...(deviceCa ? { requestCert: true, rejectUnauthorized: false, ca: deviceCa.pem } : {}),
        },
        onRequest,
      ) as unknown as Server)
    : createHttpServer(onRequest);
  server.headersTimeout = limits.headersTimeoutMs ?? 10_000;
  server.requestTimeout = 30_000;
  server.on(useTls ? 'secureConnection' : 'connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  // Plain TCP sockets too (a TLS handshake that never completes).
  if (useTls) {
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
  }
  server.on('clientError', (_err, socket) => {
    if (!socket.destroyed) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });

  tunnel = createTunnelServer<SessionPrincipal>({
    server,
    path: opts.tunnelPath ?? '/tunnel',
    limits: limits.session ?? {},
    ...(limits.maxSessionsPerPrincipal !== undefined
      ? { maxSessionsPerPrincipal: limits.maxSessionsPerPrincipal }
      : {}),
    authenticate: async (req, channel: ChannelName) => {
      // A refusal is logged by onRefused.
      const p: Principal = await issuer.verify(bearerOf(req), { channel, tenantId });
      // The device certificate of the connection, for the token's device (AuthError).
      const device = checkDeviceCertificate(req.socket as TLSSocket, p.deviceId, askCert);
      const ua = req.headers['x-gsa-agent-version'] ?? req.headers['user-agent'];
      // At the token's expiry; a token verify() took within its clock tolerance (already
      // past `exp`) gets the rest of that tolerance, not a close at once.
      const closesAt = !limits.closeOnTokenExpiry
        ? null
        : p.expiresAt > Date.now()
          ? p.expiresAt
          : p.expiresAt + issuer.tolerance * 1000;
      return {
        ...p,
        channel,
        sessionId: randomUUID(),
        agentVersion: typeof ua === 'string' && ua !== '' ? ua.slice(0, 100) : agentFallback,
        closesAt,
        deviceCertificate: device?.thumbprint ?? null,
      };
    },
    // Told to the client on the upgrade, which replaces the session before then.
    closesAt: (p) => p.closesAt,
    onRefused: (r) => {
      const who = r.principal
        ? {
            tenantId: r.principal.tenantId,
            userId: r.principal.userId,
            deviceId: r.principal.deviceId,
          }
        : null;
      const admitted = refusalLog.admit(
        JSON.stringify([r.status, r.reason, r.channel, who ?? r.remote ?? null]),
      );
      if (admitted === null) return;
      elog.warn(
        {
          channel: r.channel,
          status: r.status,
          code: r.code,
          reason: r.reason,
          ...(who ?? {}),
          ...(r.held !== undefined ? { held: r.held } : {}),
          ...(r.error !== undefined ? { error: r.error } : {}),
          remote: r.remote,
          ...(admitted.suppressed > 0 ? { suppressed: admitted.suppressed } : {}),
          ...(admitted.limitReached ? { limitReached: true } : {}),
        },
        'tunnel refused',
      );
    },
    onSession: (session, principal) => {
      // A flow's process found after the flow ended (OPEN said processPending).
      session.on('lateMeta', (id: number, update: MetaUpdate) =>
        egress.lateMeta(principal.sessionId, id, update),
      );
      elog.info(
        {
          channel: principal.channel,
          sessionId: principal.sessionId,
          upn: principal.upn,
          userId: principal.userId,
          deviceId: principal.deviceId,
          ...(principal.deviceCertificate !== null
            ? { deviceCertificate: principal.deviceCertificate }
            : {}),
        },
        'session up',
      );
      const deadline = principal.closesAt;
      if (deadline === null) return;
      expiryTimers.set(
        session,
        timerAt(deadline, () => session.close(CloseCode.AUTH_EXPIRED, 'token expired')),
      );
    },
    onSessionEnd: (session, principal, info) => {
      elog.info(
        {
          channel: principal.channel,
          sessionId: principal.sessionId,
          upn: principal.upn,
          code: info.code,
          reason: info.reason,
          closedBy: info.remote ? 'client' : 'edge',
        },
        'session down',
      );
      expiryTimers.get(session)?.cancel();
      expiryTimers.delete(session);
    },
    onStream: (_session, stream, principal) => {
      const ctx: FlowContext = {
        channel: principal.channel,
        tenantId: principal.tenantId,
        userId: principal.userId,
        upn: principal.upn,
        deviceId: principal.deviceId,
        sessionId: principal.sessionId,
        agentVersion: principal.agentVersion,
      };
      egress.handle(stream, ctx);
    },
  });

  try {
    await listenOn(server, opts.port ?? 0, host, 'edge');
  } catch (err) {
    await tunnel.close({ graceMs: 0 });
    await log.close();
    throw err;
  }
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const url = `${useTls ? 'https' : 'http'}://${urlHost}:${port}`;
  elog.info({ url, tenantId, tls: useTls }, 'edge listening');

  let closing: Promise<void> | null = null;
  const finish = async (): Promise<void> => {
    await egress.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    await log.close();
  };

  const edge: Edge = {
    url,
    host,
    port,
    machineNames: ownNames,
    caPem: tlsMaterial?.ca ?? null,
    deviceCaPem: deviceCa?.pem ?? null,
    deviceCertificates: askCert,
    tenantId,
    tenant: store,
    issuer,
    logs: log,
    get sessions() {
      return tunnel!.sessions;
    },
    get activeFlows() {
      return egress.activeFlows;
    },
    issueToken(req) {
      return issuer.issueToken({
        tenantId: req.tenantId ?? tenantId,
        userId: req.userId ?? 'user-1',
        deviceId: req.deviceId ?? 'device-1',
        channel: req.channel,
        ...(req.upn !== undefined ? { upn: req.upn } : {}),
        ...(req.ttlSeconds !== undefined ? { ttlSeconds: req.ttlSeconds } : {}),
      });
    },
    close({ graceMs } = {}) {
      closing ??= (async () => {
        server.close();
        server.closeIdleConnections();
        await tunnel!.close({ graceMs: graceMs ?? limits.graceMs ?? 5000 });
        await finish();
      })();
      return closing;
    },
    kill() {
      closing ??= (async () => {
        server.close();
        for (const s of sockets) s.destroy();
        await finish();
        await tunnel!.close({ graceMs: 0 });
      })();
      return closing;
    },
  };
  return edge;
}
