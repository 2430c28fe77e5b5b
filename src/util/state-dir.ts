/**
 * Where gsa-emu keeps its state (CA, signing key, logs, the admin port): `--state-dir`,
 * else `$GSA_EMU_STATE_DIR`, else `~/.gsa-emu`; and how it is made and used safely.
 *
 * The state folder holds keys and logs that name every destination, and gsa-emu writes
 * files there, so (on POSIX; Windows ACLs differ and are not checked):
 * - folders are created 0700, files 0600; the log files are opened without following a
 *   symbolic link;
 * - a state folder (or its `logs/`) that another user owns, or that group or others may
 *   write, is refused before anything is written there (as ssh's StrictModes does): in such
 *   a folder another user could read the flows or plant a symbolic link that redirects
 *   gsa-emu's writes to a file of the user's;
 * - run as root by `sudo` (SUDO_UID, SUDO_GID) on a state folder of the invoking user (the
 *   default `~/.gsa-emu` when sudo keeps HOME, or any folder under one of theirs), what
 *   gsa-emu creates there is given to that user, so `sudo gsa-emu up --tun` neither locks
 *   the user out of their own state folder nor hides `client.json` from `gsa-emu status`.
 */
import {
  closeSync,
  fchmodSync,
  constants as fsConstants,
  fstatSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  type Stats,
  statSync,
} from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ConfigError, GsaError, UsageError } from '../errors.js';
import { shellWord } from './shell-word.js';

export function stateDir(flag?: string): string {
  if (flag !== undefined) {
    // An empty value (`--state-dir "$DIR"` with DIR unset) is a mistake, not "the default":
    // taken as no flag it would start, stop or read the user's own ~/.gsa-emu.
    if (flag.trim() === '') {
      throw new UsageError(
        '--state-dir is empty: give it a folder (e.g. "$(mktemp -d)"), or leave it out for $GSA_EMU_STATE_DIR, else ~/.gsa-emu',
      );
    }
    return resolve(flag);
  }
  if (process.env.GSA_EMU_STATE_DIR) return resolve(process.env.GSA_EMU_STATE_DIR);
  return defaultStateDir();
}

/** `~/.gsa-emu`: the state folder without a flag or $GSA_EMU_STATE_DIR. */
export function defaultStateDir(): string {
  return resolve(homeDir(), '.gsa-emu');
}

/**
 * The user's home: os.homedir() takes $HOME as is, even empty (`HOME= gsa-emu up`); then
 * the account's home from the user database.
 */
function homeDir(): string {
  const h = homedir();
  if (h) return h;
  try {
    return userInfo().homedir;
  } catch {
    return '';
  }
}

const posix = (): boolean => process.platform !== 'win32' && typeof process.getuid === 'function';

/** The user who ran `sudo gsa-emu ...`, when this process is root started by sudo. */
export function sudoUser(): { uid: number; gid: number; name: string } | null {
  if (!posix() || process.getuid!() !== 0) return null;
  const uid = Number(process.env.SUDO_UID);
  const gid = Number(process.env.SUDO_GID);
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid <= 0 || gid < 0) return null;
  return { uid, gid, name: process.env.SUDO_USER || userName(uid) };
}

/** A user's name, for messages: `alice`, else `uid 1001`. */
function userName(uid: number): string {
  try {
    const me = userInfo();
    if (me.uid === uid) return me.username;
  } catch {}
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length > 2 && Number(f[2]) === uid && f[0]) return f[0];
    }
  } catch {}
  return `uid ${uid}`;
}

/** `root (uid 0)`, `uid 1001`. */
function ownerText(uid: number): string {
  const name = userName(uid);
  return name.startsWith('uid ') ? name : `${name} (uid ${uid})`;
}

/** The current user's name for a command line (`$USER` when unknown). */
function myName(): string {
  const name = userName(process.getuid!());
  return name.startsWith('uid ') ? String(process.getuid!()) : name;
}

const modeText = (st: Stats): string => `0${(st.mode & 0o7777).toString(8).padStart(3, '0')}`;

/**
 * The sudo user when gsa-emu, run as root by sudo, creates things in `path` that belong
 * to that user: the real path (symbolic links resolved) of `path`, or of the deepest
 * folder of it that exists, is theirs or lies in a folder of theirs (their home, with the
 * default `~/.gsa-emu` when sudo kept HOME). Else null. Resolving first matters: through
 * `~/link -> /etc`, `~/link/x` is in /etc, not in the user's home.
 */
export function sudoHandOverTarget(path: string): { uid: number; gid: number } | null {
  const sudo = sudoUser();
  if (!sudo) return null;
  let p = resolve(path);
  while (!exists(p) && dirname(p) !== p) p = dirname(p);
  try {
    p = realpathSync(p);
  } catch {
    return null;
  }
  for (; ; p = dirname(p)) {
    try {
      if (lstatSync(p).uid === sudo.uid) return { uid: sudo.uid, gid: sudo.gid };
    } catch {}
    if (dirname(p) === p) return null;
  }
}

