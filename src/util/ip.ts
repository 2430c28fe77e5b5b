/**
 * IP addresses as numbers. IPv4 is one unsigned 32-bit number; IPv6 is four big-endian
 * uint32 words. Parsers return -1 / false on bad input and never throw; strings exist only
 * at the edges (config, logs, CLI).
 */

/** Parse dotted-quad IPv4; returns the address as an unsigned number, or -1. */
export function parseIPv4(s: string): number {
  let acc = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || dots === 3) return -1;
      acc = acc * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1; // leading zero (ambiguous octal)
      part = part * 10 + (c - 48);
      if (part > 255 || ++digits > 3) return -1;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return acc * 256 + part;
}

export function formatIPv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/**
 * Parse IPv6 text (with `::` compression and an optional trailing dotted IPv4) into `out`
 * (four uint32 words). Returns false on bad input. A zone (`%eth0`) is rejected.
 */
export function parseIPv6(s: string, out: Uint32Array): boolean {
  const groups = new Array<number>(8).fill(0);
  const dbl = s.indexOf('::');
  if (dbl !== -1 && s.indexOf('::', dbl + 1) !== -1) return false;
  const head = dbl === -1 ? s : s.slice(0, dbl);
  const tail = dbl === -1 ? '' : s.slice(dbl + 2);
  const parse = (part: string): number[] | null => {
    if (part === '') return [];
    const fields = part.split(':');
    const res: number[] = [];
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      if (i === fields.length - 1 && f.includes('.')) {
        const v4 = parseIPv4(f);
        if (v4 < 0) return null;
        res.push(v4 >>> 16, v4 & 0xffff);
        continue;
      }
      if (f.length === 0 || f.length > 4 || !/^[0-9a-fA-F]+$/.test(f)) return null;
      res.push(Number.parseInt(f, 16));
    }
    return res;
  };
  const h = parse(head);
  const t = parse(tail);
  if (!h || !t) return false;
  if (dbl === -1) {
    if (h.length !== 8) return false;
  } else if (h.length + t.length > 7) {
    return false;
  }
  for (let i = 0; i < h.length; i++) groups[i] = h[i]!;
  for (let i = 0; i < t.length; i++) groups[8 - t.length + i] = t[i]!;
  for (let i = 0; i < 4; i++) out[i] = ((groups[2 * i]! << 16) | groups[2 * i + 1]!) >>> 0;
  return true;
}

export function formatIPv6(w: ArrayLike<number>): string {
  const g: number[] = [];
  for (let i = 0; i < 4; i++) g.push(w[i]! >>> 16, w[i]! & 0xffff);
  // Longest run of zero groups (length >= 2) becomes '::' (RFC 5952).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** 4 or 6 if `s` is an IP literal, else 0. */
export function ipFamily(s: string): 0 | 4 | 6 {
  if (parseIPv4(s) >= 0) return 4;
  if (s.includes(':') && parseIPv6(s, scratch6)) return 6;
  return 0;
}
const scratch6 = new Uint32Array(4);

export interface Cidr4 {
  family: 4;
  /** First address (network), unsigned. */
  first: number;
  /** Last address, unsigned. */
  last: number;
  prefix: number;
}
export interface Cidr6 {
  family: 6;
  first: Uint32Array;
  last: Uint32Array;
  prefix: number;
}

/**
 * Parse `addr/prefix` (a bare address is a /32 or /128). Returns a reason string on bad
 * input. Host bits set below the prefix are accepted and masked (Graph data has both).
 */
export function parseCidr(s: string): Cidr4 | Cidr6 | string {
  const slash = s.indexOf('/');
  const addr = slash === -1 ? s : s.slice(0, slash);
  const ptext = slash === -1 ? null : s.slice(slash + 1);
  const v4 = parseIPv4(addr);
  const fam = v4 >= 0 ? 4 : 6;
  const max = fam === 4 ? 32 : 128;
  let prefix = max;
  if (ptext !== null) {
    if (!/^\d{1,3}$/.test(ptext)) return `"${s}" is not a CIDR`;
    prefix = Number(ptext);
    if (prefix > max) return `"${s}" is not a CIDR`;
  }
  if (fam === 4) {
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    const first = (v4 & mask) >>> 0;
    const last = (first | (~mask >>> 0)) >>> 0;
    return { family: 4, first, last, prefix };
  }
  const w = new Uint32Array(4);
  if (!parseIPv6(addr, w)) return `"${s}" is not a CIDR`;
  const first = new Uint32Array(4);
  const last = new Uint32Array(4);
  for (let i = 0; i < 4; i++) {
    const bits = Math.max(0, Math.min(32, prefix - 32 * i));
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    first[i] = (w[i]! & mask) >>> 0;
    last[i] = (first[i]! | (~mask >>> 0)) >>> 0;
  }
  return { family: 6, first, last, prefix };
}

/** Compare two IPv6 word arrays: -1, 0, 1. */
export function cmp6(a: ArrayLike<number>, b: ArrayLike<number>): number {
  for (let i = 0; i < 4; i++) {
    if (a[i]! !== b[i]!) return a[i]! < b[i]! ? -1 : 1;
  }
  return 0;
}

const mapped6 = new Uint32Array(4);

/**
 * An IPv4-mapped IPv6 address (::ffff:0:0/96, as `::ffff:127.0.0.1` or `::ffff:7f00:1`) as
 * IPv4 text; any other string as it is. It is the IPv4 host (what a dual-stack socket
 * reports for an IPv4 peer): IPv4 rules apply to it and it is dialed over IPv4.
 */
export function unmapIPv4(ip: string): string {
  if (!ip.includes(':') || !parseIPv6(ip, mapped6)) return ip;
  if (mapped6[0] !== 0 || mapped6[1] !== 0 || mapped6[2] !== 0xffff) return ip;
  return formatIPv4(mapped6[3]!);
}

/** `address:port`, an IPv6 address in brackets (`[::1]:443`) so the two can be told apart. */
export function addressPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
