/**
 * A UDP flow discarded for a reason that may pass (its channel down with the rule's
 * fallback "block", gsa-facts.md: hardening) is kept for `udpIdleMs`, then set up again:
 * the datagrams it drops do not keep it alive, so an application that keeps sending (QUIC
 * retransmitting) gets through once the channel is back, instead of being dropped for as
 * long as it sends.
 */
import t from 'tap';
import { FlowTable } from '../../src/forward/flow-table.js';
import { Forwarder } from '../../src/forward/forwarder.js';
import { Resolver } from '../../src/forward/resolver.js';
import { clientState, decision, FakeClassifier, FakeTunnels } from './fixtures/fakes.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a hardening drop ends after udpIdleMs although datagrams keep coming', async (t) => {
  const tunnels = new FakeTunnels();
  tunnels.up.private = false;
  const flows = new FlowTable();
  const fwd = new Forwarder({
    classifier: () =>
      new FakeClassifier([
        {
          host: 'app.contoso.test',
          decision: decision({
            action: 'tunnel',
            channel: 'private',
            ruleId: 'r1',
            fallback: 'block',
          }),
        },
      ]),
    tunnels,
    clientState: () => clientState(),
    resolver: new Resolver({ system: false }),
    flows,
    udpIdleMs: 150,
  });
  t.teardown(() => fwd.close());
  let replies = 0;
  const a = fwd.udpAssociation({ srcIp: '127.0.0.1', srcPort: 40000, capture: 'socks' }, () => {
    replies++;
  });
  const send = () => a.send('app.contoso.test', null, 5353, Buffer.from('ping'));
  send();
  await sleep(20);
  t.equal(flows.counters.drops.get('hardening'), 1, 'dropped: the channel is down');
  tunnels.up.private = true; // the channel is back
  // The application keeps sending every 30 ms, more often than udpIdleMs.
  for (let i = 0; i < 40 && replies === 0; i++) {
    send();
    await sleep(30);
  }
  t.ok(replies > 0, 'after udpIdleMs the flow was set up again and tunneled');
  t.ok(tunnels.opened.length >= 1, 'a tunnel stream was opened');
  a.close();
});
