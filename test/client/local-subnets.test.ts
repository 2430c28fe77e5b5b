/**
 * The client's local subnets: by default the subnets of this host's non-internal IPv4
 * interfaces, read at start; `--local-subnets none` / a list (and the config file's
 * `localSubnets`) replace them; `status` shows them. A Private Access IP segment inside
 * one is not tunneled. Everything on loopback; every world is stopped by the test.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { normalizeLocalSubnet } from '../../src/classify/local-subnets.js';
import { newFlow, PROTO_TCP } from '../../src/classify/types.js';
import { localSubnetsLine } from '../../src/cli/commands/status.js';
import { readUpConfig, up } from '../../src/cli/commands/up.js';
import { localSubnetsOption } from '../../src/cli/common.js';
import { startWorld } from '../../src/cli/world.js';
import { adminCall, adminTarget } from '../../src/client/admin-client.js';
import {
  type ClientStatusView,
  interfaceSubnets,
  type RunningClient,
} from '../../src/client/client.js';
import { ConfigError } from '../../src/errors.js';
import { parseIPv4 } from '../../src/util/ip.js';
import { hostLan, privateSegmentsTenant } from '../classify/local-subnet-fixtures.js';
import { sink } from '../util/up-in-process.js';

const DOC_NET = '198.51.100.0/24';

/** A tenant whose Private Access segments are DOC_NET and `extra` (443/tcp each). */
const tenantDoc = (extra: string[]): unknown => privateSegmentsTenant([DOC_NET, ...extra]);

