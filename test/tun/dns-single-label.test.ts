/**
 * The TUN's synthetic resolver and Private DNS for single-label names: a query for `fs1`
 * is answered for `fs1`, and the synthetic address stands for the qualified name that the
 * flows, the hostname table and the edge then use. Runs without root (handle() directly).
 */
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import t from 'tap';
import { DnsInterceptor } from '../../src/capture/tun/dns.js';
import { formatIPv4, parseIPv4 } from '../../src/util/ip.js';
import { dnsUpstream } from './helpers.js';

const SUFFIX = 'app1.globalsecureaccess.local';

function query(id: number, name: string, type: 'A' | 'AAAA' = 'A'): Buffer {
  return dnsPacket.encode({
    id,
    type: 'query',
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
  });
}

interface Answer {
  /** The response code (0 NOERROR). */
  rcode: number;
  /** Each answer record's name and data. */
  names: string[];
  data: string[];
}

/** handle() one query; the decoded answer (bounded wait for upstream ones). */
async function ask(dns: DnsInterceptor, q: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer in 3 s')), 3000);
    dns.handle(
      q,
      (p) => {
        clearTimeout(timer);
        const m = dnsPacket.decode(p);
        const rrs = (m.answers ?? []) as Array<{ name: string; data: unknown }>;
        resolve({
          rcode: (m.flags ?? 0) & 15,
          names: rrs.map((r) => r.name),
          data: rrs.map((r) => String(r.data)),
        });
      },
      performance.now(),
    );
  });
}

t.test('a single-label name Private DNS acquires: synthetic, by its qualified name', async (t) => {
  const upstream = await dnsUpstream(t, (name, type) =>
    type !== 'A' ? null : name === 'printer' ? '192.0.2.7' : name === 'web' ? '192.0.2.8' : null,
  );
  const acquired: string[] = [];
  const dns = new DnsInterceptor({
    // Names under the suffix on this fake "classifier", and one ordinary name.
    acquire: (n) => {
      acquired.push(n);
      return n.endsWith(`.${SUFFIX}`) ? n !== `printer.${SUFFIX}` : n === 'app.contoso.test';
    },
    qualify: (n) => (n.includes('.') ? null : `${n}.${SUFFIX}`),
    upstream: { host: '127.0.0.1', port: upstream.port },
  });
  t.teardown(() => dns.close());

  const a = await ask(dns, query(1, 'FS1'));
  t.equal(a.rcode, 0, 'NOERROR');
  t.same(a.names, ['FS1'], 'answered for the name asked');
  const ip = a.data[0]!;
  t.match(ip, /^6\.6\.\d+\.\d+$/);
  t.equal(dns.hostFor(parseIPv4(ip)), `fs1.${SUFFIX}`, 'the address stands for the qualified name');
  const row = dns.acquisitionTable().find((r) => r.generatedIp === ip);
  t.equal(row?.fqdn, `fs1.${SUFFIX}`);
  t.equal(row?.acquired, true);
  t.equal(row?.originalIp, '', 'no original IP: the connector resolves it');
  t.equal(upstream.queries(), 1, 'upstream was asked first, and had no address');
  const again = await ask(dns, query(2, 'fs1.'));
  t.same(again.data, [ip], 'the same address on the next query');
  const aaaa = await ask(dns, query(3, 'fs1', 'AAAA'));
  t.equal(aaaa.rcode, 0, 'NOERROR');
  t.same(aaaa.data, [], 'AAAA: empty, as for every acquired name');

  // A single label the qualified rule does not take goes upstream under its own name.
  const p = await ask(dns, query(4, 'printer'));
  t.same(p.data, ['192.0.2.7']);
  t.ok(acquired.includes(`printer.${SUFFIX}`), 'the qualified name was tried first');
  t.ok(acquired.includes('printer'), 'then the name as asked');
  t.equal(dns.hostFor(parseIPv4('192.0.2.7')), 'printer');
  // A single label the qualified rule takes but upstream knows (a name of the machine's own,
  // a compose service, say) stays local: upstream's answer, not a synthetic address.
  const web = await ask(dns, query(6, 'web'));
  t.same(web.data, ['192.0.2.8'], "upstream's answer");
  t.equal(dns.hostFor(parseIPv4('192.0.2.8')), 'web');
  t.notOk(
    dns.acquisitionTable().some((r) => r.fqdn === `web.${SUFFIX}`),
    'not in the acquisition table',
  );
  // Ordinary names are never qualified.
  const o = await ask(dns, query(5, 'app.contoso.test'));
  t.match(o.data[0], /^6\.6\./);
  t.equal(dns.hostFor(parseIPv4(o.data[0]!)), 'app.contoso.test');
});

t.test('no upstream, or upstream silent: the single label is acquired', async (t) => {
  const qualify = (n: string) => (n.includes('.') ? null : `${n}.${SUFFIX}`);
  const acquire = (n: string) => n === `fs1.${SUFFIX}`;
  const none = new DnsInterceptor({ acquire, qualify, upstream: null });
  t.teardown(() => none.close());
  const a = await ask(none, query(1, 'fs1'));
  t.match(a.data[0], /^6\.6\./, 'no upstream: synthetic at once');
  t.equal(none.hostFor(parseIPv4(a.data[0]!)), `fs1.${SUFFIX}`);
  // An upstream that never answers: after its timeout, synthetic (not SERVFAIL).
  const silent = dgram.createSocket('udp4');
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => silent.close());
  const slow = new DnsInterceptor({
    acquire,
    qualify,
    upstream: { host: '127.0.0.1', port: silent.address().port },
    timeoutMs: 200,
  });
  t.teardown(() => slow.close());
  const b = await ask(slow, query(2, 'fs1'));
  t.equal(b.rcode, 0);
  t.match(b.data[0], /^6\.6\./, 'synthetic after the timeout');
  t.equal(slow.counters.dnsServfail, 0);
});

t.test('a qualify hook that throws or returns junk is ignored, never a crash', async (t) => {
  for (const qualify of [
    () => {
      throw new Error('boom');
    },
    () => 42 as unknown as string,
    (n: string) => n,
  ]) {
    const dns = new DnsInterceptor({
      acquire: (n) => n === 'fs1',
      qualify,
      upstream: null,
    });
    const a = await ask(dns, query(7, 'fs1'));
    t.equal(a.rcode, 0, 'NOERROR');
    const ip = a.data[0]!;
    t.equal(dns.hostFor(parseIPv4(ip)), 'fs1', 'the name as asked');
    t.equal(formatIPv4(parseIPv4(ip)), ip);
    dns.close();
  }
});
