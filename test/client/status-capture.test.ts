/**
 * `status` says so when nothing captures (no proxy, no TUN): the tunnels may be Connected
 * while no application can reach them. With a proxy listening there is no such note. The
 * edge and the client listen on 127.0.0.1 and are closed by the test.
 */
import t from 'tap';
import { adminWorld } from './helpers.js';

const NOTE = /nothing captures/;

t.test('no proxy and no TUN: a note says nothing captures', async (t) => {
  const { client } = await adminWorld(t, {}, 'gsa-status-capture-');
  const st = client.status();
  t.ok(
    st.notes.some((n) => NOTE.test(n)),
    `a note says nothing captures (notes: ${JSON.stringify(st.notes)})`,
  );
});

t.test('a SOCKS proxy listening: no such note', async (t) => {
  const { client } = await adminWorld(
    t,
    { listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: 0 } },
    'gsa-status-capture-',
  );
  const st = client.status();
  t.notOk(
    st.notes.some((n) => NOTE.test(n)),
    `no "nothing captures" note (notes: ${JSON.stringify(st.notes)})`,
  );
});

t.test('TUN capture (a hostname table): no such note', async (t) => {
  const { client } = await adminWorld(t, { hostnames: () => [] }, 'gsa-status-capture-');
  t.notOk(
    client.status().notes.some((n) => NOTE.test(n)),
    'TUN counts as capturing',
  );
});

t.test('the commands the notes suggest carry the client flags', async (t) => {
  const { client } = await adminWorld(
    t,
    { commandFlags: ' --state-dir /tmp/elsewhere' },
    'gsa-status-capture-',
  );
  client.setVpn(false, 'settings');
  const note = client.status().notes.find((n) => /VPN is off/.test(n));
  t.match(note, /vpn on --state-dir \/tmp\/elsewhere`/, `the vpn note names the folder: ${note}`);
});
