/**
 * sniff.ts: the name in a flow's first bytes (TLS SNI from real node:tls ClientHellos, HTTP
 * Host), prefixes, records split in two, and fuzzing: never a throw, never a name that is not
 * a host name.
 */
import fc from 'fast-check';
import t from 'tap';
import { SNIFF_LIMIT, Sniffer, sniffName } from '../../src/edge/sniff.js';
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

/** TLS records (type handshake) carrying `hs`, each at most `size` bytes of it. */
function records(hs: Buffer, size: number): Buffer {
  const out: Buffer[] = [];
  for (let at = 0; at < hs.length; at += size) {
    const body = hs.subarray(at, at + size);
    const h = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    h.writeUInt16BE(body.length, 3);
    out.push(h, body);
  }
  return Buffer.concat(out);
}

/** The handshake of a one-record ClientHello, re-framed as two records cut at `at`. */
function twoRecords(hello: Buffer, at: number): Buffer {
  const hs = hello.subarray(5);
  return Buffer.concat([records(hs.subarray(0, at), at), records(hs.subarray(at), hs.length)]);
}

/** A one-record ClientHello with a padding extension (21) of `n` bytes added last. */
function padded(hello: Buffer, n: number): Buffer {
  const hs = Buffer.from(hello.subarray(5));
  // type(1) length(3) version(2) random(32), session id, cipher suites, compression methods
  let p = 4 + 2 + 32;
  p += 1 + hs[p]!;
  p += 2 + hs.readUInt16BE(p);
  p += 1 + hs[p]!;
  const ext = Buffer.alloc(4 + n);
  ext.writeUInt16BE(21, 0);
  ext.writeUInt16BE(Math.min(n, 0xffff), 2);
  const out = Buffer.concat([hs, ext]);
  out.writeUInt16BE((hs.readUInt16BE(p) + ext.length) & 0xffff, p);
  out.writeUIntBE(out.length - 4, 1, 3);
  return records(out, 16 * 1024);
}

