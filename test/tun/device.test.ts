import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import t from 'tap';
import {
  addonPath,
  addonPathFrom,
  addonUnavailable,
  explainOpenError,
  FakeDevice,
  openTun,
} from '../../src/capture/tun/device.js';
import { cleanupStaleNetns, createNetns } from '../../src/capture/tun/netns.js';
import { decodePacket, newPacket } from '../../src/parse/packet.js';
import { formatIPv4 } from '../../src/util/ip.js';
import { IPV4_OPTIONS_ICMP } from '../parse/fixtures.js';
import { tunMissing } from './helpers.js';

t.test('addonPathFrom: the built addon, else where it would be in the package', async (t) => {
  const rel = 'native/tun/build/Release/tun.node';
  const only =
    (...files: string[]) =>
    (p: string) =>
      files.includes(p);
  t.equal(addonPathFrom('/p/dist/capture/tun', only(`/p/${rel}`)), `/p/${rel}`, 'found from dist/');
  t.equal(
    addonPathFrom('/p/dist-bench/src/capture/tun', only('/p/package.json')),
    `/p/${rel}`,
    'not built, from dist-bench/src/: next to the package.json, not in dist-bench',
  );
  t.equal(
    addonPathFrom(
      '/p/node_modules/gsa-emu/dist/capture/tun',
      only('/p/node_modules/gsa-emu/package.json', '/p/package.json'),
    ),
    `/p/node_modules/gsa-emu/${rel}`,
    "installed: the package's own folder, not the project's",
  );
  t.equal(addonPathFrom('/a/b/c/d', only()), `/a/${rel}`, 'no package.json: three levels up');
});

t.test('errors say exactly what is missing', async (t) => {
  const eperm = Object.assign(new Error('open /dev/net/tun: Operation not permitted'), {
    code: 'EPERM',
  });
  t.match(explainOpenError(eperm, null), {
    code: 'GSA_ERR_TUN_UNAVAILABLE',
    missing: /root or grant CAP_NET_ADMIN/,
  });
  const enoent = Object.assign(new Error('open /dev/net/tun: No such file'), { code: 'ENOENT' });
  t.match(explainOpenError(enoent, null).missing, /\/dev\/net\/tun is missing/);
  const nons = Object.assign(new Error('setns: No such file'), { code: 'ENOENT' });
  t.match(
    explainOpenError(nons, '/var/run/netns/x').missing,
    /namespace \/var\/run\/netns\/x does not exist/,
  );
});

t.test('addon not built: TunUnavailableError names the file and the fix', async (t) => {
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      new URL('../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url).href,
      '--input-type=module',
      '-e',
      `import { openTun } from ${JSON.stringify(new URL('../../src/capture/tun/device.ts', import.meta.url).href)};
       try { openTun(); } catch (e) { console.log(e.code + '|' + e.missing); }`,
    ],
    { encoding: 'utf8', env: { ...process.env, GSA_EMU_TUN_ADDON: '/nonexistent/tun.node' } },
  );
  t.match(
    r.stdout,
    /^GSA_ERR_TUN_UNAVAILABLE\|the native addon is not built \(\/nonexistent\/tun.node is missing\).*npm rebuild/,
  );
});

t.test('FakeDevice: batches in, copies out', async (t) => {
  const d = new FakeDevice();
  const got: number[] = [];
  d.onPackets((buf, offs, n) => {
    for (let i = 0; i < n; i++) got.push(buf[offs[2 * i]!]!, offs[2 * i + 1]!);
  });
  d.inject([Buffer.from([1, 2]), Buffer.from([3, 4, 5])]);
  t.same(got, [1, 2, 3, 3]);
  const src = Buffer.from([9]);
  t.equal(d.write([src]), 1);
  src[0] = 0;
  t.same(d.take(), [Buffer.from([9])], 'written packets are copies');
  t.same(d.stats().rxPackets, 2);
  d.close();
  t.equal(d.write([src]), 0);
});

const missing = tunMissing();

t.test(
  'real TUN: the kernel answers a hand-built ICMP echo with IPv4 options',
  { skip: missing ?? false },
  async (t) => {
    const ns = createNetns();
    t.teardown(() => ns.destroy());
    const rec = newPacket();
    const reply = await new Promise<Buffer | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), 3000);
      ns.device.onPackets((buf, offs, n) => {
        for (let i = 0; i < n; i++) {
          const p = buf.subarray(offs[2 * i]!, offs[2 * i]! + offs[2 * i + 1]!);
          if (decodePacket(p, rec) === 'ok' && rec.family === 4 && rec.proto === 1) {
            clearTimeout(timer);
            resolve(Buffer.from(p));
          }
        }
      });
      t.equal(ns.device.write([IPV4_OPTIONS_ICMP]), 1);
    });
    t.ok(reply, 'an answer came out of the TUN');
    decodePacket(reply!, rec);
    t.equal(rec.icmpType, 0, 'echo reply: the kernel accepted our header and ICMP checksums');
    t.equal(formatIPv4(rec.src4), '10.255.0.1');
    t.equal(formatIPv4(rec.dst4), '10.255.0.2');
    t.ok(ns.device.stats().txPackets >= 1);
  },
);

const isRoot = process.getuid?.() === 0;
const noSetpriv = spawnSync('setpriv', ['--version']).status !== 0;
t.test(
  'real TUN: not root -> EPERM/EACCES explained',
  {
    // Root drops to nobody (setpriv); any other user is the case itself.
    skip:
      process.platform !== 'linux'
        ? 'not Linux'
        : !existsSync('/dev/net/tun')
          ? '/dev/net/tun is missing: modprobe tun'
          : (addonUnavailable() ??
            (isRoot && noSetpriv ? 'needs setpriv (util-linux) to drop root' : false)),
  },
  async (t) => {
    // via sh with a clean env, so tap's process hooks do not follow into the child
    const sh = [
      '/bin/sh',
      '-c',
      `exec env -i PATH="$PATH" node -e 'const a=require(${JSON.stringify(addonPath())});try{a.open(null,0,null)}catch(e){console.log(e.code+"|"+e.message)}'`,
    ];
    const drop = ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all'];
    const [cmd, ...args] = isRoot ? ['setpriv', ...drop, '--bounding-set=-all', ...sh] : sh;
    const r = spawnSync(cmd!, args, { encoding: 'utf8' });
    // EACCES when /dev/net/tun is 0660, EPERM at TUNSETIFF when it is 0666.
    const [code, message] = r.stdout.trim().split('|');
    t.match(code, /^(EPERM|EACCES)$/, r.stderr);
    t.match(
      explainOpenError({ code, message }, null).missing,
      /run as root, or grant CAP_NET_ADMIN|run as root or grant CAP_NET_ADMIN/,
    );
    // openTun itself, as root, works and a kernel-chosen name is returned.
    if (!isRoot) return;
    const d = openTun({ up: false });
    t.match(d.name, /^tun\d+$/);
    d.close();
  },
);

t.test(
  'cleanupStaleNetns removes namespaces of dead gsa-emu processes only',
  { skip: missing ?? false },
  async (t) => {
    const dead = 'gsaemu-4194300-stale';
    spawnSync('ip', ['netns', 'add', dead]);
    t.teardown(() => spawnSync('ip', ['netns', 'del', dead]));
    const mine = createNetns();
    t.teardown(() => mine.destroy());
    const removed = cleanupStaleNetns();
    t.ok(removed.includes(dead));
    t.notOk(removed.includes(mine.name), 'a live process keeps its namespace');
    t.ok(existsSync(`/var/run/netns/${mine.name}`));
  },
);
