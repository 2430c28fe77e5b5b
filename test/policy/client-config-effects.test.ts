/**
 * Client configuration that is valid but leaves the client forwarding nothing gets a
 * warning: no SilentOnboard (the client waits for onboarding), channel levels under a
 * Global Secure Access tile that is off (gsa-facts.md section 5).
 */

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { explain } from '../../src/cli/commands/explain.js';
import { parseClientConfig } from '../../src/policy/client-config.js';
import { parseTarget } from '../../src/util/target.js';
import { tempDir } from '../edge/helpers.js';

const onboardWarning = (ws: Array<{ path: string; message: string }>) =>
  ws.filter((w) => w.path === 'SilentOnboard' && /not TRUE.*gsa-emu onboard/.test(w.message));

t.test('no SilentOnboard, or SilentOnboard false: one warning naming it', async (t) => {
  for (const cfg of [{ EnableGSA: 3 }, { EnableGSA: 3, SilentOnboard: false }]) {
    const { warnings } = parseClientConfig(cfg);
    t.equal(onboardWarning(warnings).length, 1, JSON.stringify(cfg));
  }
  t.same(parseClientConfig({ EnableGSA: 3, SilentOnboard: true }).warnings, [], 'none when TRUE');
});

t.test('the onboarding warning names the command as the user runs gsa-emu', async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  await writeFile(join(tmp.dir, 'gsa-emu'), '', { mode: 0o755 });
  const path = process.env.PATH;
  t.teardown(() => {
    process.env.PATH = path;
  });
  for (const [dirs, cmd] of [
    [tmp.dir, 'gsa-emu'],
    ['', 'npx gsa-emu'],
  ] as const) {
    process.env.PATH = dirs;
    const [w] = onboardWarning(parseClientConfig({ EnableGSA: 3 }).warnings);
    t.ok(
      w?.message.includes(`(\`${cmd} onboard\`, with \`up\`'s --state-dir if it has one)`),
      `${cmd}: ${w?.message}`,
    );
  }
});

t.test('explain shows the onboarding warning with the file', async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const cc = join(tmp.dir, 'cc.json');
  await writeFile(cc, JSON.stringify({ EnableGSA: 3, EnableGSAPrivateChannel: 3 }));
  const e = explain(parseTarget('https://outlook.office365.com/'), { clientConfig: cc });
  t.ok(
    (e.warnings ?? []).some((w) => /SilentOnboard/.test(w)),
    JSON.stringify(e.warnings),
  );
});

t.test(
  'channel levels under a Global Secure Access tile that is off: a warning each',
  async (t) => {
    const cases: Array<[Record<string, unknown>, string[]]> = [
      [
        { SilentOnboard: true, EnableGSAPrivateChannel: 3, EnableGSAInternetChannel: 2 },
        ['EnableGSAPrivateChannel', 'EnableGSAInternetChannel'],
      ],
      [
        { SilentOnboard: true, EnableGSA: 0, EnableGSAInternetChannel: 3 },
        ['EnableGSAInternetChannel'],
      ],
      [{ SilentOnboard: true, EnableGSA: 1, EnableGSAInternetChannel: 3 }, []],
      [{ SilentOnboard: true, EnableGSA: 2, EnableGSAPrivateChannel: 0 }, []],
    ];
    for (const [cfg, keys] of cases) {
      const { warnings } = parseClientConfig(cfg);
      const named = warnings
        .filter((w) =>
          /has no effect: Global Secure Access itself is off.*EnableGSA/.test(w.message),
        )
        .map((w) => w.path);
      t.same(named, keys, JSON.stringify(cfg));
    }
  },
);
