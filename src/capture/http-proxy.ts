/**
 * HTTP proxy capture: `CONNECT host:port` tunnels and absolute-URI plain HTTP proxying
 * (`GET http://host/path`), on node:http. Like the SOCKS server, it never decides policy:
 * each request becomes one `forwarder.connectTcp()`.
 *
 * Statuses: 403 blocked (a short text body with the reason and the rule: the one that
 * blocked, or for a block by the edge the one that forwarded the flow), 502 the destination
 * could not be reached or refused, or its response could not be read (a head over
 * `maxResponseHeaderSize`, default 256 KiB), 504 timeout, 400 bad request (origin-form
 * other than /proxy.pac, https:// without CONNECT, unparsable authority), 431 headers over
 * `maxHeaderSize` (default 16 KiB), 408 a request body that stopped coming (bodyTimeoutMs),
 * 400 at once for a request body it cannot parse (a bad chunk size), or an empty host,
 * 407 when credentials are required (Basic), 501 for a WebSocket upgrade through the plain
 * proxy (other upgrades, such as h2c, are ignored).
 *
 * Plain HTTP: every proxied request gets its own upstream flow (one flow record, one
 * connection id), closed after its response (the request goes with `Connection:
 * keep-alive`, so that an origin answering early reads the rest of the body rather than
 * resetting the connection); the response is streamed back with backpressure. The
 * client's connection to the proxy stays keep-alive (node:http handles that side), so
 * keep-alive is correct without pooling upstream connections across requests, which could
 * mix flows of different decisions (docs/decisions/capture-http-proxy.md). Both messages
 * get `Via` (RFC 9110 7.6.3). The response is parsed leniently (a bare LF ends a line, RFC
 * 9112 2.2), which cannot desynchronise anything on a connection that carries one
 * response. A response the upstream cuts short is a TCP reset to the client, never a clean
 * end it could take for the whole. A client that closes (or half-closes) during a silent
 * response is given up after `halfCloseTimeoutMs` without a byte either way; its FIN is not
 * passed upstream. A request body that stops coming (no byte from the client for
 * `bodyTimeoutMs` while it is incomplete, nginx's client_body_timeout) gets `408 Request
 * Timeout`, or once a response is under way a closed connection; its upstream is released.
 *
 * Early final responses (RFC 9112 9.6, RFC 9110 15): a response that arrives while the
 * request body is still being sent is forwarded whole, with `Connection: close`; the body
 * stops going upstream once the upstream says it closes, its response ended or a write to
 * it failed. A failed write does not drop a response already received (the upstream socket
 * reads on); without a response head within 500 ms it is a 502. The client's connection is
 * closed lingering: FIN after the response, the rest of its body read and dropped until it
 * closes (2 s, 64 MiB at most), so that no reset costs it the response; a request or
 * CONNECT it sends after is neither forwarded nor answered.
 *
 * Interim and trailing fields (RFC 9110 15.2, 6.5): a `102 Processing` and a `103 Early
 * Hints` from the upstream are forwarded before the final response (other 1xx have no
 * node:http API and are dropped; `100 Continue`: below), while the client has taken them:
 * past 16 KiB not yet written to it, more are dropped.
 *
 * Framing: a response's Transfer-Encoding wins over its Content-Length (which is dropped)
 * and goes on with chunked last; a request's Content-Length is kept even when named in its
 * Connection field. A CONNECT pipelined behind requests waits for their responses.
 * Trailer fields go on in both directions when the message is chunked on the next hop
 * (an HTTP/1.0 client gets none); a client's `TE: trailers` is passed upstream.
 *
 * `Expect: 100-continue`: the destination is classified and its flow opened before the
 * `100 Continue`; a request refused on the way (403, 502, 504, 400, 407...) gets its final
 * status instead, and the connection closes after it (the body was never sent). The
 * expectation goes upstream: the upstream's 100 is passed on (the proxy's own after 1 s
 * without one), and its final answer before it (413, 401) goes without a 100.
 *
 * OPTIONS for a whole server (`OPTIONS http://host:port`) goes upstream as `OPTIONS *`; a
 * TRACE or OPTIONS with `Max-Forwards: 0` is answered by the proxy (RFC 9110 7.6.2).
 *
 * Listens on 127.0.0.1 by default; any other address requires credentials.
 */
import { timingSafeEqual } from 'node:crypto';
import {
  type ClientRequest,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
  validateHeaderName,
  validateHeaderValue,
} from 'node:http';
import { type AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Decision } from '../classify/types.js';
import type { FlowRecord } from '../forward/flow-table.js';
import type { ConnectResult, Forwarder, ForwardLogger, Refusal } from '../forward/forwarder.js';
import { absoluteForm } from '../util/http-target.js';
import { HALF_CLOSE_TIMEOUT_MS, whenIdle } from '../util/idle-timer.js';
import { listenOn } from '../util/listen.js';
import { resetSocket, whenEndIsFin } from '../util/reset.js';
import { assertSafeListen, type Credentials, closeOnInternalError, endSoon } from './listen.js';
import { servePac } from './pac.js';

export type HttpForwarder = Pick<Forwarder, 'connectTcp' | 'relay'>;

