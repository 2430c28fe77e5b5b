/** `gsa-emu status`: the running client's state, tiles and channels (admin API GET /status). */
import type { Command } from 'commander';
import {
  type AdminFlags,
  adminCall,
  adminTarget,
  readStartFailure,
} from '../../client/admin-client.js';
import type { HealthCheck, StatusView } from '../../client/diagnostics.js';
import { formatStatus, table } from '../../client/format.js';
import { GsaError } from '../../errors.js';
import { stateDir } from '../../util/state-dir.js';
import { waitSeconds } from '../common.js';

/** How often `--wait` asks again. */
const WAIT_POLL_MS = 200;
/** A start failure this long before `status --wait` was launched still counts as this run's. */
const START_SLACK_MS = 2000;

/**
 * `--wait`: asks until a running client answers with state Connected (every channel it
 * forwards has its tunnel up), or `seconds` pass: then GSA_ERR_NOT_READY with the last
 * answer (the state and notes, or why nothing answered). It ends at once when an `up`
 * launched with it fails to start (its reason, from `<state-dir>/up-failed.json`).
 */
async function waitConnected(dir: string, flags: AdminFlags, seconds: number) {
  const deadline = Date.now() + seconds * 1000;
  let last = 'nothing asked yet';
  for (;;) {
    try {
      const st = await adminCall<StatusView>(adminTarget(dir, flags), 'GET', '/status');
      if (st.state === 'Connected') return st;
      last = `state ${st.state}${st.notes.length ? ` (${st.notes.join('; ')})` : ''}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (flags.admin === undefined) {
      // An `up` launched with this command (at most START_SLACK_MS before it) that failed.
      const failed = readStartFailure(dir);
      if (failed && Date.parse(failed.at) >= performance.timeOrigin - START_SLACK_MS) {
        throw new GsaError(
          'GSA_ERR_NOT_READY',
          `"gsa-emu up" (pid ${failed.pid}) failed to start: ${failed.message}`,
        );
      }
    }
    const left = deadline - Date.now();
    if (left <= 0) break;
    await new Promise((r) => setTimeout(r, Math.min(WAIT_POLL_MS, left)));
  }
  throw new GsaError(
    'GSA_ERR_NOT_READY',
    `no Connected client within ${seconds} s; last answer: ${last}`,
  );
}

export function register(program: Command): void {
  program
    .command('status')
    .description(
      'show the running client: state, tiles, channels (and health checks with --health)',
    )
    .option('--admin <host:port>', 'admin API address (default: from <state-dir>/client.json)')
    .option(
      '--admin-token <file>',
      "with --admin: a file holding the admin API's token (the run's <state-dir>/client.token); default: the state file's with that address",
    )
    .option('--state-dir <dir>', 'state folder of the running client (default ~/.gsa-emu)')
    .option('--health', 'also run the health checks')
    .option('--json', 'print JSON')
    .option(
      '--wait <seconds>',
      'wait until a running client is Connected (for scripts and CI; exit 1 if not in time)',
    )
    .action(
      async (o: {
        admin?: string;
        adminToken?: string;
        stateDir?: string;
        health?: boolean;
        json?: boolean;
        wait?: string;
      }) => {
        const dir = stateDir(o.stateDir);
        const flags: AdminFlags = { admin: o.admin, adminToken: o.adminToken };
        const st =
          o.wait !== undefined
            ? await waitConnected(dir, flags, waitSeconds(o.wait))
            : await adminCall<StatusView>(adminTarget(dir, flags), 'GET', '/status');
        const health = o.health
          ? (await adminCall<{ checks: HealthCheck[] }>(adminTarget(dir, flags), 'GET', '/health'))
              .checks
          : null;
        if (o.json) {
          process.stdout.write(`${JSON.stringify(health ? { ...st, health } : st, null, 2)}\n`);
          return;
        }
        process.stdout.write(`${formatStatus(st)}\n`);
        if (health) {
          const rows = health.map((c) => [c.status.toUpperCase(), c.name, c.detail]);
          process.stdout.write(`\n${table(['', 'HEALTH CHECK', 'DETAIL'], rows, [5, 38, 60])}\n`);
        }
      },
    );
}
