/**
 * `gsa-emu netns`: a SIGINT is a Ctrl+C at the terminal (which reached the command too, and is
 * not sent again) only when gsa-emu's process group is the terminal's foreground group; a
 * gsa-emu in the background, or without a terminal, got it from a process (`kill -INT`, a
 * runner cancelling a job), and forwards it. Pure: /proc/self/stat lines are given.
 */
import t from 'tap';
import { ctrlCFromTerminal } from '../../src/cli/commands/netns.js';

/** A /proc/<pid>/stat line: pid (comm) state ppid pgrp session tty_nr tpgid ... */
const stat = (comm: string, pgrp: number, ttyNr: number, tpgid: number) =>
  `4242 (${comm}) S 4000 ${pgrp} 4000 ${ttyNr} ${tpgid} 4194304 128 0 0 0 0 0 0 0 20 0 1 0 575`;

t.test('foreground at a terminal: a Ctrl+C, not forwarded', async (t) => {
  t.equal(ctrlCFromTerminal(stat('node', 4242, 34816, 4242), true), true);
  t.equal(ctrlCFromTerminal(stat('node (x) y', 4242, 34816, 4242), true), true, 'odd comm');
});

t.test('in the background, or no terminal: from a process, forwarded', async (t) => {
  t.equal(ctrlCFromTerminal(stat('node', 4242, 34816, 5000), true), false, 'background job');
  t.equal(ctrlCFromTerminal(stat('node', 4242, 0, -1), false), false, 'no controlling terminal');
  t.equal(ctrlCFromTerminal(stat('node', 4242, 0, -1), true), false, 'stdin a tty, no ctty');
});

t.test('no /proc, or a line it cannot read: a terminal on stdin decides', async (t) => {
  t.equal(ctrlCFromTerminal(null, true), true);
  t.equal(ctrlCFromTerminal(null, false), false);
  t.equal(ctrlCFromTerminal('garbage', true), true);
});

t.test(
  'this process: its own stat line parses',
  { skip: process.platform !== 'linux' },
  async (t) => {
    const { readFileSync } = await import('node:fs');
    const own = readFileSync('/proc/self/stat', 'utf8');
    // The test runner has no terminal as its foreground group (stdin is not a tty here).
    t.type(ctrlCFromTerminal(own, false), 'boolean');
    t.equal(ctrlCFromTerminal(own, false), ctrlCFromTerminal(own, true), 'stdin does not decide');
  },
);
