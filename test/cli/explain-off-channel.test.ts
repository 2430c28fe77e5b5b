/**
 * `explain --off <channel>` names the channel that is off in the reason of a flow that
 * channel's profile would have acquired, as `up`'s banner does ("bypassed: Internet Access
 * is off"), instead of "no forwarding profile acquires this flow", which reads as if the
 * tenant had no rule for it. The decision is still the no-match bypass.
 *
 * Needs `npm run build`.
 */
import t, { type Test } from 'tap';
import { cli, skip } from './cli-ux-helpers.js';

interface Explained {
  decision: { action: string; channel: string | null; ruleId: string | null; reason: string };
}

async function explain(t: Test, args: string[]): Promise<Explained['decision']> {
  const r = await cli(['explain', '--json', ...args]);
  t.equal(r.code, 0, args.join(' '));
  return (JSON.parse(r.out) as Explained).decision;
}

t.test('explain --off internet names the turned-off channel in the reason', { skip }, async (t) => {
  // news.test: what the running client resolves it to (demo resolver), Default Acquire.
  for (const args of [['http://www.example.test/'], ['http://news.test/', '--ip', '6.6.254.11']]) {
    const on = await explain(t, args);
    t.match(on, { action: 'tunnel', channel: 'internet' }, `${args[0]}: tunneled when on`);
    const d = await explain(t, [...args, '--off', 'internet']);
    t.match(d, { action: 'bypass', channel: null, ruleId: null }, `${args[0]}: bypassed`);
    t.match(
      d.reason,
      /^the Internet Access channel is off, so Internet Access rule "[^"]+" does not tunnel it \(goes direct\)$/,
      `${args[0]}: the reason says Internet Access is off (got: ${d.reason})`,
    );
  }
});

t.test('explain --off private,internet names Private Access first', { skip }, async (t) => {
  const d = await explain(t, ['http://intranet.contoso.test/', '--off', 'private,internet']);
  t.match(d, { action: 'bypass', channel: null, ruleId: null });
  t.match(d.reason, /^the Private Access channel is off, so Private Access rule "[^"]+"/);
});

t.test(
  'a name no rule of any channel holds: still "no forwarding profile"',
  { skip },
  async (t) => {
    const d = await explain(t, ['http://nothing.invalid/', '--off', 'internet']);
    t.match(d, { action: 'bypass', reason: /^no forwarding profile acquires this flow/ });
  },
);

t.test(
  'explain <single label> --off private says the channel is off, not "no forwarding profile"',
  { skip },
  async (t) => {
    const d = await explain(t, ['http://fs1/', '--off', 'private']);
    t.match(d, { action: 'bypass', channel: null, ruleId: null });
    t.match(
      d.reason,
      /^the Private Access channel is off, so Private Access rule "Contoso file share corp\.contoso\.test" does not tunnel it \(goes direct\)$/,
      `got: ${d.reason}`,
    );
    const r = await cli(['explain', 'http://fs1/', '--off', 'private']);
    t.match(
      r.out,
      /\n {2}name {6}fs1 as given \(with the Private Access channel on: fs1\.[^ ]+\.globalsecureaccess\.local, Private DNS\)\n/,
    );
  },
);

t.test('explain --off m365: GSA is disabled, and no --ip note', { skip }, async (t) => {
  const r = await cli(['explain', 'intranet.contoso.test', '--off', 'm365']);
  t.equal(r.code, 0);
  t.match(
    r.out,
    '  reason    Global Secure Access is disabled: the Global Secure Access tile is off; nothing is forwarded (goes direct)\n',
  );
  t.notMatch(r.out, /--ip/, 'an address would change nothing');
});
