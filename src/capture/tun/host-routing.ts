/**
 * Host mode (`gsa-emu up --tun` without a namespace): route the host's IPv4 traffic into
 * the TUN with policy routing, while the emulator's own sockets keep the normal routes.
 *
 * Loop avoidance by source address (it needs no socket option before connect(), which
 * Node's net API cannot give): the emulator binds its sockets (bypass, edge, DNS upstream)
 * to `sourceAddress`, the host's own address, and
 *
 *   pref P    from <sourceAddress> lookup main          emulator sockets: normal routes
 *   pref P+1  lookup main suppress_prefixlength 0       LAN/connected routes stay direct
 *   pref P+2  lookup <table>                            everything else: default dev tunX
 *
 * Unbound application sockets have no source yet at route lookup, miss rule P, lose the
 * main table's default route to rule P+1, and take the TUN. (SO_MARK with `fwmark` rules
 * works the same way; the addon's `setMark` exists for sockets created natively.)
 */
import { spawnSync } from 'node:child_process';

export interface HostRoutingOptions {
  tunName: string;
  /** The host address the emulator binds its own sockets to. */
  sourceAddress: string;
  /** Routing table holding `default dev tunName` (default 2025). */
  table?: number;
  /** Preference of the first rule (default 10000; three consecutive values are used). */
  pref?: number;
  /** Run the `ip` commands inside this namespace (tests). */
  netns?: string | null;
}

function ip(netns: string | null | undefined, args: string[], check = true): void {
  const full = netns ? ['-n', netns, ...args] : args;
  const r = spawnSync('ip', full, { encoding: 'utf8' });
  if (check && r.status !== 0) {
    throw new Error(`ip ${full.join(' ')}: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
  }
}

/** Install the rules; returns the function that removes them (idempotent). */
export function setupHostRouting(o: HostRoutingOptions): () => void {
  const table = String(o.table ?? 2025);
  const pref = o.pref ?? 10000;
  const ns = o.netns;
  const undo = (): void => {
    ip(ns, ['-4', 'rule', 'del', 'pref', String(pref)], false);
    ip(ns, ['-4', 'rule', 'del', 'pref', String(pref + 1)], false);
    ip(ns, ['-4', 'rule', 'del', 'pref', String(pref + 2)], false);
    ip(ns, ['-4', 'route', 'flush', 'table', table], false);
  };
  try {
    ip(ns, ['-4', 'route', 'replace', 'default', 'dev', o.tunName, 'table', table]);
    ip(ns, ['-4', 'rule', 'add', 'pref', String(pref), 'from', o.sourceAddress, 'lookup', 'main']);
    ip(ns, [
      '-4',
      'rule',
      'add',
      'pref',
      String(pref + 1),
      'lookup',
      'main',
      'suppress_prefixlength',
      '0',
    ]);
    ip(ns, ['-4', 'rule', 'add', 'pref', String(pref + 2), 'lookup', table]);
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
