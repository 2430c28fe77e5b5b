/**
 * `gsa-emu up`'s option checks: values that cannot run are usage errors before anything
 * starts (a bad edge URL used to leave the proxies listening and `up` hanging), and
 * commander's defaults do not override the config file.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { up } from '../../src/cli/commands/up.js';
import { hostOption } from '../../src/cli/common.js';
import { edgeUrlOf, startClient } from '../../src/client/client.js';
import { UsageError } from '../../src/errors.js';

const dir = await mkdtemp(join(tmpdir(), 'gsa-up-options-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

t.test('values that cannot run are usage errors naming the flag', async (t) => {
  // once: were a value taken, up() would print its banner (to nowhere) and end.
  const base = { stateDir: dir, socksPort: '0', httpPort: '0', tty: false, once: true };
  const sink = { write: () => true } as unknown as NodeJS.WritableStream;
  for (const [opts, message] of [
    [{ edge: 'notaurl' }, /^--edge "notaurl" is not an http\(s\) URL/],
    [{ edge: 'ftp://127.0.0.1:1' }, /^--edge "ftp:\/\/127\.0\.0\.1:1" is not an http\(s\) URL/],
    // A path would prefix every request (and be taken for a tenant id); a query or a
    // fragment would be lost: the edge URL is https://host:port.
    [
      { edge: 'https://127.0.0.1:1/gsa' },
      /^--edge "https:\/\/127\.0\.0\.1:1\/gsa" has a path \(\/gsa\): the edge URL is https:\/\/host:port/,
    ],
    [{ edge: 'https://127.0.0.1:1/?a=1' }, /^--edge "https:\/\/127\.0\.0\.1:1\/\?a=1" has a query/],
    [{ edge: 'https://127.0.0.1:1?' }, /has a query: the edge URL is https:\/\/host:port/],
    [{ edge: 'https://127.0.0.1:1#x' }, /has a fragment: the edge URL is https:\/\/host:port/],
    // Credentials: fetch refuses such a URL; the password is not repeated.
    [
      { edge: 'https://bob:s3cret@127.0.0.1:1' },
      /^--edge \(https:\/\/\.\.\.@127\.0\.0\.1:1\) has a user name or password: the edge URL is https:\/\/host:port(?![\s\S]*s3cret)/,
    ],
    [
      { profilePoll: 'abc' },
      /^--profile-poll "abc" is not a whole number of milliseconds from 100 to 2147483000$/,
    ],
    [{ profilePoll: '0' }, /^--profile-poll "0"/],
    // Number() takes these: "" and " " as 0 (--exit-after "": stop at once), hex, exponents.
    [{ exitAfter: '' }, /^--exit-after "" is not a number of seconds from 0 to 2147483$/],
    [{ exitAfter: ' ' }, /^--exit-after " "/],
    [{ exitAfter: '0x10' }, /^--exit-after "0x10"/],
    [{ exitAfter: '1e3' }, /^--exit-after "1e3"/],
    [{ profilePoll: ' 1e3' }, /^--profile-poll " 1e3"/],
    [{ profilePoll: '0x100' }, /^--profile-poll "0x100"/],
    [{ profilePoll: '150.5' }, /^--profile-poll "150\.5" is not a whole number/],
    [
      { exitAfter: '3000000' },
      /^--exit-after "3000000" is not a number of seconds from 0 to 2147483$/,
    ],
    [{ exitAfter: 'Infinity' }, /^--exit-after "Infinity"/],
    [
      { logLevel: 'bogus' },
      /^--log-level "bogus": use trace, debug, info, warn, error, fatal, silent$/,
    ],
    // An address with its port, or not an address: said of --host, not of the listeners.
    [
      { host: '127.0.0.1:80' },
      /^--host "127\.0\.0\.1:80": not an IPv4 or IPv6 address or a host name; a port goes in its own option \(--socks-port, --http-port\)$/,
    ],
    [{ host: '[::1]:1080' }, /^--host "\[::1\]:1080": .*a port goes in its own option/],
    [
      { host: 'not an address' },
      /^--host "not an address": not an IPv4 or IPv6 address or a host name$/,
    ],
    [{ host: '' }, /^--host "": not/],
    // The PAC file points at the proxies: with both off it would be dropped silently.
    [
      { socksPort: 'off', httpPort: 'off', pacPort: '0' },
      /^--pac-port 0: the PAC file sends browsers to the proxies, and both are off \(--socks-port off, --http-port off\)$/,
    ],
  ] as const) {
    await t.rejects(
      up({ ...base, ...opts }, sink),
      { name: 'UsageError', message },
      JSON.stringify(opts),
    );
  }
});

t.test('the client refuses a bad edge URL before anything listens', async (t) => {
  t.throws(() => edgeUrlOf('notaurl'), UsageError);
  t.equal(edgeUrlOf('https://127.0.0.1:8443').port, '8443');
  t.equal(edgeUrlOf('https://127.0.0.1:8443/').port, '8443', 'a bare / is the root');
  t.throws(() => edgeUrlOf('https://127.0.0.1:8443/gsa'), { code: 'GSA_ERR_USAGE' });
  const handles = (): number =>
    (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
  const before = handles();
  await t.rejects(
    startClient({
      edge: { url: 'notaurl' },
      tenant: 'default',
      listen: { socksPort: 0, httpPort: 0, pacPort: 0, adminPort: 0 },
    }),
    { code: 'GSA_ERR_USAGE', message: /the edge URL "notaurl" is not an http\(s\) URL/ },
  );
  t.equal(handles(), before, 'no listener left behind');
});

t.test('netns and up share the log level check (before the lock is taken)', async (t) => {
  const { startWorld } = await import('../../src/cli/world.js');
  await t.rejects(startWorld({ run: 'netns', stateDir: dir, logLevel: 'loud', listen: {} }), {
    name: 'UsageError',
    message: /^--log-level "loud": use trace, debug, info, warn, error, fatal, silent$/,
  });
});

t.test('--host takes addresses and host names as they are', async (t) => {
  for (const [v, want] of [
    ['127.0.0.1', '127.0.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['::1', '::1'],
    ['[::1]', '::1'],
    ['::', '::'],
    ['fe80::1%lo', 'fe80::1%lo'],
    ['localhost', 'localhost'],
    ['proxy.lab.test', 'proxy.lab.test'],
    ['proxy.lab.test.', 'proxy.lab.test.'],
  ]) {
    t.equal(hostOption(v!), want, v);
  }
  t.throws(() => hostOption('a..b'), UsageError, 'an empty label');
  t.throws(() => hostOption(`${'a'.repeat(64)}.test`), UsageError, 'a label over 63');
  t.throws(() => hostOption('127.0.0.1:80', '--host', '--port'), {
    message: /a port goes in its own option \(--port\)/,
  });
});
