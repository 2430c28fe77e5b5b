/**
 * Packet devices: the Linux TUN (through the thin native addon in native/tun) and an
 * in-memory FakeDevice with the same interface for unit tests.
 *
 * Packets arrive in batches: one Buffer holding up to `maxBatch` packets and a Uint32Array
 * of `[offset, length]` pairs, delivered in one call per readable event (no timers, no
 * polling loop). The Buffer is fresh per batch, so a consumer may keep views of it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TunUnavailableError } from '../../errors.js';

/** `offs[2*i]` is the offset of packet i in `buf`, `offs[2*i+1]` its length. */
export type PacketBatchHandler = (buf: Buffer, offs: Uint32Array, count: number) => void;

export interface DeviceStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Packets that met EAGAIN and waited in the native queue for writability. */
  txQueued: number;
  /** Packets dropped because the write queue was full (8 MiB). */
  txDropped: number;
  readErrors: number;
  writeErrors: number;
}

export interface PacketDevice {
  readonly name: string;
  readonly mtu: number;
  /** Set the receiver of packet batches (reading starts with the first call). */
  onPackets(cb: PacketBatchHandler): void;
  /** Write whole IP packets, in order; returns how many were accepted. */
  write(pkts: readonly Uint8Array[]): number;
  close(): void;
  stats(): DeviceStats;
}

interface TunAddon {
  open(name: string | null, mtu: number, netns: string | null): { fd: number; name: string };
  start(fd: number, cb: PacketBatchHandler, maxBatch: number, mtu: number): object;
  write(handle: object, pkts: readonly Uint8Array[]): number;
  stats(handle: object): DeviceStats;
  close(handle: object): void;
  listenTcp4(netns: string | null, ip: string, port: number, backlog: number): number;
  setMark(fd: number, mark: number): void;
  sockInode(
    family: 4 | 6,
    localIp: string,
    localPort: number,
    remoteIp: string,
    remotePort: number,
  ): number;
}

export interface OpenTunOptions {
  /** Interface name (IFNAMSIZ-1 chars); default: the kernel chooses (tun0, tun1, ...). */
  name?: string;
  /** MTU set on the link; default 65535 (fewer packets, less per-packet cost). */
  mtu?: number;
  /**
   * Create the device inside this network namespace: a name from `ip netns` or a path
   * (/var/run/netns/NAME, /proc/PID/ns/net). Only the opening thread enters it, briefly.
   */
  netns?: string | null;
  /** Set the MTU and bring the link up from the addon (default true). */
  up?: boolean;
  /** Most packets delivered per batch (1-256, default 64). */
  maxBatch?: number;
}

const ADDON_REL = join('native', 'tun', 'build', 'Release', 'tun.node');
let cached: TunAddon | null = null;

/** The addon's path: GSA_EMU_TUN_ADDON, else native/tun/build/Release next to the package. */
export function addonPath(): string {
  const env = process.env.GSA_EMU_TUN_ADDON;
  if (env) return env;
  return addonPathFrom(dirname(fileURLToPath(import.meta.url)));
}

/**
 * The addon at most 6 levels above `start` (this module's folder); when it is not built,
 * where it would be: next to the package.json above `start` (from dist/ and from
 * dist-bench/src/ alike), so that the message names the right file.
 */
export function addonPathFrom(start: string, exists: (p: string) => boolean = existsSync): string {
  let dir = start;
  let root: string | null = null;
  for (let i = 0; i < 6; i++) {
    const p = join(dir, ADDON_REL);
    if (exists(p)) return p;
    if (root === null && exists(join(dir, 'package.json'))) root = dir;
    dir = dirname(dir);
  }
  return join(root ?? join(start, '..', '..', '..'), ADDON_REL);
}

/** Why the addon cannot be used (one line: what is missing and how to get it), or null. */
export function addonUnavailable(): string | null {
  const p = addonPath();
  if (existsSync(p)) return null;
  return `the native addon is not built (${p} is missing): run \`npm rebuild gsa-emu\` (\`npm install\` skips it where install scripts are off) with python3, make and a C compiler (cc or gcc) installed, or \`node scripts/build-addon.mjs\` in a checkout`;
}

