import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
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
