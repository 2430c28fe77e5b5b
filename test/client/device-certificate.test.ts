/**
 * The client's device certificate end to end: startClient with `edge.deviceCertificate`
 * enrolls at the edge, presents the certificate on its tunnels (a `required` edge lets it
 * in), keeps it across a restart, and shows it in the status; without it (an older client)
 * a `required` edge refuses every tunnel and the status says why. Loopback only.
 */
import { chmod, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import '../../src/tunnel/reflect-shim.js';
import * as x509 from '@peculiar/x509';
import t, { type Test } from 'tap';
import { type ClientOptions, type RunningClient, startClient } from '../../src/client/client.js';
import { DeviceCertificate } from '../../src/client/device-cert.js';
import { EdgeApi } from '../../src/client/edge-api.js';
import { formatStatus } from '../../src/client/format.js';
import { issueDeviceCertificate, loadOrCreateDeviceCa } from '../../src/edge/device-ca.js';
import { type Edge, startEdge } from '../../src/edge/server.js';
import { EdgeHttpError } from '../../src/errors.js';
import { ALG, crypto, DAY, newKeys } from '../../src/tunnel/tls.js';
import { tempDir, until } from '../edge/helpers.js';

const DEVICE = '6ca253cb-0d1e-4f5a-9b8c-7d6e5f4a3b2c';

async function requiredEdge(t: Test): Promise<{ edge: Edge; dir: string }> {
  const tmp = await tempDir('gsa-devcert-client-');
  t.teardown(tmp.remove);
  const edge = await startEdge({
    stateDir: join(tmp.dir, 'edge'),
    deviceCertificates: 'required',
    egress: { systemResolver: false, directIp: false },
  });
  t.teardown(() => edge.close({ graceMs: 0 }));
  return { edge, dir: tmp.dir };
}

async function client(t: Test, edge: Edge, over: ClientOptions['edge'] | object = {}) {
  const c: RunningClient = await startClient({
    edge: { url: edge.url, ca: edge.caPem, ...over },
    tenant: 'edge',
    user: { deviceId: DEVICE },
    listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: null },
    resolver: { system: false, directIp: false },
    processLookup: false,
  });
  t.teardown(() => c.close());
  return c;
}

