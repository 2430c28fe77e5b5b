/**
 * The commands the client's texts suggest (the status notes' `onboard` / `vpn on`, the
 * admin client's "start one with ... up") name gsa-emu as cliCommand() does, as `up`'s
 * banner and `status --wait` do: `gsa-emu` when it is on the PATH, `npx gsa-emu` otherwise.
 * The test sets PATH (and restores it); its one server listens on 127.0.0.1 and is closed.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { cliCommand } from '../../src/cli/common.js';
import { ADMIN_API_HEADER, adminCall, adminTarget } from '../../src/client/admin-client.js';
import { statusView } from '../../src/client/diagnostics.js';
import { createClientTiles, defaultClientConfig } from '../../src/policy/client-config.js';
import { loadDefaultTenant } from '../../src/policy/default-tenant.js';
import { defaultStateDir } from '../../src/util/state-dir.js';
import { tempDir } from '../edge/helpers.js';
import { TEST_OVERVIEW } from './helpers.js';

const tmp = await tempDir('gsa-command-hints-');
t.teardown(tmp.remove);
const installed = join(tmp.dir, 'bin');
const empty = join(tmp.dir, 'empty');
await mkdir(installed);
await mkdir(empty);
await writeFile(join(installed, 'gsa-emu'), '#!/bin/sh\n');
await chmod(join(installed, 'gsa-emu'), 0o755);
const savedPath = process.env.PATH;
t.teardown(() => {
  process.env.PATH = savedPath;
});

/** An admin API that refuses every token (401), as one another run took the port of. */
const server = createServer((_req, res) => {
  res.writeHead(401, { [ADMIN_API_HEADER]: '1', 'content-type': 'application/json' });
  res.end('{"error":"unauthorized"}');
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
t.teardown(() => new Promise<void>((r) => server.close(() => r())));
const port = (server.address() as { port: number }).port;

const errorOf = async (f: () => unknown): Promise<string> => {
  try {
    await f();
  } catch (e) {
    return (e as Error).message;
  }
  return '(no error)';
};

for (const [what, dir, want] of [
  ['gsa-emu on the PATH', installed, 'gsa-emu'],
  ['gsa-emu not on the PATH', empty, 'npx gsa-emu'],
] as const) {
  t.test(what, async (t) => {
    process.env.PATH = dir;
    t.equal(cliCommand(), want, `cliCommand() says ${want}`);
    const g = cliCommand();

    const snap = createClientTiles(defaultClientConfig()).snapshot();
    const st = statusView({
      overview: TEST_OVERVIEW,
      tenant: loadDefaultTenant(),
      profileSource: 'test',
      profileLoadedAt: null,
      generation: 1,
      tiles: {
        ...snap,
        onboarded: false,
        vpnOn: false,
        vpn: { ...snap.vpn, offVia: 'settings' },
      },
      tunnelUp: () => true,
      tunnelDetail: () => 'tunnel up',
      tokenAt: Date.now(),
      tokenError: null,
      listeners: {},
      activeFlows: 0,
    });
    const notes = st.notes.join('\n');
    t.match(
      notes,
      `not onboarded (SilentOnboard is not TRUE): nothing is forwarded; \`${g} onboard\``,
    );
    t.match(notes, `nothing is forwarded; \`${g} vpn on\``);
    t.notMatch(notes, g === 'gsa-emu' ? /npx gsa-emu/ : /`gsa-emu /, 'no other spelling');

    // No client.json: "start one with ...".
    const missing = await errorOf(() => adminTarget(join(tmp.dir, 'no-such-state')));
    t.match(
      missing,
      `start one with "${g} up --state-dir ${join(tmp.dir, 'no-such-state')}", or pass --admin host:port`,
    );
    // A stale state file's token, refused by whoever listens on its port now: the `up` to
    // start is one of that file's state folder, named unless it is the default one.
    const refusedIn = (from: string) =>
      errorOf(() =>
        adminCall({ url: `http://127.0.0.1:${port}`, token: 'x', from }, 'GET', '/status'),
      );
    const refused = await refusedIn(join(defaultStateDir(), 'client.json'));
    t.match(refused, `start one with "${g} up"`);
    if (g === 'npx gsa-emu') t.notMatch(refused, /with "gsa-emu up"/, 'not the bare name');
    else t.notMatch(refused, /npx gsa-emu/, 'not npx');
    t.match(
      await refusedIn('/s/client.json'),
      `start one with "${g} up --state-dir /s"`,
      'the state folder given is named',
    );
    t.match(
      await refusedIn(join(tmp.dir, 'my state', 'netns-123.json')),
      `start one with "${g} up --state-dir '${join(tmp.dir, 'my state')}'"`,
      'a netns state file: its folder, quoted for the shell',
    );
  });
}