/** Owners whose folders this process may use: itself; root under sudo also the sudo user. */
function trustedOwners(): number[] {
  const me = process.getuid!();
  const sudo = sudoUser();
  return sudo ? [me, sudo.uid] : [me];
}

/**
 * Refuses a folder another user could use against this one: owned by someone else, or
 * writable by group or others. `shared`: a root-owned folder with the sticky bit (/tmp) is
 * accepted (a log file's folder may be one; a state folder may not). POSIX only.
 */
export function checkPrivateDir(dir: string, what = 'folder', shared = false): void {
  if (!posix()) return;
  const st = statSync(dir);
  if (shared && st.uid === 0 && (st.mode & 0o1000) !== 0) return;
  const owned = trustedOwners().includes(st.uid);
  const writable = (st.mode & 0o022) !== 0;
  if (owned && !writable) return;
  const who = writable
    ? `is writable by ${(st.mode & 0o020) !== 0 ? ((st.mode & 0o002) !== 0 ? 'group and others' : 'its group') : 'others'} (mode ${modeText(st)}, owner ${ownerText(st.uid)})`
    : `belongs to ${ownerText(st.uid)}, not to you (${ownerText(process.getuid!())}; mode ${modeText(st)})`;
  const risk =
    'another user could read what gsa-emu keeps there (logs naming every destination, keys) or plant a symbolic link that redirects its writes';
  let fix: string;
  if (!owned) {
    fix =
      st.uid === 0 && process.getuid!() !== 0
        ? `if it was made by \`sudo gsa-emu\`, give it back with \`sudo chown -R ${myName()} ${shellWord(dir)}\`; or use another --state-dir (e.g. \`--state-dir "$(mktemp -d)"\`)`
        : 'use a folder of your own: another --state-dir (e.g. `--state-dir "$(mktemp -d)"`)';
  } else {
    fix = `make it private with \`chmod 700 ${shellWord(dir)}\`, or use another --state-dir (e.g. \`--state-dir "$(mktemp -d)"\`)`;
  }
  throw new ConfigError(
    [{ path: '', message: `the ${what} ${who}: ${owned ? `${risk}. Fix: ${fix}` : fix}` }],
    dir,
  );
}

/** A mkdir error a user can act on: EACCES / EPERM say whose the folder above is. */
function mkdirError(e: NodeJS.ErrnoException, level: string): Error {
  if (!posix() || (e.code !== 'EACCES' && e.code !== 'EPERM')) return e;
  const parent = dirname(level);
  let whose = '';
  try {
    const st = statSync(parent);
    whose = ` (${parent} belongs to ${ownerText(st.uid)}, mode ${modeText(st)})`;
  } catch {}
  return new ConfigError(
    [
      {
        path: '',
        message: `cannot create the folder ${level}: ${e.code}, permission denied${whose}; use another --state-dir (e.g. \`--state-dir "$(mktemp -d)"\`)`,
      },
    ],
    level,
  );
}

/**
 * `mkdir -p`, one level at a time, each level created with `mode` (default 0700). Node's own
 * recursive mkdir never returns when a level cannot be created and does not exist (v20 on
 * /proc: `--state-dir /proc/x` spun at 100% CPU, deaf to SIGTERM); this throws that level's
 * error (ENOENT; EACCES as a ConfigError saying whose the folder above is) instead.
 *
 * Then (POSIX) the folder and any level that appeared meanwhile are checked with
 * checkPrivateDir (a root-owned sticky folder such as /tmp is accepted as the last level):
 * a folder someone else owns or may write throws ConfigError before the caller writes in
 * it. Run as root by sudo under a folder of the sudo user, the levels made are given to
 * that user. `check`: 'strict' accepts no shared folder as the last level either (a state
 * folder); 'none' checks nothing (a folder the user names for a file of their own, such as
 * the edge's `--log-file`, may be shared on purpose).
 */
export function makeDirs(
  path: string,
  mode = 0o700,
  what = 'folder',
  check: 'shared' | 'strict' | 'none' = 'shared',
): void {
  const leaf = resolve(path);
  const missing: string[] = [];
  for (let p = leaf; !exists(p); p = dirname(p)) {
    missing.push(p);
    if (dirname(p) === p) break;
  }
  const target = missing.length > 0 ? sudoHandOverTarget(leaf) : null;
  const raced: string[] = [];
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, { mode });
      if (target) lchownSync(d, target.uid, target.gid);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw mkdirError(e as NodeJS.ErrnoException, d);
      }
      raced.push(d);
    }
  }
  if (check === 'none') return;
  for (const d of raced) if (d !== leaf) checkPrivateDir(d, 'folder');
  checkPrivateDir(leaf, what, check === 'shared');
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

