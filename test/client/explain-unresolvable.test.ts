/**
 * `explain --running` for a name no rule acquires and the client cannot resolve said "goes
 * direct" with the note "no address given, so IP rules were not evaluated: add --ip", as
 * if the client had not tried: its resolver had no address, and a proxy flow to the name
 * fails ("cannot resolve", SOCKS reply 0x04, HTTP 502), as `fs1` does without Private DNS.
 * It says so; a name the dial map connects, or one that resolved, is unchanged.
 */
import t from 'tap';
import { formatExplanation } from '../../src/cli/commands/explain.js';
import { explainWithForwarder } from '../../src/client/explain.js';
import { parseTarget } from '../../src/util/target.js';
import { decision } from '../forward/fixtures/fakes.js';

const bypass = decision({
  action: 'bypass',
  reason: 'no forwarding profile acquires this flow (goes direct)',
});

function forwarder(ip: string | null, dialed: boolean, d = bypass, resolves: string | null = null) {
  return {
    decide: async (_p: number, host: string | null) => ({ decision: d, ip, host }),
    resolver: {
      dialTarget: () => (dialed ? { ip: '127.0.0.1', port: 1 } : null),
      resolve: async () => resolves,
    },
  };
}

t.test('no address, no dial map entry: the flow fails, and the text says so', async (t) => {
  const e = await explainWithForwarder(forwarder(null, false), parseTarget('nope.test:80'), null);
  t.equal(e.unresolvable, true);
  const text = formatExplanation(e);
  t.match(text, /resolved {2}the client has no address for nope\.test: a proxy flow to it fails/);
  t.notMatch(text, /add --ip/, 'not told to give an address the client would not have');
});

t.test('a name the dial map connects: not said to fail', async (t) => {
  const e = await explainWithForwarder(forwarder(null, true), parseTarget('demo.test:80'), null);
  t.notOk(e.unresolvable);
  t.notMatch(formatExplanation(e), /fails/);
});

t.test('a resolved name: as before', async (t) => {
  const e = await explainWithForwarder(
    forwarder('127.0.0.1', false),
    parseTarget('ok.test:80'),
    null,
  );
  t.notOk(e.unresolvable);
  t.match(formatExplanation(e), /the client resolved it/);
});

t.test('an address given with --ip: as before', async (t) => {
  const e = await explainWithForwarder(
    forwarder('192.0.2.1', false),
    parseTarget('ok.test:80'),
    '192.0.2.1',
  );
  t.notOk(e.unresolvable);
  t.notMatch(formatExplanation(e), /fails/);
});

t.test(
  'a name a bypass rule matched (decide did not resolve it): asked, not said to fail',
  async (t) => {
    // decide() resolves a name only when no rule decided by it; the bypassed flow resolves it
    // when it connects.
    const byRule = decision({ action: 'bypass', ruleId: 'bp', reason: 'bypass rule' });
    const ok = await explainWithForwarder(
      forwarder(null, false, byRule, '192.0.2.7'),
      parseTarget('login.example.test:443'),
      null,
    );
    t.notOk(ok.unresolvable, 'it resolves: the flow goes direct');
    t.notMatch(formatExplanation(ok), /fails/);
    const no = await explainWithForwarder(
      forwarder(null, false, byRule, null),
      parseTarget('nowhere.example.test:443'),
      null,
    );
    t.equal(no.unresolvable, true, 'it does not resolve: the flow fails');
  },
);
