/**
 * Which local process owns a proxy client's socket (Linux): the "process" column of the
 * Traffic tab for SOCKS5 and HTTP proxy flows, which carry no process of their own.
 *
 * How: the proxy knows the client's TCP port (its peer) and its own listener port. The
 * client's end of that connection is the socket whose local port is the peer port and
 * remote port the listener port; its inode comes from one sock_diag netlink lookup (the
 * native addon, microseconds, taken when the proxy accepts the connection, while the
 * socket surely exists) or else from the line of /proc/net/tcp or tcp6 with those ports
 * (the kernel walks its whole socket table for that: milliseconds). The process holding
 * `socket:[inode]` among /proc/<pid>/fd is the owner, and /proc/<pid>/comm its name.
 *
 * ```ts
 * const owners = new ProcessOwners();
 * const p = await owners.lookup(peerPort, listenerPort);   // { name: 'curl', pid: 4242 } | null
 * owners.close();
 * ```
 *
 * Contract: `lookup()` never rejects and resolves within `timeoutMs` (default 1 s): null
 * when not Linux, when /proc cannot be read, when the owner's fds are not readable (another
 * user's process without root), when the socket is gone or lives in another network
 * namespace, or on timeout. Cost stays off the data path: lookups are coalesced into one
 * scan at a time, a scan runs in slices of synchronous /proc reads that yield to the event
 * loop between slices, gives up at its deadline, and the next scan waits at least ten times
 * as long as the last one took (so scanning takes at most ~10% of a core under any load),
 * and at least 2 ms (50 ms when the inodes come from /proc/net/tcp). With sock_diag, a scan
 * first asks again whether each socket still exists: one already closed has no owner left
 * to find, so it is answered null at once, without walking /proc and without delaying the
 * next scan (else a short-lived client that exited before its scan would cost a vain walk
 * of every process, and the backoff after it would make the next one miss too).
 * Results are cached for `cacheMs` (HTTP keep-alive requests reuse one client socket), and
 * the processes that owned recent sockets are searched first.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { addonUnavailable, loadAddon } from '../capture/tun/device.js';
import { ipFamily } from '../util/ip.js';

export interface ProcessInfo {
  /** `/proc/<pid>/comm`: the executable's name, at most 15 characters. */
  name: string;
  pid: number;
}

export interface ProcessOwnerOptions {
  /** Default true on Linux; elsewhere lookups always give null. */
  enabled?: boolean;
  /** Default '/proc' (tests point it at a fake tree). */
  procRoot?: string;
  /** A lookup resolves (null if unknown) within this (ms). Default 1,000. */
  timeoutMs?: number;
  /** How long an answer is reused for the same port pair (ms). Default 2,000. */
  cacheMs?: number;
  /** Least delay between two scans (ms). Default 50. */
  minIntervalMs?: number;
  /** Lookups waiting for a scan; more are answered null at once. Default 512. */
  maxPending?: number;
  /**
   * The inode of the TCP socket with this local and remote address, 0 when there is none
   * (default: the native addon's sock_diag lookup when the addon is built; null = read
   * /proc/net/tcp instead). Asked at lookup() time, while the client's socket surely
   * exists, so the scan only has to find the process holding it.
   */
  inodeOf?:
    | ((
        family: 4 | 6,
        localIp: string,
        localPort: number,
        remoteIp: string,
        remotePort: number,
      ) => number)
    | null;
}

/** Both ends of the client's connection, as the proxy sees them. */
export interface ConnectionAddresses {
  /** The client's address (the proxy's remote address). */
  peerIp: string;
  /** The listener's address (the proxy's local address). */
  listenerIp: string;
}

/** The addon's sock_diag lookup, when the addon is built and loads; else null. */
export function addonInodeOf(): ProcessOwnerOptions['inodeOf'] {
  if (process.platform !== 'linux' || addonUnavailable() !== null) return null;
  try {
    const addon = loadAddon();
    return typeof addon.sockInode === 'function' ? addon.sockInode.bind(addon) : null;
  } catch {
    return null;
  }
}

/** Synchronous /proc reads per slice before yielding to the event loop. */
const SLICE = 200;
const RECENT_PIDS = 8;

type Done = (p: ProcessInfo | null) => void;

/** A client socket found by sock_diag at lookup() time: its inode, and how to ask again. */
interface KnownSocket {
  inode: string;
  family: 4 | 6;
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
}

