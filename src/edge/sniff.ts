/**
 * The name in a flow's first bytes, as GSA's edge reads it for web content filtering without
 * TLS inspection: the TLS ClientHello's server_name (SNI, RFC 6066 3), or an HTTP/1.x
 * request's Host (the authority of a CONNECT or absolute-form target first, RFC 9112 3.2).
 *
 * Contract: a `Sniffer` is given a flow's bytes as they come (`push`) and never throws. It
 * answers `'more'` while they are a prefix of a ClientHello or request head that may still
 * give a name, and then, for good, what the bytes are and the host name they give: null when
 * they name none, or none that is a host name (an address, a bad name), or are something
 * else. It reads at most SNIFF_LIMIT bytes, and each byte a bounded number of times (the
 * work is linear in the bytes, however they are cut). A ClientHello may span several TLS
 * records, empty ones among them; HTTP may start with blank lines (RFC 9112 2.2), use any
 * method token, runs of spaces, any HTTP version or none, as servers accept them. Only the
 * first request of a connection is read. `sniffName(bytes)` sniffs one buffer.
 */
import { absoluteForm } from '../util/http-target.js';
import { ipFamily } from '../util/ip.js';
import { isHostName, normalizeName } from '../util/names.js';

/** Bytes read before giving up: a ClientHello of four full records, or a request head. */
export const SNIFF_LIMIT = 64 * 1024;

export interface Sniffed {
  /** What the bytes are. */
  proto: 'tls' | 'http' | 'other';
  /** The host name they give (lowercase, no trailing dot, no port), or null. */
  name: string | null;
}

const OTHER: Sniffed = { proto: 'other', name: null };
const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
/** The longest method token read (the longest registered one is 17 characters). */
const MAX_METHOD = 32;
/** RFC 9110 5.6.2 tchar. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TCHAR[c.charCodeAt(0)] = 1;
}

/** The name in `b`, a flow's first bytes as one buffer. */
export function sniffName(b: Uint8Array): Sniffed | 'more' {
  return new Sniffer().push(b);
}

export class Sniffer {
  private buf = new Uint8Array(0);
  private len = 0;
  private result: Sniffed | null = null;
  private kind: 'tls' | 'http' | null = null;
  // TLS: the next record's offset, and the handshake bytes of the records before it.
  private rec = 0;
  private hs: Uint8Array = new Uint8Array(0);
  private hsLen = 0;
  /** The ClientHello's length with its 4-byte header, once known. */
  private need = -1;
  // HTTP: where the next line starts, how far it was searched for its end, and the phase.
  private line = 0;
  private scanned = 0;
  private phase: 'method' | 'request' | 'headers' = 'method';
  private method = '';

  /** Takes the next bytes of the flow (copied, at most SNIFF_LIMIT in all). */
  push(chunk: Uint8Array): Sniffed | 'more' {
    if (this.result !== null) return this.result;
    const take = Math.min(chunk.length, SNIFF_LIMIT - this.len);
    if (take > 0) {
      if (this.len + take > this.buf.length) {
        const grown = new Uint8Array(
          Math.min(SNIFF_LIMIT, Math.max(this.len + take, this.buf.length * 2)),
        );
        grown.set(this.buf.subarray(0, this.len));
        this.buf = grown;
      }
      this.buf.set(chunk.subarray(0, take), this.len);
      this.len += take;
    }
    if (this.len === 0) return 'more';
    this.kind ??= this.buf[0] === 0x16 ? 'tls' : 'http';
    const r = this.kind === 'tls' ? this.tls() : this.http();
    if (r !== 'more') this.result = r;
    else if (this.len >= SNIFF_LIMIT) {
      this.result =
        this.kind === 'tls' || this.phase !== 'method' ? { proto: this.kind, name: null } : OTHER;
    }
    return this.result ?? 'more';
  }

  // --- TLS ---------------------------------------------------------------------------------

  private tls(): Sniffed | 'more' {
    const b = this.buf;
    const tls = (name: string | null): Sniffed => ({ proto: 'tls', name });
    // Whole handshake records (TLSPlaintext, RFC 8446 5.1), appended to the handshake bytes.
    while (this.rec + 5 <= this.len) {
      const off = this.rec;
      if (b[off] !== 0x16 || b[off + 1] !== 0x03) return off === 0 ? OTHER : tls(null);
      const n = (b[off + 3]! << 8) | b[off + 4]!;
      // Empty records are skipped, as OpenSSL does; longer than TLS allows is not TLS.
      if (n > 16 * 1024) return off === 0 ? OTHER : tls(null);
      if (off + 5 + n > this.len) return 'more';
      this.append(b.subarray(off + 5, off + 5 + n));
      this.rec = off + 5 + n;
      if (this.need < 0 && this.hsLen >= 4) {
        const h = this.hs;
        if (h[0] !== 0x01) return tls(null); // not a ClientHello
        this.need = 4 + ((h[1]! << 16) | (h[2]! << 8) | h[3]!);
        if (this.need > SNIFF_LIMIT) return tls(null);
      }
      if (this.need >= 0 && this.hsLen >= this.need) {
        return tls(clientHelloSni(this.hs.subarray(0, this.need)));
      }
    }
    return 'more';
  }

