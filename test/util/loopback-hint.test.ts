/**
 * loopbackDownHint: an EADDRNOTAVAIL on a loopback address says `lo` is down only when the
 * network namespace has no loopback address; the CLI's error report adds it to errors that
 * carry the address (a UDP bind). Pure: the interfaces are given.
 */
import type { networkInterfaces } from 'node:os';
import t from 'tap';
import { loopbackDownHint } from '../../src/util/listen.js';

type Ifaces = ReturnType<typeof networkInterfaces>;
const lo: Ifaces = {
  lo: [
    {
      address: '127.0.0.1',
      netmask: '255.0.0.0',
      family: 'IPv4',
      mac: '00:00:00:00:00:00',
      internal: true,
      cidr: '127.0.0.1/8',
    },
  ],
};
const eth: Ifaces = {
  eth0: [
    {
      address: '10.0.0.5',
      netmask: '255.255.255.0',
      family: 'IPv4',
      mac: '02:00:00:00:00:01',
      internal: false,
      cidr: '10.0.0.5/24',
    },
  ],
};

t.test('no loopback address up: the hint names the fix', async (t) => {
  t.match(loopbackDownHint('127.0.0.1', {}), /`ip link set lo up`/);
  t.match(loopbackDownHint('127.0.0.3', eth), /no loopback address up/);
  t.match(loopbackDownHint('::1', lo), /`lo` is down/, '::1 needs ::1, not 127.0.0.1');
});

t.test('loopback up, or not a loopback address: no hint', async (t) => {
  t.equal(loopbackDownHint('127.0.0.1', lo), null);
  t.equal(loopbackDownHint('127.0.0.2', lo), null, 'all of 127/8 is on lo');
  t.equal(loopbackDownHint('192.0.2.1', {}), null);
  t.equal(loopbackDownHint('localhost', {}), null, 'a name is not an address');
  t.equal(loopbackDownHint('', {}), null);
});
