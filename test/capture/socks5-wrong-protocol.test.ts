/**
 * A client of another protocol on the SOCKS5 port is told so before the connection closes,
 * rather than seeing it close with nothing: an HTTP request (`curl -x 127.0.0.1:1080 URL`,
 * where curl takes a proxy without a scheme for an HTTP proxy: "Empty reply from server")
 * gets a 400 saying this is the SOCKS5 port, a SOCKS4 client SOCKS4's "request rejected"
 * (curl: "connection to proxy closed"). Other bytes still close at once. Loopback only.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import t from 'tap';
import { WRONG_PROTOCOL_TEXT } from '../../src/capture/socks5.js';
import { hex, startSocks } from './helpers.js';

/** Everything the server sends to `data` until it closes the connection. */
async function answer(port: number, data: Buffer): Promise<Buffer> {
  const s = connect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  const got: Buffer[] = [];
  s.on('data', (c: Buffer) => got.push(c));
  await once(s, 'connect');
  s.write(data);
  await once(s, 'close');
  return Buffer.concat(got);
}

t.test('an HTTP proxy request on the SOCKS5 port gets a 400 naming the port', async (t) => {
  const { server, port } = await startSocks(t);
  for (const req of [
    'GET http://intranet.contoso.test/ HTTP/1.1\r\nHost: intranet.contoso.test\r\n\r\n',
    'CONNECT outlook.office365.com:443 HTTP/1.1\r\nHost: outlook.office365.com:443\r\n\r\n',
  ]) {
    const text = (await answer(port, Buffer.from(req))).toString();
    t.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/, req.split(' ')[0]);
    t.match(text, /\r\nconnection: close\r\n/);
    const body = text.slice(text.indexOf('\r\n\r\n') + 4);
    t.equal(body, WRONG_PROTOCOL_TEXT);
    t.match(text, new RegExp(`content-length: ${Buffer.byteLength(body)}\r\n`));
    t.match(body, /SOCKS5 proxy.*socks5h:\/\//);
  }
  t.equal(server.stats.failed, 2, 'each counted as a failed handshake');
});

t.test('a SOCKS4 request gets SOCKS4 "request rejected" (91)', async (t) => {
  const { port } = await startSocks(t);
  // SOCKS4 CONNECT 127.0.0.1:80, user id "u"; and SOCKS4a (0.0.0.1 and a name).
  const v4 = hex('04 01 0050 7f000001 75 00');
  const v4a = Buffer.concat([hex('04 01 0050 00000001 00'), Buffer.from('intranet.test\0')]);
  for (const req of [v4, v4a]) t.same(await answer(port, req), hex('00 5b 0000 00000000'));
});

t.test('other bytes still close without an answer', async (t) => {
  const { port } = await startSocks(t);
  t.equal((await answer(port, hex('16 0301 0005'))).length, 0, 'a TLS record');
  t.equal((await answer(port, hex('00 01'))).length, 0);
});
