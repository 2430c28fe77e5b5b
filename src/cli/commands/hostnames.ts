/**
 * `gsa-emu hostnames`: the running client's Hostname acquisition table (admin API GET
 * /hostnames), as the real client's advanced diagnostics show it: time, FQDN, generated IP,
 * acquired (Y/N), original IP. Only TUN capture has one (its DNS answers the lookups); the
 * proxies take the destination name from the application, so they acquire no hostnames.
 */
import type { Command } from 'commander';
import { adminCall, adminTarget } from '../../client/admin-client.js';
import type { HostnameEntry } from '../../client/client.js';
import { fqdnCell, table } from '../../client/format.js';
import { stateDir } from '../../util/state-dir.js';
import { type AdminOptionValues, addAdminOptions, numberOption } from '../common.js';

export function register(program: Command): void {
  addAdminOptions(
    program
      .command('hostnames')
      .description(
        "show the running client's hostname acquisition table (TUN capture's DNS; newest last)",
      ),
  )
    .option('-n, --limit <n>', 'show the last n names', '50')
    .option('--acquired', 'only names an FQDN rule acquired (a generated 6.6.x.y address)')
    .option('--json', 'print JSON')
    .action(
      async (o: AdminOptionValues & { limit: string; acquired?: boolean; json?: boolean }) => {
        const n = numberOption(o.limit, '--limit', { min: 1 });
        const base = adminTarget(stateDir(o.stateDir), o);
        const r = await adminCall<{ hostnames: HostnameEntry[]; tun?: boolean }>(
          base,
          'GET',
          '/hostnames',
        );
        process.stdout.write(
          hostnamesText(r.hostnames, {
            limit: n,
            acquired: o.acquired,
            json: o.json,
            // An older client's answer has no `tun`: a row says it has a table.
            tun: r.tun ?? r.hostnames.length > 0,
          }),
        );
      },
    );
}

/** HH:MM:SSZ of an ISO time; the text itself when it is not one. */
function timeCell(iso: string): string {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? iso : `${new Date(ms).toISOString().slice(11, 19)}Z`;
}

const FQDN_WIDTH = 40;

/** What `gsa-emu hostnames` prints for the table (oldest first, the last `limit` rows). */
export function hostnamesText(
  all: HostnameEntry[],
  o: {
    limit: number;
    acquired?: boolean | undefined;
    json?: boolean | undefined;
    tun: boolean;
  },
): string {
  const rows = [...(o.acquired ? all.filter((h) => h.acquired) : all)]
    .sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0))
    .slice(-o.limit);
  if (o.json) return `${JSON.stringify(rows, null, 2)}\n`;
  if (rows.length === 0) {
    if (!o.tun) {
      return 'no hostname acquisition table: this client captures with its SOCKS5 and HTTP proxies, which take the destination name from the application, not from DNS (TUN capture, `up --tun` or `netns`, has one)\n';
    }
    return o.acquired && all.length ? 'no acquired names yet\n' : 'no DNS lookups yet\n';
  }
  return `${table(
    ['TIME', 'FQDN', 'GENERATED IP', 'ACQUIRED', 'ORIGINAL IP'],
    rows.map((h) => [
      timeCell(h.time),
      fqdnCell(h.fqdn, FQDN_WIDTH),
      h.generatedIp ?? '',
      h.acquired ? 'Y' : 'N',
      h.originalIp ?? '',
    ]),
    [9, FQDN_WIDTH, 15, 8, 15],
  )}\n`;
}
