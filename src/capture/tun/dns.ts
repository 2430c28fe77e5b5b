/**
 * DNS interception and hostname acquisition for TUN mode (as GSA does it):
 * - A queries for names `acquire(name)` accepts get a synthetic address from 6.6.0.0/16
 *   (6.6.255.254 is the synthetic resolver, never handed out), short TTL, kept in a
 *   bounded LRU; an address is never reused while a flow still references it.
 * - AAAA queries for acquired names get an empty NOERROR answer (GSA tunnels IPv4 only).
 * - Everything else goes to the upstream resolver; A answers are recorded IP -> FQDN so
 *   flows by IP can still be classified and logged by name.
 * - The "hostname acquisition" table (time, FQDN, generated IP, acquired, original IP) is
 *   kept for diagnostics.
 * Queries that cannot be decoded are counted and dropped; nothing here throws per packet.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import dnsPacket from 'dns-packet';
import { formatIPv4, ipFamily, parseIPv4 } from '../../util/ip.js';

export const SYNTHETIC_NET = 0x06060000; // 6.6.0.0/16
export const SYNTHETIC_RESOLVER = 0x0606fffe; // 6.6.255.254

/** DNS over TCP: queries answered at once per connection, and its idle timeout. */
const DNS_TCP_MAX_PENDING = 16;
const DNS_TCP_IDLE_MS = 10_000;

export const isSynthetic = (ip4: number): boolean => ip4 >>> 16 === 0x0606;

export interface AcquisitionRow {
  /** ISO time of the latest resolution. */
  time: string;
  fqdn: string;
  /** The 6.6.x.y address handed out, or '' when not acquired. */
  generatedIp: string;
  acquired: boolean;
  /** First real IPv4 answer, '' when none (yet). */
  originalIp: string;
}

export interface DnsOptions {
  /** True when an FQDN rule would acquire the name (lowercase, no trailing dot). */
  acquire?: (name: string) => boolean;
  /**
   * Private DNS for single-label names: the qualified name for a query (`fs1` ->
   * `fs1.<appId>.globalsecureaccess.local`), or null. When `acquire` takes it and upstream
   * has no address for the name asked (or no upstream, or a timeout), the query is answered
   * for the name asked with a synthetic address that stands for the qualified name.
   */
  qualify?: (name: string) => string | null;
  /**
   * Upstream resolver for everything else; null answers SERVFAIL. `localAddress` binds
   * the upstream socket (host mode: the source address policy routing keeps off the TUN).
   */
  upstream?: { host: string; port: number; localAddress?: string } | null;
  /** TTL of synthetic answers in seconds (default 30). */
  ttl?: number;
  /** Synthetic addresses in use at most (default 65533: all of 6.6.0.0/16 but 3). */
  maxSynthetic?: number;
  /** IP -> FQDN entries recorded from upstream answers (LRU, default 16384). */
  maxHosts?: number;
  /** Hostname-acquisition rows kept (LRU by name, default 1024). */
  maxRows?: number;
  /** Upstream timeout in ms (default 3000); on timeout the client gets SERVFAIL. */
  timeoutMs?: number;
  /** Also look acquired names up upstream, in the background, for the original IP (default true). */
  resolveOriginal?: boolean;
  /**
   * DNS over TCP acquires names as over UDP (default true). False (the Windows client, where
   * "with DNS over TCP, FQDN rules do not match"): a TCP query is answered as the upstream
   * answers it, and its addresses do not name flows (IP rules still match them).
   */
  tcpAcquires?: boolean;
}

export interface DnsCounters {
  dnsQueries: number;
  dnsAcquired: number;
  dnsAaaaEmpty: number;
  dnsForwarded: number;
  dnsAnswered: number;
  dnsServfail: number;
  dnsMalformed: number;
  dnsTimeouts: number;
  /** Answers dropped: not from the upstream's address and port, or for another question. */
  dnsSpoofed: number;
  /** DNS-over-TCP connections to the synthetic resolver (RFC 7766). */
  dnsTcpConnections: number;
}

export function newDnsCounters(): DnsCounters {
  return {
    dnsQueries: 0,
    dnsAcquired: 0,
    dnsAaaaEmpty: 0,
    dnsForwarded: 0,
    dnsAnswered: 0,
    dnsServfail: 0,
    dnsMalformed: 0,
    dnsTimeouts: 0,
    dnsSpoofed: 0,
    dnsTcpConnections: 0,
  };
}

