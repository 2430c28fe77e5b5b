/**
 * `gsa-emu netns -- ./run-my-tests` where the test script itself asks the client for its
 * flows (`gsa-emu flows --json`), as a CI script checks what went through GSA. The command
 * runs inside the namespace, whose only interface is the TUN (and its own loopback), while
 * the admin API listens on the host's 127.0.0.1: the call cannot succeed from there, and
 * its message must say the admin API is in another namespace (it said "is gsa-emu up
 * running?", pointing at the wrong cause).
 *
 * Needs root, /dev/net/tun, iproute2, curl, the addon and dist/ (skipped otherwise).
 * Nothing leaves loopback or the run's namespace; the run is bounded in time.
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import { mainJs, tempRoot, tunCliMissing } from '../e2e/tun-cli-helpers.js';
import { collect } from '../util/ts-child.js';

const missing = tunCliMissing();
if (missing) t.plan(0, `needs root and /dev/net/tun: ${missing}`);

t.test('gsa-emu flows from the command that gsa-emu netns runs', async (t) => {
  const { newDir } = await tempRoot(t, 'gsa-ci-netns-admin-');
  const dir = newDir();
  const script = [
    'curl -sS -o /dev/null --max-time 10 http://intranet.contoso.test/ || exit 10',
    `"${process.execPath}" "${mainJs}" flows --state-dir "${dir}" --json`,
  ].join('; ');
  const r = await collect(
    spawn(
      process.execPath,
      [mainJs, 'netns', '--quiet', '--state-dir', dir, '--', 'sh', '-c', script],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    ),
    60_000,
  );
  t.not(r.code, 10, `the tunneled request works: ${r.err}`);
  t.equal(r.code, 1, 'flows fails from inside the namespace');
  t.match(
    r.err,
    /another network namespace .* from another shell on the host/,
    `the error says the admin API is outside the namespace (got: ${r.err.trim()})`,
  );
});
