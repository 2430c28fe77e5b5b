/**
 * The name in a flow's first bytes, as GSA's edge reads it for web content filtering without
 * TLS inspection: the TLS ClientHello's server_name (SNI, RFC 6066 3), or an HTTP/1.x
 * request's Host (the authority of an absolute-form target first, RFC 9112 3.2.2).
 *
 * Contract: `sniffName(bytes)` never throws and reads at most SNIFF_LIMIT bytes. It returns
 * `'more'` while `bytes` is a prefix of a ClientHello or request head that may still give a
 * name, and otherwise what the bytes are and the host name they give: null when they name
 * none, or none that is a host name (an address, a bad name), or are something else. A
 * ClientHello may span several TLS records; one over SNIFF_LIMIT gives no name.
 */
import { absoluteForm } from '../util/http-target.js';
import { ipFamily } from '../util/ip.js';
import { isHostName, normalizeName } from '../util/names.js';

/** Bytes read before giving up: a ClientHello of the largest record, or a request head. */
export const SNIFF_LIMIT = 16 * 1024 + 5;

export interface Sniffed {
  /** What the bytes are. */
  proto: 'tls' | 'http' | 'other';
  /** The host name they give (lowercase, no trailing dot, no port), or null. */
  name: string | null;
}

const METHODS = ['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT'];
const OTHER: Sniffed = { proto: 'other', name: null };

export function sniffName(b: Uint8Array): Sniffed | 'more' {
  if (b.length === 0) return 'more';
  if (b[0] === 0x16) return sniffTls(b);
  return sniffHttp(b);
}

/** A host name from text a peer sent (SNI, Host), or null when it is not one. */
function hostName(raw: string): string | null {
  const n = normalizeName(raw);
  return n !== '' && ipFamily(n) === 0 && isHostName(n) ? n : null;
}

// --- TLS -----------------------------------------------------------------------------------

function sniffTls(b: Uint8Array): Sniffed | 'more' {
  const tls = (name: string | null): Sniffed => ({ proto: 'tls', name });
  // The handshake bytes of consecutive handshake records (TLSPlaintext, RFC 8446 5.1).
  const parts: Uint8Array[] = [];
  let have = 0;
  let off = 0;
  let need = -1; // the ClientHello's length with its 4-byte header, once known
  for (;;) {
    if (b.length - off < 5) return b.length >= SNIFF_LIMIT ? tls(null) : 'more';
    if (b[off] !== 0x16 || b[off + 1] !== 0x03) return off === 0 ? OTHER : tls(null);
    const len = (b[off + 3]! << 8) | b[off + 4]!;
    if (len === 0 || len > 16 * 1024) return off === 0 ? OTHER : tls(null);
    const end = off + 5 + len;
    const got = Math.min(end, b.length);
    parts.push(b.subarray(off + 5, got));
    have += got - off - 5;
    if (need < 0 && have >= 4) {
      const h = concat(parts, 4);
      if (h[0] !== 0x01) return tls(null); // not a ClientHello
      need = 4 + ((h[1]! << 16) | (h[2]! << 8) | h[3]!);
      if (need > SNIFF_LIMIT) return tls(null);
    }
    if (need >= 0 && have >= need) return tls(clientHelloSni(concat(parts, need)));
    if (got < end) return b.length >= SNIFF_LIMIT ? tls(null) : 'more';
    off = end;
  }
}

function concat(parts: Uint8Array[], n: number): Uint8Array {
  if (parts.length === 1 || parts[0]!.length >= n) return parts[0]!.subarray(0, n);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    if (o >= n) break;
    const k = Math.min(p.length, n - o);
    out.set(p.subarray(0, k), o);
    o += k;
  }
  return out;
}

/** The host_name of a whole ClientHello handshake message (header included), or null. */
function clientHelloSni(h: Uint8Array): string | null {
  const end = h.length;
  // type(1) length(3) legacy_version(2) random(32)
  let p = 4 + 2 + 32;
  const u8 = (): number => (p < end ? h[p++]! : -1);
  const u16 = (): number => {
    if (p + 2 > end) return -1;
    const v = (h[p]! << 8) | h[p + 1]!;
    p += 2;
    return v;
  };
  /** Skips a vector whose length `len` was just read; false when it does not fit. */
  const skip = (len: number, limit = end): boolean => {
    if (len < 0 || p + len > limit) return false;
    p += len;
    return true;
  };
  // legacy_session_id, cipher_suites, legacy_compression_methods
  if (!skip(u8()) || !skip(u16()) || !skip(u8())) return null;
  const extLen = u16();
  if (extLen < 0) return null;
  const extEnd = Math.min(end, p + extLen);
  while (p + 4 <= extEnd) {
    const type = u16();
    const len = u16();
    const next = p + len;
    if (next > extEnd) return null;
    if (type === 0) {
      // server_name: ServerNameList (2-byte length) of name_type(1) and a 2-byte-long name.
      const listLen = u16();
      if (listLen < 0) return null;
      const listEnd = Math.min(next, p + listLen);
      while (p + 3 <= listEnd) {
        const kind = u8();
        const n = u16();
        if (kind === 0) return p + n <= listEnd ? hostName(latin1(h, p, p + n)) : null;
        if (!skip(n, listEnd)) return null;
      }
      return null;
    }
    p = next;
  }
  return null;
}

function latin1(b: Uint8Array, from: number, to: number): string {
  return Buffer.from(b.buffer, b.byteOffset + from, to - from).toString('latin1');
}

// --- HTTP/1.x ------------------------------------------------------------------------------

function sniffHttp(b: Uint8Array): Sniffed | 'more' {
  // The method and its space: decides "HTTP or not" from the first bytes.
  const head = latin1(b, 0, Math.min(b.length, 8));
  const sp = head.indexOf(' ');
  if (sp < 0) {
    return METHODS.some((m) => m.startsWith(head)) && head.length < 8 ? 'more' : OTHER;
  }
  if (!METHODS.includes(head.slice(0, sp))) return OTHER;
  const http = (name: string | null): Sniffed => ({ proto: 'http', name });
  const n = Math.min(b.length, SNIFF_LIMIT);
  const text = latin1(b, 0, n);
  let eol = text.indexOf('\n');
  if (eol < 0) return n >= SNIFF_LIMIT ? http(null) : 'more';
  // Request line: method SP target SP version. An absolute-form target's authority wins.
  const target =
    text
      .slice(sp + 1, eol)
      .trim()
      .split(' ')[0] ?? '';
  const abs = absoluteForm(target);
  if (abs) return http(authorityName(abs.authority));
  for (let from = eol + 1; ; from = eol + 1) {
    eol = text.indexOf('\n', from);
    if (eol < 0) return n >= SNIFF_LIMIT ? http(null) : 'more';
    const line = text.slice(from, eol).replace(/\r$/, '');
    if (line === '') return http(null); // end of the head: no Host
    const colon = line.indexOf(':');
    if (colon === 4 && line.slice(0, 4).toLowerCase() === 'host') {
      return http(authorityName(line.slice(5).trim()));
    }
  }
}

/** The host of `user@host:port` (a bracketed IPv6 literal gives none). */
function authorityName(authority: string): string | null {
  const a = authority.slice(authority.lastIndexOf('@') + 1);
  if (a.startsWith('[')) return null;
  const colon = a.indexOf(':');
  return hostName(colon < 0 ? a : a.slice(0, colon));
}