interface Synth {
  name: string;
  ip: number;
  /** Flows (NAT entries) using the address. */
  refs: number;
  /** ms timestamp of the latest answer carrying it. */
  answered: number;
}

/** The 6.6.0.0/16 allocator: LRU by name, addresses pinned while flows use them. */
export class SyntheticPool {
  readonly capacity: number;
  #byName = new Map<string, Synth>();
  #byIp: (Synth | undefined)[] = new Array(65536);
  #cursor = 1;
  #ttlMs: number;

  constructor(capacity = 65533, ttlSeconds = 30) {
    this.capacity = Math.max(1, Math.min(65533, capacity));
    this.#ttlMs = ttlSeconds * 1000;
  }

  get size(): number {
    return this.#byName.size;
  }

  /** The address for `name` (allocating one), or -1 when every address is pinned. */
  allocate(name: string, now: number): number {
    let s = this.#byName.get(name);
    if (s) {
      this.#byName.delete(name); // LRU touch
      this.#byName.set(name, s);
      s.answered = now;
      return s.ip;
    }
    let low = -1;
    if (this.#byName.size < this.capacity) {
      for (let i = 0; i < 65536; i++) {
        const c = this.#cursor;
        this.#cursor = c >= 0xfffd ? 1 : c + 1;
        if (!this.#byIp[c]) {
          low = c;
          break;
        }
      }
    }
    if (low < 0) {
      // Evict the least recently answered name no flow uses and whose TTL ran out twice.
      for (const old of this.#byName.values()) {
        if (old.refs === 0 && now - old.answered > 2 * this.#ttlMs) {
          this.#byName.delete(old.name);
          this.#byIp[old.ip & 0xffff] = undefined;
          low = old.ip & 0xffff;
          break;
        }
      }
      if (low < 0) return -1;
    }
    s = { name, ip: (SYNTHETIC_NET | low) >>> 0, refs: 0, answered: now };
    this.#byName.set(name, s);
    this.#byIp[low] = s;
    return s.ip;
  }

  nameOf(ip4: number): string | null {
    if (!isSynthetic(ip4)) return null;
    return this.#byIp[ip4 & 0xffff]?.name ?? null;
  }

  ref(ip4: number): void {
    if (!isSynthetic(ip4)) return;
    const s = this.#byIp[ip4 & 0xffff];
    if (s) s.refs++;
  }

  unref(ip4: number): void {
    if (!isSynthetic(ip4)) return;
    const s = this.#byIp[ip4 & 0xffff];
    if (s && s.refs > 0) s.refs--;
  }

  refsOf(ip4: number): number {
    return isSynthetic(ip4) ? (this.#byIp[ip4 & 0xffff]?.refs ?? 0) : 0;
  }
}

interface Pending {
  origId: number;
  reply: ((payload: Buffer) => void) | null;
  name: string;
  timer: NodeJS.Timeout;
  /** A single label Private DNS takes unless upstream knows it (see handle()). */
  unknown?: () => void;
  /** The answer names no flow (DNS over TCP where it acquires nothing: tcpAcquires false). */
  unnamed?: true;
}

const RCODE_SERVFAIL = 2;

/**
 * Whether a message has the counts of a query a stub resolver sends (RFC 1035 4.1.1): one
 * question, no answer or authority records, at most one additional (EDNS's OPT). Checked
 * before decoding: a 64 KiB message of thousands of questions, each a compression pointer
 * to the one before, took the decoder hundreds of milliseconds (quadratic), stalling every
 * flow of the process.
 */
export function plainQuery(msg: Buffer): boolean {
  return (
    msg.length >= 12 &&
    msg.readUInt16BE(4) === 1 &&
    msg.readUInt16BE(6) === 0 &&
    msg.readUInt16BE(8) === 0 &&
    msg.readUInt16BE(10) <= 1
  );
}

function normName(n: string): string {
  const l = n.toLowerCase();
  return l.endsWith('.') ? l.slice(0, -1) : l;
}

export class DnsInterceptor {
  readonly pool: SyntheticPool;
  readonly counters: DnsCounters;
  #acquire: (name: string) => boolean;
  #qualify: (name: string) => string | null;
  #upstream: { host: string; port: number; localAddress?: string } | null;
  #ttl: number;
  #timeoutMs: number;
  #resolveOriginal: boolean;
  #maxHosts: number;
  #maxRows: number;
  #hosts = new Map<number, string>();
  #rows = new Map<string, AcquisitionRow>();
  #sock: dgram.Socket | null = null;
  #pending = new Map<number, Pending>();
  readonly #tcpAcquires: boolean;
  #closed = false;

