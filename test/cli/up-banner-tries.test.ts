/**
 * `gsa-emu up`'s "try" lines say what the client does with each demo name under the client
 * configuration in force, from the classifier's own decision (the forwarder's `decide`, as
 * for a proxy flow): tunneled on a channel, bypassed and why, blocked at the edge. A
 * channel the configuration hides gets no line (one comment says which); a channel that is
 * off says "bypassed: ... is off", and the command does what the line says. The suggested
 * toggle is one the user may make. On a terminal the lines follow a toggle.
 *
 * Everything listens on 127.0.0.1 and stops with `up`; the demo names resolve to loopback.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import type { Decision } from '../../src/classify/types.js';
import { bannerText } from '../../src/cli/commands/up.js';
import { adminCall, adminTarget } from '../../src/client/admin-client.js';
import { DEMO_TRIES, type DecidedTry, type Demo } from '../../src/client/demo.js';
import { decision } from '../forward/fixtures/fakes.js';
import { startUp, upOnce } from '../util/up-in-process.js';
import { bannerClient, line } from './banner-helpers.js';

const execFileP = promisify(execFile);
const CURL = '/usr/bin/curl';

async function folder(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-up-tries-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A client configuration file with these keys. */
async function clientConfig(dir: string, keys: Record<string, unknown>): Promise<string> {
  const file = join(dir, 'cc.json');
  await writeFile(file, JSON.stringify(keys));
  return file;
}

/** `up --once` on free ports with these client keys: the banner. */
async function upKeys(t: Test, keys: Record<string, unknown>): Promise<string> {
  const dir = await folder(t);
  return upOnce({
    processLookup: false,
    stateDir: join(dir, 'state'),
    clientConfig: await clientConfig(dir, keys),
  });
}

