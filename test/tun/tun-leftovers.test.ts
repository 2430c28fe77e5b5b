/**
 * TUN / namespace leftovers:
 * - a TUN name with `%d` is a template the kernel fills in (TUNSETIFF: gzt%d -> gzt0): the
 *   harness configures and reports the device the kernel made, not the template; other
 *   uses of '%' (which the kernel refuses with "Invalid argument") are said of the name;
 * - `cleanupStaleNetns` takes a namespace whose recorded pid now belongs to another process
 *   (a different start time) for a dead run's, and removes it.
 *
 * The kernel cases need root, /dev/net/tun, iproute2 and the addon (skipped, saying what is
 * missing, otherwise); every namespace and device made here is removed.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import { addonUnavailable, tunNameTemplateProblem } from '../../src/capture/tun/device.js';
import {
  cleanupStaleNetns,
  createNetns,
  harnessUnavailable,
  netnsOwnerAlive,
} from '../../src/capture/tun/netns.js';

const missing = harnessUnavailable() ?? addonUnavailable();
const skip = missing ?? false;

/** Field 22 of /proc/self/stat: this process's start time in clock ticks after boot. */
function ownStartTicks(): string {
  const stat = readFileSync(`/proc/${process.pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[22 - 3]!;
}

t.test("'%' in a TUN name: only one %d, the kernel's template", async (t) => {
  for (const name of ['gsa0', 'gsa%d', '%d', 'a%db']) t.equal(tunNameTemplateProblem(name), null);
  for (const name of ['gsa%s', 'gsa%', 'gsa%%d', 'a%d%d', '%%']) {
    t.match(tunNameTemplateProblem(name), /'%' only as one %d/, name);
  }
});

t.test('a %d TUN name: the namespace gets the device the kernel named', { skip }, async (t) => {
  const ns = createNetns({ tunName: 'gzt%d' });
  t.teardown(() => ns.destroy());
  t.match(ns.tunName, /^gzt\d+$/, `the kernel's name, not the template: ${ns.tunName}`);
  t.equal(ns.device.name, ns.tunName, 'the device has that name');
  const r = spawnSync('ip', ['-n', ns.name, '-j', 'addr', 'show', 'dev', ns.tunName], {
    encoding: 'utf8',
  });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /"local":"10\.255\.0\.1"/, 'the device has the address');
  const routes = spawnSync('ip', ['-n', ns.name, 'route', 'show'], { encoding: 'utf8' }).stdout;
  t.match(routes, new RegExp(`^default dev ${ns.tunName}`, 'm'), 'and the default route');
  ns.destroy();
  t.notOk(existsSync(`/var/run/netns/${ns.name}`), 'removed');
});

t.test('netnsOwnerAlive: the pid and, when the name records it, its start time', async (t) => {
  t.equal(netnsOwnerAlive(process.pid, undefined), true, 'no start time: the pid alone');
  if (process.platform !== 'linux') return;
  t.equal(netnsOwnerAlive(process.pid, ownStartTicks()), true, 'this process');
  t.equal(netnsOwnerAlive(process.pid, '1'), false, 'the pid reused by another process');
});

t.test(
  'cleanupStaleNetns: a pid reused by an unrelated process is a dead run',
  { skip },
  async (t) => {
    const tag = randomBytes(3).toString('hex');
    // This test's process stands for the unrelated process holding a dead run's pid: a
    // start time that is not its own.
    const wrong = String(Number(ownStartTicks()) + 1);
    const reused = `gsaemu-${process.pid}-s${wrong}-t${tag}`;
    const mine = `gsaemu-${process.pid}-s${ownStartTicks()}-t${tag}`;
    const older = `gsaemu-${process.pid}-t${tag}`;
    for (const n of [reused, mine, older]) {
      const r = spawnSync('ip', ['netns', 'add', n], { encoding: 'utf8' });
      t.equal(r.status, 0, `ip netns add ${n}: ${r.stderr}`);
    }
    t.teardown(() => {
      for (const n of [reused, mine, older]) spawnSync('ip', ['netns', 'del', n]);
    });
    const removed = cleanupStaleNetns();
    t.ok(removed.includes(reused), 'the reused pid: removed');
    t.notOk(existsSync(`/var/run/netns/${reused}`), 'gone');
    t.notOk(removed.includes(mine), 'the same pid and start time: kept');
    t.notOk(removed.includes(older), 'a name without a start time (older gsa-emu): the pid alone');
    t.ok(
      existsSync(`/var/run/netns/${mine}`) && existsSync(`/var/run/netns/${older}`),
      'both there',
    );
    // createNetns names its namespaces that way.
    const ns = createNetns();
    t.teardown(() => ns.destroy());
    t.match(ns.name, new RegExp(`^gsaemu-${process.pid}-s${ownStartTicks()}-[0-9a-f]{8}$`));
    t.notOk(cleanupStaleNetns().includes(ns.name), 'a live run keeps its namespace');
  },
);
