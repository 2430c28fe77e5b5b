/**
 * The Windows and macOS settings in a running client, through the admin API: POST /toggle
 * and /vpn refused (409) as the registry values / macOS settings say, `"privileged": true`
 * for RestrictNonPrivilegedUsers, POST /pause and /resume (macOS), the status line and notes,
 * and that a paused client sends new flows direct until it resumes by itself (the pause's
 * scheduler is the test's: no waiting). The edge and the client listen on 127.0.0.1 and are
 * closed by the test.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Agent } from 'undici';
import type { ClientOptions, RunningClient } from '../../src/client/client.js';
import { formatStatus } from '../../src/client/format.js';
import { tempDir } from '../edge/helpers.js';
import { httpCall } from '../util/http-calls.js';
import { adminWorld } from './helpers.js';

const dispatcher = new Agent({ keepAliveTimeout: 10 });
t.teardown(() => dispatcher.close());

const BASE = {
  EnableGSA: 2,
  EnableGSAPrivateChannel: 2,
  EnableGSAInternetChannel: 2,
  SilentOnboard: true,
};

async function world(
  t: Test,
  platform: string,
  cc: Record<string, unknown>,
  over: Partial<ClientOptions> = {},
) {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const file = join(tmp.dir, 'cc.json');
  await writeFile(file, JSON.stringify({ ...BASE, ...cc }));
  const { client, base, auth } = await adminWorld(t, { clientConfig: file, platform, ...over });
  const post = (path: string, body: unknown) =>
    httpCall(`${base}${path}`, 'POST', {
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      dispatcher,
    });
  const get = (path: string) => httpCall(`${base}${path}`, 'GET', { headers: auth, dispatcher });
  return { client, post, get };
}

/** What the running client does with a new flow to Outlook (M365, tunneled when on). */
const outlook = (c: RunningClient) =>
  c.forwarder.decide(6, 'outlook.office365.com', null, 443).then((r) => r.decision.action);

t.test(
  'windows: HideDisableButton and HideDisablePrivateAccessButton refuse with 409',
  async (t) => {
    const { client, post } = await world(t, 'windows', {
      HideDisableButton: 1,
      HideDisablePrivateAccessButton: 1,
    });
    const off = await post('/vpn', { on: false });
    t.equal(off.status, 409);
    t.equal(off.json.error, 'GSA_ERR_TOGGLE_LOCKED');
    t.match(off.json.message, /hides the Disable button \(HideDisableButton=1\)/);
    const pa = await post('/toggle', { channel: 'private', on: false });
    t.equal(pa.status, 409);
    t.match(pa.json.message, /HideDisablePrivateAccessButton=1/);
    t.equal(await outlook(client), 'tunnel', 'still forwarding');
    t.match(
      formatStatus(client.status()),
      /Private Access +ON +on +user: on only +EnableGSAPrivateChannel=2/,
    );
    t.match(
      formatStatus(client.status()),
      /it may not be switched off \(HideDisableButton=1\); windows settings: HideDisableButton=1, HideDisablePrivateAccessButton=1$/m,
    );
  },
);

t.test('windows: RestrictNonPrivilegedUsers needs "privileged": true', async (t) => {
  const { client, post } = await world(t, 'windows', { RestrictNonPrivilegedUsers: 1 });
  t.match(
    formatStatus(client.status()),
    /Internet Access +ON +on +admin \(privileged\) +EnableGSAInternetChannel=2/,
  );
  const off = await post('/vpn', { on: false, via: 'settings' });
  t.equal(off.status, 409);
  t.match(off.json.message, /only a privileged user may disable the client/);
  const bad = await post('/vpn', { on: false, privileged: 'yes' });
  t.equal(bad.status, 400);
  const admin = await post('/vpn', { on: false, privileged: true });
  t.equal(admin.status, 200, admin.text);
  t.equal(admin.json.changed, true);
  t.equal(await outlook(client), 'bypass');
  const tog = await post('/toggle', { channel: 'internet', on: false });
  t.equal(tog.status, 409);
  const tog2 = await post('/toggle', { channel: 'internet', on: false, privileged: true });
  t.equal(tog2.status, 200);
});

