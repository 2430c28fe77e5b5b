import { execFile } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { explain } from '../../src/cli/commands/explain.js';
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
