/**
 * An edge on 127.0.0.1 (plain HTTP) for control API tests, started before the file's
 * tests and closed after them, with an admin token and a `call()` that sends it.
 */
import { join } from 'node:path';
import t from 'tap';
import { Agent } from 'undici';
import { type Edge, type EdgeOptions, startEdge } from '../../src/edge/server.js';
import { httpCall, type Reply } from '../util/http-calls.js';
import { tempDir } from './helpers.js';

/** A policy link of a forwarding profile, as the control API lists it. */
export interface Link {
  id: string;
  state: string;
  version: string;
  policy: { id: string; name: string; policyRules: Array<{ id: string }> };
}

/** A forwarding profile, as the control API lists it. */
export interface Prof {
  id: string;
  trafficForwardingType: string;
  policies: Link[];
}

export interface ControlApiFixture {
  readonly edge: Edge;
  readonly token: string;
  readonly dispatcher: Agent;
  /** A request with the admin token (another with `token`, none with `token: null`). */
  call(
    method: string,
    path: string,
    o?: { token?: string | null; body?: string; headers?: Record<string, string> },
  ): Promise<Reply>;
}

export function controlApiFixture(opts: Partial<EdgeOptions> = {}): ControlApiFixture {
  const dispatcher = new Agent({ keepAliveTimeout: 10 });
  let edge: Edge | null = null;
  let token = '';
  let remove: (() => Promise<void>) | null = null;
  t.before(async () => {
    const tmp = await tempDir();
    remove = tmp.remove;
    edge = await startEdge({ stateDir: join(tmp.dir, 'state'), tls: false, ...opts });
    token = await edge.issueToken({ channel: 'graph', userId: 'admin' });
  });
  t.teardown(async () => {
    await edge?.close({ graceMs: 0 });
    await remove?.();
    await dispatcher.close();
  });
  return {
    get edge() {
      if (!edge) throw new Error('the edge starts in t.before');
      return edge;
    },
    get token() {
      return token;
    },
    dispatcher,
    call(method, path, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      const tok = o.token === undefined ? token : o.token;
      if (tok !== null) headers.authorization = `Bearer ${tok}`;
      return httpCall(`${this.edge.url}${path}`, method, {
        headers,
        dispatcher,
        ...(o.body !== undefined ? { body: o.body } : {}),
      });
    },
  };
}
