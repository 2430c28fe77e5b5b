/**
 * GET /metrics as a Prometheus scraper reads it (text exposition format 0.0.4): its
 * Content-Type, one HELP and one TYPE per family before its samples, no family split, counters
 * named `_total`, label values well escaped, no series twice, values that parse. Flows of
 * every kind go through the SOCKS5 proxy first (tunneled, bypassed, blocked, refused, names
 * with quotes, backslashes and newlines, dropped QUIC). The counters never go down (a toggle,
 * the VPN switched off, the edge stopping), and the gauges agree with /status and /flows.
 * The TUN capture's text (`tunMetrics`) is checked the same way. Demo servers, the edge and
 * the client listen on 127.0.0.1 (free ports) and are closed by the test.
 */
import t, { type Test } from 'tap';
import { Agent } from 'undici';
import { tunMetrics } from '../../src/client/tun-capture.js';
import { domainRequest } from '../capture/helpers.js';
import { startTestWorld, type TestWorld, until } from '../e2e/helpers.js';
import { httpCall } from '../util/http-calls.js';
import { udpApp, udpAssociate } from '../util/socks-udp.js';

const dispatcher = new Agent({ keepAliveTimeout: 10 });
t.teardown(() => dispatcher.close());

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict reader of the text format 0.0.4: throws at the first line it does not take, and
 * at a family whose HELP or TYPE is repeated or late, or whose samples are split.
 */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  if (!text.endsWith('\n')) throw new Error('the text does not end with a line feed');
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const sampled = new Set<string>();
  const samples: Sample[] = [];
  const series = new Set<string>();
  let current: string | null = null;
  const family = (name: string): string => {
    for (const suffix of ['_bucket', '_sum', '_count']) {
      const base = name.slice(0, -suffix.length);
      if (name.endsWith(suffix) && ['histogram', 'summary'].includes(types.get(base) ?? ''))
        return base;
    }
    return name;
  };
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, i) => {
    const at = `line ${i + 1} (${JSON.stringify(line)})`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
      if (!m) return; // a comment
      const [, kind, name, rest = ''] = m as unknown as [string, string, string, string?];
      if (!NAME.test(name)) throw new Error(`${at}: bad metric name`);
      if (sampled.has(name)) throw new Error(`${at}: ${kind} after samples of ${name}`);
      if (kind === 'HELP') {
        if (helps.has(name)) throw new Error(`${at}: a second HELP for ${name}`);
        if (/\\[^\\n]|\\$/.test(rest)) throw new Error(`${at}: bad escape in HELP`);
        helps.add(name);
      } else {
        if (types.has(name)) throw new Error(`${at}: a second TYPE for ${name}`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest))
          throw new Error(`${at}: bad type`);
        if (rest === 'counter' && !name.endsWith('_total'))
          throw new Error(`${at}: counter ${name} not named _total`);
        types.set(name, rest);
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (!m) throw new Error(`${at}: no metric name`);
    const name = m[1]!;
    let p = name.length;
    const labels: Record<string, string> = {};
    if (line[p] === '{') {
      p++;
      for (;;) {
        if (line[p] === '}') break;
        const ln = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(line.slice(p));
        if (!ln) throw new Error(`${at}: bad label at ${p}`);
        p += ln[0].length;
        let v = '';
        for (;;) {
          const c = line[p];
          if (c === undefined) throw new Error(`${at}: unterminated label value`);
          if (c === '"') break;
          if (c === '\\') {
            const e = line[p + 1];
            if (e === '\\') v += '\\';
            else if (e === '"') v += '"';
            else if (e === 'n') v += '\n';
            else throw new Error(`${at}: bad escape \\${e}`);
            p += 2;
          } else {
            v += c;
            p++;
          }
        }
        p++;
        if (ln[1]! in labels) throw new Error(`${at}: label ${ln[1]} twice`);
        labels[ln[1]!] = v;
        if (line[p] === ',') p++;
        else if (line[p] !== '}') throw new Error(`${at}: expected , or } at ${p}`);
      }
      p++;
    }
    const rest = /^ (\S+)(?: (-?\d+))?$/.exec(line.slice(p));
    if (!rest) throw new Error(`${at}: bad value part`);
    const raw = rest[1]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    if (raw !== 'NaN' && (Number.isNaN(value) || !/^[-+0-9.eEInf]+$/.test(raw)))
      throw new Error(`${at}: value ${raw} is not a float`);
    const fam = family(name);
    if (!types.has(fam)) throw new Error(`${at}: no TYPE before the samples of ${fam}`);
    if (current !== fam && sampled.has(fam)) throw new Error(`${at}: family ${fam} split`);
    current = fam;
    sampled.add(fam);
    const key = `${name}{${Object.entries(labels)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(',')}}`;
    if (series.has(key)) throw new Error(`${at}: series ${key} twice`);
    series.add(key);
    samples.push({ name, labels, value });
  });
  return { samples, types };
}

