/**
 * `status --wait`'s "cannot become Connected without a user action" (cannotConnect) and the
 * macOS pause: paused alone is waited for (the client resumes by itself within 10 minutes);
 * paused with the VPN off still names the VPN; the status note names `resume`.
 */
import t from 'tap';
import { cannotConnect } from '../../src/cli/commands/status.js';
import { statusView } from '../../src/client/diagnostics.js';
import { createClientTiles, defaultClientConfig } from '../../src/policy/client-config.js';
import { loadTenantFile } from '../../src/policy/tenant-file.js';
import { TEST_OVERVIEW } from '../client/helpers.js';

const one = loadTenantFile(undefined).tenant;
const view = (act: (tiles: ReturnType<typeof createClientTiles>) => void) => {
  const tiles = createClientTiles(defaultClientConfig(), {
    platform: 'macos',
    schedule: () => () => {},
  });
  act(tiles);
  return statusView({
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
  });
};

t.test('paused alone: Disabled, a note naming resume, and waited for', async (t) => {
  const st = view((tiles) => tiles.pause());
  t.equal(st.state, 'Disabled');
  t.match(st.pausedUntil, /^\d{4}-/);
  t.ok(
    st.notes.some((n) => /paused by the user until .*it resumes by itself.*gsa-emu resume/.test(n)),
  );
  t.notOk(
    st.notes.some((n) => /Global Secure Access tile/.test(n)),
    'not blamed on the tile',
  );
  t.equal(cannotConnect(st), null);
});

t.test('paused with the VPN off: the VPN is named', async (t) => {
  const st = view((tiles) => {
    tiles.pause();
    tiles.setVpn(false, 'settings');
  });
  t.match(cannotConnect(st), /the VPN is off/);
});

t.test(
  'paused with the Global Secure Access tile off: the tile is named, not waited for',
  async (t) => {
    // The pause ends by itself; the tile does not: after the pause the client is still Disabled.
    const st = view((tiles) => {
      tiles.toggle('m365', false);
      tiles.pause();
    });
    t.match(
      cannotConnect(st),
      /the Global Secure Access tile is turned off: run "gsa-emu toggle m365 on"/,
    );
    // Paused with only the private and internet toggles off: Microsoft 365 still forwards after
    // the pause, so it is waited for.
    const some = view((tiles) => {
      tiles.toggle('private', false);
      tiles.toggle('internet', false);
      tiles.pause();
    });
    t.equal(cannotConnect(some), null);
  },
);