async function tmp(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-local-subnets-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The running client's decision for `ip`:443/tcp (once its profiles arrived, at most 5 s). */
async function decide(client: RunningClient, ip: string) {
  for (let i = 0; i < 50 && client.tenant?.name !== 'local subnets'; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const f = newFlow();
  f.proto = PROTO_TCP;
  f.family = 4;
  f.ip4 = parseIPv4(ip);
  f.port = 443;
  return client.classifier.decide(f);
}

t.test('interfaceSubnets: non-internal IPv4 only, as network/prefix, each once', async (t) => {
  const a = <T extends object>(o: T) => ({ mac: '00:00:00:00:00:00', ...o });
  const ifaces = {
    lo: [
      a({
        address: '127.0.0.1',
        netmask: '255.0.0.0',
        family: 'IPv4',
        internal: true,
        cidr: '127.0.0.1/8',
      }),
    ],
    eth0: [
      a({
        address: '192.0.2.2',
        netmask: '255.255.255.0',
        family: 'IPv4',
        internal: false,
        cidr: '192.0.2.2/24',
      }),
      a({
        address: '2001:db8::2',
        netmask: 'ffff:ffff::',
        family: 'IPv6',
        internal: false,
        cidr: '2001:db8::2/32',
      }),
    ],
    eth1: [
      a({
        address: '10.20.30.40',
        netmask: '255.255.240.0',
        family: 'IPv4',
        internal: false,
        cidr: '10.20.30.40/20',
      }),
      a({
        address: '192.0.2.9',
        netmask: '255.255.255.0',
        family: 'IPv4',
        internal: false,
        cidr: '192.0.2.9/24',
      }),
      // A mask that is not a prefix: node gives no cidr.
      a({
        address: '10.9.9.9',
        netmask: '255.0.255.0',
        family: 'IPv4',
        internal: false,
        cidr: null,
      }),
    ],
  };
  t.same(interfaceSubnets(ifaces), ['192.0.2.0/24', '10.20.16.0/20']);
  t.same(interfaceSubnets({}), []);
});

t.test('--local-subnets and the config key: a list, none, or a usage error', async (t) => {
  t.same(localSubnetsOption('none'), []);
  t.same(localSubnetsOption(' None '), []);
  t.same(localSubnetsOption('192.168.1.7/24, 10.0.0.1'), ['192.168.1.0/24', '10.0.0.1/32']);
  t.throws(() => localSubnetsOption('10.0.0.0/8,fe80::/10'), {
    code: 'GSA_ERR_USAGE',
    message: /--local-subnets "10.0.0.0\/8,fe80::\/10": "fe80::\/10" is not an IPv4 CIDR/,
  });
  t.throws(() => localSubnetsOption(''), { code: 'GSA_ERR_USAGE' });

  const dir = await tmp(t);
  const file = join(dir, 'up.yaml');
  await writeFile(file, 'localSubnets: 10.1.0.0/16,192.168.0.0/24\n');
  t.same(readUpConfig(file), { localSubnets: '10.1.0.0/16,192.168.0.0/24' });
  await writeFile(file, 'localSubnets: [10.1.0.0/16, 192.168.0.0/24]\n');
  t.same(readUpConfig(file), { localSubnets: '10.1.0.0/16,192.168.0.0/24' }, 'a YAML list');
  await writeFile(file, 'localSubnets: []\n');
  t.same(readUpConfig(file), { localSubnets: 'none' }, 'an empty list is none');
  await writeFile(file, 'localSubnets: 10.1.0.0/40\n');
  const err = t.throws(() => readUpConfig(file)) as ConfigError;
  t.ok(err instanceof ConfigError);
  t.same(
    err.issues.map((i) => i.path),
    ['localSubnets'],
  );
  t.match(err.issues[0]!.message, /"10.1.0.0\/40" is not an IPv4 CIDR/);

  t.equal(localSubnetsLine(undefined), null, 'an older client: no line');
  t.equal(localSubnetsLine([]), 'local subnets: none');
  t.equal(
    localSubnetsLine(['192.0.2.0/24', '10.0.0.0/8']),
    'local subnets: 192.0.2.0/24, 10.0.0.0/8 (Private Access does not tunnel IP segments there)',
  );
});

t.test('the client: the interfaces by default (none under netns); none; a list', async (t) => {
  const dir = await tmp(t);
  const lan = hostLan();
  const neighbour = lan?.neighbour ?? null;
  const extra = lan === null ? [] : [normalizeLocalSubnet(lan.cidr)!];
  const tenantFile = join(dir, 'tenant.json');
  await writeFile(tenantFile, JSON.stringify(tenantDoc(extra)));
  const world = async (name: string, localSubnets?: string[], run: 'up' | 'netns' = 'up') => {
    const w = await startWorld({
      run,
      stateDir: join(dir, name),
      tenant: tenantFile,
      listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: null },
      processLookup: false,
      edgeGraceMs: 0,
      ...(localSubnets ? { localSubnets } : {}),
    });
    t.teardown(() => w.stop());
    return w;
  };

  // Default: this host's interfaces.
  const dflt = (await world('default')).client;
  t.same(dflt.localSubnets, interfaceSubnets(), 'the default is the interfaces');
  t.same(dflt.status().localSubnets, interfaceSubnets(), 'status shows them');
  if (neighbour === null) {
    t.comment('no non-internal IPv4 interface here: nothing to check the default against');
  } else {
    const d = await decide(dflt, neighbour);
    t.not(d.action, 'tunnel', `${neighbour} is on this host's subnet ${extra[0]}: not tunneled`);
    t.match(
      d.reason,
      `in the device's local subnet ${extra[0]}, Private Access does not tunnel it`,
    );
  }
  t.equal((await decide(dflt, '198.51.100.7')).action, 'tunnel', 'outside it: tunneled');

  // netns: the namespace's only interface is the TUN; the host's subnets are not its own.
  const ns = (await world('netns', undefined, 'netns')).client;
  t.same(ns.status().localSubnets, [], 'netns: none by default');
  if (neighbour !== null) t.equal((await decide(ns, neighbour)).action, 'tunnel');
  t.same(
    (await world('netns-list', ['198.51.100.9/24'], 'netns')).client.localSubnets,
    [DOC_NET],
    'netns: a list given is used',
  );

  // none: every IP segment tunnels, the host's own subnet too.
  const none = (await world('none', [])).client;
  t.same(none.status().localSubnets, []);
  if (neighbour !== null) t.equal((await decide(none, neighbour)).action, 'tunnel');

  // A list: normalized, and the only subnets that count.
  const list = (await world('list', ['198.51.100.9/24'])).client;
  t.same(list.localSubnets, [DOC_NET]);
  const d = await decide(list, '198.51.100.7');
  t.equal(d.action, 'bypass');
  t.equal(
    d.reason,
    `in the device's local subnet ${DOC_NET}, Private Access does not tunnel it (goes direct)`,
  );
  if (neighbour !== null) t.equal((await decide(list, neighbour)).action, 'tunnel');

  await t.rejects(world('bad', ['nope']), {
    code: 'GSA_ERR_USAGE',
    message: /local subnet "nope"/,
  });
});

t.test('gsa-emu up --local-subnets: the running client uses and shows them', async (t) => {
  const dir = await tmp(t);
  const tenantFile = join(dir, 'tenant.json');
  await writeFile(tenantFile, JSON.stringify(tenantDoc([])));
  const out = sink();
  await t.rejects(
    up({ stateDir: join(dir, 'bad'), localSubnets: '10.0.0.0/8,nope', once: true }, out),
    { code: 'GSA_ERR_USAGE', message: /--local-subnets/ },
    'a bad value stops up before anything starts',
  );
  const state = join(dir, 'state');
  const running = up(
    {
      stateDir: state,
      tenant: tenantFile,
      localSubnets: '198.51.100.1/24,192.168.77.0/24',
      socksPort: '0',
      httpPort: '0',
      adminPort: '0',
      tty: false,
      exitAfter: '30',
      processLookup: false,
    },
    out,
  );
  const call = async <T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> =>
    adminCall<T>(adminTarget(state), method, path, body);
  try {
    let st: ClientStatusView | null = null;
    for (let i = 0; i < 150 && st === null; i++) {
      st = await call<ClientStatusView>('GET', '/status').catch(() => null);
      if (st === null) await new Promise((r) => setTimeout(r, 100));
    }
    t.ok(st, 'the admin API answered');
    t.same(st?.localSubnets, [DOC_NET, '192.168.77.0/24']);
    const ex = await call<{ decision: { action: string; reason: string } }>(
      'GET',
      '/explain?target=198.51.100.7:443',
    );
    t.equal(ex.decision.action, 'bypass');
    t.match(ex.decision.reason, `in the device's local subnet ${DOC_NET}`);
  } finally {
    await call('POST', '/shutdown', {}).catch(() => {});
    await running;
  }
});
