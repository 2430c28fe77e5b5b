/**
 * bench:proxy's load generator and source (bench/proxy.ts runs them; test/bench/load-gen.test.ts
 * checks them against misbehaving fake proxies).
 *
 * - Throughput: each stream asks the source for N bytes of a pattern (byte i is i mod 251)
 *   and the clock stops when the last byte has arrived, not at the proxy's FIN (v2ray holds
 *   a FIN about 1 s after the last byte). The first and last byte of every read are checked
 *   against the pattern, and the count per stream must be exact.
 * - Connection rate: SOCKS5 handshake, CONNECT, 8 bytes out, 1 byte back, close, one
 *   connection after another.
 * A proxy that closes before it answered makes the run fail, never hang.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net, { type AddressInfo, type Socket } from 'node:net';

/** The source's write size. */
const CHUNK = 256 * 1024;

/** The median; the mean of the two middle values for an even count. */
export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export interface Target {
  host: string;
  port: number;
}

/**
 * The load generator's sockets read into one shared 1 MiB buffer (`onread`) and hand each
 * read to `onBytes`, which copies nothing: the generator spends as little CPU as it can, so
 * the 2 vCPUs go to the path being measured (the same for every row).
 */
export interface LgSocket extends Socket {
  onBytes: (b: Buffer) => void;
  /** Bytes that arrived with the SOCKS reply, counted by the next reader. */
  early: number;
}
const LG_BUFFER = Buffer.allocUnsafe(1 << 20);

export function lgConnect(t: Target): LgSocket {
  const s = net.connect({
    port: t.port,
    host: t.host,
    noDelay: true,
    onread: {
      buffer: LG_BUFFER,
      callback: (n: number, buf: Buffer): boolean => {
        s.onBytes(buf.subarray(0, n));
        return true;
      },
    },
  }) as LgSocket;
  s.onBytes = () => {};
  s.early = 0;
  return s;
}

/** Minimal SOCKS5 CONNECT (no auth); resolves with the socket after the reply. */
export function socksConnect(proxy: Target, dst: Target): Promise<LgSocket> {
  return new Promise((resolve, reject) => {
    const s = lgConnect(proxy);
    const name = Buffer.from(dst.host);
    const isIp = net.isIPv4(dst.host);
    const req = isIp
      ? Buffer.from([5, 1, 0, 1, ...dst.host.split('.').map(Number), dst.port >> 8, dst.port & 255])
      : Buffer.concat([
          Buffer.from([5, 1, 0, 3, name.length]),
          name,
          Buffer.from([dst.port >> 8, dst.port & 255]),
        ]);
    let buf = Buffer.alloc(0);
    let stage = 0;
    s.onBytes = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]); // copies out of the shared buffer
      if (stage === 0 && buf.length >= 2) {
        buf = buf.subarray(2);
        stage = 1;
        // Request only after the method reply, as curl does (microsocks reads one message per recv).
        s.write(req);
      }
      if (stage === 1 && buf.length >= 10) {
        s.onBytes = () => {};
        if (buf[1] !== 0) {
          s.destroy();
          reject(new Error(`SOCKS reply ${buf[1]}`));
          return;
        }
        s.early = buf.length - (buf[3] === 4 ? 22 : 10);
        resolve(s);
      }
    };
    s.once('error', reject);
    s.once('end', () => reject(new Error('proxy closed before its CONNECT reply')));
    s.once('connect', () => s.write(Buffer.from([5, 1, 0])));
  });
}

export function openDirect(dst: Target): Promise<LgSocket> {
  return new Promise((resolve, reject) => {
    const s = lgConnect(dst);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Opens a connection to `dst`; `proxy`: the SOCKS5 proxy it goes through (none: direct). */
export type Opener = ((dst: Target) => Promise<LgSocket>) & { proxy?: Target };

/** Connections through the SOCKS5 proxy at `proxy`. */
export function viaSocks(proxy: Target): Opener {
  return Object.assign((d: Target) => socksConnect(proxy, d), { proxy });
}

const PERIOD = 251;
/** Reads `bytes` bytes of the source's pattern (first and last byte of each read checked). */
export function drain(s: LgSocket, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = s.early;
    s.onBytes = (c: Buffer) => {
      if (c[0] !== n % PERIOD || c[c.length - 1] !== (n + c.length - 1) % PERIOD) {
        reject(new Error(`wrong data at byte ${n}`));
      }
      n += c.length;
      if (n >= bytes) resolve(n);
    };
    s.once('end', () => resolve(n));
    s.once('error', reject);
  });
}

/** Source: the first 8 bytes from the client are the byte count to send; then it ends. */
export async function startSource(): Promise<{ port: number; close(): void }> {
  const chunk = Buffer.alloc(CHUNK + PERIOD);
  for (let i = 0; i < chunk.length; i++) chunk[i] = i % PERIOD;
  const server = net.createServer((s) => {
    s.on('error', () => {});
    // The 8-byte header may come in pieces (a proxy is free to split it). A request that
    // starts with "GET " is HTTP instead (curl): GET /<count> gets <count> bytes as its body.
    let got = Buffer.alloc(0);
    const onHeader = (c: Buffer): void => {
      got = Buffer.concat([got, c]);
      if (got.length < 8) return;
      if (got.subarray(0, 4).toString('latin1') === 'GET ') {
        const head = got.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        s.removeListener('data', onHeader);
        const m = /^GET \/(\d+) /.exec(head);
        if (m === null) {
          s.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
          return;
        }
        s.write(
          `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${m[1]}\r\nConnection: close\r\n\r\n`,
        );
        start(Number(m[1]), true);
        return;
      }
      s.removeListener('data', onHeader);
      start(Number(got.readBigUInt64BE(0)));
    };
    s.on('data', onHeader);
    const start = (count: number, http = false): void => {
      let left = count;
      let sent = 0;
      if (left === 0) {
        if (http) s.end();
        else s.end('x');
        return;
      }
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(left, CHUNK);
          left -= n;
          const o = sent % PERIOD;
          sent += n;
          const ok = s.write(chunk.subarray(o, o + n));
          if (!ok) {
            s.once('drain', pump);
            return;
          }
        }
        s.end();
      };
      pump();
    };
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, close: () => server.close() };
}

