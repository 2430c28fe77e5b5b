/**
 * Help texts a docs walkthrough found short of what the docs say: each option states its
 * default (and what happens when it cannot be had), and says what it does on its own.
 */
import { Command } from 'commander';
import t from 'tap';
import { register as registerUp } from '../../src/cli/commands/up.js';

/** The `--long` option's help line of `gsa-emu <name>`, registered by `register`. */
function helpOf(register: (p: Command) => void, name: string, long: string): string {
  const program = new Command();
  register(program);
  const cmd = program.commands.find((c) => c.name() === name)!;
  return cmd.options.find((o) => o.long === long)!.description;
}

t.test('up --help: each port option names its default', async (t) => {
  const socks = helpOf(registerUp, 'up', '--socks-port');
  t.match(socks, 'default 1080, or a free port when 1080 is taken');
  t.match(socks, 'off with --tun');
  const http = helpOf(registerUp, 'up', '--http-port');
  t.match(http, 'default 8080, or a free port when 8080 is taken');
  t.match(http, 'off with --tun');
  const pac = helpOf(registerUp, 'up', '--pac-port');
  t.match(pac, 'default: any free; off with --tun');
  t.match(pac, '"off": none');
  t.match(helpOf(registerUp, 'up', '--admin-port'), /default: any free.*"off": none/);
});
