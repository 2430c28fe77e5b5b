/**
 * The demo world of `gsa-emu up` (and of the end-to-end tests): small servers on
 * 127.0.0.1 ephemeral ports standing in for Microsoft 365, Contoso's private apps and a few
 * internet sites, and the hosts maps that send every demo name to them, so nothing reaches
 * the real internet.
 *
 * - One HTTP and one HTTPS server (certificate for every demo name, from a local CA in
 *   `<stateDir>/demo-tls`), answering `gsa-emu demo: <host><path>` and the peer they saw.
 *   Tunneled flows reach them from the edge (127.0.0.1); bypassed flows from the client's
 *   direct connections, bound to 127.0.0.3 where the OS lets a program bind it (Linux and
 *   Windows route all of 127/8 to loopback: bypassSourceUsable), so the peer address tells
 *   the path apart. Elsewhere (macOS has only 127.0.0.1 unless aliased) `directPorts` gives
 *   the bypassed flows web servers of their own (the client's `dial` map names their ports,
 *   the edge's maps the others), and the port a request came in on tells the path apart.
 * - A UDP echo on the HTTPS port number (EXO QUIC on UDP 443) and one for the private
 *   udp-echo app, and a TCP echo for the RDP app segment (127.77.0.5:3389).
 * - Name resolution as the client sees it (`clientHosts`): internet demo names resolve to
 *   6.6.254.0/24 (public-looking, so Internet Access' "all traffic on TCP 80/443" rule
 *   acquires them by address; never dialed), everything else is acquired by name.
 * - `clientDial`: where bypassed flows connect (toggle a channel off and its names go
 *   direct to the same servers); `directIp: false` keeps every other address undialed.
 * - The edge's `hostsMap` (internet, M365), `connectorHosts` (private) and web filtering
 *   (the gambling category: casino.test is blocked at the edge).
 * - `DEMO_TRIES`: the examples `gsa-emu up`'s banner suggests, and `decideTries`: what the
 *   running client does with each, asked of its forwarder as for a proxy flow.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import {
  createServer as createHttp,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttps } from 'node:https';
import {
  type AddressInfo,
  createServer as createTcp,
  type Socket,
  type Server as TcpServer,
} from 'node:net';
import { join } from 'node:path';
import { type Decision, PROTO_TCP } from '../classify/types.js';
import { ConfigError } from '../errors.js';
import type { ChannelName } from '../policy/model.js';
import { loadOrCreateTls } from '../tunnel/tls.js';
import { LIBRARY_STATE_DIR, makeDirs, stateDirError } from '../util/state-dir.js';
import { bypassCannotResolve, type Deciding } from './explain.js';

/** A private server reached by its single-label name (`http://fs1/`) through Private DNS. */
export const DEMO_SINGLE_LABEL = 'fs1';
export const DEMO_SINGLE_LABEL_FQDN = 'fs1.corp.contoso.test';
export const DEMO_M365 = [
  'outlook.office365.com',
  'outlook.office.com',
  'contoso.sharepoint.com',
  'login.microsoftonline.com',
  'graph.microsoft.com',
];
export const DEMO_PRIVATE = [
  'intranet.contoso.test',
  'corp.contoso.test',
  'wiki.contoso.test',
  // Under the file share's DNS suffix: also `fs1`, a single-label name (Private DNS).
  DEMO_SINGLE_LABEL_FQDN,
];
/** Internet names acquired by address (default acquire), with their client-side address. */
export const DEMO_INTERNET: Record<string, string> = {
  'www.example.test': '6.6.254.10',
  'news.test': '6.6.254.11',
  'casino.test': '6.6.254.12',
  'shop.test': '6.6.254.13',
};
/** Matched by the default tenant's Custom Bypass rule. */
export const DEMO_BYPASS = ['bypass.example.test'];
export const DEMO_UDP_PRIVATE = 'udp-echo.contoso.test';
export const DEMO_UDP_PRIVATE_PORT = 7000;
export const DEMO_RDP = '127.77.0.5';
/** The source address of the client's direct (bypassed) connections in the demo. */
export const DEMO_BYPASS_SOURCE = '127.0.0.3';

