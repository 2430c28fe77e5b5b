/**
 * Name resolution for the forwarder: a hosts map first (demo and test names -> loopback
 * servers), then the system resolver (`dns.lookup`, IPv4 preferred, as the real client's
 * "IPv4 preferred" health check expects) bounded by a timeout. Never throws: a name that
 * does not resolve in time yields null.
 */
import { lookup } from 'node:dns/promises';
import { ipFamily } from '../util/ip.js';

export interface ResolverOptions {
  /** name (lowercase, no trailing dot) -> IP literal. `*.suffix` keys match any name under it. */
  hosts?: Record<string, string> | Map<string, string>;
  /** Use the system resolver for names not in `hosts`. Default true. */
  system?: boolean;
  /** System lookup timeout in ms. Default 3,000. */
  timeoutMs?: number;
}

export type Resolve = (name: string) => Promise<string | null>;

export class Resolver {
  private readonly hosts: Map<string, string>;
  private readonly system: boolean;
  private readonly timeoutMs: number;

  constructor(opts: ResolverOptions = {}) {
    const h = opts.hosts;
    this.hosts = new Map();
    if (h) {
      for (const [k, v] of h instanceof Map ? h : Object.entries(h)) {
        this.hosts.set(k.toLowerCase().replace(/\.$/, ''), v);
      }
    }
    this.system = opts.system ?? true;
    this.timeoutMs = opts.timeoutMs ?? 3000;
  }

  /** The hosts-map answer for `name`, or undefined. Synchronous (no DNS). */
  fromHosts(name: string): string | undefined {
    const n = name.toLowerCase();
    const exact = this.hosts.get(n);
    if (exact !== undefined) return exact;
    for (let i = n.indexOf('.'); i !== -1; i = n.indexOf('.', i + 1)) {
      const w = this.hosts.get(`*${n.slice(i)}`);
      if (w !== undefined) return w;
    }
    return undefined;
  }

  /** IP literal for `name`, or null (unknown, failed, timed out). */
  async resolve(name: string): Promise<string | null> {
    if (ipFamily(name) !== 0) return name;
    const h = this.fromHosts(name);
    if (h !== undefined) return h;
    if (!this.system) return null;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        lookup(name, { family: 0, order: 'ipv4first' }).then((r) => r.address),
        new Promise<null>((res) => {
          timer = setTimeout(() => res(null), this.timeoutMs);
        }),
      ]);
    } catch {
      return null;
    } finally {
      clearTimeout(timer);
    }
  }
}
