import t from 'tap';
import { leftoverHandles } from '../../src/cli/exit-guard.js';
import { runTs } from '../util/ts-child.js';

t.test('leftoverHandles ignores the process stdio', async (t) => {
  t.same(leftoverHandles([]), []);
  t.same(leftoverHandles(['TTYWrap', 'PipeWrap']), []);
  t.same(leftoverHandles(['TTYWrap', 'TCPSocketWrap', 'PipeWrap']), ['TCPSocketWrap']);
});

// A socket whose close never completes (Node's resetAndDestroy() during a shutdown,
// docs/decisions/forward-socket-reset.md) makes Node spin at exit; with the guard the process
// names it and exits.
const LEAK = `
import net from 'node:net';
import { guardExit } from ${JSON.stringify(new URL('../../src/cli/exit-guard.ts', import.meta.url).href)};
guardExit();
process.exitCode = 3;
const srv = net.createServer((s) => {
  s.on('error', () => {});
  s.end();
  process.nextTick(() => process.nextTick(() => s.resetAndDestroy()));
});
srv.listen(0, '127.0.0.1', () => {
  const c = net.connect(srv.address().port, '127.0.0.1');
  c.on('error', () => {});
  c.resume();
  setTimeout(() => { c.destroy(); srv.close(); }, 200);
});
`;

t.test('a leaked handle: the process says so and exits with its exit code', async (t) => {
  const r = await runTs(LEAK);
  t.equal(r.signal, null, 'exited by itself (not killed after 20 s)');
  t.equal(r.code, 3, "the command's exit code");
  t.match(r.err, /gsa-emu: exiting with handles still open \(TCPSocketWrap\)/);
});
