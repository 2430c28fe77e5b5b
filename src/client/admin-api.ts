/**
 * The client's local admin API (node:http, JSON, 127.0.0.1 only):
 *
 *   GET  /status     state line, channels up/down, tiles
 *   GET  /flows[?n=<count>][&active=1]
 *                    the Traffic table (active and recently closed flows, oldest first):
 *                    the last n only, active ones only (a bad value is a 400)
 *   GET  /hostnames  hostname acquisition (TUN mode's DNS table; empty, `tun: false`, in proxy mode)
 *   GET  /profile    forwarding profile rules grouped by profile
 *   GET  /health     health checks, `healthy`: 200, or 503 while a check fails
 *   GET  /explain?target=<url|host[:port]|ip[:port]>[&udp=1][&ip=<address>] (udp: 1|0,
 *                    true|false; another value, parameter or a repeated one is a 400)
 *                    how this client would classify that flow now (client/explain.ts)
 *   POST /toggle     {"channel": "internet", "on": false}; 409 + message when locked
 *   POST /vpn        {"on": false, "via": "settings"|"app"}: the user switches the VPN (off:
 *                    nothing forwarded); 409 when the managed configuration forbids it
 *   POST /onboard    {}: the user onboards (a client started without SilentOnboard)
 *   POST /pause      {}: macOS: the user pauses the client for 10 minutes (nothing forwarded;
 *                    resumes by itself); 409 on another platform or with HidePauseButton
 *   POST /resume     {}: ends a pause now; 409 on another platform (as /pause)
 *   /toggle and /vpn take "privileged": true: a privileged user (Windows
 *   RestrictNonPrivilegedUsers=1 refuses a standard user's, the default, with 409)
 *                    (the three answer `changed`: false when that was already so)
 *   POST /shutdown   {} or {"pid": n}: stop the run as Ctrl+C would (`gsa-emu up` only;
 *                    409 elsewhere, and when pid is not this process's)
 *   POST /profile/refresh
 *                    {} (or no body): fetch the forwarding profiles from the edge now (as the next poll
 *                    would); answers `changed`, profileSource, profileLoadedAt,
 *                    classifierGeneration; 502 when the edge does not answer or sends a
 *                    document the client rejects, 409 with profiles from a file (no edge)
 *   GET  /metrics    Prometheus text
 *
 * Every request needs `Authorization: Bearer <token>` (else 401): a random token made per
 * run, written with the address into the 0600 state file (`<state-dir>/client.json`,
 * `netns-<pid>.json`) and its token file (`client.token`, `netns-<pid>.token`), which only
 * the owner can read. The loopback address alone does not keep other local users out.
 * `token: null` (tests) turns this off.
 *
 * Cross-site requests are refused: a request carrying an `Origin` header gets 403, and
 * POST needs `content-type: application/json` (a browser cannot send that cross-site
 * without a CORS preflight, which this API never grants). DNS rebinding too: a Host that
 * is not this API's loopback address (or localhost) gets 403. Idle connections close
 * after 15 s; at most 256 are open at once.
 *
 * `serveFd` serves the same API on a second listening socket: a `gsa-emu netns` run's own
 * 127.0.0.1:port inside its namespace, so that the command it runs can ask it too.
 *
 * Methods: the GET endpoints also answer HEAD (RFC 9110 9.1); another method on them is
 * 405 `Allow: GET, HEAD`, anything but POST on /toggle, /vpn, /onboard, /pause, /resume, /shutdown and
 * /profile/refresh is 405 `Allow: POST`,
 * and any method on a path that is none of these is 404.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server as NetServer,
} from 'node:net';
import { isLoopbackHost } from '../capture/listen.js';
import { ToggleRefusedError, UsageError } from '../errors.js';
import { CHANNELS, type ChannelName } from '../policy/model.js';
import { listenOn } from '../util/listen.js';
import { queryFault } from '../util/query-fault.js';
import { parseTarget } from '../util/target.js';
import { ADMIN_API_HEADER } from './admin-client.js';
import type { HostnameEntry, RunningClient } from './client.js';
import { explainWithForwarder } from './explain.js';

export interface AdminApiOptions {
  /** Default 127.0.0.1 (the admin API never listens elsewhere). */
  host?: string;
  port?: number;
  hostnames?: () => HostnameEntry[];
  /** More Prometheus text for /metrics (TUN capture's gauges and counters). */
  metrics?: () => string;
  /**
   * The bearer token every request must carry. Default (undefined): a new random one
   * (`newAdminToken`), read back from `AdminApi.token`. null: no credential at all, for
   * tests that build a client directly; never for a client other users could reach.
   */
  token?: string | null;
}

