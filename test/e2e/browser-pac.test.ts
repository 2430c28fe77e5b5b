/**
 * A real browser pointed at the PAC file: headless Chromium with `--proxy-pac-url` (the
 * client's PAC listener on 127.0.0.1) loads a Private Access page and a bypassed one. Each
 * must take the path the classifier chose: the client's flow table (captured by the SOCKS5
 * proxy, which the PAC file names first), the edge's traffic log, and the demo server's
 * view of its peer. Every name resolves to a demo server on loopback; nothing leaves the
 * machine (the client and the edge have no system resolver here).
 *
 * Skips when Chromium is not installed (CI installs Debian's `chromium`).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { collect, startTestWorld, type TestWorld } from './helpers.js';

const browser = ['chromium', 'chromium-browser', 'google-chrome'].find(
  (b) => spawnSync('sh', ['-c', `command -v ${b}`]).status === 0,
);

/** Loads `url` through the PAC file and returns the page's DOM (bounded: 60 s). */
async function load(w: TestWorld, url: string): Promise<string> {
  const profile = await mkdtemp(join(tmpdir(), 'gsa-chromium-'));
  try {
    const c = spawn(
      browser!,
      [
        '--headless',
        '--no-sandbox', // CI runs as root
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-default-apps',
        '--disable-extensions',
        '--disable-sync',
        `--user-data-dir=${profile}`,
        `--proxy-pac-url=${w.client.addresses.pac}`,
        '--dump-dom',
        url,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        // Its crash-report folder and dconf cache in the profile too, not in the user's home.
        env: { ...process.env, HOME: profile, XDG_CONFIG_HOME: profile, XDG_CACHE_HOME: profile },
      },
    );
    const r = await collect(c, 60_000);
    if (r.code !== 0) throw new Error(`${browser} exited ${r.code}: ${r.err.slice(-2000)}`);
    return r.out;
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

t.test(
  'Chromium with the PAC file',
  { skip: browser ? false : 'Chromium is not installed (apt-get install chromium)' },
  async (t) => {
    const w = await startTestWorld({
      prefix: 'gsa-browser-',
      listen: { socksPort: 0, httpPort: 0, pacPort: 0, adminPort: null },
    });
    t.teardown(() => w.close());

    const priv = await load(w, 'http://intranet.contoso.test/from-browser');
    t.match(
      priv,
      /gsa-emu demo: http:\/\/intranet\.contoso\.test\/from-browser/,
      'the page loaded',
    );
    t.match(priv, /from the GSA edge \(tunneled\)/, 'the demo server saw the edge');
    const pf = await w.closedFlow('intranet.contoso.test');
    t.equal(pf.capture, 'socks', 'captured by the SOCKS5 proxy the PAC file names first');
    t.equal(pf.action, 'Tunnel');
    t.equal(pf.channel, 'private');
    const rec = await w.edgeRecord(pf.connectionId);
    t.equal(rec.destinationFQDN, 'intranet.contoso.test', "in the edge's traffic log");

    const byp = await load(w, 'http://bypass.example.test/from-browser');
    t.match(byp, /direct from the client \(bypassed\)/, 'the demo server saw the client');
    const bf = await w.closedFlow('bypass.example.test');
    t.equal(bf.capture, 'socks');
    t.equal(bf.action, 'Bypass');
    t.notOk(
      w.edge.logs.all().some((r) => r.connectionId === bf.connectionId),
      'not in the edge log',
    );
  },
);
