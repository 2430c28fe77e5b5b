/**
 * Device certificate options: `gsa-emu edge --device-certificates <mode>` (config key
 * `deviceCertificates`), `gsa-emu up --edge-device-certificates <mode>` and
 * `--no-device-certificate` (config keys `edgeDeviceCertificates`, `deviceCertificate`):
 * strict values, usage errors naming the option, and `up`'s world: the in-process edge in
 * `required` mode lets the default (newer) client in and refuses an older one. Loopback
 * only; every edge and client is stopped by the test.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { deviceCertificatesOption, readEdgeConfig } from '../../src/cli/commands/edge.js';
import { readUpConfig, up } from '../../src/cli/commands/up.js';
import { startWorld } from '../../src/cli/world.js';
import { ConfigError } from '../../src/errors.js';
import { until } from '../edge/helpers.js';
import { cli, skip, startEdgeProcess } from './cli-ux-helpers.js';

const dir = await mkdtemp(join(tmpdir(), 'gsa-devcert-options-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

t.test('deviceCertificatesOption: off, optional or required, else named', async (t) => {
  for (const v of ['off', 'optional', 'required']) t.equal(deviceCertificatesOption(v, '--x'), v);
  for (const v of ['', 'on', 'REQUIRED', 'true']) {
    t.throws(() => deviceCertificatesOption(v, '--device-certificates'), {
      name: 'UsageError',
      message: `--device-certificates ${v}: must be one of off, optional, required`,
    });
  }
});

t.test('edge --config deviceCertificates and up --config keys, checked', async (t) => {
  const file = join(dir, 'edge.yaml');
  await writeFile(file, 'deviceCertificates: required\n');
  t.same(readEdgeConfig(file), { config: { deviceCertificates: 'required' } });
  await writeFile(file, 'deviceCertificates: yes\n');
  const err = t.throws(() => readEdgeConfig(file)) as ConfigError;
  t.ok(err instanceof ConfigError);
  t.match(err.issues, [
    { path: 'deviceCertificates', message: 'must be one of off, optional, required, not "yes"' },
  ]);

  const upFile = join(dir, 'up.json');
  await writeFile(
    upFile,
    JSON.stringify({ edgeDeviceCertificates: 'required', deviceCertificate: false }),
  );
  t.same(readUpConfig(upFile), { edgeDeviceCertificates: 'required', deviceCertificate: false });
  await writeFile(
    upFile,
    JSON.stringify({ edgeDeviceCertificates: 'all', deviceCertificate: 'no' }),
  );
  t.match(
    (t.throws(() => readUpConfig(upFile)) as ConfigError).issues.map(
      (i) => `${i.path}: ${i.message}`,
    ),
    [
      'edgeDeviceCertificates: all: must be one of off, optional, required',
      'deviceCertificate: must be true or false, not "no"',
    ],
  );
});

t.test('up: --edge-device-certificates values that cannot run', async (t) => {
  const base = { stateDir: join(dir, 'up'), socksPort: '0', httpPort: '0', tty: false };
  const sink = { write: () => true } as unknown as NodeJS.WritableStream;
  await t.rejects(up({ ...base, once: true, edgeDeviceCertificates: 'sometimes' }, sink), {
    name: 'UsageError',
    message: '--edge-device-certificates sometimes: must be one of off, optional, required',
  });
  await t.rejects(
    up(
      { ...base, once: true, edgeDeviceCertificates: 'required', edge: 'https://127.0.0.1:1' },
      sink,
    ),
    {
      name: 'UsageError',
      message:
        /^--edge-device-certificates is for the in-process edge, not a remote --edge \(start that edge with it: gsa-emu edge --device-certificates required\)/,
    },
  );
  await t.rejects(
    up({ ...base, once: true, edgeDeviceCertificates: 'required', plainEdge: true }, sink),
    { name: 'UsageError', message: /--edge-device-certificates required needs TLS.*--plain-edge/ },
  );
});

t.test('up world: a required in-process edge, a newer and an older client', async (t) => {
  const common = {
    run: 'up' as const,
    logLevel: 'silent',
    processLookup: false,
    localSubnets: [],
    edgeDeviceCertificates: 'required' as const,
    listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: null },
  };
  const newer = await startWorld({ ...common, stateDir: join(dir, 'newer') });
  t.teardown(() => newer.stop());
  await newer.client.waitConnected(10_000);
  t.match(newer.client.status().overview.deviceCertificate, {
    subject: `CN=${newer.client.status().overview.deviceId}`,
  });
  await newer.stop();

  const older = await startWorld({
    ...common,
    stateDir: join(dir, 'older'),
    deviceCertificate: false,
  });
  t.teardown(() => older.stop());
  t.ok(
    await until(
      () => older.client.status().channels.some((c) => /device-certificate-missing/.test(c.detail)),
      10_000,
    ),
    'the older client is told why its tunnels are refused',
  );
  t.notOk(older.client.tunnels.isUp('internet'));
});

t.test('gsa-emu edge --device-certificates', { skip }, async (t) => {
  const r = await cli(['edge', '--port', '0', '--no-tls', '--device-certificates', 'required']);
  t.equal(r.code, 2, 'required with --no-tls: exit 2');
  t.match(r.err, /--device-certificates required needs TLS .*drop --no-tls/);
  t.notMatch(r.out, /listening on/);
  const bad = await cli(['edge', '--port', '0', '--device-certificates', 'maybe']);
  t.equal(bad.code, 2);
  t.match(bad.err, '--device-certificates maybe: must be one of off, optional, required');

  const ready = /listening on (\S+)[\s\S]*Ctrl\+C to stop\./;
  const { out } = await startEdgeProcess(
    t,
    join(dir, 'edge-cli'),
    ['--device-certificates', 'required'],
    ready,
    30_000,
    { tls: true },
  );
  t.match(
    out,
    /devices +certificates required \(enrollment: POST https:\/\/127\.0\.0\.1:\d+\/deviceCertificates; device CA .*device-ca\.pem\)/,
  );
});

t.test(
  'gsa-emu edge: a folder where device-ca.pem goes is said of --state-dir',
  { skip },
  async (t) => {
    const state = join(dir, 'edge-devca-dir');
    await mkdir(join(state, 'device-ca.pem'), { recursive: true });
    const r = await cli(['edge', '--port', '0', '--state-dir', state]);
    t.equal(r.code, 1);
    t.match(r.err, /EISDIR on rename .*device-ca\.pem: remove that folder or give --state-dir/);
    t.notMatch(r.err, /stateDir option/, 'the CLI names its flag, not the library option');
  },
);
