/** Shared helpers for the tunnel tests (not a test file itself). */
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { Session, type SessionOptions } from '../../src/tunnel/session.js';
import { memoryPair } from '../../src/tunnel/transport.js';
import type { OpenMeta } from '../../src/tunnel/types.js';

export function meta(over: Partial<OpenMeta> = {}): OpenMeta {
  return {
    proto: 'tcp',
    host: 'example.test',
    ip: null,
    port: 443,
    flowId: 'f1',
    connectionId: 'c1',
    channel: 'internet',
    ruleId: null,
    policyId: null,
    srcIp: '127.0.0.1',
    srcPort: 50000,
    ...over,
  };
}

export function pair(
  opts: SessionOptions = {},
  highWater?: number,
): { client: Session; server: Session } {
  const [a, b] = memoryPair(highWater);
  const o = { keepaliveInterval: 0, ...opts };
  return { client: new Session(a, 'client', o), server: new Session(b, 'server', o) };
}

/** Reads a stream to its end; resolves with the bytes' sha256 and length. */
export function digest(s: Duplex): Promise<{ sha: string; n: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (c: Buffer) => {
      h.update(c);
      n += c.length;
    });
    s.once('end', () => resolve({ sha: h.digest('hex'), n }));
    s.once('error', reject);
  });
}

export function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

export function random(n: number): Buffer {
  return randomBytes(n);
}

/** Writes `data` in chunks of at most `chunk` bytes, respecting backpressure, then end(). */
export async function writeAll(s: Duplex, data: Buffer, chunk = 64 * 1024): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) {
    if (!s.write(data.subarray(off, off + chunk))) {
      await new Promise<void>((r, j) => {
        const onErr = (e: Error): void => j(e);
        s.once('error', onErr);
        s.once('drain', () => {
          s.removeListener('error', onErr);
          r();
        });
      });
    }
  }
  s.end();
}

export { delay, until } from '../util/wait.js';
