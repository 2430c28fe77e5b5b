/**
 * Byte-exactness of tunneled TCP flows under stress, end to end on loopback: the `socks`
 * npm client -> the client's SOCKS5 proxy -> the private channel's WebSocket tunnel -> the
 * edge -> its connector (hosts map: relay.contoso.test:8100) -> a local source server, and
 * back. The safety net for the receive data path (util/big-read.ts lent reads, tunnel
 * frames and streams, the forwarder's relay).
 *
 * The source server speaks first (a banner of random length), then answers the client's
 * request with a requested number of pseudo-random bytes (xorshift128 from a per-flow seed,
 * written in chunks of 1 byte to 300 KiB, or many small ones), hashes every byte the client
 * uploads, and ends with a trailer: SHA-256 of the upload, its byte count and SHA-256 of
 * what it sent. The client side regenerates the expected bytes and compares every received
 * chunk with them (the first differing offset is reported), checks SHA-256 and exact byte
 * counts in both directions, the client's flow record (tunneled on the private channel,
 * closed cleanly, exact byte counts) and the edge's traffic log record.
 *
 * Stress: 16 concurrent flows from 0 bytes to 24 MiB (some at 4 KiB / 64 KiB / 256 KiB /
 * 1 MiB +-1), slow readers (random bounded pause()/resume() with a stall that fills the
 * socket buffers), a slow server reader for some uploads, uploads of random sizes in random
 * write chunks, half-close while still receiving; then 200 short flows, 8 at a time. Each
 * runs over three tunnels: wss (the e2e helpers' TLS edge), plain ws (where the client
 * lends its 256 KiB WebSocket reads) and plain ws with 1021/509-byte DATA frames and small
 * windows (many frames per read, constant flow control).
 *
 * Reproduce a failure with the seed it prints: RELAY_SEED=<seed> npx tap <this file>.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SocksClient } from 'socks';
import t from 'tap';
import { type RunningClient, startClient } from '../../src/client/client.js';
import { type Edge, startEdge } from '../../src/edge/server.js';
import type { FlowRecord } from '../../src/forward/flow-table.js';
import type { SessionOptions } from '../../src/tunnel/session.js';
import { startTestWorld, until } from './helpers.js';

/** Private name (Quick Access `*.contoso.test`, TCP 8000-8999) the connector maps to the source. */
const HOST = 'relay.contoso.test';
const PORT = 8100;
const KiB = 1024;
const MiB = 1024 * KiB;
/** Trailer of the source server: SHA-256(upload) | upload bytes (u64 BE) | SHA-256(sent). */
const TRAILER = 32 + 8 + 32;
/** Largest write chunk, both directions. */
const MAX_CHUNK = 300 * KiB;

const SEED = (() => {
  const env = process.env.RELAY_SEED;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isInteger(n)) throw new Error(`RELAY_SEED must be an integer, got ${env}`);
    return n >>> 0;
  }
  return randomBytes(4).readUInt32BE(0);
})();
const SEED_NOTE = `seed ${SEED} (rerun: RELAY_SEED=${SEED} npx tap test/e2e/relay-integrity.test.ts)`;

// ---------------------------------------------------------------------------------------
// Deterministic pseudo-random numbers and byte streams.

/** xorshift128 (Marsaglia) on 32-bit words, seeded through splitmix32. */
class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const mix = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = mix();
    this.b = mix();
    this.c = mix();
    this.d = mix() || 1;
  }

  u32(): number {
    const x = this.a ^ (this.a << 11);
    this.a = this.b;
    this.b = this.c;
    this.c = this.d;
    this.d = (this.d ^ (this.d >>> 19) ^ x ^ (x >>> 8)) >>> 0;
    return this.d;
  }

  /** [0, 1) */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  /** Log-uniform integer in [lo, hi] (lo >= 1): tiny and huge values alike. */
  logInt(lo: number, hi: number): number {
    const v = Math.floor(Math.exp(Math.log(lo) + this.float() * Math.log((hi + 1) / lo)));
    return Math.min(hi, Math.max(lo, v));
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.float() * xs.length)]!;
  }
}

/**
 * The byte stream of a seed: the same bytes whatever the sizes it is taken in. `take`
 * returns a fresh buffer (safe to hand to socket.write).
 */
class ByteStream {
  private readonly rng: Rng;
  private readonly words = new Uint32Array(16 * KiB);
  private readonly block = Buffer.from(this.words.buffer);
  private pos: number;