export interface HttpProxyOptions {
  forwarder: HttpForwarder;
  /** Default 127.0.0.1. Any non-loopback address requires `auth`. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Basic credentials (Proxy-Authorization); when set, 407 without them. */
  auth?: Credentials;
  /** Largest request head in bytes (431 above). Default 16,384. */
  maxHeaderSize?: number;
  /** Time allowed to receive the request head (ms; slow-loris). Default 10,000. */
  headersTimeoutMs?: number;
  /**
   * Concurrent client connections, CONNECT tunnels included; more are closed at once.
   * With maxHeaderSize it bounds what stalled clients can hold. Default 4,096.
   */
  maxConnections?: number;
  /**
   * Upstream response head timeout for plain HTTP (ms) -> 504: from the end of the request
   * to the final response head; each interim response (1xx) starts it again. Default 30,000.
   */
  responseTimeoutMs?: number;
  /**
   * Plain HTTP request bodies: how long an incomplete body may go without a byte from the
   * client (ms; the time between two reads, not the whole upload, as nginx's
   * client_body_timeout) before the request is given up: 408, or a closed connection once a
   * response is under way; the upstream is released. 0 = never. Default 60,000. CONNECT
   * tunnels are opaque byte streams: not concerned.
   */
  bodyTimeoutMs?: number;
  /** Largest upstream response head in bytes for plain HTTP (502 above). Default 262,144. */
  maxResponseHeaderSize?: number;
  /**
   * Plain HTTP: once the client has closed or half-closed its side, how long the request may
   * go without a byte to or from the client before it is given up (ms): the upstream closed,
   * the client's connection reset (or answered 504 before any response). Default 60,000, as
   * the forwarder's relay (ForwarderOptions.halfCloseTimeoutMs).
   */
  halfCloseTimeoutMs?: number;
  /** PAC script served for `GET /proxy.pac` (origin-form), if any. */
  pacScript?: string;
  log?: ForwardLogger;
}

export interface HttpProxyStats {
  connects: number;
  requests: number;
  refused: number;
  badRequests: number;
  /** Connections closed because of an unexpected error in gsa-emu itself (each logged). */
  internalErrors: number;
}

/** HTTP status for a forwarder refusal. */
export function statusOf(r: Refusal): number {
  switch (r) {
    case 'blocked':
      return 403;
    case 'timeout':
      return 504;
    default:
      return 502;
  }
}

const REASON: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  407: 'Proxy Authentication Required',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  504: 'Gateway Timeout',
};

/** HttpProxyOptions.maxResponseHeaderSize's default. */
const MAX_RESPONSE_HEADER_SIZE = 256 * 1024;
/** The pseudonym in the Via field this proxy adds (RFC 9110 7.6.3). */
const VIA = 'gsa-emu';
/**
 * After an upstream write failed before any response head: how long a head already on its
 * way may take to be read and parsed before the request is answered 502 (ms).
 */
const WRITE_FAILED_WAIT_MS = 500;
/** Bytes waiting to go to a client past which its upstream's interim (1xx) responses are dropped. */
const MAX_INTERIM_BACKLOG = 16 * 1024;

/** Lingering close (lingerOnClose): how long, and how many bytes, after the response. */
const LINGER_MS = 2000;
const LINGER_BYTES = 64 * 1024 * 1024;

/** A refused connect, as refusalBody() reads it. */
export interface RefusedConnect {
  refused: Refusal;
  decision: Decision;
  reason: string;
  /** A bypassed flow: why it went direct (ConnectResult's). */
  direct?: string;
  flow: Pick<FlowRecord, 'hardening'>;
}

/**
 * The short body of a refusal: what happened, and the rule behind it (for a bypassed flow,
 * also the decision's reason: why it went direct). A block by the edge
 * (a tunneled flow the edge refused as BLOCKED: web content filtering) says so and names the
 * client's rule as the one that forwarded the flow, not as the one that blocked it.
 */
export function refusalBody(c: RefusedConnect): string {
  const { refused: r, decision: d, reason } = c;
  const rule = d.ruleName ? `"${d.ruleName}" (${d.ruleId})` : (d.ruleId ?? 'none');
  const byEdge = r === 'blocked' && d.action === 'tunnel' && c.flow.hardening !== 'Y';
  const head = byEdge
    ? 'Blocked by Global Secure Access at the edge'
    : r === 'blocked'
      ? 'Blocked by Global Secure Access'
      : r === 'timeout'
        ? 'Connection timed out'
        : 'Connection failed';
  const label = byEdge ? 'forwarded by rule' : 'rule';
  // A bypass that failed also says why the flow went direct (the VPN off, a channel off, or
  // the tile of the decision's channel switched off since: the forwarder's `direct`).
  const direct = c.direct !== undefined ? `bypassed: ${c.direct}\n` : '';
  return `${head}: ${reason}\n${label}: ${rule}\nprofile: ${d.profileName ?? 'none'}\n${direct}`;
}

/** `value` with `via` appended: a received Via is kept and extended (RFC 9110 7.6.3). */
function appendVia(value: string | string[] | undefined, via: string): string {
  const had = Array.isArray(value) ? value.join(', ') : (value ?? '');
  return had.trim() === '' ? via : `${had}, ${via}`;
}

/** Splits `host:port` / `[v6]:port` (CONNECT authority). */
export function parseAuthority(a: string): { host: string; port: number } | null {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(a) ?? /^([^:\s/[\]@]+):(\d{1,5})$/.exec(a);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1]!, port };
}

const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Copies end-to-end headers (drops hop-by-hop ones and those named in Connection). A
 * Content-Length named in Connection stays: it frames the body (dropped, a GET's body
 * would go on unframed and be read upstream as another request).
 */
function endToEnd(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = new Set(
    String(h.connection ?? '')
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter((s) => s !== '' && s !== 'content-length'),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || HOP_BY_HOP.has(k) || named.has(k)) continue;
    out[k] = v;
  }
  return out;
}

/** `rawTrailers` ([name, value, ...]) as pairs for addTrailers(). */
function trailerPairs(raw: string[]): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!]);
  return pairs;
}

