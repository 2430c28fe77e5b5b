/**
 * The PAC file (`/proxy.pac`) that points browsers at the emulator: everything goes to the
 * SOCKS5 proxy, with the HTTP proxy as the fallback (`SOCKS5 127.0.0.1:p; PROXY
 * 127.0.0.1:q`). Policy stays in the forwarder: the PAC file does not try to pre-classify.
 *
 * Served by its own loopback listener (`startPacServer`) and, for convenience, by the HTTP
 * proxy for origin-form `GET /proxy.pac`. A non-loopback PAC listener is refused unless the
 * proxies it names require credentials (the same never-an-open-relay rule).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { unmapIPv4 } from '../util/ip.js';
import { listenOn } from '../util/listen.js';
import { assertSafeListen } from './listen.js';

export const PAC_PATH = '/proxy.pac';
export const PAC_CONTENT_TYPE = 'application/x-ns-proxy-autoconfig';

export interface PacTargets {
  /** `host:port` of the SOCKS5 proxy, or null. */
  socks: string | null;
  /** `host:port` of the HTTP proxy, or null. */
  http: string | null;
}

/** The PAC script text. */
export function pacScript(t: PacTargets): string {
  const parts: string[] = [];
  if (t.socks) parts.push(`SOCKS5 ${t.socks}`);
  if (t.http) parts.push(`PROXY ${t.http}`);
  const route = parts.length > 0 ? parts.join('; ') : 'DIRECT';
  return [
    '// gsa-emu: send every connection to the Global Secure Access emulator, which decides',
    '// per flow (tunnel, bypass, block) the way the GSA client does.',
    'function FindProxyForURL(url, host) {',
    `  return ${JSON.stringify(route)};`,
    '}',
    '',
  ].join('\n');
}

/**
 * The script for one request. Proxies listening on every address (0.0.0.0, [::]) are named
 * by the address the request came in on: on the machine that fetched the file, 0.0.0.0
 * would be itself.
 */
function scriptFor(req: IncomingMessage, script: string): string {
  if (!script.includes(' 0.0.0.0:') && !script.includes(' [::]:')) return script;
  const local = unmapIPv4(req.socket.localAddress ?? '127.0.0.1');
  const here = local.includes(':') ? `[${local}]` : local;
  return script.replaceAll(' 0.0.0.0:', ` ${here}:`).replaceAll(' [::]:', ` ${here}:`);
}

/** Answers GET/HEAD /proxy.pac; returns false for any other request (the caller handles it). */
export function servePac(req: IncomingMessage, res: ServerResponse, template: string): boolean {
  const path = (req.url ?? '').split('?')[0];
  if (path !== PAC_PATH) return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD' }).end();
    return true;
  }
  const script = scriptFor(req, template);
  res.writeHead(200, {
    'content-type': PAC_CONTENT_TYPE,
    'content-length': Buffer.byteLength(script),
    'cache-control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : script);
  return true;
}

export interface PacServerOptions extends PacTargets {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (ephemeral). */
  port?: number;
  /** True when the proxies named require credentials (allows a non-loopback listener). */
  proxiesAuthenticated?: boolean;
}

export interface PacServer {
  readonly server: Server;
  readonly address: AddressInfo;
  readonly url: string;
  readonly script: string;
  close(): Promise<void>;
}

export async function startPacServer(opts: PacServerOptions): Promise<PacServer> {
  const host = opts.host ?? '127.0.0.1';
  assertSafeListen('PAC server', host, opts.proxiesAuthenticated === true);
  const script = pacScript(opts);
  // The timeouts below checked every second (node's default: every 30 s).
  const server = createServer({ connectionsCheckingInterval: 1000 }, (req, res) => {
    if (!servePac(req, res, script))
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  // Nobody holds a connection for good: a request within 5 s, 15 s idle at most.
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  server.timeout = 15_000;
  server.maxConnections = 256;
  const address = await listenOn(server, opts.port ?? 0, host, 'PAC server');
  const h = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    address,
    url: `http://${h}:${address.port}${PAC_PATH}`,
    script,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
