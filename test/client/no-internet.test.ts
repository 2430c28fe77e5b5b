/**
 * "No internet" (gsa-facts §6) from its inputs: which errors say the machine has no network
 * toward the edge (noNetworkCode), which states it replaces (not reaching the edge: no
 * profile yet, every channel down) and which it leaves (configuration states, a channel
 * up), its note, and the "Internet reachable" check. The end-to-end run, a link taken down
 * between two namespaces, is test/cli/no-internet.test.ts.
 */
import t from 'tap';
import { type HealthInput, healthChecks, statusView } from '../../src/client/diagnostics.js';
import { noNetworkCode } from '../../src/client/edge-api.js';
import { createClientTiles, defaultClientConfig } from '../../src/policy/client-config.js';
import { healthInput, statusInput } from './helpers.js';

const NET = 'connect ENETUNREACH 10.1.2.3:8443 - Local (0.0.0.0:0)';
const errno = (code: string, message = `${code} x`) => Object.assign(new Error(message), { code });

t.test('noNetworkCode: no route, network down, a lookup failing for now', async (t) => {
  t.equal(noNetworkCode(errno('ENETUNREACH')), 'ENETUNREACH');
  t.equal(noNetworkCode(errno('ENETDOWN')), 'ENETDOWN');
  t.equal(noNetworkCode(errno('EAI_AGAIN')), 'EAI_AGAIN');
  t.equal(
    noNetworkCode(new Error('fetch failed', { cause: errno('ENETUNREACH') })),
    'ENETUNREACH',
    'in the cause (undici)',
  );
  for (const code of ['ECONNREFUSED', 'EHOSTUNREACH', 'ETIMEDOUT', 'ENOTFOUND', 'ECONNRESET']) {
    t.equal(noNetworkCode(errno(code)), null, `${code}: the edge, not the network`);
  }
  t.equal(noNetworkCode(new Error('no code')), null);
  t.equal(noNetworkCode(null), null);
  t.equal(noNetworkCode('ENETUNREACH'), null, 'a string is not an error');
  // A cause chain that loops ends.
  const a = errno('X') as Error & { cause?: unknown };
  a.cause = a;
  t.equal(noNetworkCode(a), null);
});

t.test('it replaces the states of an edge not reached, with a note', async (t) => {
  // Every channel down.
  const down = statusView(
    statusInput({ tunnelUp: () => false, tokenAt: null, tokenError: NET, noNetwork: NET }),
  );
  t.equal(down.state, 'No internet');
  t.same(
    down.notes.filter((n) => n.includes('ENETUNREACH')),
    [
      `no network toward the edge: ${NET}; the client keeps trying and connects once the network is back`,
    ],
    'one note with the error (not the same error again as the token note)',
  );
  // No profile fetched yet.
  const start = statusView(statusInput({ tenant: null, tunnelUp: () => false, noNetwork: NET }));
  t.equal(start.state, 'No internet');
  // Without the error: what it was.
  t.equal(statusView(statusInput({ tunnelUp: () => false })).state, 'Disconnected');
  t.equal(statusView(statusInput({ tenant: null })).state, 'Initializing');
  // A token error of another kind keeps its own note.
  const other = statusView(
    statusInput({ tunnelUp: () => false, tokenAt: null, tokenError: 'refused', noNetwork: NET }),
  );
  t.ok(other.notes.includes('Entra: refused'));
});

t.test('it leaves states that reaching the edge does not decide', async (t) => {
  // A channel up: the network works (Some channels are unreachable, or Connected).
  const some = statusView(statusInput({ tunnelUp: (c) => c === 'm365', noNetwork: NET }));
  t.equal(some.state, 'Some channels are unreachable');
  t.equal(statusView(statusInput({ noNetwork: NET })).state, 'Connected');
  // The VPN off: Disabled, whatever the network.
  const tiles = createClientTiles(defaultClientConfig());
  tiles.setVpn(false, 'settings');
  const off = statusView(
    statusInput({ tiles: tiles.snapshot(), tunnelUp: () => false, noNetwork: NET }),
  );
  t.equal(off.state, 'Disabled');
  t.notOk(
    off.notes.some((n) => n.startsWith('no network')),
    'no such note',
  );
});

t.test('Internet reachable fails with the error, and is skipped otherwise', async (t) => {
  const base = healthInput({ tunnelUp: () => false, tokenAt: null, edgeHost: '10.1.2.3:8443' });
  const find = (i: HealthInput) => healthChecks(i).find((c) => c.name === 'Internet reachable');
  t.same(find({ ...base, noNetwork: NET }), {
    name: 'Internet reachable',
    status: 'fail',
    detail: `no network toward the edge: ${NET}`,
  });
  t.match(find(base), { status: 'skip' });
  t.match(find({ ...base, noNetwork: null }), { status: 'skip' });
});
