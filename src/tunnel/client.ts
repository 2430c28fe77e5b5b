/**
 * The client side of the tunnel: one WebSocket session per channel, kept up with
 * reconnects.
 *
 * API (stable; forward/ and client/ program against this):
 *
 * ```ts
 * const tunnels = new Tunnels({
 *   url: 'wss://127.0.0.1:8443',        // or { m365: '...', private: '...', internet: '...' }
 *   channels: ['m365', 'private', 'internet'],
 *   getToken: async (channel, { fresh }) => jwt, // before every (re)connect; fresh: the edge refused the last one
 *   ca: caPem,                          // trust the edge's local CA (tunnel/tls.ts)
 * });
 * tunnels.start();
 * tunnels.on('up', (channel) => {}).on('down', (channel, info) => {});
 * const s = tunnels.open('internet', meta);  // throws ChannelDownError synchronously if down
 * await s.opened;                            // edge connected to the destination
 * await tunnels.close();
 * ```
 *
 * TunnelClient (one channel) reconnects with exponential backoff and full jitter:
 * delay = random(0, min(maxMs, baseMs * 2^attempt)), base 200 ms, max 10 s; the attempt
 * counter resets once a session is up. A refused upgrade is retried the same way, whatever
 * its status (401, 403, 404, 429, 500, 503): the 'down' event's DownInfo carries the status,
 * the close code the edge sent with it (4401, 4403, 4404, 4419, 4500, 1001) and the edge's
 * words. After a refusal for the token (401 or 403 with 4401, 4403 or 4419; not 429) or a
 * session the edge closed with one of those codes, the next attempt asks getToken for a
 * fresh token (`{ fresh: true }`): an edge restarted with another signing key or for another
 * tenant never accepts the cached one again. Streams in flight when a session dies end with
 * 'reset' (SESSION_CLOSED) and a StreamResetError; they are not replayed. When the edge sends
 * GOAWAY, the client reconnects at once; the old session's streams finish on it. A session
 * the edge closed at its token's expiry (4419) is replaced at once too, with a fresh token.
 * After either, for PLANNED_RECONNECT_MS or until a reconnect attempt fails, `whenBack` lets
 * a new flow wait for the replacement instead of taking its channel's fallback. An edge
 * that goes silent (no FIN, no RST) is given up on when an OPEN gets nothing at all back for
 * `openSilenceMs` (see TunnelClientOptions), not only by keepalive.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { NetConnectOpts } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import WebSocket from 'ws';
import { ChannelDownError } from '../errors.js';
import type { ChannelName } from '../policy/model.js';
import { connectBigReads, connectTlsBigReads } from '../util/big-read.js';
import { packageVersion } from '../util/package.js';
import { type TimerAt, timerAt } from '../util/timer-at.js';
import { CloseCode } from './frame.js';
import { Session, type SessionCloseInfo, type SessionOptions } from './session.js';
import { DEFAULT_SEND_HIGH_WATER, wsTransport } from './transport.js';
import {
  type ChannelTunnels,
  FEATURES_HEADER,
  type OpenMeta,
  SESSION_CLOSES_HEADER,
  type TunnelStream,
} from './types.js';

export interface BackoffOptions {
  /** First retry delay cap (ms). Default 200. */
  baseMs?: number;
  /** Largest delay (ms). Default 10,000. */
  maxMs?: number;
}

