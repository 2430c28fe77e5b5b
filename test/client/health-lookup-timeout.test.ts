/**
 * The health checks answer when the edge's hostname cannot be looked up in time. A lookup
 * runs on libuv's thread pool; here every pool thread is held in an open(2) of a FIFO with
 * no writer, so `dns.lookup('localhost')` cannot start, as with a resolver that does not
 * answer. The checks must still come back, in about the 2 s the reachability probe allows,
 * and say the name did not resolve in time. In process and on loopback.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, open, openSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { edgeAndClient } from './health-helpers.js';

t.test('health answers while the edge name cannot be looked up', async (t) => {
  const { client, dir } = await edgeAndClient(t, '127.0.0.1', 'localhost');

  const before = await client.health();
  t.match(
    before.find((c) => c.name === 'Edge hostname resolves'),
    { status: 'pass' },
    'the name resolves while the pool is free',
  );

  // Hold every thread of the pool: an open(2) of a FIFO for reading waits for a writer.
  const threads = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  const fifos: string[] = [];
  const opened: Promise<number>[] = [];
  for (let i = 0; i < threads; i++) {
    const f = join(dir, `fifo-${i}`);
    execFileSync('mkfifo', [f]);
    fifos.push(f);
    opened.push(new Promise((res, rej) => open(f, 'r', (e, fd) => (e ? rej(e) : res(fd)))));
  }
  // Let the reads go: a writer on each FIFO completes its open (from this thread: the
  // readers are waiting, so a write open does not block), then both ends close.
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    for (const f of fifos) closeSync(openSync(f, 'w'));
    for (const fd of await Promise.all(opened)) closeSync(fd);
  };
  t.teardown(release);
  // The pool is busy once a lookup cannot finish: a lookup of 'localhost' takes
  // microseconds on a free pool.
  await new Promise((r) => setTimeout(r, 100));

  const started = Date.now();
  const during = await Promise.race([
    client.health(),
    new Promise<null>((r) => setTimeout(() => r(null), 15_000).unref()),
  ]);
  const took = Date.now() - started;
  t.not(during, null, 'the checks come back while the lookup cannot run');
  t.ok(took < 6_000, `within the probes' 2 s limits (took ${took} ms)`);
  t.match(
    during?.find((c) => c.name === 'Edge hostname resolves'),
    { status: 'fail', detail: /^no answer resolving localhost within 2 s$/ },
    'the name check says the lookup did not answer',
  );
  t.match(
    during?.find((c) => c.name.startsWith('Edge reachable')),
    { status: 'fail', detail: /no answer from localhost:\d+ within 2 s/ },
    'the reachability probe, which looks the name up as well, says so too',
  );

  await release();
  const after = await client.health();
  t.match(
    after.find((c) => c.name === 'Edge hostname resolves'),
    { status: 'pass' },
    'and passes again once the pool is free',
  );
});
