/**
 * Talking to a running client's admin API from the CLI (`gsa-emu status | flows | toggle |
 * explain --running | stop`).
 *
 * The address and the bearer token come from the run's state file: `<state-dir>/client.json`,
 * which `gsa-emu up` writes when ready and removes at exit, else the newest
 * `<state-dir>/netns-<pid>.json` of a running `gsa-emu netns` (from inside a run's namespace:
 * that run, whose admin API listens there too). A state file whose writer is
 * gone (its pid exited, or is now another process: util/pid-lock.ts writerAlive) is stale
 * and not used: its port may be free, or another gsa-emu's.
 *
 * `--admin host:port` names the address instead; its token is then, in this order, the
 * one in the file given with `--admin-token <file>` (the token alone, as the run's token
 * file `client.token` / `netns-<pid>.token` holds it: the same file Prometheus's
 * `credentials_file` reads), else the one of a running state file of `--state-dir` with that
 * address. `--admin-token` without `--admin` overrides the state file's token.
 */
import {
  closeSync,
  fchownSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { request } from 'undici';
import { AdminApiError, GsaError, UsageError } from '../errors.js';
import { cliCommand } from '../util/cli-command.js';
import {
  ownNetNamespace,
  ownProcessStart,
  readPidLock,
  startTicks,
  writerAlive,
} from '../util/pid-lock.js';
import { shellWord } from '../util/shell-word.js';
import {
  defaultStateDir,
  makeDirs,
  openPrivateFile,
  sudoHandOverTarget,
} from '../util/state-dir.js';

export interface ClientStateFile {
  pid: number;
  startedAt: string;
  admin: string | null;
  socks: string | null;
  http: string | null;
  pac: string | null;
  edge: string;
  logs: string;
  /** The admin API's bearer token; null or absent: none (no admin API, or an older run). */
  adminToken?: string | null;
  /** Linux: the writer's start id (util/pid-lock.ts processStartId); tells a reused pid. */
  procStart?: string;
  /**
   * Linux: the writer's network namespace (`net:[inode]`, /proc/self/ns/net). Its admin API
   * on 127.0.0.1 is reachable only from there: a command in another namespace is told so.
   */
  netns?: string;
  /**
   * Linux: further network namespaces whose 127.0.0.1 has the same admin address, served by
   * the same process: a `gsa-emu netns` run's own namespace, where its command runs.
   */
  adminAlsoIn?: string[];
}

export const STATE_FILE = 'client.json';

/** The token file next to a state file: `client.token`, `netns-<pid>.token`. */
export function tokenFileOf(stateFile: string): string {
  return `${stateFile.replace(/\.json$/, '')}.token`;
}

/**
 * Writes a file readable by its owner only (also when it existed with a wider mode), never
 * through a symbolic link planted in its place; `owner`: given to that user.
 */
function writePrivate(
  file: string,
  text: string,
  owner: { uid: number; gid: number } | null = null,
): void {
  const fd = openPrivateFile(file, { truncate: true });
  try {
    writeSync(fd, text);
    if (owner) fchownSync(fd, owner.uid, owner.gid);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes the state file (0600) and, when it has an admin token, the token file next to it
 * (0600, the token and a newline). A state file of this process gets its `procStart`.
 */
export function writeClientState(
  dir: string,
  s: ClientStateFile,
  file = join(dir, STATE_FILE),
): string {
  const own = s.pid === process.pid;
  const ns = own && s.netns === undefined ? ownNetNamespace() : null;
  const full: ClientStateFile = {
    ...(own && s.procStart === undefined ? { ...s, ...ownProcessStart() } : s),
    ...(ns !== null ? { netns: ns } : {}),
  };
  const tokenFile = tokenFileOf(file);
  if (s.adminToken) writePrivate(tokenFile, `${s.adminToken}\n`);
  else rmSync(tokenFile, { force: true });
  writePrivate(file, `${JSON.stringify(full, null, 2)}\n`);
  return file;
}

/**
 * A run that stopped before it was ready says why in the state folder, for `status --wait`:
 * `gsa-emu up` in `up-failed.json` (one `up` at a time holds the folder), a `gsa-emu netns`
 * run in `netns-<pid>-failed.json` (its own, as its other files: runs of a folder run side
 * by side, and next to an `up`).
 */
export const START_FAILURE_FILE = 'up-failed.json';

/** A netns run's start-failure record: `netns-<pid>-failed.json`. */
const NETNS_FAILURE = /^netns-(\d+)-failed\.json$/;

/** The start-failure record of a run of this process: `up-failed.json`, `netns-<pid>-failed.json`. */
export function startFailureFile(run: 'up' | 'netns', pid = process.pid): string {
  return run === 'up' ? START_FAILURE_FILE : `netns-${pid}-failed.json`;
}

export interface StartFailure {
  pid: number;
  /** When it failed (ISO 8601). */
  at: string;
  message: string;
  /** Linux: when the process that failed started (clock ticks after boot, /proc/<pid>/stat). */
  start?: number;
  /** The run's client log, when it had made one. */
  log?: string;
}

/** A start failure as read, with the command that failed (from the record's name). */
export type StartFailureRecord = StartFailure & { run: 'up' | 'netns' };

export function writeStartFailure(
  dir: string,
  message: string,
  o: { run?: 'up' | 'netns'; log?: string } = {},
): void {
  const f: StartFailure = { pid: process.pid, at: new Date().toISOString(), message };
  const start = startTicks(process.pid);
  if (start !== null) f.start = start;
  if (o.log !== undefined) f.log = o.log;
  try {
    makeDirs(dir);
    // Under sudo, the invoking user's, as their state folder's other files: their own
    // `status --wait` reads it.
    writePrivate(
      join(dir, startFailureFile(o.run ?? 'up')),
      `${JSON.stringify(f)}\n`,
      sudoHandOverTarget(dir),
    );
  } catch {}
}

function readFailure(file: string): StartFailure | null {
  try {
    const f = JSON.parse(readFileSync(file, 'utf8')) as StartFailure;
    return typeof f.pid === 'number' && typeof f.at === 'string' ? f : null;
  } catch {
    return null;
  }
}

/**
 * Every start failure recorded in `dir`, newest first: the last `up`'s and each netns run's
 * (a record whose pid is not the one in its name is not one).
 */
export function readStartFailures(dir: string): StartFailureRecord[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const found: StartFailureRecord[] = [];
  for (const n of names) {
    const m = NETNS_FAILURE.exec(n);
    if (n !== START_FAILURE_FILE && !m) continue;
    const f = readFailure(join(dir, n));
    if (f === null || (m && f.pid !== Number(m[1]))) continue;
    found.push({ ...f, run: m ? 'netns' : 'up' });
  }
  return found.sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
}

export function clearStartFailure(dir: string): void {
  rmSync(join(dir, START_FAILURE_FILE), { force: true });
}

/** Removes the state file (and its token file) if `pid` wrote it. */
export function removeClientState(
  dir: string,
  pid = process.pid,
  file = join(dir, STATE_FILE),
): void {
  const s = readClientState(file);
  if (s === null || s === 'garbled' || s.pid !== pid) return;
  try {
    rmSync(tokenFileOf(file), { force: true });
    rmSync(file);
  } catch {}
}

/** A state file read: its content, null when missing, or 'garbled' when not a state file. */
export function readClientState(file: string): ClientStateFile | null | 'garbled' {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const s = JSON.parse(text) as ClientStateFile;
    return typeof s === 'object' && s !== null && typeof s.pid === 'number' ? s : 'garbled';
  } catch {
    return 'garbled';
  }
}

/** Whether the process that wrote a state file still runs (not a dead one's reused pid). */
export function stateIsLive(s: ClientStateFile): boolean {
  return writerAlive(s);
}

/**
 * Removes `<dir>/client.json` (and its token file) when the `up` that wrote it is gone
 * (`gsa-emu stop` finding a stale lock). Returns whether it did.
 */
export function removeStaleClientState(dir: string): boolean {
  const file = join(dir, STATE_FILE);
  const s = readClientState(file);
  if (s === null || s === 'garbled' || stateIsLive(s)) return false;
  removeClientState(dir, s.pid, file);
  return true;
}

interface LiveState {
  file: string;
  state: ClientStateFile;
}

/** The running `gsa-emu netns` runs of `dir`, newest first. */
function liveNetnsStates(dir: string): LiveState[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const found: Array<LiveState & { mtime: number }> = [];
  for (const n of names) {
    const m = /^netns-(\d+)\.json$/.exec(n);
    if (!m) continue;
    const file = join(dir, n);
    const state = readClientState(file);
    if (state === null || state === 'garbled' || state.pid !== Number(m[1]) || !stateIsLive(state))
      continue;
    try {
      found.push({ file, state, mtime: statSync(file).mtimeMs });
    } catch {}
  }
  return found.sort((a, b) => b.mtime - a.mtime).map(({ file, state }) => ({ file, state }));
}

/**
 * The running `gsa-emu netns` runs of `dir`, newest first: their pids, and whether this
 * process runs inside the run's namespace (its command, or a shell that entered it).
 */
export function netnsRunsOf(dir: string): Array<{ pid: number; inside: boolean }> {
  const here = ownNetNamespace();
  return liveNetnsStates(dir).map((r) => ({
    pid: r.state.pid,
    inside: here !== null && servedIn(r.state, here),
  }));
}

/**
 * A state file of `dir` (client.json, netns-<pid>.json) that is there but this process may
 * not read (EACCES: another user's run, e.g. the command of a root `gsa-emu netns` that
 * switched to a CI user), or null. readClientState takes it for missing, and "no running
 * client, start one" would send the user the wrong way.
 */
function unreadableState(dir: string): string | null {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return null;
  }
  for (const n of names) {
    if (n !== STATE_FILE && !/^netns-\d+\.json$/.test(n)) continue;
    try {
      closeSync(openSync(join(dir, n), 'r'));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') return join(dir, n);
    }
  }
  return null;
}

/** The `up` to start for the state folder `dir`, named as up's banner names it. */
function upCommand(dir: string): string {
  return `${cliCommand()} up${dir === defaultStateDir() ? '' : ` --state-dir ${shellWord(dir)}`}`;
}

/**
 * The running client of `dir`: `client.json` when its writer runs, else the newest running
 * netns; GSA_ERR_NOT_RUNNING (saying why: missing, stale, not JSON) when there is none. In
 * a `gsa-emu netns` run's namespace (its command), that run comes before a `client.json`
 * whose admin API is in another namespace: the `up` on the host, which it cannot reach.
 */
function liveState(dir: string): LiveState & { inside?: true } {
  const main = join(dir, STATE_FILE);
  const s = readClientState(main);
  if (s === 'garbled') {
    throw new GsaError(
      'GSA_ERR_NOT_RUNNING',
      `${main} is not a client state file (not JSON): remove it, or pass --admin host:port`,
    );
  }
  const up = s !== null && stateIsLive(s) ? s : null;
  const here = ownNetNamespace();
  if (here !== null && (up === null || (up.netns !== undefined && up.netns !== here))) {
    const inside = liveNetnsStates(dir).find((r) => servedIn(r.state, here));
    if (inside) return { ...inside, inside: true };
  }
  if (up !== null) return { file: main, state: up };
  // An `up` that holds the folder's lock but has not written its state file yet (it
  // writes it once its client has tried to connect: seconds, with an edge that is down).
  // It is the folder's client, before any netns run (`up &` then `status --wait`).
  const lock = readPidLock(join(dir, 'up.lock'));
  if (lock !== null && writerAlive(lock)) {
    throw new GsaError(
      'GSA_ERR_NOT_RUNNING',
      `"gsa-emu up" (pid ${lock.pid}) holds ${dir} but is still starting (no ${STATE_FILE} yet): ask again in a moment, or wait for it with "${cliCommand()} status${dir === defaultStateDir() ? '' : ` --state-dir ${shellWord(dir)}`} --wait 30"`,
    );
  }
  const netns = liveNetnsStates(dir)[0];
  if (netns) return netns;
  const locked = unreadableState(dir);
  if (locked !== null) {
    throw new GsaError(
      'GSA_ERR_NOT_RUNNING',
      `${locked} cannot be read by this user${process.getuid ? ` (uid ${process.getuid()})` : ''}: a run's state and token files are for the user that started it only (0600); run this command as that user (in a command of \`sudo gsa-emu netns\` that switches to another user: before switching), or pass --admin host:port with --admin-token <a copy of its token file>`,
    );
  }
  const start = upCommand(dir);
  throw new GsaError(
    'GSA_ERR_NOT_RUNNING',
    s === null
      ? `no running client found (${main} is missing): start one with "${start}", or pass --admin host:port`
      : `no running client found: ${main} is stale (the "gsa-emu up" that wrote it, pid ${s.pid}, is gone): start one with "${start}", or pass --admin host:port`,
  );
}

/** Where the CLI sends admin API requests: the base URL and the bearer token. */
export interface AdminTarget {
  /** `http://127.0.0.1:port` */
  url: string;
  token: string | null;
  /** The state file the address or token came from (a 401 then means it is stale), or null. */
  from: string | null;
  /** The `--admin-token` file the token came from (a 401 then means it is the wrong one). */
  tokenFile?: string;
  /**
   * Said to the user with the answer when the client was one of several: the newest of two
   * or more `gsa-emu netns` runs on the folder, and how to ask another (`--admin`).
   */
  note?: string;
}

/**
 * The running client has no admin API (`up --admin-port off`): nothing to ask, now or
 * later (`status --wait` fails at once). GSA_ERR_ADMIN_UNREACHABLE, exit 1: not a bad
 * command line.
 */
export class NoAdminApiError extends GsaError {
  readonly pid: number;
  constructor(pid: number, file: string) {
    super(
      'GSA_ERR_ADMIN_UNREACHABLE',
      `the client (pid ${pid}, ${file}) runs without an admin API (--admin-port off): it cannot be asked; restart it without --admin-port off, or pass --admin host:port of another client`,
    );
    this.pid = pid;
  }
}

/** What the admin commands take: `--admin host:port`, `--admin-token <file>`. */
export interface AdminFlags {
  admin?: string | undefined;
  adminToken?: string | undefined;
}

function adminFlagUrl(flag: string): string {
  const url = flag.startsWith('http') ? flag.replace(/\/+$/, '') : `http://${flag}`;
  // A port is required: without one the URL would mean port 80, which no admin API has.
  const hostPort = url.replace(/^https?:\/\//, '');
  try {
    new URL(url);
    if (!/^(\[[^\]]*\]|[^:/[\]]+):\d+$/.test(hostPort)) throw new Error('no port');
  } catch {
    throw new UsageError(`--admin "${flag}" is not host:port`);
  }
  return url;
}

/** `host:port` of a URL, localhost as 127.0.0.1, for comparing admin addresses. */
function hostKey(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname === 'localhost' ? '127.0.0.1' : u.hostname}:${u.port || '80'}`;
  } catch {
    return url;
  }
}

/** The token in a `--admin-token` file (its first line, trimmed). */
export function readTokenFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--admin-token "${file}": cannot read it: ${(e as Error).message}`);
  }
  const token = text.split(/\r?\n/)[0]!.trim();
  if (!token) throw new UsageError(`--admin-token "${file}" is empty`);
  return token;
}

