/**
 * Help texts a docs walkthrough found short of what the docs say: each option states its
 * default (and what happens when it cannot be had), and says what it does on its own.
 */
import { Command } from 'commander';
import t from 'tap';
import { register as registerExplain } from '../../src/cli/commands/explain.js';
import { register as registerFlows } from '../../src/cli/commands/flows.js';
import { register as registerProfiles } from '../../src/cli/commands/profiles.js';
import { register as registerStatus } from '../../src/cli/commands/status.js';
import { register as registerToggle } from '../../src/cli/commands/toggle.js';
import { register as registerUp } from '../../src/cli/commands/up.js';
import { register as registerVpn } from '../../src/cli/commands/vpn.js';

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

t.test(
  '--admin-token: its help says it works alone too; explain: that it implies --running',
  async (t) => {
    const program = new Command();
    for (const r of [
      registerStatus,
      registerFlows,
      registerToggle,
      registerProfiles,
      registerVpn,
      registerExplain,
    ])
      r(program);
    const helps: Array<[string, string]> = [];
    const walk = (c: Command, name: string): void => {
      const o = c.options.find((o) => o.long === '--admin-token');
      if (o) helps.push([name, o.description]);
      for (const sub of c.commands) walk(sub, `${name} ${sub.name()}`.trim());
    };
    walk(program, '');
    t.ok(helps.length >= 8, `found in ${helps.map(([n]) => n).join(', ')}`);
    for (const [name, help] of helps) {
      // "with --admin:" read as "only with --admin"; alone it replaces the state file's token.
      t.notMatch(help, /^with --admin/, `${name}: not only with --admin`);
      t.match(help, 'alone (the address from the state file) or with --admin', name);
      if (name === 'explain') t.match(help, 'implies --running', name);
    }
  },
);
