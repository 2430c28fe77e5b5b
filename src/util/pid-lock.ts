/**
 * A lock file holding the owner's pid, created atomically (`wx`). A lock whose process is
 * gone (a crash, SIGKILL) is stale and taken over. Used for the state directory of
 * `gsa-emu up` and for the host routing of `gsa-emu up --tun`.
 *
 * Pids are reused (after a reboot the low ones almost at once), so "is pid N alive?" is not
 * "does the process that wrote this lock still run?". A lock (and a state file, see
 * client/admin-client.ts) records when its writer started, and `writerAlive` checks the
 * process now holding the pid against that:
 * - Linux: `procStart`, the boot id and the start time in clock ticks of /proc/<pid>/stat
 *   (field 22): equal or not, exactly;
 * - without it (another OS, a lock of an older gsa-emu): a process that started after the
 *   lock was written (`startedAt`, more than START_SLACK_MS) cannot have written it. The
 *   start time is /proc's on Linux, `ps -o etime=` on other POSIX systems; Windows has no
 *   cheap way, there a live pid counts as the writer (`gsa-emu stop` asks the admin API).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { GsaError } from '../errors.js';

/** Locks this process holds (a lock file naming our pid but not in here is a stale one). */
const held = new Set<string>();

export interface PidLockInfo {
  pid: number;
  command: string;
  startedAt: string;
  /** Linux: the writer's `processStartId` (absent elsewhere and in older locks). */
  procStart?: string;
}

/** Who wrote a lock or state file: its pid, when it wrote it, and (Linux) its start id. */
export interface ProcessStamp {
  pid: number;
  /** ISO 8601, written by the process after it started. */
  startedAt?: string | undefined;
  procStart?: string | undefined;
}

/** How much later than a stamp's `startedAt` a process may seem to have started (clock steps, rounding). */
const START_SLACK_MS = 5000;
/** Clock ticks per second of /proc's times (USER_HZ: 100 on every Linux architecture Node runs on). */
export const USER_HZ = 100;

let bootIdCache: string | null = null;
function bootId(): string {
  if (bootIdCache === null) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootIdCache = '';
    }
  }
  return bootIdCache;
}

/** Field 22 of /proc/<pid>/stat (start time after boot, in clock ticks), or null. */
/**
 * Field `n` (1-based, as proc(5) numbers them; 3 or more) of a /proc/<pid>/stat line, or
 * undefined. "pid (comm) state ppid ...": comm may hold spaces and parentheses, so the
 * fields from 3 on are those after the last ')'.
 */
export function statField(stat: string, n: number): string | undefined {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[n - 3];
}

export function startTicks(pid: number): number | null {
  if (process.platform !== 'linux' || !Number.isInteger(pid) || pid <= 0) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ticks = Number(statField(stat, 22));
    return Number.isFinite(ticks) ? ticks : null;
  } catch {
    return null;
  }
}

/** This process's network namespace (`net:[inode]`), or null where there is none to read. */
export function ownNetNamespace(): string | null {
  try {
    return readlinkSync('/proc/self/ns/net');
  } catch {
    return null;
  }
}

/**
 * Linux: an id of the process now holding `pid` that a later process with the same pid
 * cannot share (`<boot id>:<start ticks>`); null elsewhere or when it cannot be read.
 */
export function processStartId(pid: number): string | null {
  const ticks = startTicks(pid);
  return ticks === null ? null : `${bootId()}:${ticks}`;
}

/** When the process now holding `pid` started (ms since the epoch, about), or null when unknown. */
function processStartMs(pid: number): number | null {
  if (!Number.isInteger(pid) || pid <= 0 || process.platform === 'win32') return null;
  if (process.platform === 'linux') {
    const ticks = startTicks(pid);
    if (ticks === null) return null;
    try {
      const btime = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1];
      return btime === undefined ? null : Number(btime) * 1000 + (ticks * 1000) / USER_HZ;
    } catch {
      return null;
    }
  }
  // macOS, the BSDs: elapsed time "[[dd-]hh:]mm:ss".
  const r = spawnSync('ps', ['-o', 'etime=', '-p', String(pid)], {
    encoding: 'utf8',
    timeout: 2000,
  });
  const m = /^\s*(?:(?:(\d+)-)?(\d+):)?(\d+):(\d+)\s*$/.exec(r.stdout ?? '');
  if (r.status !== 0 || !m) return null;
  const [d, h, min, sec] = [m[1], m[2], m[3], m[4]].map((v) => Number(v ?? 0)) as [
    number,
    number,
    number,
    number,
  ];
  return Date.now() - (((d * 24 + h) * 60 + min) * 60 + sec) * 1000;
}