/** The admin API to talk to and its token (see the file comment for where they come from). */
export function adminTarget(dir: string, o: AdminFlags = {}): AdminTarget {
  const given = o.adminToken !== undefined ? readTokenFile(o.adminToken) : null;
  if (o.admin) {
    const url = adminFlagUrl(o.admin);
    if (given !== null && o.adminToken !== undefined)
      return { url, token: given, from: null, tokenFile: o.adminToken };
    const key = hostKey(url);
    const mainFile = join(dir, STATE_FILE);
    const main = readClientState(mainFile);
    const candidates: LiveState[] = [
      ...(main !== null && main !== 'garbled' && stateIsLive(main)
        ? [{ file: mainFile, state: main }]
        : []),
      ...liveNetnsStates(dir),
    ];
    const match = candidates.find(
      (c) => c.state.admin && hostKey(`http://${c.state.admin}`) === key,
    );
    return match
      ? { url, token: match.state.adminToken ?? null, from: match.file }
      : { url, token: null, from: null };
  }
  const { file, state, inside } = liveState(dir);
  if (!state.admin) throw new NoAdminApiError(state.pid, file);
  const target: AdminTarget = {
    url: `http://${state.admin}`,
    token: given ?? state.adminToken ?? null,
    from: given !== null ? null : file,
    ...(o.adminToken !== undefined ? { tokenFile: o.adminToken } : {}),
  };
  if (file !== join(dir, STATE_FILE) && !inside) {
    const others = liveNetnsStates(dir).filter((r) => r.file !== file);
    if (others.length > 0) {
      const list = others
        .map((r) => `pid ${r.state.pid}${r.state.admin ? ` (--admin ${r.state.admin})` : ''}`)
        .join(', ');
      target.note = `${others.length + 1} "gsa-emu netns" runs use ${dir}: this is the newest, pid ${state.pid}; to ask another, give its --admin: ${list}`;
    }
  }
  return target;
}

