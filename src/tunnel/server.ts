/**
 * The edge side of the tunnel: accepts one WebSocket per client channel and runs a Session
 * on it.
 *
 * API (stable; the edge programs against this):
 *
 * ```ts
 * const tunnel = createTunnelServer({
 *   server,                       // an http.Server or https.Server (we add an 'upgrade' listener)
 *   path: '/tunnel',              // URLs are `${path}/<channel>`, channel = m365 | private | internet
 *   authenticate: async (req, channel) => principal,   // throw AuthError to refuse
 *   onStream: (session, stream, principal) => {        // one call per OPEN
 *     // connect to stream.meta.host|ip : port, then stream.accept() and pipe both ways,
 *     // or stream.reset(ResetCode.CONNECT_FAILED, 'ECONNREFUSED')
 *   },
 *   onSession: (session, principal) => {},            // optional
 *   onSessionEnd: (session, principal, info) => {},   // optional; info: SessionCloseInfo
 *   onRefused: (refusal) => {},                       // optional; once per refused upgrade
 *   limits: { initialWindow, maxConcurrentStreams, keepaliveInterval, ... },  // SessionOptions
 *   maxSessionsPerPrincipal: 16,                      // optional; see below
 * });
 * tunnel.sessions;            // ReadonlySet<Session> currently open
 * await tunnel.close();       // GOAWAY to all, wait up to graceMs, then close the rest
 * ```
 *
 * Without `server`, call `tunnel.handleUpgrade(req, socket, head)` from your own 'upgrade'
 * listener (return value false: not a tunnel URL, the socket is untouched).
 *
 * Authentication happens BEFORE the upgrade completes: a refused client gets an HTTP
 * response, never a WebSocket. Status and the equivalent close code (header
 * `x-gsa-close-code`, also used by TunnelClient to report why):
 *   AuthError reason `missing` | `malformed` | `device-certificate-missing` -> 401, 4401
 *   AuthError reason `expired`                                 -> 401, 4419
 *   AuthError reason `forged` | `wrong-audience` | `wrong-tenant` | other -> 403, 4403
 *     (other: `device-certificate-untrusted` | `-expired` | `-mismatch`; their message
 *     follows the reason in the body)
 *   unknown channel or path                                    -> 404, 4404
 *   `close()` was called (an upgrade handed to handleUpgrade)  -> 503, 1001
 *   authenticate threw something else                          -> 500, 4500
 *   the principal already holds `maxSessionsPerPrincipal` sessions -> 429, 4403
 * The session cap counts the sessions of one tenant + user + device + channel from the
 * moment `authenticate` admits the upgrade until the session's 'close' (a refused or failed
 * upgrade holds nothing once its socket closes). It bounds what one token can make the
 * edge hold: each session may carry `maxConcurrentStreams` streams. No close code means
 * "too many"; 4403 (the generic "refused" code) goes with it, and the 429 tells it apart
 * from an auth refusal.
 * Every refusal carries a code, so TunnelClient reports why (not 1006, "closed abnormally").
 * It retries every refusal with its backoff (at most 10 s): a 503 (another edge, or this one
 * restarted) as well as 4401, 4403 and 4404, which a retry fixes only once the token or the
 * configuration is fixed.
 * `onRefused` hears of every refusal once (status, close code, a short reason, the principal
 * when `authenticate` admitted it): the edge logs them from there.
 * A session the edge wants to end for auth later (token expiry) closes with the same codes:
 * `session.close(CloseCode.AUTH_EXPIRED, 'token expired')`.
 */
import type { Server as HttpServer, IncomingMessage } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { AuthError } from '../errors.js';
import type { ChannelName } from '../policy/model.js';
import { CloseCode } from './frame.js';
import { Session, type SessionCloseInfo, type SessionOptions } from './session.js';
import type { Stream } from './stream.js';
import { DEFAULT_SEND_HIGH_WATER, wsTransport } from './transport.js';
import {
  FEATURES_HEADER,
  type InboundTunnelStream,
  SESSION_CLOSES_HEADER,
  TUNNEL_FEATURES,
} from './types.js';

