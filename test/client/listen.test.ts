/**
 * Listeners that cannot start: a ListenError naming the listener and saying why (port in
 * use, address not on this machine); the client replaces a busy port only where told to
 * (`anyPortIfBusy`, which `gsa-emu up` sets for its default ports) and otherwise fails
 * without leaving a listener behind; the CLI adds the flag that picks another port.
 * Everything listens on 127.0.0.1 and is stopped by the test.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startClient } from '../../src/client/client.js';
import { startEdge } from '../../src/edge/server.js';
import { ListenError } from '../../src/errors.js';
import { listenOn } from '../../src/util/listen.js';
import { tempDir } from '../edge/helpers.js';
import { freePort } from '../util/free-port.js';
import { collect } from '../util/ts-child.js';

/** A port held by another listener for the test's duration. */
async function busyPort(t: Test): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => s.close(() => r())));
  return (s.address() as AddressInfo).port;
}

function closeServer(s: Server): Promise<void> {
  return new Promise((r) => s.close(() => r()));
}

t.test('listenOn: a busy port and a foreign address are ListenErrors that say so', async (t) => {
  const port = await busyPort(t);
  const s = createServer();
  const err = (await listenOn(s, port, '127.0.0.1', 'SOCKS5 proxy').catch((e) => e)) as Error;
  t.ok(err instanceof ListenError, 'a ListenError');
  t.match(err, {
    code: 'GSA_ERR_LISTEN',
    errno: 'EADDRINUSE',
    what: 'SOCKS5 proxy',
    host: '127.0.0.1',
    port,
  });
  t.equal(
    err.message,
    `the SOCKS5 proxy cannot listen on 127.0.0.1:${port}: the port is in use (by another gsa-emu, or another program)`,
  );
  t.match((err as ListenError).withHint('use --socks-port').message, /; use --socks-port$/);

  // 192.0.2.1 (TEST-NET-1) is not an address of this machine, unless nonlocal binds are on.
  const foreign = createServer();
  const e2 = await listenOn(foreign, 0, '192.0.2.1', 'HTTP proxy').then(
    () => null,
    (e: unknown) => e,
  );
  if (e2 === null) {
    await closeServer(foreign);
    t.comment('skipped the foreign-address case: this host lets sockets bind non-local addresses');
  } else {
    t.match(e2, { code: 'GSA_ERR_LISTEN', errno: 'EADDRNOTAVAIL' });
    t.match((e2 as Error).message, /192\.0\.2\.1 is not an address of this machine/);
  }

  const ok = createServer();
  const addr = await listenOn(ok, 0, '127.0.0.1', 'admin API');
  t.ok(addr.port > 0, 'a free port listens and resolves with its address');
  await closeServer(ok);
});

t.test('the client: a busy port fails, or moves where anyPortIfBusy allows', async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const edge = await startEdge({ stateDir: join(tmp.dir, 'edge'), tls: false, persistKey: false });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const busy = await busyPort(t);

  const moved = await startClient({
    edge: { url: edge.url, ca: null },
    tenant: 'edge',
    listen: {
      socksPort: busy,
      httpPort: null,
      pacPort: null,
      adminPort: null,
      anyPortIfBusy: { socks: true },
    },
    processLookup: false,
  });
  t.teardown(() => moved.close());
  t.not(moved.socks!.address.port, busy, 'SOCKS5 listens elsewhere');
  t.ok(moved.socks!.address.port > 0);
  t.equal(moved.addresses.socks, `127.0.0.1:${moved.socks!.address.port}`);
  t.same(moved.listenNotes, [
    `the SOCKS5 proxy's default port ${busy} is in use: it listens on a free port`,
  ]);

  // Not allowed for this listener: the start fails, and the SOCKS listener that had
  // already started is closed again (its port can be taken at once).
  const socksPort = await freePort();
  const err = await startClient({
    edge: { url: edge.url, ca: null },
    tenant: 'edge',
    listen: {
      socksPort,
      httpPort: busy,
      pacPort: null,
      adminPort: null,
      anyPortIfBusy: { socks: true },
    },
    processLookup: false,
  }).then(
    (c) => {
      void c.close();
      return null;
    },
    (e: unknown) => e,
  );
  t.match(err, { code: 'GSA_ERR_LISTEN', errno: 'EADDRINUSE', what: 'HTTP proxy', port: busy });
  const again = createServer();
  await t.resolves(listenOn(again, socksPort, '127.0.0.1', 'check'), 'the SOCKS port is free');
  await closeServer(again);
});

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first';

t.test('gsa-emu up: a busy port it was given is an error naming the flag', { skip }, async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const busy = await busyPort(t);
  const child = spawn(
    process.execPath,
    [
      mainJs,
      'up',
      '--once',
      '--no-process-lookup',
      '--state-dir',
      tmp.dir,
      '--socks-port',
      String(busy),
      '--http-port',
      '0',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const r = await collect(child, 30_000);
  t.equal(r.code, 1, 'exit code 1');
  t.equal(
    r.err.trim(),
    `gsa-emu: the SOCKS5 proxy cannot listen on 127.0.0.1:${busy}: the port is in use (by another gsa-emu, or another program); choose another port with --socks-port <n> (0: any free port)`,
  );
});
