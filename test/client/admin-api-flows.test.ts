/**
 * GET /flows's query: `n` keeps the last n flows (oldest first, as without it), `active=1`
 * only the active ones, and a bad, unknown or repeated value is a 400 rather than a silently
 * whole table. The edge and the client listen on 127.0.0.1 and are closed by the test.
 */
import t from 'tap';
import { Agent } from 'undici';
import type { FlowRecord } from '../../src/forward/flow-table.js';
import { httpCall } from '../util/http-calls.js';
import { adminWorld } from './helpers.js';

const dispatcher = new Agent({ keepAliveTimeout: 10 });
t.teardown(() => dispatcher.close());

function rec(flowId: string, beginTime: number): FlowRecord {
  return {
    flowId,
    connectionId: `c-${flowId}`,
    beginTime,
    endTime: null,
    status: 'Active',
    protocol: 'tcp',
    destinationFqdn: `host${flowId}.test`,
    destinationIp: null,
    destinationPort: 443,
    sourceIp: '127.0.0.1',
    sourcePort: 40000 + Number(flowId),
    process: null,
    bytesSent: 0,
    bytesReceived: 0,
    channel: 'internet',
    ruleId: null,
    action: 'Tunnel',
    hardening: 'N',
    capture: 'socks',
    reason: '',
    drops: 0,
  };
}

t.test('n= and active= pick flows; bad values are a 400', async (t) => {
  const { client, base, auth } = await adminWorld(t, {}, 'gsa-admin-flows-');
  // Flows 1-5, oldest first; 2 and 4 stay active.
  for (let i = 1; i <= 5; i++) client.flows.open(rec(String(i), 1_000 + i));
  for (const id of ['1', '3', '5']) client.flows.close(id);
  const ids = async (q: string) => {
    const r = await httpCall(`${base}/flows${q}`, 'GET', { headers: auth, dispatcher });
    t.equal(r.status, 200, `${q || 'no query'}: 200`);
    return (r.json as { flows: FlowRecord[] }).flows.map((f) => f.flowId);
  };
  t.same(await ids(''), ['1', '2', '3', '4', '5'], 'no query: the whole table');
  t.same(await ids('?n=2'), ['4', '5'], 'n=2: the last two, oldest first');
  t.same(await ids('?n=99'), ['1', '2', '3', '4', '5'], 'n above the count: all');
  t.same(await ids('?active=1'), ['2', '4'], 'active=1: active only');
  t.same(await ids('?active=true&n=1'), ['4'], 'active and n: the last active one');
  t.same(await ids('?active=0'), ['1', '2', '3', '4', '5'], 'active=0: all');
  // A repeated parameter too: its other values would be silently ignored.
  for (const q of [
    '?n=0',
    '?n=-1',
    '?n=2x',
    '?n=',
    '?active=yes',
    '?limit=3',
    '?n=1&n=x',
    '?n=2&n=2',
    '?active=1&active=0',
  ]) {
    const r = await httpCall(`${base}/flows${q}`, 'GET', { headers: auth, dispatcher });
    t.equal(r.status, 400, `${q}: 400`);
    t.match(
      r.json,
      { error: 'bad_request', message: /n=|active=|unknown parameter|more than once/ },
      `${q}: says which`,
    );
  }
});