  constructor(opts: DnsOptions = {}, counters: DnsCounters = newDnsCounters()) {
    this.#acquire = opts.acquire ?? (() => false);
    this.#qualify = opts.qualify ?? (() => null);
    this.#upstream = opts.upstream ?? null;
    this.#ttl = opts.ttl ?? 30;
    this.#timeoutMs = opts.timeoutMs ?? 3000;
    this.#resolveOriginal = opts.resolveOriginal ?? true;
    this.#tcpAcquires = opts.tcpAcquires ?? true;
    this.#maxHosts = opts.maxHosts ?? 16384;
    this.#maxRows = opts.maxRows ?? 1024;
    this.pool = new SyntheticPool(opts.maxSynthetic, this.#ttl);
    this.counters = counters;
  }

  /** The FQDN behind an IPv4 address: synthetic first, then recorded upstream answers. */
  hostFor(ip4: number): string | null {
    return this.pool.nameOf(ip4) ?? this.#hosts.get(ip4) ?? null;
  }

  /** The hostname-acquisition table, oldest first. */
  acquisitionTable(): AcquisitionRow[] {
    return [...this.#rows.values()].map((r) => ({ ...r }));
  }

  /**
   * Answer one query (`payload` is the DNS message). `reply` is called at most once with
   * the answer; an undecodable query is counted and dropped, and then handle() is false.
   */
  handle(
    payload: Buffer,
    reply: (payload: Buffer) => void,
    now: number,
    /** False: no name is acquired, and the upstream's answer names no flow (tcpAcquires). */
    acquiring = true,
  ): boolean {
    this.counters.dnsQueries++;
    if (!plainQuery(payload)) {
      this.counters.dnsMalformed++;
      return false;
    }
    let q: dnsPacket.DecodedPacket;
    try {
      q = dnsPacket.decode(payload);
    } catch {
      this.counters.dnsMalformed++;
      return false;
    }
    const question = q.questions?.[0];
    if (q.type !== 'query' || !question || typeof question.name !== 'string') {
      this.counters.dnsMalformed++;
      return false;
    }
    const name = normName(question.name);
    const rd = (q.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
    const id = q.id ?? 0;
    const address = question.type === 'A' || question.type === 'AAAA';
    if (address && acquiring) {
      // Private DNS: a single label stands for its qualified name, unless upstream knows it
      // (the machine's own names first, as a search list with GSA's suffix last). Its
      // original address is the connector's, not anything upstream would say.
      const qn = this.#safeQualify(name);
      if (qn !== null && this.#safeAcquire(qn)) {
        const acquire = (): void => {
          this.#acquired(qn, id, rd, question, reply, payload, performance.now(), false);
        };
        if (this.#upstream) this.#forward(payload, name, reply, question, acquire);
        else acquire();
        return true;
      }
      if (this.#safeAcquire(name)) {
        this.#acquired(name, id, rd, question, reply, payload, now, true);
        return true;
      }
    }
    if (!this.#upstream) {
      this.counters.dnsServfail++;
      reply(this.#answer(id, rd, question, [], RCODE_SERVFAIL));
      return true;
    }
    this.#forward(payload, name, reply, question, undefined, !acquiring);
    return true;
  }

  /** Answer an A/AAAA query for an acquired name (`name`: what the address stands for). */
  #acquired(
    name: string,
    id: number,
    rd: number,
    question: dnsPacket.Question,
    reply: (payload: Buffer) => void,
    payload: Buffer,
    now: number,
    lookUpOriginal: boolean,
  ): void {
    if (question.type === 'AAAA') {
      this.counters.dnsAaaaEmpty++;
      reply(this.#answer(id, rd, question, [], 0));
      return;
    }
    const ip = this.pool.allocate(name, now);
    if (ip < 0) {
      this.counters.dnsServfail++;
      reply(this.#answer(id, rd, question, [], RCODE_SERVFAIL));
      return;
    }
    this.counters.dnsAcquired++;
    const text = formatIPv4(ip);
    const row = this.#row(name);
    row.generatedIp = text;
    row.acquired = true;
    reply(
      this.#answer(
        id,
        rd,
        question,
        [{ type: 'A', name: question.name, ttl: this.#ttl, data: text }],
        0,
      ),
    );
    if (lookUpOriginal && this.#resolveOriginal && this.#upstream && row.originalIp === '') {
      this.#forward(payload, name, null, question);
    }
  }

  /**
   * Serve DNS over TCP on an accepted connection (RFC 7766: messages with a 2-byte length
   * prefix, answers in any order): the same answers as over UDP (unless tcpAcquires is
   * false: then the upstream's). At most
   * `DNS_TCP_MAX_PENDING` queries wait at once (reading pauses meanwhile). The socket must
   * allow half-open: answers still go out after the query side ends. An undecodable query
   * or `DNS_TCP_IDLE_MS` without traffic closes the connection.
   */
  serveTcp(socket: net.Socket): void {
    this.counters.dnsTcpConnections++;
    let buf: Buffer = Buffer.alloc(0);
    let pending = 0;
    let ended = false;
    socket.on('error', () => {});
    socket.setTimeout(DNS_TCP_IDLE_MS, () => socket.destroy());
    const finish = (): void => {
      if (ended && pending === 0 && !socket.destroyed) socket.end();
    };
    const answer = (msg: Buffer): void => {
      const framed = Buffer.allocUnsafe(2 + msg.length);
      framed.writeUInt16BE(msg.length, 0);
      msg.copy(framed, 2);
      if (socket.writable) socket.write(framed);
    };
    // An answer given at once (an acquired name) calls drain() from inside drain(): it only
    // asks for another pass, so a connection's thousand pipelined queries are a loop, not a
    // thousand nested calls (which overflowed the stack and took the process down).
    let draining = false;
    let again = false;
    const drain = (): void => {
      if (draining) {
        again = true;
        return;
      }
      draining = true;
      try {
        do {
          again = false;
          drainOnce();
        } while (again && !socket.destroyed);
      } catch {
        socket.destroy();
      } finally {
        draining = false;
      }
    };
    const drainOnce = (): void => {
      while (buf.length >= 2 && pending < DNS_TCP_MAX_PENDING && !socket.destroyed) {
        const n = buf.readUInt16BE(0);
        if (buf.length < 2 + n) break;
        const query = Buffer.from(buf.subarray(2, 2 + n));
        buf = buf.subarray(2 + n);
        let done = false;
        pending++;
        const taken = this.handle(
          query,
          (msg) => {
            if (done) return;
            done = true;
            pending--;
            answer(msg);
            drain();
            finish();
          },
          performance.now(),
          this.#tcpAcquires,
        );
        if (!taken) {
          socket.destroy();
          return;
        }
      }
      if (pending >= DNS_TCP_MAX_PENDING) socket.pause();
      else if (socket.isPaused()) socket.resume();
    };
    socket.on('data', (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      drain();
    });
    socket.on('end', () => {
      ended = true;
      finish();
    });
  }

  #safeQualify(name: string): string | null {
    try {
      const q = this.#qualify(name);
      return typeof q === 'string' && q !== name ? q : null;
    } catch {
      return null;
    }
  }

  #safeAcquire(name: string): boolean {
    try {
      return this.#acquire(name) === true;
    } catch {
      return false;
    }
  }

  #row(name: string): AcquisitionRow {
    let row = this.#rows.get(name);
    if (row) this.#rows.delete(name);
    else row = { time: '', fqdn: name, generatedIp: '', acquired: false, originalIp: '' };
    row.time = new Date().toISOString();
    this.#rows.set(name, row);
    if (this.#rows.size > this.#maxRows) {
      const first = this.#rows.keys().next().value;
      if (first !== undefined) this.#rows.delete(first);
    }
    return row;
  }

  #answer(
    id: number,
    rd: number,
    question: dnsPacket.Question,
    answers: dnsPacket.Answer[],
    rcode: number,
  ): Buffer {
    return dnsPacket.encode({
      id,
      type: 'response',
      flags: rd | dnsPacket.RECURSION_AVAILABLE | rcode,
      questions: [question],
      answers,
    });
  }

  #forward(
    payload: Buffer,
    name: string,
    reply: ((p: Buffer) => void) | null,
    question: dnsPacket.Question,
    /** Called instead of answering when upstream has no address for the name, or times out. */
    unknown?: () => void,
    /** The answer's addresses are not recorded as the name's (they name no flow). */
    unnamed = false,
  ): void {
    if (this.#closed || !this.#upstream) return;
    const sock = this.#socket();
    // A random id (RFC 5452 9.2): a spoofed answer has to guess it, and the source port.
    let id = -1;
    for (let i = 0; i < 64 && id < 0; i++) {
      const c = randomInt(0x10000);
      if (!this.#pending.has(c)) id = c;
    }
    for (let c = 0; c < 0x10000 && id < 0; c++) if (!this.#pending.has(c)) id = c;
    if (id < 0) {
      if (unknown) unknown();
      else this.counters.dnsServfail++;
      return;
    }
    const msg = Buffer.from(payload);
    const origId = msg.readUInt16BE(0);
    msg.writeUInt16BE(id, 0);
    const timer = setTimeout(() => {
      const p = this.#pending.get(id);
      if (!p) return;
      this.#pending.delete(id);
      this.counters.dnsTimeouts++;
      if (p.unknown) p.unknown();
      else if (p.reply) {
        this.counters.dnsServfail++;
        p.reply(this.#answer(origId, dnsPacket.RECURSION_DESIRED, question, [], RCODE_SERVFAIL));
      }
    }, this.#timeoutMs);
    timer.unref();
    this.#pending.set(id, {
      origId,
      reply,
      name,
      timer,
      ...(unknown ? { unknown } : {}),
      ...(unnamed ? { unnamed: true as const } : {}),
    });
    if (reply) this.counters.dnsForwarded++;
    sock.send(msg, this.#upstream.port, this.#upstream.host);
  }

  #socket(): dgram.Socket {
    if (this.#sock) return this.#sock;
    const s = dgram.createSocket('udp4');
    s.on('message', (msg, from) => this.#onUpstream(msg, from));
    s.on('error', () => {}); // ICMP errors from the upstream: the timeout answers SERVFAIL
    if (this.#upstream?.localAddress) s.bind({ address: this.#upstream.localAddress, port: 0 });
    s.unref();
    this.#sock = s;
    return s;
  }

  #onUpstream(msg: Buffer, from: dgram.RemoteInfo): void {
    if (msg.length < 12) return;
    // Only the upstream answers (RFC 5452 9.1: address and port), and only the question asked.
    const up = this.#upstream;
    if (!up || from.port !== up.port || (ipFamily(up.host) !== 0 && from.address !== up.host)) {
      this.counters.dnsSpoofed++;
      return;
    }
    const id = msg.readUInt16BE(0);
    const p = this.#pending.get(id);
    if (!p) return;
    let r: dnsPacket.Packet | null = null;
    try {
      r = dnsPacket.decode(msg);
    } catch {
      // An undecodable upstream answer still goes back to the client unchanged.
    }
    const asked = r?.questions?.[0]?.name;
    if (r !== null && (asked === undefined || asked.toLowerCase() !== p.name.toLowerCase())) {
      this.counters.dnsSpoofed++;
      return;
    }
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if (p.unknown && (r === null || ((r.flags ?? 0) & 15) !== 0 || !r.answers?.length)) {
      p.unknown();
      return;
    }
    let first = '';
    if (r !== null) {
      for (const a of r.answers ?? []) {
        if (a.type === 'A' && typeof a.data === 'string') {
          const ip = parseIPv4(a.data);
          if (ip < 0) continue;
          if (first === '') first = a.data;
          if (p.unnamed) continue;
          this.#hosts.delete(ip);
          this.#hosts.set(ip, p.name);
          if (this.#hosts.size > this.#maxHosts) {
            const k = this.#hosts.keys().next().value;
            if (k !== undefined) this.#hosts.delete(k);
          }
        }
      }
    }
    const row = p.reply ? this.#row(p.name) : this.#rows.get(p.name);
    if (row && first !== '' && row.originalIp === '') row.originalIp = first;
    if (p.reply) {
      msg.writeUInt16BE(p.origId, 0);
      this.counters.dnsAnswered++;
      p.reply(msg);
    }
  }

  close(): void {
    this.#closed = true;
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
    this.#sock?.close();
    this.#sock = null;
  }
}
