/**
 * A response body delimited by the upstream's close (no Content-Length, no chunked) that the
 * upstream ends with an RST is cut short for the client, also when the RST comes while the
 * proxy has the body's bytes queued (a slow client: backpressure pauses the upstream
 * socket). libuv reports such an RST as an end of input, on which the HTTP client ends the
 * response; the proxy checks that end first (util/reset.ts whenEndIsFin). Bypassed flows:
 * a tunneled upstream says RST in the tunnel itself (http-proxy-responses.test.ts).
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { endedHow } from '../util/ended-how.js';
import { proxyFor, rawUpstream } from './http-proxy-raw.js';

const BODY = 32 * 1024 * 1024;
const HEAD = 'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n';

/**
 * GETs `url` through the proxy as an HTTP/1.0 client (the proxy then delimits the body by
 * its close as well), reads nothing for `stallMs`, then everything; how the connection
 * ended (endedHow).
 */
async function slowGet(port: number, url: string, stallMs: number) {
  const s: Socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  let got = 0;
  const how = endedHow(s);
  await once(s, 'connect');
  s.write(`GET ${url} HTTP/1.0\r\n\r\n`);
  s.pause();
  s.on('data', (c: Buffer) => {
    got += c.length;
  });
  await new Promise((r) => setTimeout(r, stallMs));
  s.resume();
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    how,
    new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), 5000);
    }),
  ]);
  clearTimeout(timer);
  s.destroy();
  return { how: r, got };
}

t.test('a close-delimited body the upstream resets is a reset for the client', async (t) => {
  const up = await rawUpstream(t, (path, s: Socket) => {
    s.write(HEAD);
    s.write(Buffer.alloc(BODY, 0x61));
    if (path === '/reset') setTimeout(() => s.resetAndDestroy(), 100);
    else s.end();
  });
  const { port } = await proxyFor(t);
  const cut = await slowGet(port, `http://direct.test:${up.port}/reset`, 400);
  t.ok(cut.got < BODY, `part of the body arrived (${cut.got} bytes)`);
  t.equal(cut.how, 'ECONNRESET', 'a reset, not a clean end');
  const whole = await slowGet(port, `http://direct.test:${up.port}/whole`, 400);
  t.equal(whole.how, 'end', 'the whole body: a clean end');
  t.ok(whole.got > BODY, `every byte (${whole.got})`);
});
