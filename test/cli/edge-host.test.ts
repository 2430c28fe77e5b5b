/**
 * `gsa-emu edge --host` / `--hostname`: the loopback check takes any loopback address (also
 * `[::1]` as written in a URL, and `::ffff:127.x`), and refuses a name that only starts with
 * "127."; the certificate names the listen address and every `--hostname`, so a client given
 * the printed URL (or a name of the shared edge) and the printed CA verifies it. The edges
 * run as children on loopback ports and are stopped by the test.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import t, { type Test } from 'tap';
import { hasIpv6Loopback, NO_IPV6_LOOPBACK } from '../util/ipv6.js';
import { collect } from '../util/ts-child.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first';

function tmp(t: Test): string {
  const d = mkdtempSync(join(tmpdir(), 'gsa-edge-host-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Runs `gsa-emu edge ...args` until its banner, then SIGTERM; its output and exit code. */
function edgeUntilBanner(args: string[]) {
  const c = spawn(process.execPath, [mainJs, 'edge', '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const r = collect(c, 20_000);
  let out = '';
  c.stdout!.on('data', (d) => {
    out += d;
    if (/Ctrl\+C/.test(out)) c.kill('SIGTERM');
  });
  return r;
}

/** TLS handshake to 127.0.0.x:port with `servername`, trusting only `ca`: null or the error. */
function verify(
  host: string,
  port: number,
  servername: string,
  ca: string,
): Promise<string | null> {
  return new Promise((resolve) => {
    const s = connect({ host, port, servername, ca, timeout: 5000 });
    s.once('secureConnect', () => {
      s.destroy();
      resolve(null);
    });
    s.once('error', (e) => resolve(e.message));
    s.once('timeout', () => {
      s.destroy();
      resolve('timeout');
    });
  });
}

t.test('the loopback check of --host', { skip }, async (t) => {
  const dir = tmp(t);
  const named = await collect(
    spawn(
      process.execPath,
      [mainJs, 'edge', '--port', '0', '--no-tls', '--state-dir', dir, '--host', '127.invalid'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ),
    10_000,
  );
  t.equal(named.code, 2, 'a name starting with "127." is not loopback: usage error');
  t.match(named.err, /--host 127\.invalid is not loopback/);
  if (!(await hasIpv6Loopback())) {
    t.comment(`${NO_IPV6_LOOPBACK}: [::1] and ::ffff:127.0.0.1 are not tried`);
    return;
  }
  for (const host of ['[::1]', '::ffff:127.0.0.1']) {
    const r = await edgeUntilBanner(['--no-tls', '--state-dir', dir, '--host', host]);
    t.match(r.out, /listening on http:\/\/\[::(ffff:127\.0\.0\.1|1)\]:\d+/, `${host} listens`);
    t.notMatch(r.err, /not loopback/, `${host} is loopback`);
  }
});

t.test('the certificate names --host and each --hostname', { skip }, async (t) => {
  const dir = tmp(t);
  const c = spawn(
    process.execPath,
    [
      mainJs,
      'edge',
      '--port',
      '0',
      '--state-dir',
      dir,
      '--host',
      '127.0.0.2',
      '--hostname',
      'edge.team.test',
      '--hostname',
      '127.0.0.3',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  const kill = setTimeout(() => c.kill('SIGKILL'), 20_000);
  t.teardown(async () => {
    c.kill('SIGTERM');
    await exited;
    clearTimeout(kill);
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    c.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (\S+)[\s\S]*Ctrl\+C/.exec(out);
      if (m) resolve(m[1]!);
    });
    void exited.then(() => reject(new Error(`edge exited: ${out}`)));
  });
  const m = /^https:\/\/127\.0\.0\.2:(\d+)$/.exec(url);
  t.ok(m, `printed URL ${url}`);
  const port = Number(m?.[1]);
  const ca = readFileSync(join(dir, 'ca.pem'), 'utf8');
  t.equal(await verify('127.0.0.2', port, '', ca), null, 'the printed URL verifies');
  t.equal(await verify('127.0.0.2', port, 'edge.team.test', ca), null, '--hostname name verifies');
  t.match(
    await verify('127.0.0.2', port, 'other.team.test', ca),
    /altnames|does not match/,
    'another name does not',
  );
});

t.test('--hostname: an IP address or an ASCII DNS name, else a usage error', async (t) => {
  const { certName } = await import('../../src/cli/commands/edge.js');
  t.equal(certName('edge.example.test'), 'edge.example.test');
  t.equal(certName('edge.example.test.'), 'edge.example.test', 'a final dot dropped');
  t.equal(certName('*.example.test'), '*.example.test', 'a wildcard');
  t.equal(certName('2001:db8::1'), '2001:db8::1');
  t.equal(certName('10.1.2.3'), '10.1.2.3');
  for (const bad of ['', 'a b', '127.0.0.1:8443', '-edge.test', `${'x'.repeat(64)}.test`, 'a..b']) {
    t.throws(
      () => certName(bad),
      { code: 'GSA_ERR_USAGE', message: /is not an IP address or a DNS name/ },
      JSON.stringify(bad),
    );
  }
  t.throws(() => certName(`${'abcdefgh.'.repeat(28)}test`), { code: 'GSA_ERR_USAGE' }, 'over 253');
  t.throws(() => certName('bücher.test'), { message: /in ASCII it is xn--bcher-kva\.test/ });
});