/** The admin API base URL (`http://127.0.0.1:port`) of `--admin`, else of the running client's state file. */
export function adminUrl(dir: string, flag?: string): string {
  return adminTarget(dir, { admin: flag }).url;
}

/**
 * The namespaces when the state file `file` was written in another network namespace than
 * this process runs in; null when the same, or either is unknown.
 */
function otherNetNamespace(file: string): { here: string; there: string } | null {
  const s = readClientState(file);
  if (s === null || s === 'garbled' || typeof s.netns !== 'string') return null;
  const here = ownNetNamespace();
  return here !== null && here !== s.netns && !servedIn(s, here) ? { here, there: s.netns } : null;
}

/** Whether the state file's admin API also listens in the network namespace `ns`. */
function servedIn(s: ClientStateFile, ns: string): boolean {
  return Array.isArray(s.adminAlsoIn) && s.adminAlsoIn.includes(ns);
}

/** The name `ip netns` gives the network namespace `ns` (`net:[inode]`), or null. */
export function namespaceName(ns: string, dirs = ['/run/netns', '/var/run/netns']): string | null {
  const ino = /^net:\[(\d+)\]$/.exec(ns)?.[1];
  if (ino === undefined) return null;
  for (const d of dirs) {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names) {
      try {
        if (String(statSync(join(d, n)).ino) === ino) return n;
      } catch {}
    }
  }
  return null;
}

