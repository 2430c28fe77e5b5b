/** decide() never throws on garbage and does not allocate on the hot path. */
import t from 'tap';
import { compile } from '../../src/classify/compile.js';
import { OracleClassifier } from '../../src/classify/oracle.js';
import { type Flow, newFlow } from '../../src/classify/types.js';
import { edgesOf, fields, prng, randomFlow } from './gen.js';
import { flow, IOS, PLAIN, policy, profile, rule, state, tenant } from './helpers.js';

const spec = tenant([
  profile('m365', [
    policy(
      'Exchange Online',
      [
        rule(['outlook.office365.com', 'autodiscover.*.onmicrosoft.com', '40.96.0.0/13'], {
          protocols: ['tcp'],
          ports: ['80', '443'],
        }),
        rule(['2603:1006::/40'], { ports: ['443'] }),
      ],
      { group: 'exchange' },
    ),
    policy('SharePoint', [rule(['*.sharepoint.com'], { ports: ['443'] })], { group: 'sharepoint' }),
  ]),
  profile('private', [policy('QA', [rule(['suffix:corp.contoso.test', '10.1.0.0/16'])])]),
  profile('internet', [
    policy('Default Bypass', [rule(['10.0.0.0/8'], { action: 'bypass' })]),
    policy('Default Acquire', [rule(['0.0.0.0/0'], { protocols: ['tcp'], ports: ['80', '443'] })]),
  ]),
]);

t.test('garbage flows: a sane decision, never an exception, same as the oracle', async (t) => {
  for (const st of [state(PLAIN), state(IOS)]) {
    const c = compile(spec, st);
    const o = new OracleClassifier(spec, st);
    const weird: unknown[] = [
      null,
      undefined,
      42,
      'flow',
      {},
      { family: 9, proto: 6, port: 443, host: '' },
      { family: 4, proto: 6, port: Number.NaN, ip4: 0x28600001, host: null },
      { family: 4, proto: 'tcp', port: '443', ip4: '40.96.0.1', host: 7 },
      { family: 6, proto: 6, port: 443, ip6: null, host: null },
      { family: 6, proto: 6, port: 443, ip6: [0x26031006, 0, 0, -1], host: null },
      { family: 6, proto: 6, port: 443, ip6: [0x26031006, 0, 0, 1], host: null },
      { family: 6, proto: 6, port: 443, ip6: new Uint32Array(2), host: null },
      { family: 0, proto: 17, port: 443, host: 'X.SHAREPOINT.COM' },
      { family: 0, proto: 17, port: 443, host: '.'.repeat(300) },
      { family: 0, proto: 6, port: 443, host: `${'a.'.repeat(200)}sharepoint.com` },
      { family: 0, proto: 6, port: 443, host: 'autodiscover..onmicrosoft.com' },
      { family: 4, proto: 6, port: 443, ip4: 2 ** 32, host: null },
      { family: 4, proto: 6, port: 443, ip4: -0, host: null },
      { family: 4, proto: 6, port: 443, ip4: 167837953.5, host: null },
    ];
    for (const f of weird) {
      let d: ReturnType<typeof c.decide> | undefined;
      t.doesNotThrow(() => {
        d = c.decide(f as Flow);
      }, JSON.stringify(f));
      t.ok(d && typeof d.reason === 'string' && d.reason.length > 0);
      if (f !== null && typeof f === 'object' && 'host' in f) {
        t.equal(fields(d!), fields(o.decide(f as Flow)), `oracle agrees: ${JSON.stringify(f)}`);
      }
    }
  }
});

t.test('decide allocates nothing: heap stays flat over 1e6 calls', async (t) => {
  const c = compile(spec, state(IOS));
  // 64 prebuilt flows (IPv4, IPv6, names, QUIC), reused.
  const e = edgesOf(spec);
  const rnd = prng(1);
  const flows: Flow[] = [];
  for (let i = 0; i < 60; i++) flows.push(randomFlow(e, rnd, newFlow()));
  flows.push(flow('outlook.office365.com'), flow('OUTLOOK.office365.com', 443, 'udp'));
  flows.push(flow('40.96.0.1', 443, 'tcp', 'x.sharepoint.com'), flow('a.b.corp.contoso.test', 22));
  const run = (n: number) => {
    let tunnels = 0;
    for (let i = 0; i < n; i++) if (c.decide(flows[i & 63]!).action === 'tunnel') tunnels++;
    return tunnels;
  };
  run(200_000); // warm up: let the JIT compile decide and its callees
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage().heapUsed;
  const tunnels = run(1_000_000);
  const grown = process.memoryUsage().heapUsed - before;
  t.ok(tunnels > 0, `${tunnels} tunneled`);
  // An allocation of even one 16-byte object per call would be ~16 MB; leave room for
  // unrelated JIT/tap bookkeeping.
  t.ok(grown < 2 * 1024 * 1024, `heap grew ${grown} bytes over 1e6 decisions`);
});
