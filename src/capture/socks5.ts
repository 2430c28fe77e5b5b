/**
 * SOCKS5 capture (RFC 1928, with RFC 1929 username/password): the no-root way to feed flows
 * to the forwarder. The destination name arrives with the request, so FQDN rules apply
 * without DNS tricks.
 *
 * The handshake is an explicit state machine over socket data (`Socks5Parser`): GREETING ->
 * (AUTH) -> REQUEST -> DONE. It returns NEED_MORE when short of bytes and never throws;
 * bad input becomes an INVALID message carrying the reply code to send (or none: close).
 * Limits (options, with defaults): bytes of an unfinished handshake held 16 KiB (the largest
 * handshake message is 513 bytes; data after the request, in the same chunk, does not count:
 * it goes upstream), handshake timeout 10 s from accept to request (slow-loris), 4,096
 * connections. A refused handshake is closed 1 s after its reply even if the client keeps
 * its side open (RFC 1928 section 3, RFC 1929 section 2: the connection closes). A client
 * of another protocol is told so before the close: SOCKS4 gets its "request rejected", an
 * HTTP request (the port taken for an HTTP proxy) a 400 saying this is the SOCKS5 port.
 *
 * Commands: CONNECT (IPv4, IPv6, domain) and UDP ASSOCIATE (a UDP relay socket per
 * association, bound on the control connection's local address; datagrams are accepted
 * only from the client's address (the control connection's, or the one DST.ADDR
 * announced) and port (DST.PORT, or the first relayed datagram's); FRAG != 0 dropped).
 * BIND is answered 0x07.
 *
 * Reply codes: 0x02 blocked by policy, 0x03 network unreachable, 0x04 host unreachable,
 * 0x05 connection refused (by the destination), 0x06 TTL expired (connect timeout), 0x07
 * command not supported, 0x08 address type not supported, 0x01 general failure (malformed
 * request; the edge refused the stream itself). A malformed or wrong RFC 1929 request gets
 * status 0x01, then the connection closes. The server never decides policy: it hands each
 * request to the forwarder. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 one.
 *
 * Listens on 127.0.0.1 by default; any other address requires credentials.
 */
import { timingSafeEqual } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import type { Forwarder, ForwardLogger, Refusal } from '../forward/forwarder.js';
import { formatIPv4, formatIPv6, ipFamily, parseIPv4, parseIPv6, unmapIPv4 } from '../util/ip.js';
import { listenOn } from '../util/listen.js';
import { resetSocket } from '../util/reset.js';
import { assertSafeListen, type Credentials, closeOnInternalError, endSoon } from './listen.js';

// --- wire constants ----------------------------------------------------------------------

export const SOCKS_VERSION = 5;
export const AUTH_VERSION = 1;
export const METHOD_NONE = 0x00;
export const METHOD_USERPASS = 0x02;
export const METHOD_NO_ACCEPTABLE = 0xff;
export const CMD_CONNECT = 1;
export const CMD_BIND = 2;
export const CMD_UDP_ASSOCIATE = 3;
export const ATYP_IPV4 = 1;
export const ATYP_DOMAIN = 3;
export const ATYP_IPV6 = 4;
/** RFC 1929 status: any non-zero value is a failure. */
export const AUTH_FAILURE = 0x01;

export const Reply = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;

/** The SOCKS reply code for a forwarder refusal. */
export function replyOf(r: Refusal): number {
  switch (r) {
    case 'blocked':
      return Reply.NOT_ALLOWED;
    case 'network':
      return Reply.NETWORK_UNREACHABLE;
    case 'refused':
      return Reply.CONNECTION_REFUSED;
    case 'timeout':
      return Reply.TTL_EXPIRED;
    case 'failed':
      return Reply.GENERAL_FAILURE;
    default:
      return Reply.HOST_UNREACHABLE;
  }
}

/** What the SOCKS5 port tells a client of another protocol before it closes. */
export const WRONG_PROTOCOL_TEXT =
  'This is the SOCKS5 proxy of gsa-emu: use it as socks5h://host:port (curl --socks5-hostname, ' +
  'or -x socks5h://...); for an HTTP proxy use the HTTP proxy port (gsa-emu status lists both)\n';

