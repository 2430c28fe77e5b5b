/**
 * Linux: the `gsa-emu up` (or `gsa-emu edge`, `gsa-emu netns`) processes of a state folder,
 * from /proc: /proc/<pid>/cmdline, environ and cwd give a process's state folder as
 * stateDir() computes it (--state-dir, else $GSA_EMU_STATE_DIR, else $HOME/.gsa-emu), and
 * field 22 of /proc/<pid>/stat its start. Before a process takes its folder's lock, nothing
 * it writes tells that it is starting; this does.
 *
 * - `status --wait`: `gsa-emu up --state-dir D & gsa-emu status --state-dir D --wait S` must
 *   not take a client of D that was Connected before it for the `up` launched with it (at
 *   most LAUNCHED_WITH_MS before it): that `up` may be about to fail with GSA_ERR_BUSY (the
 *   older client holds D). How long that takes (loading, checking its options) depends on
 *   the machine's load, so no fixed wait tells. Nor may it for a `gsa-emu netns` run launched
 *   with it, until the run has written its state file or recorded its failure.
 * - `stop` an instant after `up &`: it waits for a starting `up` to take its lock.
 *
 * Processes of other users (their environ is unreadable) and a forked shell that has not
 * yet run `gsa-emu` are not seen; nor is a wrapper (`timeout`, `sudo`) whose command line
 * names the script: only the Node.js process it starts counts.
 */
import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { basename, isAbsolute, resolve } from 'node:path';
import { startTicks, USER_HZ } from '../util/pid-lock.js';

/** How long before this command an `up` may have been launched and still count as launched with it. */
export const LAUNCHED_WITH_MS = 2000;
/** The names the CLI's script has in a command line: the package's bin link, the built or the source entry. */
const SCRIPT_NAMES = new Set(['gsa-emu', 'main.js', 'main.ts']);

/** The commands whose processes are looked for. */
export type CliCommand = 'up' | 'edge' | 'netns';

/**
 * The options of `gsa-emu netns` that take a value (src/cli/commands/netns.ts; a test keeps
 * the two alike). Its options end at the first other word, where its command begins
 * (`gsa-emu netns curl --state-dir x` gives curl that flag), or at `--`.
 */
export const NETNS_VALUE_OPTIONS: ReadonlySet<string> = new Set([
  '--tenant',
  '--client-config',
  '--platform',
  '--state-dir',
  '--log-level',
  '--add-host',
  '--token-ttl',
]);

/**
 * The options of `gsa-emu up` that take a value (src/cli/commands/up.ts; a test keeps the
 * two alike): the word after one is its value, even when it looks like a flag, as commander
 * reads it (`--password --state-dir` is a password).
 */
export const UP_VALUE_OPTIONS: ReadonlySet<string> = new Set([
  '--config',
  '--host',
  '--socks-port',
  '--http-port',
  '--pac-port',
  '--admin-port',
  '--user',
  '--password',
  '--password-file',
  '--tenant',
  '--client-config',
  '--platform',
  '--edge',
  '--edge-ca',
  '--edge-secret',
  '--state-dir',
  '--log-level',
  '--log-max-size',
  '--exit-after',
  '--profile-poll',
  '--http-response-timeout',
  '--http-body-timeout',
  '--tun-name',
  '--tun-source',
  '--tun-dns',
  '--local-subnets',
  '--token-ttl',
  '--add-host',
  '--edge-device-certificates',
]);

/** The options of `gsa-emu edge` that take a value (src/cli/commands/edge.ts; kept alike by a test). */
export const EDGE_VALUE_OPTIONS: ReadonlySet<string> = new Set([
  '--host',
  '--port',
  '--state-dir',
  '--tenant',
  '--config',
  '--log-file',
  '--log-max-size',
  '--max-token-ttl',
  '--client-secret-file',
  '--hostname',
  '--device-certificates',
]);

const VALUE_OPTIONS: Record<CliCommand, ReadonlySet<string>> = {
  up: UP_VALUE_OPTIONS,
  edge: EDGE_VALUE_OPTIONS,
  netns: NETNS_VALUE_OPTIONS,
};

/**
 * The state folder a command line's `gsa-emu <command>` uses, or null when it is not that
 * command. Its options end at `--`; `netns`'s also at its command. The value of another
 * option (UP_VALUE_OPTIONS, EDGE_VALUE_OPTIONS, NETNS_VALUE_OPTIONS) is skipped, whatever
 * it looks like (`up --add-host --state-dir=x` adds a host).
 */