export interface AdminApi {
  readonly server: Server;
  readonly address: AddressInfo;
  readonly url: string;
  /** The bearer token requests must carry (`Authorization: Bearer <token>`), or null: none. */
  readonly token: string | null;
  /**
   * What POST /shutdown runs (after its answer is sent): `gsa-emu up` sets its Ctrl+C
   * path. Without one, POST /shutdown is refused (409).
   */
  onShutdown(handler: (() => void) | null): void;
  /**
   * Serves this API on another listening TCP socket as well, given as its descriptor (which
   * it then owns): a `gsa-emu netns` run's 127.0.0.1:port inside the namespace (created there
   * by the addon, `listenTcp4InNetns`). Its requests must name the same address in Host.
   * Closed with the API.
   */
  serveFd(fd: number): Promise<void>;
  close(): Promise<void>;
}

/** A fresh admin API token: 32 random bytes, base64url (43 characters). */
export function newAdminToken(): string {
  return randomBytes(32).toString('base64url');
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Whether an Authorization header carries `token` as a bearer token (RFC 6750: scheme in
 * any case). Compared in constant time (of the hashes: the lengths may differ).
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^bearer +(\S+) *$/i.exec(header ?? '');
  return m !== null && timingSafeEqual(sha256(m[1]!), sha256(token));
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function methodNotAllowed(res: ServerResponse, allow: string, method: string, path: string): void {
  res.setHeader('allow', allow);
  json(res, 405, { error: 'method_not_allowed', message: `${method} ${path}` });
}

/** The paths that answer GET and HEAD (the others are the POST actions). */
const GET_ENDPOINTS: ReadonlySet<string> = new Set([
  '/',
  '/status',
  '/flows',
  '/hostnames',
  '/profile',
  '/health',
  '/explain',
  '/metrics',
]);

/**
 * Whether a Content-Type header names `application/json`: the media type compared
 * case-insensitively (RFC 9110 8.3.1), parameters (`; charset=utf-8`) allowed. Only that
 * type: the CORS-safelisted ones (text/plain, forms), which a browser sends cross-site
 * without a preflight, stay refused.
 */
function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined) return false;
  const semi = header.indexOf(';');
  const type = (semi === -1 ? header : header.slice(0, semi)).trim().toLowerCase();
  return type === 'application/json';
}

/**
 * The 415 of a POST without that header: it names the header, since a POST without a body
 * (`curl -X POST`) sends no Content-Type at all, and every POST needs it.
 */
const NOT_JSON = {
  error: 'unsupported_media_type',
  message: 'send Content-Type: application/json',
} as const;

async function readBody(req: IncomingMessage, max = 16 * 1024): Promise<string | null> {
  let size = 0;
  const parts: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > max) return null;
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts).toString('utf8');
}

/** An idle connection's life, and the most connections open at once. */
const IDLE_MS = 15_000;
const MAX_CONNECTIONS = 256;

/**
 * Whether a request's Host names this API: its listening address, 127.0.0.1, localhost or
 * [::1], with its port when one is given. No Host (HTTP/1.0) is allowed.
 */
export function hostAllowed(host: string | undefined, at: AddressInfo): boolean {
  if (host === undefined) return true;
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(host.toLowerCase());
  if (!m) return false;
  const name = m[1]!;
  if (m[2] !== undefined && Number(m[2]) !== at.port) return false;
  const own = at.family === 'IPv6' ? `[${at.address}]` : at.address;
  return name === own || name === '127.0.0.1' || name === 'localhost' || name === '[::1]';
}