/** Load the native addon or throw TunUnavailableError saying exactly what is missing. */
export function loadAddon(): TunAddon {
  if (cached) return cached;
  if (process.platform !== 'linux') {
    throw new TunUnavailableError(
      `not Linux (this is ${process.platform}); TUN capture is Linux-only, use SOCKS/HTTP capture`,
    );
  }
  const missing = addonUnavailable();
  if (missing) throw new TunUnavailableError(missing);
  const p = addonPath();
  try {
    cached = createRequire(import.meta.url)(p) as TunAddon;
  } catch (err) {
    throw new TunUnavailableError(
      `the native addon at ${p} does not load (${(err as Error).message}): rebuild it with \`npm rebuild gsa-emu\``,
    );
  }
  return cached;
}

/** A namespace name becomes its bind-mount path; paths pass through. */
export function netnsPath(ns: string | null | undefined): string | null {
  if (!ns) return null;
  return ns.includes('/') ? ns : `/var/run/netns/${ns}`;
}

/** Translate an errno from the addon into what is missing. */
export function explainOpenError(err: unknown, netns: string | null): TunUnavailableError {
  const e = err as NodeJS.ErrnoException;
  const msg = e?.message ?? String(err);
  if (msg.startsWith('setns')) {
    if (e.code === 'ENOENT')
      return new TunUnavailableError(`network namespace ${netns} does not exist`);
    return new TunUnavailableError(
      `cannot enter network namespace ${netns} (${msg}): needs root or CAP_SYS_ADMIN`,
    );
  }
  if (e.code === 'ENOENT' || e.code === 'ENODEV' || e.code === 'ENXIO') {
    return new TunUnavailableError(
      `/dev/net/tun is missing (${msg}): load the tun module (modprobe tun) or, in a container, pass --device /dev/net/tun`,
    );
  }
  if (e.code === 'EACCES' && msg.startsWith('open')) {
    return new TunUnavailableError(
      `not permitted to open /dev/net/tun (${msg}): run as root, or grant CAP_NET_ADMIN and read/write access to /dev/net/tun (mode 0666 or group)`,
    );
  }
  if (e.code === 'EPERM' || e.code === 'EACCES') {
    return new TunUnavailableError(
      `not permitted to create a TUN device (${msg}): run as root or grant CAP_NET_ADMIN (e.g. setcap cap_net_admin+ep "$(command -v node)")`,
    );
  }
  return new TunUnavailableError(`cannot open the TUN device: ${msg}`);
}

class TunDevice implements PacketDevice {
  readonly name: string;
  readonly mtu: number;
  #addon: TunAddon;
  #fd: number;
  #handle: object | null = null;
  #cb: PacketBatchHandler = () => {};
  #closed = false;
  #maxBatch: number;
  #last: DeviceStats = emptyStats();

  constructor(addon: TunAddon, fd: number, name: string, mtu: number, maxBatch: number) {
    this.#addon = addon;
    this.#fd = fd;
    this.name = name;
    this.mtu = mtu;
    this.#maxBatch = maxBatch;
  }

