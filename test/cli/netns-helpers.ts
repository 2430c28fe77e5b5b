/**
 * Two network namespaces joined by a veth pair, for CLI tests of an edge and a client on
 * two "machines" (root and iproute2 only; `netSkip` says which is missing). Each test
 * removes its namespaces in its teardown.
 */
import { spawnSync } from 'node:child_process';
import type { Test } from 'tap';
import { skip } from './cli-ux-helpers.js';

const isRoot = process.getuid?.() === 0;
const hasIp = process.platform === 'linux' && spawnSync('ip', ['-V']).status === 0;
const missing = [...(isRoot ? [] : ['root']), ...(hasIp ? [] : ['iproute2 (`ip`) on Linux'])].join(
  ' and ',
);
/** What a test that makes `what` (network namespaces) lacks here, in one line, or false. */
export const netMissing = (what: string): string | false =>
  skip || (missing ? `needs ${missing}: ${what}` : false);
export const netSkip = netMissing('two network namespaces');

export const ip = (...a: string[]) => spawnSync('ip', a, { encoding: 'utf8' });

/**
 * Namespaces `<base>a` (the edge, 10.112.0.1/24, fd12:112::1/64) and `<base>b` (clients,
 * 10.112.0.2/24 on the link `<tag>b`), joined by the veth pair `<tag>a` / `<tag>b`.
 */
export function twoNamespaces(t: Test, base: string, tag: string): { a: string; b: string } {
  const a = `${base}a`;
  const b = `${base}b`;
  for (const ns of [a, b]) {
    ip('netns', 'del', ns); // left by a killed run of a process with this pid
    if (ip('netns', 'add', ns).status !== 0) throw new Error(`ip netns add ${ns}`);
    t.teardown(() => {
      ip('netns', 'del', ns);
    });
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
  const steps: string[][] = [
    ['link', 'add', `${tag}a`, 'type', 'veth', 'peer', 'name', `${tag}b`],
    ['link', 'set', `${tag}a`, 'netns', a],
    ['link', 'set', `${tag}b`, 'netns', b],
    ['-n', a, 'addr', 'add', '10.112.0.1/24', 'dev', `${tag}a`],
    ['-n', b, 'addr', 'add', '10.112.0.2/24', 'dev', `${tag}b`],
    ['-n', a, 'link', 'set', `${tag}a`, 'up'],
    ['-n', b, 'link', 'set', `${tag}b`, 'up'],
  ];
  for (const s of steps) {
    const r = ip(...s);
    if (r.status !== 0) throw new Error(`ip ${s.join(' ')}: ${r.stderr}`);
  }
  // IPv6 (a unique-local address; the link-local fe80:: one comes by itself) where enabled.
  ip('-n', a, 'addr', 'add', 'fd12:112::1/64', 'dev', `${tag}a`, 'nodad');
  ip('-n', b, 'addr', 'add', 'fd12:112::2/64', 'dev', `${tag}b`, 'nodad');
  return { a, b };
}
