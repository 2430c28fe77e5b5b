/**
 * `gsa-emu up --host 0.0.0.0` (or `::`): the banner's addresses, PAC URLs and example
 * commands name a loopback address that works on this host (127.0.0.1, [::1]), not the
 * wildcard the listeners are bound to, and the banner says they listen on all interfaces
 * with credentials required. Example commands carry the proxy username (curl prompts for
 * the password).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { bannerText, reachableAddress, type UpOptions } from '../../src/cli/commands/up.js';
import type { StatusView } from '../../src/client/diagnostics.js';
import { createClientTiles, defaultClientConfig } from '../../src/policy/client-config.js';
import { startUp, upOnce } from '../util/up-in-process.js';

const execFileP = promisify(execFile);
const CURL = '/usr/bin/curl';

/** `gsa-emu up --once` on any free ports, in a state folder of its own; what it printed. */
async function upOnceIn(o: UpOptions): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-up-host-'));
  try {
    return await upOnce({ stateDir: dir, ...o });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs a banner's `curl ...` line (no quoted words in it) with the password given. */
async function runCurl(line: string, password: string): Promise<string> {
  const args = line.replace(/#.*/, '').trim().split(/\s+/).slice(1);
  const u = args.indexOf('-U');
  if (u >= 0) args[u + 1] = `${args[u + 1]}:${password}`;
  try {
    const { stdout } = await execFileP('curl', ['-sS', '--max-time', '10', ...args]);
    return stdout;
  } catch (e) {
    return `curl failed: ${(e as Error).message}`;
  }
}

t.test('up --host 0.0.0.0: the banner names 127.0.0.1 and says all interfaces', async (t) => {
  // Running (not --once) for a few seconds, so that the printed commands can be tried.
  const dir = await mkdtemp(join(tmpdir(), 'gsa-up-host-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const u = startUp({
    host: '0.0.0.0',
    user: 'bob',
    password: 'pw',
    socksPort: '0',
    httpPort: '0',
    exitAfter: '5',
    tty: false,
    stateDir: dir,
  });
  await u.waitFor('Ctrl+C to stop.');
  const cmd = (what: RegExp): string =>
    u.text.split('\n').find((l) => /^\s+curl /.test(l) && what.test(l)) ?? '';
  if (existsSync(CURL)) {
    // The commands as printed, with the password curl would ask for.
    t.match(
      await runCurl(cmd(/intranet\.contoso\.test/), 'pw'),
      /^gsa-emu demo: http:\/\/intranet\.contoso\.test\/\n/,
      'the SOCKS5 command works',
    );
    t.match(
      await runCurl(cmd(/news\.test/), 'pw'),
      /^gsa-emu demo: http:\/\/news\.test\/\n/,
      'the HTTP proxy command works',
    );
  }
  await u.run;
  const { text } = u;
  t.notMatch(text, /0\.0\.0\.0:\d/, 'no command or URL names 0.0.0.0');
  t.match(text, /^SOCKS5 +127\.0\.0\.1:\d+ \(username\/password required\)$/m);
  t.match(text, /^HTTP proxy +127\.0\.0\.1:\d+ \(username\/password required\)$/m);
  t.match(text, /^PAC +http:\/\/127\.0\.0\.1:\d+\/proxy\.pac +\(also http:\/\/127\.0\.0\.1:\d+\//m);
  t.match(text, /listening +on all interfaces \(0\.0\.0\.0\), username\/password required/);
  t.match(text, /the PAC file names the address it was fetched on/);
  t.match(
    text,
    /curl -U bob --socks5-hostname 127\.0\.0\.1:\d+ http:\/\/intranet\.contoso\.test\//,
  );
  t.match(text, /curl -U bob -x http:\/\/127\.0\.0\.1:\d+ http:\/\/news\.test\//);
  t.match(text, /admin API +http:\/\/127\.0\.0\.1:\d+ /);
});

t.test('up --host ::: the banner names [::1]', async (t) => {
  const text = await upOnceIn({ host: '::', user: 'bob', password: 'pw' });
  t.notMatch(text, /\[::\]:\d/, 'no command or URL names [::]');
  t.match(text, /^SOCKS5 +\[::1\]:\d+ /m);
  t.match(text, /^PAC +http:\/\/\[::1\]:\d+\/proxy\.pac +\(also http:\/\/\[::1\]:\d+\//m);
  t.match(text, /listening +on all interfaces \(::\), username\/password required/);
  t.match(text, /curl -U bob --socks5-hostname \[::1\]:\d+ http:\/\/intranet/);
});

t.test('loopback without credentials: as before, no all-interfaces line', async (t) => {
  const text = await upOnceIn({});
  t.match(text, /^SOCKS5 +127\.0\.0\.1:\d+$/m);
  t.match(text, /^HTTP proxy +127\.0\.0\.1:\d+$/m);
  t.notMatch(text, /all interfaces/);
  t.notMatch(text, /curl -U/);
  t.match(text, /curl --socks5-hostname 127\.0\.0\.1:\d+ http:\/\/intranet\.contoso\.test\//);
});

t.test('reachableAddress: wildcards become loopback, anything else stays', async (t) => {
  t.equal(reachableAddress('0.0.0.0:1080'), '127.0.0.1:1080');
  t.equal(reachableAddress('[::]:8080'), '[::1]:8080');
  t.equal(reachableAddress('http://0.0.0.0:9/proxy.pac'), 'http://127.0.0.1:9/proxy.pac');
  t.equal(reachableAddress('http://[::]:9/proxy.pac'), 'http://[::1]:9/proxy.pac');
  t.equal(reachableAddress('127.0.0.1:1080'), '127.0.0.1:1080');
  t.equal(reachableAddress('192.0.2.7:1080'), '192.0.2.7:1080');
  t.equal(reachableAddress('[::1]:1080'), '[::1]:1080');
  t.equal(reachableAddress('[2001:db8::]:1080'), '[2001:db8::]:1080');
  t.equal(reachableAddress('10.0.0.0:1'), '10.0.0.0:1');
});

t.test('bannerText with a remote edge on [::]: loopback in the try lines', async (t) => {
  const tiles = createClientTiles(defaultClientConfig()).snapshot().tiles;
  const status = {
    state: 'Connected',
    notes: [],
    warnings: [],
    tenantId: 't',
    tenantName: 'T',
    channels: [],
    tiles,
  } as unknown as StatusView;
  const client = {
    status: () => status,
    platform: { name: 'windows' },
    listenNotes: [],
    addresses: {
      socks: '[::]:1080',
      http: '[::]:8080',
      pac: 'http://[::]:4000/proxy.pac',
      admin: '127.0.0.1:5000',
    },
  } as unknown as Parameters<typeof bannerText>[0];
  const base = {
    dir: '/x',
    edgeUrl: 'https://edge.test:8443',
    demo: null,
    inProcess: null,
    tun: null,
  };
  const text = bannerText(client, { ...base, auth: true, user: "o'neil" });
  t.match(text, /^SOCKS5 +\[::1\]:1080 \(username\/password required\)$/m);
  t.match(text, /^HTTP proxy +\[::1\]:8080 \(username\/password required\)$/m);
  t.match(
    text,
    /^PAC +http:\/\/\[::1\]:4000\/proxy\.pac {2}\(also http:\/\/\[::1\]:8080\/proxy\.pac\)$/m,
  );
  t.match(text, /^listening +on all interfaces \(::\), username\/password required/m);
  t.match(text, /^ {2}curl -U 'o'\\''neil' --socks5-hostname \[::1\]:1080 http:\/\/<name>\/$/m);
  t.match(text, /^ {2}curl -U 'o'\\''neil' -x http:\/\/\[::1\]:8080 http:\/\/<name>\/$/m);
  t.notMatch(text, /\[::\]/);
  // A specific address is shown as it is, without the all-interfaces line.
  const specific = {
    ...client,
    addresses: { socks: '192.0.2.7:1080', http: null, pac: null, admin: '127.0.0.1:5000' },
  };
  const one = bannerText(specific, { ...base, auth: true, user: 'bob' });
  t.match(one, /^SOCKS5 +192\.0\.2\.7:1080 \(username\/password required\)$/m);
  t.match(one, /^HTTP proxy +off$/m);
  t.notMatch(one, /all interfaces/);
  t.match(one, /curl -U bob --socks5-hostname 192\.0\.2\.7:1080 http:\/\/<name>\//);
});
