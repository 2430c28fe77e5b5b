/**
 * DNS over TCP (RFC 7766) as the TUN's synthetic resolver serves it: DnsInterceptor.serveTcp
 * on loopback sockets, with a slow UDP upstream so that queries wait.
 */
import net from 'node:net';
import dnsPacket from 'dns-packet';
import t, { type Test } from 'tap';
import { DnsInterceptor } from '../../src/capture/tun/dns.js';
import { dnsTcpFrame, dnsUpstream } from './helpers.js';

/** A DnsInterceptor serving TCP on 127.0.0.1, its upstream answering after `delayMs`. */
async function serve(
  t: Test,
  delayMs: number,
  tcpAcquires?: boolean,
): Promise<{ port: number; dns: DnsInterceptor }> {
  const upstream = await dnsUpstream(t, () => '192.0.2.9', delayMs);
  const dns = new DnsInterceptor({
    acquire: (n) => n === 'app.contoso.test',
    upstream: { host: '127.0.0.1', port: upstream.port },
    resolveOriginal: false,
    ...(tcpAcquires !== undefined ? { tcpAcquires } : {}),
  });
  t.teardown(() => dns.close());
  // Half-open, as the TUN stack's listener: answers still go out after the query side ends.
  const server = net.createServer({ allowHalfOpen: true }, (s) => dns.serveTcp(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as net.AddressInfo).port, dns };
}

/** Send `data`, half-close, collect the framed answers until the server ends (bounded). */
function exchange(port: number, data: Buffer): Promise<{ answers: Buffer[]; closed: string }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let b = Buffer.alloc(0);
    const answers: Buffer[] = [];
    const timer = setTimeout(() => s.destroy(), 5000);
    s.on('connect', () => s.end(data));
    s.on('data', (d) => {
      b = Buffer.concat([b, d]);
      while (b.length >= 2 && b.length >= 2 + b.readUInt16BE(0)) {
        answers.push(b.subarray(2, 2 + b.readUInt16BE(0)));
        b = b.subarray(2 + b.readUInt16BE(0));
      }
    });
    let how = 'end';
    s.on('error', (e: NodeJS.ErrnoException) => (how = e.code ?? 'error'));
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ answers, closed: how });
    });
  });
}

t.test('40 pipelined queries, more than may wait at once: every one answered', async (t) => {
  const { port, dns } = await serve(t, 30);
  const parts: Buffer[] = [];
  for (let i = 0; i < 40; i++)
    parts.push(dnsTcpFrame(100 + i, i % 2 ? 'app.contoso.test' : `h${i}.test`));
  const { answers, closed } = await exchange(port, Buffer.concat(parts));
  t.equal(closed, 'end', 'the server ends after the last answer of a half-closed connection');
  t.equal(answers.length, 40);
  const ids = answers.map((a) => dnsPacket.decode(a).id).sort((x, y) => x! - y!);
  t.same(
    ids,
    parts.map((_, i) => 100 + i),
    'one answer per query id',
  );
  for (const a of answers.map((x) => dnsPacket.decode(x))) {
    const want = a.id! % 2 ? /^6\.6\.\d+\.\d+$/ : /^192\.0\.2\.9$/;
    t.match(a.answers?.[0], { data: want }, `answer ${a.id}`);
  }
  t.equal(dns.counters.dnsTcpConnections, 1);
});

t.test('an undecodable query closes the connection; no answer, no crash', async (t) => {
  const { port, dns } = await serve(t, 0);
  const zero = Buffer.from([0, 0]);
  const junk = Buffer.concat([Buffer.from([0, 5]), Buffer.from('hello')]);
  for (const bad of [zero, junk]) {
    const { answers } = await exchange(
      port,
      Buffer.concat([bad, dnsTcpFrame(1, 'app.contoso.test')]),
    );
    t.equal(answers.length, 0, `nothing answered after ${bad.toString('hex')}`);
  }
  t.equal(dns.counters.dnsMalformed, 2);
});

t.test('a query cut short is not answered; the half-close ends the connection', async (t) => {
  const { port } = await serve(t, 0);
  const whole = dnsTcpFrame(2, 'app.contoso.test');
  const { answers, closed } = await exchange(port, whole.subarray(0, whole.length - 3));
  t.equal(answers.length, 0);
  t.equal(closed, 'end');
});

t.test(
  'tcpAcquires false (Windows): TCP gets the upstream answer, which names no flow',
  async (t) => {
    const { port, dns } = await serve(t, 0, false);
    const { answers } = await exchange(port, dnsTcpFrame(7, 'app.contoso.test'));
    t.equal(answers.length, 1);
    t.match(dnsPacket.decode(answers[0]!).answers?.[0], { data: '192.0.2.9' }, 'the real address');
    t.equal(dns.hostFor(0xc0000209), null, 'an FQDN rule cannot match a flow to it by name');
    t.equal(dns.counters.dnsAcquired, 0, 'nothing acquired');
    // Over UDP the same name is still acquired.
    const udp = await new Promise<Buffer>((r) => {
      dns.handle(dnsTcpFrame(8, 'app.contoso.test').subarray(2), r, 0);
    });
    t.match(dnsPacket.decode(udp).answers?.[0], { data: /^6\.6\./ }, 'UDP: synthetic');
  },
);

t.test(
  '3000 pipelined queries for an acquired name in one write: answered, no overflow',
  async (t) => {
    // Each is answered at once (synthetic): answering used to recurse once per query.
    const { port } = await serve(t, 0);
    const parts: Buffer[] = [];
    for (let i = 0; i < 3000; i++) parts.push(dnsTcpFrame(i, 'app.contoso.test'));
    const { answers, closed } = await exchange(port, Buffer.concat(parts));
    t.equal(closed, 'end');
    t.equal(answers.length, 3000, 'every query answered');
    t.match(dnsPacket.decode(answers[2999]!).answers?.[0], { data: /^6\.6\./ });
  },
);
