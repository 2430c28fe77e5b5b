/**
 * `gsa-emu profiles validate FILE`, `gsa-emu profiles show [FILE]`, and `gsa-emu profiles
 * refresh`: the running client fetches its forwarding profiles from its edge now (admin API
 * POST /profile/refresh), rather than at its next poll (`up --profile-poll`).
 */
import type { Command } from 'commander';
import { adminCall, adminTarget } from '../../client/admin-client.js';
import type { ProfileRefresh } from '../../client/client.js';
import type { DestinationSpec, TenantSpec } from '../../policy/model.js';
import { loadTenantFile } from '../../policy/tenant-file.js';
import { stateDir } from '../../util/state-dir.js';
import { type AdminOptionValues, addAdminOptions } from '../common.js';

function dest(d: DestinationSpec): string {
  return d.type === 'ipRange' ? `${d.begin}-${d.end}` : d.value;
}

/** The forwarding profile as the real client's diagnostics list it: rules grouped by profile. */
export function formatProfiles(t: TenantSpec): string {
  const out: string[] = [`tenant ${t.name} (${t.tenantId})`];
  for (const p of t.profiles) {
    out.push(
      `\n${p.name}  [${p.type}, ${p.state}, priority ${p.priority}, hardening ${p.fallback}]`,
    );
    for (const q of p.policies) {
      out.push(
        `  ${q.name}  [link ${q.linkState}${q.group ? `, group ${q.group}` : ''}${q.kind ? `, ${q.kind}` : ''}]`,
      );
      for (const r of q.rules) {
        const ports = r.ports.length
          ? r.ports.map((x) => (x.from === x.to ? `${x.from}` : `${x.from}-${x.to}`)).join(',')
          : 'any';
        const protos = r.protocols.length ? r.protocols.join(',') : 'any';
        const action = r.action === 'forward' ? 'tunnel' : 'bypass';
        // A rule's own clientFallbackAction, when it differs from its profile's.
        const own =
          r.fallback !== undefined && r.fallback !== p.fallback ? `, hardening ${r.fallback}` : '';
        out.push(
          `    ${action.padEnd(6)} ${protos.padEnd(7)} ${ports.padEnd(12)} ${r.destinations.map(dest).join(' ')}  (${r.name}, id ${r.id}${own})`,
        );
      }
    }
  }
  return out.join('\n');
}

export function register(program: Command): void {
  const profiles = program
    .command('profiles')
    .description(
      "check and show forwarding profiles; make the running client fetch its edge's now (refresh)",
    );
  profiles
    .command('validate')
    .description('validate a forwarding-profile file (Graph JSON or YAML) and list every problem')
    .argument('<file>', 'the file to check')
    .action((file: string) => {
      // An invalid file is a ConfigError: `gsa-emu: <file>: <every problem>` on stderr, exit 1
      // (docs/errors.md), as for every other command.
      const { tenant } = loadTenantFile(file);
      const rules = tenant.profiles.reduce(
        (n, p) => n + p.policies.reduce((m, q) => m + q.rules.length, 0),
        0,
      );
      process.stdout.write(
        `${file}: valid: ${tenant.profiles.length} profiles, ${rules} rules (tenant ${tenant.tenantId})\n`,
      );
    });
  profiles
    .command('show')
    .description('list the rules grouped by profile (the default tenant when no file is given)')
    .argument('[file]', 'a forwarding-profile file')
    .option('--json', 'print the normalized model as JSON')
    .action((file: string | undefined, opts: { json?: boolean }) => {
      const { tenant } = loadTenantFile(file);
      process.stdout.write(
        opts.json ? `${JSON.stringify(tenant, null, 2)}\n` : `${formatProfiles(tenant)}\n`,
      );
    });
  addAdminOptions(
    profiles
      .command('refresh')
      .description(
        "make the running client fetch its forwarding profiles from its edge now, not at its next poll (up --profile-poll): after changing them through the edge's control API",
      )
      .option('--json', "print the admin API's answer as JSON")
      .addHelpText(
        'after',
        '\nPrints "profiles refreshed from <source>: generation <n> (changed)", or "(unchanged)"\nwhen the edge serves what the client has. Exit 1 (the reason on stderr) when the edge\ndoes not answer or sends profiles the client rejects (the client keeps its profiles),\nand when the client reads its profiles from a file (up --tenant <file>): there is no edge\nto ask; restart "gsa-emu up" to read the file again.',
      ),
  ).action(async (o: AdminOptionValues & { json?: boolean }) => {
    const base = adminTarget(stateDir(o.stateDir), o);
    // The client may wait for a poll in flight, then for its token and the edge (10 s each).
    const r = await adminCall<Omit<ProfileRefresh, 'error'>>(
      base,
      'POST',
      '/profile/refresh',
      {},
      { timeoutMs: 45_000 },
    );
    process.stdout.write(
      o.json
        ? `${JSON.stringify(r, null, 2)}\n`
        : `profiles refreshed from ${r.profileSource}: generation ${r.classifierGeneration} (${r.changed ? 'changed' : 'unchanged'})\n`,
    );
  });
}
