/**
 * An edge on every address (edge/machine-names.ts, docs/decisions/edge-wildcard-names.md):
 * which of this machine's addresses and names its certificate holds, and the URL its banner
 * prints (cli/commands/edge.ts wildcardUrl), from given interface lists.
 */
import type { NetworkInterfaceInfo } from 'node:os';
import t from 'tap';
import { wildcardUrl } from '../../src/cli/commands/edge.js';
import { clientUrlHost, isWildcardHost, machineNames } from '../../src/edge/machine-names.js';

const iface = (address: string, internal = false): NetworkInterfaceInfo =>
  ({
    address,
    family: address.includes(':') ? 'IPv6' : 'IPv4',
    internal,
    netmask: '',
    mac: '00:00:00:00:00:00',
    cidr: null,
    ...(address.includes(':') ? { scopeid: 0 } : {}),
  }) as NetworkInterfaceInfo;

const LAB = {
  lo: [iface('127.0.0.1', true), iface('::1', true)],
  eth0: [
    iface('192.168.7.20'),
    iface('fe80::1c2:3ff:fe04:506'),
    iface('2001:db8:0:0:0:0:0:20'),
    iface('169.254.3.4'),
  ],
  eth1: [iface('10.9.0.5'), iface('fd00::5'), iface('192.168.7.20')],
};

t.test('isWildcardHost: 0.0.0.0 and :: in any spelling', async (t) => {
  for (const h of ['0.0.0.0', '::', '0:0:0:0:0:0:0:0', '::0']) t.ok(isWildcardHost(h), h);
  for (const h of ['127.0.0.1', '::1', '10.0.0.1', 'localhost', '0.0.0.1']) {
    t.notOk(isWildcardHost(h), h);
  }
});

t.test('machineNames: the addresses it answers on, then the host name', async (t) => {
  t.same(
    machineNames('0.0.0.0', LAB, 'lab1'),
    ['192.168.7.20', '10.9.0.5', 'lab1'],
    '0.0.0.0: IPv4 only; no loopback, no link-local, each once',
  );
  t.same(
    machineNames('::', LAB, 'Lab1.Team.Test.'),
    ['192.168.7.20', '10.9.0.5', '2001:db8::20', 'fd00::5', 'lab1.team.test'],
    ':: (dual-stack): IPv4 then IPv6, in short form; no fe80::',
  );
  t.same(machineNames('127.0.0.1', LAB, 'lab1'), [], 'not a wildcard: none');
  t.same(machineNames('10.9.0.5', LAB, 'lab1'), [], 'an address of its own: none');
  t.same(machineNames('0.0.0.0', LAB, 'my_host'), ['192.168.7.20', '10.9.0.5'], 'no "_" name');
  t.same(machineNames('0.0.0.0', LAB, 'localhost'), ['192.168.7.20', '10.9.0.5']);
  t.same(machineNames('0.0.0.0', { lo: LAB.lo }, 'lab1'), ['lab1'], 'loopback only: the name');
});

t.test('clientUrlHost: the first --hostname, else the first address', async (t) => {
  t.equal(clientUrlHost(['edge.team.test'], ['10.9.0.5']), 'edge.team.test');
  t.equal(clientUrlHost(['*.team.test', 'edge.team.test'], []), 'edge.team.test', 'not *.');
  t.equal(clientUrlHost(['2001:db8::9'], []), '[2001:db8::9]', 'IPv6 in brackets');
  t.equal(clientUrlHost([], ['lab1', '10.9.0.5']), '10.9.0.5', 'an address, not the name');
  t.equal(clientUrlHost([], ['fd00::5']), '[fd00::5]');
  t.equal(clientUrlHost(['*.team.test'], ['lab1']), null, 'nothing a client can dial');
});

t.test('wildcardUrl: the banner of an edge on every address', async (t) => {
  const edge = {
    url: 'https://0.0.0.0:8443',
    host: '0.0.0.0',
    port: 8443,
    caPem: 'PEM',
    machineNames: ['192.168.7.20', 'lab1'],
  };
  const w = wildcardUrl(edge, []);
  t.equal(w.listening, 'all IPv4 addresses, port 8443');
  t.equal(w.url, 'https://192.168.7.20:8443');
  t.same(w.lines, [
    '  URL         https://192.168.7.20:8443',
    '  names       192.168.7.20, lab1 (its certificate holds each: any may stand in the URL; --hostname <name> adds one)',
  ]);
  const named = wildcardUrl({ ...edge, host: '::', caPem: null }, ['edge.team.test']);
  t.equal(named.listening, 'all IPv4 and IPv6 addresses, port 8443');
  t.equal(named.url, 'http://edge.team.test:8443', 'no TLS: http; the --hostname first');
  t.match(named.lines[1], /^ {2}names {7}edge\.team\.test, 192\.168\.7\.20, lab1 \(any may/);
  const alone = wildcardUrl({ ...edge, machineNames: ['lab1'] }, []);
  t.equal(alone.url, 'https://127.0.0.1:8443', 'no address beyond loopback: loopback, said so');
  t.match(alone.lines[0], /this machine only: .* --hostname <name>/);
  t.equal(wildcardUrl({ ...edge, host: '::', machineNames: [] }, []).url, 'https://[::1]:8443');
});
