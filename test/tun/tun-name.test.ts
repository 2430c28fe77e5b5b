/**
 * `--tun-name` values (`tunNameProblem`): the kernel's rules for interface names (1 to 15
 * bytes, no '/', ':' or whitespace, not "." or ".."), and an existing interface that is not
 * a TUN device. No root needed: nothing is created (`ip link show` only).
 */
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { tunNameProblem } from '../../src/client/tun-host.js';

t.test('names the kernel takes', async (t) => {
  for (const name of ['gsa0', 'a', 'gsa-emu_tun.1', '0123456789abcde', 'tün0']) {
    t.equal(tunNameProblem(name, false), null, name);
  }
});

t.test('names the kernel refuses or would cut short', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['', /1 to 15 bytes \(not 0\)/],
    ['0123456789abcdef', /1 to 15 bytes \(not 16\)/],
    // 15 characters, 16 bytes: the limit is in bytes.
    ['tün34567890abcd', /1 to 15 bytes \(not 16\)/],
    ['.', /not an interface name/],
    ['..', /not an interface name/],
    ['bad/name', /no '\/', ':' or whitespace/],
    ['a:b', /no '\/', ':' or whitespace/],
    ['a b', /no '\/', ':' or whitespace/],
    ['a\tb', /no '\/', ':' or whitespace/],
    ['a\nb', /no '\/', ':' or whitespace/],
    ['a\0b', /no '\/', ':' or whitespace/],
  ];
  for (const [name, why] of cases) {
    t.match(tunNameProblem(name, false), why, JSON.stringify(name));
    t.match(
      tunNameProblem(name),
      why,
      `${JSON.stringify(name)} (with the existing-interface check)`,
    );
  }
});

const HAS_IP =
  process.platform === 'linux' && spawnSync('ip', ['-j', 'link', 'show', 'dev', 'lo']).status === 0;

t.test(
  'an existing interface that is not a TUN device',
  { skip: HAS_IP ? false : 'needs Linux and `ip -j`' },
  async (t) => {
    t.match(tunNameProblem('lo'), /^lo is an existing interface \(loopback\), not a TUN device/);
    t.equal(tunNameProblem('lo', false), null, 'not checked without `existing`');
    t.equal(tunNameProblem('gsanone9x7'), null, 'a name no interface has');
  },
);
