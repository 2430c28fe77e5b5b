/**
 * `gsa-emu explain <url | host[:port] | ip[:port]>`: the decision for one flow and the rule
 * behind it, for the default tenant or a given profile file; with `--running`, the running
 * client's own answer (its admin API's GET /explain: its current profiles, tiles and
 * resolver).
 */
import type { Command } from 'commander';
import { compile } from '../../classify/compile.js';
import { forwardsNothing } from '../../classify/decisions.js';
import {
  decideSingleLabel,
  newFlow,
  PROTO_TCP,
  PROTO_UDP,
  singleLabelChannelOff,
} from '../../classify/types.js';
import { adminCall, adminTarget } from '../../client/admin-client.js';
import type { Explanation } from '../../client/explain.js';
import { UsageError } from '../../errors.js';
import type { ChannelName } from '../../policy/model.js';
import { ipFamily, parseIPv4, parseIPv6, unmapIPv4 } from '../../util/ip.js';
import { stateDir } from '../../util/state-dir.js';
import { parseTarget, type Target, targetText } from '../../util/target.js';
import {
  ADMIN_TOKEN_HELP,
  addPolicyOptions,
  channelOf,
  isChannelName,
  loadPolicyContext,
  type PolicyOptions,
} from '../common.js';

interface ExplainOptions extends PolicyOptions {
  udp?: boolean;
  ip?: string;
  json?: boolean;
  off?: ChannelName[];
  running?: boolean;
  admin?: string;
  /** With --admin: a file holding the admin API's token. */
  adminToken?: string;
  stateDir?: string;
}

const CHANNEL_LABEL: Record<ChannelName, string> = {
  m365: 'Microsoft 365',
  private: 'Private Access',
  internet: 'Internet Access',
};

/** Classify one target (pure: used by the command and by tests). */
export function explain(target: Target, opts: ExplainOptions): Explanation {
  const ctx = loadPolicyContext(opts);
  for (const ch of opts.off ?? []) ctx.tiles.toggle(ch, false);
  const classifier = compile(ctx.loaded.tenant, ctx.state());
  const flow = newFlow();
  flow.proto = target.proto === 'udp' ? PROTO_UDP : PROTO_TCP;
  flow.port = target.port;
  flow.host = target.host;
  // ::ffff:a.b.c.d is the IPv4 host, as the proxies and `explain --running` take it.
  const given = target.ip ?? opts.ip ?? null;
  const ip = given === null ? null : unmapIPv4(given);
  flow.family = ip ? ipFamily(ip) : 0;
  if (ip && flow.family === 0) throw new UsageError(`--ip "${ip}" is not an IP address`);
  if (flow.family === 4) flow.ip4 = parseIPv4(ip!);
  if (flow.family === 6) parseIPv6(ip!, flow.ip6);
  const qualified = decideSingleLabel(classifier, flow);
  const plain = qualified ?? classifier.decide(flow);
  const off = qualified ? null : singleLabelChannelOff(classifier, flow, plain);
  const decision = off?.decision ?? plain;
  return {
    target: targetText(target),
    protocol: target.proto,
    host: target.host,
    ...(qualified ? { qualified: flow.host! } : {}),
    ...(off ? { qualifiedWhenOn: off.name } : {}),
    ip,
    port: target.port,
    decision,
    ...(ctx.warnings.length ? { warnings: ctx.warnings } : {}),
  };
}

export function formatExplanation(e: Explanation): string {
  const d = e.decision;
  const lines: string[] = [];
  const via = d.channel ? ` on the ${CHANNEL_LABEL[d.channel]} channel` : '';
  lines.push(`${e.target}${e.host && e.ip ? ` (${e.ip})` : ''}`);
  if (e.qualified) lines.push(`  name      ${e.qualified} (Private DNS, single-label name)`);
  if (e.qualifiedWhenOn) {
    lines.push(
      `  name      ${e.host} as given (with the Private Access channel on: ${e.qualifiedWhenOn}, Private DNS)`,
    );
  }
  lines.push(`  action    ${d.action}${d.action === 'tunnel' ? via : ''}`);
  if (d.profileName)
    lines.push(
      `  profile   ${d.profileName} (${d.channel ? `${d.channel}, ` : ''}id ${d.profileId})`,
    );
  if (d.policyName) lines.push(`  policy    ${d.policyName} (id ${d.policyId})`);
  if (d.ruleName) lines.push(`  rule      ${d.ruleName} (id ${d.ruleId})`);
  if (d.matched) lines.push(`  matched   ${d.matched}`);
  if (d.category) lines.push(`  category  ${d.category}`);
  if (d.appId) lines.push(`  app       ${d.appId}`);
  if (d.action === 'tunnel') lines.push(`  hardening ${d.fallback} when the edge is unreachable`);
  lines.push(`  reason    ${d.reason}`);
  if (e.resolved) lines.push('  resolved  no rule acquired the name: the client resolved it');
  if (e.unresolvable) {
    lines.push(
      `  resolved  the client has no address for ${e.host}: a proxy flow to it fails (cannot resolve ${e.host})`,
    );
  } else if (!e.ip && !d.ruleId && !forwardsNothing(d)) {
    lines.push('  note      no address given, so IP rules were not evaluated: add --ip <address>');
  }
  for (const w of e.warnings ?? []) lines.push(`  warning   ${w}`);
  return lines.join('\n');
}