export function commandStateDir(
  argv: string[],
  env: Record<string, string>,
  cwd: string,
  command: CliCommand = 'up',
): string | null {
  const script = argv.findIndex((a, i) => i > 0 && SCRIPT_NAMES.has(basename(a)));
  if (script < 0) return null;
  const rest = argv.slice(script + 1);
  if (rest[0] !== command) return null;
  let flag: string | undefined;
  for (let i = 1; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--') break;
    if (a === '--state-dir') flag = rest[++i];
    else if (a.startsWith('--state-dir=')) flag = a.slice('--state-dir='.length);
    else if (command === 'netns' && (!a.startsWith('-') || a === '-')) break;
    else if (VALUE_OPTIONS[command].has(a)) i++;
  }
  const dir =
    flag ||
    env.GSA_EMU_STATE_DIR ||
    (env.HOME && isAbsolute(env.HOME) ? resolve(env.HOME, '.gsa-emu') : null);
  return dir ? resolve(cwd, dir) : null;
}

function canonical(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/** Whether an executable is Node.js: this process's own, or one named node (`node20`, `nodejs`). */
function isNode(exe: string): boolean {
  return exe === ownExe || /^node/.test(basename(exe));
}
const ownExe = canonical(process.execPath);

function nulSplit(text: string): string[] {
  const parts = text.split('\0');
  if (parts.at(-1) === '') parts.pop();
  return parts;
}

/**
 * Pids of `gsa-emu up` processes for state folder `dir` started at most LAUNCHED_WITH_MS
 * before this process (or after it), other than this process and `except` (the folder's
 * client); null where /proc cannot tell (not Linux).
 */
export function launchedUps(dir: string, except: number | null = null): number[] | null {
  return launchedRuns(dir, except)?.up ?? null;
}

/** launchedUps for `up` and `gsa-emu netns` runs alike, in one look at /proc. */
export function launchedRuns(
  dir: string,
  except: number | null = null,
): { up: number[]; netns: number[] } | null {
  const own = startTicks(process.pid);
  if (own === null) return null;
  const since = own - (LAUNCHED_WITH_MS / 1000) * USER_HZ;
  const found = scanCliProcesses(dir, ['up', 'netns'], { except, since });
  if (found === null) return null;
  const of = (c: CliCommand) => found.filter((f) => f.command === c).map((f) => f.pid);
  return { up: of('up'), netns: of('netns') };
}

/**
 * Pids of the running `gsa-emu <command>` processes for state folder `dir` other than this
 * process and `o.except`, started at `o.since` (clock ticks after boot) or later; null where
 * /proc cannot tell (not Linux).
 */
export function cliProcesses(
  dir: string,
  command: CliCommand,
  o: { except?: number | null; since?: number } = {},
): number[] | null {
  return scanCliProcesses(dir, [command], o)?.map((f) => f.pid) ?? null;
}

/** cliProcesses for any of `commands`, each found with its command. */
function scanCliProcesses(
  dir: string,
  commands: readonly CliCommand[],
  o: { except?: number | null; since?: number },
): Array<{ pid: number; command: CliCommand }> | null {
  if (process.platform !== 'linux') return null;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return null;
  }
  const want = canonical(dir);
  const found: Array<{ pid: number; command: CliCommand }> = [];
  for (const name of entries) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || pid === o.except) continue;
    if (o.since !== undefined) {
      const ticks = startTicks(pid);
      if (ticks === null || ticks < o.since) continue;
    }
    try {
      const argv = nulSplit(readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
      if (!argv.some((a) => SCRIPT_NAMES.has(basename(a)))) continue;
      // A wrapper's command line holds the script too (`timeout 60 node main.js up`, `sudo
      // gsa-emu up`): only a Node.js process runs it.
      if (!isNode(readlinkSync(`/proc/${pid}/exe`))) continue;
      const env: Record<string, string> = {};
      for (const kv of nulSplit(readFileSync(`/proc/${pid}/environ`, 'utf8'))) {
        const eq = kv.indexOf('=');
        if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
      }
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      for (const command of commands) {
        const cmdDir = commandStateDir(argv, env, cwd, command);
        if (cmdDir !== null && canonical(cmdDir) === want) found.push({ pid, command });
      }
    } catch {
      // Gone meanwhile, or another user's.
    }
  }
  return found;
}