export interface TunnelClientOptions {
  /** Edge base URL, `wss://host:port` (or `ws://` for benchmarks); `${path}/${channel}` is appended. */
  url: string;
  channel: ChannelName;
  /**
   * Bearer token for the channel; called before every connect attempt. `fresh`: the edge
   * refused the token of the last attempt (or closed the session for it): do not return it.
   */
  getToken(channel: ChannelName, opts: { fresh: boolean }): Promise<string>;
  /** Default '/tunnel'. */
  path?: string;
  /** CA certificate(s) (PEM) to trust for wss. */
  ca?: string | Buffer | Array<string | Buffer>;
  /**
   * The device certificate and key (PEM) to present on wss (mTLS), asked before every
   * connect attempt, after getToken (client/device-cert.ts enrolls one when needed); null:
   * present none. A rejection fails the attempt ('device certificate unavailable') and is
   * retried with the backoff. Not asked for ws:// URLs.
   */
  clientCertificate?: () => Promise<{ cert: string; key: string } | null>;
  /** TLS server name (SNI) when the URL host is an address. */
  servername?: string;
  /** Local address the WebSocket connection is bound to (TUN host mode: keeps it out of the TUN). */
  localAddress?: string;
  backoff?: BackoffOptions;
  /** WebSocket opening handshake timeout (ms). Default 10,000. */
  handshakeTimeoutMs?: number;
  limits?: SessionOptions;
  /**
   * Use the all-zero WebSocket mask key, which lets ws skip the XOR of every byte. Masking
   * protects browsers' intermediaries from cache poisoning; this client is not a browser and
   * runs over TLS (docs/decisions/tunnel-websocket.md). Default true.
   */
  zeroMask?: boolean;
  /**
   * An OPEN after which nothing at all arrives on the session for this long (ms) closes the
   * session with 4408 (KEEPALIVE_TIMEOUT): the edge went silent. The streams waiting are
   * reset (SESSION_CLOSED) and new flows find the channel down, so the rule's fallback
   * applies at once instead of after keepalive (up to 45 s). A healthy edge answers an OPEN
   * within its connect timeout (10 s), and half way the client PINGs a session still silent.
   * Give the forwarder's open timeout (client.ts does): the flow whose OPEN met the silence
   * gets its fallback too. Default 15,000; 0 disables.
   */
  openSilenceMs?: number;
  /**
   * When the edge says it will close a session at a time (its token's expiry,
   * SESSION_CLOSES_HEADER), open its replacement with a fresh token before then: new streams
   * go to the new session and the old one drains (GOAWAY), so only streams still open at
   * the edge's close are reset, and no flow waits for a reconnect. Default true; false keeps
   * the session until the edge closes it (then the client reconnects at once, whenBack).
   */
  rotateBeforeClose?: boolean;
}

/**
 * A session the edge will close at a time is replaced this long before it: a quarter of
 * the time it has left when it comes up, at most ROTATE_LEAD_MAX_MS.
 */
export const ROTATE_LEAD_FRACTION = 0.25;
export const ROTATE_LEAD_MAX_MS = 60_000;

export type ClientState = 'idle' | 'connecting' | 'up' | 'down' | 'closed';

export interface DownInfo {
  channel: ChannelName;
  reason: string;
  /** WebSocket/session close code, or the `x-gsa-close-code` of a refused upgrade. */
  code?: number;
  /** HTTP status of a refused upgrade (401, 403, 404, 503...). */
  status?: number;
  error?: Error;
  /** Consecutive failed attempts so far. */
  attempt: number;
  /** Delay before the next attempt (ms); -1 when closed. */
  retryInMs: number;
}

/** Close codes of a refusal for the token: the next attempt needs a fresh one. */
const AUTH_CODES: ReadonlySet<number> = new Set([
  CloseCode.AUTH_MISSING,
  CloseCode.AUTH_FORBIDDEN,
  CloseCode.AUTH_EXPIRED,
]);

/**
 * A session the edge ended in the normal course (closed at its token's expiry, 4419, or
 * GOAWAY) is replaced at once; for this long after such an end, flows wait for the new
 * session (whenBack) rather than take their channel's fallback.
 */
export const PLANNED_RECONNECT_MS = 3000;

const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