export class ProcessOwners {
  readonly enabled: boolean;
  private readonly root: string;
  private readonly timeoutMs: number;
  private readonly cacheMs: number;
  private readonly minIntervalMs: number;
  private readonly maxPending: number;
  /** `peerPort:listenerPort` -> callers waiting for the next scan. */
  private pending = new Map<string, Done[]>();
  /** Sockets learned at lookup() time (sock_diag), by key. */
  private known = new Map<string, KnownSocket>();
  private readonly inodeOf: ProcessOwnerOptions['inodeOf'];
  private pendingCount = 0;
  private readonly cache = new Map<string, { info: ProcessInfo | null; at: number }>();
  private readonly names = new Map<number, { name: string; at: number }>();
  /** Owners of recently found sockets, most recent first. */
  private recent: number[] = [];
  private scanning = false;
  /** The keys of the scan that runs now. */
  private inScan = new Set<string>();
  /** Cancels the scan that is due (a timer or an immediate), while one is. */
  private timer: (() => void) | null = null;
  private nextScanAt = 0;
  /** The cache size past which expired answers are dropped. */
  private pruneAt = 4096;
  private closed = false;
  /** Scans run, i.e. searches of /proc (for tests and metrics). */
  scans = 0;
  /** Lookups answered null without a search: their socket had closed before their scan. */
  gone = 0;

  constructor(opts: ProcessOwnerOptions = {}) {
    this.enabled = opts.enabled ?? process.platform === 'linux';
    this.root = opts.procRoot ?? '/proc';
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.cacheMs = opts.cacheMs ?? 2000;
    this.maxPending = opts.maxPending ?? 512;
    this.inodeOf =
      opts.inodeOf === undefined ? (this.enabled ? addonInodeOf() : null) : opts.inodeOf;
    // With the inode known up front a scan only walks fd links: cheap enough to run often.
    this.minIntervalMs = opts.minIntervalMs ?? (this.inodeOf ? 2 : 50);
  }

  /** Whether socket inodes come from sock_diag (the addon) rather than /proc/net/tcp. */
  get fastInodes(): boolean {
    return this.inodeOf != null;
  }