const O_NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0;

/**
 * Opens `file` for appending (`truncate`: emptied, to be written anew), creating it 0600;
 * refuses a symbolic link (O_NOFOLLOW) or anything but a regular file, and makes an older,
 * looser file (a 0644 log) 0600. Returns the descriptor. For files in a folder checked by
 * checkPrivateDir.
 */
export function openPrivateFile(file: string, o: { truncate?: boolean } = {}): number {
  let fd: number;
  try {
    fd = openSync(
      file,
      fsConstants.O_WRONLY |
        (o.truncate ? fsConstants.O_TRUNC : fsConstants.O_APPEND) |
        fsConstants.O_CREAT |
        O_NOFOLLOW,
      0o600,
    );
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new ConfigError(
        [{ path: '', message: 'is a symbolic link: gsa-emu does not write through one' }],
        file,
      );
    }
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      throw new ConfigError([{ path: '', message: 'is not a regular file' }], file);
    }
    if (posix() && (st.mode & 0o077) !== 0) fchmodSync(fd, st.mode & 0o700);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

/** What gsa-emu may create directly in a state folder (handed over under sudo). */
const STATE_ENTRIES =
  /^(logs|demo-tls|client\.(json|token)|up\.lock|up-failed\.json|netns-\d+(\.(json|token)|-failed\.json)|edge-signing-key\.json|edge-traffic\.jsonl|ca\.pem|ca-key\.pem|cert\.pem|key\.pem|tls\.lock|device-ca\.pem|device-ca-key\.pem|device-cert\.pem|device-key\.pem)$/;
/** Folders of the state folder whose every entry is gsa-emu's. */
const STATE_FOLDERS = new Set(['logs', 'demo-tls']);

/**
 * Gives what root created in the state folder `dir`, a folder of `to`'s (`logs/`,
 * `demo-tls/` and their files, the state and key files, the device CA and certificate), to `to`. Symbolic links are not
 * followed and files with several links are left alone. Best effort.
 */
export function handOverStateDir(dir: string, to: { uid: number; gid: number }): void {
  // Only inside a folder that is already the user's (theirs before, or made for them by
  // makeDirs): a root folder reached through a link or mounted under their home is not
  // given away, nor anything in it.
  try {
    const st = lstatSync(dir);
    if (!st.isDirectory() || st.uid !== to.uid) return;
  } catch {
    return;
  }
  const give = (p: string): Stats | null => {
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch {
      return null;
    }
    if (st.isSymbolicLink()) return null;
    if (st.uid === 0 && (st.isDirectory() || st.nlink === 1)) {
      try {
        lchownSync(p, to.uid, to.gid);
      } catch {}
    }
    return st;
  };
  const list = (d: string): string[] => {
    try {
      return readdirSync(d);
    } catch {
      return [];
    }
  };
  for (const name of list(dir)) {
    if (!STATE_ENTRIES.test(name)) continue;
    const st = give(join(dir, name));
    if (st?.isDirectory() && STATE_FOLDERS.has(name)) {
      for (const inner of list(join(dir, name))) give(join(dir, name, inner));
    }
  }
}

/** A state folder in use: see prepareStateDir. */
export interface PreparedStateDir {
  readonly dir: string;
  readonly logs: string;
  /**
   * Under sudo (see the file comment): give what was created so far to the sudo user. The
   * caller runs it after writing there (the lock, the state file, the CA and keys).
   */
  handOver(): void;
  /** When the run ends: a last handOver. */
  close(): void;
}

/**
 * Makes the state folder and its `logs/` (0700) and checks both (checkPrivateDir, strict:
 * no /tmp-like exception), before anything is written there. Run as root by sudo on a
 * folder of the invoking user, what exists is given to them at once, and what is written
 * later at each handOver().
 */
export function prepareStateDir(dir: string): PreparedStateDir {
  const logs = join(dir, 'logs');
  makeDirs(dir, 0o700, 'state folder', 'strict');
  makeDirs(logs, 0o700, 'logs folder', 'strict');
  const target = sudoHandOverTarget(dir);
  if (!target) return { dir, logs, handOver() {}, close() {} };
  const handOver = (): void => handOverStateDir(dir, target);
  handOver();
  return { dir, logs, handOver, close: handOver };
}

/**
 * A permission error (EACCES, EPERM) on a path in the state folder `dir`, as a ConfigError
 * that says whose the path is and how to repair it; null for any other error. `option`: how
 * the user names the folder (CLI_STATE_DIR, or LIBRARY_STATE_DIR from JavaScript).
 */
