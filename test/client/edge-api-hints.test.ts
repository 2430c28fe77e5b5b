/**
 * A client pointed at its edge with the wrong scheme or without the edge's CA: the token
 * request's error (what `status` shows as Entra's, and `status --health` as the cached
 * token's) says what to change. In process, edges on loopback, closed here.
 */
import { join } from 'node:path';
import t from 'tap';
import { EdgeApi, withTransportHint } from '../../src/client/edge-api.js';
import { startEdge } from '../../src/edge/server.js';
import { tempDir } from '../edge/helpers.js';

const USER = { userId: 'u1', deviceId: 'd1' };

async function tokenError(url: string, ca?: string): Promise<Error & { code?: string }> {
  const api = new EdgeApi({ url, ...USER, ...(ca ? { ca } : {}), timeoutMs: 5000 });
  try {
    await api.getToken('m365');
  } catch (err) {
    return err as Error & { code?: string };
  } finally {
    await api.close();
  }
  throw new Error(`a token from ${url}`);
}

t.test('wrong scheme or CA: the message says what to change', async (t) => {
  const tmp = await tempDir('gsa-edge-hints-');
  t.teardown(tmp.remove);
  const tls = await startEdge({ stateDir: join(tmp.dir, 'tls'), persistKey: false });
  t.teardown(() => tls.close({ graceMs: 0 }));
  const plain = await startEdge({
    stateDir: join(tmp.dir, 'plain'),
    tls: false,
    persistKey: false,
  });
  t.teardown(() => plain.close({ graceMs: 0 }));

  const noCa = await tokenError(tls.url);
  t.match(
    noCa.message,
    /not trusted; give its CA with --edge-ca \(the edge's <state-dir>\/ca\.pem\)/,
  );
  t.equal(noCa.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'the code is kept');

  const httpToTls = await tokenError(tls.url.replace(/^https:/, 'http:'));
  t.match(httpToTls.message, /if the edge serves TLS .*its URL is https:\/\//);

  const httpsToPlain = await tokenError(plain.url.replace(/^http:/, 'https:'), tls.caPem!);
  t.match(httpsToPlain.message, /^TLS handshake failed: the edge does not speak TLS there/);
  t.notMatch(httpsToPlain.message, /ssl3_get_record/, "not OpenSSL's internals");

  // Another edge's CA (each edge's state folder has its own): not "give --edge-ca".
  const other = await startEdge({ stateDir: join(tmp.dir, 'other'), persistKey: false });
  t.teardown(() => other.close({ graceMs: 0 }));
  const wrongCa = await tokenError(tls.url, other.caPem!);
  t.match(
    wrongCa.message,
    /not signed by the CA given with --edge-ca; give that edge's own <state-dir>\/ca\.pem/,
  );
  t.notMatch(wrongCa.message, /give its CA with --edge-ca/, 'a CA was given');

  // The right URL and CA: a token.
  const api = new EdgeApi({ url: tls.url, ca: tls.caPem!, ...USER, timeoutMs: 5000 });
  t.teardown(() => api.close());
  t.ok((await api.getToken('m365')).length > 20, 'a token with the CA');
});

t.test('other errors pass as they are', async (t) => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), {
    code: 'ECONNREFUSED',
  });
  t.equal(withTransportHint(refused, 'https://127.0.0.1:1'), refused);
  const abort = new DOMException('aborted', 'TimeoutError');
  t.equal(withTransportHint(abort, 'https://127.0.0.1:1'), abort);
  t.equal(withTransportHint('text', 'http://x'), 'text');
});
