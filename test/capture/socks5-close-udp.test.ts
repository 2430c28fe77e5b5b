/**
 * Socks5Server.close() while UDP replies are arriving: each association ends (its
 * destination flows close) before its relay socket closes. It used to close the relay
 * socket at once and end the association only on the control connection's 'close', a loop
 * turn later; a reply arriving in between was sent on the closed socket, and dgram send()
 * threw ERR_SOCKET_DGRAM_NOT_RUNNING from a 'message' handler, an uncaught exception:
 * `gsa-emu up` stopped (Ctrl+C) while UDP flows were answered died with a stack trace.
 *
 * Runs in a child process: without the fix the scenario kills the process it runs in.
 */
import t from 'tap';
import { runTs } from '../util/ts-child.js';

const src = (p: string): string => JSON.stringify(new URL(`../../src/${p}`, import.meta.url).href);
const fakes = JSON.stringify(new URL('../forward/fixtures/fakes.ts', import.meta.url).href);

const SCENARIO = `
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect } from 'node:net';
import { encodeUdpHeader, Socks5Server } from ${src('capture/socks5.ts')};
import { FlowTable } from ${src('forward/flow-table.ts')};
import { Forwarder } from ${src('forward/forwarder.ts')};
import { Resolver } from ${src('forward/resolver.ts')};
import { clientState, decision, FakeClassifier, FakeTunnels } from ${fakes};

const BYPASS = decision({ action: 'bypass', channel: 'internet', ruleId: 'bp' });
const forwarder = new Forwarder({
  classifier: () => new FakeClassifier([{ decision: BYPASS }]),
  tunnels: new FakeTunnels(),
  clientState: () => clientState(),
  resolver: new Resolver({ system: false }),
  flows: new FlowTable(),
});
const server = new Socks5Server({ forwarder, port: 0 });
const { port } = await server.listen();
// A destination that keeps answering (a stream of UDP replies, as from a game or media server).
const dest = createSocket('udp4');
let sending = true;
dest.on('message', (_m, r) => {
  const burst = () => {
    if (!sending) return;
    for (let i = 0; i < 20; i++) dest.send('x', r.port, r.address);
    setImmediate(burst);
  };
  burst();
});
dest.bind(0, '127.0.0.1');
await once(dest, 'listening');
const u = createSocket('udp4');
u.bind(0, '127.0.0.1');
await once(u, 'listening');
let replies = 0;
u.on('message', () => replies++);
const c = connect({ port, host: '127.0.0.1' });
c.on('error', () => {});
await once(c, 'connect');
const req = Buffer.from([5, 1, 0, 5, 3, 0, 1, 127, 0, 0, 1, 0, 0]);
req.writeUInt16BE(u.address().port, 11);
c.write(req);
const got = [];
c.on('data', (d) => got.push(d));
for (let i = 0; i < 200 && Buffer.concat(got).length < 12; i++) await new Promise((r) => setTimeout(r, 10));
const relayPort = Buffer.concat(got).readUInt16BE(10);
u.send(Buffer.concat([encodeUdpHeader(null, '127.0.0.1', dest.address().port), Buffer.from('go')]), relayPort, '127.0.0.1');
for (let i = 0; i < 300 && replies < 50; i++) await new Promise((r) => setTimeout(r, 10));
// Stop the proxy while replies are still arriving.
await server.close();
await new Promise((r) => setTimeout(r, 200));
sending = false;
process.stdout.write(JSON.stringify({ replies }));
process.exit(0);
`;

t.test('closing the server while UDP replies arrive is not an uncaught exception', async (t) => {
  const run = await runTs(SCENARIO, 20_000);
  t.notMatch(run.err, /ERR_SOCKET_DGRAM_NOT_RUNNING/, 'no uncaught ERR_SOCKET_DGRAM_NOT_RUNNING');
  t.equal(run.code, 0, `the process did not die (stderr: ${run.err.split('\n')[0] ?? ''})`);
  if (run.code === 0) t.ok(JSON.parse(run.out).replies >= 50, 'replies were flowing before close');
});
