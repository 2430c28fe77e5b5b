/**
 * `AdminApi.serveFd`: the admin API served on a second listening socket, as a `gsa-emu
 * netns` run serves it inside its namespace at the same 127.0.0.1:port. Here the second
 * socket is 127.0.0.2:<free port> in this namespace, made by the addon as the run makes it
 * (`listenTcp4InNetns`), and requests name the API's own address in Host, as they do in the
 * namespace. The same checks apply on it (token, Host), and closing the API closes it.
 *
 * Needs the native addon (skipped otherwise). Everything listens on loopback and is closed.
 */
import t from 'tap';
import { addonUnavailable, listenTcp4InNetns } from '../../src/capture/tun/device.js';
import { freePort } from '../util/free-port.js';
import { rawHead } from '../util/http-calls.js';
import { adminWorld } from './helpers.js';

// What is missing here (tap shows it on the skipped test), or false.
const skip = addonUnavailable() ?? false;

/** HEAD /status on 127.0.0.2:port with the given Host and token: the status code. */
const status = (port: number, host: string, token: string | null): Promise<number> =>
  rawHead(
    `http://127.0.0.2:${port}`,
    '/status',
    token ? `authorization: Bearer ${token}\r\n` : '',
    host,
  ).then((r) => r.status);

t.test('a second listener serves the same API, with the same checks', { skip }, async (t) => {
  const { client } = await adminWorld(t, {}, 'gsa-admin-fd-');
  const admin = client.admin!;
  const token = admin.token!;
  const own = `127.0.0.1:${admin.address.port}`;
  const port = await freePort('127.0.0.2');
  await admin.serveFd(listenTcp4InNetns(null, '127.0.0.2', port, 16));
  t.equal(await status(port, own, token), 200, 'served, with the token');
  t.equal(await status(port, own, null), 401, 'the token is still needed');
  t.equal(await status(port, `evil.example:${admin.address.port}`, token), 403, 'Host checked');
  // The API alone (the client's own close, in the teardown, closes it again: a no-op).
  await admin.close();
  const refused = await status(port, own, token).then(
    () => null,
    (e: NodeJS.ErrnoException) => e.code,
  );
  t.equal(refused, 'ECONNREFUSED', 'closed with the API');
  await t.rejects(admin.serveFd(0), /closed/, 'no new listener once closed');
});
