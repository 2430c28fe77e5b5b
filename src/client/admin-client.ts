/**
 * Talking to a running client's admin API from the CLI (`gsa-emu status | flows | toggle`):
 * the address comes from `--admin host:port`, else from `<state-dir>/client.json`, which
 * `gsa-emu up` writes at start and removes at exit, else from the newest
 * `<state-dir>/netns-<pid>.json` of a running `gsa-emu netns`.
 */
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { AdminApiError, GsaError, UsageError } from '../errors.js';
import { pidAlive } from '../util/pid-lock.js';
import { makeDirs } from '../util/state-dir.js';

export interface ClientStateFile {
  pid: number;
  startedAt: string;
  admin: string | null;
  socks: string | null;
  http: string | null;
  pac: string | null;
  edge: string;
  logs: string;
}

export const STATE_FILE = 'client.json';

export function writeClientState(
  dir: string,
  s: ClientStateFile,
  file = join(dir, STATE_FILE),
): string {
  writeFileSync(file, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
  return file;
}

/** `gsa-emu up` that stopped before it was ready says why here (`status --wait` reads it). */
export const START_FAILURE_FILE = 'up-failed.json';

export interface StartFailure {
  pid: number;
  /** When it failed (ISO 8601). */
  at: string;
  message: string;
}

export function writeStartFailure(dir: string, message: string): void {
  const f: StartFailure = { pid: process.pid, at: new Date().toISOString(), message };
  try {
    makeDirs(dir);
    writeFileSync(join(dir, START_FAILURE_FILE), `${JSON.stringify(f)}\n`, { mode: 0o600 });
  } catch {}
}

/** The last start failure recorded in `dir`, or null. */
export function readStartFailure(dir: string): StartFailure | null {
  try {
    const f = JSON.parse(readFileSync(join(dir, START_FAILURE_FILE), 'utf8')) as StartFailure;
    return typeof f.pid === 'number' && typeof f.at === 'string' ? f : null;
  } catch {
    return null;
  }
}

export function clearStartFailure(dir: string): void {
  rmSync(join(dir, START_FAILURE_FILE), { force: true });
}

export function removeClientState(
  dir: string,
  pid = process.pid,
  file = join(dir, STATE_FILE),
): void {
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as ClientStateFile;
    if (s.pid === pid) rmSync(file);
  } catch {}
}

/** The state file of the newest running `gsa-emu netns` in `dir`, or null. */
function newestNetnsState(dir: string): string | null {
  let best: { file: string; mtime: number } | null = null;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return null;
  }
  for (const n of names) {
    const m = /^netns-(\d+)\.json$/.exec(n);
    if (!m || !pidAlive(Number(m[1]))) continue;
    const file = join(dir, n);
    try {
      const mtime = statSync(file).mtimeMs;
      if (!best || mtime > best.mtime) best = { file, mtime };
    } catch {}
  }
  return best?.file ?? null;
}

/** `client.json` when it exists, else the newest running netns state file. */
function newestNetnsStateUnlessUp(dir: string): string {
  const main = join(dir, STATE_FILE);
  try {
    statSync(main);
    return main;
  } catch {
    return newestNetnsState(dir) ?? main;
  }
}

/** The admin API base URL (`http://127.0.0.1:port`). */
export function adminUrl(dir: string, flag?: string): string {
  if (flag) {
    const url = flag.startsWith('http') ? flag.replace(/\/+$/, '') : `http://${flag}`;
    try {
      new URL(url);
    } catch {
      throw new UsageError(`--admin "${flag}" is not host:port`);
    }
    return url;
  }
  const file = newestNetnsStateUnlessUp(dir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new GsaError(
      'GSA_ERR_NOT_RUNNING',
      `no running client found (${join(dir, STATE_FILE)} is missing): start one with "gsa-emu up", or pass --admin host:port`,
    );
  }
  let s: ClientStateFile;
  try {
    s = JSON.parse(text) as ClientStateFile;
  } catch {
    throw new GsaError(
      'GSA_ERR_NOT_RUNNING',
      `${file} is not a client state file (not JSON): remove it, or pass --admin host:port`,
    );
  }
  if (!s.admin) throw new UsageError(`the client (pid ${s.pid}) runs without an admin API`);
  return `http://${s.admin}`;
}

/** A header on every admin API response, by which `adminCall` knows it reached one. */
export const ADMIN_API_HEADER = 'x-gsa-emu';

export async function adminCall<T>(
  base: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<T> {
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(`${base}${path}`, {
      method,
      headers: body !== undefined ? { 'content-type': 'application/json' } : {},
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    });
  } catch (err) {
    throw new GsaError(
      'GSA_ERR_ADMIN_UNREACHABLE',
      `cannot reach the client's admin API at ${base}: ${(err as Error).message} (is "gsa-emu up" running?)`,
    );
  }
  const text = await res.body.text();
  if (res.headers[ADMIN_API_HEADER] === undefined) {
    throw new GsaError(
      'GSA_ERR_ADMIN_UNREACHABLE',
      `something answers at ${base} (HTTP ${res.statusCode}), but not gsa-emu's admin API: another program on that port, or a stale client.json (is "gsa-emu up" running?)`,
    );
  }
  if (res.statusCode >= 400) {
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
