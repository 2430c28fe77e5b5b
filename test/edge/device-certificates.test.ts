/**
 * Device certificates (mTLS): enrollment at POST /deviceCertificates, the edge's check at
 * the tunnel upgrade (`deviceCertificates: 'optional' | 'required'`), and the client's
 * DeviceCertificate (src/client/device-cert.ts) reused across restarts. Loopback only.
 */
import type { webcrypto } from 'node:crypto';
import { copyFile, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import '../../src/tunnel/reflect-shim.js';
import * as x509 from '@peculiar/x509';
import t, { type Test } from 'tap';
import { Agent, request } from 'undici';
import { DeviceCertificate } from '../../src/client/device-cert.js';
import { EdgeApi } from '../../src/client/edge-api.js';
import { issueDeviceCertificate, loadOrCreateDeviceCa } from '../../src/edge/device-ca.js';
import { type Edge, type EdgeOptions, startEdge } from '../../src/edge/server.js';
import { ConfigError, EdgeHttpError } from '../../src/errors.js';
import { type DownInfo, TunnelClient } from '../../src/tunnel/client.js';
import {
  ALG,
  crypto,
  DAY,
  exportKey,
  importKey,
  newKeys,
  readMaybe,
} from '../../src/tunnel/tls.js';
import { echoServer, exchange, meta, tempDir } from './helpers.js';

const GREETING = 'HELLO\n';

interface Setup {
  edge: Edge;
  dir: string;
  echoPort: number;
  lines: Array<{ msg: string | undefined; obj: Record<string, unknown> }>;
}

async function setup(t: Test, over: Partial<EdgeOptions> = {}): Promise<Setup> {
  const tmp = await tempDir('gsa-devcert-');
  const echo = await echoServer(GREETING);
  const lines: Setup['lines'] = [];
  const log = {
    info: (obj: object, msg?: string) => lines.push({ msg, obj: obj as Record<string, unknown> }),
    warn: (obj: object, msg?: string) => lines.push({ msg, obj: obj as Record<string, unknown> }),
  };
  const edge = await startEdge({
    stateDir: join(tmp.dir, 'edge'),
    hostsMap: { 'echo.contoso.test': `127.0.0.1:${echo.port}` },
    egress: { systemResolver: false, directIp: false },
    limits: { graceMs: 100 },
    log,
    ...over,
  });
  t.teardown(async () => {
    await edge.kill();
    await echo.close();
    await tmp.remove();
  });
  return { edge, dir: tmp.dir, echoPort: echo.port, lines };
}

/** An EdgeApi for `deviceId` (closed by the test's teardown). */
function api(t: Test, edge: Edge, deviceId: string): EdgeApi {
  const a = new EdgeApi({ url: edge.url, ca: edge.caPem, userId: 'alice', deviceId });
  t.teardown(() => a.close());
  return a;
}

/** The client's DeviceCertificate in `dir`, enrolling through `edge` as `deviceId`. */
function device(t: Test, edge: Edge, dir: string, deviceId: string): DeviceCertificate {
  const a = api(t, edge, deviceId);
  return new DeviceCertificate({ dir, deviceId, enroll: (csr) => a.enrollDeviceCertificate(csr) });
}

/** The certificate `d` presents (enrolling if needed); throws when there is none. */
async function certOf(d: DeviceCertificate): Promise<{ cert: string; key: string }> {
  const pair = await d.get();
  if (pair === null) throw new Error('no device certificate');
  return pair;
}

/**
 * A TunnelClient on `channel` with the token of `deviceId`, presenting `pair` (or none):
 * resolves 'up' once the session is up, or the first refusal's DownInfo.
 */
async function tryTunnel(
  t: Test,
  edge: Edge,
  deviceId: string,
  pair: { cert: string; key: string } | null,
): Promise<{ up: true; client: TunnelClient } | { up: false; info: DownInfo }> {
  const client = new TunnelClient({
    url: edge.url.replace(/^http/, 'ws'),
    channel: 'internet',
    ca: edge.caPem!,
    getToken: (ch) => edge.issueToken({ channel: ch, userId: 'alice', deviceId }),
    clientCertificate: async () => pair,
    backoff: { baseMs: 5000, maxMs: 5000 },
    limits: { keepaliveInterval: 0 },
  });
  t.teardown(() => client.close());
  const r = await new Promise<{ up: true; client: TunnelClient } | { up: false; info: DownInfo }>(
    (resolve) => {
      const timer = setTimeout(
        () => resolve({ up: false, info: { reason: 'timeout' } as DownInfo }),
        5000,
      );
      client.once('up', () => {
        clearTimeout(timer);
        resolve({ up: true, client });
      });
      client.once('down', (info: DownInfo) => {
        clearTimeout(timer);
        resolve({ up: false, info });
      });
      client.start();
    },
  );
  return r;
}

/** A certificate for `cn`, signed by `issuer` (a CA cert + key) or self-signed. */
async function makeCert(o: {
  cn: string;
  notBefore?: Date;
  notAfter?: Date;
  issuer?: { cert: x509.X509Certificate; key: webcrypto.CryptoKey };
  /** Extended key usages (default clientAuth); [] leaves the extension out. */
  eku?: string[];
}): Promise<{ cert: string; key: string }> {
  crypto();
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${o.cn}`,
    issuer: o.issuer ? o.issuer.cert.subject : `CN=${o.cn}`,
    notBefore: o.notBefore ?? new Date(Date.now() - DAY),
    notAfter: o.notAfter ?? new Date(Date.now() + 30 * DAY),
    publicKey: keys.publicKey,
    signingKey: o.issuer ? o.issuer.key : keys.privateKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      ...(o.eku?.length === 0
        ? []
        : [new x509.ExtendedKeyUsageExtension(o.eku ?? [x509.ExtendedKeyUsage.clientAuth])]),
    ],
  });
  return { cert: cert.toString('pem'), key: await exportKey(keys.privateKey) };
}

/** The edge's device CA, read from its state folder as a test may (to sign bad certs). */
async function edgeDeviceCa(
  dir: string,
): Promise<{ cert: x509.X509Certificate; key: webcrypto.CryptoKey }> {
  const pem = await readMaybe(join(dir, 'edge', 'device-ca.pem'));
  const key = await readMaybe(join(dir, 'edge', 'device-ca-key.pem'));
  return {
    cert: new x509.X509Certificate(pem!),
    key: (await importKey(key!)) as webcrypto.CryptoKey,
  };
}

async function enrollRaw(t: Test, edge: Edge, body: string, token?: string) {
  const agent = new Agent({ connect: { ca: edge.caPem! } });
  t.teardown(() => agent.close());
  const res = await request(`${edge.url}/deviceCertificates`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body,
    dispatcher: agent,
  });
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> };
}

t.test('enrollment issues a clientAuth certificate with CN = the token device id', async (t) => {
  const { edge, dir } = await setup(t);
  const d = device(t, edge, join(dir, 'client'), 'dev-A');
  const pair = await certOf(d);
  const cert = new x509.X509Certificate(pair.cert);
  t.equal(cert.subject, 'CN=dev-A');
  const ca = new x509.X509Certificate(edge.deviceCaPem);
  t.ok(
    await cert.verify({ publicKey: ca.publicKey, signatureOnly: true }),
    'signed by the device CA',
  );
  t.not(ca.subject, new x509.X509Certificate(edge.caPem!).subject, 'a CA apart from the TLS CA');
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  t.same(eku?.usages, [x509.ExtendedKeyUsage.clientAuth]);
  const days = (cert.notAfter.getTime() - cert.notBefore.getTime()) / DAY;
  t.ok(days > 360 && days < 370, `valid about a year (${days})`);
  t.equal(d.info()?.subject, 'CN=dev-A');
  t.match(d.info()?.thumbprint, /^[0-9A-F]{40}$/);
  const keyMode = (await stat(join(dir, 'client', 'device-key.pem'))).mode & 0o777;
  t.equal(keyMode, 0o600, 'the device key is 0600');
});

t.test('the edge answers bad enrollment requests with 400/401, not a crash', async (t) => {
  const { edge } = await setup(t);
  const token = await edge.issueToken({ channel: 'graph', deviceId: 'dev-A' });
  const cases: Array<[string, string]> = [
    ['not JSON', '{'],
    ['no request', '{}'],
    ['not base64', JSON.stringify({ CertificateRequest: { Type: 'pkcs10', Data: '%%%' } })],
    ['garbage DER', JSON.stringify({ CertificateRequest: { Type: 'pkcs10', Data: 'AAECAwQF' } })],
    ['a certificate, not a request', ''],
  ];
  const notCsr = await makeCert({ cn: 'x' });
  cases[4]![1] = JSON.stringify({
    CertificateRequest: {
      Type: 'pkcs10',
      Data: notCsr.cert.replace(/-----[^-]+-----|\s/g, ''),
    },
  });
  for (const [name, body] of cases) {
    const r = await enrollRaw(t, edge, body, token);
    t.equal(r.status, 400, name);
    t.match(r.json, { error: { code: 'BadRequest' } }, name);
  }
  // A request whose signature does not match its key.
  crypto();
  const keys = await newKeys();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=dev-A',
    keys,
    signingAlgorithm: ALG,
  });
  const raw = Buffer.from(new Uint8Array(csr.rawData)); // a copy: rawData is the request's own
  raw[raw.length - 5]! ^= 0xff;
  const bad = await enrollRaw(
    t,
    edge,
    JSON.stringify({ CertificateRequest: { Type: 'pkcs10', Data: raw.toString('base64') } }),
    token,
  );
  t.equal(bad.status, 400, 'a request with a broken signature');
  const good = JSON.stringify({
    CertificateRequest: { Type: 'pkcs10', Data: Buffer.from(csr.rawData).toString('base64') },
  });
  t.equal((await enrollRaw(t, edge, good)).status, 401, 'no token: 401');
  t.equal((await enrollRaw(t, edge, good, 'x.y.z')).status, 401, 'a bad token: 401');
  const ok = await enrollRaw(t, edge, good, token);
  t.equal(ok.status, 200, 'the edge still enrolls after all that');
  t.match(ok.json, { Certificate: { Thumbprint: /^[0-9A-F]{40}$/, RawBody: String } });
});

t.test('a required edge tunnels a flow for a client with its device certificate', async (t) => {
  const { edge, dir, lines } = await setup(t, { deviceCertificates: 'required' });
  t.equal(edge.deviceCertificates, 'required');
  const d = device(t, edge, join(dir, 'client'), 'dev-A');
  const r = await tryTunnel(t, edge, 'dev-A', await certOf(d));
  t.ok(r.up, 'the tunnel is up');
  if (!r.up) return;
  const s = r.client.open(meta());
  await s.opened;
  const got = await exchange(s, Buffer.from('ping'));
  t.equal(got.bytes.toString(), `${GREETING}ping`);
  const up = lines.find((l) => l.msg === 'session up');
  t.equal(up?.obj.deviceCertificate, d.info()?.thumbprint, 'session up names the certificate');
});

t.test('a required edge refuses a client that presents no certificate, and says why', async (t) => {
  const { edge, lines } = await setup(t, { deviceCertificates: 'required' });
  const r = await tryTunnel(t, edge, 'dev-A', null);
  t.notOk(r.up);
  if (r.up) return;
  t.equal(r.info.status, 401);
  t.equal(r.info.code, 4401);
  t.match(
    r.info.reason,
    /device-certificate-missing \(this edge requires a device certificate \(mTLS\) and the client presented none\)/,
  );
  const refused = lines.find((l) => l.msg === 'tunnel refused');
  t.match(refused?.obj, { status: 401, reason: 'device-certificate-missing', channel: 'internet' });
});

t.test('certificates from another CA, expired, or for another device are refused', async (t) => {
  for (const mode of ['required', 'optional'] as const) {
    await t.test(mode, async (t) => {
      const { edge, dir, lines } = await setup(t, { deviceCertificates: mode });
      const ca = await edgeDeviceCa(dir);
      // Another CA: a CA of the same name but another key, and a self-signed certificate.
      crypto();
      const otherKeys = await newKeys();
      const other = {
        cert: await x509.X509CertificateGenerator.createSelfSigned({
          name: ca.cert.subject,
          keys: otherKeys,
          signingAlgorithm: ALG,
          notBefore: new Date(Date.now() - DAY),
          notAfter: new Date(Date.now() + DAY),
          extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
        }),
        key: otherKeys.privateKey,
      };
      const foreign = await tryTunnel(
        t,
        edge,
        'dev-A',
        await makeCert({ cn: 'dev-A', issuer: other }),
      );
      t.notOk(foreign.up, 'another CA');
      if (!foreign.up) {
        t.equal(foreign.info.status, 403);
        t.match(
          foreign.info.reason,
          /device-certificate-untrusted \(the device certificate is not issued by this edge's device CA/,
        );
      }
      const selfSigned = await tryTunnel(t, edge, 'dev-A', await makeCert({ cn: 'dev-A' }));
      t.notOk(selfSigned.up, 'self-signed');
      if (!selfSigned.up) t.match(selfSigned.info.reason, /device-certificate-untrusted/);

      const expired = await tryTunnel(
        t,
        edge,
        'dev-A',
        await makeCert({
          cn: 'dev-A',
          issuer: ca,
          notBefore: new Date(Date.now() - 10 * DAY),
          notAfter: new Date(Date.now() - DAY),
        }),
      );
      t.notOk(expired.up, 'expired');
      if (!expired.up) {
        t.equal(expired.info.status, 403);
        t.match(
          expired.info.reason,
          /device-certificate-expired \(the device certificate is not valid now \(CERT_HAS_EXPIRED/,
        );
      }

      // Device B's genuine certificate with device A's token.
      const b = await certOf(device(t, edge, join(dir, 'client-b'), 'dev-B'));
      const swapped = await tryTunnel(t, edge, 'dev-A', b);
      t.notOk(swapped.up, "another device's certificate");
      if (!swapped.up) {
        t.equal(swapped.info.status, 403);
        t.match(
          swapped.info.reason,
          /device-certificate-mismatch \(the device certificate is for device "dev-B", the token for device "dev-A"\)/,
        );
      }
      // The same certificate with its own device's token passes.
      const own = await tryTunnel(t, edge, 'dev-B', b);
      t.ok(own.up, 'device B with its own certificate');
      t.ok(
        lines.some(
          (l) => l.msg === 'tunnel refused' && l.obj.reason === 'device-certificate-mismatch',
        ),
        'the refusal is logged',
      );
    });
  }
});

t.test('an optional edge (the default) lets a client without a certificate in', async (t) => {
  const { edge } = await setup(t);
  t.equal(edge.deviceCertificates, 'optional');
  const r = await tryTunnel(t, edge, 'dev-A', null);
  t.ok(r.up, 'an older client connects');
});

t.test(
  'the client reuses its certificate across restarts and re-enrolls for another device',
  async (t) => {
    const { edge, dir } = await setup(t);
    const cdir = join(dir, 'client');
    const first = device(t, edge, cdir, 'dev-A');
    const a = await certOf(first);
    t.equal(first.enrollments, 1);
    t.equal((await certOf(first)).cert, a.cert, 'held in memory');
    t.equal(first.enrollments, 1);
    const again = device(t, edge, cdir, 'dev-A');
    const b = await certOf(again);
    t.equal(again.enrollments, 0, 'a restart on the same state folder does not enroll');
    t.equal(b.cert, a.cert);
    t.equal(b.key, a.key);
    const moved = device(t, edge, cdir, 'dev-C');
    const c = await certOf(moved);
    t.equal(moved.enrollments, 1, 'another device id enrolls again');
    t.equal(new x509.X509Certificate(c.cert).subject, 'CN=dev-C');
    t.equal(c.key, a.key, 'with the same device key');
  },
);

t.test('deviceCertificates: required without TLS is a ConfigError naming both', async (t) => {
  const tmp = await tempDir('gsa-devcert-');
  t.teardown(() => tmp.remove());
  const err = await startEdge({
    stateDir: tmp.dir,
    tls: false,
    deviceCertificates: 'required',
  }).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof ConfigError);
  t.match((err as Error).message, /deviceCertificates/);
  t.match((err as Error).message, /tls is false/);
  const bad = await startEdge({
    stateDir: tmp.dir,
    deviceCertificates: 'always' as 'required',
  }).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(bad instanceof ConfigError, 'an unknown mode');
});

t.test('an edge without the enrollment endpoint (404): the client presents none', async (t) => {
  const tmp = await tempDir('gsa-devcert-');
  t.teardown(tmp.remove);
  let asked = 0;
  const d = new DeviceCertificate({
    dir: tmp.dir,
    deviceId: 'dev-A',
    enroll: async () => {
      asked++;
      throw new EdgeHttpError(
        404,
        'ResourceNotFound',
        'HTTP 404 no resource at /deviceCertificates',
      );
    },
  });
  t.equal(await d.get(), null, 'none to present');
  t.ok(d.unsupported);
  t.equal(d.none, 'the edge has no enrollment endpoint');
  t.equal(await d.get(), null, 'asked again at the next connect');
  t.equal(asked, 2);
  // An edge that answers but will not enroll this device (4xx): none presented either, and
  // the edge decides (optional admits, required says missing); the reason is kept.
  const refused = new DeviceCertificate({
    dir: tmp.dir,
    deviceId: 'dev-A',
    enroll: async () => {
      throw new EdgeHttpError(403, 'Forbidden', 'HTTP 403 enrollment is closed');
    },
  });
  t.equal(await refused.get(), null, 'a refused enrollment presents none');
  t.notOk(refused.unsupported);
  t.match(refused.none, /^the edge refused the enrollment: HTTP 403 enrollment is closed/);
  t.equal(refused.info(), null);
  const failing = new DeviceCertificate({
    dir: tmp.dir,
    deviceId: 'dev-A',
    enroll: async () => {
      throw new EdgeHttpError(500, null, 'HTTP 500');
    },
  });
  await t.rejects(
    failing.get(),
    { code: 'GSA_ERR_EDGE_HTTP', message: 'HTTP 500' },
    'other failures reject',
  );
});

t.test(
  "the TLS CA's certificates, one without clientAuth and a chain through a device certificate are refused",
  async (t) => {
    const { edge, dir } = await setup(t, { deviceCertificates: 'required' });
    const ca = await edgeDeviceCa(dir);
    // The TLS CA (ca.pem / ca-key.pem of the same state folder) signs a clientAuth certificate.
    const tlsCa = {
      cert: new x509.X509Certificate(edge.caPem!),
      key: (await importKey(
        (await readMaybe(join(dir, 'edge', 'ca-key.pem')))!,
      )) as webcrypto.CryptoKey,
    };
    const fromTlsCa = await tryTunnel(
      t,
      edge,
      'dev-A',
      await makeCert({ cn: 'dev-A', issuer: tlsCa }),
    );
    t.notOk(fromTlsCa.up, 'signed by the TLS CA');
    if (!fromTlsCa.up) t.match(fromTlsCa.info.reason, /device-certificate-untrusted/);
    // The device CA's, but for server authentication only, or with no extended key usage.
    for (const eku of [[x509.ExtendedKeyUsage.serverAuth], []]) {
      const r = await tryTunnel(t, edge, 'dev-A', await makeCert({ cn: 'dev-A', issuer: ca, eku }));
      t.notOk(r.up, `extended key usage ${JSON.stringify(eku)}`);
      // OpenSSL says INVALID_PURPOSE for serverAuth only; the edge's own check, no EKU at all.
      if (!r.up)
        t.match(r.info.reason, /device-certificate-untrusted \(.*(clientAuth|INVALID_PURPOSE)/);
    }
    // Device B's genuine certificate (not a CA) signs one for device A; B's is sent along.
    const b = await certOf(device(t, edge, join(dir, 'client-b'), 'dev-B'));
    const bIssuer = {
      cert: new x509.X509Certificate(b.cert),
      key: (await importKey(b.key)) as webcrypto.CryptoKey,
    };
    const leaf = await makeCert({ cn: 'dev-A', issuer: bIssuer });
    const chained = await tryTunnel(t, edge, 'dev-A', {
      cert: `${leaf.cert.trim()}\n${b.cert}`,
      key: leaf.key,
    });
    t.notOk(chained.up, 'a chain through a device certificate');
    if (!chained.up) t.match(chained.info.reason, /device-certificate-untrusted/);
    // The right certificate with a mismatched key: the TLS handshake itself fails.
    const a = await certOf(device(t, edge, join(dir, 'client-a'), 'dev-A'));
    const other = await makeCert({ cn: 'dev-A', issuer: ca });
    const mismatched = await tryTunnel(t, edge, 'dev-A', { cert: a.cert, key: other.key });
    t.notOk(mismatched.up, "another key than the certificate's");
  },
);

t.test(
  'a device CA key that is not the certificate’s (a write cut short) is made again',
  async (t) => {
    const tmp = await tempDir('gsa-devca-');
    t.teardown(() => tmp.remove());
    const a = join(tmp.dir, 'a');
    const b = join(tmp.dir, 'b');
    await mkdir(a, { recursive: true });
    await mkdir(b, { recursive: true });
    const first = await loadOrCreateDeviceCa(a);
    await loadOrCreateDeviceCa(b);
    // The key of another CA next to this certificate: what a crash between the two writes leaves.
    await copyFile(join(b, 'device-ca-key.pem'), join(a, 'device-ca-key.pem'));
    const ca = await loadOrCreateDeviceCa(a);
    t.not(ca.pem, first.pem, 'a new device CA');
    crypto();
    const keys = await newKeys();
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=x',
      keys,
      signingAlgorithm: ALG,
    });
    const cert = await issueDeviceCertificate(ca, new Uint8Array(csr.rawData), 'dev-A');
    t.ok(await cert.verify({ publicKey: ca.cert, signatureOnly: true }), 'what it signs verifies');
    t.equal(await readMaybe(join(a, 'device-ca.pem')), ca.pem, 'and it is on disk');
  },
);

t.test(
  'a state folder that cannot hold the device CA is a GSA_ERR_CONFIG naming the stateDir option, not a raw EISDIR',
  async (t) => {
    for (const file of ['device-ca.pem', 'device-ca-key.pem']) {
      const tmp = await tempDir('gsa-devca-dir-');
      t.teardown(() => tmp.remove());
      await mkdir(join(tmp.dir, file), { recursive: true });
      await t.rejects(
        startEdge({
          stateDir: tmp.dir,
          persistKey: false,
          egress: { systemResolver: false, directIp: false },
        }),
        {
          code: 'GSA_ERR_CONFIG',
          message: new RegExp(`${file}.*EISDIR|EISDIR.*${file}.*stateDir option`),
        },
        file,
      );
    }
  },
);

t.test(
  'an RSA key of 2048 bits is enrolled and presented; a shorter one is refused (400)',
  async (t) => {
    const { edge } = await setup(t, { deviceCertificates: 'required' });
    const { webcrypto: wc } = await import('node:crypto');
    const token = await edge.issueToken({ channel: 'graph', deviceId: 'dev-R' });
    const rsa = async (bits: number) => {
      const keys = (await wc.subtle.generateKey(
        {
          name: 'RSASSA-PKCS1-v1_5',
          modulusLength: bits,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: 'SHA-256',
        },
        true,
        ['sign', 'verify'],
      )) as webcrypto.CryptoKeyPair;
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        name: 'CN=x',
        keys,
        signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' },
      });
      const body = JSON.stringify({
        CertificateRequest: { Type: 'pkcs10', Data: Buffer.from(csr.rawData).toString('base64') },
      });
      return { keys, r: await enrollRaw(t, edge, body, token) };
    };
    const short = await rsa(1024);
    t.equal(short.r.status, 400, 'RSA 1024 refused');
    t.match(JSON.stringify(short.r.json), /an RSA key of 1024 bits: at least 2048/);
    const { keys, r } = await rsa(2048);
    t.equal(r.status, 200);
    const raw = (r.json as { Certificate: { RawBody: string } }).Certificate.RawBody;
    const cert = `-----BEGIN CERTIFICATE-----\n${raw}\n-----END CERTIFICATE-----\n`;
    const key = await exportKey(keys.privateKey);
    const x = await tryTunnel(t, edge, 'dev-R', { cert, key });
    t.ok(x.up, 'an RSA 2048 device certificate tunnels');
  },
);

t.test(
  'a device id of 128 characters (the most a token names) is certified and tunnels',
  async (t) => {
    const { edge, dir } = await setup(t, { deviceCertificates: 'required' });
    const id = `d${'x'.repeat(127)}`;
    const r = await tryTunnel(t, edge, id, await certOf(device(t, edge, join(dir, 'c'), id)));
    t.ok(r.up);
  },
);

t.test(
  'an edge that asks for no certificate (no TLS, or off) writes no device CA and has no enrollment endpoint',
  async (t) => {
    for (const o of [{ tls: false }, { deviceCertificates: 'off' as const }]) {
      const tmp = await tempDir('gsa-devca-none-');
      t.teardown(() => tmp.remove());
      const edge = await startEdge({
        stateDir: tmp.dir,
        persistKey: false,
        egress: { systemResolver: false, directIp: false },
        ...o,
      });
      t.teardown(() => edge.close({ graceMs: 0 }));
      const name = JSON.stringify(o);
      t.equal(edge.deviceCertificates, 'off', `${name}: asks for none`);
      t.equal(edge.deviceCaPem, null, `${name}: no device CA`);
      const files = await readdir(tmp.dir);
      t.notOk(
        files.some((f) => f.startsWith('device-ca')),
        `${name}: no device CA file (${files.join(', ')})`,
      );
      const token = await edge.issueToken({ channel: 'graph', deviceId: 'dev-A' });
      const r = await enrollRaw(t, edge, '{}', token);
      t.equal(r.status, 404, `${name}: no enrollment (its clients present none)`);
    }
  },
);

t.test('GET /health shows the device-certificate mode in force', async (t) => {
  const health = async (edge: Edge): Promise<Record<string, unknown>> => {
    const dispatcher = new Agent(edge.caPem ? { connect: { ca: edge.caPem } } : {});
    t.teardown(() => dispatcher.close());
    const res = await request(`${edge.url}/health`, { dispatcher });
    t.equal(res.statusCode, 200);
    return (await res.body.json()) as Record<string, unknown>;
  };
  const optional = await setup(t);
  t.equal((await health(optional.edge)).deviceCertificates, 'optional', 'the default');
  const required = await setup(t, { deviceCertificates: 'required' });
  t.equal((await health(required.edge)).deviceCertificates, 'required');
  const off = await setup(t, { deviceCertificates: 'off' });
  t.equal((await health(off.edge)).deviceCertificates, 'off');
  const plain = await setup(t, { tls: false });
  t.equal((await health(plain.edge)).deviceCertificates, 'off', 'without TLS none is asked for');
});

t.test(
  'enrollment takes ECDSA P-256/P-384 and RSA >= 2048 signed with SHA-256/384/512 (each tunnels through a required edge) and refuses SHA-1, Ed25519 and P-521 (400)',
  async (t) => {
    const { edge } = await setup(t, { deviceCertificates: 'required' });
    const { webcrypto: wc } = await import('node:crypto');
    crypto();
    const token = await edge.issueToken({ channel: 'graph', deviceId: 'dev-P' });
    const rsaKey = (hash: string) => ({
      name: 'RSASSA-PKCS1-v1_5',
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash,
    });
    const enroll = async (keyAlg: object, sigAlg: object) => {
      const keys = (await wc.subtle.generateKey(keyAlg as webcrypto.EcKeyGenParams, true, [
        'sign',
        'verify',
      ])) as webcrypto.CryptoKeyPair;
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        name: 'CN=x',
        keys,
        signingAlgorithm: sigAlg as webcrypto.EcdsaParams,
      });
      const body = JSON.stringify({
        CertificateRequest: { Type: 'pkcs10', Data: Buffer.from(csr.rawData).toString('base64') },
      });
      return { keys, r: await enrollRaw(t, edge, body, token) };
    };
    const refused: Array<[string, object, object, RegExp]> = [
      [
        'ECDSA P-256 signed with SHA-1',
        { name: 'ECDSA', namedCurve: 'P-256' },
        { name: 'ECDSA', hash: 'SHA-1' },
        /signed with SHA-1: enrollment takes an ECDSA P-256 or P-384 key/,
      ],
      [
        'RSA signed with SHA-1',
        rsaKey('SHA-1'),
        { name: 'RSASSA-PKCS1-v1_5' },
        /signed with SHA-1/,
      ],
      ['Ed25519', { name: 'Ed25519' }, { name: 'Ed25519' }, /a key of type ed25519/],
      [
        'ECDSA P-521',
        { name: 'ECDSA', namedCurve: 'P-521' },
        { name: 'ECDSA', hash: 'SHA-512' },
        /an ECDSA key on curve secp521r1/,
      ],
    ];
    for (const [name, keyAlg, sigAlg, why] of refused) {
      const { r } = await enroll(keyAlg, sigAlg);
      t.equal(r.status, 400, `${name}: 400`);
      t.match(r.json, { error: { code: 'BadRequest', message: why } }, name);
    }
    const taken: Array<[string, object, object]> = [
      [
        'ECDSA P-256, SHA-384',
        { name: 'ECDSA', namedCurve: 'P-256' },
        { name: 'ECDSA', hash: 'SHA-384' },
      ],
      [
        'ECDSA P-384, SHA-384',
        { name: 'ECDSA', namedCurve: 'P-384' },
        { name: 'ECDSA', hash: 'SHA-384' },
      ],
      [
        'ECDSA P-384, SHA-256',
        { name: 'ECDSA', namedCurve: 'P-384' },
        { name: 'ECDSA', hash: 'SHA-256' },
      ],
      ['RSA 2048, SHA-512', rsaKey('SHA-512'), { name: 'RSASSA-PKCS1-v1_5' }],
    ];
    for (const [name, keyAlg, sigAlg] of taken) {
      const { keys, r } = await enroll(keyAlg, sigAlg);
      t.equal(r.status, 200, `${name}: enrolled`);
      const raw = (r.json as { Certificate: { RawBody: string } }).Certificate.RawBody;
      const cert = `-----BEGIN CERTIFICATE-----\n${raw}\n-----END CERTIFICATE-----\n`;
      const x = await tryTunnel(t, edge, 'dev-P', { cert, key: await exportKey(keys.privateKey) });
      t.ok(x.up, `${name}: the certificate tunnels`);
      if (x.up) x.client.close();
    }
  },
);
