/** `gsa-emu flows`: the running client's Traffic table (admin API GET /flows). */
import type { Command } from 'commander';
import { adminCall, adminTarget } from '../../client/admin-client.js';
import { formatFlows } from '../../client/format.js';
import type { FlowRecord } from '../../forward/flow-table.js';
import { stateDir } from '../../util/state-dir.js';
import { addAdminOptions, numberOption } from '../common.js';

export function register(program: Command): void {
  addAdminOptions(
    program.command('flows').description('show the flow table of the running client (newest last)'),
  )
    .option('-n, --limit <n>', 'show the last n flows', '50')
    .option('--active', 'only active flows')
    .option(
      '--wide',
      "every column of the real client's Traffic tab (end time, source port, whole connection id, flow id, rule id)",
    )
    .option('--json', 'print JSON')
    .action(
      async (o: {
        admin?: string;
        adminToken?: string;
        stateDir?: string;
        limit: string;
        active?: boolean;
        json?: boolean;
        wide?: boolean;
      }) => {
        const n = numberOption(o.limit, '--limit', { min: 1 });
        const base = adminTarget(stateDir(o.stateDir), o);
        const flows = (await adminCall<{ flows: FlowRecord[] }>(base, 'GET', '/flows')).flows;
        process.stdout.write(
          flowsText(flows, { limit: n, active: o.active, json: o.json, wide: o.wide }),
        );
      },
    );
}

/** What `gsa-emu flows` prints for the client's flow table (newest last). */
export function flowsText(
  all: FlowRecord[],
  o: {
    limit: number;
    active?: boolean | undefined;
    json?: boolean | undefined;
    wide?: boolean | undefined;
  },
): string {
  const flows = (o.active ? all.filter((f) => f.status === 'Active') : all).slice(-o.limit);
  if (o.json) return `${JSON.stringify(flows, null, 2)}\n`;
  if (flows.length) return `${formatFlows(flows, { wide: o.wide })}\n`;
  // --active with only closed flows: say so, not "no flows yet".
  return o.active && all.length ? 'no active flows\n' : 'no flows yet\n';
}
