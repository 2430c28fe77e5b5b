/**
 * The floor of gsa-emu's tunneled topology in Node.js: bench/tunnel-floor.c's two processes,
 * wire format and hops, written minimally with `net` and `ws` (no policy, no flow table, no
 * logging, no auth). bench/proxy.ts runs it as a peer: it tells how close gsa-emu's tunneled
 * rate is to what Node.js can do for this topology at all.
 *
 *   load generator --SOCKS5--> client process ==one ws tunnel==> edge process --TCP--> destination
 *
 *   node dist-bench/bench/node-floor-tunnel.js edge 9001                  (ws on 127.0.0.1:9001)
 *   node dist-bench/bench/node-floor-tunnel.js client 1080 9001 [early]   (SOCKS5 on 127.0.0.1:1080)
 *
 * The client connects to the edge once, at startup (retrying for 5 s), and exits if that
 * tunnel is lost; the edge accepts any number of tunnels. With `early`, the client sends the
 * SOCKS reply as soon as it has sent OPEN, not after OPEN_OK.
 *
 * Wire format (src/tunnel/frame.ts's type numbers, as tunnel-floor.c): frames of a 10-byte
 * header, type u8 | flags u8 (0) | stream id u32 BE | length u32 BE, then payload:
 *   OPEN     client -> edge: address type 1 (IPv4, 4 bytes) or 3 (length byte + name), port u16
 *   OPEN_OK  edge -> client: the edge has connected; empty
 *   DATA     stream bytes
 *   FIN      half close: no more DATA from the sender; empty
 *   RST      abort the stream: 1 byte reason
 * The client allocates odd stream ids. Every frame a process produces in one callback goes
 * into one ws binary message (queueMicrotask flush, as gsa-emu's session does), so a message
 * always holds whole frames. `ws` defaults otherwise: client messages masked with random
 * keys (gsa-emu's client sends a zero mask), messages parsed by ws's receiver (gsa-emu reads
 * binary frames straight off the socket, src/tunnel/ws-raw.ts), 64 KiB socket reads.
 *
 * No flow control (gsa-emu has per-stream credit windows). Memory is bounded by two coarse
 * rules, those of tunnel-floor.c, using what `ws` and `net` already offer:
 *   - when a stream socket's write() returns false (its buffer is above the 16 KiB
 *     highWaterMark), the tunnel's reading stops (ws.pause(), which pauses ws._socket and
 *     keeps ws's own receiver from resuming it) until every such socket has emitted 'drain':
 *     all streams of the tunnel wait (head-of-line blocking; the bench's readers always read,
 *     so it only paces them);
 *   - when the ws send buffer (bufferedAmount) is above HIGH_WATER, stream sockets stop
 *     reading (each pauses at its next chunk) until the tunnel socket emits 'drain'.
 * Why these and not credit windows: this is a measuring stick for connection rate, so it
 * stays as lean as the C floor; the bench's throughput phase (512 MiB per row) only needs it
 * to lose no bytes and to stay in bounded memory. A stream buffer stays under 16 KiB plus
 * what ws has already read off the tunnel socket (one 64 KiB read); the tunnel buffer under
 * HIGH_WATER plus a 64 KiB read or two per readable stream ('drain' means the tunnel
 * socket's buffer is empty, so the rule has no separate low-water mark).
 */
import net from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';

const DATA = 0;
const OPEN = 1;
const OPEN_OK = 2;
const FIN = 4;
const RST = 5;
const REFUSED = 1;
const UNREACHABLE = 2;
const ABORTED = 3;
const HIGH_WATER = 4 * 2 ** 20;

const [role, arg1, arg2, arg3] = process.argv.slice(2);
const isClient = role === 'client';
const early = arg3 === 'early';

interface Stream {
  id: number;
  sock: net.Socket;
  gone: boolean; // forgotten: RST received, or the socket closed
  finSent: boolean;
  finRecv: boolean;
  blocking: boolean; // write() returned false: counted in tunnel.blocked
  opening: boolean; // client: the SOCKS reply waits for OPEN_OK or RST
  reason: number; // RST reason if the socket closes before both FINs
}

class Tunnel {
  readonly streams = new Map<number, Stream>();
  private out: Buffer[] = [];
  private blocked = 0; // streams whose socket is full: tunnel reads paused
  private congested = false; // ws send buffer above HIGH_WATER: stream reads paused
  private paused: Stream[] = [];
  private nextId = 1;
  private readonly wsSocket: net.Socket;

