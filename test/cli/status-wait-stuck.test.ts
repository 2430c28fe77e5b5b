/**
 * `gsa-emu status --wait <s>` against a client that cannot become Connected by itself: it
 * returns at once (exit 1, GSA_ERR_NOT_READY) with the reason and the command that fixes it
 * (`gsa-emu onboard`, `gsa-emu vpn on`, `gsa-emu toggle ...`), instead of waiting out its
 * time; a client that is still starting (Initializing while the tenant loads, channels
 * connecting) is waited for. A client without an admin API (`up --admin-port off`) is
 * GSA_ERR_ADMIN_UNREACHABLE (exit 1, not a usage error), at once with --wait too. And the
 * `--state-dir` help of the commands that talk to a running client names
 * $GSA_EMU_STATE_DIR. A client "Disabled by your organization" is waited for, and `--wait`
 * says so once on stderr, with how long it will still wait; the commands it suggests name
 * gsa-emu as the user runs it (`npx gsa-emu` unless installed on PATH, as `up`'s banner).
 *
 * The edge and the clients listen on 127.0.0.1 and are closed by the test; the state files
 * name this process (alive) as the client's pid.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import t, { type Test } from 'tap';
import { cannotConnect } from '../../src/cli/commands/status.js';
import { cliCommand } from '../../src/cli/common.js';
import { adminTarget, writeClientState } from '../../src/client/admin-client.js';
import { startClient } from '../../src/client/client.js';
import { statusView } from '../../src/client/diagnostics.js';
import { startEdge } from '../../src/edge/server.js';
import { createClientTiles, defaultClientConfig } from '../../src/policy/client-config.js';
import type { ChannelName } from '../../src/policy/model.js';
import { loadTenantFile } from '../../src/policy/tenant-file.js';
import { makeDirs } from '../../src/util/state-dir.js';
import { TEST_OVERVIEW } from '../client/helpers.js';
import { collect } from '../util/ts-child.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first';
const runCli = (args: string[]) =>
  collect(
    spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    30_000,
  );

/** How the CLI names itself in the commands it suggests, here (`npx gsa-emu` unless on PATH). */
const g = cliCommand();

async function folder(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-wait-stuck-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const stateOf = (admin: string | null, adminToken: string | null) => ({
  pid: process.pid,
  startedAt: new Date().toISOString(),
  admin,
  socks: null,
  http: null,
  pac: null,
  edge: 'test',
  logs: '/nowhere',
  adminToken,
});

/** A running client with client configuration `cc`, its state file in the returned folder. */
async function running(t: Test, cc: Record<string, unknown>) {
  const dir = await folder(t);
  const file = join(dir, 'cc.json');
  await writeFile(file, JSON.stringify(cc));
  const edge = await startEdge({ stateDir: join(dir, 'edge'), tls: false, persistKey: false });
  t.teardown(() => edge.close({ graceMs: 0 }));
  const client = await startClient({
    edge: { url: edge.url, ca: null },
    tenant: 'edge',
    clientConfig: file,
    listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: 0 },
    resolver: { system: false },
    processLookup: false,
  });
  t.teardown(() => client.close());
  const stateDir = join(dir, 'state with space');
  makeDirs(stateDir);
  writeClientState(stateDir, stateOf(client.addresses.admin, client.admin!.token));
  return { client, stateDir };
}

/** `status --wait 20`: its result and how long it took. */
async function waitStatus(stateDir: string) {
  const t0 = Date.now();
  const r = await runCli(['status', '--wait', '20', '--state-dir', stateDir]);
  return { ...r, took: Date.now() - t0 };
}

