/**
 * A lock file holding the owner's pid, created atomically (`wx`). A lock whose process is
 * gone (a crash, SIGKILL) is stale and taken over. Used for the state directory of
 * `gsa-emu up` and for the host routing of `gsa-emu up --tun`.
 */
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { GsaError } from '../errors.js';

/** Locks this process holds (a lock file naming our pid but not in here is a stale one). */
const held = new Set<string>();

export interface PidLockInfo {
  pid: number;
  command: string;
  startedAt: string;
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
    return typeof v.pid === 'number' ? v : null;
  } catch {
    return null;
  }
}

/**
 * Takes the lock or throws GsaError `GSA_ERR_BUSY` naming the owner and `hint`.
 * `onStale(info)` runs before a dead owner's lock is taken over (e.g. to undo what it left).
 * Returns the release function (idempotent; removes the file only while it is ours).
 */
export function acquirePidLock(
  file: string,
  command: string,
  what: string,
  hint: string,
  onStale?: (info: PidLockInfo) => void,
): () => void {
  const me: PidLockInfo = { pid: process.pid, command, startedAt: new Date().toISOString() };
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
    const live = owner && (owner.pid === process.pid ? held.has(file) : pidAlive(owner.pid));
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
