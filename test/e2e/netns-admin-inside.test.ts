/**
 * `gsa-emu netns -- ./run-my-tests` where the test script itself asks the client what went
 * through GSA (`gsa-emu flows --json`, `status`), as a CI script checks its own traffic. The
 * command runs inside the namespace, whose only interfaces are the TUN and its own
 * loopback; the run serves its admin API there too, at the same 127.0.0.1:port as on the
 * host, so the state file's address works from both. (It used to listen on the host's
 * loopback only: the call failed, with a message saying so.)
 *
 * Needs root, /dev/net/tun, iproute2, curl, the addon and dist/ (skipped otherwise).
 * Nothing leaves loopback or the run's namespace; the run is bounded in time.
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import { mainJs, tempRoot, tunCliMissing } from '../e2e/tun-cli-helpers.js';
import { collect } from '../util/ts-child.js';

// What is missing here (tap shows it on each skipped test), or false.
const skip = tunCliMissing() ?? false;

interface Flow {
  destinationFqdn: string | null;
  channel: string | null;
  action: string;
  capture: string;
}

t.test('gsa-emu flows and status from the command that gsa-emu netns runs', { skip }, async (t) => {
  const { newDir } = await tempRoot(t, 'gsa-ci-netns-admin-');
  const dir = newDir();
  const cli = `"${process.execPath}" "${mainJs}"`;
  // No --state-dir inside: the run tells its command (GSA_EMU_STATE_DIR), and the admin API's
  // address and token file for code that asks it directly.
  const script = [
    'curl -sS -o /dev/null --max-time 10 http://intranet.contoso.test/ || exit 10',
    `${cli} status --json >/dev/null || exit 11`,
    'curl -sS --fail --max-time 10 -H "authorization: Bearer $(cat "$GSA_EMU_ADMIN_TOKEN_FILE")" "$GSA_EMU_ADMIN_URL/status" | grep -q \'"state": *"Connected"\' || exit 12',
    `${cli} flows --json`,
  ].join('; ');
  const r = await collect(
    spawn(process.execPath, [mainJs, 'netns', '--state-dir', dir, '--', 'sh', '-c', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
    60_000,
  );
  t.not(r.code, 10, `the tunneled request works: ${r.err}`);
  t.not(r.code, 11, `status answers from inside the namespace: ${r.err}`);
  t.not(r.code, 12, `GSA_EMU_ADMIN_URL and GSA_EMU_ADMIN_TOKEN_FILE reach the API: ${r.err}`);
  t.equal(r.code, 0, `flows answers from inside the namespace: ${r.err}`);
  t.match(r.err, /admin http:\/\/127\.0\.0\.1:\d+ on the host and in the namespace/, 'banner');
  t.notMatch(r.err, /another network namespace/, 'no "other namespace" error');
  let flows: Flow[] = [];
  try {
    flows = JSON.parse(r.out) as Flow[];
  } catch {
    t.fail(`flows --json printed JSON: ${r.out}`);
  }
  const f = flows.find((x) => x.destinationFqdn === 'intranet.contoso.test');
  t.ok(f, `the request's flow is listed (${flows.map((x) => x.destinationFqdn).join(', ')})`);
  t.equal(f?.capture, 'tun', 'captured by the TUN');
  t.equal(f?.channel, 'private', 'on the Private Access channel');
  t.equal(f?.action, 'Tunnel', 'tunneled');
});
