/**
 * The VPN switch and onboarding (the seed: "Block users from disabling automatic VPN",
 * EnableVPNToggleInApp, SilentOnboard), through the admin API (POST /vpn, POST /onboard)
 * and the CLI (`gsa-emu vpn`, `gsa-emu onboard`): who may do what, and that a client with
 * the VPN off or not onboarded forwards nothing (new flows go direct) until it is on; asked
 * for what is so already, the API answers `"changed": false` and the CLI says "already". The
 * edge and the client listen on 127.0.0.1 and are closed by the test.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Agent } from 'undici';
import { writeClientState } from '../../src/client/admin-client.js';
import type { RunningClient } from '../../src/client/client.js';
import { formatStatus } from '../../src/client/format.js';
import { makeDirs } from '../../src/util/state-dir.js';
import { tempDir } from '../edge/helpers.js';
import { httpCall } from '../util/http-calls.js';
import { collect } from '../util/ts-child.js';
import { adminWorld } from './helpers.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first';
const runCli = (args: string[]) =>
  collect(
    spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    20_000,
  );

const dispatcher = new Agent({ keepAliveTimeout: 10 });
t.teardown(() => dispatcher.close());

async function world(t: Test, cc: Record<string, unknown>) {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const file = join(tmp.dir, 'cc.json');
  await writeFile(file, JSON.stringify(cc));
  const { client, base, auth } = await adminWorld(t, { clientConfig: file });
  const post = (path: string, body: unknown) =>
    httpCall(`${base}${path}`, 'POST', {
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      dispatcher,
    });
  return { client, post, dir: tmp.dir };
}

/** What the running client does with a new flow to Outlook (M365, tunneled when on). */
const outlook = (c: RunningClient) =>
  c.forwarder.decide(6, 'outlook.office365.com', null, 443).then((r) => r.decision.action);

t.test('VPN off in Settings: nothing forwarded, on again: forwarded', async (t) => {
  const { client, post } = await world(t, { SilentOnboard: true, EnableGSA: 2 });
  t.equal(await outlook(client), 'tunnel');
  const st0 = client.status();
  t.same(st0.vpn, {
    enableVPNToggleInApp: false,
    blockUsersFromDisablingAutomaticVPN: false,
    offVia: null,
  });
  t.match(
    formatStatus(st0),
    /VPN: on, onboarded; no VPN toggle in the app .*; Settings may switch it off/,
  );
  const gen = client.generation;
  const off = await post('/vpn', { on: false, via: 'settings' });
  t.equal(off.status, 200);
  t.same(off.json.channels, { m365: false, private: false, internet: false });
  t.ok(client.generation > gen, 'the classifier was swapped');
  t.equal(await outlook(client), 'bypass', 'a new flow goes direct');
  const st = client.status();
  t.equal(st.state, 'Disabled');
  t.ok(st.notes.some((n) => /VPN is off \(switched off in Settings\).*gsa-emu vpn on/.test(n)));
  t.equal(off.json.changed, true, 'the answer says it changed');
  const gen2 = client.generation;
  const offAgain = await post('/vpn', { on: false, via: 'settings' });
  t.equal(offAgain.status, 200);
  t.equal(offAgain.json.changed, false, 'off while off: nothing changed');
  t.equal(client.generation, gen2, 'no classifier swap');
  const on = await post('/vpn', { on: true });
  t.equal(on.status, 200, 'via defaults to settings');
  t.equal(on.json.changed, true);
  t.equal(await outlook(client), 'tunnel');
  t.equal((await post('/vpn', { on: true })).json.changed, false, 'on while on');
});

t.test('POST /toggle says whether the tile changed', async (t) => {
  const { client, post } = await world(t, { SilentOnboard: true, EnableGSA: 2 });
  const same = await post('/toggle', { channel: 'm365', on: true });
  t.equal(same.status, 200);
  t.equal(same.json.changed, false, 'on while on');
  const off = await post('/toggle', { channel: 'gsa', on: false });
  t.equal(off.json.changed, true);
  t.equal(client.tiles.toggles().m365, false);
  t.equal((await post('/toggle', { channel: 'm365', on: false })).json.changed, false);
  t.equal((await post('/toggle', { channel: 'm365', on: true })).json.changed, true);
});

