/**
 * `gsa-emu pause` / `gsa-emu resume` (the macOS client's Pause) and `--privileged` on `vpn`
 * and `toggle` (Windows RestrictNonPrivilegedUsers), against a running client found through
 * its state file: what they print, and their exit codes when refused (1, the reason). The
 * edge and the client listen on 127.0.0.1 and are closed by the test.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { writeClientState } from '../../src/client/admin-client.js';
import { makeDirs } from '../../src/util/state-dir.js';
import { adminWorld } from '../client/helpers.js';
import { tempDir } from '../edge/helpers.js';
import { collect } from '../util/ts-child.js';

const mainJs = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const skip = existsSync(mainJs) ? false : 'dist/cli/main.js is missing: run `npm run build` first';
const runCli = (args: string[]) =>
  collect(
    spawn(process.execPath, [mainJs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }),
    20_000,
  );

/** A running client on `platform` with the settings `cc`, and its state folder. */
async function world(t: Test, platform: string, cc: Record<string, unknown>) {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const file = join(tmp.dir, 'cc.json');
  await writeFile(file, JSON.stringify({ EnableGSA: 2, SilentOnboard: true, ...cc }));
  const { client } = await adminWorld(t, { clientConfig: file, platform });
  const stateDir = join(tmp.dir, 'state');
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
  return { client, cli: (args: string[]) => runCli([...args, '--state-dir', stateDir]) };
}

t.test('pause and resume on macos', { skip }, async (t) => {
  const { client, cli } = await world(t, 'macos', {});
  const p = await cli(['pause']);
  t.equal(p.code, 0, p.err);
  t.match(
    p.out,
    /^paused until \d{4}-\d\d-\d\dT\S+ \(it resumes by itself then\); forwarding now: m365 off/,
  );
  t.equal(client.tiles.paused(), true);
  const p2 = await cli(['pause']);
  t.equal(p2.code, 0, p2.err);
  t.match(p2.out, /^already paused until /);
  const st = await cli(['status']);
  t.match(st.out, /paused by the user until .*gsa-emu resume/);
  const r = await cli(['resume']);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /^resumed; forwarding now: m365 on/);
  const r2 = await cli(['resume']);
  t.match(r2.out, /^not paused; forwarding now: m365 on/);
});

t.test('pause and resume refused: not macos; pause with HidePauseButton', { skip }, async (t) => {
  const win = await world(t, 'windows', {});
  const w = await win.cli(['pause']);
  t.equal(w.code, 1);
  t.match(w.err, /platform windows has no pause: only the macOS client has Pause/);
  const wr = await win.cli(['resume']);
  t.equal(wr.code, w.code, 'resume is refused as pause is');
  t.equal(wr.err, w.err, 'with the same reason');
  t.equal(wr.out, '');
  const mac = await world(t, 'macos', { HidePauseButton: true });
  const m = await mac.cli(['pause']);
  t.equal(m.code, 1);
  t.match(m.err, /HidePauseButton=1/);
});

t.test(
  '--privileged with RestrictNonPrivilegedUsers; HideDisableButton refuses vpn off',
  { skip },
  async (t) => {
    const { client, cli } = await world(t, 'windows', { RestrictNonPrivilegedUsers: 1 });
    const off = await cli(['vpn', 'off']);
    t.equal(off.code, 1);
    t.match(off.err, /only a privileged user may disable the client.*--privileged/);
    const tog = await cli(['toggle', 'private', 'off']);
    t.equal(tog.code, 1);
    t.match(tog.err, /RestrictNonPrivilegedUsers=1/);
    const adminOff = await cli(['vpn', 'off', '--privileged']);
    t.equal(adminOff.code, 0, adminOff.err);
    t.match(adminOff.out, /^VPN turned off in Settings/);
    t.equal(client.tiles.snapshot().vpnOn, false);
    const adminTog = await cli(['toggle', 'private', 'off', '--privileged']);
    t.equal(adminTog.code, 0, adminTog.err);
    const hidden = await world(t, 'windows', { HideDisableButton: 1 });
    const h = await hidden.cli(['vpn', 'off', '--privileged']);
    t.equal(h.code, 1);
    t.match(
      h.err,
      /the client cannot be disabled: the administrator hides the Disable button \(HideDisableButton=1\)/,
    );
  },
);

t.test(
  'pause --help and resume --help say who has Pause and what refuses it',
  { skip },
  async (t) => {
    const p = await runCli(['pause', '--help']);
    t.equal(p.code, 0, p.err);
    t.match(p.out.replace(/\s+/g, ' '), /--platform macos only/);
    t.match(p.out.replace(/\s+/g, ' '), /HidePauseButton=1/);
    const r = await runCli(['resume', '--help']);
    t.match(r.out.replace(/\s+/g, ' '), /pause/);
    t.match(r.out.replace(/\s+/g, ' '), /--platform macos/);
  },
);
