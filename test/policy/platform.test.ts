import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError } from '../../src/errors.js';
import { listPlatforms, loadPlatform, parsePlatform } from '../../src/policy/platform.js';

t.test('built-in platforms', async (t) => {
  t.same(listPlatforms(), ['android', 'ios', 'macos', 'windows']);
  const ios = loadPlatform();
  t.same(ios, {
    name: 'ios',
    acquireIPv6: false,
    quic: {
      ports: [443, 80],
      tunnel: [{ profile: 'm365', group: 'exchange' }],
      otherwise: 'drop',
      scope: 'all',
    },
  });
  t.same(loadPlatform('IOS'), ios);
  for (const name of ['windows', 'macos']) {
    const p = loadPlatform(name);
    t.equal(p.name, name);
    t.same(p.quic.tunnel, [{ profile: 'm365' }, { profile: 'private' }]);
    t.equal(p.quic.otherwise, 'drop');
    t.equal(p.quic.scope, 'acquired');
    t.equal(p.acquireIPv6, false);
  }
  const android = loadPlatform('android');
  t.same(android.quic, ios.quic);
});

t.test('unknown names and unreadable files', async (t) => {
  t.throws(() => loadPlatform('beos'), {
    code: 'GSA_ERR_CONFIG',
    message:
      /unknown platform "beos" \(--platform, or the config key platform: built in are android, ios, macos, windows/,
  });
  t.throws(() => loadPlatform('/nonexistent/gsa-platform.json'), {
    code: 'GSA_ERR_CONFIG',
    message: /cannot read/,
  });
  const dir = mkdtempSync(join(tmpdir(), 'gsa-platform-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{ nope');
  t.throws(() => loadPlatform(bad), {
    code: 'GSA_ERR_CONFIG',
    file: bad,
    message: /not valid JSON/,
  });
  const y = join(dir, 'custom.yaml');
  writeFileSync(
    y,
    'name: lab\nacquireIPv6: true\nquic:\n  ports: [443]\n  tunnel: []\n  otherwise: bypass\n  scope: acquired\n',
  );
  t.same(loadPlatform(y), {
    name: 'lab',
    acquireIPv6: true,
    quic: { ports: [443], tunnel: [], otherwise: 'bypass', scope: 'acquired' },
  });
});

t.test('validation errors name their path', async (t) => {
  const good = () => ({
    name: 'x',
    acquireIPv6: false,
    quic: {
      ports: [443],
      tunnel: [{ profile: 'm365', group: 'exchange' }],
      otherwise: 'drop',
      scope: 'all',
    },
  });
  // biome-ignore lint/suspicious/noExplicitAny: test documents are mutated freely
  const table: Array<[string, (d: Record<string, any>) => void, string, RegExp]> = [
    [
      'name',
      (d) => {
        d.name = '';
      },
      'name',
      /non-empty string/,
    ],
    [
      'acquireIPv6',
      (d) => {
        d.acquireIPv6 = 'no';
      },
      'acquireIPv6',
      /true or false/,
    ],
    [
      'typo key',
      (d) => {
        d.acquireIpv6 = true;
      },
      'acquireIpv6',
      /unknown key/,
    ],
    [
      'quic missing',
      (d) => {
        delete d.quic;
      },
      'quic',
      /must be an object/,
    ],
    [
      'port',
      (d) => {
        d.quic.ports = [443, 70000];
      },
      'quic.ports[1]',
      /not a port/,
    ],
    [
      'ports',
      (d) => {
        d.quic.ports = '443';
      },
      'quic.ports',
      /array of port numbers/,
    ],
    [
      'profile',
      (d) => {
        d.quic.tunnel = [{ profile: 'web' }];
      },
      'quic.tunnel[0].profile',
      /not one of m365, private, internet/,
    ],
    [
      'group on private',
      (d) => {
        d.quic.tunnel = [{ profile: 'private', group: 'exchange' }];
      },
      'quic.tunnel[0].group',
      /only the m365 profile/,
    ],
    [
      'group',
      (d) => {
        d.quic.tunnel = [{ profile: 'm365', group: 'yammer' }];
      },
      'quic.tunnel[0].group',
      /not one of exchange/,
    ],
    [
      'tunnel entry',
      (d) => {
        d.quic.tunnel = ['m365'];
      },
      'quic.tunnel[0]',
      /must be an object/,
    ],
    [
      'otherwise',
      (d) => {
        d.quic.otherwise = 'block';
      },
      'quic.otherwise',
      /not one of drop, bypass/,
    ],
    [
      'scope',
      (d) => {
        d.quic.scope = 'some';
      },
      'quic.scope',
      /not one of all, acquired/,
    ],
    [
      'quic key',
      (d) => {
        d.quic.port = 1;
      },
      'quic.port',
      /unknown key/,
    ],
  ];
  t.same(parsePlatform(good()).quic.tunnel, [{ profile: 'm365', group: 'exchange' }]);
  for (const [name, f, path, re] of table) {
    const d = good();
    f(d);
    try {
      parsePlatform(d, 'p.json');
      t.fail(`${name}: accepted`);
    } catch (e) {
      t.ok(
        e instanceof ConfigError &&
          e.file === 'p.json' &&
          e.issues.some((i) => i.path === path && re.test(i.message)),
        `${name}: ${(e as Error).message}`,
      );
    }
  }
  t.throws(() => parsePlatform(null), { code: 'GSA_ERR_CONFIG' });
});

t.test('dns.tcp: Windows answers DNS over TCP from upstream; the others acquire', async (t) => {
  t.same(loadPlatform('windows').dns, { tcp: 'upstream' });
  for (const name of ['ios', 'macos', 'android']) t.equal(loadPlatform(name).dns, undefined, name);
  const base = {
    name: 'x',
    acquireIPv6: false,
    quic: { ports: [443], tunnel: [], otherwise: 'drop', scope: 'all' },
  };
  t.same(parsePlatform({ ...base, dns: { tcp: 'acquire' } }).dns, { tcp: 'acquire' });
  const err = t.throws(() =>
    parsePlatform({ ...base, dns: { tcp: 'yes', udp: 1 } }),
  ) as ConfigError;
  t.same(err.issues.map((i) => i.path).sort(), ['dns.tcp', 'dns.udp']);
  t.throws(() => parsePlatform({ ...base, dns: 'upstream' }), { message: /dns/ });
});
