/**
 * `status` (and `up`'s first line) said "Disabled by your organization" with no note: not
 * why, nor what brings the client back. The seed's troubleshooting for a tile missing after
 * the tenant was onboarded is "force stop the Defender app and relaunch it"; here profiles
 * fetched from the edge are taken up at the next poll, and a file read at start needs `up`
 * restarted. The note says which.
 */
import t from 'tap';
import { cliCommand } from '../../src/cli/common.js';
import { statusView } from '../../src/client/diagnostics.js';
import { loadDefaultTenant } from '../../src/policy/default-tenant.js';
import type { TenantSpec } from '../../src/policy/model.js';
import { statusInput } from './helpers.js';

function view(tenant: TenantSpec, profileSource: string) {
  return statusView(statusInput({ tenant, profileSource, commandFlags: ' --state-dir /s' }));
}

const all = loadDefaultTenant();
const none: TenantSpec = {
  ...all,
  profiles: all.profiles.map((p) => ({ ...p, state: 'disabled' as const })),
};
const restart = `restart \`${cliCommand()} up\`, the app's force stop and relaunch`;

t.test('profiles from the edge: taken up at the next check', async (t) => {
  const st = view(none, 'edge https://127.0.0.1:4443');
  t.equal(st.state, 'Disabled by your organization');
  t.same(st.notes, [
    `no forwarding profile is enabled: nothing is forwarded; the client connects at its next profile check once the edge serves an enabled one; an in-process edge serves the --tenant file it read at start: edit it and ${restart}`,
  ]);
});

t.test('profiles from a file read at start: restart', async (t) => {
  const st = view(none, '/x/tenant.json');
  t.equal(st.state, 'Disabled by your organization');
  t.same(st.notes, [
    `no forwarding profile is enabled in /x/tenant.json, read at start: nothing is forwarded; enable one and ${restart}`,
  ]);
});

t.test('a profile enabled: no such note', async (t) => {
  const st = view(all, 'edge https://127.0.0.1:4443');
  t.equal(st.state, 'Connected');
  t.same(st.notes, []);
});