const key = (s: Sample) => `${s.name}${JSON.stringify(s.labels)}`;

t.test('the strict reader refuses what Prometheus would', async (t) => {
  const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="q\\"\\\\\\n"} 1\n';
  t.same(parseExposition(ok).samples[0]!.labels, { x: 'q"\\\n' });
  for (const bad of [
    '# TYPE a counter\na 1\n',
    '# TYPE a_total counter\n# TYPE a_total counter\na_total 1\n',
    '# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="1"} 2\n',
    '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n',
    '# TYPE a gauge\na{x="a"b"} 1\n',
    '# TYPE a gauge\na{x="a\\tb"} 1\n',
    '# TYPE a gauge\na undefined\n',
    'a 1\n',
    '# TYPE a gauge\na 1',
  ]) {
    t.throws(() => parseExposition(bad), JSON.stringify(bad));
  }
});

let w: TestWorld;
let auth: Record<string, string>;

async function scrape(t: Test): Promise<Map<string, Sample> & { types: Map<string, string> }> {
  const r = await httpCall(`${w.client.admin!.url}/metrics`, 'GET', { headers: auth, dispatcher });
  t.equal(r.status, 200, 'GET /metrics: 200');
  t.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8', 'its type');
  const { samples, types } = parseExposition(r.text);
  return Object.assign(new Map(samples.map((s) => [key(s), s])), { types });
}

/** Every counter of `after` is at least as in `before`; none disappeared. */
function noCounterDown(
  t: Test,
  before: Map<string, Sample> & { types: Map<string, string> },
  after: Map<string, Sample>,
  what: string,
): void {
  const down: string[] = [];
  for (const [k, s] of before) {
    if (before.types.get(s.name) !== 'counter') continue;
    const now = after.get(k);
    if (now === undefined || now.value < s.value) down.push(`${k}: ${s.value} -> ${now?.value}`);
  }
  t.same(down, [], `no counter went down or away: ${what}`);
}

const value = (m: Map<string, Sample>, name: string, labels: Record<string, string> = {}) =>
  m.get(`${name}${JSON.stringify(labels)}`)?.value;

