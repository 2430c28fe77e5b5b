/** `gsa-emu status`: the running client's state, tiles and channels (admin API GET /status). */
import type { Command } from 'commander';
import { adminCall, adminUrl } from '../../client/admin-client.js';
import type { HealthCheck, StatusView } from '../../client/diagnostics.js';
import { formatStatus, table } from '../../client/format.js';
import { stateDir } from '../../util/state-dir.js';

export function register(program: Command): void {
  program
    .command('status')
    .description(
      'show the running client: state, tiles, channels (and health checks with --health)',
    )
    .option('--admin <host:port>', 'admin API address (default: from <state-dir>/client.json)')
    .option('--state-dir <dir>', 'state folder of the running client (default ~/.gsa-emu)')
    .option('--health', 'also run the health checks')
    .option('--json', 'print JSON')
    .action(async (o: { admin?: string; stateDir?: string; health?: boolean; json?: boolean }) => {
      const base = adminUrl(stateDir(o.stateDir), o.admin);
      const st = await adminCall<StatusView>(base, 'GET', '/status');
      const health = o.health
        ? (await adminCall<{ checks: HealthCheck[] }>(base, 'GET', '/health')).checks
        : null;
      if (o.json) {
        process.stdout.write(`${JSON.stringify(health ? { ...st, health } : st, null, 2)}\n`);
        return;
      }
      process.stdout.write(`${formatStatus(st)}\n`);
      if (health) {
        const rows = health.map((c) => [c.status.toUpperCase(), c.name, c.detail]);
        process.stdout.write(`\n${table(['', 'HEALTH CHECK', 'DETAIL'], rows, [5, 38, 60])}\n`);
      }
    });
}
