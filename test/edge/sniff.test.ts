/**
 * sniff.ts: the name in a flow's first bytes (TLS SNI from real node:tls ClientHellos, HTTP
 * Host), prefixes, records split in two, and fuzzing: never a throw, never a name that is not
 * a host name.
 */
import fc from 'fast-check';
import t from 'tap';
import { SNIFF_LIMIT, sniffName } from '../../src/edge/sniff.js';
import { isHostName } from '../../src/util/names.js';
import { clientHello } from './tls-hello.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Every proper prefix of `msg` gives 'more' or the whole's answer. */
function prefixesAgree(msg: Buffer): string[] {
  const whole = sniffName(msg);
  const bad: string[] = [];
  for (let i = 1; i < msg.length; i++) {
    const r = sniffName(msg.subarray(0, i));
    if (r !== 'more' && JSON.stringify(r) !== JSON.stringify(whole))
      bad.push(`${i}: ${JSON.stringify(r)}`);
  }
  return bad;
}

/** The handshake of a one-record ClientHello, re-framed as two records cut at `at`. */
function twoRecords(hello: Buffer, at: number): Buffer {
  const hs = hello.subarray(5);
  const rec = (body: Buffer): Buffer => {
    const h = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    h.writeUInt16BE(body.length, 3);
    return Buffer.concat([h, body]);
  };
  return Buffer.concat([rec(hs.subarray(0, at)), rec(hs.subarray(at))]);
}

t.test('TLS: the SNI of a real ClientHello, lowercased; none without one', async (t) => {
  const hello = await clientHello('WWW.Casino.test');
  t.same(sniffName(hello), { proto: 'tls', name: 'www.casino.test' });
  t.same(sniffName(await clientHello()), { proto: 'tls', name: null }, 'no SNI');
  t.same(prefixesAgree(hello), [], 'each prefix asks for more');
  t.equal(sniffName(hello.subarray(0, hello.length - 1)), 'more');
  // Bytes after the ClientHello (early data, the next record) change nothing.
  t.same(sniffName(Buffer.concat([hello, b('trailing bytes')])), {
    proto: 'tls',
    name: 'www.casino.test',
  });
});

t.test('TLS: a ClientHello split over two records', async (t) => {
  const hello = await clientHello('login.casino.test');
  for (const at of [1, 3, 4, 40, hello.length - 6]) {
    const two = twoRecords(hello, at);
    t.same(sniffName(two), { proto: 'tls', name: 'login.casino.test' }, `cut at ${at}`);
    t.same(prefixesAgree(two), [], `prefixes, cut at ${at}`);
  }
  // A second record that is not a handshake ends the search without a name.
  const cut = twoRecords(hello, 40);
  cut[5 + 40] = 0x17;
  t.same(sniffName(cut), { proto: 'tls', name: null });
});

t.test('TLS: what gives no name', async (t) => {
  const hello = await clientHello('www.casino.test');
  // An IP address or a bad name as the SNI: rewrite the name's bytes in place.
  const at = hello.indexOf(b('www.casino.test'));
  const with15 = (s: string): Buffer => {
    const h = Buffer.from(hello);
    b(s).copy(h, at);
    return h;
  };
  t.same(sniffName(with15('127.000.000.001')), { proto: 'tls', name: null }, 'address');
  t.same(sniffName(with15('bad name!.test.')), { proto: 'tls', name: null }, 'not a name');
  // Another handshake message first, and an alert record.
  const h = Buffer.from(hello);
  h[5] = 0x02;
  t.same(sniffName(h), { proto: 'tls', name: null }, 'ServerHello');
  t.same(sniffName(Buffer.from([0x15, 0x03, 0x03, 0, 2, 2, 40])), { proto: 'other', name: null });
  t.same(sniffName(Buffer.from([0x16, 0x02, 0, 0, 0])), { proto: 'other', name: null });
  t.same(sniffName(Buffer.from([0x16, 0x03, 0x01, 0, 0])), { proto: 'other', name: null });
  // A record over 16 KiB is not TLS; a ClientHello over SNIFF_LIMIT gives up.
  t.same(sniffName(Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01])), { proto: 'other', name: null });
  const huge = Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x01, 0x00, 0x00]);
  t.same(sniffName(huge), { proto: 'tls', name: null });
  t.equal(sniffName(Buffer.from([0x16])), 'more');
  t.equal(sniffName(Buffer.alloc(0)), 'more');
});