export class TunnelClient extends EventEmitter {
  readonly channel: ChannelName;
  state: ClientState = 'idle';
  session: Session | null = null;
  lastDown: DownInfo | null = null;
  private readonly opts: TunnelClientOptions;
  private readonly url: string;
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private ws: WebSocket | null = null;
  private readonly old = new Set<Session>();
  /** The next connect asks for a fresh token: the edge refused the last one. */
  private freshToken = false;
  /** performance.now() when the edge ended the session in the normal course (see PLANNED_RECONNECT_MS); null: not so. */
  private plannedAt: number | null = null;
  /** performance.now() of the first OPEN since the session last received anything; 0: none. */
  private openWaitSince = 0;
  /** Half way to openSilenceMs: PING a session that said nothing since the OPEN. */
  private probeTimer: NodeJS.Timeout | null = null;
  /** Replaces the live session before the edge closes it (rotateBeforeClose). */
  private rotateTimer: TimerAt | null = null;
  /** A replacement is being connected while the live session stays up. */
  private rotating = false;
  /** At openSilenceMs: close a session that said nothing since the OPEN. */
  private silenceTimer: NodeJS.Timeout | null = null;

  constructor(options: TunnelClientOptions) {
    super();
    this.opts = options;
    this.channel = options.channel;
    const base = options.url.replace(/\/+$/, '');
    this.url = `${base}${(options.path ?? '/tunnel').replace(/\/+$/, '')}/${options.channel}`;
  }

  /** Starts connecting (idempotent). */
  start(): this {
    if (this.state === 'idle') this.connect();
    return this;
  }

  isUp(): boolean {
    return this.state === 'up' && this.session !== null && this.session.isOpen;
  }

  /** Resolves when the channel is up; rejects with ChannelDownError after timeoutMs. */
  waitUp(timeoutMs = 10_000): Promise<void> {
    if (this.isUp()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onUp = (): void => {
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(() => {
        this.removeListener('up', onUp);
        reject(new ChannelDownError(this.channel, { cause: this.lastDown?.error }));
      }, timeoutMs);
      this.once('up', onUp);
    });
  }

  /**
   * Down because the edge ended the session in the normal course (4419 at token expiry,
   * GOAWAY) at most PLANNED_RECONNECT_MS ago: resolves true once the replacement is up, false
   * when that window (or `maxMs`) ends first. Otherwise (up, or down for another reason)
   * null: nothing to wait for.
   */
  whenBack(maxMs = PLANNED_RECONNECT_MS): Promise<boolean> | null {
    if (this.isUp() || this.plannedAt === null || this.state === 'closed') return null;
    const left = Math.min(maxMs, this.plannedAt + PLANNED_RECONNECT_MS - performance.now());
    if (left <= 0) return null;
    return new Promise((resolve) => {
      const settle = (back: boolean): void => {
        clearTimeout(timer);
        this.removeListener('up', onUp);
        this.removeListener('plannedEnd', onEnd);
        resolve(back);
      };
      const onUp = (): void => settle(true);
      const onEnd = (): void => settle(false);
      const timer = setTimeout(onEnd, left);
      this.once('up', onUp);
      this.once('plannedEnd', onEnd);
    });
  }

  /** The replacement of a session the edge ended in the normal course failed: an outage now. */
  private endPlanned(): void {
    if (this.plannedAt === null) return;
    this.plannedAt = null;
    this.emit('plannedEnd');
  }

  /** Opens a stream on the live session; throws ChannelDownError when the channel is down. */
  open(meta: OpenMeta): TunnelStream {
    const s = this.session;
    if (this.state !== 'up' || s === null || !s.isOpen) {
      throw new ChannelDownError(this.channel, { cause: this.lastDown?.error });
    }
    try {
      const stream = s.open(meta);
      this.watchSilence(s);
      return stream;
    } catch (err) {
      // The session went away under us (its stream ids ran out): as on the edge's GOAWAY,
      // it drains, and new streams go to a fresh session at once.
      if (this.session === s && s.goingAway) {
        this.retire(s, 'session going away: stream ids exhausted', CloseCode.NORMAL);
      }
      throw err;
    }
  }

