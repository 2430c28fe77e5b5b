/**
 * One device per state folder: `<state-dir>/device-id` (a random UUID, 0600, written whole
 * on first use; a damaged file replaced with a warning) is the client's deviceId at the
 * edge, so two `up`s with their own state folders on one shared edge are two devices in its
 * traffic log (and two principals for its session limit), not the one demo device.
 * In process and on loopback; the edge, the echo server and both worlds are closed here.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { DEVICE_ID_FILE, startWorld, stateDeviceId, type World } from '../../src/cli/world.js';
import { startEdge } from '../../src/edge/server.js';
import { socksConnect } from '../client/edge-restart-helpers.js';
import { echoServer, tempDir, until } from '../edge/helpers.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

t.test('the device id file: made once (0600), kept, a damaged one replaced', async (t) => {
  const tmp = await tempDir('gsa-device-id-');
  t.teardown(tmp.remove);
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  const file = join(tmp.dir, DEVICE_ID_FILE);
  const id = stateDeviceId(tmp.dir, warn);
  t.match(id, UUID, 'a random UUID');
  t.equal(readFileSync(file, 'utf8'), `${id}\n`, 'written to <state-dir>/device-id');
  if (process.platform !== 'win32') t.equal(lstatSync(file).mode & 0o777, 0o600, 'mode 0600');
  t.equal(stateDeviceId(tmp.dir, warn), id, 'the same id on the next run');
  t.same(warnings, [], 'no warning');
  t.same(
    readdirSync(tmp.dir).filter((n) => n !== DEVICE_ID_FILE),
    [],
    'no temporary file left',
  );
  const other = join(tmp.dir, 'other');
  mkdirSync(other);
  t.not(stateDeviceId(other, warn), id, 'another state folder: another device');

  writeFileSync(file, 'b3c1d2e4-5f60-4a7b-8c9d-0e1f2a3b4c5d garbage');
  const fresh = stateDeviceId(tmp.dir, warn);
  t.match(fresh, UUID);
  t.not(fresh, id);
  t.equal(readFileSync(file, 'utf8'), `${fresh}\n`, 'the damaged file is replaced');
  t.match(warnings, [/device-id was damaged \(not a UUID\): replaced with a new device id/]);

  if (process.platform !== 'win32') {
    const target = join(tmp.dir, 'target');
    writeFileSync(target, 'keep');
    const linked = join(tmp.dir, 'linked');
    mkdirSync(linked);
    symlinkSync(target, join(linked, DEVICE_ID_FILE));
    const viaLink = stateDeviceId(linked, warn);
    t.ok(lstatSync(join(linked, DEVICE_ID_FILE)).isFile(), 'a link is replaced by a file');
    t.equal(readFileSync(join(linked, DEVICE_ID_FILE), 'utf8'), `${viaLink}\n`);
    t.equal(readFileSync(target, 'utf8'), 'keep', 'not written through the link');
    t.match(warnings[1], /symbolic link/);
  }
});

t.test('two up runs with their own state folders are two devices at one edge', async (t) => {
  const tmp = await tempDir('gsa-device-id-edge-');
  t.teardown(tmp.remove);
  const echo = await echoServer();
  t.teardown(echo.close);
  const logFile = join(tmp.dir, 'edge-traffic.jsonl');
  const edge = await startEdge({
    stateDir: join(tmp.dir, 'edge'),
    tls: false,
    hostsMap: { 'www.example.test': `127.0.0.1:${echo.port}` },
    egress: { systemResolver: false, directIp: false },
    logFile,
  });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const worlds: World[] = [];
  t.teardown(async () => {
    for (const w of worlds) await w.stop();
  });
  for (const name of ['a', 'b']) {
    worlds.push(
      await startWorld({
        run: 'up',
        stateDir: join(tmp.dir, name),
        edge: edge.url,
        logLevel: 'silent',
        processLookup: false,
        localSubnets: [],
        listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: null },
      }),
    );
  }
  const ids: string[] = [];
  for (const w of worlds) {
    const id = readFileSync(join(w.dir, DEVICE_ID_FILE), 'utf8').trim();
    t.match(id, UUID, `${w.dir}: its device id file`);
    const o = w.client.status().overview;
    t.equal(o.deviceId, id, 'status shows the state folder device id');
    t.equal(o.userPrincipalName, 'alice@contoso.test', 'the demo user stays the default');
    ids.push(id);
    await w.client.waitConnected(10_000);
    const { rep, s } = await socksConnect(w.client.socks!.address.port, 'www.example.test', 80);
    t.equal(rep, 0, 'tunneled');
    s.end('ping');
    await once(s, 'close');
  }
  t.not(ids[0], ids[1], 'two state folders, two devices');
  const records = (): Array<{ deviceId: string; userPrincipalName: string }> =>
    existsSync(logFile)
      ? readFileSync(logFile, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l))
      : [];
  t.ok(await until(() => records().length >= 2, 5000), 'both flows in the edge traffic log');
  t.same(
    records()
      .map((r) => r.deviceId)
      .sort(),
    [...ids].sort(),
    "the edge's traffic log names each client's device",
  );
});

t.test(
  'a FIFO in place of the device id is replaced without blocking; a folder is named',
  { skip: process.platform === 'win32' ? 'POSIX file types' : false },
  async (t) => {
    const tmp = await tempDir('gsa-device-id-types-');
    t.teardown(tmp.remove);
    const warnings: string[] = [];
    const fifoDir = join(tmp.dir, 'fifo');
    mkdirSync(fifoDir);
    execFileSync('mkfifo', [join(fifoDir, DEVICE_ID_FILE)]);
    // Before the fix the open waited for a writer forever: `up` hung at start.
    const id = stateDeviceId(fifoDir, (m) => warnings.push(m));
    t.match(id, UUID);
    t.ok(lstatSync(join(fifoDir, DEVICE_ID_FILE)).isFile(), 'the FIFO is replaced by a file');
    t.match(warnings, [/damaged \(not a regular file\)/]);

    const folderDir = join(tmp.dir, 'folder');
    mkdirSync(join(folderDir, DEVICE_ID_FILE), { recursive: true });
    t.throws(() => stateDeviceId(folderDir, () => {}), {
      code: 'GSA_ERR_CONFIG',
      message: /device-id is a folder, not a device id file: remove it/,
    });
    t.same(readdirSync(folderDir), [DEVICE_ID_FILE], 'no temporary file left');
  },
);