  constructor(readonly ws: WebSocket) {
    this.wsSocket = (ws as unknown as { _socket: net.Socket })._socket;
    ws.on('message', (m: Buffer, binary: boolean) => {
      if (!binary || !this.receive(m)) ws.terminate();
    });
    ws.on('error', () => {});
    ws.on('close', () => {
      for (const st of this.streams.values()) this.forget(st).sock.destroy();
    });
  }

  send(type: number, id: number, payload?: Buffer): void {
    const h = Buffer.allocUnsafe(10);
    h[0] = type;
    h[1] = 0;
    h.writeUInt32BE(id, 2);
    h.writeUInt32BE(payload ? payload.length : 0, 6);
    if (this.out.push(h) === 1) queueMicrotask(this.flush);
    if (payload) this.out.push(payload);
  }

  private flush = (): void => {
    const out = this.out;
    this.out = [];
    if (this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(Buffer.concat(out));
    if (!this.congested && this.ws.bufferedAmount > HIGH_WATER) {
      this.congested = true;
      this.wsSocket.once('drain', () => {
        this.congested = false;
        for (const st of this.paused) if (!st.gone) st.sock.resume();
        this.paused = [];
      });
    }
  };

  /** One ws message: whole frames. False when it is malformed. */
  private receive(m: Buffer): boolean {
    for (let o = 0; o < m.length; ) {
      if (m.length - o < 10) return false;
      const type = m[o]!;
      const id = m.readUInt32BE(o + 2);
      const end = o + 10 + m.readUInt32BE(o + 6);
      if (end > m.length) return false;
      const p = m.subarray(o + 10, end);
      o = end;
      const st = this.streams.get(id);
      if (type === OPEN && !isClient && !st) {
        if (!this.connect(id, p)) return false;
      } else if (!st) {
        // DATA, FIN or RST of a stream closed here (crossed our RST): dropped.
      } else if (type === DATA) {
        if (!st.sock.write(p) && !st.blocking) {
          st.blocking = true;
          if (this.blocked++ === 0) this.ws.pause();
          st.sock.once('drain', () => this.unblock(st));
        }
      } else if (type === OPEN_OK && st.opening) {
        st.opening = false;
        st.sock.write(SOCKS_OK);
      } else if (type === FIN) {
        st.finRecv = true;
        st.sock.end();
      } else if (type === RST) {
        this.forget(st);
        if (st.opening) {
          const r = p[0] === REFUSED ? 5 : p[0] === UNREACHABLE ? 4 : 1;
          st.sock.end(Buffer.from([5, r, 0, 1, 0, 0, 0, 0, 0, 0]), () => st.sock.destroy());
        } else st.sock.destroy();
      }
    }
    return true;
  }

  private unblock(st: Stream): void {
    if (!st.blocking) return;
    st.blocking = false;
    if (--this.blocked === 0) this.ws.resume();
  }

  private forget(st: Stream): Stream {
    st.gone = true;
    this.streams.delete(st.id);
    this.unblock(st);
    return st;
  }

  /** Relays between `sock` and stream `id`, both ways. */
  attach(id: number, sock: net.Socket, opening: boolean): Stream {
    const st: Stream = {
      id,
      sock,
      gone: false,
      finSent: false,
      finRecv: false,
      blocking: false,
      opening,
      reason: ABORTED,
    };
    this.streams.set(id, st);
    sock.on('data', (b: Buffer) => {
      if (st.gone) return;
      this.send(DATA, id, b);
      if (this.congested) {
        sock.pause();
        this.paused.push(st);
      }
    });
    sock.on('end', () => {
      if (st.gone) return;
      st.finSent = true;
      this.send(FIN, id);
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNREFUSED') st.reason = REFUSED;
      else if (/^(ENETUNREACH|EHOSTUNREACH|ETIMEDOUT|ENOTFOUND|EAI_AGAIN)$/.test(e.code ?? ''))
        st.reason = UNREACHABLE;
    });
    sock.on('close', () => {
      if (st.gone) return;
      this.forget(st);
      // Both directions done: the peer forgets the stream on its own; else it is aborted.
      if (!st.finSent || !st.finRecv) this.send(RST, id, Buffer.from([st.reason]));
    });
    return st;
  }

  /** Edge: OPEN. False when the address is malformed. */
  private connect(id: number, a: Buffer): boolean {
    let host: string;
    let port: number;
    if (a[0] === 1 && a.length === 7) {
      host = `${a[1]}.${a[2]}.${a[3]}.${a[4]}`;
      port = a.readUInt16BE(5);
    } else if (a[0] === 3 && a.length === 4 + a[1]! && a[1]! > 0) {
      host = a.toString('latin1', 2, 2 + a[1]!);
      port = a.readUInt16BE(2 + a[1]!);
    } else return false;
    const sock = net.connect({ host, port, noDelay: true, allowHalfOpen: true });
    this.attach(id, sock, false);
    sock.once('connect', () => this.send(OPEN_OK, id));
    return true;
  }

  /** Client: a CONNECT request's address (type, address, port) and any bytes after it. */
  open(sock: net.Socket, addr: Buffer, rest: Buffer): void {
    let id = this.nextId;
    while (this.streams.has(id)) id = (id + 2) >>> 0;
    this.nextId = (id + 2) >>> 0;
    this.send(OPEN, id, addr);
    if (rest.length) this.send(DATA, id, rest);
    this.attach(id, sock, !early);
    if (early) sock.write(SOCKS_OK);
  }
}

const SOCKS_OK = Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);

