/**
 * A SOCKS5 UDP association from a test (RFC 1928 section 7), by hand: the control
 * connection's greeting and UDP ASSOCIATE (DST 0.0.0.0:0) in one write, and an application
 * UDP socket on 127.0.0.1. Everything is closed by `t`'s teardown.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect } from 'node:net';
import type { Test } from 'tap';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens an association on the SOCKS5 server at 127.0.0.1:`port`: the relay's UDP port. */
export async function udpAssociate(t: Test, port: number): Promise<number> {
  const ctl = connect({ port, host: '127.0.0.1' });
  ctl.on('error', () => {});
  t.teardown(() => ctl.destroy());
  await once(ctl, 'connect');
  const parts: Buffer[] = [];
  ctl.on('data', (c: Buffer) => parts.push(c));
  ctl.write(Buffer.from('050100' + '05030001' + '00000000' + '0000', 'hex'));
  for (let i = 0; i < 100 && Buffer.concat(parts).length < 12; i++) await sleep(10);
  const rep = Buffer.concat(parts).subarray(2);
  if (rep.length < 10 || rep[1] !== 0) {
    throw new Error(`UDP ASSOCIATE not granted: ${rep.toString('hex') || 'no reply in 1 s'}`);
  }
  return rep.readUInt16BE(8);
}

/** The application's UDP socket on 127.0.0.1 and the datagrams it got (headers and all). */
export async function udpApp(t: Test): Promise<{ u: UdpSocket; got: Buffer[] }> {
  const u = createSocket('udp4');
  u.bind(0, '127.0.0.1');
  await once(u, 'listening');
  t.teardown(() => u.close());
  const got: Buffer[] = [];
  u.on('message', (m) => got.push(m));
  return { u, got };
}
