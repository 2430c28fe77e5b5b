/**
 * `gsa-emu edge --tenant <Graph list> --config <file>`: a list names no tenant, so the
 * config file's `tenantId` / `tenantName` give it one (not the all-zero id); a --state-dir
 * naming a file is said so. The edge runs as a child on a loopback port and is stopped by
 * the test.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { defaultTenantDocument } from '../../src/policy/default-tenant.js';
import { EXPAND_ALL, expandProfiles } from '../../src/policy/graph.js';
import { collect } from '../util/ts-child.js';
import { startEdgeProcess } from './cli-ux-helpers.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first';
const TENANT = '5e6f7a8b-2222-4333-8444-999900001111';

t.test('an edge serving a Graph list takes its tenant id from --config', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gsa-edge-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const list = join(dir, 'list.json');
  writeFileSync(list, JSON.stringify(expandProfiles(defaultTenantDocument(), EXPAND_ALL)));
  const cfg = join(dir, 'edge.json');
  writeFileSync(cfg, JSON.stringify({ tenantId: TENANT, tenantName: 'Fabrikam' }));
  const { m: banner } = await startEdgeProcess(
    t,
    join(dir, 'state'),
    ['--tenant', list, '--config', cfg],
    /gsa-emu edge for tenant (\S+) listening on (\S+)/,
    20_000,
  );
  t.equal(banner[1], TENANT);
  const health = (await (await fetch(`${banner[2]}/health`)).json()) as { tenantId: string };
  t.equal(health.tenantId, TENANT);
});

// `edge --state-dir <a file>` was "ENOTDIR: not a directory, open '<file>/edge-signing-key.json'";
// it says what up says (cli-ux.test.ts).
t.test('edge --state-dir naming a file says so', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gsa-edge-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'a-file');
  writeFileSync(file, 'x');
  for (const [stateDir, what] of [
    [file, 'it is a file'],
    [join(file, 'sub'), `${file} is a file`],
  ] as const) {
    const r = await collect(
      spawn(
        process.execPath,
        [mainJs, 'edge', '--port', '0', '--no-tls', '--state-dir', stateDir],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
      20_000,
    );
    t.equal(r.code, 1, `${stateDir}: exit 1`);
    t.match(r.err, `gsa-emu: the state folder ${stateDir} is not a directory (${what})`);
    t.match(r.err, /give --state-dir/, 'names the flag');
    t.notMatch(r.err, /ENOTDIR/, 'not the system error');
    t.notMatch(r.out, /listening on/, 'nothing listens');
  }
});
