/**
 * Parsing what a user types for `gsa-emu explain` (and the admin API's `/explain`): a URL,
 * `host[:port]`, `ip[:port]` or `[ipv6]:port`. Ports default from the URL scheme, else 443.
 * `udp://host:port` and `tcp://host:port` name the protocol (and need a port); a udp://
 * target with `udp: false` asked explicitly is a contradiction, so the scheme wins.
 */
import { UsageError } from '../errors.js';
import { ipFamily } from './ip.js';
import { isHostName } from './names.js';

export interface Target {
  /** Lowercase name without a trailing dot, or null for an IP literal. */
  host: string | null;
  /** IP literal when given, else null. */
  ip: string | null;
  family: 0 | 4 | 6;
  port: number;
  proto: 'tcp' | 'udp';
}

const SCHEME_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443, 'ws:': 80, 'wss:': 443 };

function parsePort(text: string, input: string): number {
  const n = Number(text);
  if (!/^\d{1,5}$/.test(text) || n < 1 || n > 65535) {
    throw new UsageError(`"${input}": port "${text}" is not a number from 1 to 65535`);
  }
  return n;
}

export function parseTarget(input: string, opts: { udp?: boolean } = {}): Target {
  let proto: 'tcp' | 'udp' = opts.udp ? 'udp' : 'tcp';
  let hostPart: string;
  let port: number | undefined;
  const s = input.trim();
  if (s === '') throw new UsageError('empty target: give a URL, host[:port] or ip[:port]');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) {
    let url: URL;
    try {
      url = new URL(s);
    } catch {
      throw new UsageError(`"${input}" is not a valid URL`);
    }
    // The protocol schemes: the flow's protocol, not an application's default port.
    if (url.protocol === 'udp:') proto = 'udp';
    else if (url.protocol === 'tcp:' && opts.udp) {
      throw new UsageError(`"${input}": a tcp:// target cannot be asked for UDP`);
    }
    hostPart = url.hostname;
    if (hostPart.startsWith('[')) hostPart = hostPart.slice(1, -1);
    port = url.port ? parsePort(url.port, input) : SCHEME_PORTS[url.protocol];
    if (port === undefined)
      throw new UsageError(`"${input}": give a port for scheme ${url.protocol}`);
  } else if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end === -1) throw new UsageError(`"${input}": missing "]" after the IPv6 address`);
    hostPart = s.slice(1, end);
    // RFC 3986: brackets hold an IP literal only.
    if (ipFamily(hostPart) !== 6) {
      throw new UsageError(`"${input}": brackets hold an IPv6 address, not "${hostPart}"`);
    }
    const rest = s.slice(end + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) throw new UsageError(`"${input}": expected ":port" after "]"`);
      port = parsePort(rest.slice(1), input);
    }
  } else if (s.split(':').length > 2) {
    hostPart = s; // bare IPv6 without port
  } else {
    const colon = s.lastIndexOf(':');
    hostPart = colon === -1 ? s : s.slice(0, colon);
    if (colon !== -1) port = parsePort(s.slice(colon + 1), input);
  }
  const family = ipFamily(hostPart);
  if (family !== 0) return { host: null, ip: hostPart, family, port: port ?? 443, proto };
  const name = hostPart.toLowerCase().replace(/\.$/, '');
  if (!isHostName(name))
    throw new UsageError(`"${input}": "${hostPart}" is not a host name or IP address`);
  return { host: name, ip: null, family: 0, port: port ?? 443, proto };
}

/** How a target is printed: `host:port/proto`, an IPv6 address in brackets (`[::1]:53/udp`). */
export function targetText(t: Target): string {
  const h = t.host ?? t.ip ?? '';
  return `${h.includes(':') ? `[${h}]` : h}:${t.port}/${t.proto}`;
}
