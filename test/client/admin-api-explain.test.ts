/**
 * GET /explain's query values: `udp=1` (or `true`) asks about UDP, `0` / `false` / none
 * about TCP, and any other value is a 400, not a silent TCP answer. And how the running
 * client words its answer with a channel off (a single label with Private Access off) or
 * nothing forwarded (the VPN or the GSA tile off, no profile enabled). The edge and the
 * client listen on 127.0.0.1 and are closed by the test.
 */
import t, { type Test } from 'tap';
import { Agent } from 'undici';
import { formatExplanation } from '../../src/cli/commands/explain.js';
import type { Explanation } from '../../src/client/explain.js';
import { defaultTenantDocument } from '../../src/policy/default-tenant.js';
import { httpCall } from '../util/http-calls.js';
import { adminWorld } from './helpers.js';

const dispatcher = new Agent({ keepAliveTimeout: 10 });
t.teardown(() => dispatcher.close());

t.test('udp= takes 1/true and 0/false; another value is a 400', async (t) => {
  const { base, auth } = await adminWorld(t, {}, 'gsa-admin-explain-');
  const get = (q: string) =>
    httpCall(`${base}/explain?target=10.1.2.3:443${q}`, 'GET', { headers: auth, dispatcher });
  for (const [q, protocol] of [
    ['', 'tcp'],
    ['&udp=1', 'udp'],
    ['&udp=true', 'udp'],
    ['&udp=0', 'tcp'],
    ['&udp=false', 'tcp'],
  ] as const) {
    const r = await get(q);
    t.equal(r.status, 200, `${q || 'no udp'}: 200`);
    t.equal(r.json?.protocol, protocol, `${q || 'no udp'}: ${protocol}`);
  }
  for (const q of ['&udp=yes', '&udp=', '&udp=2']) {
    const r = await get(q);
    t.equal(r.status, 400, `${q}: 400`);
    t.match(r.json, { error: 'bad_request', message: /udp/ }, `${q}: says which value`);
  }
});

t.test('an unknown or repeated parameter is a 400, not a silent answer', async (t) => {
  const { base, auth } = await adminWorld(t, {}, 'gsa-admin-explain-params-');
  const get = (q: string) =>
    httpCall(`${base}/explain?target=10.1.2.3:443${q}`, 'GET', { headers: auth, dispatcher });
  for (const [q, says] of [
    // A typo: the answer would be TCP's.
    ['&upd=1', /unknown parameter upd/],
    ['&proto=udp', /unknown parameter proto/],
    ['&udp=1&udp=0', /udp given more than once/],
    ['&target=10.9.9.9:53', /target given more than once/],
    ['&ip=10.0.0.1&ip=10.0.0.2', /ip given more than once/],
  ] as const) {
    const r = await get(q);
    t.equal(r.status, 400, `${q}: 400`);
    t.match(r.json, { error: 'bad_request', message: says }, `${q}: says which`);
  }
  t.equal((await get('&udp=1&ip=10.0.0.1')).status, 200, 'the known ones once each: 200');
});

/**
 * A client with the built-in tenant, and its GET /explain answer for a target. `dial`: the
 * dial map of `up`'s demo, where a name the client cannot resolve is not "unresolvable", so
 * the answer has no address and `explain` would add its --ip note.
 */
async function explainWorld(t: Test, prefix: string, dial?: Record<string, string>) {
  const { client, base, auth } = await adminWorld(
    t,
    { tenant: 'default', resolver: { system: false, ...(dial ? { dial } : {}) } },
    prefix,
  );
  const get = async (target: string) =>
    (
      await httpCall(`${base}/explain?target=${encodeURIComponent(target)}`, 'GET', {
        headers: auth,
        dispatcher,
      })
    ).json as unknown as Explanation;
  return { client, get };
}

const SUFFIX = '0be01cca-76cb-5e88-9948-8a09e00e8f62.globalsecureaccess.local';

t.test(
  'a single label with the Private Access channel off says the channel is off, as a full private name does',
  async (t) => {
    const { client, get } = await explainWorld(t, 'gsa-admin-sl-');
    const on = await get('http://fs1/');
    t.equal(on.qualified, `fs1.${SUFFIX}`, 'on: qualified');
    client.toggle('private', false);
    const full = await get('http://intranet.contoso.test/');
    t.match(full.decision.reason, /^the Private Access channel is off, so Private Access rule /);
    const e = await get('http://fs1/');
    t.match(e.decision, { action: 'bypass', channel: null, ruleId: null });
    t.equal(
      e.decision.reason,
      'the Private Access channel is off, so Private Access rule "Contoso file share corp.contoso.test" does not tunnel it (goes direct)',
      'the reason names the channel and the rule that would acquire it',
    );
    t.equal(e.qualified, undefined, 'the flow does not go by the qualified name');
    t.equal(e.qualifiedWhenOn, `fs1.${SUFFIX}`, 'the name it would go by with the channel on');
    t.match(
      formatExplanation(e),
      `name      fs1 as given (with the Private Access channel on: fs1.${SUFFIX}, Private DNS)`,
    );
    // A port the file share rule lacks: no rule would acquire it with the channel on either.
    const p22 = await get('fs1:22');
    t.match(p22.decision.reason, /^no forwarding profile acquires this flow/);
    t.equal(p22.qualifiedWhenOn, undefined);
  },
);

t.test(
  'with the VPN off, the GSA tile off or no profile enabled: the reason says so, and no --ip note',
  async (t) => {
    const targets = ['intranet.contoso.test', 'fs1', 'nothing.invalid'];
    const dial = Object.fromEntries(targets.map((n) => [n, '127.0.0.1:9']));
    const { client, get } = await explainWorld(t, 'gsa-admin-off-', dial);
    // On, a name no rule acquires has the note (no address, not "unresolvable").
    t.match(formatExplanation(await get('nothing.invalid')), /add --ip <address>/, 'on: the note');
    const cases: Array<[string, () => void, () => void, RegExp]> = [
      [
        'the VPN off',
        () => client.setVpn(false, 'settings'),
        () => client.setVpn(true, 'settings'),
        /^Global Secure Access is disabled: the VPN is off \(switched off in Settings\); nothing is forwarded \(goes direct\)$/,
      ],
      [
        'the GSA tile off',
        () => client.toggle('m365', false),
        () => client.toggle('m365', true),
        /^Global Secure Access is disabled: the Global Secure Access tile is off; nothing is forwarded \(goes direct\)$/,
      ],
    ];
    for (const [what, off, on, reason] of cases) {
      off();
      for (const target of targets) {
        const e = await get(target);
        t.match(e.decision, { action: 'bypass', channel: null }, `${what}: ${target} goes direct`);
        t.match(e.decision.reason, reason, `${what}: ${target}: the reason says why`);
        t.notMatch(formatExplanation(e), /--ip/, `${what}: ${target}: no --ip note`);
      }
      on();
    }
    // "Disabled by your organization": every profile disabled.
    const doc = defaultTenantDocument() as { forwardingProfiles: Array<{ state: string }> };
    for (const p of doc.forwardingProfiles) p.state = 'disabled';
    client.setTenantDocument(doc, 'test: every profile disabled');
    for (const target of ['intranet.contoso.test', 'nothing.invalid']) {
      const e = await get(target);
      t.equal(
        e.decision.reason,
        'no forwarding profile is enabled, so nothing is forwarded (goes direct)',
        `no profile: ${target}`,
      );
      t.notMatch(formatExplanation(e), /--ip/, `no profile: ${target}: no --ip note`);
    }
  },
);