export function header(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

export async function throughput(
  open: Opener,
  dst: Target,
  streams: number,
  bytes: number,
): Promise<number> {
  const t0 = performance.now();
  const got = await Promise.all(
    Array.from({ length: streams }, async () => {
      const s = await open(dst);
      const d = drain(s, bytes);
      s.write(header(bytes));
      const n = await d;
      s.destroy();
      return n;
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const total = got.reduce((a, b) => a + b, 0);
  if (total !== streams * bytes) throw new Error(`short transfer ${total} of ${streams * bytes}`);
  return total / secs / 1e9; // GB/s
}

/** CPU time (user + system, all threads) of a process in microseconds, or NaN. */
function procCpuUs(pid: number): number {
  try {
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1e6) / 100; // USER_HZ is 100 on Linux
  } catch {
    return Number.NaN;
  }
}

/**
 * Sequential connections per second. With CPU_REPORT=1 (and more than 50 connections), also
 * prints the CPU per connection of the generator and of `procs` (the processes of the row
 * being measured, read from /proc: Linux).
 */
export async function connRate(
  open: Opener,
  dst: Target,
  n: number,
  procs: Array<{ role: string; pid: number }> = [],
): Promise<number> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const procs0 = procs.map((p) => procCpuUs(p.pid));
  for (let i = 0; i < n; i++) {
    const s = await open(dst);
    // The first byte is the answer: do not wait for the proxy to relay the FIN (v2ray
    // holds half-closed connections open for a while).
    const first = new Promise<void>((resolve, reject) => {
      if (s.early > 0) resolve();
      s.onBytes = () => resolve();
      s.once('error', reject);
      s.once('end', () => reject(new Error('closed before the answer')));
    });
    s.write(header(0));
    await first;
    s.destroy();
  }
  const secs = (performance.now() - t0) / 1000;
  if (process.env.CPU_REPORT === '1' && n > 50) {
    // The load generator and the source: their CPU per connection bounds any proxy's rate.
    const cpu = process.cpuUsage(cpu0);
    const per = (cpu.user + cpu.system) / n;
    process.stderr.write(
      `generator+source: ${per.toFixed(0)} us CPU and ${((secs * 1e6) / n).toFixed(0)} us wall per connection\n`,
    );
    const used = procs.map(
      (p, i) => `${p.role} ${((procCpuUs(p.pid) - procs0[i]!) / n).toFixed(0)}`,
    );
    if (used.length) process.stderr.write(`  proxy CPU us per connection: ${used.join(', ')}\n`);
  }
  return n / secs;
}

/**
 * The method: curl downloads `bytes` from the source (HTTP, GET /<bytes>) through the
 * SOCKS5 proxy (`--socks5-hostname`, the name resolved by the proxy) or directly (null), in
 * `streams` parallel curl processes; GB/s over the wall time from the first start to the
 * last exit (a curl process starts in a few ms). Each curl must report HTTP 200 and every
 * byte (curl writes them to /dev/null: their contents are not checked in this mode).
 */
export async function curlThroughput(
  proxy: Target | null,
  dst: Target,
  streams: number,
  bytes: number,
): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: streams }, async () => {
      const args = [
        '-sS',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code} %{size_download}',
        '--max-time',
        '600',
        ...(proxy ? ['--socks5-hostname', `${proxy.host}:${proxy.port}`] : []),
        `http://${dst.host}:${dst.port}/${bytes}`,
      ];
      const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
      });
      child.stderr.on('data', (c: Buffer) => {
        err += c.toString();
      });
      const [code] = (await once(child, 'close')) as [number | null];
      const [status, size] = out.trim().split(' ');
      if (code !== 0 || status !== '200' || Number(size) !== bytes) {
        throw new Error(
          `curl ${args.join(' ')}: exit ${code}, HTTP ${status}, ${size} of ${bytes} bytes ${err.trim()}`,
        );
      }
    }),
  );
  return (streams * bytes) / ((performance.now() - t0) / 1000) / 1e9;
}
