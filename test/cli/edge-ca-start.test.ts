/**
 * `up --edge` with a certificate the client cannot trust (no `--edge-ca`, or another edge's),
 * or https:// to an edge without TLS: the start stops with a usage error that says what to
 * change, as a wrong secret does, instead of a client that retries for ever. Edges run in
 * this process on loopback and are closed by the test; each `up --once` is a child, bounded.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { isEdgeConfigError } from '../../src/client/edge-api.js';
import { startEdge } from '../../src/edge/server.js';
import { skip, tempRoot, upOnce } from './cli-ux-helpers.js';

const { root, newDir } = await tempRoot(t);

t.test('isEdgeConfigError: the certificate and scheme codes, nothing else', async (t) => {
  const e = (code: unknown) => Object.assign(new Error('x'), { code });
  for (const code of [
    'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'SELF_SIGNED_CERT_IN_CHAIN',
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'ERR_TLS_CERT_ALTNAME_INVALID',
    'ERR_SSL_WRONG_VERSION_NUMBER',
  ]) {
    t.ok(isEdgeConfigError(e(code)), code);
  }
  // An edge not up yet, restarting or slow: the client retries.
  for (const code of ['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET', 'ETIMEDOUT', 42, undefined]) {
    t.notOk(isEdgeConfigError(e(code)), String(code));
  }
  t.notOk(isEdgeConfigError(null));
  t.notOk(isEdgeConfigError('UNABLE_TO_VERIFY_LEAF_SIGNATURE'));
});

t.test(
  'up --edge: an untrusted certificate or a wrong scheme stops the start',
  { skip },
  async (t) => {
    const tls = await startEdge({ stateDir: join(root, 'tls'), persistKey: false });
    t.teardown(() => tls.close({ graceMs: 0 }));
    const other = await startEdge({ stateDir: join(root, 'other'), persistKey: false });
    t.teardown(() => other.close({ graceMs: 0 }));
    const plain = await startEdge({ stateDir: join(root, 'plain'), tls: false, persistKey: false });
    t.teardown(() => plain.close({ graceMs: 0 }));
    const ownCa = join(root, 'own-ca.pem');
    writeFileSync(ownCa, tls.caPem!);
    const otherCa = join(root, 'other-ca.pem');
    writeFileSync(otherCa, other.caPem!);

    const noCa = await upOnce(newDir(), ['--edge', tls.url]);
    t.equal(noCa.code, 2, 'no --edge-ca: a usage error');
    t.match(
      noCa.err,
      `gsa-emu: --edge ${tls.url}: unable to verify the first certificate: the edge's certificate is not trusted; give its CA with --edge-ca`,
    );
    t.notMatch(noCa.out, /Connected/, 'no client started');

    const wrongCa = await upOnce(newDir(), ['--edge', tls.url, '--edge-ca', otherCa]);
    t.equal(wrongCa.code, 2, "another edge's CA: a usage error");
    t.match(wrongCa.err, `--edge ${tls.url}: `);
    t.match(wrongCa.err, /not signed by the CA given with --edge-ca; give that edge's own/);

    const httpsToPlain = plain.url.replace(/^http:/, 'https:');
    const scheme = await upOnce(newDir(), ['--edge', httpsToPlain, '--edge-ca', ownCa]);
    t.equal(scheme.code, 2, 'https:// to an edge without TLS: a usage error');
    t.match(
      scheme.err,
      `--edge ${httpsToPlain}: TLS handshake failed: the edge does not speak TLS`,
    );

    // The same edge with its own CA: the start goes on, so the refusals above were the CA's.
    const ok = await upOnce(newDir(), ['--edge', tls.url, '--edge-ca', ownCa]);
    t.equal(ok.code, 0, `its own CA: up --once passes (${ok.err.trim()})`);
    t.match(ok.out, /Global Secure Access Connected/);
  },
);
