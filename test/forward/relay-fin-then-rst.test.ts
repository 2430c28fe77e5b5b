/**
 * An RST after the destination's FIN is no truncation (found in review of the end probe,
 * util/reset.ts whenEndIsFin): the destination sends a complete response, its FIN, then
 * closes; a byte the client sends afterwards makes the destination's kernel answer with an
 * RST, which arrives after its FIN (Linux tcp_reset in CLOSE_WAIT sets EPIPE). Where the
 * relay had the FIN queued unread (backpressure from a slow client) when that RST came, the
 * data was complete and the end was a FIN: the client should see every byte and a clean end.
 * Sizes are swept (the FIN is queued only when the response about fills the buffers); `ss` tells which runs had the FIN queued at the relay (CLOSE-WAIT with
 * unread bytes, the destination in FIN-WAIT-2: every byte acknowledged).
 */
import { execSync } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import t from 'tap';
import { hex, sleep, startSocks, u16 } from '../capture/helpers.js';
import { endedHow } from '../util/ended-how.js';

const from = Number(process.env.FROM ?? 4_500_000);
const SIZES = Array.from({ length: 12 }, (_, i) => from + i * 96 * 1024);

/** One download of `RESP` bytes; how it ended, and whether the FIN was queued at the relay. */
async function download(t: { teardown(fn: () => unknown): void }, RESP: number) {
  const sockets = new Set<Socket>();
  const srv = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.once('data', () => {
      let left = RESP;
      const tick = (): void => {
        const n = Math.min(left, 64 * 1024);
        left -= n;
        if (left > 0) {
          s.write(Buffer.alloc(n, 0x61));
          setTimeout(tick, 1);
          return;
        }
        s.end(Buffer.alloc(n, 0x61), () => setTimeout(() => s.destroy(), 300));
      };
      tick();
    });
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  const { port: socks, flows } = await startSocks(t);
  const c = connect({ port: socks, host: '127.0.0.1', allowHalfOpen: true });
  c.on('error', () => {});
  await once(c, 'connect');
  c.pause();
  let got = 0;
  c.on('data', (b: Buffer) => {
    got += b.length;
  });
  const how = endedHow(c);
  c.write(
    Buffer.concat([hex('05 01 00'), hex('05 01 00 01 7f000001'), u16(port), Buffer.from('req')]),
  );
  await sleep(1500); // the response fills the buffers; the server has closed
  const ss = execSync(`ss -tnH state all '( sport = :${port} or dport = :${port} )'`).toString();
  const relaySide = ss
    .split('\n')
    .find((l) => new RegExp(`127\\.0\\.0\\.1:${port}\\s*$`).test(l.trim()));
  const serverSide = ss
    .split('\n')
    .find((l) => new RegExp(`127\\.0\\.0\\.1:${port}\\s+127`).test(l.trim()));
  const finQueued =
    /^CLOSE-WAIT\s+[1-9]/.test(relaySide?.trim() ?? '') &&
    /^FIN-WAIT-2/.test(serverSide?.trim() ?? '');
  c.write('late'); // the closed destination answers this with an RST
  await sleep(300);
  c.resume();
  const h = await Promise.race([how, sleep(5000).then(() => 'timeout')]);
  const f = flows.list()[0];
  c.destroy();
  for (const s of sockets) s.destroy();
  srv.close();
  return {
    RESP,
    finQueued,
    how: h,
    complete: got === 12 + RESP,
    flowReason: f?.reason,
  };
}

t.test('FIN then RST: a complete response ends cleanly', async (t) => {
  const rows = [];
  for (const n of SIZES) rows.push(await download(t, n));
  for (const r of rows) t.comment(JSON.stringify(r));
  t.ok(
    rows.some((r) => r.finQueued),
    'some runs had the FIN queued unread at the relay',
  );
  // The destination's FIN came after every byte: where the client got them all, its end is a FIN.
  for (const r of rows.filter((r) => r.complete)) {
    t.equal(r.how, 'end', `${r.RESP}: every byte arrived; the end is the destination's FIN`);
  }
});