export function register(program: Command): void {
  const cmd = program
    .command('explain')
    .description('show how a flow would be classified and the rule behind the decision')
    // Optional to commander only: `--off <channel...>` takes every word after it, so a target
    // after it (`explain --off internet host`) lands in --off's list; offArgs() takes it back.
    .argument(
      '[target]',
      'a URL, host[:port], ip[:port] or [ipv6]:port (port defaults to 443); udp://host:port for UDP',
    )
    .usage('[options] <target>')
    .option('--udp', 'classify a UDP flow (e.g. QUIC on 443) instead of TCP')
    .option(
      '--ip <address>',
      'the address the name resolved to (for IP rules when a name is given)',
    )
    .option(
      '--off <channel...>',
      'turn channels off first, as a user toggle (m365, private, internet): one or more, also comma-separated (--off internet,private); the target may come before or after',
    )
    .option('--json', 'print the decision as JSON')
    .option(
      '--running',
      'ask the running client (its profiles, toggles and resolver) instead of a tenant file',
    )
    .option(
      '--admin <host:port>',
      'with --running: admin API address (default: from <state-dir>/client.json)',
    )
    .option('--admin-token <file>', `${ADMIN_TOKEN_HELP}; implies --running`)
    .option(
      '--state-dir <dir>',
      'with --running: state folder of the running client (default $GSA_EMU_STATE_DIR, else ~/.gsa-emu)',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  gsa-emu explain https://outlook.office365.com\n  gsa-emu explain 40.96.0.10:443 --udp\n  gsa-emu explain intranet.contoso.test:80\n  gsa-emu explain www.example.test --off internet\n  gsa-emu explain --off internet,private www.example.test',
    );
  addPolicyOptions(cmd).action(async (targetArg: string | undefined, given: ExplainOptions) => {
    let parsed: ReturnType<typeof offArgs>;
    try {
      parsed = offArgs(targetArg, given.off as string[] | undefined);
    } catch (e) {
      // A missing target is the command line's own error (the target is optional to
      // commander only): said as commander says it for every other command, with its hint.
      if (e instanceof UsageError && e.message.startsWith('missing required argument')) {
        cmd.error(`error: ${e.message}`);
      }
      throw e;
    }
    const { targetText, off } = parsed;
    const opts: ExplainOptions = off ? { ...given, off } : given;
    const target = parseTarget(targetText, { udp: opts.udp });
    const running =
      opts.running ||
      opts.admin !== undefined ||
      opts.adminToken !== undefined ||
      opts.stateDir !== undefined;
    // --platform has a default: only one given on the command line conflicts with --running.
    const platformGiven = cmd.getOptionValueSource('platform') === 'cli';
    const e = running
      ? await explainRunning(targetText, {
          ...opts,
          ...(platformGiven ? {} : { platform: undefined }),
        })
      : explain(target, opts);
    process.stdout.write(
      opts.json ? `${JSON.stringify(e, null, 2)}\n` : `${formatExplanation(e)}\n`,
    );
  });
}

/**
 * The target and the channels of `--off`: its words (`--off internet private`), each also
 * comma-separated (`--off internet,private`), may be followed by the target (`--off internet
 * host`), which commander gives to --off: the last word there that is not a channel name is
 * the target when no target came before --off. A target that is itself a channel name
 * (a host named "private") goes before --off.
 */
export function offArgs(
  target: string | undefined,
  off: string[] | undefined,
): { targetText: string; off: ChannelName[] | undefined } {
  const words = off?.flatMap((w) => w.split(',')).filter((w) => w !== '');
  if (off !== undefined && words!.length === 0) {
    throw new UsageError('--off: give a channel (m365, private or internet)');
  }
  let t = target;
  let channels = words;
  if (t === undefined && words) {
    // The last word that is not a channel name (any others are then unknown channels).
    const i = words.findLastIndex((w) => !isChannelName(w));
    if (i >= 0) {
      t = words[i];
      channels = words.filter((_w, j) => j !== i);
    }
  }
  if (t === undefined) {
    throw new UsageError(
      `missing required argument 'target'${words ? ' (a target that is a channel name goes before --off)' : ''}`,
    );
  }
  if (channels !== undefined && channels.length === 0) {
    throw new UsageError('--off: give a channel (m365, private or internet)');
  }
  return { targetText: t, off: channels?.map(channelOf) };
}

/** The running client's answer (GET /explain); the offline options do not apply to it. */
export async function explainRunning(
  targetText: string,
  opts: ExplainOptions,
): Promise<Explanation> {
  const flag = {
    tenant: '--tenant',
    clientConfig: '--client-config',
    off: '--off',
    platform: '--platform',
  };
  const offline = (Object.keys(flag) as Array<keyof typeof flag>).filter(
    (k) => opts[k] !== undefined,
  );
  if (offline.length) {
    throw new UsageError(
      `--running asks the running client, which has its own profiles, toggles and platform: drop ${offline.map((k) => flag[k]).join(', ')} (toggles: "gsa-emu toggle")`,
    );
  }
  if (opts.ip && ipFamily(opts.ip) === 0)
    throw new UsageError(`--ip "${opts.ip}" is not an IP address`);
  const base = adminTarget(stateDir(opts.stateDir), opts);
  const q = new URLSearchParams({ target: targetText });
  if (opts.udp) q.set('udp', '1');
  if (opts.ip) q.set('ip', opts.ip);
  return adminCall<Explanation>(base, 'GET', `/explain?${q}`);
}
