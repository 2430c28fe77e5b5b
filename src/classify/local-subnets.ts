/**
 * The device's local subnets (`ClientState.localSubnets`), shared by the compiler and the
 * oracle. GSA tunnels Private Access IP segments "only for ranges outside the device's local
 * subnet" (gsa-facts.md): a Private Access rule's IPv4 destinations (ipAddress, ipSubnet,
 * ipRange) do not match an address inside one of them, and the flow goes on through the
 * later rules as if that destination were not in the rule. The decision it then gets says
 * why in its reason. Names (fqdn, dnsSuffix) are unaffected; so is IPv6 (not a local
 * subnet here). See docs/decisions/classify-local-subnet.md.
 */
import { formatIPv4, parseCidr } from '../util/ip.js';
import { staticDecision } from './decisions.js';
import type { Decision } from './types.js';

export interface LocalSubnet {
  /** `network/prefix` (host bits cleared), as the reason shows it. */
  readonly text: string;
  readonly first: number;
  readonly last: number;
}

/**
 * The IPv4 CIDRs of `list`, in list order (the first that holds an address is the one a
 * reason names). Anything else (IPv6, malformed) is ignored: the CLI and the client check
 * the list before it gets here.
 */
export function localSubnetsOf(list: readonly string[] | undefined): LocalSubnet[] {
  const out: LocalSubnet[] = [];
  for (const s of list ?? []) {
    if (typeof s !== 'string') continue;
    const c = parseCidr(s.trim());
    if (typeof c === 'string' || c.family !== 4) continue;
    out.push({ text: `${formatIPv4(c.first)}/${c.prefix}`, first: c.first, last: c.last });
  }
  return out;
}

/** The first subnet holding address `x`, or null. */
export function localSubnetAt(subnets: readonly LocalSubnet[], x: number): LocalSubnet | null {
  for (const s of subnets) if (s.first <= x && x <= s.last) return s;
  return null;
}

/** The subnets' union as sorted, disjoint, non-adjacent `[first, last]` pairs. */
export function mergeSubnets(subnets: readonly LocalSubnet[]): Array<[number, number]> {
  const sorted = subnets
    .map((s): [number, number] => [s.first, s.last])
    .sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [f, l] of sorted) {
    const top = out[out.length - 1];
    if (top && f <= top[1] + 1) top[1] = Math.max(top[1], l);
    else out.push([f, l]);
  }
  return out;
}

/**
 * Cut `[first, last]` by the merged subnets: `outside(f, l)` for each piece outside them,
 * `inside(f, l)` for each piece inside, in address order.
 */
export function carveRange(
  first: number,
  last: number,
  merged: ReadonlyArray<readonly [number, number]>,
  outside: (f: number, l: number) => void,
  inside: (f: number, l: number) => void,
): void {
  let at = first;
  for (const [f, l] of merged) {
    if (l < at) continue;
    if (f > last) break;
    if (f > at) outside(at, f - 1);
    const end = Math.min(l, last);
    inside(Math.max(f, at), end);
    if (end >= last) return;
    at = end + 1;
  }
  outside(at, last);
}

/**
 * What `d` (the decision of the rule that matched once the Private Access IP destination
 * was skipped; null: none did) becomes for a flow in local subnet `cidr`: the same rule and
 * action, with a reason that says why Private Access did not take it.
 */
export function localSubnetDecision(d: Decision | null, cidr: string): Decision {
  const why = `in the device's local subnet ${cidr}, Private Access does not tunnel it`;
  if (d === null) return staticDecision(`${why} (goes direct)`);
  return Object.freeze({ ...d, reason: `${why} by IP segment; ${d.reason}` });
}

/** `s` as a local subnet (`network/prefix`), or null when it is not an IPv4 address or CIDR. */
export function normalizeLocalSubnet(s: string): string | null {
  const [one] = localSubnetsOf([s]);
  return one ? one.text : null;
}
