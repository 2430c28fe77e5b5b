import { execFile } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { explain, formatExplanation } from '../../src/cli/commands/explain.js';
import { defaultTenantDocument } from '../../src/policy/default-tenant.js';
import { parseTarget } from '../../src/util/target.js';

const run = (target: string, opts: Parameters<typeof explain>[1] = {}, udp = false) =>
  explain(parseTarget(target, { udp }), opts).decision;

t.test('the default tenant, end to end through the explain tool', async (t) => {
  t.match(run('https://outlook.office365.com'), {
    action: 'tunnel',
    channel: 'm365',
    matched: 'outlook.office365.com',
  });
  t.match(run('autodiscover.fabrikam.onmicrosoft.com'), {
    action: 'tunnel',
    channel: 'm365',
    matched: 'autodiscover.*.onmicrosoft.com',
  });
  t.match(run('40.96.0.10:443', {}, true), {
    action: 'tunnel',
    channel: 'm365',
    group: 'exchange',
  });
  t.match(run('contoso.sharepoint.com', {}, true), { action: 'drop', group: 'sharepoint' });
  t.match(run('20.190.130.5:443'), { action: 'tunnel', channel: 'm365' });
  t.match(run('http://intranet.contoso.test/'), { action: 'tunnel', channel: 'private' });
  t.match(run('10.1.2.3:80'), { action: 'bypass', matched: '10.0.0.0/8' });
  t.match(run('bypass.example.test'), { action: 'bypass', policyName: 'Custom Bypass' });
  t.match(run('www.example.test', { ip: '8.8.8.8' }), { action: 'tunnel', channel: 'internet' });
  t.match(run('[2603:1006::1]:443'), { action: 'bypass', reason: /IPv6/ });
});

t.test(
  'M365 exclusivity: with the m365 channel off, Exchange goes direct, not to Internet Access',
  async (t) => {
    const d = run('40.96.0.10:443', { off: ['m365'] });
    t.equal(d.action, 'bypass');
    t.equal(d.channel, null);
  },
);

type Options = Parameters<typeof explain>[1];

const SUFFIX = '0be01cca-76cb-5e88-9948-8a09e00e8f62.globalsecureaccess.local';

/** A client configuration file for this test (removed at its end). */
function clientConfig(t: Test, keys: Record<string, unknown>): string {
  const file = join(tmpdir(), `gsa-emu-cc-${process.pid}-${Object.keys(keys).join('-')}.json`);
  writeFileSync(file, JSON.stringify({ SilentOnboard: true, ...keys }));
  t.teardown(() => rmSync(file, { force: true }));
  return file;
}

t.test(
  'a single label with the Private Access channel off names the channel, as a full name does',
  async (t) => {
    const channelOff =
      'the Private Access channel is off, so Private Access rule "Contoso file share corp.contoso.test" does not tunnel it (goes direct)';
    const cc = clientConfig(t, { EnableGSA: 2, EnableGSAPrivateChannel: 0 });
    for (const [how, opts] of [
      ['--off private', { off: ['private'] }],
      ['EnableGSAPrivateChannel=0', { clientConfig: cc }],
    ] satisfies Array<[string, Options]>) {
      const e = explain(parseTarget('http://fs1/'), opts);
      t.match(e.decision, { action: 'bypass', channel: null, ruleId: null }, `${how}: bypass`);
      t.equal(e.decision.reason, channelOff, `${how}: the reason says the channel is off`);
      t.equal(e.qualified, undefined, `${how}: the name stays as given`);
      t.equal(e.qualifiedWhenOn, `fs1.${SUFFIX}`, `${how}: the name it would go by when on`);
      t.match(
        formatExplanation(e),
        `  name      fs1 as given (with the Private Access channel on: fs1.${SUFFIX}, Private DNS)`,
        `${how}: the name line`,
      );
    }
    // A port the file share rule lacks: not acquired with the channel on either.
    const e = explain(parseTarget('fs1:22'), { off: ['private'] });
    t.match(e.decision.reason, /^no forwarding profile acquires this flow/);
    t.equal(e.qualifiedWhenOn, undefined);
  },
);

t.test('nothing forwarded: the reason says why, and no --ip note', async (t) => {
  const doc = defaultTenantDocument() as { forwardingProfiles: Array<{ state: string }> };
  for (const p of doc.forwardingProfiles) p.state = 'disabled';
  const tenant = join(tmpdir(), `gsa-emu-no-profile-${process.pid}.json`);
  writeFileSync(tenant, JSON.stringify(doc));
  t.teardown(() => rmSync(tenant, { force: true }));
  const hidden = clientConfig(t, { EnableGSA: 0 });
  for (const [how, opts, reason] of [
    [
      '--off m365',
      { off: ['m365'] },
      'Global Secure Access is disabled: the Global Secure Access tile is off; nothing is forwarded (goes direct)',
    ],
    [
      'EnableGSA=0',
      { clientConfig: hidden },
      'Global Secure Access is disabled: the Global Secure Access tile is hidden and off by the client configuration (EnableGSA=0: not enabled, hidden); nothing is forwarded (goes direct)',
    ],
    [
      'no profile enabled',
      { tenant },
      'no forwarding profile is enabled, so nothing is forwarded (goes direct)',
    ],
  ] satisfies Array<[string, Options, string]>) {
    for (const target of ['intranet.contoso.test', 'fs1', 'nothing.invalid']) {
      const e = explain(parseTarget(target), opts);
      t.equal(e.decision.reason, reason, `${how}: ${target}`);
      t.notMatch(formatExplanation(e), /--ip/, `${how}: ${target}: no --ip note`);
    }
  }
  // QUIC dropped (iOS) with no profile enabled: the reason still starts with the cause.
  const q = explain(parseTarget('intranet.contoso.test', { udp: true }), { tenant });
  t.match(q.decision, { action: 'drop', reason: /^no forwarding profile is enabled; / });
  t.notMatch(formatExplanation(q), /--ip/, 'QUIC: no --ip note');
});

t.test('a locked toggle is refused', async (t) => {
  const dir = tmpdir();
  const cc = join(dir, `gsa-emu-cc-${process.pid}.json`);
  writeFileSync(cc, JSON.stringify({ EnableGSA: 3, EnableGSAInternetChannel: 3 }));
  t.teardown(() => rmSync(cc, { force: true }));
  t.throws(() => run('www.example.test', { clientConfig: cc, off: ['internet'] }), {
    code: 'GSA_ERR_TOGGLE_LOCKED',
  });
});

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skipCli = existsSync(mainJs)
  ? false
  : 'dist/cli/main.js is missing: run `npm run build` first';

t.test('the CLI prints errors without a stack trace', { skip: skipCli }, async (t) => {
  const exec = promisify(execFile);
  const bad = join(tmpdir(), `gsa-emu-bad-${process.pid}.json`);
  writeFileSync(bad, '{"tenantId": 1, "forwardingProfiles": "x"}');
  t.teardown(() => rmSync(bad, { force: true }));
  const main = mainJs;
  const r = await exec(process.execPath, [main, 'profiles', 'validate', bad]).catch((e) => e);
  t.equal(r.code, 1);
  t.match(r.stderr, /^gsa-emu: [\s\S]*\n {2}forwardingProfiles: /);
  t.notMatch(`${r.stdout}${r.stderr}`, /at .*\.ts:\d+/);
  const u = await exec(process.execPath, [main, 'explain', 'host:x']).catch((e) => e);
  t.equal(u.code, 2);
  t.match(u.stderr, /port "x"/);
});