  /**
   * After an OPEN, the session must receive something (anything) within openSilenceMs, or
   * the edge is taken for silent and the session closes (4408). The wait runs from the first
   * OPEN sent since the last input; half way, a session still silent gets a PING, which a
   * live edge answers at once (an OPEN to a slow destination may take the edge's connect
   * timeout). Two timers per channel, refreshed, not one per OPEN. They are set before the
   * forwarder sets its open timeout of the same length, so they fire first (Node runs timers
   * of one duration in the order they were set, and promise callbacks between them): the
   * flow waiting gets its fallback.
   */
  private watchSilence(s: Session): void {
    const ms = this.opts.openSilenceMs ?? 15_000;
    if (ms <= 0) return;
    // An earlier OPEN still waits for input: its deadline comes first.
    if (this.openWaitSince !== 0 && s.lastInput < this.openWaitSince) return;
    this.openWaitSince = performance.now();
    if (this.silenceTimer === null || this.probeTimer === null) {
      this.probeTimer = setTimeout(() => this.onQuiet(), ms / 2);
      this.probeTimer.unref();
      this.silenceTimer = setTimeout(() => this.onSilence(ms), ms);
      this.silenceTimer.unref();
    } else {
      this.probeTimer.refresh();
      this.silenceTimer.refresh();
    }
  }

  /** Nothing since the OPEN half way to the deadline: ask the edge (PING). */
  private onQuiet(): void {
    const s = this.session;
    if (s !== null && this.openWaitSince !== 0 && s.lastInput < this.openWaitSince) s.probe();
  }

  private onSilence(ms: number): void {
    const since = this.openWaitSince;
    this.openWaitSince = 0;
    const s = this.session;
    if (s === null || since === 0 || s.lastInput >= since) return;
    s.close(CloseCode.KEEPALIVE_TIMEOUT, `nothing received within ${ms} ms of an OPEN`);
  }

  private stopSilenceWatch(): void {
    if (this.probeTimer !== null) clearTimeout(this.probeTimer);
    if (this.silenceTimer !== null) clearTimeout(this.silenceTimer);
    this.probeTimer = this.silenceTimer = null;
    this.openWaitSince = 0;
  }

  /** The live session goes away: it drains its streams, new ones go to a fresh session. */
  private retire(session: Session, reason: string, code: number): void {
    this.stopSilenceWatch();
    this.stopRotation();
    this.session = null;
    this.old.add(session);
    this.plannedAt = performance.now();
    this.down({ reason, code }, 0);
  }