  onPackets(cb: PacketBatchHandler): void {
    this.#cb = cb;
    if (!this.#handle && !this.#closed) {
      this.#handle = this.#addon.start(
        this.#fd,
        (buf, offs, n) => this.#cb(buf, offs, n),
        this.#maxBatch,
        this.mtu,
      );
    }
  }

  write(pkts: readonly Uint8Array[]): number {
    if (this.#closed || pkts.length === 0) return 0;
    if (!this.#handle) this.onPackets(this.#cb);
    return this.#addon.write(this.#handle!, pkts);
  }

  stats(): DeviceStats {
    if (this.#handle && !this.#closed) this.#last = this.#addon.stats(this.#handle);
    return { ...this.#last };
  }

  close(): void {
    if (this.#closed) return;
    if (this.#handle) {
      this.#last = this.#addon.stats(this.#handle);
      this.#addon.close(this.#handle);
    } else {
      // Never started: close the bare fd through a throwaway handle.
      const h = this.#addon.start(this.#fd, () => {}, 1, this.mtu);
      this.#addon.close(h);
    }
    this.#closed = true;
  }
}

/**
 * A `%` in an interface name makes it a template the kernel fills in (TUNSETIFF: gsa%d ->
 * gsa0, gsa1, ...; the device's `name` is the one it chose). Anything but exactly one `%d`
 * is refused by the kernel with "Invalid argument": what is wrong with `name`, or null.
 */
export function tunNameTemplateProblem(name: string): string | null {
  const at = name.indexOf('%');
  if (at < 0 || (name[at + 1] === 'd' && !name.includes('%', at + 2))) return null;
  return "'%' only as one %d, a number the kernel chooses (gsa%d: gsa0, gsa1, ...)";
}

/** Open a TUN device (IFF_TUN|IFF_NO_PI, non-blocking). Throws TunUnavailableError. */
export function openTun(opts: OpenTunOptions = {}): PacketDevice {
  const addon = loadAddon();
  const mtu = opts.mtu ?? 65535;
  const ns = netnsPath(opts.netns);
  let r: { fd: number; name: string };
  try {
    r = addon.open(opts.name ?? null, opts.up === false ? 0 : mtu, ns);
  } catch (err) {
    throw explainOpenError(err, ns);
  }
  return new TunDevice(addon, r.fd, r.name, mtu, Math.max(1, Math.min(256, opts.maxBatch ?? 64)));
}

/**
 * A bound, listening TCP socket created inside network namespace `netns` (name or path),
 * for `net.Server.listen({ fd })`. The calling thread enters the namespace for socket()
 * only.
 */
export function listenTcp4InNetns(
  netns: string | null,
  ip: string,
  port: number,
  backlog = 511,
): number {
  return loadAddon().listenTcp4(netnsPath(netns), ip, port, backlog);
}

/** SO_MARK on a socket fd (for policy routing of the emulator's own sockets). */
export function setSocketMark(fd: number, mark: number): void {
  loadAddon().setMark(fd, mark);
}

function emptyStats(): DeviceStats {
  return {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    txQueued: 0,
    txDropped: 0,
    readErrors: 0,
    writeErrors: 0,
  };
}

/**
 * In-memory device for unit tests: `inject()` delivers packets as one batch (like a
 * readable event); written packets are copied into `written` and passed to `onWrite`.
 */
export class FakeDevice implements PacketDevice {
  readonly name: string;
  readonly mtu: number;
  readonly written: Buffer[] = [];
  /** Called for every written packet (a copy). */
  onWrite: ((pkt: Buffer) => void) | null = null;
  /** Keep at most this many packets in `written` (oldest dropped). */
  keep = 10_000;
  #cb: PacketBatchHandler | null = null;
  #closed = false;
  #stats = emptyStats();

  constructor(opts: { name?: string; mtu?: number } = {}) {
    this.name = opts.name ?? 'fake0';
    this.mtu = opts.mtu ?? 65535;
  }

  onPackets(cb: PacketBatchHandler): void {
    this.#cb = cb;
  }

  /** Deliver packets to the reader as one batch (copied into one buffer, like the addon). */
  inject(pkts: readonly Uint8Array[]): void {
    if (this.#closed || !this.#cb || pkts.length === 0) return;
    let total = 0;
    for (const p of pkts) total += p.length;
    const buf = Buffer.allocUnsafe(total);
    const offs = new Uint32Array(pkts.length * 2);
    let o = 0;
    for (let i = 0; i < pkts.length; i++) {
      const p = pkts[i]!;
      buf.set(p, o);
      offs[2 * i] = o;
      offs[2 * i + 1] = p.length;
      o += p.length;
      this.#stats.rxPackets++;
      this.#stats.rxBytes += p.length;
    }
    this.#cb(buf, offs, pkts.length);
  }

  write(pkts: readonly Uint8Array[]): number {
    if (this.#closed) return 0;
    for (const p of pkts) {
      const copy = Buffer.from(p);
      this.written.push(copy);
      if (this.written.length > this.keep) this.written.shift();
      this.#stats.txPackets++;
      this.#stats.txBytes += p.length;
      this.onWrite?.(copy);
    }
    return pkts.length;
  }

  /** Remove and return everything written so far. */
  take(): Buffer[] {
    return this.written.splice(0, this.written.length);
  }

  stats(): DeviceStats {
    return { ...this.#stats };
  }

  close(): void {
    this.#closed = true;
    this.#cb = null;
  }
}
