/**
 * The environment `gsa-emu netns` gives its command: GSA_EMU_STATE_DIR always;
 * GSA_EMU_ADMIN_URL and GSA_EMU_ADMIN_TOKEN_FILE when the admin API listens in the
 * namespace, and otherwise none, not values inherited from gsa-emu's own environment (a run
 * started inside another run's command), which name another run.
 */
import t from 'tap';
import { commandEnv } from '../../src/cli/commands/netns.js';

const outer = {
  PATH: '/usr/bin',
  GSA_EMU_STATE_DIR: '/outer',
  GSA_EMU_ADMIN_URL: 'http://127.0.0.1:1111',
  GSA_EMU_ADMIN_TOKEN_FILE: '/outer/netns-1.token',
};

t.test('served in the namespace: the run is named', async (t) => {
  const env = commandEnv(outer, '/inner', {
    url: 'http://127.0.0.1:2222',
    tokenFile: '/inner/netns-2.token',
  });
  t.match(env, {
    PATH: '/usr/bin',
    GSA_EMU_STATE_DIR: '/inner',
    GSA_EMU_ADMIN_URL: 'http://127.0.0.1:2222',
    GSA_EMU_ADMIN_TOKEN_FILE: '/inner/netns-2.token',
  });
});

t.test('not served in the namespace: no admin URL, not the inherited one', async (t) => {
  const env = commandEnv(outer, '/inner', null);
  t.equal(env.GSA_EMU_STATE_DIR, '/inner');
  t.equal(env.PATH, '/usr/bin', 'the rest is kept');
  t.notOk('GSA_EMU_ADMIN_URL' in env, 'no GSA_EMU_ADMIN_URL');
  t.notOk('GSA_EMU_ADMIN_TOKEN_FILE' in env, 'no GSA_EMU_ADMIN_TOKEN_FILE');
  t.equal(outer.GSA_EMU_ADMIN_URL, 'http://127.0.0.1:1111', "gsa-emu's own is unchanged");
});