  /** Closes the session (streams are reset) and stops reconnecting. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.endPlanned();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.stopSilenceWatch();
    this.stopRotation();
    const waits: Promise<void>[] = [];
    const all = [...this.old];
    if (this.session) all.push(this.session);
    for (const s of all) {
      if (!s.closed) waits.push(new Promise((r) => s.once('close', () => r())));
      s.close(CloseCode.NORMAL, 'client closing');
    }
    this.session = null;
    const ws = this.ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      waits.push(new Promise((r) => ws.once('close', () => r())));
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    }
    // A closing handshake the server never answers must not hold us: ws gives up after 30 s,
    // we after 2 s.
    let t: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(waits), new Promise<void>((r) => (t = setTimeout(r, 2000)))]);
    clearTimeout(t);
    if (ws && ws.readyState !== WebSocket.CLOSED) ws.terminate();
  }

  /**
   * Connects a session. `rotate`: the replacement of the live session, which stays up
   * meanwhile; a failure leaves it in place (rotationFailed) instead of taking the channel
   * down.
   */
  private async connect(rotate = false): Promise<void> {
    if (!rotate) this.timer = null;
    if (this.state === 'closed') return;
    if (!rotate) this.state = 'connecting';
    let token: string;
    // A replacement needs a token that outlives the one the edge closes the session for.
    const fresh = rotate || this.freshToken;
    if (!rotate) this.freshToken = false;
    try {
      token = await this.opts.getToken(this.channel, { fresh });
    } catch (e) {
      if (rotate) return this.rotationFailed('token unavailable', asError(e));
      this.freshToken ||= fresh;
      this.endPlanned();
      this.down({ reason: 'token unavailable', error: asError(e) });
      return;
    }
    if ((this.state as ClientState) === 'closed') return;
    const o = this.opts;
    let clientCert: { cert: string; key: string } | null = null;
    if (o.clientCertificate && /^(wss|https):/i.test(this.url)) {
      try {
        clientCert = await o.clientCertificate();
      } catch (e) {
        if (rotate) return this.rotationFailed('device certificate unavailable', asError(e));
        this.endPlanned();
        this.down({ reason: 'device certificate unavailable', error: asError(e) });
        return;
      }
      if ((this.state as ClientState) === 'closed') return;
    }
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url, {
        headers: { authorization: `Bearer ${token}`, 'x-gsa-agent-version': packageVersion() },
        perMessageDeflate: false,
        handshakeTimeout: o.handshakeTimeoutMs ?? 10_000,
        ...(o.ca !== undefined ? { ca: o.ca } : {}),
        ...(clientCert !== null ? { cert: clientCert.cert, key: clientCert.key } : {}),
        ...(o.servername !== undefined ? { servername: o.servername } : {}),
        ...(o.localAddress !== undefined ? { localAddress: o.localAddress } : {}),
        ...(o.zeroMask !== false ? { generateMask: zeroMask } : {}),
        maxPayload: 64 * 1024 * 1024,
        // Reads into reused buffers (util/big-read.ts): plain ws up to 256 KiB, so with the
        // raw receiver a DATA frame reaches the application in one piece and one write; wss
        // one TLS record at a time.
        createConnection: /^(wss|https):/i.test(this.url)
          ? (opts: object) => connectTlsBigReads(opts as ConnectionOptions)
          : (opts: object) => connectBigReads(opts as NetConnectOpts),
      });
    } catch (e) {
      if (rotate) return this.rotationFailed('bad edge URL', asError(e));
      this.endPlanned();
      this.down({ reason: 'bad edge URL', error: asError(e) });
      return;
    }
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    let status: number | undefined;
    let refusedCode: number | undefined;
    /** The first line of a refusal's body: the edge's words for why. */
    let refusedWhy = '';
    let lastError: Error | undefined;
    ws.on('unexpected-response', (_req, res) => {
      status = res.statusCode;
      const h = Number(res.headers['x-gsa-close-code']);
      if (Number.isInteger(h) && h > 0) refusedCode = h;
      // The body is short (the edge's refusals close the connection after it); wait for it
      // a little, then give up on the handshake.
      let body = '';
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        refusedWhy = firstLine(body);
        ws.terminate();
      };
      const timer = setTimeout(finish, 1000);
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body.length < 1024) body += c;
        if (body.includes('\n')) finish();
      });
      res.once('end', finish);
      res.once('error', finish);
      res.once('close', finish);
    });
    ws.on('error', (e: Error) => {
      lastError = e;
    });
    // Optional frames the edge understands (an older edge names none: no META to it).
    let features: string[] = [];
    /** In how many ms the edge will close the session (SESSION_CLOSES_HEADER), or null. */
    let closesIn: number | null = null;
    let upgradedAt = 0;
    ws.once('upgrade', (res: IncomingMessage) => {
      upgradedAt = Date.now();
      features = String(res.headers[FEATURES_HEADER] ?? '')
        .split(',')
        .map((f) => f.trim());
      const h = Number(res.headers[SESSION_CLOSES_HEADER]);
      if (res.headers[SESSION_CLOSES_HEADER] !== undefined && Number.isFinite(h) && h >= 0) {
        closesIn = h;
      }
    });
    const onEarlyClose = (code: number): void => {
      if (this.ws === ws) this.ws = null;
      if (rotate) {
        const why =
          status !== undefined ? `edge refused the tunnel: HTTP ${status}` : `closed ${code}`;
        this.rotationFailed(lastError?.message ?? why, lastError);
        return;
      }
      // Refused for the token (not 429, "too many sessions", which also carries 4403).
      if (
        (status === 401 || status === 403) &&
        (refusedCode === undefined || AUTH_CODES.has(refusedCode))
      )
        this.freshToken = true;
      this.endPlanned();
      this.down({
        reason:
          status !== undefined
            ? `edge refused the tunnel: HTTP ${status}${refusedCode !== undefined ? `, close code ${refusedCode}` : ''}${refusedWhy ? `: ${refusedWhy}` : ''}`
            : (lastError?.message ?? `closed ${code}`),
        code: refusedCode ?? code,
        ...(status !== undefined ? { status } : {}),
        ...(lastError ? { error: lastError } : {}),
      });
    };
    ws.once('close', onEarlyClose);
    ws.once('open', () => {
      ws.removeListener('close', onEarlyClose);
      if (this.ws === ws) this.ws = null;
      if (this.state === 'closed') {
        ws.close(CloseCode.NORMAL, 'client closing');
        return;
      }
      const limits = o.limits ?? {};
      const session = new Session(
        wsTransport(ws, limits.sendHighWater ?? DEFAULT_SEND_HIGH_WATER),
        'client',
        { ...limits, peerAcceptsMeta: features.includes('meta') },
      );
      // A session up already (a replacement, or a reconnect that crossed one): it drains.
      const prev = this.session;
      const wasUp = this.state === 'up';
      if (rotate) this.rotating = false;
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.stopSilenceWatch();
      this.stopRotation();
      this.session = session;
      this.state = 'up';
      this.attempt = 0;
      this.plannedAt = null;
      session.once('goaway', () => {
        if (this.session !== session) return;
        this.retire(
          session,
          'edge sent GOAWAY',
          session.remoteGoAway?.code ?? CloseCode.GOING_AWAY,
        );
      });
      session.once('close', (info: SessionCloseInfo) => {
        this.old.delete(session);
        if (this.session !== session) return;
        this.stopSilenceWatch();
        this.stopRotation();
        this.session = null;
        if (AUTH_CODES.has(info.code)) this.freshToken = true;
        // Closed at its token's expiry: the session did its time; a fresh token replaces it
        // at once (no backoff), and flows meanwhile wait for it (whenBack).
        const expired = info.code === CloseCode.AUTH_EXPIRED;
        if (expired) this.plannedAt = performance.now();
        this.down(
          {
            reason: `session closed: ${info.code}${info.reason ? ` ${info.reason}` : ''}`,
            code: info.code,
            ...(info.error ? { error: info.error } : {}),
          },
          expired ? 0 : undefined,
        );
      });
      if (closesIn !== null) this.scheduleRotation(session, upgradedAt + closesIn);
      if (prev !== null && prev !== session) {
        this.old.add(prev);
        prev.goAway(CloseCode.NORMAL, 'replaced before the edge closes it');
      }
      if (wasUp) this.emit('rotated', session);
      else this.emit('up', session);
    });
  }

  /**
   * The edge will close `session` at `closesAt` (ms since the epoch, this clock): its
   * replacement is connected ROTATE_LEAD_FRACTION of the time left before then (at most
   * ROTATE_LEAD_MAX_MS).
   */
  private scheduleRotation(session: Session, closesAt: number): void {
    if (this.opts.rotateBeforeClose === false) return;
    const left = closesAt - Date.now();
    if (!(left > 0)) return;
    const at = closesAt - Math.min(ROTATE_LEAD_MAX_MS, left * ROTATE_LEAD_FRACTION);
    this.rotateTimer = timerAt(at, () => {
      this.rotateTimer = null;
      this.rotate(session);
    });
  }

  private stopRotation(): void {
    this.rotateTimer?.cancel();
    this.rotateTimer = null;
  }

  /** Connects the replacement of `session`, which stays the live one until it is up. */
  private rotate(session: Session): void {
    if (this.state !== 'up' || this.session !== session || this.rotating) return;
    this.rotating = true;
    void this.connect(true);
  }

  /** The replacement did not come up: the live session stays (the edge closes it in time). */
  private rotationFailed(reason: string, error?: Error): void {
    this.rotating = false;
    this.emit('rotateFailed', { channel: this.channel, reason, ...(error ? { error } : {}) });
  }

  private down(
    info: Omit<DownInfo, 'channel' | 'attempt' | 'retryInMs'>,
    delayOverride?: number,
  ): void {
    if (this.state === 'closed') return;
    this.state = 'down';
    const base = this.opts.backoff?.baseMs ?? 200;
    const max = this.opts.backoff?.maxMs ?? 10_000;
    const cap = Math.min(max, base * 2 ** Math.min(this.attempt, 30));
    const delay = delayOverride ?? Math.floor(Math.random() * cap);
    this.attempt++;
    const full: DownInfo = {
      channel: this.channel,
      ...info,
      attempt: this.attempt,
      retryInMs: delay,
    };
    this.lastDown = full;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.connect(), delay);
    this.emit('down', full);
  }
}