t.test('HTTP: Host, absolute-form targets, ports, and what gives no name', async (t) => {
  const http = (name: string | null) => ({ proto: 'http', name });
  t.same(
    sniffName(b('GET / HTTP/1.1\r\nUser-Agent: x\r\nHost: Casino.Test:8080\r\n\r\n')),
    http('casino.test'),
  );
  t.same(
    sniffName(b('POST /f HTTP/1.1\r\nhost:casino.test.\r\n')),
    http('casino.test'),
    'no space, dot',
  );
  t.same(
    sniffName(b('GET http://u@www.casino.test:81/x HTTP/1.1\r\nHost: other.test\r\n')),
    http('www.casino.test'),
    'absolute form wins',
  );
  t.same(sniffName(b('GET / HTTP/1.0\r\n\r\n')), http(null), 'no Host');
  t.same(sniffName(b('GET / HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n')), http(null), 'address');
  t.same(sniffName(b('GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n')), http(null), 'IPv6 literal');
  t.same(
    sniffName(b('GET / HTTP/1.1\r\nX-Host: casino.test\r\n\r\n')),
    http(null),
    'not the Host header',
  );
  t.same(prefixesAgree(b('OPTIONS * HTTP/1.1\r\nHost: casino.test\r\n\r\n')), []);
  for (const m of ['G', 'GE', 'GET', 'OPTIONS', 'GET /', 'GET / HTTP/1.1\r\nHo']) {
    t.equal(sniffName(b(m)), 'more', JSON.stringify(m));
  }
  const head = b(`GET / HTTP/1.1\r\nX: ${'a'.repeat(SNIFF_LIMIT)}`);
  t.same(sniffName(head), http(null), 'a head longer than the limit');
});

t.test('other protocols are told at once', async (t) => {
  for (const m of [
    'SSH-2.0-OpenSSH_9.6\r\n',
    'EHLO x\r\n',
    'ping',
    'PING',
    'HELLO',
    'get / HTTP/1.1\r\n',
    'GETS / x',
  ]) {
    t.same(sniffName(b(m)), { proto: 'other', name: null }, JSON.stringify(m));
  }
  t.same(sniffName(Buffer.from([0xff, 0xfd, 0x18])), { proto: 'other', name: null }, 'telnet');
});

t.test('fuzz: random and mutated input never throws and names only host names', async (t) => {
  const hello = await clientHello('www.casino.test');
  const ok = (r: ReturnType<typeof sniffName>): boolean =>
    r === 'more' ||
    (['tls', 'http', 'other'].includes(r.proto) && (r.name === null || isHostName(r.name)));
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => ok(sniffName(bytes))),
    { numRuns: 3000 },
  );
  // Random bytes behind a TLS record header and behind a method.
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 600 }),
      fc.integer({ min: 0, max: 0xffff }),
      (body, len) => {
        const h = Buffer.from([0x16, 0x03, 0x01, len >> 8, len & 0xff, 0x01]);
        return ok(sniffName(Buffer.concat([h, body])));
      },
    ),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 300 }), (s) => ok(sniffName(b(`GET ${s}`)))),
    { numRuns: 2000 },
  );
  // The real ClientHello with bytes changed: lengths that lie, cut names.
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(hello.length - 1), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 8,
      }),
      fc.nat(hello.length),
      (edits, cut) => {
        const h = Buffer.from(hello);
        for (const [i, v] of edits) h[i] = v;
        return ok(sniffName(h)) && ok(sniffName(h.subarray(0, cut)));
      },
    ),
    { numRuns: 5000 },
  );
  t.pass('no property failed');
});