/** Who is on the other end of a session: whatever `authenticate` returned. */
export interface Principal {
  tenantId: string;
  userId: string;
  deviceId?: string;
  channel: ChannelName;
  [key: string]: unknown;
}

export interface TunnelServerOptions<P extends Principal = Principal> {
  server?: HttpServer | HttpsServer;
  /** URL prefix; channels live at `${path}/<channel>`. Default '/tunnel'. */
  path?: string;
  authenticate(req: IncomingMessage, channel: ChannelName): Promise<P>;
  onStream(session: Session, stream: InboundTunnelStream, principal: P): void;
  onSession?(session: Session, principal: P): void;
  onSessionEnd?(session: Session, principal: P, info: SessionCloseInfo): void;
  /** Every refused upgrade, once, after its response went out (a throw is ignored). */
  onRefused?(refusal: TunnelRefusal<P>): void;
  limits?: SessionOptions;
  /** Largest WebSocket message accepted (bytes). Default 64 MiB. */
  maxPayload?: number;
  /**
   * Sessions one principal (tenant + user + device + channel) may hold at once; one more
   * is refused before the upgrade with HTTP 429 and close code 4403. A client holds one per
   * channel (two while a reconnect overlaps). Default 16; Infinity = no cap.
   */
  maxSessionsPerPrincipal?: number;
  /**
   * When the edge will close the session of `principal` (ms since the epoch: the expiry of
   * its token, with closeOnTokenExpiry), or null: the time left is sent on the upgrade
   * response (SESSION_CLOSES_HEADER) so that the client replaces the session in time.
   * Closing it then is the caller's (onSession).
   */
  closesAt?: (principal: P) => number | null;
}

/** A refused upgrade, as `onRefused` hears of it. */
export interface TunnelRefusal<P extends Principal = Principal> {
  /** The HTTP status sent (401, 403, 404, 429, 500, 503). */
  status: number;
  /** The close code sent in `x-gsa-close-code`. */
  code: number;
  /**
   * Why, as a short token: an AuthError reason (`missing`, `expired`, `wrong-audience`...),
   * `too-many-sessions`, `unknown-channel`, `unknown-path`, `shutting-down` or `internal`.
   */
  reason: string;
  /** The channel the URL names, or null. */
  channel: ChannelName | null;
  /** Who asked, when `authenticate` admitted them (a 429). */
  principal?: P;
  /** Sessions the principal held (a 429). */
  held?: number;
  /** The message of what `authenticate` threw, when not an AuthError (a 500). */
  error?: string;
  /** The peer's address. */
  remote: string | undefined;
}

export interface TunnelServer {
  readonly sessions: ReadonlySet<Session>;
  /** Handles an 'upgrade'; false when the URL is not a tunnel URL (socket left alone). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** GOAWAY to every session; those still open after graceMs (default 5,000) are closed. */
  close(options?: { graceMs?: number }): Promise<void>;
}

const CHANNELS = new Set<string>(['m365', 'private', 'internet']);

/** Default of `maxSessionsPerPrincipal`. */
const DEFAULT_MAX_SESSIONS_PER_PRINCIPAL = 16;

/** The session-cap key: tenant, user, device (when the token names one) and channel. */
function principalKey(p: Principal): string {
  return JSON.stringify([p.tenantId, p.userId, p.deviceId ?? null, p.channel]);
}

export function authStatus(err: unknown): { status: number; closeCode: number; reason: string } {
  if (!(err instanceof AuthError))
    return { status: 500, closeCode: CloseCode.INTERNAL, reason: 'internal' };
  switch (err.reason) {
    case 'missing':
    case 'malformed':
    case 'device-certificate-missing':
      return { status: 401, closeCode: CloseCode.AUTH_MISSING, reason: err.reason };
    case 'expired':
      return { status: 401, closeCode: CloseCode.AUTH_EXPIRED, reason: err.reason };
    default:
      return { status: 403, closeCode: CloseCode.AUTH_FORBIDDEN, reason: err.reason };
  }
}

function asMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function refuse(
  socket: Duplex,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  if (socket.destroyed) return;
  const body = `${text}\n`;
  const lines = [
    `HTTP/1.1 ${status} ${statusText(status)}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

function statusText(s: number): string {
  return s === 401
    ? 'Unauthorized'
    : s === 403
      ? 'Forbidden'
      : s === 404
        ? 'Not Found'
        : s === 429
          ? 'Too Many Requests'
          : s === 503
            ? 'Service Unavailable'
            : 'Internal Server Error';
}

export function createTunnelServer<P extends Principal = Principal>(
  options: TunnelServerOptions<P>,
): TunnelServer {
  const prefix = (options.path ?? '/tunnel').replace(/\/+$/, '');
  const limits = options.limits ?? {};
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: options.maxPayload ?? 64 * 1024 * 1024,
    clientTracking: false,
  });
  const sessions = new Set<Session>();
  const maxPerPrincipal = options.maxSessionsPerPrincipal ?? DEFAULT_MAX_SESSIONS_PER_PRINCIPAL;
  if (
    !(maxPerPrincipal >= 1) ||
    (Number.isFinite(maxPerPrincipal) && !Number.isInteger(maxPerPrincipal))
  )
    throw new RangeError(
      `maxSessionsPerPrincipal must be an integer >= 1 or Infinity: ${maxPerPrincipal}`,
    );
  /** Sessions (and upgrades in progress) per principalKey; a key at 0 is deleted. */
  const perPrincipal = new Map<string, number>();
  let closing = false;
  // Frames this edge understands beyond the first version (docs/protocol.md, Connection).
  /** Upgrades admitted by `authenticate` whose session the edge will close at a time. */
  const closesAt = new WeakMap<IncomingMessage, number>();
  wss.on('headers', (headers: string[], req: IncomingMessage) => {
    headers.push(`${FEATURES_HEADER}: ${TUNNEL_FEATURES.join(',')}`);
    const at = closesAt.get(req);
    if (at !== undefined) headers.push(`${SESSION_CLOSES_HEADER}: ${Math.max(0, at - Date.now())}`);
  });

  /** Sends the refusal and tells `onRefused`. */
  function refused(
    socket: Duplex,
    req: IncomingMessage,
    text: string,
    r: Omit<TunnelRefusal<P>, 'remote'>,
    headers: Record<string, string> = {},
  ): void {
    refuse(socket, r.status, text, { 'x-gsa-close-code': String(r.code), ...headers });
    try {
      options.onRefused?.({ ...r, remote: req.socket.remoteAddress });
    } catch {
      // A logger's failure is not the client's.
    }
  }

  function channelOf(url: string | undefined): ChannelName | null {
    if (!url) return null;
    const q = url.indexOf('?');
    const p = q < 0 ? url : url.slice(0, q);
    if (!p.startsWith(`${prefix}/`)) return null;
    const ch = p.slice(prefix.length + 1);
    return CHANNELS.has(ch) ? (ch as ChannelName) : null;
  }

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = req.url ?? '';
    if (!url.startsWith(`${prefix}/`)) return false;
    socket.on('error', () => socket.destroy());
    const channel = channelOf(url);
    if (channel === null) {
      refused(socket, req, 'unknown tunnel channel (not m365, private or internet)', {
        status: 404,
        code: CloseCode.NOT_FOUND,
        reason: 'unknown-channel',
        channel: null,
      });
      return true;
    }
    if (closing) {
      refused(socket, req, 'edge shutting down', {
        status: 503,
        code: CloseCode.GOING_AWAY,
        reason: 'shutting-down',
        channel,
      });
      return true;
    }
    options.authenticate(req, channel).then(
      (principal) => {
        if (socket.destroyed) return;
        const key = principalKey(principal);
        const held = perPrincipal.get(key) ?? 0;
        if (held >= maxPerPrincipal) {
          refused(socket, req, `too many tunnel sessions for this principal (${held})`, {
            status: 429,
            code: CloseCode.AUTH_FORBIDDEN,
            reason: 'too-many-sessions',
            channel,
            principal,
            held,
          });
          return;
        }
        // Taken now, before the upgrade, so concurrent upgrades cannot all pass the check;
        // given back once, by the session's 'close' or by a failed upgrade's socket.
        perPrincipal.set(key, held + 1);
        let released = false;
        const release = (): void => {
          if (released) return;
          released = true;
          const n = (perPrincipal.get(key) ?? 1) - 1;
          if (n > 0) perPrincipal.set(key, n);
          else perPrincipal.delete(key);
        };
        let upgraded = false;
        const at = options.closesAt?.(principal) ?? null;
        if (at !== null && Number.isFinite(at)) closesAt.set(req, Math.round(at));
        wss.handleUpgrade(req, socket, head, (ws) => {
          upgraded = true;
          ws.binaryType = 'nodebuffer';
          const transport = wsTransport(ws, limits.sendHighWater ?? DEFAULT_SEND_HIGH_WATER);
          const session = new Session(transport, 'server', limits);
          session.context = principal;
          sessions.add(session);
          session.on('stream', (s: Stream) => {
            try {
              options.onStream(session, s, principal);
            } catch (e) {
              s.reset(6, e instanceof Error ? e.message : 'onStream failed');
            }
          });
          session.once('close', (info: SessionCloseInfo) => {
            sessions.delete(session);
            release();
            options.onSessionEnd?.(session, principal, info);
          });
          options.onSession?.(session, principal);
          if (closing) session.goAway(CloseCode.GOING_AWAY, 'edge shutting down');
        });
        // ws refused the handshake (bad headers, socket gone, server closed) without calling
        // back; it ends the socket. (It calls back synchronously when it accepts.)
        if (!upgraded) {
          if (socket.destroyed) release();
          else socket.once('close', release);
        }
      },
      (err: unknown) => {
        const a = authStatus(err);
        const headers: Record<string, string> = {};
        if (a.status === 401)
          headers['WWW-Authenticate'] =
            `Bearer error="invalid_token", error_description="${a.reason}"`;
        refused(
          socket,
          req,
          // A device certificate refusal says what is wrong with it (which device, which
          // CA); a token's reason alone says enough.
          `tunnel authentication failed: ${a.reason}${err instanceof AuthError && a.reason.startsWith('device-certificate') ? ` (${err.message})` : ''}`,
          {
            status: a.status,
            code: a.closeCode,
            reason: a.reason,
            channel,
            ...(err instanceof AuthError ? {} : { error: asMessage(err) }),
          },
          headers,
        );
      },
    );
    return true;
  }

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (!handleUpgrade(req, socket, head)) {
      // Leave other upgrade listeners a chance; if there are none, refuse.
      if (options.server && options.server.listenerCount('upgrade') === 1) {
        socket.on('error', () => socket.destroy());
        refused(socket, req, `no tunnel at this path (tunnels are at ${prefix}/<channel>)`, {
          status: 404,
          code: CloseCode.NOT_FOUND,
          reason: 'unknown-path',
          channel: null,
        });
      }
    }
  };
  options.server?.on('upgrade', onUpgrade);

  return {
    sessions,
    handleUpgrade,
    async close({ graceMs = 5000 } = {}) {
      closing = true;
      options.server?.removeListener('upgrade', onUpgrade);
      const open = [...sessions];
      if (open.length > 0) {
        const done = Promise.all(
          open.map((s) =>
            s.closed ? undefined : new Promise<void>((r) => s.once('close', () => r())),
          ),
        );
        for (const s of open) s.goAway(CloseCode.GOING_AWAY, 'edge shutting down');
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([done, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
        clearTimeout(timer);
        for (const s of open) s.close(CloseCode.GOING_AWAY, 'edge shut down');
        await done;
      }
      wss.close();
    },
  };
}
