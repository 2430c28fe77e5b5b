/**
 * `gsa-emu edge --host 0.0.0.0` / `--host ::` (docs/decisions/edge-wildcard-names.md): the
 * banner says it listens on every address and prints a URL a client on another machine can
 * give `up --edge` (not `https://0.0.0.0:...`), and the certificate holds this machine's
 * addresses, so that client verifies the edge with the CA alone. The edge runs in a network
 * namespace the test makes, joined by a veth pair to a second one where the client runs
 * (root and iproute2 only; both namespaces are removed at the end). The CA stays the one
 * the state folder had: the leaf is re-issued for the new names.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { EDGE_SECRET_FILE } from '../../src/cli/edge-secret.js';
import { loadOrCreateTls } from '../../src/tunnel/tls.js';
import { collect, type Run } from '../util/ts-child.js';
import { mainJs, startEdgeProcess, tempRoot } from './cli-ux-helpers.js';
import { netSkip, twoNamespaces } from './netns-helpers.js';

const { newDir } = await tempRoot(t);

/** node `-e script args` inside namespace `ns` (ended after 30 s). */
const nodeIn = (ns: string, args: string[]): Promise<Run> =>
  collect(
    spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
    30_000,
  );

/** The banner's parts: where it listens, its port, the URL for clients, the names line. */
function banner(out: string) {
  const where = /listening on (.*)/.exec(out)?.[1] ?? '';
  return {
    where,
    port: /port (\d+)$|:(\d+)$/.exec(where)?.slice(1).find(Boolean) ?? '',
    url: /^ {2}URL {9}(\S+)/m.exec(out)?.[1] ?? '',
    names: /^ {2}names {7}(.*)/m.exec(out)?.[1] ?? '',
  };
}

/** GET `url` with only `caFile` trusted: status and the certificate's names, or the error. */
const GET = `
const https = require('node:https');
const req = https.get(process.argv[1], { ca: require('node:fs').readFileSync(process.argv[2]) }, (res) => {
  res.resume();
  console.log(res.statusCode, res.socket.getPeerCertificate().subjectaltname);
});
req.on('error', (e) => console.log('error', e.code ?? e.message));
`;

t.test(
  'edge --host 0.0.0.0: a URL and a certificate for another machine',
  { skip: netSkip },
  async (t) => {
    const { a, b } = twoNamespaces(t, `gsaemu-${process.pid}-w`, `gw${process.pid}`);
    const dir = newDir();
    // The folder's CA (as a client already holds it), made before the edge.
    const before = await loadOrCreateTls(dir, []);
    const { out } = await startEdgeProcess(
      t,
      dir,
      ['--host', '0.0.0.0', '--allow-remote'],
      /Ctrl\+C to stop\./,
      60_000,
      { tls: true, prefix: ['ip', 'netns', 'exec', a] },
    );
    const { where, port, url } = banner(out);
    t.notMatch(out, /0\.0\.0\.0/, 'no 0.0.0.0 in the banner');
    t.match(where, /^all IPv4 addresses, port \d+$/, 'says where it listens');
    t.equal(url, `https://10.112.0.1:${port}`, "the URL: this machine's address");
    if (!url) return;
    const ca = join(dir, 'ca.pem');
    const secret = join(dir, EDGE_SECRET_FILE);
    t.match(
      out,
      `gsa-emu up --edge ${url} --edge-ca ${ca} --edge-secret ${secret})`,
      'the up hint gives that URL',
    );
    t.match(out, `  JWKS        ${url}/.well-known/jwks.json`);
    t.equal(readFileSync(ca, 'utf8'), before.ca, 'the CA is the one the folder had');
    t.not(readFileSync(join(dir, 'cert.pem'), 'utf8'), before.cert, 'the leaf is re-issued');

    const jwks = await nodeIn(b, ['-e', GET, `${url}/.well-known/jwks.json`, ca]);
    t.match(
      jwks.out,
      /^200 .*IP Address:10\.112\.0\.1/,
      'the JWKS from the other namespace, with the CA alone',
    );
    t.notMatch(jwks.out, /fe80|FE80/i, 'no link-local address in the certificate');

    const up = await nodeIn(b, [
      mainJs,
      'up',
      '--once',
      '--state-dir',
      newDir(),
      '--socks-port',
      '0',
      '--http-port',
      '0',
      '--edge',
      url,
      '--edge-ca',
      ca,
      '--edge-secret',
      secret,
    ]);
    t.equal(up.code, 0, `up --once with the banner's URL, CA and secret (${up.err.trim()})`);
    t.match(up.out, /Global Secure Access Connected/);
  },
);

t.test(
  'edge --host :: with --hostname: that name first, every address in the certificate',
  { skip: netSkip },
  async (t) => {
    const { a, b } = twoNamespaces(t, `gsaemu-${process.pid}-6`, `g6${process.pid}`);
    const dir = newDir();
    mkdirSync(dir, { recursive: true });
    const secretFile = join(dir, 'secret');
    writeFileSync(secretFile, 'c2VjcmV0LWZvci10aGUtd2lsZGNhcmQtdGVzdA\n', { mode: 0o600 });
    const { out } = await startEdgeProcess(
      t,
      dir,
      [
        '--host',
        '::',
        '--allow-remote',
        '--hostname',
        'edge.lab.test',
        '--client-secret-file',
        secretFile,
      ],
      /Ctrl\+C to stop\./,
      60_000,
      { tls: true, prefix: ['ip', 'netns', 'exec', a] },
    );
    const { where, port, url, names } = banner(out);
    t.notMatch(out, /\[::\]/, 'no [::] in the banner');
    t.match(where, /^all IPv4 and IPv6 addresses, port \d+$/, 'says where it listens');
    t.equal(url, `https://edge.lab.test:${port}`, 'the URL: the first --hostname');
    t.match(names, /^edge\.lab\.test, 10\.112\.0\.1, /, 'then the addresses');
    t.notMatch(names, /fe80/, 'no link-local address');
    const ca = join(dir, 'ca.pem');
    const jwks = await nodeIn(b, [
      '-e',
      GET,
      `https://10.112.0.1:${port}/.well-known/jwks.json`,
      ca,
    ]);
    t.match(
      jwks.out,
      /^200 .*DNS:edge\.lab\.test.*IP Address:10\.112\.0\.1/,
      'the name and the address',
    );
    t.notMatch(jwks.out, /fe80/i, 'no link-local address in the certificate');
    if (/fd12:112::1/.test(names)) {
      const v6 = await nodeIn(b, [
        '-e',
        GET,
        `https://[fd12:112::1]:${port}/.well-known/jwks.json`,
        ca,
      ]);
      t.match(v6.out, /^200 /, 'the IPv6 address verifies too');
    } else {
      t.comment('no IPv6 in the namespaces here: the IPv6 address is not tried');
    }
  },
);