/**
 * The admin API is in another network namespace than this command (its 127.0.0.1 is not
 * ours): nothing to wait for (`status --wait` ends at once). Says where to run the command:
 * in the namespace the writer runs in, `ip netns exec <name> ...` when it has a name (an
 * `up`, or the `gsa-emu netns` itself, started with `ip netns exec ci`: this command may be
 * in a third namespace, such as the host's, not inside the run); for a `gsa-emu netns` run
 * started from an unnamed namespace (the host's), from another shell there.
 * `netnsDirs`: where namespace names are looked up (namespaceName).
 */
export class OtherNamespaceError extends GsaError {
  constructor(
    why: string,
    file: string,
    ns: { here: string; there: string },
    netnsDirs?: string[],
  ) {
    const run = /^netns-\d+\.json$/.test(basename(file));
    const name = namespaceName(ns.there, netnsDirs);
    const where =
      name !== null
        ? `run it in ${run ? 'the namespace `gsa-emu netns` was started from' : 'that namespace'}: \`ip netns exec ${shellWord(name)} ${cliCommand()} ...\``
        : run
          ? 'run it from another shell on the host (the namespace `gsa-emu netns` was started from), not inside the run'
          : 'run it in that namespace';
    super(
      'GSA_ERR_ADMIN_UNREACHABLE',
      `${why}. This command runs in another network namespace (${ns.here}) than the gsa-emu that wrote ${file} (${ns.there}), whose 127.0.0.1 it cannot reach: ${where}`,
    );
  }
}

