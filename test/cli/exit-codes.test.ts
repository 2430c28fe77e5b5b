/**
 * Exit codes of the command line (docs/errors.md): 0 for help and version, 2 for every
 * usage error, commander's (a missing argument, an unknown option or command) and
 * gsa-emu's own (an unknown channel).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { collect } from '../util/ts-child.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first';

const cli = (args: string[]) =>
  collect(
    spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    20_000,
  );

t.test('help and version exit 0; command-line errors exit 2', { skip }, async (t) => {
  for (const [args, code, err] of [
    [['--version'], 0, /^$/],
    [['--help'], 0, /^$/],
    [
      ['explain'],
      2,
      /^error: missing required argument 'target'\n\(run gsa-emu --help for usage\)\n$/,
    ],
    [['explain', '--off', 'internet'], 2, /^error: missing required argument 'target' \(a target/],
    [['toggle', 'internet'], 2, /missing required argument 'state'/],
    [['status', '--bogus'], 2, /unknown option '--bogus'/],
    [['nosuchcmd'], 2, /unknown command 'nosuchcmd'/],
    [
      ['explain', 'x.test', '--off', 'bogus'],
      2,
      /^gsa-emu: unknown channel "bogus" \(use m365, private or internet\)$/m,
    ],
    [['toggle', 'bogus', 'on'], 2, /^gsa-emu: unknown channel "bogus"/m],
  ] as const) {
    const r = await cli([...args]);
    t.equal(r.code, code, `${args.join(' ')}: exit ${code}`);
    t.match(r.err, err, `${args.join(' ')}: says why`);
  }
  const r = await cli(['explain', 'www.example.test', '--off', 'Internet']);
  t.equal(r.code, 0, '--off takes a channel in any case');
  t.match(r.out, /action\s+bypass/);
});