/** This process's stamp fields: `procStart` where `processStartId` knows it. */
export function ownProcessStart(): { procStart?: string } {
  const id = processStartId(process.pid);
  return id === null ? {} : { procStart: id };
}

/**
 * Whether the process that wrote `s` still runs: its pid is alive and, as far as this OS
 * tells, is that same process, not a later one that reused the pid (see the file comment).
 */
export function writerAlive(s: ProcessStamp): boolean {
  if (!pidAlive(s.pid)) return false;
  if (typeof s.procStart === 'string') {
    const now = processStartId(s.pid);
    if (now !== null) return now === s.procStart;
  }
  const wrote = typeof s.startedAt === 'string' ? Date.parse(s.startedAt) : Number.NaN;
  if (Number.isFinite(wrote)) {
    const started = processStartMs(s.pid);
    if (started !== null && started > wrote + START_SLACK_MS) return false;
  }
  return true;
}

/** A file modified in the last 2 s (a lock whose owner is still writing its pid). */
function justMade(file: string): boolean {
  try {
    return Date.now() - statSync(file).mtimeMs < 2000;
  } catch {
    return false;
  }
}

/** Is a process with this pid alive (EPERM: alive, owned by someone else)? */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readPidLock(file: string): PidLockInfo | null {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as PidLockInfo;
    return typeof v === 'object' && v !== null && typeof v.pid === 'number' ? v : null;
  } catch {
    return null;
  }
}

/**
 * Takes the lock or throws GsaError `GSA_ERR_BUSY` naming the owner and `hint`.
 * `onStale(info)` runs before a dead owner's lock is taken over (e.g. to undo what it left);
 * an owner whose pid now belongs to another process (`writerAlive`) is dead.
 * Returns the release function (idempotent; removes the file only while it is ours).
 */
export function acquirePidLock(
  file: string,
  command: string,
  what: string,
  hint: string,
  onStale?: (info: PidLockInfo) => void,
): () => void {
  const me: PidLockInfo = {
    pid: process.pid,
    command,
    startedAt: new Date().toISOString(),
    ...ownProcessStart(),
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(file, `${JSON.stringify(me)}\n`, { flag: 'wx', mode: 0o600 });
      held.add(file);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        held.delete(file);
        if (readPidLock(file)?.pid === process.pid) rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = readPidLock(file);
    // Our own pid: held here, or a dead run's pid reused (pid 1 in containers): stale.
    // Another pid: stale unless the process that wrote the lock still holds it.
    const live = owner && (owner.pid === process.pid ? held.has(file) : writerAlive(owner));
    if (owner === null && justMade(file)) {
      // Created an instant ago and not written yet: another process is taking it.
      throw new GsaError('GSA_ERR_BUSY', `${what} is being locked by another process: ${hint}`);
    }
    if (owner && live) {
      throw new GsaError(
        'GSA_ERR_BUSY',
        `${what} is in use by \`gsa-emu ${owner.command}\` (pid ${owner.pid}, since ${owner.startedAt}): ${hint}`,
      );
    }
    if (owner) onStale?.(owner);
    rmSync(file, { force: true });
  }
  throw new GsaError('GSA_ERR_BUSY', `${what}: cannot take the lock ${file}`);
}

/**
 * Removes `file` if it still holds the lock `info` read from it (not one a new owner wrote
 * since). For `gsa-emu stop` finding a stale lock.
 */
export function removeStaleLock(file: string, info: PidLockInfo): void {
  const now = readPidLock(file);
  if (now && now.pid === info.pid && now.startedAt === info.startedAt)
    rmSync(file, { force: true });
}