/** Runs a banner's curl line (no quoted words in it) and returns what it printed. */
async function runCurl(l: string): Promise<string> {
  const args = l.replace(/#.*/, '').trim().split(/\s+/).slice(1);
  try {
    return (await execFileP(CURL, ['-sS', '--max-time', '10', ...args])).stdout;
  } catch (e) {
    return `curl failed: ${(e as Error).message}`;
  }
}

t.test('private hidden, internet off (level 1): the lines say so and are right', async (t) => {
  const dir = await folder(t);
  const u = startUp({
    socksPort: '0',
    httpPort: '0',
    exitAfter: '6',
    tty: false,
    processLookup: false,
    stateDir: join(dir, 'state'),
    clientConfig: await clientConfig(dir, {
      SilentOnboard: true,
      EnableGSA: 2,
      EnableGSAPrivateChannel: 0,
      EnableGSAInternetChannel: 1,
    }),
  });
  await u.waitFor('Ctrl+C to stop.');
  const banner = u.text;
  t.equal(line(banner, 'intranet.contoso.test'), '', 'no line for the hidden Private Access');
  t.match(banner, /^ {2}# no example for Private Access: the client configuration hides it$/m);
  t.match(line(banner, 'outlook.office365.com'), /# Microsoft 365, tunneled$/);
  for (const name of ['news.test', 'bypass.example.test', 'casino.test']) {
    t.match(line(banner, name), /# bypassed: Internet Access is off$/, `${name}: bypassed`);
  }
  t.notMatch(banner, /Internet Access, tunneled/, 'no line claims Internet Access tunnels');
  t.match(banner, /toggle internet on/, 'the toggle the user may make');
  t.notMatch(banner, /toggle internet off/);
  if (existsSync(CURL)) {
    t.match(
      await runCurl(line(banner, 'news.test')),
      /direct from the client \(bypassed\)/,
      'news.test: bypassed, as the line says',
    );
    const casino = await runCurl(line(banner, 'casino.test'));
    t.match(casino, /^gsa-emu demo: http:\/\/casino\.test\//, 'casino.test: not blocked');
    t.match(casino, /direct from the client \(bypassed\)/);
    t.match(
      await runCurl(line(banner, 'outlook.office365.com')),
      /from the GSA edge \(tunneled\)/,
      'outlook: tunneled, as the line says',
    );
  }
  await u.run;
});

t.test('the default configuration: as before', async (t) => {
  const text = await upKeys(t, {
    SilentOnboard: true,
    EnableGSA: 2,
    EnableGSAPrivateChannel: 2,
    EnableGSAInternetChannel: 2,
  });
  t.match(line(text, 'intranet.contoso.test'), /# Private Access, tunneled$/);
  t.match(line(text, 'outlook.office365.com'), /# Microsoft 365, tunneled$/);
  t.match(line(text, 'news.test'), /# Internet Access, tunneled$/);
  t.match(
    line(text, 'bypass.example.test'),
    /# bypassed: Internet Access rule "Bypass example\.test" bypasses it \(goes direct\)$/,
  );
  t.match(line(text, 'casino.test'), /# Internet Access, tunneled, blocked at the edge \(403\)$/);
  t.match(text, /toggle internet off/);
  t.notMatch(text, /no example/);
});

t.test('internet hidden (no value): no line for it, no toggle of it', async (t) => {
  const text = await upKeys(t, { SilentOnboard: true, EnableGSA: 2, EnableGSAPrivateChannel: 2 });
  for (const name of ['news.test', 'bypass.example.test', 'casino.test']) {
    t.equal(line(text, name), '', `no line for ${name}`);
  }
  t.match(line(text, 'intranet.contoso.test'), /# Private Access, tunneled$/);
  t.match(text, /^ {2}# no example for Internet Access: the client configuration hides it$/m);
  t.notMatch(text, /toggle internet/, 'the user cannot toggle a hidden channel');
});

t.test('Global Secure Access hidden: no curl line, says why', async (t) => {
  const text = await upKeys(t, { SilentOnboard: true, EnableGSAInternetChannel: 3 });
  t.notMatch(text, /^\s+curl /m);
  t.match(text, /^ {2}# no example: the client configuration hides Global Secure Access$/m);
  t.notMatch(text, /toggle (m365|internet)/);
});

t.test('internet locked on (level 3), GSA off (level 1): toggle m365 on', async (t) => {
  const text = await upKeys(t, {
    SilentOnboard: true,
    EnableGSA: 1,
    EnableGSAPrivateChannel: 2,
    EnableGSAInternetChannel: 3,
  });
  t.match(line(text, 'news.test'), /# bypassed: Global Secure Access is off$/);
  t.match(text, /toggle m365 on/);
  t.notMatch(text, /toggle internet/);
});

t.test('bannerText: the comments are the decisions, not the tiles', async (t) => {
  // Every tunnel up (a channel that is down: test/cli/up-banner-tunnel-down.test.ts).
  const client = bannerClient('Connected', {
    entra: true,
    m365: true,
    private: true,
    internet: true,
  });
  const decided: Record<string, Decision> = {
    'intranet.contoso.test': decision({ action: 'tunnel', channel: 'private' }),
    fs1: decision({ action: 'tunnel', channel: 'private' }),
    'outlook.office365.com': decision({ action: 'tunnel', channel: 'm365' }),
    // Every channel is on, but this decision bypasses: the line says the decision's reason.
    'news.test': decision({ action: 'bypass', reason: 'a reason only the classifier knows' }),
    'bypass.example.test': decision({ action: 'tunnel', channel: 'internet' }),
    'casino.test': decision({ action: 'tunnel', channel: 'internet' }),
  };
  const tries: DecidedTry[] = DEMO_TRIES.map((x) => ({ ...x, decision: decided[x.host]! }));
  const base = {
    dir: '/x',
    edgeUrl: 'https://127.0.0.1:1',
    demo: { caFile: '/x/ca.pem' } as Demo,
    inProcess: 'same' as const,
    auth: false,
    tun: null,
    tries,
  };
  const text = bannerText(client, base);
  t.match(line(text, 'news.test'), /# bypassed: a reason only the classifier knows$/);
  t.match(line(text, 'bypass.example.test'), /# Internet Access, tunneled$/);
  t.match(line(text, 'casino.test'), /# Internet Access, tunneled, blocked at the edge \(403\)$/);
  t.match(line(text, 'intranet.contoso.test'), /--socks5-hostname 127\.0\.0\.1:1080 /);
  t.match(
    line(text, 'fs1'),
    /# Private Access, tunneled \(single-label name: Private DNS, fs1\.corp\.contoso\.test\)$/,
    'the single-label try says why it is tunneled',
  );
  // TUN mode: the same decisions, plain curl, the edge's block is a reset.
  const tun = bannerText(
    { ...client, addresses: { socks: null, http: null, pac: null, admin: null } },
    {
      ...base,
      tun: { name: 'gsa0', address: '10.0.0.1', source: null, dns: null, table: 1, pref: 1 },
    },
  );
  t.match(tun, /^ {2}curl http:\/\/news\.test\/ +# bypassed: a reason only the classifier knows$/m);
  t.match(
    tun,
    /^ {2}curl http:\/\/casino\.test\/ +# Internet Access, tunneled, blocked at the edge \(reset\)$/m,
  );
  t.match(
    tun,
    /^ {2}curl --cacert \/x\/ca\.pem https:\/\/outlook\.office365\.com\/ +# Microsoft 365, tunneled$/m,
  );
});

t.test('on a terminal, the try lines follow a toggle', async (t) => {
  const dir = await folder(t);
  const stateDir = join(dir, 'state');
  const out = new PassThrough() as PassThrough & { isTTY: boolean };
  out.isTTY = true;
  const u = startUp(
    { socksPort: '0', httpPort: '0', exitAfter: '5', processLookup: false, stateDir },
    out,
  );
  await u.waitFor('Ctrl+C to stop.');
  t.match(line(u.text, 'news.test'), /# Internet Access, tunneled$/);
  await adminCall(adminTarget(stateDir), 'POST', '/toggle', { channel: 'internet', on: false });
  const mark = u.text.length;
  const redrawn = () => {
    const screens = u.text.slice(mark).split('\x1b[2J');
    return screens.length > 2 ? screens[screens.length - 1]! : '';
  };
  for (let i = 0; i < 200 && !redrawn(); i++) await new Promise((r) => setTimeout(r, 25));
  t.match(line(redrawn(), 'news.test'), /# bypassed: Internet Access is off$/, 'redrawn');
  t.match(redrawn(), /toggle internet on/);
  await u.run;
});