  /**
   * The process whose TCP socket has local port `peerPort` and remote port `listenerPort`.
   * With `addr` (both IPs) and sock_diag, the socket's inode is taken now.
   */
  lookup(
    peerPort: number,
    listenerPort: number,
    addr?: ConnectionAddresses,
  ): Promise<ProcessInfo | null> {
    if (!this.enabled || this.closed || peerPort <= 0 || listenerPort <= 0) {
      return Promise.resolve(null);
    }
    const key = `${peerPort}:${listenerPort}`;
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < this.cacheMs) return Promise.resolve(hit.info);
    if (this.pendingCount >= this.maxPending) return Promise.resolve(null);
    if (addr && this.inodeOf && !this.known.has(key)) {
      const sock = this.socketOf(addr, peerPort, listenerPort);
      const inode = sock ? this.inodeNow(sock) : -1;
      if (inode === 0) {
        // No such socket (already closed): nobody owns it.
        if (!this.pending.has(key)) return Promise.resolve(null);
      } else if (inode > 0 && sock) {
        this.known.set(key, { ...sock, inode: String(inode) });
      }
    }
    return new Promise((resolve) => {
      let settled = false;
      const done: Done = (p) => {
        if (settled) return;
        settled = true;
        clearTimeout(t);
        resolve(p);
      };
      const t = setTimeout(() => done(null), this.timeoutMs);
      const list = this.pending.get(key);
      if (list) list.push(done);
      else this.pending.set(key, [done]);
      this.pendingCount++;
      this.schedule();
    });
  }

  /**
   * What is known now, without waiting: the owner (or null, not found) from a recent scan,
   * 'pending' while a lookup of this pair waits or runs, undefined when nobody asked.
   */
  peek(peerPort: number, listenerPort: number): ProcessInfo | null | 'pending' | undefined {
    if (!this.enabled || this.closed) return null;
    const key = `${peerPort}:${listenerPort}`;
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < this.cacheMs) return hit.info;
    if (this.pending.has(key) || this.inScan.has(key)) return 'pending';
    return undefined;
  }

  /** The client's socket (without its inode), or null for unusable addresses. */
  private socketOf(
    addr: ConnectionAddresses,
    peerPort: number,
    listenerPort: number,
  ): Omit<KnownSocket, 'inode'> | null {
    // The client's socket: local = the peer's address, remote = the listener's. A v4
    // client of a dual-stack listener shows as ::ffff:a.b.c.d but is an AF_INET socket.
    const unmap = (ip: string): string =>
      ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
    const local = unmap(addr.peerIp);
    const remote = unmap(addr.listenerIp);
    const fam = ipFamily(local);
    if (fam === 0 || fam !== ipFamily(remote)) return null;
    return { family: fam as 4 | 6, local, localPort: peerPort, remote, remotePort: listenerPort };
  }

  /** The inode by sock_diag: > 0 found, 0 no such socket, -1 cannot tell. */
  private inodeNow(s: Omit<KnownSocket, 'inode'>): number {
    try {
      return this.inodeOf!(s.family, s.local, s.localPort, s.remote, s.remotePort);
    } catch {
      return -1;
    }
  }

  /** Answers every waiting lookup with null and stops scanning. */
  close(): void {
    this.closed = true;
    this.timer?.();
    this.timer = null;
    const waiting = this.pending;
    this.pending = new Map();
    this.pendingCount = 0;
    this.known.clear();
    for (const list of waiting.values()) for (const d of list) d(null);
  }

  private schedule(): void {
    if (this.scanning || this.timer || this.closed || this.pending.size === 0) return;
    const wait = Math.max(0, this.nextScanAt - Date.now());
    const run = (): void => {
      this.timer = null;
      void this.runScan();
    };
    // No wait: in this turn of the event loop (a timer would add a millisecond, the life of
    // a short request's client).
    if (wait > 0) {
      const t = setTimeout(run, wait);
      this.timer = () => clearTimeout(t);
    } else {
      const i = setImmediate(run);
      this.timer = () => clearImmediate(i);
    }
  }

  private async runScan(): Promise<void> {
    if (this.closed || this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.pendingCount = 0;
    const known = new Map<string, string>();
    for (const key of batch.keys()) {
      const sock = this.known.get(key);
      this.known.delete(key);
      if (sock === undefined) continue;
      // Ask again (microseconds): a socket closed since its lookup has no owner left in
      // /proc. Answered now, it costs no walk of every process, and it leaves the backoff
      // alone, so the next short-lived client is not made to wait (and miss) for it.
      const inode = this.inodeNow(sock);
      if (inode === 0) {
        this.remember(key, null, Date.now());
        this.gone++;
        for (const d of batch.get(key)!) d(null);
        batch.delete(key);
      } else {
        // A different inode: the port pair's socket now is another one (the port was
        // reused); the lookups of this pair want that one's owner.
        known.set(key, inode > 0 ? String(inode) : sock.inode);
      }
    }
    if (batch.size === 0) {
      this.schedule();
      return;
    }
    this.scanning = true;
    this.inScan = new Set(batch.keys());
    const started = Date.now();
    // The backoff is measured in fractions of a millisecond: whole ones would make a 0.2 ms
    // scan that crossed a millisecond boundary hold the next one back 10 ms.
    const startedPrecise = performance.now();
    let found = new Map<string, ProcessInfo>();
    let complete = false;
    try {
      const r = await this.scan(new Set(batch.keys()), known, started + this.timeoutMs);
      found = r.found;
      complete = r.complete;
    } catch {
      // A /proc surprise: these lookups answer null; the next scan tries again.
    }
    const took = performance.now() - startedPrecise;
    this.scans++;
    const now = Date.now();
    for (const [key, list] of batch) {
      const info = found.get(key) ?? null;
      // "Not found" is cached only when the scan looked everywhere.
      if (info || complete) this.remember(key, info, now);
      for (const d of list) d(info);
    }
    this.nextScanAt = now + Math.max(this.minIntervalMs, 10 * took);
    this.inScan = new Set();
    this.scanning = false;
    this.schedule();
  }

  /** Caches an answer; expired ones are dropped as the cache grows (amortized). */
  private remember(key: string, info: ProcessInfo | null, now: number): void {
    this.cache.set(key, { info, at: now });
    if (this.cache.size <= this.pruneAt) return;
    for (const [k, v] of this.cache) if (now - v.at >= this.cacheMs) this.cache.delete(k);
    this.pruneAt = Math.max(4096, 2 * this.cache.size);
  }

  /**
   * Sockets (inode -> key) of the wanted port pairs, from /proc/net/tcp and tcp6. The tables
   * list every socket of the namespace, TIME_WAIT included (tens of thousands after a burst
   * of connections), so lines are matched on their two port columns without being split;
   * only a matching line is parsed in full.
   */
  private socketsOf(keys: Set<string>): Map<string, string> {
    const wanted = new Set<number>();
    for (const k of keys) {
      const [peer, listener] = k.split(':').map(Number) as [number, number];
      wanted.add(peer * 65536 + listener);
    }
    const inodes = new Map<string, string>();
    let readable = 0;
    for (const [file, addrLen] of [
      ['net/tcp', 8],
      ['net/tcp6', 32],
    ] as const) {
      let text: string;
      try {
        text = readFileSync(`${this.root}/${file}`, 'latin1');
        readable++;
      } catch {
        continue;
      }
      let start = text.indexOf('\n') + 1; // skip the header
      while (start > 0 && start < text.length) {
        let end = text.indexOf('\n', start);
        if (end === -1) end = text.length;
        // "  sl: LOCALADDR:PORT REMADDR:PORT st ..." with fixed-width hex addresses and ports.
        const colon = text.indexOf(': ', start);
        if (colon !== -1 && colon < end) {
          const lp = colon + 2 + addrLen + 1;
          const rp = lp + 5 + addrLen + 1;
          const local = hex4(text, lp);
          const remote = hex4(text, rp);
          if (local >= 0 && remote >= 0 && wanted.has(local * 65536 + remote)) {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            const f = text.slice(start, end).trim().split(/\s+/);
            const inode = f[9];
            if (inode !== undefined && inode !== '0') inodes.set(inode, `${local}:${remote}`);
          }
        }
        start = end + 1;
      }
    }
    if (readable === 0) throw new Error('no /proc/net/tcp');
    return inodes;
  }

  private async scan(
    keys: Set<string>,
    known: Map<string, string>,
    deadline: number,
  ): Promise<{ found: Map<string, ProcessInfo>; complete: boolean }> {
    const found = new Map<string, ProcessInfo>();
    // inode -> key: the ones sock_diag gave, then /proc/net/tcp for the rest (if any).
    const inodes = new Map<string, string>();
    const rest = new Set<string>();
    for (const key of keys) {
      const ino = known.get(key);
      if (ino !== undefined) inodes.set(ino, key);
      else rest.add(key);
    }
    if (rest.size > 0) for (const [ino, key] of this.socketsOf(rest)) inodes.set(ino, key);
    if (inodes.size === 0) return { found, complete: true };
    let pids: number[];
    try {
      pids = this.newestFirst(
        readdirSync(this.root)
          .filter((n) => /^\d+$/.test(n))
          .map(Number),
      );
    } catch {
      return { found, complete: false };
    }
    const live = new Set(pids);
    const first = this.recent.filter((p) => live.has(p));
    const order = [...first, ...pids.filter((p) => !first.includes(p))];
    let ops = 0;
    for (const pid of order) {
      if (found.size === inodes.size) break;
      const dir = `${this.root}/${pid}/fd`;
      let fds: string[];
      try {
        fds = readdirSync(dir);
      } catch {
        continue; // gone, or another user's process without the right to look
      }
      for (const fd of fds) {
        if (++ops % SLICE === 0) {
          await yieldToLoop();
          if (this.closed || Date.now() > deadline) return { found, complete: false };
        }
        let link: string;
        try {
          link = readlinkSync(`${dir}/${fd}`);
        } catch {
          continue;
        }
        if (!link.startsWith('socket:[')) continue;
        const key = inodes.get(link.slice(8, -1));
        if (key === undefined || found.has(key)) continue;
        const name = this.nameOf(pid);
        if (name !== null) {
          found.set(key, { name, pid });
          this.recent = [pid, ...this.recent.filter((p) => p !== pid)].slice(0, RECENT_PIDS);
        }
      }
    }
    return { found, complete: true };
  }

  /**
   * Pids, newest first (a client that just connected is most likely a young process): down
   * from the last pid the kernel gave out (/proc/loadavg), then down from the highest, as
   * pids wrap around at pid_max (32768 on many systems: a busy CI box wraps within hours,
   * and then the newest processes have the smallest pids). Without loadavg, highest first.
   */
  private newestFirst(pids: number[]): number[] {
    pids.sort((a, b) => b - a);
    let last = Number.NaN;
    try {
      last = Number(readFileSync(`${this.root}/loadavg`, 'latin1').trim().split(/\s+/)[4]);
    } catch {
      // no loadavg (a fake /proc): highest first
    }
    if (!Number.isInteger(last) || last <= 0) return pids;
    const from = pids.findIndex((p) => p <= last);
    return from <= 0 ? pids : [...pids.slice(from), ...pids.slice(0, from)];
  }

  private nameOf(pid: number): string | null {
    const now = Date.now();
    const c = this.names.get(pid);
    if (c && now - c.at < this.cacheMs) return c.name;
    try {
      const name = readFileSync(`${this.root}/${pid}/comm`, 'utf8').trim();
      if (this.names.size > 1024) this.names.clear();
      this.names.set(pid, { name, at: now });
      return name;
    } catch {
      return null;
    }
  }
}

/** The 4 hex digits at `at` as a number (upper or lower case), or -1. */
function hex4(text: string, at: number): number {
  let v = 0;
  for (let i = at; i < at + 4; i++) {
    const c = text.charCodeAt(i);
    const d =
      c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}