export async function startAdminApi(
  client: RunningClient,
  opts: AdminApiOptions = {},
): Promise<AdminApi> {
  const host = opts.host ?? '127.0.0.1';
  // An address, not a pattern: `127.x.example` is a name that may resolve anywhere.
  if (!isLoopbackHost(host)) {
    throw new UsageError(`the admin API listens on loopback only, not ${host}`);
  }
  const token = opts.token === undefined ? newAdminToken() : opts.token;
  let shutdown: (() => void) | null = null;
  // headersTimeout and requestTimeout are checked every second (node's default is every 30 s:
  // a connection sending a byte now and then was held for up to 35 s, not 5).
  const server = createServer({ connectionsCheckingInterval: 1000 }, (req, res) => {
    // Tells gsa-emu's commands they reached this API, not another program on the port.
    res.setHeader(ADMIN_API_HEADER, 'admin-api');
    void handle(req, res).catch((err: Error) =>
      json(res, 500, { error: 'internal', message: err.message }),
    );
  });
  let address: AddressInfo;
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  // headersTimeout runs from the connection's start (then from each response): one that sends
  // no complete head in 5 s gets a 408. The socket timeout is a backstop for a connection
  // that holds still otherwise, and local programs cannot pile up connections without bound.
  server.timeout = IDLE_MS;
  server.maxConnections = MAX_CONNECTIONS;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.headers.origin !== undefined) {
      json(res, 403, { error: 'forbidden', message: 'cross-origin requests are not allowed' });
      return;
    }
    // DNS rebinding: a page whose name resolves to 127.0.0.1 sends no Origin on a GET of
    // its own origin, but its own name in Host.
    if (!hostAllowed(req.headers.host, address)) {
      json(res, 403, {
        error: 'forbidden',
        message: `the Host header must name the admin API's loopback address, not ${req.headers.host}`,
      });
      return;
    }
    // Other local users (any account can connect to 127.0.0.1) and anything else without
    // the owner's state file: before anything is read, routed or changed.
    if (token !== null && !bearerMatches(req.headers.authorization, token)) {
      res.setHeader('www-authenticate', 'Bearer realm="gsa-emu admin API"');
      json(res, 401, {
        error: 'unauthorized',
        message:
          'send "Authorization: Bearer <token>": the adminToken of the state file of this run (<state-dir>/client.json, or netns-<pid>.json), also in the token file next to it (client.token, netns-<pid>.token)',
      });
      return;
    }
    const [path, query = ''] = (req.url ?? '/').split('?') as [string, string?];
    const method = req.method ?? 'GET';
    if (path === '/toggle') {
      if (method !== 'POST') return methodNotAllowed(res, 'POST', method, path);
      return toggle(req, res);
    }
    if (path === '/shutdown') {
      if (method !== 'POST') return methodNotAllowed(res, 'POST', method, path);
      return stop(req, res);
    }
    if (path === '/profile/refresh') {
      if (method !== 'POST') return methodNotAllowed(res, 'POST', method, path);
      return refresh(req, res);
    }
    if (path === '/vpn' || path === '/onboard') {
      if (method !== 'POST') return methodNotAllowed(res, 'POST', method, path);
      return path === '/vpn' ? vpn(req, res) : onboard(req, res);
    }
    if (path === '/pause' || path === '/resume') {
      if (method !== 'POST') return methodNotAllowed(res, 'POST', method, path);
      return pauseOrResume(req, res, path === '/pause');
    }
    if (!GET_ENDPOINTS.has(path)) {
      return json(res, 404, { error: 'not_found', message: `no such endpoint ${path}` });
    }
    if (method !== 'GET' && method !== 'HEAD') {
      return methodNotAllowed(res, 'GET, HEAD', method, path);
    }
    switch (path) {
      case '/status':
        return json(res, 200, client.status());
      case '/flows': {
        const q = flowsQuery(new URLSearchParams(query));
        if (typeof q === 'string') return json(res, 400, { error: 'bad_request', message: q });
        const all = client.flows.list();
        const picked = q.active ? all.filter((f) => f.status === 'Active') : all;
        return json(res, 200, { flows: q.n === undefined ? picked : picked.slice(-q.n) });
      }
      case '/hostnames':
        // `tun`: whether there is a table at all (proxy capture takes names from the
        // application, not from DNS), so an empty one can say which it is.
        return json(res, 200, {
          hostnames: opts.hostnames ? opts.hostnames() : [],
          tun: opts.hostnames !== undefined,
        });
      case '/profile':
        return json(res, 200, client.profile());
      case '/health': {
        // The status says what the checks do, for scripts and probes (curl -f): 503 while one
        // fails (a warning or a skip is healthy); the body is the same either way.
        const checks = await client.health();
        const healthy = checks.every((c) => c.status !== 'fail');
        return json(res, healthy ? 200 : 503, { healthy, checks });
      }
      case '/explain': {
        const q = new URLSearchParams(query);
        // A typo (upd=1) or a second value would otherwise be a silent TCP answer too.
        const bad = queryProblem(
          q,
          ['target', 'udp', 'ip'],
          'give target=<url | host[:port] | ip[:port]>, udp=1, ip=<address>',
        );
        if (bad !== null) return json(res, 400, { error: 'bad_request', message: bad });
        const text = q.get('target');
        if (!text) {
          return json(res, 400, {
            error: 'bad_request',
            message: 'give ?target=<url | host[:port] | ip[:port]> (and udp=1, ip=<address>)',
          });
        }
        // A value other than these would silently be a TCP answer.
        const udp = q.get('udp') ?? '0';
        if (!['0', '1', 'false', 'true'].includes(udp)) {
          return json(res, 400, {
            error: 'bad_request',
            message: `udp=${udp}: give udp=1 (or true) for UDP, udp=0 (or false, or none) for TCP`,
          });
        }
        try {
          const target = parseTarget(text, { udp: udp === '1' || udp === 'true' });
          return json(res, 200, await explainWithForwarder(client.forwarder, target, q.get('ip')));
        } catch (err) {
          if (err instanceof UsageError) {
            return json(res, 400, { error: 'bad_request', message: err.message });
          }
          throw err;
        }
      }
      case '/metrics': {
        const text = metrics(client) + (opts.metrics?.() ?? '');
        res.writeHead(200, {
          'content-type': 'text/plain; version=0.0.4; charset=utf-8',
          'content-length': Buffer.byteLength(text),
        });
        res.end(text);
        return;
      }
      case '/':
        return json(res, 200, {
          endpoints: [
            '/status',
            '/flows',
            '/hostnames',
            '/profile',
            '/health',
            '/explain?target=',
            '/metrics',
            'POST /toggle',
            'POST /vpn',
            'POST /onboard',
            'POST /pause',
            'POST /resume',
            'POST /shutdown',
            'POST /profile/refresh',
          ],
        });
      default:
        return json(res, 404, { error: 'not_found', message: `no such endpoint ${path}` });
    }
  }

  /**
   * A POST's JSON body as an object (null, arrays and other non-objects as `{}`: the same
   * 400 as a missing field), or undefined once the error is answered (415, 413, 400).
   */
  async function jsonBody(
    req: IncomingMessage,
    res: ServerResponse,
    o: { emptyOk?: boolean } = {},
  ): Promise<Record<string, unknown> | undefined> {
    if (!isJsonContentType(req.headers['content-type'])) {
      json(res, 415, NOT_JSON);
      return undefined;
    }
    const text = await readBody(req);
    if (text === null) {
      json(res, 413, { error: 'too_large', message: 'body too large' });
      return undefined;
    }
    if (o.emptyOk && text.trim() === '') return {};
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      json(res, 400, { error: 'bad_request', message: 'body is not JSON' });
      return undefined;
    }
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : {};
  }

  /**
   * Runs a user action of the client; a refusal by the managed configuration is a 409.
   * Every change swaps the classifier at once (a new generation): `"changed": false` when
   * what it asked for was already so.
   */
  function userAction(res: ServerResponse, act: () => Record<ChannelName, boolean>, extra: object) {
    try {
      const before = client.generation;
      const channels = act();
      return json(res, 200, {
        ...extra,
        changed: client.generation !== before,
        channels,
        generation: client.generation,
      });
    } catch (err) {
      if (err instanceof ToggleRefusedError) {
        return json(res, 409, { error: err.code, message: err.message });
      }
      throw err;
    }
  }

  /** POST /vpn {"on": bool, "via": "settings"|"app"}: the user switches the VPN. */
  async function vpn(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await jsonBody(req, res);
    if (body === undefined) return;
    const via = body.via ?? 'settings';
    const privileged = body.privileged ?? false;
    if (
      typeof body.on !== 'boolean' ||
      (via !== 'settings' && via !== 'app') ||
      typeof privileged !== 'boolean'
    ) {
      return json(res, 400, {
        error: 'bad_request',
        message:
          'expected {"on": true|false, "via": "settings"|"app", "privileged": true|false} (via: default settings; privileged: default false)',
      });
    }
    const on = body.on;
    return userAction(res, () => client.setVpn(on, via, { privileged }), { on, via });
  }

  /** POST /pause {} or /resume {}: macOS: the user pauses the client, or ends the pause. */
  async function pauseOrResume(
    req: IncomingMessage,
    res: ServerResponse,
    pause: boolean,
  ): Promise<void> {
    const body = await jsonBody(req, res);
    if (body === undefined) return;
    return userAction(res, () => (pause ? client.pause() : client.resume()), {
      paused: pause,
      get pausedUntil() {
        return client.tiles.snapshot().pausedUntil;
      },
    });
  }

  /** POST /onboard {}: the user onboards (the client was started without SilentOnboard). */
  async function onboard(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await jsonBody(req, res);
    if (body === undefined) return;
    return userAction(res, () => client.onboard(), { onboarded: true });
  }

  async function toggle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await jsonBody(req, res);
    if (body === undefined) return;
    const channel = body.channel === 'gsa' ? 'm365' : body.channel;
    const privileged = body.privileged ?? false;
    if (
      typeof channel !== 'string' ||
      !CHANNELS.includes(channel as ChannelName) ||
      typeof body.on !== 'boolean' ||
      typeof privileged !== 'boolean'
    ) {
      return json(res, 400, {
        error: 'bad_request',
        message:
          'expected {"channel": "m365"|"private"|"internet", "on": true|false, "privileged": true|false} (privileged: default false)',
      });
    }
    const on = body.on;
    const ch = channel as ChannelName;
    return userAction(res, () => client.toggle(ch, on, { privileged }), { channel, on });
  }

  /**
   * POST /profile/refresh {} (or no body): the client fetches its profiles from the edge now. 200 with
   * `changed` and the profile fields of GET /status; a refresh that could not be made is
   * 409 (no edge: profiles from a file), 502 (no answer, a rejected document) or 503
   * (stopping), with the reason in `error` and the profiles in force unchanged.
   */
  async function refresh(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // No body, or any JSON (nothing is read from it); the content type as for every POST.
    const body = await jsonBody(req, res, { emptyOk: true });
    if (body === undefined) return;
    const { error, ...r } = await client.refreshProfiles();
    if (error !== null) {
      const status = error.reason === 'no_edge' ? 409 : error.reason === 'stopping' ? 503 : 502;
      return json(res, status, { error: error.reason, message: error.message, ...r });
    }
    return json(res, 200, r);
  }

  /** POST /shutdown: `{}` or `{"pid": n}` (refused unless n is this process: a stale address). */
  async function stop(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!isJsonContentType(req.headers['content-type'])) {
      return json(res, 415, NOT_JSON);
    }
    const text = await readBody(req);
    if (text === null) return json(res, 413, { error: 'too_large', message: 'body too large' });
    let body: unknown;
    try {
      body = text.trim() === '' ? {} : JSON.parse(text);
    } catch {
      return json(res, 400, { error: 'bad_request', message: 'body is not JSON' });
    }
    const pid = typeof body === 'object' && body !== null ? (body as { pid?: unknown }).pid : null;
    if (
      typeof body !== 'object' ||
      body === null ||
      Array.isArray(body) ||
      (pid !== undefined && typeof pid !== 'number')
    ) {
      return json(res, 400, { error: 'bad_request', message: 'expected {} or {"pid": <number>}' });
    }
    if (pid !== undefined && pid !== process.pid) {
      return json(res, 409, {
        error: 'pid_mismatch',
        message: `this admin API belongs to pid ${process.pid}, not ${pid}`,
      });
    }
    const run = shutdown;
    if (run === null) {
      return json(res, 409, {
        error: 'not_supported',
        message: 'this client cannot be stopped through its admin API (only "gsa-emu up" can)',
      });
    }
    // The answer first: stopping closes this API and its connections.
    res.once('close', run);
    return json(res, 202, { pid: process.pid, stopping: true });
  }

  address = await listenOn(server, opts.port ?? 0, host, 'admin API');
  /** The other listeners (serveFd): their connections go to `server`. */
  const more: NetServer[] = [];
  let closed = false;
  return {
    server,
    address,
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
    token,
    onShutdown(handler) {
      shutdown = handler;
    },
    serveFd(fd) {
      if (closed) return Promise.reject(new Error('the admin API is closed'));
      // http.Server takes connections from any listener: its timeouts, its connection list
      // (closeAllConnections) and its handler apply alike. The bound is per listener.
      const s = createNetServer((socket) => server.emit('connection', socket));
      s.maxConnections = MAX_CONNECTIONS;
      more.push(s);
      return new Promise<void>((resolve, reject) => {
        // Not a listening socket (a caller's bug). The descriptor is not closed here: Node
        // closes it with the handle when it got that far, and its number may be reused.
        s.once('error', (err) => {
          more.splice(more.indexOf(s), 1);
          reject(err);
        });
        s.listen({ fd }, () => {
          s.removeAllListeners('error');
          s.on('error', () => {});
          resolve();
        });
      });
    },
    close: () =>
      new Promise<void>((r) => {
        closed = true;
        for (const s of more) s.close();
        more.length = 0;
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** Prometheus text: the flow table's counters plus sessions and the classifier. */
export function metrics(client: RunningClient): string {
  const lines: string[] = [client.flows.metrics().trimEnd()];
  lines.push('# HELP gsa_client_session_up Tunnel session state per channel (1 up, 0 down).');
  lines.push('# TYPE gsa_client_session_up gauge');
  for (const c of CHANNELS)
    lines.push(`gsa_client_session_up{channel="${c}"} ${client.tunnels.isUp(c) ? 1 : 0}`);
  lines.push('# HELP gsa_client_channel_enabled Channel forwarding per the tiles (1 on, 0 off).');
  lines.push('# TYPE gsa_client_channel_enabled gauge');
  const st = client.tiles.state();
  for (const c of CHANNELS)
    lines.push(`gsa_client_channel_enabled{channel="${c}"} ${st[c] ? 1 : 0}`);
  lines.push(
    '# HELP gsa_client_classifier_generation The classifier generation: one more at each swap (profile or toggle change).',
  );
  lines.push('# TYPE gsa_client_classifier_generation gauge');
  lines.push(`gsa_client_classifier_generation ${client.generation}`);
  lines.push('# HELP gsa_client_classifier_rules Compiled rule items.');
  lines.push('# TYPE gsa_client_classifier_rules gauge');
  lines.push(`gsa_client_classifier_rules ${client.classifier.size}`);
  return `${lines.join('\n')}\n`;
}

/**
 * What is wrong with a query beyond its values (util/query-fault.ts), as a message: an
 * unknown parameter (`hint` says which to give), or one given more than once.
 */
function queryProblem(q: URLSearchParams, known: readonly string[], hint: string): string | null {
  const f = queryFault(q, known);
  if (f === null) return null;
  return f.repeated
    ? `${f.key} given more than once: give it once`
    : `unknown parameter ${f.key}: ${hint}`;
}

/**
 * GET /flows's query: `n` (a whole number from 1, the last n flows) and `active` (1|0,
 * true|false), each at most once; an error message for a value that would otherwise be
 * silently ignored.
 */
export function flowsQuery(q: URLSearchParams): { n?: number; active: boolean } | string {
  const bad = queryProblem(q, ['n', 'active'], 'give n=<count>, active=1');
  if (bad !== null) return bad;
  const out: { n?: number; active: boolean } = { active: false };
  const n = q.get('n');
  if (n !== null) {
    if (!/^[1-9][0-9]{0,8}$/.test(n)) return `n=${n}: give a whole number of flows from 1`;
    out.n = Number(n);
  }
  const active = q.get('active') ?? '0';
  if (!['0', '1', 'false', 'true'].includes(active)) {
    return `active=${active}: give active=1 (or true) for active flows only, 0 (or false) for all`;
  }
  out.active = active === '1' || active === 'true';
  return out;
}