/**
 * The answer to a greeting whose first byte is `version`, not 5: a SOCKS4 client gets SOCKS4's
 * "request rejected" (VN 0, CD 91), so it says so rather than "connection closed"; an HTTP
 * request (a method's first letter: `curl -x 127.0.0.1:1080` takes the port for an HTTP
 * proxy) gets a 400 saying which port this is; anything else none (closed).
 */
export function wrongProtocolReply(version: number): Buffer | null {
  if (version === 4) return Buffer.from([0x00, 0x5b, 0, 0, 0, 0, 0, 0]);
  if (version >= 0x41 && version <= 0x5a) {
    const body = Buffer.from(WRONG_PROTOCOL_TEXT);
    return Buffer.concat([
      Buffer.from(
        'HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n' +
          `content-length: ${body.length}\r\nconnection: close\r\n\r\n`,
      ),
      body,
    ]);
  }
  return null;
}

// --- the handshake state machine -----------------------------------------------------------

export type Socks5State = 'greeting' | 'auth' | 'request' | 'done' | 'closed';

export type Socks5Msg =
  | { type: 'need-more' }
  | { type: 'greeting'; methods: number[] }
  | { type: 'auth'; username: string; password: string }
  | {
      type: 'request';
      cmd: number;
      atyp: number;
      host: string | null;
      ip: string | null;
      port: number;
    }
  /**
   * `reply`: the code to answer with before closing (in the auth state an RFC 1929 status),
   * or null to close silently. `version`: a greeting's first byte that is not 5 (another
   * protocol: SOCKS4, or an HTTP request sent to the SOCKS5 port).
   */
  | { type: 'invalid'; reply: number | null; reason: string; version?: number };

const NEED_MORE: Socks5Msg = { type: 'need-more' };