t.test('windows: IsPrivateAccessDisabledByUser=1 starts with Private Access off', async (t) => {
  const { client } = await world(t, 'windows', { IsPrivateAccessDisabledByUser: 1 });
  const st = client.status();
  t.equal(st.tiles.private.on, false);
  t.ok(st.notes.includes('Private Access is disabled'));
  t.equal(client.tiles.state().m365, true);
});

t.test(
  'macos: pause sends new flows direct, resumes by itself; resume ends it sooner',
  async (t) => {
    let fire: (() => void) | null = null;
    const { client, post } = await world(
      t,
      'macos',
      {},
      {
        pause: {
          schedule: (fn) => {
            fire = fn;
            return () => {
              fire = null;
            };
          },
        },
      },
    );
    t.equal(await outlook(client), 'tunnel');
    const gen = client.generation;
    const p = await post('/pause', {});
    t.equal(p.status, 200, p.text);
    t.equal(p.json.changed, true);
    t.match(p.json.pausedUntil, /^\d{4}-\d\d-\d\dT/);
    t.same(p.json.channels, { m365: false, private: false, internet: false });
    t.ok(client.generation > gen, 'the classifier was swapped');
    t.equal(await outlook(client), 'bypass');
    const st = client.status();
    t.equal(st.state, 'Disabled');
    t.equal(st.pausedUntil, p.json.pausedUntil);
    t.ok(st.notes.some((n) => /paused by the user until .*gsa-emu resume/.test(n)));
    t.match(formatStatus(st), /VPN: on, paused until /);
    const again = await post('/pause', {});
    t.equal(again.json.changed, false);
    // Ten minutes later: the scheduler fires.
    t.ok(fire, 'an automatic resume is scheduled');
    (fire as unknown as () => void)();
    t.equal(client.status().pausedUntil, null);
    t.equal(await outlook(client), 'tunnel', 'forwarding again');
    await post('/pause', {});
    const r = await post('/resume', {});
    t.equal(r.status, 200);
    t.equal(r.json.changed, true);
    t.equal(fire, null, 'resume cancelled the automatic resume');
    t.equal(await outlook(client), 'tunnel');
    const r2 = await post('/resume', {});
    t.equal(r2.json.changed, false);
  },
);

t.test('pause refused: HidePauseButton on macos, any other platform (resume too)', async (t) => {
  const hidden = await world(t, 'macos', { HidePauseButton: true });
  const p = await hidden.post('/pause', {});
  t.equal(p.status, 409);
  t.match(p.json.message, /hides the Pause button \(HidePauseButton=1\)/);
  const win = await world(t, 'windows', {});
  const w = await win.post('/pause', {});
  t.equal(w.status, 409);
  t.match(w.json.message, /^platform windows has no pause: only the macOS client has Pause/);
  const wr = await win.post('/resume', {});
  t.equal(wr.status, 409, 'resume is refused there too');
  t.equal(wr.json.message, w.json.message);
  t.equal(await outlook(win.client), 'tunnel');
});

t.test('/pause and /resume take POST only', async (t) => {
  const { get } = await world(t, 'macos', {});
  for (const path of ['/pause', '/resume']) {
    const r = await get(path);
    t.equal(r.status, 405, path);
    t.equal(r.headers.allow, 'POST', path);
  }
});

t.test('macos: closing a paused client cancels its automatic resume (no timer left)', async (t) => {
  let pending = 0;
  const { client, post } = await world(
    t,
    'macos',
    {},
    {
      pause: {
        schedule: () => {
          pending++;
          return () => {
            pending--;
          };
        },
      },
    },
  );
  t.equal((await post('/pause', {})).status, 200);
  t.equal(pending, 1);
  await client.close();
  t.equal(pending, 0, 'the automatic resume was cancelled');
});
