/**
 * Helpers of the SOCKS5 tests (not a test file): a SOCKS5 server over a real Forwarder with
 * a table classifier, raw clients with bounded waits, and the request encodings the tests
 * send.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { type Socks5Options, Socks5Server } from '../../src/capture/socks5.js';
import type { Decision } from '../../src/classify/types.js';
import { FlowTable } from '../../src/forward/flow-table.js';
import { Forwarder, type ForwarderOptions } from '../../src/forward/forwarder.js';
import { Resolver } from '../../src/forward/resolver.js';
import type { ChannelTunnels } from '../../src/tunnel/types.js';
import {
  clientState,
  decision,
  FakeClassifier,
  type FakeRule,
  FakeTunnels,
} from '../forward/fixtures/fakes.js';

export const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

export const TUNNEL: Decision = decision({ action: 'tunnel', channel: 'internet', ruleId: 'ia' });
export const BYPASS: Decision = decision({ action: 'bypass', channel: 'internet', ruleId: 'bp' });

/** A SOCKS5 server on 127.0.0.1 over a real Forwarder; `rules` default: bypass everything. */
export async function startSocks(
  t: { teardown(fn: () => unknown): void },
  o: {
    rules?: FakeRule[];
    tunnels?: ChannelTunnels;
    socks?: Partial<Socks5Options>;
    forwarder?: Partial<ForwarderOptions>;
  } = {},
): Promise<{ server: Socks5Server; port: number; flows: FlowTable; forwarder: Forwarder }> {
  const classifier = new FakeClassifier(o.rules ?? [{ decision: BYPASS }]);
  const flows = new FlowTable();
  const forwarder = new Forwarder({
    classifier: () => classifier,
    tunnels: o.tunnels ?? new FakeTunnels(),
    clientState: () => clientState(),
    resolver: new Resolver({ hosts: { 'direct.test': '127.0.0.1' }, system: false }),
    flows,
    openTimeoutMs: 1000,
    ...o.forwarder,
  });
  const server = new Socks5Server({ forwarder, port: 0, handshakeTimeoutMs: 2000, ...o.socks });
  const addr = await server.listen();
  t.teardown(async () => {
    await server.close();
    forwarder.close();
  });
  return { server, port: addr.port, flows, forwarder };
}

/** CONNECT request for a domain name (ATYP 3). */
export function domainRequest(host: string, port: number, cmd = 1): Buffer {
  const h = Buffer.from(host, 'latin1');
  return Buffer.concat([Buffer.from([5, cmd, 0, 3, h.length]), h, u16(port)]);
}

/** CONNECT request for an IPv6 address given as 16 bytes of hex (ATYP 4). */
export function ipv6Request(addrHex: string, port: number, cmd = 1): Buffer {
  return Buffer.concat([Buffer.from([5, cmd, 0, 4]), hex(addrHex), u16(port)]);
}

export function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

export interface RawSocks {
  s: Socket;
  /** Everything received so far. */
  data(): Buffer;
  /** Resolves once `n` bytes arrived, or the server ended the connection, or after `ms`. */
  waitBytes(n: number, ms?: number): Promise<Buffer>;
  /** Resolves true once the server ended the connection (FIN or close), false after `ms`. */
  ended(ms?: number): Promise<boolean>;
}

/** A raw client on 127.0.0.1:`port` that writes `out` at once (destroyed at teardown). */
export async function rawClient(
  t: { teardown(fn: () => unknown): void },
  port: number,
  out: Buffer[],
  host = '127.0.0.1',
): Promise<RawSocks> {
  const s = connect({ port, host, allowHalfOpen: true });
  s.on('error', () => {});
  t.teardown(() => s.destroy());
  await once(s, 'connect');
  const parts: Buffer[] = [];
  let isClosed = false;
  let isEnded = false;
  s.on('data', (c: Buffer) => parts.push(c));
  s.once('end', () => {
    isEnded = true;
  });
  s.once('close', () => {
    isClosed = true;
  });
  for (const b of out) s.write(b);
  const data = (): Buffer => Buffer.concat(parts);
  return {
    s,
    data,
    async waitBytes(n, ms = 3000) {
      const end = Date.now() + ms;
      while (data().length < n && !isEnded && !isClosed && Date.now() < end) await sleep(10);
      return data();
    },
    async ended(ms = 3000) {
      const end = Date.now() + ms;
      while (!isEnded && !isClosed && Date.now() < end) await sleep(10);
      return isEnded || isClosed;
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