/** Bytes of a domain name SOCKS clients may send: printable ASCII without space. */
function validDomain(buf: Buffer, off: number, len: number): boolean {
  for (let i = off; i < off + len; i++) {
    const c = buf[i]!;
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

/**
 * Incremental parser of the client side of the SOCKS5 handshake. Feed it socket chunks with
 * `push()`, then call `next()` until it returns need-more. The owner moves the state on
 * after a greeting (`state = 'auth' | 'request'`); the parser moves to 'done' after a
 * request and to 'closed' after an invalid message. `rest()` returns bytes received past
 * the request (optimistic data), copied.
 */
export class Socks5Parser {
  state: Socks5State = 'greeting';
  private buf: Buffer = Buffer.alloc(0);
  private off = 0;
  /** Bytes held (not yet parsed). */
  get buffered(): number {
    return this.buf.length - this.off;
  }

  constructor(private readonly maxBuffered = 16 * 1024) {}

  /**
   * Appends data; false once closed, or (moving to 'closed') when more than the limit is
   * already held unparsed. The limit is on an unfinished handshake (next() enforces it): a
   * chunk that completes the request may carry any amount of data after it.
   */
  push(chunk: Buffer): boolean {
    if (this.state === 'closed') return false;
    if (this.buffered > this.maxBuffered) {
      this.state = 'closed';
      return false;
    }
    if (this.buffered === 0) {
      this.buf = chunk;
      this.off = 0;
    } else {
      this.buf = Buffer.concat([this.buf.subarray(this.off), chunk]);
      this.off = 0;
    }
    return true;
  }

  rest(): Buffer {
    const r = Buffer.from(this.buf.subarray(this.off));
    this.buf = Buffer.alloc(0);
    this.off = 0;
    return r;
  }

  private invalid(reply: number | null, reason: string): Socks5Msg {
    this.state = 'closed';
    return { type: 'invalid', reply, reason };
  }

  /** The next message; an unfinished handshake holding more than the limit is invalid. */
  next(): Socks5Msg {
    const m = this.parse();
    const unfinished =
      this.state === 'greeting' || this.state === 'auth' || this.state === 'request';
    if (m === NEED_MORE && unfinished && this.buffered > this.maxBuffered) {
      return this.invalid(null, `handshake over ${this.maxBuffered} bytes`);
    }
    return m;
  }

  private parse(): Socks5Msg {
    const b = this.buf;
    const o = this.off;
    const n = b.length - o;
    switch (this.state) {
      case 'greeting': {
        if (n < 1) return NEED_MORE;
        if (b[o] !== SOCKS_VERSION) {
          this.state = 'closed';
          return {
            type: 'invalid',
            reply: null,
            reason: `not SOCKS5 (version ${b[o]})`,
            version: b[o]!,
          };
        }
        if (n < 2) return NEED_MORE;
        const nm = b[o + 1]!;
        if (nm === 0) return this.invalid(null, 'no authentication methods offered');
        if (n < 2 + nm) return NEED_MORE;
        const methods: number[] = [];
        for (let i = 0; i < nm; i++) methods.push(b[o + 2 + i]!);
        this.off = o + 2 + nm;
        return { type: 'greeting', methods };
      }
      case 'auth': {
        if (n < 1) return NEED_MORE;
        // RFC 1929 section 2: any failure gets a non-zero status, then the connection closes.
        if (b[o] !== AUTH_VERSION) return this.invalid(AUTH_FAILURE, `bad auth version ${b[o]}`);
        if (n < 2) return NEED_MORE;
        const ulen = b[o + 1]!;
        if (ulen === 0) return this.invalid(AUTH_FAILURE, 'empty username');
        if (n < 2 + ulen + 1) return NEED_MORE;
        const plen = b[o + 2 + ulen]!;
        if (n < 3 + ulen + plen) return NEED_MORE;
        const username = b.toString('utf8', o + 2, o + 2 + ulen);
        const password = b.toString('utf8', o + 3 + ulen, o + 3 + ulen + plen);
        this.off = o + 3 + ulen + plen;
        return { type: 'auth', username, password };
      }
      case 'request': {
        if (n < 1) return NEED_MORE;
        if (b[o] !== SOCKS_VERSION) return this.invalid(null, `bad request version ${b[o]}`);
        if (n < 4) return NEED_MORE;
        const cmd = b[o + 1]!;
        const atyp = b[o + 3]!;
        let host: string | null = null;
        let ip: string | null = null;
        let p: number;
        if (atyp === ATYP_IPV4) {
          if (n < 10) return NEED_MORE;
          ip = formatIPv4(b.readUInt32BE(o + 4));
          p = o + 8;
        } else if (atyp === ATYP_IPV6) {
          if (n < 22) return NEED_MORE;
          const w = new Uint32Array(4);
          for (let i = 0; i < 4; i++) w[i] = b.readUInt32BE(o + 4 + 4 * i);
          // ::ffff:a.b.c.d is the IPv4 host a.b.c.d.
          ip = w[0] === 0 && w[1] === 0 && w[2] === 0xffff ? formatIPv4(w[3]!) : formatIPv6(w);
          p = o + 20;
        } else if (atyp === ATYP_DOMAIN) {
          if (n < 5) return NEED_MORE;
          const len = b[o + 4]!;
          if (len === 0) return this.invalid(Reply.GENERAL_FAILURE, 'empty domain name');
          if (n < 5 + len + 2) return NEED_MORE;
          if (!validDomain(b, o + 5, len)) {
            return this.invalid(Reply.GENERAL_FAILURE, 'invalid characters in domain name');
          }
          host = b.toString('latin1', o + 5, o + 5 + len);
          // A domain that is an address literal is an address (clients do send that).
          if (ipFamily(host) !== 0) {
            ip = unmapIPv4(host);
            host = null;
          }
          p = o + 5 + len;
        } else {
          return this.invalid(Reply.ADDRESS_TYPE_NOT_SUPPORTED, `address type ${atyp}`);
        }
        const port = b.readUInt16BE(p);
        this.off = p + 2;
        this.state = 'done';
        return { type: 'request', cmd, atyp, host, ip, port };
      }
      default:
        return NEED_MORE;
    }
  }
}

/** A SOCKS5 reply: VER REP RSV ATYP BND.ADDR BND.PORT (an IPv4/IPv6 bound address). */
export function encodeReply(rep: number, bindIp = '0.0.0.0', bindPort = 0): Buffer {
  const w = new Uint32Array(4);
  const v4 = parseIPv4(bindIp);
  if (v4 < 0 && parseIPv6(bindIp, w)) {
    const out = Buffer.alloc(22);
    out[0] = SOCKS_VERSION;
    out[1] = rep;
    out[3] = ATYP_IPV6;
    for (let i = 0; i < 4; i++) out.writeUInt32BE(w[i]!, 4 + 4 * i);
    out.writeUInt16BE(bindPort, 20);
    return out;
  }
  const out = Buffer.alloc(10);
  out[0] = SOCKS_VERSION;
  out[1] = rep;
  out[3] = ATYP_IPV4;
  out.writeUInt32BE(Math.max(v4, 0), 4);
  out.writeUInt16BE(bindPort, 8);
  return out;
}

// --- UDP datagram header (RFC 1928 section 7) ---------------------------------------------

export interface UdpHeader {
  frag: number;
  host: string | null;
  ip: string | null;
  port: number;
  /** Offset of the payload. */
  data: number;
}

/** Parses RSV(2) FRAG ATYP DST.ADDR DST.PORT; null on malformed input. */
export function parseUdpHeader(b: Buffer): UdpHeader | null {
  if (b.length < 4 || b[0] !== 0 || b[1] !== 0) return null;
  const frag = b[2]!;
  const atyp = b[3]!;
  if (atyp === ATYP_IPV4) {
    if (b.length < 10) return null;
    return {
      frag,
      host: null,
      ip: formatIPv4(b.readUInt32BE(4)),
      port: b.readUInt16BE(8),
      data: 10,
    };
  }
  if (atyp === ATYP_IPV6) {
    if (b.length < 22) return null;
    const w = new Uint32Array(4);
    for (let i = 0; i < 4; i++) w[i] = b.readUInt32BE(4 + 4 * i);
    return { frag, host: null, ip: formatIPv6(w), port: b.readUInt16BE(20), data: 22 };
  }
  if (atyp === ATYP_DOMAIN) {
    if (b.length < 5) return null;
    const len = b[4]!;
    if (len === 0 || b.length < 7 + len || !validDomain(b, 5, len)) return null;
    let host: string | null = b.toString('latin1', 5, 5 + len);
    let ip: string | null = null;
    if (ipFamily(host) !== 0) {
      ip = host;
      host = null;
    }
    return { frag, host, ip, port: b.readUInt16BE(5 + len), data: 7 + len };
  }
  return null;
}

/** Builds the header for a datagram coming back from (host | ip, port). */
export function encodeUdpHeader(host: string | null, ip: string | null, port: number): Buffer {
  if (ip !== null) {
    const v4 = parseIPv4(ip);
    if (v4 >= 0) {
      const h = Buffer.alloc(10);
      h[3] = ATYP_IPV4;
      h.writeUInt32BE(v4, 4);
      h.writeUInt16BE(port, 8);
      return h;
    }
    const w = new Uint32Array(4);
    if (parseIPv6(ip, w)) {
      const h = Buffer.alloc(22);
      h[3] = ATYP_IPV6;
      for (let i = 0; i < 4; i++) h.writeUInt32BE(w[i]!, 4 + 4 * i);
      h.writeUInt16BE(port, 20);
      return h;
    }
  }
  const name = Buffer.from(host ?? ip ?? '', 'latin1');
  const h = Buffer.alloc(7 + name.length);
  h[3] = ATYP_DOMAIN;
  h[4] = name.length;
  name.copy(h, 5);
  h.writeUInt16BE(port, 5 + name.length);
  return h;
}

// --- the server ----------------------------------------------------------------------------

/** What the SOCKS server needs from the forwarder. */
export type SocksForwarder = Pick<Forwarder, 'connectTcp' | 'relay' | 'udpAssociation' | 'flows'>;

export interface Socks5Options {
  forwarder: SocksForwarder;
  /** Default 127.0.0.1. Any non-loopback address requires `auth`. */
  host?: string;
  /** Default 1080; 0 picks a free port. */
  port?: number;
  /** RFC 1929 username/password; when set, clients must authenticate. */
  auth?: Credentials;
  /** Accept to request, in ms. Default 10,000. */
  handshakeTimeoutMs?: number;
  /** Handshake bytes buffered per connection. Default 16,384. */
  maxHandshakeBytes?: number;
  /** Concurrent connections. Default 4,096. */
  maxConnections?: number;
  log?: ForwardLogger;
}

export interface Socks5Stats {
  accepted: number;
  connects: number;
  associations: number;
  /** Handshakes that ended in a refusal, a bad message or a timeout. */
  failed: number;
  timeouts: number;
  /** UDP datagrams dropped by the relay before the forwarder (FRAG, bad header, foreign sender). */
  udpDropped: number;
  /** Connections closed because of an unexpected error in gsa-emu itself (each logged). */
  internalErrors: number;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class Socks5Server {
  readonly server: Server;
  readonly stats: Socks5Stats = {
    accepted: 0,
    connects: 0,
    associations: 0,
    failed: 0,
    timeouts: 0,
    udpDropped: 0,
    internalErrors: 0,
  };
  private readonly opts: Socks5Options;
  private readonly sockets = new Set<Socket>();
  /** Each association's relay socket, and what ends the association and closes it. */
  private readonly udpSockets = new Map<UdpSocket, () => void>();
  private listened: AddressInfo | null = null;

  constructor(opts: Socks5Options) {
    assertSafeListen('SOCKS5 proxy', opts.host ?? '127.0.0.1', opts.auth !== undefined);
    this.opts = opts;
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.onConnection(s));
    this.server.maxConnections = opts.maxConnections ?? 4096;
  }

  async listen(): Promise<AddressInfo> {
    this.listened = await listenOn(
      this.server,
      this.opts.port ?? 1080,
      this.opts.host ?? '127.0.0.1',
      'SOCKS5 proxy',
    );
    return this.listened;
  }

  /** Where it listens; still known after close(), while the last flows finish. */
  get address(): AddressInfo {
    return this.listened ?? (this.server.address() as AddressInfo);
  }

  /** A bug of ours in one connection closes that connection, never the process. */
  private internalError(sock: Socket, err: unknown): void {
    closeOnInternalError('socks5', sock, err, this.stats, this.opts.log);
  }

  /** Stops listening and ends every connection and UDP relay. */
  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    // Each association ends before its relay socket closes: a reply still arriving from a
    // destination would otherwise be sent on a closed socket (ERR_SOCKET_DGRAM_NOT_RUNNING).
    for (const end of [...this.udpSockets.values()]) end();
    // A reset, not a FIN: a download cut short by the shutdown must not look complete.
    for (const s of this.sockets) resetSocket(s);
    await closed;
  }

  private onConnection(sock: Socket): void {
    this.stats.accepted++;
    this.sockets.add(sock);
    sock.once('close', () => this.sockets.delete(sock));
    sock.on('error', () => {});
    const parser = new Socks5Parser(this.opts.maxHandshakeBytes ?? 16 * 1024);
    const timeoutMs = this.opts.handshakeTimeoutMs ?? 10_000;
    const timer = setTimeout(() => {
      this.stats.timeouts++;
      this.stats.failed++;
      sock.removeListener('close', onClose);
      sock.destroy();
    }, timeoutMs);
    // A client gone mid-handshake (its FIN) is closed now, not at the handshake timeout:
    // with allowHalfOpen nothing else would notice.
    const onEnd = (): void => refuse(null);
    sock.once('end', onEnd);
    // One gone by a reset (an error, no FIN) releases the timer now: left armed, it kept the
    // closed socket, counted a timeout and, ref'd, held the process's exit up to its end.
    const onClose = (): void => refuse(null);
    sock.once('close', onClose);
    /** Ends a refused handshake: the reply (none: close at once), then close. */
    const refuse = (reply: Buffer | null): void => {
      clearTimeout(timer);
      sock.removeListener('data', onData);
      sock.removeListener('end', onEnd);
      sock.removeListener('close', onClose);
      this.stats.failed++;
      if (reply === null) sock.destroy();
      else endSoon(sock, reply);
    };
    const fail = (code: number | null): void => refuse(code === null ? null : encodeReply(code));
    const onData = (chunk: Buffer): void => {
      if (!parser.push(chunk)) {
        fail(null);
        return;
      }
      for (;;) {
        const inAuth = parser.state === 'auth';
        const m = parser.next();
        switch (m.type) {
          case 'need-more':
            return;
          case 'invalid':
            // In the auth state the reply is an RFC 1929 status (VER 1, STATUS).
            if (inAuth && m.reply !== null) refuse(Buffer.from([AUTH_VERSION, m.reply]));
            else if (m.version !== undefined) refuse(wrongProtocolReply(m.version));
            else fail(m.reply);
            return;
          case 'greeting': {
            const auth = this.opts.auth;
            const want = auth ? METHOD_USERPASS : METHOD_NONE;
            if (!m.methods.includes(want)) {
              refuse(Buffer.from([SOCKS_VERSION, METHOD_NO_ACCEPTABLE]));
              return;
            }
            sock.write(Buffer.from([SOCKS_VERSION, want]));
            parser.state = auth ? 'auth' : 'request';
            break;
          }
          case 'auth': {
            const auth = this.opts.auth!;
            const ok = safeEqual(m.username, auth.username) && safeEqual(m.password, auth.password);
            if (!ok) {
              refuse(Buffer.from([AUTH_VERSION, AUTH_FAILURE]));
              return;
            }
            sock.write(Buffer.from([AUTH_VERSION, 0]));
            parser.state = 'request';
            break;
          }
          case 'request': {
            clearTimeout(timer);
            sock.removeListener('data', onData);
            sock.removeListener('end', onEnd);
            sock.removeListener('close', onClose);
            sock.pause();
            const head = parser.rest();
            if (m.cmd === CMD_CONNECT) {
              if (m.port === 0) {
                fail(Reply.GENERAL_FAILURE);
                return;
              }
              this.connect(sock, m.host, m.ip, m.port, head).catch((e: unknown) =>
                this.internalError(sock, e),
              );
            } else if (m.cmd === CMD_UDP_ASSOCIATE) {
              this.associate(sock, m.ip, m.port).catch((e: unknown) => this.internalError(sock, e));
            } else {
              fail(Reply.COMMAND_NOT_SUPPORTED);
            }
            return;
          }
        }
      }
    };
    sock.on('data', onData);
  }

  private async connect(
    sock: Socket,
    host: string | null,
    ip: string | null,
    port: number,
    head: Buffer,
  ): Promise<void> {
    this.stats.connects++;
    const res = await this.opts.forwarder.connectTcp({
      host,
      ip,
      port,
      srcIp: sock.remoteAddress ?? '127.0.0.1',
      srcPort: sock.remotePort ?? 0,
      capture: 'socks',
      relayed: true,
    });
    if (res.refused !== undefined) {
      this.stats.failed++;
      endSoon(sock, encodeReply(replyOf(res.refused)));
      return;
    }
    const up = res.upstream as Socket;
    if (sock.destroyed) {
      up.destroy();
      return;
    }
    // BND.ADDR: the direct socket's local address for bypassed flows; 0.0.0.0:0 for tunneled
    // ones (the bound address is the edge's, not ours).
    const bindIp = typeof up.localAddress === 'string' ? up.localAddress : '0.0.0.0';
    const bindPort = typeof up.localPort === 'number' ? up.localPort : 0;
    sock.write(encodeReply(Reply.SUCCEEDED, bindIp, bindPort));
    sock.resume();
    await this.opts.forwarder.relay(res.upstream, sock, head);
  }

  /**
   * UDP ASSOCIATE: a relay socket bound on the control connection's local address. Only
   * datagrams from the client's IP (and the port it announced, or else the first one it
   * sends from) are accepted; the association ends with the TCP connection.
   */
  private async associate(sock: Socket, ip: string | null, port: number): Promise<void> {
    this.stats.associations++;
    // A dual-stack listener (`::`) gives an IPv4 client's addresses IPv4-mapped: the relay is
    // then an IPv4 socket, which can send to that client (a udp6 one bound to a mapped
    // address cannot: EINVAL) and whose BND.ADDR is the IPv4 address the client knows.
    const local = unmapIPv4(sock.localAddress ?? '127.0.0.1');
    const clientIp = unmapIPv4(sock.remoteAddress ?? '127.0.0.1');
    const udp = createSocket(ipFamily(local) === 6 ? 'udp6' : 'udp4');
    const closeUdp = (): void => {
      this.udpSockets.delete(udp);
      try {
        udp.close();
      } catch {}
    };
    this.udpSockets.set(udp, closeUdp);
    udp.on('error', () => {});
    const bound = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(0, local, () => resolve(true));
    });
    // The control connection may have gone while the socket was being bound.
    if (!bound || sock.destroyed || !this.udpSockets.has(udp)) {
      closeUdp();
      if (!bound) {
        this.stats.failed++;
        endSoon(sock, encodeReply(Reply.GENERAL_FAILURE));
      }
      return;
    }
    // The client may announce the address it will send from (RFC 1928 section 6: DST.ADDR
    // and DST.PORT); 0.0.0.0 / 0 mean "not known": the control connection's address, and
    // the port of the first datagram from it. Replies go to that same address.
    let peerPort = port !== 0 ? port : 0;
    const counters = this.opts.forwarder.flows.counters;
    // The largest UDP payload: 65,535 minus the UDP header, and the IPv4 header over IPv4.
    const maxPayload = ipFamily(local) === 6 ? 65_527 : 65_507;
    /** One callback for every reply sent (none made per datagram): counts a failed send. */
    const onReplySent = (err: Error | null): void => {
      if (!err) return;
      this.stats.udpDropped++;
      counters.drop('send-error');
    };
    const announced = ip === null ? null : unmapIPv4(ip);
    const peerIp =
      announced !== null && announced !== '0.0.0.0' && announced !== '::' ? announced : clientIp;
    let ended = false;
    const assoc = this.opts.forwarder.udpAssociation(
      { srcIp: peerIp, srcPort: peerPort, capture: 'socks' },
      (payload, rhost, rip, rport) => {
        if (peerPort === 0 || ended) return;
        const h = encodeUdpHeader(rhost, rip, rport);
        // A reply that the header makes too long for one datagram (a 65,507-byte answer
        // over IPv4) cannot reach the client: counted, like every other loss of the relay.
        if (h.length + payload.length > maxPayload) {
          this.stats.udpDropped++;
          counters.drop('too-big');
          return;
        }
        udp.send([h, payload], peerPort, peerIp, onReplySent);
      },
    );
    udp.on('message', (msg: Buffer, r: RemoteInfo) => {
      if (unmapIPv4(r.address) !== peerIp) {
        this.stats.udpDropped++;
        counters.drop('foreign-sender');
        return;
      }
      if (peerPort !== 0 && r.port !== peerPort) {
        this.stats.udpDropped++;
        counters.drop('foreign-sender');
        return;
      }
      const h = parseUdpHeader(msg);
      if (h === null) {
        this.stats.udpDropped++;
        counters.drop('bad-header');
        return;
      }
      if (h.frag !== 0) {
        this.stats.udpDropped++;
        counters.drop('frag');
        return;
      }
      // The port "not known" is the first datagram's that the relay takes: one it drops
      // (garbage, a fragment; from the client or another program on its address) does not
      // decide it.
      if (peerPort === 0) {
        peerPort = r.port;
        assoc.setSource(peerIp, r.port);
      }
      assoc.send(h.host, h.ip, h.port, msg.subarray(h.data));
    });
    const end = (): void => {
      if (ended) return;
      ended = true;
      assoc.close();
      closeUdp();
    };
    this.udpSockets.set(udp, end);
    sock.once('close', end);
    const a = udp.address();
    sock.write(encodeReply(Reply.SUCCEEDED, a.address, a.port));
    // The control connection carries nothing more; read and discard until it closes.
    sock.on('data', () => {});
    sock.on('end', () => sock.end());
    sock.resume();
  }
}

/** Creates and starts a SOCKS5 server. */
export async function startSocks5(opts: Socks5Options): Promise<Socks5Server> {
  const s = new Socks5Server(opts);
  await s.listen();
  return s;
}