  constructor(seed: number) {
    this.rng = new Rng(seed);
    this.pos = this.block.length;
  }

  take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      if (this.pos === this.block.length) {
        for (let i = 0; i < this.words.length; i++) this.words[i] = this.rng.u32();
        this.pos = 0;
      }
      const k = Math.min(n - o, this.block.length - this.pos);
      this.block.copy(out, o, this.pos, this.pos + k);
      this.pos += k;
      o += k;
    }
    return out;
  }
}

const downSeed = (seed: number): number => seed >>> 0;
const upSeed = (seed: number): number => (seed ^ 0x5bd1e995) >>> 0;
const serverChunkSeed = (seed: number): number => (seed ^ 0x27d4eb2f) >>> 0;
const serverPauseSeed = (seed: number): number => (seed ^ 0x165667b1) >>> 0;
const clientPauseSeed = (seed: number): number => (seed ^ 0x61c88647) >>> 0;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Resolves on the socket's 'drain' or 'close', whichever comes first. */
function drainOrClose(s: Socket): Promise<void> {
  if (s.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    s.on('drain', done);
    s.on('close', done);
  });
}

/**
 * Writes `total` bytes of `gen` to `s` in random chunks, waiting for 'drain' when write()
 * says so, and feeds each chunk to `onChunk` first. Chunks: 1 B to 300 KiB (log-uniform),
 * yielding to the event loop now and then; `chatty`: 1 B to 8 KiB with a yield after each,
 * so the relay reads, frames and sends them one by one (many small tunnel frames).
 */
async function writeStream(
  s: Socket,
  gen: ByteStream,
  total: number,
  rng: Rng,
  chatty: boolean,
  onChunk: (c: Buffer) => void,
  stop: () => boolean = () => false,
): Promise<void> {
  let left = total;
  while (left > 0) {
    if (s.destroyed || stop()) return;
    const n = Math.min(left, rng.logInt(1, chatty ? 8 * KiB : MAX_CHUNK));
    const chunk = gen.take(n);
    onChunk(chunk);
    left -= n;
    if (!s.write(chunk)) await drainOrClose(s);
    else if (chatty || rng.float() < 0.05) await tick();
  }
}

/**
 * Bounded random pauses of a socket's reading (a slow reader): after a read, sometimes a
 * short pause (1-12 ms), rarely a longer one (30-100 ms), and once, at a random offset in
 * the first half of a stream of 1 MiB or more, a stall of 120-250 ms that fills the kernel's
 * socket buffers, so the writer's socket.write() has to queue (backpressure) and the
 * tunnel's flow control holds the other side. At most 2.5 s paused per stream.
 */
class Pacer {
  private pausedMs = 0;
  private seen = 0;
  private readonly stallAt: number;

  constructor(
    private readonly rng: Rng,
    total: number,
    private readonly timers: Set<NodeJS.Timeout>,
  ) {
    this.stallAt = total >= MiB ? rng.int(0, Math.floor(total / 2)) : -1;
  }

  /** Called after each read of `n` bytes from `s`. */
  after(s: Socket, n: number): void {
    const before = this.seen;
    this.seen += n;
    if (this.pausedMs >= 2500 || s.destroyed) return;
    let ms = 0;
    if (this.stallAt >= 0 && before <= this.stallAt && this.seen > this.stallAt) {
      ms = this.rng.int(120, 250);
    } else {
      const r = this.rng.float();
      if (r < 0.03) ms = this.rng.int(30, 100);
      else if (r < 0.3) ms = this.rng.int(1, 12);
    }
    if (ms === 0) return;
    this.pausedMs += ms;
    s.pause();
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!s.destroyed) s.resume();
    }, ms);
    this.timers.add(timer);
  }
}

// ---------------------------------------------------------------------------------------
// The source server (behind the edge's connector).

interface ServerFlow {
  id: number;
  peer: string;
  size: number;
  upSize: number;
  /** The banner line it sent, and the length of the banner after it. */
  bannerLine: string;
  bannerSize: number;
  /** Download bytes written. */
  written: number;
  /** Upload bytes over the whole connection (more than upSize: bytes after the trailer). */
  uploadTotal: number;
  closed: boolean;
  error: string | null;
}

interface Source {
  port: number;
  flows: Map<number, ServerFlow>;
  close(): Promise<void>;
}

