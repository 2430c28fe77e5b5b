/**
 * `gsa-emu edge` reaches the internet unless its `--config` closes the egress (docs/edge.md):
 * its banner says so, and how to close it, and says nothing of it once closed. The edges run
 * as children on loopback, bounded in time and stopped by the test.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { egressLine } from '../../src/cli/commands/edge.js';
import { skip, startEdgeProcess, tempRoot } from './cli-ux-helpers.js';

const { root, newDir } = await tempRoot(t);
const READY = /listening on (\S+)[\s\S]*Ctrl\+C to stop\.\n/;

t.test('egressLine: open egress named with the keys that close it', async (t) => {
  const both =
    '  egress      reaches the internet (system resolver and direct IPs on); to keep its traffic on this machine: --config with egress: {systemResolver: false, directIp: false} (docs/edge.md)';
  t.equal(egressLine(undefined), both, 'no config: both on');
  t.equal(egressLine({}), both);
  t.equal(egressLine({ systemResolver: true, directIp: true }), both);
  t.match(
    egressLine({ directIp: false }),
    /\(system resolver on\); .*egress: \{systemResolver: false\} /,
  );
  t.match(
    egressLine({ systemResolver: false }),
    /\(direct IPs on\); .*egress: \{directIp: false\} /,
  );
  t.equal(egressLine({ systemResolver: false, directIp: false }), null, 'closed: no line');
  // The connector's direct IPs reach private addresses, not the internet.
  t.equal(egressLine({ systemResolver: false, directIp: false, connectorDirectIp: true }), null);
});

t.test(
  'the banner: an egress line without --config, none with a closed egress',
  { skip },
  async (t) => {
    const open = await startEdgeProcess(t, newDir(), [], READY, 20_000);
    t.match(
      open.out,
      /\n {2}egress {6}reaches the internet \(system resolver and direct IPs on\); /,
    );
    const cfg = join(root, 'closed.yaml');
    writeFileSync(cfg, 'egress:\n  systemResolver: false\n  directIp: false\n');
    const closed = await startEdgeProcess(t, newDir(), ['--config', cfg], READY, 20_000);
    t.notMatch(closed.out, 'egress');
    t.notMatch(closed.out, 'reaches the internet');
  },
);