/**
 * Ends `out` after `from` ended, with `from`'s trailer fields, if any. A field node will not
 * send (a control character the lenient parser let through) drops the trailers, not the
 * message.
 */
function endWithTrailers(
  from: IncomingMessage,
  out: { addTrailers: ServerResponse['addTrailers']; end(): unknown },
): void {
  if (from.rawTrailers.length > 0) {
    try {
      out.addTrailers(trailerPairs(from.rawTrailers));
    } catch {
      // dropped, see above
    }
  }
  out.end();
}

/**
 * Keeps a failed write from tearing `s` down (node destroys a socket on a write error, and
 * with it a response the kernel has already received but node has not yet read: RFC 9112
 * 9.6). The failed write and every later one complete without error and send nothing;
 * `onFail` is told once. The readable side is left alone: a response on its way is read,
 * and a reset or an end reaches the reader after it.
 */
function swallowWriteErrors(s: Duplex, onFail: (err: Error) => void): void {
  type WriteCb = (err?: Error | null) => void;
  const w = s as Duplex & {
    _write: (chunk: unknown, enc: BufferEncoding, cb: WriteCb) => void;
    _writev?: ((chunks: unknown[], cb: WriteCb) => void) | null;
  };
  let failed = false;
  const guard =
    (cb: WriteCb): WriteCb =>
    (err) => {
      if (err && !failed) {
        failed = true;
        onFail(err);
      }
      cb();
    };
  const write = w._write;
  w._write = (chunk, enc, cb) => (failed ? cb() : write.call(s, chunk, enc, guard(cb)));
  const writev = w._writev;
  if (typeof writev === 'function') {
    w._writev = (chunks, cb) => (failed ? cb() : writev.call(s, chunks, guard(cb)));
  }
}

/** Client connections closing lingering (lingerOnClose): nothing more on them is processed. */
const lingering = new WeakSet<Socket>();

/**
 * Responses of a client connection not yet written whole (pipelined requests): a CONNECT
 * behind them waits for them, so that its `200 Connection Established` and the tunnel's
 * bytes come after them, in request order (RFC 9112 9.3.2).
 */
const pendingResponses = new WeakMap<Socket, { n: number; idle: Array<() => void> }>();

function trackResponse(sock: Socket, res: ServerResponse): void {
  let p = pendingResponses.get(sock);
  if (p === undefined) {
    p = { n: 0, idle: [] };
    pendingResponses.set(sock, p);
  }
  const entry = p;
  entry.n++;
  res.once('close', () => {
    entry.n--;
    if (entry.n === 0) for (const f of entry.idle.splice(0)) f();
  });
}

/** Resolves once every response of `sock` before now is written (or the socket closed). */
function responsesWritten(sock: Socket): Promise<void> {
  const p = pendingResponses.get(sock);
  if (p === undefined || p.n === 0) return Promise.resolve();
  return new Promise((resolve) => {
    p.idle.push(resolve);
    sock.once('close', resolve);
  });
}

/**
 * Requests whose body the client's connection failed to parse (a bad chunk size, a coding
 * other than chunked) while the request was being relayed: how to end it (400 at once,
 * instead of waiting for a body that cannot come).
 */
const bodyParseFailed = new WeakMap<IncomingMessage, (why: string) => void>();
/** The same failure found while the request's flow was still opening: said once it is open. */
const bodyParseFailedEarly = new WeakMap<IncomingMessage, string>();

/**
 * Lingering close (RFC 9112 9.6) of a client connection answered with `Connection: close`
 * before its request body was read whole. node:http closes such a connection as soon as the
 * response is written; a client still sending then meets a reset, which can cost it the
 * response it has not read yet (node clients lose it). Instead the proxy ends its side
 * (FIN) once the response is out, reads and drops what the client still sends until the
 * client closes its side, for at most LINGER_MS and LINGER_BYTES, and then closes.
 */
function lingerOnClose(sock: Socket): void {
  const s = sock as Socket & { destroySoon: () => void };
  if (lingering.has(sock) || sock.destroyed) return;
  lingering.add(sock);
  s.destroySoon = () => {
    if (sock.destroyed) return;
    if (!sock.writableEnded) sock.end();
    let iv: NodeJS.Timeout | null = null;
    let deadline = 0;
    let from = 0;
    const check = (): void => {
      if (sock.destroyed || !sock.writableFinished) return;
      if (iv === null) {
        deadline = Date.now() + LINGER_MS;
        from = sock.bytesRead;
        iv = setInterval(check, 50);
        iv.unref();
      }
      const over = Date.now() >= deadline || sock.bytesRead - from > LINGER_BYTES;
      if (sock.readableEnded || over) sock.destroy();
    };
    sock.once('finish', check);
    sock.once('end', check);
    sock.once('close', () => {
      if (iv !== null) clearInterval(iv);
    });
    sock.resume();
    check();
  };
}

/**
 * The Basic tokens of `username:password`: its UTF-8 (RFC 7617's charset="UTF-8": curl,
 * wget, undici, urllib) and, when it has characters outside ASCII that ISO-8859-1 can
 * encode, its ISO-8859-1, which Python's requests sends whatever the challenge says.
 */
