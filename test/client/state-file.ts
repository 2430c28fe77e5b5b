/**
 * A client state file (`<state-dir>/client.json`, src/client/admin-client.ts) for tests of
 * the commands that read it: a run of `pid` whose admin API is `admin`, no proxies.
 */
import type { ClientStateFile } from '../../src/client/admin-client.js';

export function stateFile(
  pid: number,
  admin: string,
  over: Partial<ClientStateFile> = {},
): ClientStateFile {
  return {
    pid,
    startedAt: new Date().toISOString(),
    admin,
    socks: null,
    http: null,
    pac: null,
    edge: 'http://127.0.0.1:1',
    logs: '/nowhere',
    adminToken: null,
    ...over,
  };
}