t.test('a client without an admin API: exit 1, GSA_ERR_ADMIN_UNREACHABLE, at once', async (t) => {
  const dir = await folder(t);
  writeClientState(dir, stateOf(null, null));
  t.throws(() => adminTarget(dir), {
    code: 'GSA_ERR_ADMIN_UNREACHABLE',
    message: /runs without an admin API \(--admin-port off\)/,
  });
  if (skip) return;
  const st = await runCli(['status', '--state-dir', dir]);
  t.equal(st.code, 1, 'not a usage error');
  t.match(st.err, /^gsa-emu: the client \(pid \d+, .*\) runs without an admin API/);
  const t0 = Date.now();
  const w = await runCli(['status', '--wait', '20', '--state-dir', dir]);
  t.equal(w.code, 1);
  t.match(w.err, /runs without an admin API/);
  t.ok(Date.now() - t0 < 10_000, `did not wait the 20 s (${Date.now() - t0} ms)`);
});

t.test('status --wait fails at once for a client that needs a user action', { skip }, async (t) => {
  t.test('not onboarded: gsa-emu onboard', async (t) => {
    const { stateDir } = await running(t, { EnableGSA: 2 });
    const r = await waitStatus(stateDir);
    t.equal(r.code, 1);
    t.match(
      r.err,
      RegExp(
        String.raw`^gsa-emu: the client cannot become Connected by itself \(state Initializing\): it is not onboarded \(SilentOnboard is not TRUE\): run "${g} onboard --state-dir '[^']*state with space'"`,
      ),
    );
    t.ok(r.took < 10_000, `did not wait the 20 s (${r.took} ms)`);
  });

  t.test('the VPN off: gsa-emu vpn on', async (t) => {
    const { client, stateDir } = await running(t, { SilentOnboard: true, EnableGSA: 2 });
    client.setVpn(false, 'settings');
    const r = await waitStatus(stateDir);
    t.equal(r.code, 1);
    t.match(
      r.err,
      RegExp(
        String.raw`\(state Disabled\): the VPN is off \(switched off in Settings\): run "${g} vpn on --state-dir `,
      ),
    );
    t.ok(r.took < 10_000, `did not wait the 20 s (${r.took} ms)`);
  });

  t.test('the Global Secure Access tile turned off: gsa-emu toggle m365 on', async (t) => {
    const { client, stateDir } = await running(t, { SilentOnboard: true, EnableGSA: 2 });
    client.toggle('m365', false);
    const r = await waitStatus(stateDir);
    t.equal(r.code, 1);
    t.match(
      r.err,
      RegExp(`the Global Secure Access tile is turned off: run "${g} toggle m365 on --state-dir `),
    );
    t.ok(r.took < 10_000, `did not wait the 20 s (${r.took} ms)`);
  });

  t.test('Global Secure Access hidden by the client configuration', async (t) => {
    const { stateDir } = await running(t, { SilentOnboard: true, EnableGSA: 0 });
    const r = await waitStatus(stateDir);
    t.equal(r.code, 1);
    t.match(
      r.err,
      /the Global Secure Access tile is hidden and off by the client configuration \(EnableGSA=0: .*\): change it and restart the client/,
    );
    t.notMatch(r.err, /gsa-emu toggle/, 'no command: the user cannot turn it on');
    t.ok(r.took < 10_000, `did not wait the 20 s (${r.took} ms)`);
  });

  t.test('a Connected client: exit 0', async (t) => {
    const { stateDir } = await running(t, { SilentOnboard: true, EnableGSA: 2 });
    const r = await waitStatus(stateDir);
    t.equal(r.code, 0, r.err);
    t.match(r.out, /^Global Secure Access: Connected/m);
  });
});

