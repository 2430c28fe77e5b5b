/**
 * `gsa-emu up --password-file <file>` (and the config key `passwordFile`): the proxy
 * password read from a file, so that it is not on the command line, where `ps` and
 * /proc/<pid>/cmdline show it to every user of the machine. The file's one line is the
 * password as written (its line end dropped); what RFC 1929 cannot carry is a usage error
 * naming the flag, as with --password.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { readUpConfig, up } from '../../src/cli/commands/up.js';
import { skip, startHttpOnlyUp, tempRoot, viaHttpProxy } from './cli-ux-helpers.js';

const basic = (user: string, password: string) => ({
  'proxy-authorization': `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
});

t.test(
  'the file is read as the password; bad files and combinations are usage errors',
  async (t) => {
    const { root, newDir } = await tempRoot(t);
    const file = async (name: string, text: string) => {
      const f = join(root, name);
      await writeFile(f, text);
      return f;
    };
    const base = () => ({
      stateDir: newDir(),
      socksPort: '0',
      httpPort: '0',
      tty: false,
      once: true,
    });
    const good = await file('good', 'two words\n');
    const cases: Array<[string, Parameters<typeof up>[0], string]> = [
      [
        'no such file',
        { user: 'alice', passwordFile: join(root, 'missing') },
        `--password-file "${join(root, 'missing')}": cannot read it (ENOENT)`,
      ],
      [
        'a folder',
        { user: 'alice', passwordFile: root },
        `--password-file "${root}": cannot read it (EISDIR)`,
      ],
      [
        'two lines',
        { user: 'alice', passwordFile: await file('two', 'one\ntwo\n') },
        `--password-file "${join(root, 'two')}": give the password on one line`,
      ],
      [
        'an empty line',
        { user: 'alice', passwordFile: await file('empty', '\n') },
        '--password-file: give 1 to 255 bytes (RFC 1929); an empty password protects nothing',
      ],
      [
        'more than 255 bytes',
        { user: 'alice', passwordFile: await file('long', `${'p'.repeat(256)}\n`) },
        '--password-file: give at most 255 bytes (SOCKS5 cannot send more)',
      ],
      [
        'with --password',
        { user: 'alice', password: 'x', passwordFile: good },
        '--password and --password-file: give one of them',
      ],
      ['without --user', { passwordFile: good }, '--user and --password-file go together'],
    ];
    for (const [what, o, message] of cases) {
      await t.rejects(up({ ...base(), ...o }), { name: 'UsageError', message }, what);
    }
  },
);

t.test('config: passwordFile is a path relative to the config file', async (t) => {
  const { root } = await tempRoot(t);
  await mkdir(join(root, 'conf'));
  const conf = join(root, 'conf', 'up.json');
  await writeFile(conf, JSON.stringify({ user: 'alice', passwordFile: 'pw' }));
  t.same(readUpConfig(conf), { user: 'alice', passwordFile: join(root, 'conf', 'pw') });
});

t.test(
  'a running up takes the password from the file, and ps does not show it',
  { skip },
  async (t) => {
    const { root, newDir } = await tempRoot(t);
    const secret = 'from the file: s3cret';
    const pw = join(root, 'pw');
    await writeFile(pw, `${secret}\r\n`, { mode: 0o600 });
    // A config file's password is replaced by the flag's file: flags win, in either form.
    const conf = join(root, 'up.json');
    await writeFile(conf, JSON.stringify({ password: 'from the config' }));
    const dir = newDir();
    const run = await startHttpOnlyUp(t, dir, [
      '--config',
      conf,
      '--user',
      'alice',
      '--password-file',
      pw,
    ]);
    const url = 'http://intranet.contoso.test/';
    t.equal(await viaHttpProxy(run.http, url), 407, 'no credentials: 407');
    t.equal(
      await viaHttpProxy(run.http, url, basic('alice', 'from the config')),
      407,
      "the config file's password: 407",
    );
    t.equal(
      await viaHttpProxy(run.http, url, basic('alice', secret)),
      200,
      "the file's line: 200 from the private app",
    );
    if (process.platform === 'linux') {
      const cmdline = readFileSync(`/proc/${run.child.pid}/cmdline`, 'utf8');
      t.match(cmdline, '--password-file', 'the command line names the file');
      t.notMatch(cmdline, 's3cret', 'and not the password');
    }
    run.child.kill('SIGINT');
    t.equal((await run.done).code, 0, 'Ctrl+C: exit 0');
  },
);
