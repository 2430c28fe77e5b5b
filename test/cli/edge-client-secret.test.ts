/**
 * The edge's client secret from the command line (docs/decisions/edge-client-secret.md):
 * `gsa-emu edge --client-secret-file <file>` (and, beyond loopback, a secret it makes in its
 * state folder) and `gsa-emu up --edge <url> --edge-secret <file>`. A secret missing or
 * wrong stops `up` at once with a usage error that says what to give, instead of a client
 * that retries for ever. Edges and clients run as children on loopback, bounded in time and
 * stopped by the test; the non-loopback edge runs in a network namespace the test makes
 * (root only), on a non-loopback address it gives lo there.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { EDGE_SECRET_FILE, ensureEdgeSecret, readSecretFile } from '../../src/cli/edge-secret.js';
import { collect } from '../util/ts-child.js';
import { cli, mainJs, skip, tempRoot, upOnce } from './cli-ux-helpers.js';
import { ip, netMissing } from './netns-helpers.js';

const { root, newDir } = await tempRoot(t);
const SECRET = 'c2VjcmV0LWZvci10aGUtY2xpLXRlc3Q';

t.test('readSecretFile: one line of 16 to 1024 printable characters, else named', async (t) => {
  const f = join(root, 'secret.txt');
  writeFileSync(f, `  ${SECRET}\n`);
  t.equal(readSecretFile(f, '--edge-secret'), SECRET, 'spaces and the line end trimmed');
  const cases: Array<[string, RegExp]> = [
    ['short\n', /the secret is 5 characters; give 16 to 1024/],
    ['x'.repeat(1025), /the secret is 1025 characters/],
    ['two words of a secret\n', /one line of printable ASCII without spaces/],
    ['line-one-of-it\nline-two-of-it\n', /one line of printable ASCII/],
  ];
  for (const [text, why] of cases) {
    writeFileSync(f, text);
    t.throws(() => readSecretFile(f, '--edge-secret'), {
      name: 'UsageError',
      message: why,
    });
  }
  t.throws(() => readSecretFile(join(root, 'none'), '--edge-secret'), {
    name: 'UsageError',
    message: `--edge-secret "${join(root, 'none')}": cannot read it (ENOENT)`,
  });
});

t.test('ensureEdgeSecret: made once, 0600, then read', async (t) => {
  const dir = newDir();
  spawnSync('mkdir', ['-p', dir]);
  const first = ensureEdgeSecret(dir);
  t.equal(first.file, join(dir, EDGE_SECRET_FILE));
  t.match(first.secret, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
  t.equal(statSync(first.file).mode & 0o777, 0o600, 'only its owner reads it');
  t.equal(readFileSync(first.file, 'utf8'), `${first.secret}\n`);
  t.same(ensureEdgeSecret(dir), first, 'the second edge on the folder reads the same one');
  const other = newDir();
  spawnSync('mkdir', ['-p', other]);
  writeFileSync(join(other, EDGE_SECRET_FILE), 'short\n');
  t.throws(() => ensureEdgeSecret(other), { name: 'UsageError', message: /5 characters/ });
  // A link in its place is not followed to be written through.
  const linked = newDir();
  spawnSync('mkdir', ['-p', linked]);
  symlinkSync(join(root, 'elsewhere'), join(linked, EDGE_SECRET_FILE));
  t.throws(() => ensureEdgeSecret(linked), { message: /cannot read it/ });
  t.throws(() => statSync(join(root, 'elsewhere')), 'nothing written through the link');
});

/** A `gsa-emu edge` child until its banner: URL and banner; stopped at the end of `t`. */
async function edgeCli(
  t: Test,
  args: string[],
  prefix: string[] = [],
): Promise<{ url: string; out: string }> {
  const [cmd, ...pre] = prefix.length ? prefix : [process.execPath];
  const child = spawn(
    cmd!,
    [...pre, ...(prefix.length ? [process.execPath] : []), mainJs, 'edge', '--port', '0', ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  // Ended by the teardown; the bound only outlives a test that runs long on a loaded machine
  // (its four `up --once` runs took over 60 s at load 17), within tap's 240 s per file.
  const done = collect(child, 200_000);
  t.teardown(async () => {
    child.kill('SIGTERM');
    await done;
  });
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  const started = Date.now();
  while (!/Ctrl\+C to stop\./.test(out)) {
    if (child.exitCode !== null || Date.now() - started > 30_000) {
      const r = await done;
      throw new Error(`the edge did not start (exit ${r.code}): ${r.err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: /listening on (\S+)/.exec(out)![1]!, out };
}

t.test('edge --client-secret-file and up --edge-secret', { skip }, async (t) => {
  const secretFile = join(root, 'edge-secret');
  writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  const edgeDir = newDir();
  const edge = await edgeCli(t, [
    '--no-tls',
    '--state-dir',
    edgeDir,
    '--client-secret-file',
    secretFile,
  ]);
  t.match(
    edge.out,
    `secret      ${secretFile} (tokens only with it: gsa-emu up --edge <url> --edge-secret ${secretFile})`,
  );
  t.notMatch(edge.out, /warning/, 'plain HTTP on loopback: no warning');

  const none = await upOnce(newDir(), ['--edge', edge.url]);
  t.equal(none.code, 2, 'no secret: a usage error');
  t.match(
    none.err,
    `gsa-emu: the edge ${edge.url} issues tokens only with its client secret: give --edge-secret <file>`,
  );

  const wrongFile = join(root, 'wrong-secret');
  writeFileSync(wrongFile, 'd3JvbmctZm9yLXRoZS1jbGktdGVzdA\n');
  const wrong = await upOnce(newDir(), ['--edge', edge.url, '--edge-secret', wrongFile]);
  t.equal(wrong.code, 2, 'a wrong secret: a usage error');
  t.match(
    wrong.err,
    `--edge-secret "${wrongFile}": the edge ${edge.url} refuses it as its client secret`,
  );

  const ok = await upOnce(newDir(), ['--edge', edge.url, '--edge-secret', secretFile]);
  t.equal(ok.code, 0, `the secret: up --once passes (${ok.err.trim()})`);
  t.match(ok.out, /Global Secure Access Connected/);

  // Also as the config file's `edgeSecret`, relative to the file.
  const cfgDir = newDir();
  spawnSync('mkdir', ['-p', cfgDir]);
  writeFileSync(join(cfgDir, 's.txt'), `${SECRET}\n`);
  writeFileSync(join(cfgDir, 'up.json'), JSON.stringify({ edge: edge.url, edgeSecret: 's.txt' }));
  const viaCfg = await upOnce(newDir(), ['--config', join(cfgDir, 'up.json')]);
  t.equal(viaCfg.code, 0, `edgeSecret in --config (${viaCfg.err.trim()})`);
});

t.test('up --edge-secret without --edge, and a file that is not a secret', { skip }, async (t) => {
  const alone = await cli([
    'up',
    '--once',
    '--state-dir',
    newDir(),
    '--edge-secret',
    join(root, 'x'),
  ]);
  t.equal(alone.code, 2);
  t.match(alone.err, /--edge-secret goes with --edge/);
  const short = join(root, 'short-secret');
  writeFileSync(short, 'short\n');
  const bad = await cli([
    'up',
    '--once',
    '--state-dir',
    newDir(),
    '--edge',
    'http://127.0.0.1:9',
    '--edge-secret',
    short,
  ]);
  t.equal(bad.code, 2);
  t.match(bad.err, `--edge-secret "${short}": the secret is 5 characters`);
  const edgeBad = await cli([
    'edge',
    '--port',
    '0',
    '--no-tls',
    '--state-dir',
    newDir(),
    '--client-secret-file',
    short,
  ]);
  t.equal(edgeBad.code, 2);
  t.match(edgeBad.err, `--client-secret-file "${short}": the secret is 5 characters`);
  t.notMatch(edgeBad.out, /listening on/, 'nothing listens');
});

t.test(
  'edge beyond loopback: makes its secret and issues tokens only with it',
  { skip: netMissing('a network namespace') },
  async (t) => {
    const ns = `gsaemu-${process.pid}-secret`;
    t.equal(ip('netns', 'add', ns).status, 0, 'namespace');
    t.teardown(() => {
      ip('netns', 'del', ns);
    });
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    // An address that is not loopback's (10/8), on the namespace's own lo: nothing routes
    // there from the host.
    t.equal(ip('-n', ns, 'addr', 'add', '10.254.77.1/32', 'dev', 'lo').status, 0, 'address');
    const dir = newDir();
    const inNs = ['ip', 'netns', 'exec', ns];
    const refused = await cli([
      'edge',
      '--port',
      '0',
      '--no-tls',
      '--host',
      '10.254.77.1',
      '--state-dir',
      dir,
    ]);
    t.equal(refused.code, 2, 'without --allow-remote: a usage error');

    const edge = await edgeCli(
      t,
      ['--no-tls', '--host', '10.254.77.1', '--allow-remote', '--state-dir', dir],
      inNs,
    );
    const file = join(dir, EDGE_SECRET_FILE);
    t.match(edge.out, `secret      ${file}`, 'the banner names the secret file');
    t.match(edge.out, /warning {5}--no-tls beyond loopback: .* in clear/, 'plain HTTP: warned');
    t.equal(statSync(file).mode & 0o777, 0o600, 'made 0600');
    const secret = readFileSync(file, 'utf8').trim();
    const ask = async (body: object): Promise<number> => {
      const script = `fetch(${JSON.stringify(`${edge.url}/oauth2/v2.0/token`)}, { method: 'POST', headers: { 'content-type': 'application/json' }, body: ${JSON.stringify(JSON.stringify(body))} }).then((r) => console.log(r.status), (e) => console.log('error ' + e.message));`;
      const r = await collect(
        spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], {
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
        15_000,
      );
      return Number(r.out.trim());
    };
    const ids = { userId: 'alice', channel: 'internet' };
    t.equal(await ask(ids), 401, 'a token request without the secret: 401');
    t.equal(await ask({ ...ids, client_secret: 'guess-guess-guess-guess' }), 401, 'a guess: 401');
    t.equal(await ask({ ...ids, client_secret: secret }), 200, 'with the secret: a token');
  },
);