/** One example command of `gsa-emu up`'s banner: a demo URL and the channel it shows. */
export interface DemoTry {
  host: string;
  port: number;
  tls: boolean;
  /** The proxy the command goes through (with `--tun`: none, the name is captured). */
  proxy: 'socks' | 'http';
  /** The channel it shows; the banner leaves it out where the client configuration hides it. */
  channel: ChannelName;
  /** The demo edge blocks it (web filtering, the gambling category) when it is tunneled. */
  edgeBlocks: boolean;
  /** Said after the outcome in the banner. */
  note?: string;
}

export const DEMO_TRIES: readonly DemoTry[] = [
  {
    host: 'intranet.contoso.test',
    port: 80,
    tls: false,
    proxy: 'socks',
    channel: 'private',
    edgeBlocks: false,
  },
  {
    host: DEMO_SINGLE_LABEL,
    port: 80,
    tls: false,
    proxy: 'socks',
    channel: 'private',
    edgeBlocks: false,
    note: `single-label name: Private DNS, ${DEMO_SINGLE_LABEL_FQDN}`,
  },
  {
    host: 'outlook.office365.com',
    port: 443,
    tls: true,
    proxy: 'http',
    channel: 'm365',
    edgeBlocks: false,
  },
  {
    host: 'news.test',
    port: 80,
    tls: false,
    proxy: 'http',
    channel: 'internet',
    edgeBlocks: false,
  },
  {
    host: 'bypass.example.test',
    port: 80,
    tls: false,
    proxy: 'socks',
    channel: 'internet',
    edgeBlocks: false,
  },
  {
    host: 'casino.test',
    port: 80,
    tls: false,
    proxy: 'http',
    channel: 'internet',
    edgeBlocks: true,
  },
];

/** A demo try with the running client's decision for it. */
export interface DecidedTry extends DemoTry {
  decision: Decision;
  /**
   * Bypassed, and the client can neither dial the name nor resolve it (a single-label name
   * while Private DNS does not apply: Private Access or Global Secure Access off): the
   * request fails with "cannot resolve".
   */
  unresolvable?: true;
}

/**
 * What the client does now with each of DEMO_TRIES: its forwarder's `decide` (the current
 * classifier and resolver, as for a proxy flow and `explain --running`). Never rejects.
 */
export async function decideTries(forwarder: Deciding): Promise<DecidedTry[]> {
  return Promise.all(
    DEMO_TRIES.map(async (t): Promise<DecidedTry> => {
      const r = await forwarder.decide(PROTO_TCP, t.host, null, t.port);
      const { decision } = r;
      const unresolvable = await bypassCannotResolve(forwarder.resolver, t.host, t.port, r);
      return unresolvable ? { ...t, decision, unresolvable } : { ...t, decision };
    }),
  );
}

export interface DemoHit {
  host: string;
  path: string;
  peer: string;
  peerPort: number;
  tls: boolean;
}

export interface Demo {
  httpPort: number;
  httpsPort: number;
  udpPort: number;
  udpPrivatePort: number;
  tcpEchoPort: number;
  caFile: string;
  /** Requests the web servers answered (newest last, bounded to 1,000). */
  hits: DemoHit[];
  /** UDP datagrams the echoes answered. */
  udpHits: Array<{ server: 'quic' | 'private'; peer: string }>;
  edge: {
    hostsMap: Record<string, string>;
    connectorHosts: Record<string, string>;
    filtering: { blockedCategories: string[] };
  };
  client: { hosts: Record<string, string>; dial: Record<string, string> };
  bypassSource: string;
  /**
   * With `directPorts`: the ports of the web servers only bypassed flows reach (HTTP,
   * HTTPS); a request on one of them is direct from the client whatever its peer. Else [].
   */
  bypassPorts: number[];
  close(): Promise<void>;
}

/**
 * Can the client's bypassed demo flows come from DEMO_BYPASS_SOURCE (127.0.0.3)? Linux and
 * Windows route all of 127/8 to loopback; macOS (and the BSDs) have only 127.0.0.1 unless
 * aliased. Checked by binding it.
 */
