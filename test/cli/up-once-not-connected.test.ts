/**
 * `up --once` is a smoke test: a client that cannot reach its edge fails it (exit 1,
 * GSA_ERR_NOT_READY, after the banner that shows which channel is down); one that is
 * Connected passes it. Needs `npm run build` (skipped without dist/cli/main.js).
 */
import t from 'tap';
import { closedPort } from '../util/free-port.js';
import { skip, tempRoot, upOnce } from './cli-ux-helpers.js';

const { newDir } = await tempRoot(t);

t.test('up --once: an edge that is not there fails the smoke test', { skip }, async (t) => {
  const port = await closedPort();
  const [down, ok] = await Promise.all([
    upOnce(newDir(), ['--edge', `https://127.0.0.1:${port}`]),
    upOnce(newDir()),
  ]);
  t.equal(down.code, 1, 'exit 1');
  t.match(down.err, /^gsa-emu: --once: not Connected within 5 s \(state [^)]+\)/m);
  t.match(down.out, /Global Secure Access/, 'the banner still says what is up and what is not');
  t.equal(ok.code, 0, `the in-process edge: exit 0 (${ok.err.trim()})`);
  t.match(ok.out, /Global Secure Access Connected/);
});
