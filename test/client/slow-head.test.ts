/**
 * The admin API and the PAC server close a connection whose request head does not arrive
 * within their 5 s headersTimeout, also when it dribbles a byte a second: node checks that
 * timeout every connectionsCheckingInterval, 30 s by default, so such a connection was held
 * up to 35 s, and a few hundred of them kept `gsa-emu status` out (found by fuzzing). Both
 * listen on 127.0.0.1 and are closed by the test.
 */
import { connect } from 'node:net';
import t from 'tap';
import { startPacServer } from '../../src/capture/pac.js';
import { adminWorld } from './helpers.js';

/** Sends a request line, then a byte a second; resolves with the seconds until the server closed it. */
async function dribble(port: number, maxS: number): Promise<number | null> {
  const s = connect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  s.resume();
  const t0 = Date.now();
  const closed = new Promise<number>((r) => s.once('close', () => r((Date.now() - t0) / 1000)));
  s.write('GET / HTTP/1.1\r\n');
  const iv = setInterval(() => s.writable && s.write('X'), 1000);
  const timeout = new Promise<null>((r) => setTimeout(() => r(null), maxS * 1000));
  const after = await Promise.race([closed, timeout]);
  clearInterval(iv);
  s.destroy();
  return after;
}

t.test('the PAC server closes a dribbling head within seconds', async (t) => {
  const pac = await startPacServer({ socks: '127.0.0.1:1080', http: null });
  t.teardown(() => pac.close());
  const after = await dribble(pac.address.port, 12);
  t.not(after, null, `closed after ${after} s (headersTimeout 5 s), not held`);
});

t.test('the admin API closes a dribbling head within seconds', async (t) => {
  const { base } = await adminWorld(t);
  const after = await dribble(Number(new URL(base).port), 12);
  t.not(after, null, `closed after ${after} s (headersTimeout 5 s), not held`);
});
