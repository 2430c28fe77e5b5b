/** `gsa-emu status`: the running client's state, tiles and channels (admin API GET /status). */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  type AdminFlags,
  type AdminTarget,
  adminCall,
  adminTarget,
  NoAdminApiError,
  netnsRunsOf,
  OtherNamespaceError,
  readClientState,
  readStartFailures,
  STATE_FILE,
  type StartFailure,
} from '../../client/admin-client.js';
import type { ClientStatusView } from '../../client/client.js';
import { CHANNEL_LABEL, type HealthCheck, type StatusView } from '../../client/diagnostics.js';
import { formatHealth, formatStatus } from '../../client/format.js';
import { GsaError, UsageError } from '../../errors.js';
import type { ChannelName } from '../../policy/model.js';
import { shellWord } from '../../util/shell-word.js';
import { stateDir } from '../../util/state-dir.js';
import { addAdminOptions, cliCommand, waitSeconds } from '../common.js';
import { cliProcesses, LAUNCHED_WITH_MS, launchedRuns } from '../launched-ups.js';

/**
 * The status line of the local subnets (GET /status `localSubnets`; absent from an older
 * client: no line).
 */
export function localSubnetsLine(list: readonly string[] | undefined): string | null {
  if (list === undefined) return null;
  return list.length > 0
    ? `local subnets: ${list.join(', ')} (Private Access does not tunnel IP segments there)`
    : 'local subnets: none';
}

/** How often `--wait` asks again. */
const WAIT_POLL_MS = 200;
/**
 * A client Connected since before `status --wait` was launched may not be the `up` launched
 * with it: that one may still be failing (the state folder in use by the older one:
 * GSA_ERR_BUSY). Linux asks /proc which `up`s were launched with this command (see
 * launched-ups.ts); elsewhere their failure is waited for this long after launch before the
 * older client's Connected counts.
 */
const LAUNCH_GRACE_MS = 3000;

/** The flags that name the client (` --state-dir D`, ` --admin A --admin-token F`), for the commands suggested. */
function addressFlags(o: AdminFlags & { stateDir?: string | undefined }): string {
  const out: string[] = [];
  if (o.admin !== undefined) out.push('--admin', o.admin);
  if (o.adminToken !== undefined) out.push('--admin-token', o.adminToken);
  if (o.stateDir !== undefined) out.push('--state-dir', o.stateDir);
  return out.map((w) => ` ${shellWord(w)}`).join('');
}

/**
 * Why a client that answers `st` cannot become Connected without a user action, with the
 * command that does it where there is one (`cli`: how gsa-emu is run, see `cliCommand`;
 * `flags`: appended to it, see `addressFlags`), or null when it may still get there by
 * itself: Initializing while the tenant loads, channels still connecting (Disconnected, "Some
 * channels are unreachable") while the edge comes up, "Disabled by your organization" until the tenant
 * enables a profile (the profiles are polled), paused (macOS: it resumes by itself).
 *
 * Stuck: not onboarded (SilentOnboard not TRUE), the VPN off, the Global Secure Access tile
 * off (by the user, or hidden/locked off by the client configuration), or every channel
 * whose forwarding profile is enabled turned off. `profileOn` says which profiles are
 * enabled (GET /profile); without it a channel turned off is taken to have one.
 */
export function cannotConnect(
  st: StatusView,
  profileOn: ((c: ChannelName) => boolean) | null = null,
  flags = '',
  cli = 'gsa-emu',
): string | null {
  if (st.state === 'Connected') return null;
  const reasons: string[] = [];
  if (!st.onboarded) {
    reasons.push(`it is not onboarded (SilentOnboard is not TRUE): run "${cli} onboard${flags}"`);
  }
  if (!st.vpnOn) {
    reasons.push(
      `the VPN is off (switched off in ${st.vpn.offVia === 'app' ? 'the app' : 'Settings'}): run "${cli} vpn on${flags}"`,
    );
  }
  const gsa = st.tiles.m365;
  const tileOff = (c: ChannelName, what: string): string => {
    const t = st.tiles[c];
    return t.visible && t.userCanToggle
      ? `${what} is turned off: run "${cli} toggle ${c} on${flags}"`
      : `${what} is ${t.visible ? 'off and locked' : 'hidden and off'} by the client configuration (${t.reason}): change it and restart the client`;
  };
  // Paused (macOS): it resumes by itself within 10 minutes, so --wait waits, unless the
  // Global Secure Access tile is off too (that stays so after the pause). With the tile on,
  // Microsoft 365 forwards after the pause (or its profile is disabled: the organization's,
  // waited for as below).
  if (reasons.length === 0 && st.pausedUntil) {
    return gsa.on ? null : tileOff('m365', 'the Global Secure Access tile');
  }
  if (reasons.length === 0 && st.state === 'Disabled') {
    if (!gsa.on) {
      reasons.push(tileOff('m365', 'the Global Secure Access tile'));
    } else {
      // The Microsoft 365 profile is disabled, and so is every other channel that has one.
      const off = (['private', 'internet'] as const).filter(
        (c) => !st.tiles[c].on && (profileOn === null || profileOn(c)),
      );
      reasons.push(
        off.length > 0
          ? `every channel is turned off or has its profile disabled: ${off.map((c) => tileOff(c, CHANNEL_LABEL[c])).join('; ')}`
          : 'no channel forwards (every channel is turned off or has its profile disabled)',
      );
    }
  }
  return reasons.length > 0 ? reasons.join('; ') : null;
}

