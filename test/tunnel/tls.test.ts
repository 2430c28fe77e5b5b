import { spawn } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadOrCreateTls } from '../../src/tunnel/tls.js';

t.test(
  'creates a CA and a leaf with SANs, reuses them, re-issues the leaf for new names',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-tls-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const host = '0c1e2d3f.internet.client.globalsecureaccess.test';
    const a = await loadOrCreateTls(join(dir, 'state'), [host]);
    const ca = new X509Certificate(a.ca);
    const leaf = new X509Certificate(a.cert);
    t.ok(ca.ca, 'CA cert is a CA');
    t.notOk(leaf.ca, 'leaf is not a CA');
    t.ok(leaf.verify(ca.publicKey), 'leaf signed by the CA');
    t.ok(leaf.checkIssued(ca));
    t.equal(leaf.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1', 'ECDSA P-256');
    t.ok(leaf.checkHost(host), 'covers the GSA-style host name');
    t.ok(leaf.checkHost('localhost'));
    t.ok(leaf.checkIP('127.0.0.1'));
    t.ok(leaf.checkIP('::1'));
    t.notOk(leaf.checkHost('other.test'));
    t.equal((await stat(a.files.key)).mode & 0o777, 0o600, 'key file is 0600');
    t.equal(await readFile(a.files.ca, 'utf8'), a.ca);

    const b = await loadOrCreateTls(join(dir, 'state'), [host]);
    t.equal(b.cert, a.cert, 'same names: leaf reused');
    t.equal(b.ca, a.ca);

    const c = await loadOrCreateTls(join(dir, 'state'), [
      host,
      'abc.m365.client.globalsecureaccess.test',
    ]);
    t.not(c.cert, a.cert, 'new name: leaf re-issued');
    t.equal(c.ca, a.ca, 'CA kept');
    t.ok(new X509Certificate(c.cert).checkHost('abc.m365.client.globalsecureaccess.test'));
  },
);

t.test(
  'processes creating the TLS files at once agree on one CA and a leaf it signed',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-tls-race-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const state = join(dir, 'state');
    const tlsModule = new URL('../../src/tunnel/tls.ts', import.meta.url).href;
    // Six processes start together (a barrier file) and each prints the CA and leaf it got.
    const go = join(dir, 'go');
    const script = `
    import { existsSync } from 'node:fs';
    const { loadOrCreateTls } = await import(${JSON.stringify(tlsModule)});
    for (let i = 0; i < 400 && !existsSync(${JSON.stringify(go)}); i++) await new Promise((r) => setTimeout(r, 5));
    const m = await loadOrCreateTls(${JSON.stringify(state)}, ['race.test']);
    process.stdout.write(JSON.stringify({ ca: m.ca, cert: m.cert }));
  `;
    const kids = Array.from({ length: 6 }, () =>
      spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    const outs = kids.map(
      (k) =>
        new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
          let out = '';
          let err = '';
          k.stdout.on('data', (d) => {
            out += d;
          });
          k.stderr.on('data', (d) => {
            err += d;
          });
          const timer = setTimeout(() => k.kill('SIGKILL'), 30_000);
          k.once('close', (code) => {
            clearTimeout(timer);
            resolve({ code, out, err });
          });
        }),
    );
    await new Promise((r) => setTimeout(r, 300));
    await writeFile(go, '');
    const results = await Promise.all(outs);
    const caOnDisk = await readFile(join(state, 'ca.pem'), 'utf8');
    const certOnDisk = await readFile(join(state, 'cert.pem'), 'utf8');
    const ca = new X509Certificate(caOnDisk);
    t.ok(
      new X509Certificate(certOnDisk).verify(ca.publicKey),
      'the leaf on disk is signed by the CA on disk',
    );
    for (const [i, r] of results.entries()) {
      t.equal(r.code, 0, `process ${i} succeeded ${r.err.slice(0, 300)}`);
      if (r.code !== 0) continue;
      const m = JSON.parse(r.out) as { ca: string; cert: string };
      t.equal(m.ca, caOnDisk, `process ${i} got the CA on disk`);
      t.ok(new X509Certificate(m.cert).verify(ca.publicKey), `process ${i}'s leaf is signed by it`);
    }
  },
);

t.test(
  'an IPv6 address in another spelling is covered once, not re-issued per start',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-tls-v6-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const names = ['0:0:0:0:0:0:0:1', '2001:DB8:0:0::1', '::ffff:127.0.0.1'];
    const first = await loadOrCreateTls(dir, names);
    const pem = await readFile(join(dir, 'cert.pem'), 'utf8');
    const second = await loadOrCreateTls(dir, names);
    t.equal(second.cert, first.cert, 'the leaf is kept');
    t.equal(await readFile(join(dir, 'cert.pem'), 'utf8'), pem, 'cert.pem not rewritten');
    const leaf = new X509Certificate(pem);
    for (const ip of ['2001:db8::1', '::1']) t.equal(leaf.checkIP(ip), ip, `covers ${ip}`);
    t.match(
      leaf.subjectAltName,
      /IP Address:0:0:0:0:0:FFFF:7F00:1/i,
      'the mapped address as it is',
    );
  },
);

t.test('a key that is not its certificate’s is replaced, not served or used to sign', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-tls-pair-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const a = await loadOrCreateTls(join(dir, 'a'), ['pair.test']);
  const b = await loadOrCreateTls(join(dir, 'b'), ['pair.test']);

  // Only the leaf pair is mixed (key.pem from another folder): the leaf is re-issued by
  // the same CA, and its key is the one served.
  await writeFile(a.files.key, b.key);
  const leafFixed = await loadOrCreateTls(join(dir, 'a'), ['pair.test']);
  t.equal(leafFixed.ca, a.ca, 'CA kept');
  t.not(leafFixed.cert, a.cert, 'leaf re-issued');
  const leaf = new X509Certificate(leafFixed.cert);
  t.ok(leaf.checkPrivateKey(createPrivateKey(leafFixed.key)), 'the key served is the leaf’s');
  t.ok(leaf.verify(new X509Certificate(a.ca).publicKey), 'signed by the same CA');
  t.equal(await readFile(a.files.key, 'utf8'), leafFixed.key);

  // The CA pair is mixed (ca-key.pem from another folder): the CA is made again, and the
  // leaf it signs verifies against the CA the clients are given.
  await writeFile(a.files.caKey, await readFile(b.files.caKey, 'utf8'));
  const caFixed = await loadOrCreateTls(join(dir, 'a'), ['pair.test']);
  t.not(caFixed.ca, a.ca, 'CA made again');
  const ca = new X509Certificate(caFixed.ca);
  t.ok(ca.checkPrivateKey(createPrivateKey(await readFile(a.files.caKey, 'utf8'))));
  const leaf2 = new X509Certificate(caFixed.cert);
  t.ok(leaf2.verify(ca.publicKey), 'leaf signed by the CA served');
  t.ok(leaf2.checkPrivateKey(createPrivateKey(caFixed.key)));

  const again = await loadOrCreateTls(join(dir, 'a'), ['pair.test']);
  t.equal(again.ca, caFixed.ca, 'a matching pair is reused');
  t.equal(again.cert, caFixed.cert);
});
