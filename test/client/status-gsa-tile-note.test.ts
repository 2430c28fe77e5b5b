/**
 * `status` with the Global Secure Access tile off said only "Disabled": no note said why
 * (the VPN off and not onboarded have one, with the command), though `status --wait` knew
 * ("the Global Secure Access tile is turned off: run ... toggle m365 on"). The note says
 * it, with the command when the user may toggle it, and why not when the configuration
 * locks or hides it.
 */
import t from 'tap';
import { cliCommand } from '../../src/cli/common.js';
import { statusView } from '../../src/client/diagnostics.js';
import {
  type ClientConfig,
  createClientTiles,
  defaultClientConfig,
} from '../../src/policy/client-config.js';
import { statusInput } from './helpers.js';

function view(config: ClientConfig, gsaOff: boolean) {
  const tiles = createClientTiles(config);
  if (gsaOff && tiles.snapshot().tiles.m365.userCanToggle) tiles.toggle('m365', false);
  return statusView(statusInput({ tiles: tiles.snapshot(), commandFlags: ' --state-dir /s' }));
}

t.test('turned off by the user: a note with the command', async (t) => {
  const st = view(defaultClientConfig(), true);
  t.equal(st.state, 'Disabled');
  t.match(
    st.notes.join('\n'),
    `the Global Secure Access tile is off: nothing is forwarded; \`${cliCommand()} toggle m365 on --state-dir /s\``,
  );
});

t.test('off by default (level 1): the same note', async (t) => {
  const st = view({ ...defaultClientConfig(), enableGSA: 1 }, false);
  t.equal(st.state, 'Disabled');
  t.match(st.notes.join('\n'), /the Global Secure Access tile is off: nothing is forwarded; `/);
});

t.test('hidden by the configuration (level 0): says so, no command', async (t) => {
  const st = view({ ...defaultClientConfig(), enableGSA: 0 }, false);
  const notes = st.notes.join('\n');
  t.match(notes, /the Global Secure Access tile is hidden and off by the client configuration \(/);
  t.notMatch(notes, /toggle m365 on/);
});

t.test('on: no such note', async (t) => {
  const st = view(defaultClientConfig(), false);
  t.equal(st.state, 'Connected');
  t.notMatch(st.notes.join('\n'), /Global Secure Access tile/);
});
