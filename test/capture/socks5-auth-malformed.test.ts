/**
 * RFC 1929 section 2: a username/password request the server cannot accept gets a failure
 * status (VER 1, STATUS 1), then the server closes. An empty username (ULEN 0) or another
 * subnegotiation version than 1 used to be closed without an answer, which clients report
 * as a broken proxy ("connection to proxy closed") instead of rejected credentials.
 * `gsa-emu up --user ''` is refused: no SOCKS5 client could log in with an empty name; so
 * is a password over 255 bytes, which RFC 1929's one-byte PLEN cannot carry, and an empty
 * one (RFC 1929: 1 to 255 bytes), which would leave a non-loopback proxy open to anyone
 * who guesses the user name.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Socks5Parser } from '../../src/capture/socks5.js';
import { up } from '../../src/cli/commands/up.js';
import { hex, rawClient, startSocks } from './helpers.js';

t.test('parser: a malformed auth request is invalid with status 0x01', async (t) => {
  for (const [what, bytes] of [
    ['empty username', '01 00 06 733363726574'],
    ['version 5', '05 05 616c696365 06 733363726574'],
  ] as const) {
    const p = new Socks5Parser();
    p.state = 'auth';
    p.push(hex(bytes));
    t.match(p.next(), { type: 'invalid', reply: 0x01 }, what);
  }
});

t.test('RFC 1929: malformed credentials get a failure status, then close', async (t) => {
  const { port } = await startSocks(t, {
    socks: { auth: { username: 'alice', password: 's3cret' } },
  });
  const cases: Array<[string, Buffer]> = [
    ['empty username (ULEN 0)', hex('01 00 06 733363726574')],
    ['subnegotiation version 5', hex('05 05 616c696365 06 733363726574')],
  ];
  for (const [what, auth] of cases) {
    const c = await rawClient(t, port, [hex('05 01 02'), auth]);
    t.ok(await c.ended(), `${what}: ended by the server`);
    t.same(c.data().toString('hex'), '05020101', `${what}: method 0x02, then status 0x01`);
  }
});

t.test("up --user '' is a usage error", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-socks5-auth-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const base = { stateDir: dir, socksPort: '0', httpPort: '0', tty: false, once: true };
  for (const user of ['', 'u'.repeat(256)]) {
    await t.rejects(
      up({ ...base, user, password: 'secret' }),
      { name: 'UsageError', message: '--user: give a name of 1 to 255 bytes' },
      `--user of ${user.length} bytes`,
    );
  }
});

t.test('up --password of more than 255 bytes is a usage error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-socks5-auth-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const base = { stateDir: dir, socksPort: '0', httpPort: '0', tty: false, once: true };
  for (const password of ['p'.repeat(256), '\u00e9'.repeat(128)]) {
    await t.rejects(
      up({ ...base, user: 'alice', password }),
      {
        name: 'UsageError',
        message: '--password: give at most 255 bytes (SOCKS5 cannot send more)',
      },
      `--password of ${Buffer.byteLength(password)} bytes`,
    );
  }
});

t.test("up --password '' is a usage error", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-socks5-auth-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const base = { stateDir: dir, socksPort: '0', httpPort: '0', tty: false, once: true };
  for (const host of ['127.0.0.1', '0.0.0.0']) {
    await t.rejects(
      up({ ...base, host, user: 'alice', password: '' }),
      {
        name: 'UsageError',
        message: '--password: give 1 to 255 bytes (RFC 1929); an empty password protects nothing',
      },
      `--host ${host}`,
    );
  }
});
