/** The client configuration file's warnings reach `status` and the offline `explain`. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { explain, formatExplanation } from '../../src/cli/commands/explain.js';
import { startClient } from '../../src/client/client.js';
import { formatStatus } from '../../src/client/format.js';
import { startEdge } from '../../src/edge/server.js';
import { parseTarget } from '../../src/util/target.js';
import { tempDir } from '../edge/helpers.js';

const WARNING = 'enableGSA: unknown key, ignored (did you mean EnableGSA? keys are case-sensitive)';

t.test('status: the client configuration file warnings, as warning lines', async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const cc = join(tmp.dir, 'cc.json');
  await writeFile(cc, JSON.stringify({ SilentOnboard: true, enableGSA: 2 }));
  const edge = await startEdge({ stateDir: join(tmp.dir, 'edge'), tls: false, persistKey: false });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const client = await startClient({
    edge: { url: edge.url, ca: null },
    tenant: 'edge',
    clientConfig: cc,
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: null },
    processLookup: false,
  });
  t.teardown(() => client.close());
  const st = client.status();
  t.same(st.warnings, [`${cc}: ${WARNING}`]);
  t.match(formatStatus(st), `\n  warning: ${cc}: ${WARNING}\n`);
});

t.test('explain: the --client-config file warnings are printed', async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const cc = join(tmp.dir, 'cc.json');
  await writeFile(cc, JSON.stringify({ SilentOnboard: true, enableGSA: 2 }));
  const e = explain(parseTarget('www.example.test:80'), { clientConfig: cc });
  t.same(e.warnings, [WARNING]);
  t.match(formatExplanation(e), `\n  warning   ${WARNING}`);
  const plain = explain(parseTarget('www.example.test:80'), {});
  t.equal(plain.warnings, undefined, 'none without a file');
});