t.test('cannotConnect: stuck states, and transient ones that are waited for', async (t) => {
  const one = loadTenantFile(undefined).tenant;
  const base = (
    cc: Partial<ReturnType<typeof defaultClientConfig>> = {},
    act?: (tiles: ReturnType<typeof createClientTiles>) => void,
  ) => {
    const tiles = createClientTiles({ ...defaultClientConfig(), ...cc });
    act?.(tiles);
    return {
      overview: TEST_OVERVIEW,
      tenant: one,
      profileSource: 'x',
      profileLoadedAt: null,
      generation: 0,
      tiles: tiles.snapshot(),
      tunnelUp: () => true,
      tunnelDetail: () => 'up',
      tokenAt: 1,
      tokenError: null,
      listeners: {},
      activeFlows: 0,
    };
  };
  // Transient: waited for.
  t.equal(cannotConnect(statusView(base())), null, 'Connected');
  const loading = statusView({ ...base(), tenant: null });
  t.equal(loading.state, 'Initializing');
  t.equal(cannotConnect(loading), null, 'Initializing while the tenant loads');
  const connecting = statusView({ ...base(), tunnelUp: () => false, tunnelDetail: () => 'down' });
  t.equal(connecting.state, 'Disconnected', 'no channel up');
  t.equal(cannotConnect(connecting), null, 'channels still connecting');
  const some = statusView({ ...base(), tunnelUp: (c) => c === 'm365', tunnelDetail: () => 'down' });
  t.equal(some.state, 'Some channels are unreachable', 'one up, the others not');
  t.equal(cannotConnect(some), null, 'the others still connecting');
  const noToken = statusView({ ...base(), tokenAt: null, tokenError: 'no token yet' });
  t.equal(cannotConnect(noToken), null, 'no token yet');
  const org = statusView({ ...base(), tenant: { ...one, profiles: [] } });
  t.equal(org.state, 'Disabled by your organization');
  t.equal(cannotConnect(org), null, 'the tenant may enable a profile (polled)');

  // Stuck: a user action is needed.
  const notOnboarded = statusView({ ...base({ silentOnboard: false }), tenant: null });
  t.equal(notOnboarded.state, 'Initializing');
  t.match(cannotConnect(notOnboarded), /not onboarded.*"gsa-emu onboard"/, 'also while loading');
  t.match(
    cannotConnect(statusView(base({}, (x) => x.setVpn(false, 'app')))),
    /the VPN is off \(switched off in the app\): run "gsa-emu vpn on"/,
  );
  t.equal(cannotConnect(statusView(base({ enableGSA: 3 }))), null, 'level 3: on');
  t.match(
    cannotConnect(statusView(base({ enableGSA: 1 }))),
    /the Global Secure Access tile is turned off: run "gsa-emu toggle m365 on"/,
    'level 1: off by default, the user can turn it on',
  );
  // Every channel turned off: the m365 profile disabled, private and internet turned off.
  const noM365 = {
    ...one,
    profiles: one.profiles.map((p) => (p.type === 'm365' ? { ...p, state: 'disabled' } : p)),
  } as typeof one;
  const allOff = statusView({
    ...base({ enableGSAInternetChannel: 3 }, (x) => {
      x.toggle('private', false);
    }),
    tenant: noM365,
  });
  t.equal(allOff.state, 'Connected', 'internet (locked on) still forwards');
  const off = statusView({
    ...base({ enableGSAInternetChannel: 0 }, (x) => x.toggle('private', false)),
    tenant: noM365,
  });
  t.equal(off.state, 'Disabled');
  const profileOn = (c: ChannelName) => c !== 'm365';
  const why = cannotConnect(off, profileOn);
  t.match(why, /Private Access is turned off: run "gsa-emu toggle private on"/);
  t.match(why, /Internet Access is hidden and off by the client configuration/);
  t.match(
    cannotConnect(off, (c) => c === 'private'),
    /^every channel .*: Private Access is turned off: run "gsa-emu toggle private on"$/,
    'a channel without an enabled profile is not named',
  );
});

t.test('--state-dir help names $GSA_EMU_STATE_DIR', async (t) => {
  const program = new Command();
  for (const name of ['status', 'flows', 'toggle', 'vpn', 'stop', 'explain']) {
    const m = (await import(`../../src/cli/commands/${name}.js`)) as {
      register: (p: Command) => void;
    };
    m.register(program);
  }
  const names = ['status', 'flows', 'toggle', 'vpn', 'onboard', 'stop', 'explain'];
  for (const name of names) {
    const cmd = program.commands.find((c) => c.name() === name);
    t.ok(cmd, name);
    const help = cmd?.options.find((o) => o.long === '--state-dir')?.description ?? '';
    t.match(help, /\(default \$GSA_EMU_STATE_DIR, else ~\/\.gsa-emu\)/, `${name} --state-dir`);
  }
});

