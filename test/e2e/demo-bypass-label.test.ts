/**
 * The demo labels a bypassed flow as bypassed on every OS (issue 4 review, laptop mode:
 * "any OS").
 *
 * The demo web servers tell the path apart: a request from 127.0.0.3 (DEMO_BYPASS_SOURCE,
 * where the client's direct connections are bound) or on one of the ports only bypassed
 * flows reach (`directPorts`) is "direct from the client (bypassed)", anything else "from
 * the GSA edge (tunneled)". 127.0.0.3 is used where it can be bound (Linux and Windows route
 * all of 127/8 to loopback); macOS has only 127.0.0.1 unless aliased, so there bypassed flows
 * get servers of their own. Before the fix, on a Mac or a Windows laptop the banner's own
 * example `curl --socks5-hostname <socks> http://bypass.example.test/` answered "from the GSA
 * edge (tunneled)", contradicting the flow table.
 *
 * macOS is simulated: process.platform reads 'darwin' while `up` starts. Needs curl.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { request } from 'undici';
import { bypassSourceUsable, startDemo } from '../../src/client/demo.js';
import { startUp } from '../util/up-in-process.js';

const execFileP = promisify(execFile);
const CURL = '/usr/bin/curl';

t.test(
  'macOS: the banner example for a bypassed name is answered as bypassed',
  { skip: existsSync(CURL) ? false : 'no curl' },
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'gsa-demo-bypass-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const platform = Object.getOwnPropertyDescriptor(process, 'platform')!;
    Object.defineProperty(process, 'platform', { ...platform, value: 'darwin' });
    const restore = () => Object.defineProperty(process, 'platform', platform);
    t.teardown(restore);
    const u = startUp({
      socksPort: '0',
      httpPort: '0',
      exitAfter: '4',
      tty: false,
      stateDir: dir,
      processLookup: false,
    });
    await u.waitFor('Ctrl+C to stop.');
    restore();
    const socks = /^SOCKS5 +(\S+)/m.exec(u.text)?.[1];
    t.ok(socks, 'the banner names the SOCKS5 address');
    const curl = async (url: string) =>
      (
        await execFileP(CURL, ['-sS', '--max-time', '5', '--socks5-hostname', socks!, url], {
          encoding: 'utf8',
        })
      ).stdout;
    const stdout = await curl('http://bypass.example.test/');
    t.match(stdout, /direct from the client \(bypassed\)/, 'the demo says the flow was bypassed');
    t.notMatch(stdout, /tunneled/, 'not "from the GSA edge (tunneled)"');
    t.match(stdout, /^peer: 127\.0\.0\.1:/m, 'from 127.0.0.1: no second loopback address used');
    const tunneled = await curl('http://outlook.office365.com/');
    t.match(tunneled, /from the GSA edge \(tunneled\)/, 'a tunneled name is still "tunneled"');
    await u.run;
    const { text } = u;
    const after = text.slice(text.indexOf('Ctrl+C to stop.'));
    const flow = after.split('\n').find((l) => l.includes('bypass.example.test')) ?? '';
    t.match(flow, /-> Bypass\b/, `the flow line says bypass: ${flow}`);
  },
);

t.test('127.0.0.3 is used where it can be bound: Linux, Windows', async (t) => {
  const platform = Object.getOwnPropertyDescriptor(process, 'platform')!;
  t.teardown(() => Object.defineProperty(process, 'platform', platform));
  const on = async (p: string) => {
    Object.defineProperty(process, 'platform', { ...platform, value: p });
    try {
      return await bypassSourceUsable();
    } finally {
      Object.defineProperty(process, 'platform', platform);
    }
  };
  t.equal(await on('darwin'), false, 'macOS: no');
  t.equal(await on('freebsd'), false, 'FreeBSD: no');
  if (platform.value === 'linux') {
    t.equal(await on('linux'), true, 'Linux: yes (Linux behaviour unchanged)');
    t.equal(await on('win32'), true, 'Windows: yes, when it binds');
  }
});

t.test('startDemo directPorts: bypassed flows have servers of their own', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-demo-ports-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const plain = await startDemo({ stateDir: dir });
  t.teardown(() => plain.close());
  t.same(plain.bypassPorts, [], 'default: none (127.0.0.3 tells the path)');
  t.equal(
    plain.client.dial['bypass.example.test:80'],
    plain.edge.hostsMap['bypass.example.test:80'],
    'default: the client dials the servers the edge does',
  );
  const demo = await startDemo({ stateDir: dir, directPorts: true });
  t.teardown(() => demo.close());
  t.equal(demo.bypassPorts.length, 2, 'an HTTP and an HTTPS port');
  for (const [name, port] of [
    ['bypass.example.test:80', demo.bypassPorts[0]],
    ['bypass.example.test:443', demo.bypassPorts[1]],
    ['intranet.contoso.test:80', demo.bypassPorts[0]],
    ['outlook.office365.com:443', demo.bypassPorts[1]],
  ] as const) {
    t.equal(demo.client.dial[name], `127.0.0.1:${port}`, `${name}: dialed on a bypass port`);
  }
  t.equal(demo.edge.hostsMap['bypass.example.test:80'], `127.0.0.1:${demo.httpPort}`);
  const body = async (port: number) =>
    (
      await request(`http://127.0.0.1:${port}/x`, { headers: { host: 'bypass.example.test' } })
    ).body.text();
  t.match(await body(demo.bypassPorts[0]!), /direct from the client \(bypassed\)/);
  t.match(await body(demo.httpPort), /from the GSA edge \(tunneled\)/);
});