/**
 * Per connection, the server speaks first (as SMTP or SSH servers do): a banner line
 * `BANNER <length> <seed>\n` and `length` bytes of ByteStream(seed), random per connection
 * (often 0, sometimes more than a tunnel stream's initial window), so data reaches the
 * client's tunnel stream before the relay behind it is set up. Then the client's request
 * line `RELAY <id> <seed> <size> <upSize> <slowUp> <chatty>\n` and its upload (upSize
 * bytes). After the banner it sends `size` bytes of ByteStream(downSeed(seed))
 * (writeStream); once both the download is written and upSize bytes arrived (or the client
 * ended), the trailer, then FIN. `slowUp` paces its reads of the upload (Pacer).
 */
async function startSource(): Promise<Source> {
  const bannerRng = new Rng((SEED ^ 0x3c6ef372) >>> 0);
  const flows = new Map<number, ServerFlow>();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let closing = false;

  const srv: Server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    let rec: ServerFlow | null = null;
    let head = Buffer.alloc(0);
    const upHash = createHash('sha256');
    const downHash = createHash('sha256');
    let upDone = false;
    let downDone = false;
    let trailerSent = false;
    let pacer: Pacer | null = null;
    const bannerSeed = bannerRng.u32();
    const r0 = bannerRng.float();
    const bannerSize =
      r0 < 0.35
        ? 0
        : r0 < 0.4
          ? 256 * KiB + 1
          : r0 < 0.43
            ? MiB + 1
            : bannerRng.logInt(1, 256 * KiB);
    const bannerLine = `BANNER ${bannerSize} ${bannerSeed}\n`;
    let bannerWritten = 0;
    s.write(bannerLine);
    const banner = writeStream(
      s,
      new ByteStream(bannerSeed),
      bannerSize,
      new Rng(bannerSeed),
      false,
      (c) => {
        bannerWritten += c.length;
      },
      () => closing,
    );

    const maybeTrailer = (): void => {
      if (!rec || trailerSent || !upDone || !downDone || s.destroyed) return;
      trailerSent = true;
      const count = Buffer.alloc(8);
      count.writeBigUInt64BE(BigInt(rec.uploadTotal));
      s.end(Buffer.concat([upHash.digest(), count, downHash.digest()]));
    };

    const send = async (r: ServerFlow, seed: number, chatty: boolean): Promise<void> => {
      const gen = new ByteStream(downSeed(seed));
      const rng = new Rng(serverChunkSeed(seed));
      await banner;
      if (bannerWritten !== bannerSize) return;
      const onChunk = (c: Buffer): void => {
        downHash.update(c);
        r.written += c.length;
      };
      await writeStream(s, gen, r.size, rng, chatty, onChunk, () => closing);
      if (r.written !== r.size) return;
      downDone = true;
      maybeTrailer();
    };

    const upload = (d: Buffer): void => {
      if (!rec || d.length === 0) return;
      rec.uploadTotal += d.length;
      if (!trailerSent) upHash.update(d);
      if (rec.uploadTotal >= rec.upSize) {
        upDone = true;
        maybeTrailer();
      }
      pacer?.after(s, d.length);
    };

    s.on('data', (d: Buffer) => {
      if (rec) {
        upload(d);
        return;
      }
      head = Buffer.concat([head, d]);
      const nl = head.indexOf(10);
      if (nl < 0) {
        if (head.length > 200) s.destroy();
        return;
      }
      const m = /^RELAY (\d+) (\d+) (\d+) (\d+) ([01]) ([01])$/.exec(
        head.subarray(0, nl).toString(),
      );
      if (!m) {
        s.destroy();
        return;
      }
      const seed = Number(m[2]);
      rec = {
        id: Number(m[1]),
        peer: s.remoteAddress ?? '?',
        size: Number(m[3]),
        upSize: Number(m[4]),
        bannerLine,
        bannerSize,
        written: 0,
        uploadTotal: 0,
        closed: false,
        error: null,
      };
      flows.set(rec.id, rec);
      if (m[5] === '1') pacer = new Pacer(new Rng(serverPauseSeed(seed)), rec.upSize, timers);
      if (rec.upSize === 0) upDone = true;
      const r = rec;
      void send(r, seed, m[6] === '1').catch((e: Error) => {
        r.error ??= `send: ${e.message}`;
        s.destroy();
      });
      upload(head.subarray(nl + 1));
    });
    s.on('end', () => {
      upDone = true;
      maybeTrailer();
    });
    s.on('error', (e) => {
      if (rec) rec.error ??= e.message;
    });
    s.on('close', () => {
      sockets.delete(s);
      if (rec) rec.closed = true;
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as AddressInfo).port,
    flows,
    async close() {
      closing = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

// ---------------------------------------------------------------------------------------
// The client side: one flow through the SOCKS5 proxy.

interface FlowSpec {
  id: number;
  seed: number;
  /** Bytes the server sends. */
  size: number;
  /** Bytes the client uploads after the request line. */
  upSize: number;
  /** Random bounded pause()/resume() of the client socket. */
  slowRead: boolean;
  /** The server pauses its reads of the upload at random. */
  slowUp: boolean;
  /** Both sides write in small chunks with a yield after each (many small frames). */
  chatty: boolean;
  /** early: end() right after the upload (half-close while receiving); late: after the server's FIN. */
  close: 'early' | 'late';
}

interface FlowResult {
  spec: FlowSpec;
  error: string | null;
  /** The server's banner line as received (without the newline), its length as announced. */
  bannerLine: string;
  bannerSize: number;
  /** Banner bytes received, and the first offset where they differ from ByteStream(seed). */
  bannerReceived: number;
  bannerMismatch: number;
  /** Download bytes received (the server's stream, before the trailer). */
  received: number;
  receivedHash: string;
  expectedHash: string;
  /** First offset where a received byte differs from the expected stream (-1: none). */
  firstMismatch: number;
  trailer: Buffer;
  requestBytes: number;
  uploadHash: string;
  /** The client's flow record, found while the flow was active. */
  flowId: string | null;
  connectionId: string | null;
}

const describe = (s: FlowSpec): string =>
  `flow #${s.id} (size ${s.size}, upload ${s.upSize}, ${s.slowRead ? 'slow' : 'fast'} reader, ` +
  `${s.slowUp ? 'slow' : 'fast'} upload sink, ${s.chatty ? 'chatty' : 'bulk'} writes, ` +
  `${s.close} close, flow seed ${s.seed})`;

/** A real edge and a real client connected to it over a WebSocket tunnel, SOCKS5 on. */
interface World {
  name: string;
  edge: Edge;
  client: RunningClient;
  socksPort: number;
  close(): Promise<void>;
}

let source: Source;
const worlds: World[] = [];
const clientSockets = new Set<Socket>();
const clientTimers = new Set<NodeJS.Timeout>();

/** The e2e helpers' world: TLS edge, so the tunnel is wss (TLS reads on the client). */
async function startTlsWorld(connectorHosts: Record<string, string>): Promise<World> {
  const tw = await startTestWorld({
    prefix: 'gsa-relay-',
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: null },
    connectorHosts,
  });
  return {
    name: 'wss',
    edge: tw.edge,
    client: tw.client,
    socksPort: Number(tw.client.addresses.socks!.split(':').at(-1)),
    close: () => tw.close(),
  };
}

/**
 * As startTestWorld, without TLS: the tunnel is plain ws, where the client reads the
 * WebSocket with connectBigReads and lends its reads (util/big-read.ts). `session`: tunnel
 * session limits of both sides (small frames put many frame headers in every read, so
 * reads end inside headers and parsers keep partial frames across reads).
 */
async function startPlainWorld(
  name: string,
  connectorHosts: Record<string, string>,
  session?: { edge: SessionOptions; client: SessionOptions },
): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-relay-ws-'));
  let edge: Edge | null = null;
  let client: RunningClient | null = null;
  const close = async (): Promise<void> => {
    await client?.close();
    await edge?.close({ graceMs: 100 });
    await rm(dir, { recursive: true, force: true });
  };
  try {
    edge = await startEdge({
      stateDir: join(dir, 'edge'),
      tls: false,
      connectorHosts,
      egress: { systemResolver: false, directIp: false },
      limits: {
        graceMs: 100,
        connectTimeoutMs: 2000,
        ...(session ? { session: session.edge } : {}),
      },
    });
    client = await startClient({
      edge: { url: edge.url, ca: edge.caPem },
      tenant: 'edge',
      profilePollMs: 100,
      listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: null },
      resolver: { system: false, directIp: false },
      limits: {
        openTimeoutMs: 3000,
        connectTimeoutMs: 2000,
        udpIdleMs: 2000,
        ...(session ? { session: session.client } : {}),
      },
    });
    await client.waitConnected(10_000);
  } catch (err) {
    await close();
    throw err;
  }
  return {
    name,
    edge,
    client,
    socksPort: Number(client.addresses.socks!.split(':').at(-1)),
    close,
  };
}