/** SOCKS5 no-auth CONNECT (IPv4 or name); hands the socket to the tunnel. */
function socks(t: Tunnel, c: net.Socket): void {
  let hs: Buffer = Buffer.alloc(0);
  let greeted = false;
  const fail = (r: number): void => {
    c.end(Buffer.from([5, r, 0, 1, 0, 0, 0, 0, 0, 0]), () => c.destroy());
  };
  const onEnd = (): void => {
    c.destroy();
  };
  const onData = (b: Buffer): void => {
    hs = hs.length ? Buffer.concat([hs, b]) : b;
    if (hs[0] !== 5 || hs.length > 512) {
      c.destroy();
      return;
    }
    if (!greeted) {
      const n = hs[1]!;
      if (hs.length < 2 || hs.length < 2 + n) return;
      if (!hs.subarray(2, 2 + n).includes(0)) {
        c.end(Buffer.from([5, 0xff])); // no "no authentication" method
        return;
      }
      c.write(Buffer.from([5, 0]));
      hs = hs.subarray(2 + n);
      greeted = true;
      if (hs.length && hs[0] !== 5) {
        c.destroy();
        return;
      }
    }
    if (hs.length < 5) return;
    const need = hs[3] === 1 ? 10 : hs[3] === 3 && hs[4]! > 0 ? 7 + hs[4]! : 0;
    // Only CONNECT (else 7), to an IPv4 address or a name (else 8).
    if (hs[1] !== 1 || !need) fail(hs[1] !== 1 ? 7 : 8);
    else if (hs.length >= need) {
      c.off('data', onData);
      c.off('end', onEnd);
      t.open(c, hs.subarray(3, need), hs.subarray(need));
    }
  };
  c.on('data', onData);
  c.on('end', onEnd);
  c.on('error', () => {});
}

function connectEdge(port: number, deadline: number): void {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
  ws.once('error', () => {
    if (Date.now() > deadline) {
      process.stderr.write(`node-floor-tunnel: no edge on 127.0.0.1:${port}\n`);
      process.exit(1);
    }
    setTimeout(() => connectEdge(port, deadline), 50);
  });
  ws.once('open', () => {
    ws.removeAllListeners('error');
    const t = new Tunnel(ws);
    ws.on('close', () => process.exit(1));
    net
      .createServer({ noDelay: true, allowHalfOpen: true }, (c) => socks(t, c))
      .listen(Number(arg1), '127.0.0.1');
  });
}

if (isClient) connectEdge(Number(arg2), Date.now() + 5000);
else if (role === 'edge') {
  new WebSocketServer({
    host: '127.0.0.1',
    port: Number(arg1),
    perMessageDeflate: false,
    clientTracking: false,
  }).on('connection', (ws) => new Tunnel(ws));
} else {
  process.stderr.write(
    'usage: node-floor-tunnel.js edge <tunnel-port> | client <socks-port> <tunnel-port> [early]\n',
  );
  process.exit(2);
}