/** The channels whose forwarding profile is enabled, or null when GET /profile fails. */
async function enabledProfiles(target: AdminTarget): Promise<((c: ChannelName) => boolean) | null> {
  try {
    const p = await adminCall<{ profiles: Array<{ type: ChannelName; state: string }> }>(
      target,
      'GET',
      '/profile',
    );
    const on = new Set(p.profiles.filter((x) => x.state === 'enabled').map((x) => x.type));
    return (c) => on.has(c);
  } catch {
    return null;
  }
}

/**
 * Throws GSA_ERR_NOT_READY when a run launched with this command failed to start (it
 * recorded the failure at most LAUNCHED_WITH_MS before this command, or after): an `up`
 * (`up-failed.json`), also while another client of the folder is Connected (one that held
 * the folder: the failure is GSA_ERR_BUSY), or a `gsa-emu netns` run (its own
 * `netns-<pid>-failed.json`, named by its pid and log: runs of a folder may run side by
 * side). Linux: an `up`'s not while an `up` of the folder started after the one that failed
 * still runs (a retry right after a failure: the newer one records its own failure, or
 * clears the record once ready).
 */
function startFailed(dir: string, flags: AdminFlags): void {
  if (flags.admin !== undefined) return;
  const failed = readStartFailures(dir).filter(
    (f) =>
      Date.parse(f.at) >= performance.timeOrigin - LAUNCHED_WITH_MS &&
      !(f.run === 'up' && upRetried(dir, f)),
  );
  if (failed.length === 0) return;
  throw new GsaError(
    'GSA_ERR_NOT_READY',
    failed
      .map(
        (f) =>
          `"gsa-emu ${f.run}" (pid ${f.pid}${f.log !== undefined ? `, log ${f.log}` : ''}) failed to start: ${f.message}`,
      )
      .join('\n'),
  );
}

/** Linux: whether an `up` of the folder started after the one that failed (`f`) runs. */
function upRetried(dir: string, f: StartFailure): boolean {
  if (f.start === undefined) return false;
  const newer = cliProcesses(dir, 'up', { except: f.pid, since: f.start });
  return newer !== null && newer.length > 0;
}

/** The pid of the folder's client when it wrote its state file before this command was launched, else null. */
function startedBefore(dir: string, flags: AdminFlags): number | null {
  if (flags.admin !== undefined) return null;
  const s = readClientState(join(dir, STATE_FILE));
  if (s === null || s === 'garbled') return null;
  const at = Date.parse(s.startedAt);
  return Number.isFinite(at) && at < performance.timeOrigin ? s.pid : null;
}

/**
 * Whether a Connected client of the folder is the answer (true; else what it waits for): one
 * that started after this command was launched is; an older one is once no `up` or `netns`
 * run launched with this command may still fail (Linux: no such `up` runs, no such netns
 * run runs without its state file, and none recorded a failure meanwhile; elsewhere:
 * LAUNCH_GRACE_MS after launch).
 */
function connectedCounts(dir: string, flags: AdminFlags): true | string {
  const older = startedBefore(dir, flags);
  if (older === null) return true;
  const launched = launchedRuns(dir, older);
  if (launched === null) {
    return Date.now() >= performance.timeOrigin + LAUNCH_GRACE_MS
      ? true
      : 'Connected, but started before this command';
  }
  if (launched.up.length > 0) {
    return `Connected (pid ${older}), but "gsa-emu up" (pid ${launched.up.join(', ')}) launched with this command for the same state folder is still starting`;
  }
  // A netns run is past its start once its state file is written (a failed one's record is
  // read first at each look: startFailed).
  const started = new Set(netnsRunsOf(dir).map((r) => r.pid));
  const runs = launched.netns.filter((p) => !started.has(p));
  if (runs.length > 0) {
    return `Connected (pid ${older}), but "gsa-emu netns" (pid ${runs.join(', ')}) launched with this command for the same state folder is still starting`;
  }
  // One may have recorded its failure and exited since the last look.
  startFailed(dir, flags);
  return true;
}

/**
 * `--wait`: asks until a running client answers with state Connected (every channel it
 * forwards has its tunnel up), or `seconds` pass: then GSA_ERR_NOT_READY with the last
 * answer (the state and notes, or why nothing answered). While the client is "Disabled by
 * your organization" (no profile enabled: an administrator may enable one, the profiles are
 * polled) it waits, and says so once through `note`, with the time it will still wait. It
 * ends at once when an `up` or a `gsa-emu netns` run launched with it fails to start
 * (its reason, from `<state-dir>/up-failed.json` or `netns-<pid>-failed.json`; a client
 * Connected since before this command counts once no run launched with it may still fail:
 * connectedCounts), when the client cannot become Connected without a user
 * action (`cannotConnect`: GSA_ERR_NOT_READY with the reason and the command), and when it
 * has no admin API (`--admin-port off`: GSA_ERR_ADMIN_UNREACHABLE) or the command line is
 * wrong (an unreadable --admin-token).
 */
