/**
 * Talking to a running client's admin API from the CLI (`gsa-emu status | flows | toggle`):
 * the address comes from `--admin host:port`, else from `<state-dir>/client.json`, which
 * `gsa-emu up` writes at start and removes at exit.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { GsaError, UsageError } from '../errors.js';

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

export function writeClientState(dir: string, s: ClientStateFile): string {
  const file = join(dir, STATE_FILE);
  writeFileSync(file, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
  return file;
}

export function removeClientState(dir: string, pid = process.pid): void {
  try {
    const s = JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')) as ClientStateFile;
    if (s.pid === pid) rmSync(join(dir, STATE_FILE));
  } catch {}
}

/** The admin API base URL (`http://127.0.0.1:port`). */
export function adminUrl(dir: string, flag?: string): string {
  if (flag) return flag.startsWith('http') ? flag.replace(/\/+$/, '') : `http://${flag}`;
  let s: ClientStateFile;
  try {
    s = JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')) as ClientStateFile;
  } catch {
    throw new UsageError(
      `no running client found (${join(dir, STATE_FILE)} is missing): start one with "gsa-emu up", or pass --admin host:port`,
    );
  }
  if (!s.admin) throw new UsageError(`the client (pid ${s.pid}) runs without an admin API`);
  return `http://${s.admin}`;
}

/** The admin API answered with an error status. */
export class AdminApiError extends GsaError {
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(code, message);
    this.status = status;
  }
}

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
  if (res.statusCode >= 400) {
    let j: { error?: string; message?: string } = {};
    try {
      j = JSON.parse(text) as typeof j;
    } catch {}
    throw new AdminApiError(
      res.statusCode,
      j.error ?? 'GSA_ERR_ADMIN',
      j.message ?? `HTTP ${res.statusCode}`,
    );
  }
  const ct = String(res.headers['content-type'] ?? '');
  return (ct.includes('json') ? JSON.parse(text) : text) as T;
}