t.test('the app toggle needs EnableVPNToggleInApp; Settings may be blocked', async (t) => {
  const locked = await world(t, {
    SilentOnboard: true,
    EnableGSA: 2,
    BlockUsersFromDisablingAutomaticVPN: true,
  });
  const app = await locked.post('/vpn', { on: false, via: 'app' });
  t.equal(app.status, 409);
  t.match(app.json.message, /EnableVPNToggleInApp/);
  const settings = await locked.post('/vpn', { on: false, via: 'settings' });
  t.equal(settings.status, 409);
  t.match(settings.json.message, /Block users from disabling automatic VPN/);
  t.equal(await outlook(locked.client), 'tunnel', 'still on');
  t.match(formatStatus(locked.client.status()), /Settings may not switch it off/);

  const inApp = await world(t, { SilentOnboard: true, EnableGSA: 2, EnableVPNToggleInApp: true });
  const r = await inApp.post('/vpn', { on: false, via: 'app' });
  t.equal(r.status, 200);
  t.equal(inApp.client.status().vpn.offVia, 'app');
  t.equal(await outlook(inApp.client), 'bypass');
});

t.test('bad /vpn and /onboard requests', async (t) => {
  const { post } = await world(t, { SilentOnboard: true, EnableGSA: 2 });
  for (const body of [{}, { on: 'no' }, { on: false, via: 'phone' }, [], null]) {
    const r = await post('/vpn', body);
    t.equal(r.status, 400, JSON.stringify(body));
  }
});

t.test('without SilentOnboard: not onboarded until POST /onboard', async (t) => {
  const { client, post } = await world(t, { EnableGSA: 2 });
  t.equal(client.status().onboarded, false);
  t.equal(await outlook(client), 'bypass');
  t.ok(client.status().notes.some((n) => /not onboarded.*gsa-emu onboard/.test(n)));
  t.ok(client.status().warnings.some((w) => /SilentOnboard/.test(w)));
  const r = await post('/onboard', {});
  t.equal(r.status, 200);
  t.equal(r.json.changed, true);
  t.equal(r.json.channels.m365, true);
  const again = await post('/onboard', {});
  t.equal(again.status, 200);
  t.equal(again.json.changed, false, 'onboarded already');
  t.equal(client.status().onboarded, true);
  t.equal(await outlook(client), 'tunnel');
});

t.test('the CLI: gsa-emu vpn off / on, gsa-emu onboard', { skip }, async (t) => {
  const { client, dir } = await world(t, { EnableGSA: 2 });
  const stateDir = join(dir, 'state');
  makeDirs(stateDir);
  const a = client.addresses;
  writeClientState(stateDir, {
    pid: process.pid,
    startedAt: new Date().toISOString(),
    admin: a.admin,
    socks: a.socks,
    http: a.http,
    pac: a.pac,
    edge: 'test',
    logs: join(stateDir, 'logs'),
    adminToken: client.admin!.token,
  });
  const onboard = await runCli(['onboard', '--state-dir', stateDir]);
  t.equal(onboard.code, 0, onboard.err);
  t.match(onboard.out, /^onboarded; forwarding now: m365 on/);
  const twice = await runCli(['onboard', '--state-dir', stateDir]);
  t.equal(twice.code, 0, twice.err);
  t.match(twice.out, /^already onboarded; forwarding now: m365 on/);
  const vpnOn = await runCli(['vpn', 'on', '--state-dir', stateDir]);
  t.equal(vpnOn.code, 0, vpnOn.err);
  t.match(vpnOn.out, /^VPN already on; forwarding now: m365 on/);
  const m365On = await runCli(['toggle', 'm365', 'on', '--state-dir', stateDir]);
  t.equal(m365On.code, 0, m365On.err);
  t.match(m365On.out, /^m365 already on; forwarding now: m365 on/);
  const off = await runCli(['vpn', 'off', '--state-dir', stateDir]);
  t.equal(off.code, 0, off.err);
  t.match(off.out, /VPN turned off in Settings; forwarding now: m365 off/);
  t.equal(await outlook(client), 'bypass');
  const app = await runCli(['vpn', 'on', '--via', 'app', '--state-dir', stateDir]);
  t.equal(app.code, 1, 'the app has no VPN toggle here');
  t.match(app.err, /EnableVPNToggleInApp/);
  const bad = await runCli(['vpn', 'sideways', '--state-dir', stateDir]);
  t.equal(bad.code, 2);
  const offAgain = await runCli(['vpn', 'off', '--state-dir', stateDir]);
  t.equal(offAgain.code, 0, offAgain.err);
  t.match(offAgain.out, /^VPN already off; forwarding now: m365 off/);
  const on = await runCli(['vpn', 'on', '--state-dir', stateDir]);
  t.equal(on.code, 0, on.err);
  t.match(on.out, /^VPN turned on in Settings; forwarding now: m365 on/);
  t.equal(await outlook(client), 'tunnel');
  const tOff = await runCli(['toggle', 'private', 'off', '--state-dir', stateDir]);
  t.match(tOff.out, /^private turned off; forwarding now: .*private off/);
  const tOff2 = await runCli(['toggle', 'private', 'off', '--state-dir', stateDir]);
  t.equal(tOff2.code, 0, tOff2.err);
  t.match(tOff2.out, /^private already off; forwarding now: .*private off/);
});