t.test(
  'a newer client enrolls, connects to a required edge and keeps its certificate',
  async (t) => {
    const { edge, dir } = await requiredEdge(t);
    const state = join(dir, 'client');
    const first = await client(t, edge, { deviceCertificate: { dir: state } });
    await first.waitConnected(10_000);
    const cert = first.status().overview.deviceCertificate;
    t.match(cert, { subject: `CN=${DEVICE}`, thumbprint: /^[0-9A-F]{40}$/ });
    t.equal(first.deviceCertificate?.enrollments, 1, 'one enrollment for every channel');
    t.match(formatStatus(first.status()), /device certificate: [0-9A-F]{40} \(CN=6ca253cb-/);
    await first.close();

    const second = await client(t, edge, { deviceCertificate: { dir: state } });
    await second.waitConnected(10_000);
    t.equal(second.deviceCertificate?.enrollments, 0, 'the restart reuses the certificate');
    t.equal(second.status().overview.deviceCertificate?.thumbprint, cert?.thumbprint);
  },
);

t.test('an older client (no device certificate) is refused by a required edge', async (t) => {
  const { edge } = await requiredEdge(t);
  const c = await client(t, edge);
  t.equal(c.deviceCertificate, null);
  t.equal(c.status().overview.deviceCertificate, undefined, 'no certificate line');
  await until(
    () => c.status().channels.some((ch) => /device-certificate-missing/.test(ch.detail)),
    5000,
  );
  const detail = c.status().channels.find((ch) => ch.channel === 'internet')?.detail ?? '';
  t.match(
    detail,
    /HTTP 401, close code 4401: tunnel authentication failed: device-certificate-missing \(this edge requires a device certificate \(mTLS\) and the client presented none\)/,
  );
  t.notOk(c.tunnels.isUp('internet'));
});

t.test('an edge whose device CA changed: the client enrolls again and reconnects', async (t) => {
  const tmp = await tempDir('gsa-devcert-client-');
  t.teardown(tmp.remove);
  const state = join(tmp.dir, 'edge');
  const opts = {
    stateDir: state,
    deviceCertificates: 'required' as const,
    egress: { systemResolver: false, directIp: false },
  };
  const first = await startEdge(opts);
  const c = await client(t, first, { deviceCertificate: { dir: join(tmp.dir, 'client') } });
  await c.waitConnected(10_000);
  const before = c.status().overview.deviceCertificate?.thumbprint;
  await first.close({ graceMs: 0 });
  // The edge's state reset for its device CA only (the TLS CA stays: the client trusts it).
  await rm(join(state, 'device-ca.pem'));
  await rm(join(state, 'device-ca-key.pem'));
  const second = await startEdge({ ...opts, port: first.port });
  t.teardown(() => second.close({ graceMs: 0 }));
  t.not(second.deviceCaPem, first.deviceCaPem, 'a new device CA');
  t.ok(
    await until(() => c.tunnels.isUp('internet') && c.deviceCertificate?.enrollments === 2, 15_000),
    'up again after one more enrollment',
  );
  t.not(c.status().overview.deviceCertificate?.thumbprint, before, 'a new certificate');
});

t.test(
  'an edge that will not enroll the device: the client presents none; optional admits it, required says it is missing',
  async (t) => {
    // The edge answers the enrollment with a 4xx (here 403, as another edge might): stand-in
    // for any refusal, since gsa-emu's own edge enrolls every device its token endpoint names.
    const enroll = EdgeApi.prototype.enrollDeviceCertificate;
    EdgeApi.prototype.enrollDeviceCertificate = async () => {
      throw new EdgeHttpError(403, 'Forbidden', 'HTTP 403 enrollment is closed');
    };
    t.teardown(() => {
      EdgeApi.prototype.enrollDeviceCertificate = enroll;
    });
    const tmp = await tempDir('gsa-devcert-client-');
    t.teardown(tmp.remove);
    const optionalEdge = await startEdge({
      stateDir: join(tmp.dir, 'edge'),
      egress: { systemResolver: false, directIp: false },
    });
    t.teardown(() => optionalEdge.close({ graceMs: 0 }));
    const admitted = await client(t, optionalEdge, {
      deviceCertificate: { dir: join(tmp.dir, 'client') },
    });
    await admitted.waitConnected(10_000);
    t.equal(admitted.status().overview.deviceCertificate, null, 'none held');
    t.match(
      formatStatus(admitted.status()),
      /device certificate: none \(the edge refused the enrollment: HTTP 403 enrollment is closed/,
      'the status says why none is presented',
    );
    const { edge } = await requiredEdge(t);
    const refused = await client(t, edge, { deviceCertificate: { dir: join(tmp.dir, 'client2') } });
    await until(
      () => refused.status().channels.some((ch) => /device-certificate-missing/.test(ch.detail)),
      5000,
    );
    t.notOk(refused.tunnels.isUp('internet'));
  },
);

t.test(
  'a state folder that cannot keep the device key or certificate: the client still connects, presenting one it holds in memory, and the status says so',
  async (t) => {
    const { edge, dir } = await requiredEdge(t);
    for (const file of ['device-key.pem', 'device-cert.pem']) {
      await t.test(file, async (t) => {
        const state = join(dir, `client-${file}`);
        // A directory where the file goes: the rename of the new file onto it fails (EISDIR).
        await mkdir(join(state, file), { recursive: true });
        const c = await client(t, edge, { deviceCertificate: { dir: state } });
        await c.waitConnected(10_000);
        t.match(c.status().overview.deviceCertificate, { subject: `CN=${DEVICE}` });
        t.match(
          formatStatus(c.status()),
          new RegExp(`device certificate: [0-9A-F]{40} .* \\(not kept: .*${file}: EISDIR`),
        );
        t.same(
          (await readdir(state)).filter((f) => f.endsWith('.tmp')),
          [],
          'no temporary file left behind',
        );
      });
    }
  },
);

t.test(
  'a client whose clock runs behind the edge reuses its certificate, not enrolling at every connect',
  async (t) => {
    const tmp = await tempDir('gsa-devcert-clock-');
    t.teardown(tmp.remove);
    crypto();
    const caKeys = await newKeys();
    // The edge's clock is 10 minutes ahead: what it issues starts (a minute before) its now.
    const ahead = 10 * 60_000;
    const enroll = async (csrDer: Uint8Array): Promise<Uint8Array> => {
      const csr = new x509.Pkcs10CertificateRequest(csrDer);
      const cert = await x509.X509CertificateGenerator.create({
        subject: `CN=${DEVICE}`,
        issuer: 'CN=device CA',
        notBefore: new Date(Date.now() + ahead - 60_000),
        notAfter: new Date(Date.now() + ahead + 365 * DAY),
        publicKey: await csr.publicKey.export(),
        signingKey: caKeys.privateKey,
        signingAlgorithm: ALG,
      });
      return new Uint8Array(cert.rawData);
    };
    const d = new DeviceCertificate({ dir: tmp.dir, deviceId: DEVICE, enroll });
    await d.get();
    await d.get();
    t.equal(d.enrollments, 1, 'one enrollment for two connects');
    const restarted = new DeviceCertificate({ dir: tmp.dir, deviceId: DEVICE, enroll });
    await restarted.get();
    t.equal(restarted.enrollments, 0, 'the file is reused after a restart');
  },
);

t.test(
  'a device key file others may read (restored from a backup) is made 0600 again and kept',
  { skip: process.platform === 'win32' && 'POSIX modes' },
  async (t) => {
    const { edge, dir } = await requiredEdge(t);
    const state = join(dir, 'client-mode');
    const api = new EdgeApi({ url: edge.url, ca: edge.caPem, userId: 'alice', deviceId: DEVICE });
    t.teardown(() => api.close());
    const enroll = (csr: Uint8Array) => api.enrollDeviceCertificate(csr);
    await new DeviceCertificate({ dir: state, deviceId: DEVICE, enroll }).get();
    const key = join(state, 'device-key.pem');
    await chmod(key, 0o644);
    const again = new DeviceCertificate({ dir: state, deviceId: DEVICE, enroll });
    await again.get();
    t.equal(again.enrollments, 0, 'the key and certificate are kept');
    t.equal((await stat(key)).mode & 0o777, 0o600, 'the key is 0600 again');
  },
);

t.test('invalidate() while an enrollment is in flight: the next get() enrolls again', async (t) => {
  const tmp = await tempDir('gsa-devcert-gen-');
  t.teardown(tmp.remove);
  const ca = await loadOrCreateDeviceCa(tmp.dir);
  const releases: Array<() => void> = [];
  let inEnroll = 0;
  let most = 0;
  const d = new DeviceCertificate({
    dir: join(tmp.dir, 'client'),
    deviceId: DEVICE,
    enroll: async (csr) => {
      inEnroll++;
      most = Math.max(most, inEnroll);
      await new Promise<void>((r) => releases.push(r));
      inEnroll--;
      return new Uint8Array((await issueDeviceCertificate(ca, csr, DEVICE)).rawData);
    },
  });
  const first = d.get();
  await until(() => releases.length === 1, 5000);
  // The edge refused the certificate presented before (or this one): invalidate while
  // the enrollment is in flight.
  d.invalidate();
  const second = d.get();
  releases.shift()!();
  t.ok(await first, 'the callers of the load in flight still get its certificate');
  await until(() => releases.length === 1, 5000);
  t.equal(d.enrollments, 2, 'a get() after the invalidate() enrolls again');
  t.equal(most, 1, 'one enrollment at a time');
  releases.shift()!();
  const b = await second;
  t.ok(b);
  t.equal((await d.get())?.cert, b?.cert, 'the new certificate is kept');
  t.equal(d.enrollments, 2);

  // The same without a get() waiting: the next get() enrolls, not reuses the one loaded.
  const third = d.get();
  t.equal(await third, b, 'held');
  d.invalidate();
  const fourth = d.get();
  await until(() => releases.length === 1, 5000);
  d.invalidate();
  releases.shift()!();
  await fourth;
  const fifth = d.get();
  await until(() => releases.length === 1, 5000);
  t.equal(d.enrollments, 4, 'the certificate loaded across the invalidate() is not reused');
  releases.shift()!();
  await fifth;
});