function basicTokens(username: string, password: string): string[] {
  const pair = `${username}:${password}`;
  const tokens = [Buffer.from(pair, 'utf8').toString('base64')];
  if (/[^\x00-\x7f]/.test(pair) && /^[\x00-\xff]*$/.test(pair)) {
    tokens.push(Buffer.from(pair, 'latin1').toString('base64'));
  }
  return tokens;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class HttpProxy {
  readonly server: Server;
  readonly stats: HttpProxyStats = {
    connects: 0,
    requests: 0,
    refused: 0,
    badRequests: 0,
    internalErrors: 0,
  };
  /** PAC text served for `GET /proxy.pac` (settable once the listeners' ports are known). */
  pacScript: string | undefined;
  /** HttpProxyOptions.bodyTimeoutMs, with its default. */
  readonly bodyTimeoutMs: number;
  private readonly opts: HttpProxyOptions;
  private readonly tunnels = new Set<Duplex>();
  /** Every client connection, to reset at close(). */
  private readonly conns = new Set<Socket>();
  private listened: AddressInfo | null = null;
  /** `Proxy-Authorization: Basic` tokens accepted: the credentials' UTF-8 and ISO-8859-1. */
  private readonly expected: string[] | null;

  constructor(opts: HttpProxyOptions) {
    assertSafeListen('HTTP proxy', opts.host ?? '127.0.0.1', opts.auth !== undefined);
    this.opts = opts;
    this.pacScript = opts.pacScript;
    this.bodyTimeoutMs = opts.bodyTimeoutMs ?? 60_000;
    this.expected = opts.auth ? basicTokens(opts.auth.username, opts.auth.password) : null;
    const headersTimeout = opts.headersTimeoutMs ?? 10_000;
    this.server = createServer({
      maxHeaderSize: opts.maxHeaderSize ?? 16 * 1024,
      headersTimeout,
      connectionsCheckingInterval: Math.max(50, Math.min(30_000, headersTimeout >>> 2)),
      requestTimeout: 0,
      keepAliveTimeout: 5_000,
    });
    this.server.maxConnections = opts.maxConnections ?? 4096;
    this.server.on('connection', (sock: Socket) => {
      this.conns.add(sock);
      sock.once('close', () => this.conns.delete(sock));
    });
    // A client that half-closes after its request (`printf ... | nc -N`) still gets the
    // response; without this node:http aborts the request on the client's FIN.
    (this.server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
    // Every header field is forwarded (RFC 9110 5.1); maxHeaderSize bounds the head (node
    // would otherwise keep the first 1,000 fields and drop the rest silently).
    this.server.maxHeadersCount = 0;
    const onRequest = (req: IncomingMessage, res: ServerResponse, expect: boolean): void => {
      this.onRequest(req, res, expect).catch((e: unknown) => this.internalError(req.socket, e));
    };
    this.server.on('request', (req, res) => onRequest(req, res, false));
    // `Expect: 100-continue` (HTTP/1.1): without this listener node:http would send
    // `100 Continue` before the request is even seen. The destination is classified and its
    // flow opened first: a refused request gets its final status with no 100 (RFC 9110
    // 10.1.1), an allowed one gets the 100 just before its body is relayed.
    this.server.on('checkContinue', (req, res) => onRequest(req, res, true));
    this.server.on('connect', (req, sock, head) =>
      this.onConnect(req, sock as Socket, head).catch((e: unknown) =>
        this.internalError(sock as Socket, e),
      ),
    );
    // No 'upgrade' listener: node:http hands requests with Upgrade to 'request', where an
    // optional upgrade (h2c) is ignored (RFC 9110 7.8) and a WebSocket one gets 501.
    this.server.on('clientError', (err: NodeJS.ErrnoException, sock: Duplex) => {
      // A socket error (the client reset): nothing to answer.
      const answerable = err.code?.startsWith('HPE_') || err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
      if (!answerable || !sock.writable) {
        sock.destroy();
        return;
      }
      this.stats.badRequests++;
      // A response still being written (a valid request before the bad one) goes out
      // whole; then the connection closes, with no 400 spliced into it.
      const pending = (sock as { _httpMessage?: ServerResponse | null })._httpMessage;
      if (pending && !pending.writableFinished) {
        // The bad bytes were in the body of the request being relayed: it cannot complete,
        // so it ends now (400, or cut short once its response is under way).
        const req = (pending as ServerResponse & { req?: IncomingMessage }).req;
        if (req !== undefined && !req.complete) {
          const fail = bodyParseFailed.get(req);
          if (fail !== undefined) fail(err.message);
          else bodyParseFailedEarly.set(req, err.message);
        }
        const end = (): void => endSoon(sock, '');
        pending.once('finish', end);
        pending.once('close', end);
        return;
      }
      const status =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? 431
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? 408
            : 400;
      endSoon(sock, this.rawResponse(status, `${REASON[status]}\n`));
    });
  }

  async listen(): Promise<AddressInfo> {
    this.listened = await listenOn(
      this.server,
      this.opts.port ?? 8080,
      this.opts.host ?? '127.0.0.1',
      'HTTP proxy',
    );
    return this.listened;
  }

  /** Where it listens; still known after close(), while the last flows finish. */
  get address(): AddressInfo {
    return this.listened ?? (this.server.address() as AddressInfo);
  }

  /** A bug of ours in one connection closes that connection, never the process. */
  private internalError(sock: Socket, err: unknown): void {
    closeOnInternalError('http proxy', sock, err, this.stats, this.opts.log);
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    // A reset, not a FIN: a download cut short by the shutdown must not look complete to an
    // application that reads to the end (a tunnel, an HTTP/1.0 response).
    for (const s of this.tunnels) resetSocket(s);
    for (const s of this.conns) resetSocket(s);
    this.server.closeAllConnections();
    await closed;
  }

  private rawResponse(status: number, body: string, extra: Record<string, string> = {}): string {
    const lines = [`HTTP/1.1 ${status} ${REASON[status] ?? 'Error'}`];
    const headers: Record<string, string> = {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
      connection: 'close',
      ...extra,
    };
    for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
    return `${lines.join('\r\n')}\r\n\r\n${body}`;
  }

  private authorized(h: IncomingHttpHeaders): boolean {
    if (this.expected === null) return true;
    // RFC 9110 11.1: the scheme is case-insensitive; one or more spaces before the token.
    const m = /^basic +(\S+) *$/i.exec(h['proxy-authorization'] ?? '');
    if (m === null) return false;
    let ok = false;
    for (const token of this.expected) ok = safeEqual(m[1]!, token) || ok;
    return ok;
  }

  // RFC 7617 2.1: the challenge says the credentials are read as UTF-8.
  private static readonly AUTH_HEADER = {
    'proxy-authenticate': 'Basic realm="gsa-emu", charset="UTF-8"',
  };

  private async onConnect(req: IncomingMessage, sock: Socket, head: Buffer): Promise<void> {
    sock.on('error', () => {});
    // After a request answered early (the connection lingers): not processed, as onRequest.
    if (lingering.has(sock)) {
      sock.resume();
      return;
    }
    if (!this.authorized(req.headers)) {
      endSoon(
        sock,
        this.rawResponse(407, 'Proxy authentication required\n', HttpProxy.AUTH_HEADER),
      );
      return;
    }
    const a = parseAuthority(req.url ?? '');
    if (a === null) {
      this.stats.badRequests++;
      endSoon(sock, this.rawResponse(400, `bad CONNECT authority ${JSON.stringify(req.url)}\n`));
      return;
    }
    this.stats.connects++;
    sock.pause();
    // Behind pipelined requests: their responses go first.
    await responsesWritten(sock);
    if (sock.destroyed) return;
    const res = await this.connect(a.host, a.port, sock, true);
    if (res.refused !== undefined) {
      this.stats.refused++;
      const st = statusOf(res.refused);
      endSoon(
        sock,
        this.rawResponse(st, refusalBody(res), {
          'x-gsa-connection-id': res.flow.connectionId,
        }),
      );
      return;
    }
    if (sock.destroyed) {
      res.upstream.destroy();
      return;
    }
    this.tunnels.add(sock);
    sock.once('close', () => this.tunnels.delete(sock));
    sock.write(
      `HTTP/1.1 200 Connection Established\r\nx-gsa-connection-id: ${res.flow.connectionId}\r\n\r\n`,
    );
    sock.resume();
    await this.opts.forwarder.relay(res.upstream, sock, head);
  }

  /** `relayed`: CONNECT, whose upstream goes to relay(); plain HTTP reads its own. */
  private connect(
    host: string,
    port: number,
    sock: Socket,
    relayed = false,
  ): Promise<ConnectResult> {
    return this.opts.forwarder.connectTcp({
      host,
      ip: null,
      port,
      srcIp: sock.remoteAddress ?? '127.0.0.1',
      srcPort: sock.remotePort ?? 0,
      capture: 'http',
      relayed,
    });
  }

  private reply(
    res: ServerResponse,
    status: number,
    body: string,
    extra: Record<string, string> = {},
  ): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      ...extra,
    });
    res.end(body);
  }

  /** `expectContinue`: the client awaits `100 Continue` before sending its body. */
  private async onRequest(
    req: IncomingMessage,
    res: ServerResponse,
    expectContinue: boolean,
  ): Promise<void> {
    // A request after one answered early with `Connection: close` (the connection lingers,
    // lingerOnClose): not processed (RFC 9112 9.6) nor answered; read and dropped until the
    // connection closes.
    if (lingering.has(req.socket)) {
      req.resume();
      return;
    }
    trackResponse(req.socket, res);
    const raw = req.url ?? '';
    if (raw.startsWith('/')) {
      if (this.pacScript && servePac(req, res, this.pacScript)) return;
      this.stats.badRequests++;
      this.reply(
        res,
        400,
        'This is a proxy: send absolute-form requests (http://host/path) or CONNECT\n',
      );
      return;
    }
    if (!this.authorized(req.headers)) {
      this.reply(res, 407, 'Proxy authentication required\n', HttpProxy.AUTH_HEADER);
      return;
    }
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      this.stats.badRequests++;
      this.reply(res, 400, 'bad request target\n');
      return;
    }
    if (url.protocol !== 'http:') {
      this.stats.badRequests++;
      this.reply(res, 400, `${url.protocol} is proxied with CONNECT only\n`);
      return;
    }
    // RFC 9110 4.2.1: an http URI with an empty host is invalid (the URL parser would take
    // the host from the path of `http:///127.0.0.1:8081/x`, while the path goes on as sent).
    const authority = absoluteForm(raw)?.authority ?? '';
    if (authority.replace(/^[^@]*@/, '').replace(/:\d*$/, '') === '') {
      this.stats.badRequests++;
      this.reply(res, 400, 'bad request target: empty host\n');
      return;
    }
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = url.port ? Number(url.port) : 80;
    if (port === 0) {
      this.stats.badRequests++;
      this.reply(res, 400, 'port 0 is not a destination\n');
      return;
    }
    // Upgrade is hop-by-hop: an optional one (h2c) is ignored and the request goes on as
    // HTTP/1.1 (RFC 9110 7.8); a WebSocket cannot work without it.
    if (/(?:^|,)\s*websocket\s*(?:,|$)/i.test(String(req.headers.upgrade ?? ''))) {
      this.stats.badRequests++;
      this.reply(
        res,
        501,
        'WebSocket through the plain HTTP proxy is not supported; use CONNECT\n',
      );
      return;
    }
    // RFC 9110 7.6.2: a TRACE or OPTIONS whose Max-Forwards is 0 ends here (this proxy is its
    // final recipient: OPTIONS 200, TRACE not implemented); a larger one goes on one less.
    const mf = /^\s*(\d{1,9})\s*$/.exec(String(req.headers['max-forwards'] ?? ''));
    const traced = mf !== null && (req.method === 'OPTIONS' || req.method === 'TRACE');
    if (traced && Number(mf[1]) === 0) {
      if (req.method === 'OPTIONS') this.reply(res, 200, '');
      else this.reply(res, 501, 'TRACE is not implemented by this proxy\n');
      return;
    }
    this.stats.requests++;
    req.pause();
    const r = await this.connect(host, port, req.socket);
    if (r.refused !== undefined) {
      this.stats.refused++;
      req.resume();
      this.reply(res, statusOf(r.refused), refusalBody(r), {
        'x-gsa-connection-id': r.flow.connectionId,
      });
      return;
    }
    const upstream = r.upstream;
    upstream.on('error', () => {});
    // A body read to the upstream's close ends with its FIN, not with an RST that libuv
    // reports as an end behind queued bytes (util/reset.ts whenEndIsFin). The verdict is
    // taken on the socket's 'end', before the HTTP client ends the response on it. The
    // probe's failure, like any failed write on this connection (a sign of its reset), comes
    // through swallowWriteErrors below as `writeFailed`. (A tunnel stream says RST itself.)
    let closedCleanly: Promise<boolean> | null = null;
    if (upstream instanceof Socket) {
      upstream.once('end', () => {
        closedCleanly = new Promise((r) =>
          whenEndIsFin(
            upstream,
            // EPIPE: reset after its FIN, so every byte came (reset.ts whenEndIsFin).
            () =>
              r(writeFailed === null || (writeFailed as NodeJS.ErrnoException).code === 'EPIPE'),
            () => r(false),
          ),
        );
      });
    }
    // The client went away while the flow was opening.
    if (req.socket.destroyed) {
      upstream.destroy();
      return;
    }
    const id = { 'x-gsa-connection-id': r.flow.connectionId };
    const headers = endToEnd(req.headers);
    // RFC 9112 3.2.2: the target's authority replaces any Host the client sent (an HTTP/1.0
    // client may send none).
    headers.host = url.host;
    // Keep-alive, not close: an origin that answers early (413) then reads and drops the rest
    // of the body, where after `close` it would reset the connection while the body still
    // arrives, and take the answer with it. The connection still carries this one request:
    // the proxy closes it after the response.
    headers.connection = 'keep-alive';
    headers.via = appendVia(headers.via, `${req.httpVersion} ${VIA}`);
    if (traced) headers['max-forwards'] = String(Number(mf[1]) - 1);
    // A body the client framed with chunked goes on chunked, with its other codings (node
    // would send a GET's or DELETE's body unframed otherwise).
    const te = req.headers['transfer-encoding'];
    if (te !== undefined) headers['transfer-encoding'] = te;
    // A Trailer field on a message without chunked framing: node throws on sending it.
    else delete headers.trailer;
    // TE is hop-by-hop; the proxy forwards trailers, so it may ask for them in turn.
    if (/(?:^|,)\s*trailers\s*(?:[,;]|$)/i.test(String(req.headers.te ?? ''))) {
      headers.te = 'trailers';
      headers.connection = 'keep-alive, te';
    }
    const timeoutMs = this.opts.responseTimeoutMs ?? 30_000;
    let upReq: ClientRequest;
    try {
      upReq = httpRequest({
        method: req.method,
        // RFC 9110 7.7: the path and query as received, not normalized or re-encoded.
        path: originForm(raw, req.method),
        headers,
        setHost: false,
        createConnection: () => upstream as Socket,
        maxHeaderSize: this.opts.maxResponseHeaderSize ?? MAX_RESPONSE_HEADER_SIZE,
        // RFC 9112 2.2: a bare LF ends a line. Lenient on this side only: the connection
        // carries this one request (closed after it), so no later message can be misread.
        insecureHTTPParser: true,
      });
    } catch (err) {
      upstream.destroy();
      this.reply(res, 400, `${(err as Error).message}\n`, id);
      return;
    }
    // Every response field is forwarded, as every request one is (the size limit bounds it).
    upReq.maxHeadersCount = 0;
    // A response under way that fails is cut short with an RST, so that a client reading to
    // the close (HTTP/1.0) does not take the part for the whole (as the relay does:
    // docs/decisions/forward-socket-reset.md).
    const cutShort = (): void => {
      if (res.socket) resetSocket(res.socket);
      else res.destroy();
    };
    // One answer per request: the first of the upstream's response, 502 and 504. A failure
    // after the upstream's response head cuts that response short (the client sees it).
    let answered = false;
    let streaming = false;
    let timer: NodeJS.Timeout | null = null;
    /** The upstream's response, once its head arrived. */
    let upRes: IncomingMessage | null = null;
    /** The first failed write upstream: the body is no longer sent. */
    let writeFailed: Error | null = null;
    // The body stops going upstream (RFC 9112 9.6: the upstream answered and is closing, or
    // a write failed); what the client still sends is read and dropped.
    let bodyStopped = false;
    const stopBody = (): void => {
      if (bodyStopped) return;
      bodyStopped = true;
      req.unpipe(upReq);
      req.resume();
    };
    /** Cancels the request-body idle timer, once armed (below). */
    let cancelBody: (() => void) | null = null;
    /** `why`: the flow's end reason (the flow table shows it). */
    const fail = (status: number, body: string, why?: string): void => {
      if (timer) clearTimeout(timer);
      cancelBody?.();
      upstream.destroy(why === undefined ? undefined : new Error(why));
      if (answered) {
        if (streaming && !res.writableFinished) cutShort();
        return;
      }
      answered = true;
      stopBody();
      // The rest of the request body will not be read: the connection cannot be reused.
      if (!req.complete) lingerOnClose(req.socket);
      this.reply(res, status, body, req.complete ? id : { ...id, connection: 'close' });
    };
    const badBody = (why: string): void => {
      const reason = `bad request body: ${why}`;
      fail(400, `${reason}\n`, reason);
    };
    bodyParseFailed.set(req, badBody);
    const early = bodyParseFailedEarly.get(req);
    if (early !== undefined) badBody(early);
    // From the end of the request (not of the client's upload) to the response head.
    upReq.once('finish', () => {
      if (answered) return;
      timer = setTimeout(
        () => fail(504, `no response from ${url.host} within ${timeoutMs / 1000} s\n`),
        timeoutMs,
      );
    });
    // Interim responses, forwarded while the final one is awaited.
    upReq.on('information', (info) => {
      // An interim response shows the upstream at work (RFC 2518's 102 Processing exists so
      // that a client does not time out a long request): the response timeout starts again,
      // as nginx's proxy_read_timeout does on any read. Whether or not it reaches the client.
      if (!answered) timer?.refresh();
      // RFC 9110 15.2: no 1xx to an HTTP/1.0 client. Interim responses are advisory: while
      // the client has not taken the ones before, more are dropped (an upstream sending them
      // without end to a client that does not read would grow the proxy's memory).
      if (answered || res.headersSent || req.httpVersion === '1.0') return;
      if ((res.socket?.writableLength ?? 0) > MAX_INTERIM_BACKLOG) return;
      try {
        if (info.statusCode === 102) res.writeProcessing();
        else if (info.statusCode === 103) {
          const hints: Record<string, string | string[]> = {};
          for (const [k, v] of Object.entries(endToEnd(info.headers))) {
            if (v === undefined) continue;
            const vs = Array.isArray(v) ? v : [String(v)];
            // writeEarlyHints writes the fields as given: each is checked as writeHead would.
            validateHeaderName(k);
            for (const x of vs) validateHeaderValue(k, x);
            hints[k] = Array.isArray(v) ? vs : vs[0]!;
          }
          res.writeEarlyHints(hints);
        }
      } catch {
        // An interim response node will not send (a bad field) is dropped: it is advisory.
      }
    });
    upReq.on('response', (up) => {
      try {
        onResponse(up);
      } catch (e) {
        this.internalError(req.socket, e);
      }
    });
    const onResponse = (up: IncomingMessage): void => {
      if (timer) clearTimeout(timer);
      if (answered) {
        up.destroy();
        return;
      }
      const status = up.statusCode ?? 0;
      const out = endToEnd(up.headers);
      out.via = appendVia(out.via, `${up.httpVersion} ${VIA}`);
      Object.assign(out, id);
      // Codings other than chunked stay on the body (RFC 9112 6.1), with chunked last: node
      // frames the body with chunked only when the field says so (a body read to the
      // upstream's close, `gzip` alone, would go out unframed on a kept-alive connection).
      const ute = up.headers['transfer-encoding'];
      if (ute !== undefined && !/^\s*chunked\s*$/i.test(ute) && req.httpVersion === '1.1') {
        out['transfer-encoding'] = /(?:^|,)\s*chunked\s*$/i.test(ute) ? ute : `${ute}, chunked`;
      }
      // RFC 9112 6.3: Transfer-Encoding overrides Content-Length, and a proxy removes the
      // latter (sent on, the client would read that many bytes of the chunked body).
      if (ute !== undefined) delete out['content-length'];
      // Answered before the whole request body was read: close after this response, without
      // a reset while the client still sends (lingerOnClose). An upstream that says it closes
      // gets no more of the body (RFC 9112 9.6); one that does not goes on getting it (it may
      // be reading it as it answers) until its response ends.
      if (!req.complete) {
        out.connection = 'close';
        lingerOnClose(req.socket);
        if (/(?:^|,)\s*close\s*(?:,|$)/i.test(String(up.headers.connection ?? ''))) stopBody();
      }
      // A status line node cannot send on (status 099, a control character in the reason
      // phrase) is the upstream's fault: this request's 502.
      const bad =
        status < 200 || status > 999
          ? `status ${status}`
          : /[^\t\x20-\x7e\x80-\xff]/.test(up.statusMessage ?? '')
            ? 'a control character in the reason phrase'
            : null;
      if (bad !== null) {
        up.destroy();
        fail(502, `upstream sent an invalid response: ${bad}\n`);
        return;
      }
      try {
        try {
          res.writeHead(status, up.statusMessage, out);
        } catch (err) {
          // Trailer on a response node does not chunk (HTTP/1.0, HEAD, 204, 304, a length).
          if ((err as NodeJS.ErrnoException).code !== 'ERR_HTTP_TRAILER_INVALID') throw err;
          delete out.trailer;
          res.writeHead(status, up.statusMessage, out);
        }
      } catch (err) {
        // A field the lenient parser let through that node will not send (a control
        // character in a value): nothing was written yet. The 502 gets its own reason phrase.
        res.statusMessage = '';
        up.destroy();
        fail(502, `upstream sent an invalid response: ${(err as Error).message}\n`);
        return;
      }
      answered = true;
      streaming = true;
      upRes = up;
      up.pipe(res, { end: false });
      // Neither length nor chunked framing: the body ends where the connection does.
      const toClose =
        up.headers['content-length'] === undefined && up.headers['transfer-encoding'] === undefined;
      up.on('end', () => {
        // The upstream connection carries one request: the rest of the body goes nowhere.
        stopBody();
        const verdict = toClose ? closedCleanly : null;
        if (verdict === null) {
          upstream.destroy();
          endWithTrailers(up, res);
          return;
        }
        void verdict.then((clean) => {
          upstream.destroy();
          if (clean) endWithTrailers(up, res);
          else cutShort();
        });
      });
      up.on('error', cutShort);
    };
    upReq.on('upgrade', (_up, sock: Socket) => {
      sock.destroy();
      fail(502, 'upstream switched protocols (101) unasked\n');
    });
    upReq.on('error', (err) => {
      // A response read whole goes on to the client (the reset that followed it is moot).
      if (upRes?.complete) return;
      fail(502, `upstream error: ${(writeFailed ?? err).message}\n`);
    });
    // A write that fails (the upstream answered and closed while the body was still being
    // sent) stops the body; a response head already received or on its way is still read
    // (swallowWriteErrors) and forwarded, and only without one after WRITE_FAILED_WAIT_MS is
    // the request answered 502.
    swallowWriteErrors(upstream, (err) => {
      writeFailed = err;
      stopBody();
      if (answered) return;
      const wait = setTimeout(() => {
        if (!answered) fail(502, `upstream error: ${err.message}\n`);
      }, WRITE_FAILED_WAIT_MS);
      res.once('close', () => clearTimeout(wait));
      upReq.once('response', () => clearTimeout(wait));
    });
    // The client closed or half-closed its side (a FIN: the two look alike). Its FIN is not
    // passed upstream (a node server aborts its response on it); instead the request is
    // given up once no byte has moved to or from the client for halfCloseTimeoutMs, as the
    // relay does (docs/decisions/forward-half-close-timeout.md). The byte counters are
    // compared when the timer fires, so the data path pays nothing.
    const sock = req.socket;
    const halfCloseMs = this.opts.halfCloseTimeoutMs ?? HALF_CLOSE_TIMEOUT_MS;
    let cancelHalf: (() => void) | null = null;
    /** The client awaits a 100 Continue (Expect) it has not had: its body is not late. */
    let continueOwed = false;
    const clientEnded = (): void => {
      if (cancelHalf !== null || res.writableFinished) return;
      cancelHalf = whenIdle(
        () => sock.bytesRead + sock.bytesWritten,
        halfCloseMs,
        () =>
          fail(504, `no response from ${url.host} within ${halfCloseMs} ms of the client's FIN\n`),
      );
    };
    if (sock.readableEnded) clientEnded();
    else sock.once('end', clientEnded);
    res.on('close', () => {
      if (timer) clearTimeout(timer);
      cancelHalf?.();
      cancelBody?.();
      sock.off('end', clientEnded);
      if (!res.writableFinished) upReq.destroy();
    });
    // The flow is open and the request goes upstream with its Expect (RFC 9110 10.1.1): the
    // upstream's 100 Continue tells the client to send its body, or after 1 s the proxy's own
    // (an upstream that ignores Expect). A final answer first (413, 401) goes without a 100.
    if (expectContinue && !res.headersSent) {
      let told = false;
      continueOwed = true;
      const go = (): void => {
        clearTimeout(wait);
        if (told || answered || res.headersSent || res.writableEnded) return;
        told = true;
        continueOwed = false;
        res.writeContinue();
      };
      const wait = setTimeout(go, 1000);
      upReq.once('continue', go);
      res.once('close', () => clearTimeout(wait));
      upReq.flushHeaders();
    }
    req.pipe(upReq, { end: false });
    req.once('end', () => {
      cancelBody?.();
      if (!bodyStopped) endWithTrailers(req, upReq);
    });
    // A body that stops coming (nginx's client_body_timeout): no byte from the client for
    // bodyTimeoutMs while the body is incomplete. Bytes to the client count too (one reading
    // a response is not stalled; a 100 Continue restarts the wait), and so does the upstream
    // taking more of the body. The wait is the proxy's, not the client's, while the client
    // awaits its 100 Continue or the upstream is not taking the body (backpressure: the
    // proxy stops reading the client). Compared when the timer fires, as the half-close.
    const bodyMs = this.bodyTimeoutMs;
    if (bodyMs > 0 && !req.complete) {
      let drains = 0;
      upReq.on('drain', () => drains++);
      const moved = (): number => sock.bytesRead + sock.bytesWritten + drains;
      const idle = (): void => {
        cancelBody = null;
        if (req.complete || bodyStopped || res.writableFinished || res.destroyed) return;
        if (continueOwed || upReq.writableNeedDrain) {
          cancelBody = whenIdle(moved, bodyMs, idle);
          return;
        }
        const why = `request body stalled: no byte from the client for ${bodyMs / 1000} s`;
        fail(408, `${why}\n`, why);
      };
      cancelBody = whenIdle(moved, bodyMs, idle);
    }
    req.resume();
  }
}

/**
 * The path and query of an absolute-form target exactly as sent (`/` when empty; `*` for an
 * OPTIONS with neither path nor query: the server as a whole, RFC 9112 3.2.4).
 */
export function originForm(target: string, method?: string): string {
  const abs = absoluteForm(target);
  let rest = abs ? target.slice(abs.prefix.length) : target;
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  if (rest === '' && method === 'OPTIONS') return '*';
  if (rest === '' || rest.startsWith('?')) rest = `/${rest}`;
  return rest;
}

/** Creates and starts an HTTP proxy. */
export async function startHttpProxy(opts: HttpProxyOptions): Promise<HttpProxy> {
  const p = new HttpProxy(opts);
  await p.listen();
  return p;
}
