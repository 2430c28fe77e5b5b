/**
 * What the CLI prints matches what it does: `explain`'s profile line, `up --help` on
 * `--config`, the `up` banner (client-config warnings, `--state-dir` in the suggested
 * commands, the admin API's paths, the remote edge's name resolution order), the boolean
 * client-config values, `flows --active` with only closed flows, and `--tun-dns` /
 * `--tun-source` without a remote edge.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import t from 'tap';
import { explain, formatExplanation } from '../../src/cli/commands/explain.js';
import { flowsText } from '../../src/cli/commands/flows.js';
import { cliCommand, readUpConfig, register, stateDirArg, up } from '../../src/cli/commands/up.js';
import { startEdge } from '../../src/edge/server.js';
import type { ConfigError } from '../../src/errors.js';
import type { FlowRecord } from '../../src/forward/flow-table.js';
import { parseBool } from '../../src/policy/client-config.js';
import { defaultStateDir } from '../../src/util/state-dir.js';
import { parseTarget } from '../../src/util/target.js';
import { upOnce } from '../util/up-in-process.js';

/** How the banner names gsa-emu here (`npx gsa-emu` unless installed on PATH). */
const g = cliCommand();

const dir = await mkdtemp(join(tmpdir(), 'gsa-review-docs-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

t.test('explain: the profile line names the channel only when there is one', async (t) => {
  const drop = formatExplanation(explain(parseTarget('contoso.sharepoint.com', { udp: true }), {}));
  t.match(drop, /^ {2}profile {3}Microsoft 365 traffic forwarding profile \(id [0-9a-f-]+\)$/m);
  t.notMatch(drop, '(-, ');
  const tunnel = formatExplanation(explain(parseTarget('https://outlook.office365.com'), {}));
  t.match(tunnel, /^ {2}profile {3}Microsoft 365 traffic forwarding profile \(m365, id /m);
});

t.test('up --help: --config names the flags it does not take, and they are refused', async (t) => {
  const program = new Command();
  register(program);
  const cmd = program.commands.find((c) => c.name() === 'up')!;
  const help = cmd.options.find((o) => o.long === '--config')!.description;
  const file = join(dir, 'keys.json');
  /** The issues of a config file with just `key` (tried as a switch and as a string). */
  const refused = async (key: string): Promise<string[]> => {
    const messages: string[] = [];
    for (const value of [true, '1']) {
      await writeFile(file, JSON.stringify({ [key]: value }));
      try {
        readUpConfig(file);
        return [];
      } catch (e) {
        messages.push(...(e as ConfigError).issues.map((i) => i.message));
      }
    }
    return messages;
  };
  for (const o of cmd.options) {
    const key = o.attributeName();
    if (o.long === '--config' || o.long === '--help') continue;
    // Named as a flag but not as a key (`processLookup: false for --no-process-lookup`).
    const excluded = help.includes(o.long!) && !new RegExp(`(^|[^\\w-])${key}\\b`).test(help);
    const unknown = (await refused(key)).some((m) => m.startsWith('unknown key'));
    t.equal(unknown, excluded, `${o.long} (key ${key}) ${excluded ? 'is refused' : 'is taken'}`);
  }
  // Keys that are no flag's name are named in the help.
  const all = (await refused('bogus')).find((m) => m.startsWith('unknown key'))!;
  const known = /known: ([^)]*)\)/.exec(all)![1]!.split(', ');
  const flagKeys = new Set(cmd.options.map((o) => o.attributeName()));
  for (const k of known.filter((k) => !flagKeys.has(k))) t.match(help, k, `the help names ${k}`);
});

t.test('up banner: client-config warnings, --state-dir, admin API paths', async (t) => {
  const cc = join(dir, 'cc.json');
  await writeFile(cc, JSON.stringify({ enableGSA: 2 }));
  const sd = join(dir, 'state');
  const text = await upOnce({ stateDir: sd, clientConfig: cc });
  t.match(
    text,
    `\nwarning: ${cc}: enableGSA: unknown key, ignored (did you mean EnableGSA? keys are case-sensitive)\n`,
  );
  t.match(
    text,
    // enableGSA (wrong case) is ignored: Global Secure Access is hidden, so no toggle is
    // suggested (it would be refused).
    `  ${g} status --state-dir ${sd}; ${g} flows --state-dir ${sd}\n`,
  );
  t.match(
    text,
    '(/status /flows /hostnames /profile /health /explain /metrics, POST /toggle /vpn /onboard /shutdown /profile/refresh)',
  );
});

t.test('up banner: a state folder that needs quoting is quoted', async (t) => {
  const sd = join(dir, "it's here");
  const text = await upOnce({ stateDir: sd });
  const q = `'${sd.replace(/'/g, `'\\''`)}'`;
  t.match(text, `${g} status --state-dir ${q}; ${g} flows --state-dir ${q}\n`);
});

t.test('up banner: only ~/.gsa-emu goes without --state-dir', async (t) => {
  t.equal(stateDirArg(defaultStateDir()), '', '~/.gsa-emu adds nothing');
  // A folder from $GSA_EMU_STATE_DIR is named: the shell the commands are typed in may not
  // have the variable.
  const saved = process.env.GSA_EMU_STATE_DIR;
  const env = join(dir, 'from-env');
  process.env.GSA_EMU_STATE_DIR = env;
  t.teardown(() => {
    if (saved === undefined) delete process.env.GSA_EMU_STATE_DIR;
    else process.env.GSA_EMU_STATE_DIR = saved;
  });
  const text = await upOnce({});
  t.match(text, `  ${g} toggle internet off --state-dir ${env}; ${g} status --state-dir ${env};`);
  t.notMatch(text, 'Ctrl+C to stop.', 'a --once run does not say Ctrl+C');
});

t.test('up banner with a remote edge: --add-host wins over the system resolver', async (t) => {
  const edge = await startEdge({
    stateDir: join(dir, 'edge'),
    tls: false,
    egress: { systemResolver: false, directIp: false },
  });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const sd = join(dir, 'remote');
  const text = await upOnce({ stateDir: sd, edge: edge.url });
  t.match(text, 'try (your own names: resolved by --add-host first, then the system resolver;');
  t.match(
    text,
    `  ${g} explain --running <name> --state-dir ${sd}; ${g} flows --state-dir ${sd}; ${g} status --state-dir ${sd}\n`,
  );
});

t.test('client config: the boolean error says what is accepted', async (t) => {
  t.equal(parseBool('YES'), true);
  t.equal(parseBool('No'), false);
  t.equal(
    parseBool('maybe'),
    '"maybe" is not a boolean (true, 1 or yes; false, 0 or no; in any case)',
  );
});

t.test('flows --active with only closed flows says so', async (t) => {
  const closed = { status: 'Closed' } as FlowRecord;
  t.equal(flowsText([closed], { limit: 50, active: true }), 'no active flows\n');
  t.equal(flowsText([], { limit: 50, active: true }), 'no flows yet\n');
  t.equal(flowsText([], { limit: 50 }), 'no flows yet\n');
  t.equal(flowsText([closed], { limit: 50, active: true, json: true }), '[]\n');
});

t.test('--tun-dns and --tun-source need a remote --edge', async (t) => {
  const base = { stateDir: join(dir, 'tun'), tun: true, tty: false, once: true };
  for (const o of [{ tunDns: '192.0.2.53' }, { tunSource: '192.0.2.10' }]) {
    await t.rejects(
      up({ ...base, ...o }),
      {
        name: 'UsageError',
        message: /^--tun-source and --tun-dns go with --tun and a remote --edge: /,
      },
      JSON.stringify(o),
    );
  }
});

t.test(
  'the banner says `gsa-emu` only when it is on the PATH (outside node_modules/.bin)',
  async (t) => {
    const bin = await mkdtemp(join(tmpdir(), 'gsa-bin-'));
    t.teardown(() => rm(bin, { recursive: true, force: true }));
    t.equal(cliCommand('', 'linux'), 'npx gsa-emu');
    t.equal(cliCommand(bin, 'linux'), 'npx gsa-emu', 'not in that folder');
    await writeFile(join(bin, 'gsa-emu'), '#!/bin/sh\n', { mode: 0o755 });
    t.equal(cliCommand(`/nonexistent:${bin}`, 'linux'), 'gsa-emu', 'installed');
    const dotBin = join(bin, 'node_modules', '.bin');
    await mkdir(dotBin, { recursive: true });
    await writeFile(join(dotBin, 'gsa-emu'), '#!/bin/sh\n', { mode: 0o755 });
    t.equal(
      cliCommand(dotBin, 'linux'),
      'npx gsa-emu',
      "npm's own node_modules/.bin does not count",
    );
  },
);

t.test('up banner: a client that is not onboarded is told to onboard first', async (t) => {
  const cc = join(dir, 'not-onboarded.json');
  await writeFile(cc, JSON.stringify({ EnableGSA: 2 }));
  const sd = join(dir, 'onboard');
  const text = await upOnce({ stateDir: sd, clientConfig: cc });
  t.match(text, `  ${g} onboard --state-dir ${sd}   # first: the client is not onboarded\n`);
});
