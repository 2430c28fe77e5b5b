/**
 * An edge listening on every address (`--host 0.0.0.0` or `::`): the names a client on
 * another machine can reach it by, for its certificate and its banner
 * (docs/decisions/edge-wildcard-names.md).
 *
 * - `isWildcardHost`: `0.0.0.0`, or `::` in any spelling (`0:0:0:0:0:0:0:0`, `::0`).
 * - `machineNames(host)`: this machine's interface addresses the listener answers on (IPv4
 *   for 0.0.0.0; IPv4 then IPv6 for `::`, which Node binds dual-stack), not loopback and not
 *   link-local (169.254/16, fe80::/10: they change with the link, and an IPv6 one needs a zone
 *   no certificate or URL carries), each once, then `os.hostname()` when it is a DNS name.
 *   Empty for any other host.
 * - `clientUrlHost(hostnames, names)`: the host a printed URL uses: the first `--hostname`
 *   that is not a wildcard name, else the first address of `names`, else null (no name a
 *   remote client could use), in URL form (an IPv6 address in brackets).
 */
import { isIP } from 'node:net';
import { hostname, type NetworkInterfaceInfo, networkInterfaces } from 'node:os';
import { isHostName, normalizeName } from '../util/names.js';

/** An IPv6 address in its one short form (RFC 5952), as URL hosts write it. */
function canonical6(a: string): string {
  try {
    return new URL(`http://[${a}]/`).hostname.slice(1, -1);
  } catch {
    return a.toLowerCase();
  }
}

/** True for a listen address meaning every address of the machine: 0.0.0.0 or `::`. */
export function isWildcardHost(host: string): boolean {
  if (host === '0.0.0.0') return true;
  return isIP(host) === 6 && canonical6(host) === '::';
}

/** Link-local (169.254/16, fe80::/10) or loopback (127/8, ::1): no name for another machine. */
function localOnly(address: string, family: 4 | 6): boolean {
  if (family === 4) return /^(127|169\.254)\./.test(address);
  const a = canonical6(address);
  return a === '::1' || /^fe[89ab][0-9a-f]:/.test(a) || a.startsWith('::ffff:127.');
}

/**
 * This machine's names for a listener on `host` (see the file comment); `interfaces` and
 * `name` default to the machine's (given by tests).
 */
export function machineNames(
  host: string,
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
  name: string = hostname(),
): string[] {
  if (!isWildcardHost(host)) return [];
  const families: Array<4 | 6> = host === '0.0.0.0' ? [4] : [4, 6];
  const out: string[] = [];
  for (const family of families) {
    for (const list of Object.values(interfaces)) {
      for (const i of list ?? []) {
        if (i.internal || isIP(i.address) !== family || localOnly(i.address, family)) continue;
        const a = family === 6 ? canonical6(i.address) : i.address;
        if (!out.includes(a)) out.push(a);
      }
    }
  }
  const n = normalizeName(name);
  // A DNS name a certificate can hold (letters, digits, '-'), not loopback's.
  if (isHostName(n) && !n.includes('_') && n !== 'localhost' && !out.includes(n)) out.push(n);
  return out;
}

/** The host part of a URL for `name` (an IPv6 address in brackets). */
export function urlHost(name: string): string {
  return isIP(name) === 6 ? `[${name}]` : name;
}

/**
 * The host a printed URL of an edge on a wildcard address uses: the first of `hostnames`
 * that is not a wildcard name (`*.team.test`), else the first address among `names`; null
 * when there is none.
 */
export function clientUrlHost(hostnames: string[], names: string[]): string | null {
  const given = hostnames.find((h) => !h.startsWith('*.'));
  if (given !== undefined) return urlHost(given);
  const address = names.find((n) => isIP(n) !== 0);
  return address === undefined ? null : urlHost(address);
}