async function waitConnected(
  dir: string,
  flags: AdminFlags & { stateDir?: string | undefined },
  seconds: number,
  note: (line: string) => void,
) {
  // A state folder no `up` can use: nothing will come to wait for (`up` cannot record why
  // in it either).
  if (flags.admin === undefined) {
    let isDir = true;
    try {
      isDir = statSync(dir).isDirectory();
    } catch {}
    if (!isDir) {
      throw new GsaError(
        'GSA_ERR_CONFIG',
        `the state folder ${dir} is not a directory: no \`gsa-emu up\` can run there; give --state-dir (or $GSA_EMU_STATE_DIR) a folder`,
      );
    }
  }
  const deadline = Date.now() + seconds * 1000;
  let last = 'nothing asked yet';
  let told = false;
  for (;;) {
    let st: StatusView | null = null;
    let target: AdminTarget | null = null;
    try {
      target = adminTarget(dir, flags);
      st = await adminCall<StatusView>(target, 'GET', '/status');
      last = `state ${st.state}${st.notes.length ? ` (${st.notes.join('; ')})` : ''}`;
    } catch (err) {
      // Nothing to wait for: no admin API to ask, or a command line that stays wrong.
      if (
        err instanceof NoAdminApiError ||
        err instanceof UsageError ||
        err instanceof OtherNamespaceError
      )
        throw err;
      last = (err as Error).message;
    }
    if (st !== null && target !== null) {
      // Only the channels' profiles tell "every channel turned off" from a disabled profile.
      const profileOn =
        st.state === 'Disabled' && st.onboarded && st.vpnOn && st.tiles.m365.on
          ? await enabledProfiles(target)
          : null;
      const why = cannotConnect(st, profileOn, addressFlags(flags), cliCommand());
      if (why !== null) {
        throw new GsaError(
          'GSA_ERR_NOT_READY',
          `the client cannot become Connected by itself (state ${st.state}): ${why}`,
        );
      }
      if (st.state === 'Disabled by your organization' && !told) {
        told = true;
        const left = Math.max(1, Math.ceil((deadline - Date.now()) / 1000));
        note(
          `gsa-emu status: waiting up to ${left} s more: the client is "Disabled by your organization" (no forwarding profile is enabled; profiles from ${st.profileSource}) and connects when an administrator enables one`,
        );
      }
    }
    // An `up` or netns run launched with this command that failed, also while another run's
    // client of the folder is Connected.
    startFailed(dir, flags);
    if (st?.state === 'Connected') {
      const counts = connectedCounts(dir, flags);
      if (counts === true) return st;
      last = counts;
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
  addAdminOptions(
    program
      .command('status')
      .description(
        'show the running client: state, tiles, channels (and health checks with --health)',
      ),
  )
    .option('--health', 'also run the health checks (exit 1 when one fails)')
    .option('--json', 'print JSON')
    .option(
      '--wait <seconds>',
      'wait until a running client is Connected (for scripts and CI; exit 1 if not in time, or at once when it cannot be without a user action: not onboarded, VPN off, tiles off)',
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
            ? await waitConnected(
                dir,
                { ...flags, stateDir: o.stateDir },
                waitSeconds(o.wait),
                (l) => process.stderr.write(`${l}\n`),
              )
            : await adminCall<StatusView>(adminTarget(dir, flags), 'GET', '/status');
        const health = o.health
          ? // 503: a check fails; its checks are printed all the same.
            (
              await adminCall<{ checks: HealthCheck[] }>(
                adminTarget(dir, flags),
                'GET',
                '/health',
                undefined,
                { accept: [503] },
              )
            ).checks
          : null;
        if (o.json) {
          process.stdout.write(`${JSON.stringify(health ? { ...st, health } : st, null, 2)}\n`);
        } else {
          process.stdout.write(`${formatStatus(st)}\n`);
          const local = localSubnetsLine((st as Partial<ClientStatusView>).localSubnets);
          if (local !== null) process.stdout.write(`${local}\n`);
          if (health) {
            process.stdout.write(`\n${formatHealth(health)}\n`);
          }
        }
        // As GET /health's 503: a script (`gsa-emu status --health && ...`) learns it from the
        // exit code, after the checks are printed.
        const failed = (health ?? []).filter((c) => c.status === 'fail').map((c) => c.name);
        if (failed.length > 0) {
          process.stderr.write(
            `gsa-emu: ${failed.length} health check${failed.length === 1 ? '' : 's'} failed: ${failed.join('; ')}\n`,
          );
          process.exitCode = 1;
        }
      },
    );
}
