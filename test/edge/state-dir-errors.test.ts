// A state folder that cannot be made, given from JavaScript (startEdge, startDemo): a
// GSA_ERR_CONFIG naming the folder and the stateDir option, not a raw ENOTDIR from mkdir.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { startDemo } from '../../src/client/demo.js';
import { startEdge } from '../../src/edge/server.js';
import { GsaError } from '../../src/errors.js';

async function errorOf(p: Promise<{ close(): Promise<void> }>): Promise<unknown> {
  try {
    await (await p).close();
    return null;
  } catch (err) {
    return err;
  }
}

t.test('startEdge and startDemo: a state folder under a regular file', async (t) => {
  const tmp = await mkdtemp(join(tmpdir(), 'gsa-h133-'));
  t.teardown(() => rm(tmp, { recursive: true, force: true }));
  const file = join(tmp, 'file');
  await writeFile(file, 'x');
  for (const [name, start] of [
    ['startEdge', (d: string) => startEdge({ stateDir: d, port: 0, tls: false })],
    ['startDemo', (d: string) => startDemo({ stateDir: d })],
  ] as const) {
    for (const dir of [join(file, 'state'), file]) {
      const err = await errorOf(start(dir));
      t.ok(err instanceof GsaError, `${name}(${dir}): a GsaError (${String(err)})`);
      const e = err as GsaError;
      t.equal(e.code, 'GSA_ERR_CONFIG', `${name}(${dir}): the code`);
      t.match(e.message, dir, `${name}(${dir}): names the folder`);
      t.match(e.message, 'stateDir option', `${name}(${dir}): says what to give`);
      t.notMatch(e.message, '--state-dir', `${name}(${dir}): not the CLI flag`);
    }
  }
});

t.test(
  'startEdge: a folder that cannot be made for another reason (/proc)',
  { skip: process.platform === 'linux' ? false : 'a /proc path is Linux-only' },
  async (t) => {
    const dir = '/proc/gsa-emu-no-such/state';
    const err = await errorOf(startEdge({ stateDir: dir, port: 0, tls: false }));
    t.ok(err instanceof GsaError, `a GsaError (${String(err)})`);
    t.equal((err as GsaError).code, 'GSA_ERR_CONFIG');
    t.match((err as GsaError).message, `cannot use the state folder ${dir}`);
    t.match((err as GsaError).message, 'give the stateDir option a folder you can write');
  },
);
