/** The classifier over the project's default tenant (data/tenants/default) on iOS. */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { compile } from '../../src/classify/compile.js';
import { OracleClassifier } from '../../src/classify/oracle.js';
import { loadDefaultTenant } from '../../src/policy/default-tenant.js';
import type { PlatformSpec } from '../../src/policy/model.js';
import { dataPath } from '../../src/util/package.js';
import { edgesOf, fields, prng, randomFlow } from './gen.js';
import { flow, state } from './helpers.js';

const tenant = loadDefaultTenant();
const ios = JSON.parse(readFileSync(dataPath('platforms', 'ios.json'), 'utf8')) as PlatformSpec;
const st = state(ios);
const c = compile(tenant, st);

t.test('default tenant on iOS', async (t) => {
  t.match(c.decide(flow('outlook.office365.com')), { action: 'tunnel', channel: 'm365' });
  t.match(c.decide(flow('outlook.office365.com', 443, 'udp')), {
    action: 'tunnel',
    channel: 'm365',
    group: 'exchange',
  });
  t.match(c.decide(flow('autodiscover.contoso.onmicrosoft.com')), {
    matched: 'autodiscover.*.onmicrosoft.com',
  });
  t.match(c.decide(flow('x.sharepoint.com', 443, 'udp')), { action: 'drop', group: 'sharepoint' });
  t.match(c.decide(flow('40.96.0.1')), { channel: 'm365', matched: '40.96.0.0/13' });
  t.match(c.decide(flow('127.77.1.1', 3389)), { action: 'tunnel', channel: 'private' });
  t.match(c.decide(flow('bypass.example.test')), { action: 'bypass', channel: null });
  t.match(c.decide(flow('10.0.0.1', 443)), { action: 'bypass', policyName: 'Default Bypass' });
  t.match(c.decide(flow('93.184.216.34', 443)), { action: 'tunnel', channel: 'internet' });
  t.match(c.decide(flow('2603:1006::1')), { action: 'bypass', channel: null });
});

t.test('default tenant: compiled == oracle on 20,000 edge flows', async (t) => {
  const o = new OracleClassifier(tenant, st);
  const e = edgesOf(tenant);
  const rnd = prng(99);
  let bad = 0;
  let first = '';
  for (let i = 0; i < 20000; i++) {
    const f = randomFlow(e, rnd);
    const a = fields(c.decide(f));
    const b = fields(o.decide(f));
    if (a !== b) {
      bad++;
      first ||= `${JSON.stringify({ ...f, ip6: [...f.ip6] })}\n${a}\n${b}`;
    }
  }
  t.equal(bad, 0, first);
});