/** `msg` given to one Sniffer in pieces cut at `cuts`: its answer after the last piece. */
function inPieces(msg: Buffer, cuts: number[]): ReturnType<typeof sniffName> {
  const sn = new Sniffer();
  let r: ReturnType<typeof sniffName> = 'more';
  let at = 0;
  const ends = [...cuts.filter((c) => c > 0 && c < msg.length).sort((a, b) => a - b), msg.length];
  for (const c of ends) {
    r = sn.push(msg.subarray(at, c));
    at = c;
  }
  return r;
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

t.test('TLS: a ClientHello padded past one record, up to SNIFF_LIMIT', async (t) => {
  const hello = await clientHello('www.casino.test');
  for (const n of [100, 17_000, 60_000]) {
    const p = padded(hello, n);
    t.same(sniffName(p), { proto: 'tls', name: 'www.casino.test' }, `${n} bytes of padding`);
    t.same(inPieces(p, [7, 16 * 1024, 16 * 1024 + 9]), { proto: 'tls', name: 'www.casino.test' });
  }
  t.same(sniffName(padded(hello, 65_500)), { proto: 'tls', name: null }, 'past the limit');
});

t.test('TLS: empty handshake records are skipped, as OpenSSL skips them', async (t) => {
  const hello = await clientHello('www.casino.test');
  const empty = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
  const want = { proto: 'tls', name: 'www.casino.test' };
  t.same(sniffName(Buffer.concat([empty, empty, hello])), want, 'before');
  const two = twoRecords(hello, 40);
  const at = 5 + 40;
  t.same(sniffName(Buffer.concat([two.subarray(0, at), empty, two.subarray(at)])), want, 'between');
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
  t.equal(sniffName(Buffer.from([0x16, 0x03, 0x01, 0, 0])), 'more', 'an empty record is skipped');
  // A record over 16 KiB is not TLS; a ClientHello over SNIFF_LIMIT gives up.
  t.same(sniffName(Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01])), { proto: 'other', name: null });
  const huge = Buffer.alloc(5 + 16 * 1024);
  Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x01, 0x00, 0x04]).copy(huge);
  t.equal(SNIFF_LIMIT, 64 * 1024);
  t.same(sniffName(huge), { proto: 'tls', name: null }, 'a ClientHello longer than SNIFF_LIMIT');
  t.equal(sniffName(huge.subarray(0, 100)), 'more', 'whole records are read');
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
  t.same(
    sniffName(b('\r\n\nGET / HTTP/1.1\r\nHost: casino.test\r\n\r\n')),
    http('casino.test'),
    'blank lines first',
  );
  t.same(
    sniffName(b('PROPFIND /d HTTP/1.1\nHost: casino.test\n\n')),
    http('casino.test'),
    'any method',
  );
  t.same(
    sniffName(b('CONNECT casino.test:443 HTTP/1.1\r\nHost: other.test\r\n\r\n')),
    http('casino.test'),
    'CONNECT authority',
  );
  t.same(
    sniffName(
      b('GET / HTTP/1.1\r\nHost: news.test\r\n\r\nGET / HTTP/1.1\r\nHost: casino.test\r\n\r\n'),
    ),
    http('news.test'),
    'the first request only',
  );
  // As HTTP servers read request lines (Node's http server answers every one of these).
  for (const line of [
    'GET  / HTTP/1.1',
    'GET /  HTTP/1.1',
    'GET /\tHTTP/1.1',
    'GET /',
    'GET / HTTP/2.0',
    'GET / HTTP/1.10',
  ]) {
    t.same(
      sniffName(b(`${line}\r\nHost: casino.test\r\n\r\n`)),
      http('casino.test'),
      JSON.stringify(line),
    );
  }
  for (const target of ['http://6.6.254.12/', 'http:///x', 'http://[::1]/']) {
    t.same(
      sniffName(b(`GET ${target} HTTP/1.1\r\nHost: casino.test\r\n\r\n`)),
      http('casino.test'),
      `${target}: an authority that is no name leaves the Host`,
    );
  }
  t.same(
    sniffName(b('CONNECT 6.6.254.12:443 HTTP/1.1\r\nHost: casino.test:443\r\n\r\n')),
    http('casino.test'),
  );
  t.same(prefixesAgree(b('OPTIONS * HTTP/1.1\r\nHost: casino.test\r\n\r\n')), []);
  t.same(prefixesAgree(b('\r\nPROPFIND / HTTP/1.1\r\nHost: casino.test\r\n\r\n')), []);
  for (const m of [
    'G',
    'GE',
    'GET',
    'OPTIONS',
    'GET /',
    'GET / HTTP/1.1\r\nHo',
    '\r\n',
    'PROPFIND',
    'GETS / x',
  ]) {
    t.equal(sniffName(b(m)), 'more', JSON.stringify(m));
  }
  const head = b(`GET / HTTP/1.1\r\nX: ${'a'.repeat(SNIFF_LIMIT)}`);
  t.same(sniffName(head), http(null), 'a head longer than the limit');
});

t.test('other protocols are told at once', async (t) => {
  for (const m of [
    'SSH-2.0-OpenSSH_9.6\r\n',
    'EHLO x\r\n',
    'PING\r\n',
    'GET mykey\r\n', // Redis inline
    'GETS / x\r\n',
    'GET / x y\r\n',
    '0 \x02\x01\x03', // an LDAP bind: BER bytes after "0 "
    'A \x00',
    'GET /\rx',
    ' GET / HTTP/1.1\r\n',
    `${'A'.repeat(40)} / HTTP/1.1\r\n`,
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
  // Cut anywhere, a message gives one Sniffer the answer it gives whole.
  const msgs = [
    hello,
    twoRecords(hello, 40),
    padded(hello, 20_000),
    b('\r\nPOST /x HTTP/1.1\r\nA: b\r\nHost: casino.test:80\r\n\r\nbody'),
    b('GET http://www.casino.test/ HTTP/1.1\r\n\r\n'),
    b('SSH-2.0-x\r\n'),
  ];
  fc.assert(
    fc.property(
      fc.constantFrom(...msgs),
      fc.array(fc.nat(25_000), { maxLength: 12 }),
      (m, cuts) => JSON.stringify(inPieces(m, cuts)) === JSON.stringify(sniffName(m)),
    ),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 400 }),
      fc.array(fc.nat(400), { maxLength: 6 }),
      (m, cuts) => {
        const bytes = Buffer.from(m);
        return JSON.stringify(inPieces(bytes, cuts)) === JSON.stringify(sniffName(bytes));
      },
    ),
    { numRuns: 3000 },
  );
  t.pass('no property failed');
});