/** `status --wait <s>` with `env`; when each stderr line arrived (ms after the start). */
async function waitTimed(stateDir: string, seconds: string, env: NodeJS.ProcessEnv = process.env) {
  const t0 = Date.now();
  const child = spawn(
    process.execPath,
    [mainJs, 'status', '--wait', seconds, '--state-dir', stateDir],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    },
  );
  const lines: Array<{ at: number; text: string }> = [];
  let buf = '';
  child.stderr.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push({ at: Date.now() - t0, text: buf.slice(0, i) });
      buf = buf.slice(i + 1);
    }
  });
  const r = await collect(child, 30_000);
  return { ...r, lines, took: Date.now() - t0 };
}

t.test(
  'Disabled by your organization: waited for, and said once with the time',
  { skip },
  async (t) => {
    const dir = await folder(t);
    // The built-in tenant with every forwarding profile disabled.
    const doc = JSON.parse(
      readFileSync(
        join(import.meta.dirname, '../../data/tenants/default/forwarding-profiles.json'),
        'utf8',
      ),
    ) as { forwardingProfiles: Array<{ state: string }> };
    for (const p of doc.forwardingProfiles) p.state = 'disabled';
    const tenant = join(dir, 'tenant.json');
    await writeFile(tenant, JSON.stringify(doc));
    const edge = await startEdge({ stateDir: join(dir, 'edge'), tls: false, persistKey: false });
    t.teardown(() => edge.close({ graceMs: 0 }));
    const client = await startClient({
      edge: { url: edge.url, ca: null },
      tenant,
      listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: 0 },
      resolver: { system: false },
      processLookup: false,
    });
    t.teardown(() => client.close());
    t.equal(client.status().state, 'Disabled by your organization');
    const stateDir = join(dir, 'state');
    makeDirs(stateDir);
    writeClientState(stateDir, stateOf(client.addresses.admin, client.admin!.token));
    const r = await waitTimed(stateDir, '3');
    t.equal(r.code, 1, r.err);
    const notices = r.lines.filter((l) => l.text.startsWith('gsa-emu status: waiting'));
    t.equal(notices.length, 1, 'said once');
    t.match(
      notices[0]?.text,
      /^gsa-emu status: waiting up to [1-3] s more: the client is "Disabled by your organization" \(no forwarding profile is enabled; profiles from .*tenant\.json\) and connects when an administrator enables one$/,
    );
    t.ok((notices[0]?.at ?? Infinity) < r.took - 1500, 'said while waiting, not at the end');
    t.match(
      r.err,
      /gsa-emu: no Connected client within 3 s; last answer: state Disabled by your organization/,
    );
    t.ok(r.took >= 2900, `waited the 3 s (${r.took} ms)`);
  },
);

t.test('the suggested fix names gsa-emu as the user runs it', { skip }, async (t) => {
  const { stateDir } = await running(t, { EnableGSA: 2 });
  const bin = await folder(t);
  await writeFile(join(bin, 'gsa-emu'), '#!/bin/sh\n', { mode: 0o755 });
  const installed = await waitTimed(stateDir, '20', { ...process.env, PATH: bin });
  t.equal(installed.code, 1);
  t.match(installed.err, /: run "gsa-emu onboard --state-dir /, 'on PATH: gsa-emu');
  const checkout = await waitTimed(stateDir, '20', { ...process.env, PATH: '/nonexistent' });
  t.equal(checkout.code, 1);
  t.match(checkout.err, /: run "npx gsa-emu onboard --state-dir /, 'not on PATH: npx gsa-emu');
});