async function runFlow(w: World, spec: FlowSpec, timeoutMs: number): Promise<FlowResult> {
  const rng = new Rng((spec.seed ^ 0x9e3779b9) >>> 0);
  const request = Buffer.from(
    `RELAY ${spec.id} ${spec.seed} ${spec.size} ${spec.upSize} ${spec.slowUp ? 1 : 0} ${spec.chatty ? 1 : 0}\n`,
  );
  const res: FlowResult = {
    spec,
    error: null,
    bannerLine: '',
    bannerSize: -1,
    bannerReceived: 0,
    bannerMismatch: -1,
    received: 0,
    receivedHash: '',
    expectedHash: '',
    firstMismatch: -1,
    trailer: Buffer.alloc(0),
    requestBytes: request.length,
    uploadHash: '',
    flowId: null,
    connectionId: null,
  };
  let socket: Socket;
  try {
    ({ socket } = await SocksClient.createConnection({
      proxy: { host: '127.0.0.1', port: w.socksPort, type: 5 },
      command: 'connect',
      destination: { host: HOST, port: PORT },
      timeout: 5000,
    }));
  } catch (e) {
    res.error = `SOCKS connect: ${(e as Error).message}`;
    return res;
  }
  clientSockets.add(socket);
  const localPort = socket.localPort;
  const rec = w.client.flows
    .list()
    .find(
      (f) =>
        f.capture === 'socks' &&
        f.sourcePort === localPort &&
        f.endTime === null &&
        f.destinationFqdn === HOST,
    );
  res.flowId = rec?.flowId ?? null;
  res.connectionId = rec?.connectionId ?? null;

  const expected = new ByteStream(downSeed(spec.seed));
  const recvHash = createHash('sha256');
  const expHash = createHash('sha256');
  const trailer: Buffer[] = [];
  const pacer = spec.slowRead
    ? new Pacer(new Rng(clientPauseSeed(spec.seed)), spec.size, clientTimers)
    : null;
  // What comes back: the banner line, the banner, the download, the trailer.
  let phase: 'line' | 'banner' | 'download' | 'trailer' = 'line';
  let line = Buffer.alloc(0);
  let bannerGen: ByteStream | null = null;
  /** Compares `got` with the next bytes of `gen`; the offset of the first difference or -1. */
  const differs = (got: Buffer, exp: Buffer): number => {
    if (got.equals(exp)) return -1;
    let i = 0;
    while (i < got.length && got[i] === exp[i]) i++;
    return i;
  };
  socket.on('data', (d: Buffer) => {
    let off = 0;
    while (off < d.length) {
      if (phase === 'line') {
        const nl = d.indexOf(10, off);
        line = Buffer.concat([line, d.subarray(off, nl < 0 ? d.length : nl)]);
        off = nl < 0 ? d.length : nl + 1;
        const m = nl < 0 ? null : /^BANNER (\d+) (\d+)$/.exec(line.toString('latin1'));
        if (line.length > 40 || (nl >= 0 && !m)) {
          res.error ??= `bad banner line ${JSON.stringify(line.toString('latin1'))}`;
          socket.destroy();
          return;
        }
        if (m) {
          res.bannerLine = line.toString('latin1');
          res.bannerSize = Number(m[1]);
          bannerGen = new ByteStream(Number(m[2]));
          phase = 'banner';
        }
      } else if (phase === 'banner') {
        const k = Math.min(d.length - off, res.bannerSize - res.bannerReceived);
        if (k > 0) {
          const got = d.subarray(off, off + k);
          const at = differs(got, bannerGen!.take(k));
          if (res.bannerMismatch < 0 && at >= 0) res.bannerMismatch = res.bannerReceived + at;
          res.bannerReceived += k;
          off += k;
        }
        if (res.bannerReceived === res.bannerSize) phase = 'download';
      } else if (phase === 'download') {
        const k = Math.min(d.length - off, spec.size - res.received);
        if (k > 0) {
          const got = d.subarray(off, off + k);
          const exp = expected.take(k);
          recvHash.update(got);
          expHash.update(exp);
          const at = differs(got, exp);
          if (res.firstMismatch < 0 && at >= 0) res.firstMismatch = res.received + at;
          res.received += k;
          off += k;
        }
        if (res.received === spec.size) phase = 'trailer';
      } else {
        trailer.push(Buffer.from(d.subarray(off)));
        off = d.length;
      }
    }
    pacer?.after(socket, d.length);
  });
  socket.on('end', () => socket.end());
  socket.on('error', (e) => {
    res.error ??= `socket: ${e.message}`;
  });
  const closed = once(socket, 'close');

  const uploader = (async () => {
    const gen = new ByteStream(upSeed(spec.seed));
    const h = createHash('sha256');
    socket.write(request);
    await writeStream(socket, gen, spec.upSize, rng, spec.chatty, (c) => h.update(c));
    res.uploadHash = h.digest('hex');
    if (spec.close === 'early' && !socket.destroyed) socket.end();
  })();

  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((r) => {
    timer = setTimeout(() => r('timeout'), timeoutMs);
  });
  const outcome = await Promise.race([closed.then(() => 'closed' as const), timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    const tl = trailer.reduce((n, b) => n + b.length, 0);
    res.error ??= `timed out after ${timeoutMs} ms: received ${res.received} of ${spec.size} bytes and ${tl} of ${TRAILER} trailer bytes; server wrote ${source.flows.get(spec.id)?.written ?? 'nothing'}, got ${source.flows.get(spec.id)?.uploadTotal ?? 'nothing'} of ${spec.upSize} upload bytes`;
    socket.destroy();
  }
  await uploader;
  clientSockets.delete(socket);
  res.receivedHash = recvHash.digest('hex');
  res.expectedHash = expHash.digest('hex');
  res.trailer = Buffer.concat(trailer);
  return res;
}

/** Everything wrong with a finished flow (empty: byte-exact both ways, tunneled, logged). */
async function problems(w: World, r: FlowResult): Promise<string[]> {
  const s = r.spec;
  const p: string[] = [];
  if (r.error) p.push(r.error);
  if (r.bannerSize < 0) {
    p.push('no banner line');
  } else {
    if (r.bannerReceived !== r.bannerSize) {
      p.push(`received ${r.bannerReceived} banner bytes, announced ${r.bannerSize}`);
    }
    if (r.bannerMismatch >= 0) p.push(`banner differs at offset ${r.bannerMismatch}`);
  }
  if (r.received !== s.size) p.push(`received ${r.received} download bytes, expected ${s.size}`);
  if (r.firstMismatch >= 0)
    p.push(`download differs from the expected stream at offset ${r.firstMismatch}`);
  if (r.receivedHash !== r.expectedHash) {
    p.push(`download SHA-256 ${r.receivedHash} != expected ${r.expectedHash}`);
  }
  if (r.trailer.length !== TRAILER) {
    p.push(`trailer: ${r.trailer.length} bytes after the download, expected exactly ${TRAILER}`);
  } else {
    const upHash = r.trailer.subarray(0, 32).toString('hex');
    const upCount = Number(r.trailer.readBigUInt64BE(32));
    const sentHash = r.trailer.subarray(40, 72).toString('hex');
    if (sentHash !== r.expectedHash) {
      p.push(`server sent SHA-256 ${sentHash}, client expected ${r.expectedHash}`);
    }
    if (upCount !== s.upSize)
      p.push(`server received ${upCount} upload bytes, client sent ${s.upSize}`);
    if (upHash !== r.uploadHash) {
      p.push(`server's upload SHA-256 ${upHash} != client's ${r.uploadHash}`);
    }
  }
  const sf = source.flows.get(s.id);
  if (!sf) {
    p.push('the source server never saw the request');
  } else {
    try {
      await until(() => sf.closed, `source connection of flow #${s.id} closed`, 5000);
    } catch (e) {
      p.push((e as Error).message);
    }
    if (sf.bannerLine !== `${r.bannerLine}\n`) {
      p.push(
        `banner line ${JSON.stringify(r.bannerLine)}, server sent ${JSON.stringify(sf.bannerLine)}`,
      );
    }
    if (sf.peer !== '127.0.0.1') p.push(`source peer ${sf.peer}, expected the edge (127.0.0.1)`);
    if (sf.written !== s.size) p.push(`source wrote ${sf.written} bytes, expected ${s.size}`);
    if (sf.uploadTotal !== s.upSize) {
      p.push(`source got ${sf.uploadTotal} upload bytes in all, expected ${s.upSize}`);
    }
    if (sf.error) p.push(`source socket error: ${sf.error}`);
  }
  if (r.flowId === null || r.connectionId === null) {
    p.push('no active SOCKS flow record from the client port while the flow was open');
    return p;
  }
  const id = r.flowId;
  let f: FlowRecord;
  try {
    f = await until(
      () => {
        const x = w.client.flows.get(id);
        return x && x.endTime !== null ? x : undefined;
      },
      `client flow ${id} closed`,
      5000,
    );
  } catch (e) {
    p.push((e as Error).message);
    return p;
  }
  if (f.action !== 'Tunnel') p.push(`flow action ${f.action}, expected Tunnel`);
  if (f.channel !== 'private') p.push(`flow channel ${f.channel}, expected private`);
  if (f.capture !== 'socks') p.push(`flow capture ${f.capture}, expected socks`);
  if (f.destinationPort !== PORT) p.push(`flow port ${f.destinationPort}, expected ${PORT}`);
  if (f.status !== 'Closed') p.push(`flow status ${f.status} (${f.reason}), expected Closed`);
  const up = r.requestBytes + s.upSize;
  const down = r.bannerLine.length + 1 + Math.max(0, r.bannerSize) + s.size + TRAILER;
  if (f.bytesSent !== up) p.push(`flow bytesSent ${f.bytesSent}, expected ${up}`);
  if (f.bytesReceived !== down) p.push(`flow bytesReceived ${f.bytesReceived}, expected ${down}`);
  const cid = r.connectionId;
  try {
    const e = await until(
      () => w.edge.logs.all().find((x) => x.connectionId === cid),
      `edge log ${cid}`,
      5000,
    );
    if (e.trafficType !== 'private') p.push(`edge trafficType ${e.trafficType}, expected private`);
    if (e.action !== 'allow') p.push(`edge action ${e.action}, expected allow`);
    if (e.destinationFQDN !== HOST)
      p.push(`edge destination ${e.destinationFQDN}, expected ${HOST}`);
    if (e.sentBytes !== up) p.push(`edge sentBytes ${e.sentBytes}, expected ${up}`);
    if (e.receivedBytes !== down) p.push(`edge receivedBytes ${e.receivedBytes}, expected ${down}`);
  } catch (err) {
    p.push((err as Error).message);
  }
  return p;
}

// ---------------------------------------------------------------------------------------

/**
 * 16 concurrent flows of 0 B to 24 MiB: sizes at 4 KiB / 64 KiB / 256 KiB / 1 MiB +-1, slow
 * readers among small and big ones (the big slow ones stall long enough for backpressure).
 */
function bigSpecs(rng: Rng, idBase: number): FlowSpec[] {
  const flows: Array<[size: number, slowRead: boolean, chatty?: 'chatty']> = [
    [0, false],
    [1, true],
    [4095, false],
    [4097, true],
    [64 * KiB - 1, false],
    [64 * KiB + 1, true],
    [256 * KiB - 1, false],
    [256 * KiB + 1, true, 'chatty'],
    [MiB - 1, false, 'chatty'],
    [MiB + 1, true],
    [2 * MiB - 1, true, 'chatty'],
    [4 * MiB + 13, false],
    [8 * MiB, true],
    [12 * MiB + 3, true],
    [16 * MiB - 1, false],
    [24 * MiB + 1, true],
  ];
  const uploads = [
    0,
    1,
    rng.int(2, 8 * KiB),
    64 * KiB + 1,
    256 * KiB - 1,
    256 * KiB + 1,
    MiB + 1,
    rng.int(1, 6 * MiB),
  ];
  return flows.map(([size, slowRead, chatty], i) => {
    // The 0-byte download only sends: 3 MiB + 1 into a slow sink.
    const uploading = i === 0 || i % 3 !== 2;
    return {
      id: idBase + i,
      seed: rng.u32(),
      size,
      upSize: i === 0 ? 3 * MiB + 1 : uploading ? rng.pick(uploads) : 0,
      slowRead,
      slowUp: i === 0 || (uploading && rng.float() < 0.5),
      chatty: chatty === 'chatty',
      close: (i >> 1) % 2 === 0 ? 'early' : 'late',
    };
  });
}

/** Short flows: 0-70 KiB each way (some exactly 0 or 1 byte). */
function shortSpecs(rng: Rng, idBase: number, n: number): FlowSpec[] {
  const specs: FlowSpec[] = [];
  for (let i = 0; i < n; i++) {
    const r = rng.float();
    const size = r < 0.08 ? 0 : r < 0.14 ? 1 : rng.int(0, 70 * KiB);
    const uploading = rng.float() < 0.5;
    specs.push({
      id: idBase + i,
      seed: rng.u32(),
      size,
      upSize: uploading ? rng.int(0, 70 * KiB) : 0,
      slowRead: rng.float() < 0.25,
      slowUp: uploading && rng.float() < 0.2,
      chatty: rng.float() < 0.15,
      close: rng.float() < 0.5 ? 'early' : 'late',
    });
  }
  return specs;
}

t.comment(SEED_NOTE);

t.before(async () => {
  source = await startSource();
  const connectorHosts = { [`${HOST}:${PORT}`]: `127.0.0.1:${source.port}` };
  worlds.push(await startTlsWorld(connectorHosts));
  worlds.push(await startPlainWorld('ws', connectorHosts));
  // Odd, small DATA frames and small windows: many frames (and WINDOW updates) per read.
  const small = (maxDataFrame: number): SessionOptions => ({
    maxDataFrame,
    initialWindow: 64 * KiB,
    maxWindow: 512 * KiB,
  });
  worlds.push(
    await startPlainWorld('ws-small-frames', connectorHosts, {
      edge: small(1021),
      client: small(509),
    }),
  );
});

t.teardown(async () => {
  for (const timer of clientTimers) clearTimeout(timer);
  for (const s of clientSockets) s.destroy();
  for (const w of worlds) await w.close();
  await source?.close();
});

t.afterEach((t) => {
  if (!t.passing()) t.comment(`failed with ${SEED_NOTE}`);
});

const WORLDS = [
  { index: 0, label: 'wss (TLS)', url: /^https:\/\/127\.0\.0\.1:\d+$/ },
  {
    index: 1,
    label: 'plain ws (lent big reads)',
    url: /^http:\/\/127\.0\.0\.1:\d+$/,
  },
  {
    index: 2,
    label: 'plain ws, 1021/509-byte DATA frames, small windows',
    url: /^http:\/\/127\.0\.0\.1:\d+$/,
  },
];

for (const { index, label, url } of WORLDS) {
  const world = (): World => worlds[index]!;
  const tag = `[${label}; ${SEED_NOTE}]`;

  t.test(`${label}: the client's private channel is up over a WebSocket to the edge`, async (t) => {
    t.match(world().edge.url, url);
    t.ok(world().client.tunnels.isUp('private'), 'private channel up');
  });

  t.test(
    `${label}: 16 concurrent flows of 0 B to 24 MiB, slow and fast readers, uploads, half-close: byte-exact`,
    async (t) => {
      const w = world();
      const specs = bigSpecs(
        new Rng((SEED ^ (0x1000193 * (index + 1))) >>> 0),
        10_000 * (index + 1),
      );
      const started = Date.now();
      const results = await Promise.all(specs.map((s) => runFlow(w, s, 40_000)));
      const down = specs.reduce((a, s) => a + s.size, 0);
      t.comment(
        `${specs.length} flows, ${(down / MiB).toFixed(1)} MiB down, ` +
          `${(specs.reduce((a, s) => a + s.upSize, 0) / MiB).toFixed(1)} MiB up in ${Date.now() - started} ms`,
      );
      for (const r of results) t.same(await problems(w, r), [], `${describe(r.spec)} ${tag}`);
      t.equal(
        results.reduce((n, r) => n + r.received, 0),
        down,
        `total download bytes ${tag}`,
      );
    },
  );

  t.test(
    `${label}: 200 short flows of 0-70 KiB, 8 at a time: every one byte-exact and tunneled`,
    async (t) => {
      const w = world();
      const rng = new Rng((SEED ^ (0xa5a5a5a5 + index)) >>> 0);
      const N = 200;
      const specs = shortSpecs(rng, 10_000 * (index + 1) + 1000, N);
      const results: FlowResult[] = [];
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < specs.length) {
          const s = specs[next++]!;
          results.push(await runFlow(w, s, 20_000));
          // Sometimes a short gap, so that flows start and end out of step.
          if (rng.float() < 0.2) await sleep(rng.int(0, 3));
        }
      };
      const started = Date.now();
      await Promise.all(Array.from({ length: 8 }, worker));
      t.comment(`${N} flows in ${Date.now() - started} ms`);
      t.equal(results.length, N, 'every flow ran');
      const bad: string[] = [];
      let ok = 0;
      for (const r of results) {
        const p = await problems(w, r);
        if (p.length === 0) ok++;
        else bad.push(`${describe(r.spec)}: ${p.join('; ')}`);
      }
      t.same(bad.slice(0, 20), [], `flows with problems: ${bad.length} ${tag}`);
      t.equal(ok, N, `byte-exact, tunneled flows ${tag}`);
      t.equal(
        new Set(results.map((r) => r.connectionId)).size,
        N,
        'a distinct client flow (connection id) for every flow',
      );
    },
  );
}