t.test('/metrics parses strictly, counters only go up, gauges agree', async (t) => {
  w = await startTestWorld({
    prefix: 'gsa-metrics-',
    listen: { socksPort: 0, httpPort: null, pacPort: null, adminPort: 0 },
  });
  t.teardown(() => w.close());
  auth = { authorization: `Bearer ${w.client.admin!.token}` };
  const socks = Number(w.client.addresses.socks!.split(':').pop());

  const connectTo = async (host: string, port: number): Promise<void> => {
    const { connect } = await import('node:net');
    const s = connect({ port: socks, host: '127.0.0.1' });
    s.on('error', () => {});
    t.teardown(() => s.destroy());
    await new Promise((r) => s.once('connect', r));
    s.write(Buffer.concat([Buffer.from([5, 1, 0]), domainRequest(host, port)]));
    s.write(`GET / HTTP/1.0\r\nHost: ${host.replace(/[^ -~]/g, '')}\r\n\r\n`);
    s.resume();
    await Promise.race([
      new Promise((r) => s.once('close', r)),
      new Promise((r) => setTimeout(r, 3000)),
    ]);
    s.destroy();
  };
  const hosts = [
    'intranet.contoso.test',
    'news.test',
    'bypass.example.test',
    'casino.test',
    'quo"te.test',
    'back\\slash.test',
    'new\nline.test',
    'close}brace{x="y".test',
  ];
  for (const h of hosts) await connectTo(h, 80);
  // QUIC to a tunneled name: dropped (gsa_client_drops_total{reason="quic"}).
  const relay = await udpAssociate(t, socks);
  const { u } = await udpApp(t);
  const name = Buffer.from('news.test');
  const dgram = Buffer.concat([
    Buffer.from([0, 0, 0, 3, name.length]),
    name,
    Buffer.from([1, 187]),
    Buffer.from('quic'),
  ]);
  for (let i = 0; i < 3; i++) u.send(dgram, relay, '127.0.0.1');
  await until(() => w.flowTo('news.test', 'udp'), 'the QUIC flow');

  const first = await scrape(t);
  t.ok(
    (value(first, 'gsa_client_flows_total', { action: 'tunnel', channel: 'private' }) ?? 0) >= 1,
  );
  t.ok((value(first, 'gsa_client_refusals_total', { kind: 'blocked' }) ?? 0) >= 1, 'a refusal');
  t.ok((value(first, 'gsa_client_drops_total', { reason: 'quic' }) ?? 0) >= 1, 'a QUIC drop');

  // Gauges against /status and /flows.
  const status = (await httpCall(`${w.client.admin!.url}/status`, 'GET', { headers: auth }))
    .json as { channels: Array<{ channel: string; enabled: boolean; up: boolean }> };
  for (const c of status.channels.filter((c) => c.channel !== 'entra')) {
    t.equal(value(first, 'gsa_client_session_up', { channel: c.channel }), c.up ? 1 : 0);
    t.equal(value(first, 'gsa_client_channel_enabled', { channel: c.channel }), c.enabled ? 1 : 0);
  }
  const flows = (await httpCall(`${w.client.admin!.url}/flows?active=1`, 'GET', { headers: auth }))
    .json as { flows: unknown[] };
  t.equal(value(first, 'gsa_client_flows_active'), flows.flows.length, 'active flows agree');

  // A toggle and the VPN switched off and on: nothing counted goes down.
  w.client.toggle('internet', false);
  await connectTo('news.test', 80);
  const toggled = await scrape(t);
  noCounterDown(t, first, toggled, 'toggle');
  t.equal(value(toggled, 'gsa_client_channel_enabled', { channel: 'internet' }), 0);
  w.client.toggle('internet', true);
  w.client.setVpn(false, 'settings');
  const vpnOff = await scrape(t);
  noCounterDown(t, toggled, vpnOff, 'VPN off');
  const st2 = (await httpCall(`${w.client.admin!.url}/status`, 'GET', { headers: auth })).json as {
    channels: Array<{ channel: string; enabled: boolean }>;
  };
  for (const c of st2.channels.filter((c) => c.channel !== 'entra')) {
    t.equal(
      value(vpnOff, 'gsa_client_channel_enabled', { channel: c.channel }),
      c.enabled ? 1 : 0,
      `VPN off: ${c.channel} enabled agrees with /status`,
    );
  }
  w.client.setVpn(true, 'settings');

  // The edge stopping: the sessions go down, the counters stay.
  await w.edge.close({ graceMs: 0 });
  await until(() => !w.client.tunnels.isUp('internet'), 'the tunnel down');
  await connectTo('news.test', 80);
  const edgeGone = await scrape(t);
  noCounterDown(t, vpnOff, edgeGone, 'edge stopped');
  t.equal(value(edgeGone, 'gsa_client_session_up', { channel: 'internet' }), 0);
});

t.test("the TUN capture's metrics parse strictly too", async (t) => {
  const counters = new Proxy({} as Parameters<typeof tunMetrics>[0], { get: () => 7 });
  const { samples } = parseExposition(tunMetrics(counters));
  t.ok(samples.length > 10);
  t.ok(samples.every((s) => s.value === 7));
});
