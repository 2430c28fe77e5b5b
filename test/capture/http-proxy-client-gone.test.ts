/**
 * Plain HTTP: a client that closes or half-closes its connection (a FIN; the two look alike)
 * during a silent response. Its FIN is not passed upstream; the request is given up once no
 * byte has moved to or from the client for halfCloseTimeoutMs (300 ms here), so the flow and
 * both connections end (review of the plain HTTP path, issue 4). Servers listen on
 * 127.0.0.1 and are stopped by their test.
 */
import type { Socket } from 'node:net';
import t from 'tap';
import { delay } from '../util/wait.js';
import { eventually, openClient, proxyFor, rawUpstream } from './http-proxy-raw.js';

const EVENTS =
  'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n';
const event = (i: number): string => {
  const data = `data: ${i}\n\n`;
  return `${data.length.toString(16)}\r\n${data}\r\n`;
};

for (const how of ['destroy', 'end'] as const) {
  t.test(`a client that goes away (${how}) during a silent response frees the flow`, async (t) => {
    // An event stream: the head and one event, then silence (the server keeps its side open).
    const up = await rawUpstream(t, (_path, s: Socket) => {
      s.write(`${EVENTS}${event(1)}`);
    });
    const { port, flows, tunnels, connections } = await proxyFor(t, { halfCloseTimeoutMs: 300 });
    tunnels.behaviour = { kind: 'connect', to: { 'tunnel.test': up.port } };
    for (const host of [`direct.test:${up.port}`, 'tunnel.test']) {
      const before = flows.activeCount;
      const c = await openClient(port);
      c.s.write(`GET http://${host}/events HTTP/1.1\r\nHost: x\r\n\r\n`);
      t.ok(await eventually(() => c.got.includes('data: 1'), 3000), `${host}: first event`);
      t.equal(flows.activeCount, before + 1, `${host}: the flow is open`);
      // The application is done: it closes or half-closes and never reads again.
      if (how === 'destroy') c.s.destroy();
      else c.s.end();
      const freed = await eventually(() => flows.activeCount === 0, 3000);
      t.ok(freed, `${host}: the flow ends after the client left (active: ${flows.activeCount})`);
      t.ok(
        await eventually(async () => (await connections()) === 0, 1000),
        `${host}: the proxy connection is closed`,
      );
      if (how === 'end') {
        // The reset reaches the client socket a moment after the proxy let go of it.
        await eventually(() => c.closed, 1000);
        t.equal(c.error, 'ECONNRESET', `${host}: the response is cut short`);
      }
      c.s.destroy();
    }
  });
}

t.test('a half-closed client keeps a response that moves, however long', async (t) => {
  // One event every 100 ms for 1 s (more than 3 x halfCloseTimeoutMs), then the last chunk.
  const up = await rawUpstream(t, (_path, s: Socket) => {
    s.write(EVENTS);
    let i = 0;
    const iv = setInterval(() => {
      if (s.destroyed) clearInterval(iv);
      else if (++i <= 10) s.write(event(i));
      else {
        clearInterval(iv);
        s.end('0\r\n\r\n');
      }
    }, 100);
  });
  const { port, flows } = await proxyFor(t, { halfCloseTimeoutMs: 300 });
  const c = await openClient(port);
  c.s.end(`GET http://direct.test:${up.port}/events HTTP/1.1\r\nHost: x\r\n\r\n`);
  t.ok(await eventually(() => c.closed, 3000), 'the proxy closes after the response');
  t.match(c.got, /data: 10\n\n\r\n0\r\n\r\n$/, 'the whole stream, to its last chunk');
  t.equal(c.error, null, 'a clean end');
  t.equal(flows.activeCount, 0);
});

t.test('a half-closed client whose server never answers gets a 504', async (t) => {
  // The request arrives and the client half-closes (`nc -N`); the server says nothing.
  let finSeen = false;
  const up = await rawUpstream(t, (_path, s: Socket) => {
    s.on('end', () => {
      finSeen = true;
    });
  });
  const { port, flows } = await proxyFor(t, { halfCloseTimeoutMs: 300, responseTimeoutMs: 60_000 });
  const c = await openClient(port);
  const t0 = Date.now();
  c.s.end(`GET http://direct.test:${up.port}/quiet HTTP/1.1\r\nHost: x\r\n\r\n`);
  await delay(100);
  t.equal(finSeen, false, "the client's FIN is not passed upstream");
  t.ok(await eventually(() => c.closed, 3000), 'the proxy closes');
  t.match(c.got, /^HTTP\/1\.1 504 Gateway Timeout\r\n/);
  t.equal(
    c.got.slice(c.got.indexOf('\r\n\r\n') + 4),
    `no response from direct.test:${up.port} within 300 ms of the client's FIN\n`,
  );
  t.ok(Date.now() - t0 >= 280, 'not before halfCloseTimeoutMs');
  t.ok(await eventually(() => flows.activeCount === 0, 1000), 'the flow is closed');
});