  private append(part: Uint8Array): void {
    if (this.hsLen + part.length > this.hs.length) {
      const grown = new Uint8Array(Math.max(this.hsLen + part.length, this.hs.length * 2));
      grown.set(this.hs.subarray(0, this.hsLen));
      this.hs = grown;
    }
    this.hs.set(part, this.hsLen);
    this.hsLen += part.length;
  }

  // --- HTTP/1.x ----------------------------------------------------------------------------

  private http(): Sniffed | 'more' {
    const b = this.buf;
    const http = (name: string | null): Sniffed => ({ proto: 'http', name });
    if (this.phase === 'method') {
      // Blank lines, then a method token and SP: tells "HTTP or not" from the first bytes.
      let p = this.line;
      while (p < this.len && (b[p] === CR || b[p] === LF)) p++;
      this.line = p;
      while (p < this.len && TCHAR[b[p]!] === 1 && p - this.line <= MAX_METHOD) p++;
      if (p - this.line > MAX_METHOD) return OTHER;
      if (p === this.len) return 'more';
      if (b[p] !== SP || p === this.line) return OTHER;
      this.method = latin1(b, this.line, p);
      this.line = p + 1;
      this.scanned = this.line;
      this.phase = 'request';
    }
    if (this.phase === 'request') {
      // The rest of the request line, checked byte by byte as it comes: a control byte (a
      // binary protocol whose first bytes read as a token and a space) is not HTTP.
      let p = this.scanned;
      for (; p < this.len && b[p] !== LF; p++) {
        const c = b[p]!;
        if ((c < 0x20 && c !== 0x09 && c !== CR) || c === 0x7f) return OTHER;
        if (c === CR && p + 1 < this.len && b[p + 1] !== LF) return OTHER;
      }
      this.scanned = p;
      if (p === this.len) return 'more';
      const from = this.line;
      const end = p > from && b[p - 1] === CR ? p - 1 : p;
      this.line = p + 1;
      this.scanned = this.line;
      // target [version], with any runs of spaces or tabs, as HTTP servers read it. No
      // version (HTTP/0.9, or a line protocol such as Redis's `GET key`): HTTP only with a
      // path or absolute target, whose head may still name a Host.
      const parts = latin1(b, from, end)
        .split(/[ \t]+/)
        .filter((x) => x !== '');
      const target = parts[0];
      const version = parts[1];
      if (target === undefined || parts.length > 2) return OTHER;
      if (version !== undefined && !/^HTTP\/\S/.test(version)) return OTHER;
      const abs = absoluteForm(target);
      if (version === undefined && !target.startsWith('/') && abs === null) return OTHER;
      // The target's authority first; one that is no name (an address) leaves the Host.
      const name =
        this.method === 'CONNECT'
          ? authorityName(target)
          : abs !== null
            ? authorityName(abs.authority)
            : null;
      if (name !== null) return http(name);
      this.phase = 'headers';
    }
    for (;;) {
      const eol = b.subarray(0, this.len).indexOf(LF, this.scanned);
      if (eol < 0) {
        this.scanned = this.len;
        return 'more';
      }
      const end = eol > this.line && b[eol - 1] === CR ? eol - 1 : eol;
      const from = this.line;
      this.line = eol + 1;
      this.scanned = this.line;
      if (end === from) return http(null); // the end of the head: no Host
      if (
        end - from >= 5 &&
        b[from + 4] === 0x3a &&
        latin1(b, from, from + 4).toLowerCase() === 'host'
      ) {
        return http(authorityName(latin1(b, from + 5, end).trim()));
      }
    }
  }
}

/** A host name from text a peer sent (SNI, Host), or null when it is not one. */
function hostName(raw: string): string | null {
  const n = normalizeName(raw);
  return n !== '' && ipFamily(n) === 0 && isHostName(n) ? n : null;
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

/** The host of `user@host:port` (a bracketed IPv6 literal gives none). */
function authorityName(authority: string): string | null {
  const a = authority.slice(authority.lastIndexOf('@') + 1);
  if (a.startsWith('[')) return null;
  const colon = a.indexOf(':');
  return hostName(colon < 0 ? a : a.slice(0, colon));
}
