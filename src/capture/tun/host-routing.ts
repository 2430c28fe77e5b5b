/**
 * Host mode (`gsa-emu up --tun` without a namespace): route the host's IPv4 traffic into
 * the TUN with policy routing, while the emulator's own sockets keep the normal routes.
 *
 * Loop avoidance by source address (it needs no socket option before connect(), which
 * Node's net API cannot give): the emulator binds its sockets (bypass, edge, DNS upstream)
 * to `sourceAddress`, the host's own address, and
 *
 *   pref P    from <sourceAddress> lookup main          emulator sockets: normal routes
 *   pref P+1  ipproto udp dport 53 lookup <table>       DNS into the TUN, even to a LAN resolver
 *   pref P+2  lookup main suppress_prefixlength 0       LAN/connected routes stay direct
 *   pref P+3  lookup <table>                            everything else: default dev tunX
 *
 * Unbound application sockets have no source yet at route lookup, miss rule P, lose the
 * main table's default route to rule P+2, and take the TUN. Without a source address (no
 * socket of the emulator leaves loopback, e.g. the in-process demo edge) rule P is left
 * out. Loopback never reaches these rules (the `local` table, pref 0, comes first).
 * (SO_MARK with `fwmark` rules works the same way; the addon's `setMark` exists for
 * sockets created natively.) See docs/decisions/tun-host-source-binding.md.
 */
import { spawnSync } from 'node:child_process';

export interface HostRoutingOptions {
  tunName: string;
  /** The host address the emulator binds its own sockets to; null: no such sockets. */
  sourceAddress: string | null;
  /** Routing table holding `default dev tunName` (default 2025). */
  table?: number;
  /** Preference of the first rule (default 10000; four consecutive values are used). */
  pref?: number;
  /** Send UDP to port 53 into the TUN before the connected routes (default true). */
  captureDns?: boolean;
  /** Run the `ip` commands inside this namespace (tests). */
  netns?: string | null;
}

export const HOST_ROUTING_TABLE = 2025;
export const HOST_ROUTING_PREF = 10000;
const RULES = 4;

function ip(netns: string | null | undefined, args: string[], check = true): string {
  const full = netns ? ['-n', netns, ...args] : args;
  const r = spawnSync('ip', full, { encoding: 'utf8' });
  if (check && r.status !== 0) {
    throw new Error(`ip ${full.join(' ')}: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
  }
  return r.stdout ?? '';
}

/** Remove the rules and the table's routes (whatever installed them). Never throws. */
export function removeHostRouting(
  o: Pick<HostRoutingOptions, 'table' | 'pref' | 'netns'> = {},
): void {
  const pref = o.pref ?? HOST_ROUTING_PREF;
  for (let i = 0; i < RULES; i++) {
    // A pref may hold several rules (`ip rule add` does not refuse duplicates): bounded.
    for (let n = 0; n < 8; n++) {
      const r = spawnSync(
        'ip',
        [...(o.netns ? ['-n', o.netns] : []), '-4', 'rule', 'del', 'pref', String(pref + i)],
        { encoding: 'utf8' },
      );
      if (r.status !== 0) break;
    }
  }
  ip(o.netns, ['-4', 'route', 'flush', 'table', String(o.table ?? HOST_ROUTING_TABLE)], false);
}

/** What already occupies the rules' prefs or the table (one line), or null when free. */
export function hostRoutingInUse(
  o: Pick<HostRoutingOptions, 'table' | 'pref' | 'netns'> = {},
): string | null {
  const pref = o.pref ?? HOST_ROUTING_PREF;
  const table = String(o.table ?? HOST_ROUTING_TABLE);
  for (let i = 0; i < RULES; i++) {
    const out = ip(o.netns, ['-4', 'rule', 'show', 'pref', String(pref + i)], false).trim();
    if (out) return `ip rule pref ${pref + i} exists (${out.split('\n')[0]})`;
  }
  const routes = ip(o.netns, ['-4', 'route', 'show', 'table', table], false).trim();
  if (routes) return `routing table ${table} is not empty (${routes.split('\n')[0]})`;
  return null;
}

/** Install the rules; returns the function that removes them (idempotent). */
export function setupHostRouting(o: HostRoutingOptions): () => void {
  const table = String(o.table ?? HOST_ROUTING_TABLE);
  const pref = o.pref ?? HOST_ROUTING_PREF;
  const ns = o.netns;
  const undo = (): void => removeHostRouting(o);
  try {
    ip(ns, ['-4', 'route', 'replace', 'default', 'dev', o.tunName, 'table', table]);
    if (o.sourceAddress) {
      ip(ns, [
        '-4',
        'rule',
        'add',
        'pref',
        String(pref),
        'from',
        o.sourceAddress,
        'lookup',
        'main',
      ]);
    }
    if (o.captureDns !== false) {
      ip(ns, [
        '-4',
        'rule',
        'add',
        'pref',
        String(pref + 1),
        'ipproto',
        'udp',
        'dport',
        '53',
        'lookup',
        table,
      ]);
    }
    ip(ns, [
      '-4',
      'rule',
      'add',
      'pref',
      String(pref + 2),
      'lookup',
      'main',
      'suppress_prefixlength',
      '0',
    ]);
    ip(ns, ['-4', 'rule', 'add', 'pref', String(pref + 3), 'lookup', table]);
  } catch (err) {
    undo();
    throw err;
  }
  let done = false;
  return () => {
    if (done) return;
    done = true;
    undo();
  };
}