/** The first line of a refusal body, printable characters only, at most 200 of them. */
function firstLine(body: string): string {
  const line = body.split('\n', 1)[0] ?? '';
  return line
    .replace(/[\x00-\x1f\x7f]/g, '')
    .trim()
    .slice(0, 200);
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

export interface TunnelsOptions extends Omit<TunnelClientOptions, 'channel' | 'url'> {
  /** One edge URL for every channel, or one per channel. */
  url: string | Partial<Record<ChannelName, string>>;
  /** Channels to keep up. Default: those with a URL (all three for a single URL). */
  channels?: ChannelName[];
}

/** One TunnelClient per channel; implements ChannelTunnels for forward/. */
export class Tunnels extends EventEmitter implements ChannelTunnels {
  readonly clients = new Map<ChannelName, TunnelClient>();

  constructor(options: TunnelsOptions) {
    super();
    const all: ChannelName[] = ['m365', 'private', 'internet'];
    const urls = options.url;
    const channels =
      options.channels ??
      (typeof urls === 'string' ? all : all.filter((c) => urls[c] !== undefined));
    for (const channel of channels) {
      const url = typeof urls === 'string' ? urls : urls[channel];
      if (url === undefined)
        throw new ChannelDownError(channel, { cause: new Error('no edge URL') });
      const c = new TunnelClient({ ...options, url, channel });
      c.on('up', (s: Session) => this.emit('up', channel, s));
      c.on('down', (info: DownInfo) => this.emit('down', channel, info));
      c.on('rotated', (s: Session) => this.emit('rotated', channel, s));
      c.on('rotateFailed', (info: { reason: string; error?: Error }) =>
        this.emit('rotateFailed', channel, info),
      );
      this.clients.set(channel, c);
    }
  }

  start(): this {
    for (const c of this.clients.values()) c.start();
    return this;
  }

  client(channel: ChannelName): TunnelClient | undefined {
    return this.clients.get(channel);
  }

  open(channel: ChannelName, meta: OpenMeta): TunnelStream {
    const c = this.clients.get(channel);
    if (c === undefined)
      throw new ChannelDownError(channel, { cause: new Error('channel not configured') });
    return c.open(meta);
  }

  isUp(channel: ChannelName): boolean {
    return this.clients.get(channel)?.isUp() ?? false;
  }

  /** TunnelClient.whenBack of the channel's client (null: not configured, or nothing to wait for). */
  whenBack(channel: ChannelName, maxMs?: number): Promise<boolean> | null {
    return this.clients.get(channel)?.whenBack(maxMs) ?? null;
  }

  /** Resolves when every configured channel is up. */
  async waitUp(timeoutMs = 10_000): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.waitUp(timeoutMs)));
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.close()));
  }
}