export function stateDirAccessError(
  err: unknown,
  dir: string,
  option: string = CLI_STATE_DIR,
): GsaError | null {
  const e = err as NodeJS.ErrnoException | null;
  if (!posix() || !e || (e.code !== 'EACCES' && e.code !== 'EPERM') || !e.path) return null;
  if (!inFolder(dir, e.path)) return null;
  let p = e.path;
  let st: Stats | null = null;
  for (; ; p = dirname(p)) {
    try {
      st = lstatSync(p);
      break;
    } catch {}
    if (dirname(p) === p) return null;
  }
  const me = process.getuid!();
  const cli = option === CLI_STATE_DIR;
  const other = cli ? 'use another --state-dir' : `give ${option} another folder`;
  const fix =
    st.uid !== me && st.uid === 0
      ? `if \`sudo gsa-emu\` made it, give the state folder back with \`sudo chown -R ${myName()} ${shellWord(dir)}\`; or ${other}`
      : cli
        ? `${other} (e.g. \`--state-dir "$(mktemp -d)"\`)`
        : other;
  return new ConfigError(
    [
      {
        path: '',
        message: `${e.code}: cannot ${e.syscall ?? 'use'} ${e.path}: ${p} belongs to ${ownerText(st.uid)} (mode ${modeText(st)}), you are ${ownerText(me)}. Fix: ${fix}`,
      },
    ],
    dir,
  );
}

/**
 * The state folder cannot be made or written for another reason than its owner or mode
 * (stateDirAccessError) or a file in its place (notADirectory): a read-only file system, a
 * path under /proc, no space. GSA_ERR_CONFIG naming the folder and the flag (`option`), or
 * null.
 */
export function stateDirUnusable(
  err: unknown,
  dir: string,
  option: string = CLI_STATE_DIR,
): GsaError | null {
  const e = err as (NodeJS.ErrnoException & { dest?: unknown }) | null;
  const codes = [
    'ENOENT',
    'EROFS',
    'ENOSPC',
    'EDQUOT',
    'ELOOP',
    'ENAMETOOLONG',
    'EINVAL',
    'EISDIR',
  ];
  if (!e?.code || !codes.includes(e.code) || typeof e.path !== 'string') return null;
  // A rename onto a directory (a folder where a file of the state folder goes): that one.
  const where = e.code === 'EISDIR' && typeof e.dest === 'string' ? e.dest : e.path;
  // Only the folder, what is in it, and the folders above it that were being made for it
  // (`--state-dir /proc/x/y` fails making /proc/x): another path (a --log-file elsewhere) is
  // not its fault.
  const above = e.syscall === 'mkdir' && inFolder(e.path, dir);
  if (!inFolder(dir, e.path) && !above) return null;
  return new GsaError(
    'GSA_ERR_CONFIG',
    `cannot use the state folder ${dir}: ${e.code} on ${e.syscall ?? 'access'} ${where}: ${e.code === 'EISDIR' ? `remove that folder or give ${option} another one` : `give ${option} a folder you can write`}`,
  );
}

/** How the CLI's user names the state folder, in its errors. */
export const CLI_STATE_DIR = '--state-dir (or $GSA_EMU_STATE_DIR)';
/** How a caller of startEdge or startDemo names it. */
export const LIBRARY_STATE_DIR = 'the stateDir option';

/**
 * The state folder, or a folder on its path, is a file (ENOTDIR, EEXIST): said of the
 * state folder, not as mkdir's error on `<dir>/logs` (or the edge's on its key file). Null
 * for any other error.
 */
export function notADirectory(
  err: unknown,
  dir: string,
  option: string = CLI_STATE_DIR,
): GsaError | null {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code !== 'ENOTDIR' && code !== 'EEXIST') return null;
  let file: string | null = null;
  for (let p = join(dir, 'logs'); ; p = dirname(p)) {
    try {
      if (!statSync(p).isDirectory()) file = p;
    } catch {}
    if (dirname(p) === p) break;
  }
  if (file === null) return null;
  return new GsaError(
    'GSA_ERR_CONFIG',
    `the state folder ${dir} is not a directory (${file === dir ? 'it is a file' : `${file} is a file`}): give ${option} a folder`,
  );
}

/**
 * What made the state folder `dir` unusable (a file on its path, a permission, a read-only
 * or full file system), as GSA_ERR_CONFIG naming the folder and `option`; null for an
 * error that is not the folder's.
 */
export function stateDirError(
  err: unknown,
  dir: string,
  option: string = CLI_STATE_DIR,
): GsaError | null {
  return (
    notADirectory(err, dir, option) ??
    stateDirAccessError(err, dir, option) ??
    stateDirUnusable(err, dir, option)
  );
}

/** `path` is `dir` or inside it. */
function inFolder(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}