/** A header on every admin API response, by which `adminCall` knows it reached one. */
export const ADMIN_API_HEADER = 'x-gsa-emu';

/** Notes said already (a command asking twice says a note once). */
const noted = new Set<string>();

/**
 * One admin API request. `target` is a target (`adminTarget`) or a bare base URL (no
 * token). A 401 is GSA_ERR_NOT_RUNNING when the token came from a state file (the file is
 * stale: another gsa-emu has its port now), else an AdminApiError saying which token to give.
 * A target's `note` goes to stderr, once.
 */
export async function adminCall<T>(
  target: AdminTarget | string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  o: {
    timeoutMs?: number;
    /** Statuses from 400 whose body is the answer too (GET /health's 503), not an error. */
    accept?: readonly number[];
  } = {},
): Promise<T> {
  const t: AdminTarget =
    typeof target === 'string' ? { url: target, token: null, from: null } : target;
  if (t.note !== undefined && !noted.has(t.note)) {
    noted.add(t.note);
    process.stderr.write(`gsa-emu: note: ${t.note}\n`);
  }
  const base = t.url;
  const timeout = o.timeoutMs ?? 10_000;
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(`${base}${path}`, {
      method,
      headers: {
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(t.token !== null ? { authorization: `Bearer ${t.token}` } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
  } catch (err) {
    const elsewhere = t.from !== null ? otherNetNamespace(t.from) : null;
    const why = `cannot reach the client's admin API at ${base}: ${(err as Error).message}`;
    if (elsewhere !== null && t.from !== null)
      throw new OtherNamespaceError(why, t.from, elsewhere);
    throw new GsaError('GSA_ERR_ADMIN_UNREACHABLE', `${why} (is "gsa-emu up" running?)`);
  }
  const text = await res.body.text();
  if (res.headers[ADMIN_API_HEADER] === undefined) {
    throw new GsaError(
      'GSA_ERR_ADMIN_UNREACHABLE',
      `something answers at ${base} (HTTP ${res.statusCode}), but not gsa-emu's admin API: another program on that port, or a stale client.json (is "gsa-emu up" running?)`,
    );
  }
  if (res.statusCode === 401) {
    if (t.from !== null) {
      throw new GsaError(
        'GSA_ERR_NOT_RUNNING',
        `the admin API at ${base} refused the token of ${t.from}: that file is stale (the gsa-emu that wrote it is gone; another one listens on its port now): start one with "${upCommand(dirname(t.from))}"`,
      );
    }
    if (t.tokenFile !== undefined) {
      throw new AdminApiError(
        401,
        'unauthorized',
        `the admin API at ${base} refused the token in ${t.tokenFile} (--admin-token): it is not the token of the run that listens there, which makes a new one at each start: give its <state-dir>/client.token (or netns-<pid>.token), or the --state-dir of that run`,
      );
    }
    throw new AdminApiError(
      401,
      'unauthorized',
      `the admin API at ${base} wants its token: give --admin-token <file> (the run's <state-dir>/client.token, or netns-<pid>.token), or the --state-dir of the run that listens there`,
    );
  }
  if (res.statusCode >= 400 && !o.accept?.includes(res.statusCode)) {
    let j: { error?: string; message?: string } = {};
    try {
      j = JSON.parse(text) as typeof j;
    } catch {}
    throw new AdminApiError(
      res.statusCode,
      typeof j.error === 'string' ? j.error : null,
      j.message ?? `HTTP ${res.statusCode}`,
    );
  }
  const ct = String(res.headers['content-type'] ?? '');
  return (ct.includes('json') ? JSON.parse(text) : text) as T;
}