export async function bypassSourceUsable(): Promise<boolean> {
  if (process.platform !== 'linux' && process.platform !== 'win32') return false;
  const probe = createTcp();
  try {
    probe.listen(0, DEMO_BYPASS_SOURCE);
    await once(probe, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    probe.close();
  }
}

export interface DemoOptions {
  stateDir: string;
  /**
   * Web servers of their own for bypassed flows (see the file comment), for when the client
   * cannot bind DEMO_BYPASS_SOURCE. Default false.
   */
  directPorts?: boolean;
}

export async function startDemo(opts: DemoOptions): Promise<Demo> {
  // As startEdge: the required option named (from JavaScript), not a TypeError of a path.
  if (!opts || typeof opts.stateDir !== 'string' || opts.stateDir === '') {
    throw new ConfigError([
      { path: 'stateDir', message: 'a state folder is required (for the demo CA)' },
    ]);
  }
  const hits: DemoHit[] = [];
  const udpHits: Demo['udpHits'] = [];
  const bypassPorts: number[] = [];
  const handler = (tls: boolean) => (req: IncomingMessage, res: ServerResponse) => {
    const host = String(req.headers.host ?? '').replace(/:\d+$/, '');
    const peer = req.socket.remoteAddress ?? '?';
    const hit = { host, path: req.url ?? '/', peer, peerPort: req.socket.remotePort ?? 0, tls };
    hits.push(hit);
    if (hits.length > 1000) hits.shift();
    const direct = peer === DEMO_BYPASS_SOURCE || bypassPorts.includes(req.socket.localPort ?? -1);
    const via = direct ? 'direct from the client (bypassed)' : 'from the GSA edge (tunneled)';
    req.resume();
    const body = `gsa-emu demo: ${tls ? 'https' : 'http'}://${host}${hit.path}\npeer: ${peer}:${hit.peerPort}, ${via}\n`;
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-demo-peer': peer });
    res.end(body);
  };
  const names = [...DEMO_M365, ...DEMO_PRIVATE, ...Object.keys(DEMO_INTERNET), ...DEMO_BYPASS];
  const tlsDir = join(opts.stateDir, 'demo-tls');
  // Made here one level at a time (makeDirs): a folder that cannot be made is said of
  // stateDir, as startEdge says it.
  let tls: Awaited<ReturnType<typeof loadOrCreateTls>>;
  try {
    makeDirs(tlsDir);
    tls = await loadOrCreateTls(tlsDir, names);
  } catch (err) {
    throw stateDirError(err, opts.stateDir, LIBRARY_STATE_DIR) ?? err;
  }
  const servers: Array<Server | TcpServer> = [];
  const sockets = new Set<Socket>();
  const track = (s: Server | TcpServer) => {
    s.on('connection', (c: Socket) => {
      sockets.add(c);
      c.on('close', () => sockets.delete(c));
    });
    servers.push(s);
  };
  const http = createHttp(handler(false));
  track(http);
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const https = createHttps({ cert: tls.cert, key: tls.key }, handler(true));
  track(https);
  https.listen(0, '127.0.0.1');
  await once(https, 'listening');
  const httpPort = (http.address() as { port: number }).port;
  const httpsPort = (https.address() as { port: number }).port;
  let directHttpPort = httpPort;
  let directHttpsPort = httpsPort;
  if (opts.directPorts) {
    const directHttp = createHttp(handler(false));
    track(directHttp);
    directHttp.listen(0, '127.0.0.1');
    await once(directHttp, 'listening');
    const directHttps = createHttps({ cert: tls.cert, key: tls.key }, handler(true));
    track(directHttps);
    directHttps.listen(0, '127.0.0.1');
    await once(directHttps, 'listening');
    directHttpPort = (directHttp.address() as AddressInfo).port;
    directHttpsPort = (directHttps.address() as AddressInfo).port;
    bypassPorts.push(directHttpPort, directHttpsPort);
  }

  const udps: UdpSocket[] = [];
  /** A UDP echo on 127.0.0.1:`port`, else (taken) on any free port; a socket that failed is closed. */
  const udpEcho = async (port: number, kind: 'quic' | 'private'): Promise<number> => {
    const bound = async (p: number): Promise<UdpSocket> => {
      const u = createSocket('udp4');
      u.on('message', (m, r) => {
        udpHits.push({ server: kind, peer: r.address });
        if (udpHits.length > 1000) udpHits.shift();
        u.send(Buffer.concat([Buffer.from(`echo(${kind}): `), m]), r.port, r.address);
      });
      u.bind(p, '127.0.0.1');
      try {
        await once(u, 'listening');
      } catch (e) {
        u.close();
        throw e;
      }
      u.on('error', () => {});
      return u;
    };
    let u: UdpSocket;
    try {
      u = await bound(port);
    } catch (e) {
      if (port === 0) throw e;
      u = await bound(0);
    }
    udps.push(u);
    return u.address().port;
  };
  // QUIC to EXO: UDP on the same port number as the HTTPS server (one hosts-map entry for both).
  const udpPort = await udpEcho(httpsPort, 'quic');
  const udpPrivatePort = await udpEcho(0, 'private');
  // Bypassed QUIC dials the same name:443 entry as bypassed HTTPS: an echo on that port too.
  if (opts.directPorts) await udpEcho(directHttpsPort, 'quic');
  const tcpEcho = createTcp((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  track(tcpEcho);
  tcpEcho.listen(0, '127.0.0.1');
  await once(tcpEcho, 'listening');
  const tcpEchoPort = (tcpEcho.address() as { port: number }).port;

  const web = (name: string, m: Record<string, string>, direct = false) => {
    m[`${name}:80`] = `127.0.0.1:${direct ? directHttpPort : httpPort}`;
    m[`${name}:443`] = `127.0.0.1:${direct ? directHttpsPort : httpsPort}`;
  };
  const hostsMap: Record<string, string> = {};
  for (const n of [...DEMO_M365, ...Object.keys(DEMO_INTERNET), ...DEMO_BYPASS]) web(n, hostsMap);
  for (const ip of Object.values(DEMO_INTERNET)) web(ip, hostsMap);
  const connectorHosts: Record<string, string> = {};
  for (const n of DEMO_PRIVATE) web(n, connectorHosts);
  connectorHosts[`${DEMO_UDP_PRIVATE}:${DEMO_UDP_PRIVATE_PORT}`] = `127.0.0.1:${udpPrivatePort}`;
  connectorHosts[`${DEMO_RDP}:3389`] = `127.0.0.1:${tcpEchoPort}`;
  // Where bypassed flows connect: the same servers (their own ports with directPorts).
  const dial: Record<string, string> = {};
  for (const n of [...DEMO_M365, ...Object.keys(DEMO_INTERNET), ...DEMO_BYPASS]) web(n, dial, true);
  for (const ip of Object.values(DEMO_INTERNET)) web(ip, dial, true);
  for (const n of DEMO_PRIVATE) web(n, dial, true);
  dial[`${DEMO_UDP_PRIVATE}:${DEMO_UDP_PRIVATE_PORT}`] = `127.0.0.1:${udpPrivatePort}`;
  dial[`${DEMO_RDP}:3389`] = `127.0.0.1:${tcpEchoPort}`;
  if (udpPort !== httpsPort) {
    hostsMap['outlook.office365.com:443'] = `127.0.0.1:${httpsPort}`;
  }
  return {
    httpPort,
    httpsPort,
    udpPort,
    udpPrivatePort,
    tcpEchoPort,
    caFile: tls.files.ca,
    hits,
    udpHits,
    edge: { hostsMap, connectorHosts, filtering: { blockedCategories: ['gambling'] } },
    client: { hosts: { ...DEMO_INTERNET }, dial },
    bypassSource: DEMO_BYPASS_SOURCE,
    bypassPorts,
    async close() {
      for (const s of sockets) s.destroy();
      for (const u of udps) {
        try {
          u.close();
        } catch {}
      }
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}
