/**
 * `up --tun` needs the TUN's subnet, 10.255.0.0/30, free in its network namespace: an
 * address in it (or a route to it) elsewhere would take the stack's NAT packets, and every
 * flow would time out while `status` says Connected. `tunSubnetInUse` finds such a use in
 * `ip -j` output (no root); `up --tun` refuses to start with GSA_ERR_BUSY naming it (root,
 * /dev/net/tun, the addon and dist/: a namespace of the test's own, removed after).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { hostTunUnavailable, tunSubnetInUse } from '../../src/client/tun-host.js';

const link = (ifname: string, ...addrs: Array<[string, number]>) => ({
  ifname,
  // `ip -j` may list an empty object among a link's addresses.
  addr_info: [{}, ...addrs.map(([local, prefixlen]) => ({ family: 'inet', local, prefixlen }))],
});

t.test('tunSubnetInUse: an address in 10.255.0.0/30, or a route to it', async (t) => {
  const lo = link('lo', ['127.0.0.1', 8]);
  const eth = link('eth0', ['192.168.1.5', 24]);
  const routes = [
    { dst: 'default', gateway: '192.168.1.1', dev: 'eth0' },
    { dst: '192.168.1.0/24' },
  ];
  t.equal(tunSubnetInUse([lo, eth], routes), null, 'free');
  t.equal(
    tunSubnetInUse([link('lo', ['127.0.0.1', 8], ['10.255.0.1', 30]), eth], routes),
    'the address 10.255.0.1/30 on lo',
  );
  t.equal(
    tunSubnetInUse([lo, link('wg0', ['10.255.0.2', 32])], routes),
    'the address 10.255.0.2/32 on wg0',
    'the NAT peer',
  );
  t.equal(
    tunSubnetInUse([lo], [...routes, { dst: '10.255.0.0/30', dev: 'vpn0' }]),
    'the route 10.255.0.0/30 dev vpn0',
  );
  t.equal(tunSubnetInUse([lo], [{ dst: '10.255.0.2' }]), 'the route 10.255.0.2', 'a host route');
  // Around it, not in it: a wider route (the TUN's /30 is more specific and wins) or the
  // next /30.
  t.equal(
    tunSubnetInUse(
      [link('eth1', ['10.255.0.5', 30]), link('eth2', ['10.255.1.1', 16])],
      [
        { dst: '10.0.0.0/8', dev: 'vpn0' },
        { dst: '10.255.0.4/30', dev: 'eth1' },
      ],
    ),
    null,
  );
});

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(ROOT, 'dist', 'cli', 'main.js');
const missing =
  hostTunUnavailable() ??
  (existsSync(CLI) ? null : 'dist is missing (npx tsc -p tsconfig.build.json)');

t.test(
  'up --tun with 10.255.0.1/30 on lo: refused before anything starts',
  { skip: missing ?? false, timeout: 60_000 },
  async (t) => {
    const ns = `gsa-subnet-${randomBytes(3).toString('hex')}`;
    const ip = (...args: string[]) => spawnSync('ip', args, { encoding: 'utf8' });
    t.equal(ip('netns', 'add', ns).status, 0, 'namespace made');
    t.teardown(() => void ip('netns', 'del', ns));
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    t.equal(ip('-n', ns, 'addr', 'add', '10.255.0.1/30', 'dev', 'lo').status, 0);
    const state = await mkdtemp(join(tmpdir(), 'gsa-tun-subnet-'));
    t.teardown(() => rm(state, { recursive: true, force: true }));
    const r = spawnSync(
      'ip',
      ['netns', 'exec', ns, process.execPath, CLI, 'up', '--tun', '--state-dir', state, '--once'],
      { encoding: 'utf8', timeout: 45_000 },
    );
    t.equal(r.status, 1, `exit code 1: ${r.stderr}`);
    t.match(
      r.stderr,
      /^gsa-emu: the TUN's subnet 10\.255\.0\.1\/30 is in use in this network namespace: the address 10\.255\.0\.1\/30 on lo; free it/,
    );
    t.equal(r.stdout, '', 'no banner: nothing started');
    t.notMatch(ip('-n', ns, 'rule').stdout, /lookup 2025/, 'no routing rules');
    t.notMatch(ip('-n', ns, 'link').stdout, /gsa0/, 'no TUN');
  },
);
