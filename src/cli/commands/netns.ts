/**
 * `gsa-emu netns [options] -- <command...>`: run one command "behind GSA". Starts what
 * `gsa-emu up` starts (demo servers on loopback, the mock edge in this process, the client;
 * no proxies, only the admin API), creates a network namespace whose only route is a TUN
 * (its resolv.conf points into the TUN), captures it with `attachTun`, runs the command
 * there, and exits with the command's exit code. Everything is removed when the command
 * ends, on Ctrl+C / SIGTERM (forwarded to the command) and on failure. Linux, root (or
 * CAP_NET_ADMIN + CAP_SYS_ADMIN), /dev/net/tun and the native addon. See docs/tun.md.
 */
import { readFileSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import type { Command } from 'commander';
import { addonUnavailable, listenTcp4InNetns } from '../../capture/tun/device.js';
import {
  cleanupStaleNetns,
  harnessUnavailable,
  NETNS_SIGNALS,
  type Netns,
} from '../../capture/tun/netns.js';
import { tokenFileOf } from '../../client/admin-client.js';
import { attachTun, exitCode, type TunCapture } from '../../client/tun-capture.js';
import { TunUnavailableError, UsageError } from '../../errors.js';
import { statField } from '../../util/pid-lock.js';
import { shellWord } from '../../util/shell-word.js';
import { addPolicyOptions, collect } from '../common.js';
import { parseAddHosts, tunDnsHosts } from '../hosts-option.js';
import { recordStartFailure, startWorld, type World } from '../world.js';
import { tokenTtlSeconds } from './edge.js';

export interface NetnsCommandOptions {
  tenant?: string;
  clientConfig?: string;
  platform?: string;
  stateDir?: string;
  icmpOnDrop?: boolean;
  quiet?: boolean;
  logLevel?: string;
  /** `--add-host name=address` values (repeatable). */
  addHost?: string[];
  /** `--token-ttl <seconds>`: the token lifetime the client asks the edge for. */
  tokenTtl?: string;
  /** `--close-on-token-expiry`: the edge closes a session when its token expires. */
  closeOnTokenExpiry?: boolean;
  /** `--no-session-rotation`: keep each session until the edge closes it (token expiry). */
  sessionRotation?: boolean;
}

/**
 * Serves the admin API inside the run's namespace too, at the same 127.0.0.1:port (the
 * namespace is new: nothing else listens there), so that the command can ask the run what
 * went through GSA (`gsa-emu flows --json` in a CI script). Returns the namespace
 * (`net:[inode]`, as /proc/<pid>/ns/net names it) for the state file, or null when the API
 * is not served there (the run goes on; a warning says so).
 */
async function adminInside(
  client: World['client'],
  ns: Netns,
  say: (line: string) => void,
): Promise<string | null> {
  const admin = client.admin;
  if (admin === null) return null;
  try {
    const fd = listenTcp4InNetns(ns.path, admin.address.address, admin.address.port, 64);
    await admin.serveFd(fd);
    return `net:[${statSync(ns.path).ino}]`;
  } catch (err) {
    say(
      `warning: the admin API is not served inside the namespace (${(err as Error).message}): ask the run from the host`,
    );
    return null;
  }
}

/**
 * The command's environment: its own gsa-emu commands (and its code) find this run: the
 * state folder, and the admin API's address and token file when it listens in the
 * namespace. When it does not, GSA_EMU_ADMIN_URL / _TOKEN_FILE inherited from gsa-emu's
 * environment (a `gsa-emu netns` run inside another's command) are removed: they name
 * another run, whose API is not reachable from this namespace.
 */
export function commandEnv(
  base: NodeJS.ProcessEnv,
  stateDir: string,
  admin: { url: string; tokenFile: string } | null,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, GSA_EMU_STATE_DIR: stateDir };
  delete env.GSA_EMU_ADMIN_URL;
  delete env.GSA_EMU_ADMIN_TOKEN_FILE;
  if (admin !== null) {
    env.GSA_EMU_ADMIN_URL = admin.url;
    env.GSA_EMU_ADMIN_TOKEN_FILE = admin.tokenFile;
  }
  return env;
}

/** Why TUN capture in a namespace cannot run here (one line), or null. */
export function netnsUnavailable(): string | null {
  return harnessUnavailable() ?? addonUnavailable();
}

/** /proc/self/stat, or null (not Linux). */
function ownStat(): string | null {
  try {
    return readFileSync('/proc/self/stat', 'utf8');
  } catch {
    return null;
  }
}

/**
 * Whether a SIGINT may have been a Ctrl+C at the terminal, which reached the command too (it
 * is in gsa-emu's process group): gsa-emu's group is the terminal's foreground group
 * (`stat`: /proc/self/stat, pgrp and tpgid). A gsa-emu in the background (`&`, a runner's
 * job) or without a terminal got it from a process (`kill -INT`, a runner cancelling): the
 * command did not, and it is forwarded. Without /proc, as before: a terminal on stdin.
 */
export function ctrlCFromTerminal(stat: string | null, stdinIsTTY: boolean): boolean {
  if (stat === null) return stdinIsTTY;
  const pgrp = Number(statField(stat, 5));
  const ttyNr = Number(statField(stat, 7));
  const tpgid = Number(statField(stat, 8));
  if (!Number.isInteger(pgrp) || !Number.isInteger(tpgid)) return stdinIsTTY;
  return ttyNr !== 0 && tpgid === pgrp;
}

export function register(program: Command): void {
  const cmd = program
    .command('netns')
    .description(
      'run a command in a network namespace whose only way out is the GSA client (TUN capture, Linux, root)',
    )
    .argument('<command...>', 'the command and its arguments (after --, or after the options)')
    // `gsa-emu netns curl -sS URL`: everything from the command on is the command's.
    .passThroughOptions();
  addPolicyOptions(cmd, { platformDefault: false })
    .option('--state-dir <dir>', 'state directory (default $GSA_EMU_STATE_DIR, else ~/.gsa-emu)')
    .option('--icmp-on-drop', 'answer dropped UDP (QUIC) with ICMP admin-prohibited, not silence')
    .option('--log-level <level>', 'client log level (default info)')
    .option('-q, --quiet', 'print nothing of its own (the command keeps its output)')
    .option(
      '--add-host <name=address>',
      "resolve a name (or *.suffix) to an address for the client, the edge and the namespace's DNS, like /etc/hosts (repeatable)",
      collect,
    )
    .option(
      '--token-ttl <seconds>',
      "the token lifetime the client asks the edge for (default: the edge's, 3600), to test token renewal",
    )
    .option(
      '--close-on-token-expiry',
      'the edge closes each tunnel session (4419) when its token expires; the client replaces it before then with a fresh token',
    )
    .option(
      '--no-session-rotation',
      'keep each tunnel session until the edge closes it at token expiry: the channel drops and flows in flight are reset at each expiry',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  sudo gsa-emu netns -- curl -s http://intranet.contoso.test/\n' +
        '  sudo gsa-emu netns --add-host api.contoso.test=127.0.0.1 -- curl -s https://api.contoso.test/\n' +
        '  (Private Access tunnels api.contoso.test, and the edge connects to 127.0.0.1:443 on the host)\n' +
        "The exit code is the command's (128 + n when it died of signal n).",
    )
    .action(async (command: string[], flags: NetnsCommandOptions) => {
      process.exitCode = await netns(command, flags);
      // Everything is closed by now; do not let a straggling handle hold the exit code back.
      setTimeout(() => process.exit(), 3000).unref();
    });
}

/**
 * Runs `argv` behind the emulated client; resolves with its exit code. Throws
 * TunUnavailableError (one line, before starting anything) when the TUN harness cannot run.
 */
export async function netns(
  argv: string[],
  o: NetnsCommandOptions,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  // Until its state file is written, a failure is recorded for a `gsa-emu status --wait`
  // waiting on this run (`<state-dir>/netns-<pid>-failed.json`, with its log).
  let ready = false;
  let hosts: ReturnType<typeof parseAddHosts>;
  let tokenTtl: number | undefined;
  try {
    if (argv.length === 0) throw new UsageError('netns: give the command to run after --');
    hosts = parseAddHosts(o.addHost ?? []);
    tokenTtl = o.tokenTtl !== undefined ? tokenTtlSeconds(o.tokenTtl, '--token-ttl') : undefined;
    const missing = netnsUnavailable();
    if (missing) throw new TunUnavailableError(missing);
  } catch (e) {
    recordStartFailure('netns', o.stateDir, e);
    throw e;
  }
  const say = (s: string): void => {
    if (!o.quiet) err.write(`gsa-emu: ${s}\n`);
  };
  cleanupStaleNetns();

  let world: World | null = null;
  let tun: TunCapture | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await tun?.close().catch(() => {});
      await world?.stop();
    })();
    return stopping;
  };

  // Ctrl+C / SIGTERM / SIGHUP: forwarded to the command once it runs; before that, abort
  // setup. A Ctrl+C at a terminal already reached the command (same process group): it is
  // not sent a second time, which many programs take as "force quit".
  let child: ReturnType<TunCapture['spawn']> | null = null;
  let interrupted: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (child && child.exitCode === null && child.signalCode === null) {
      if (!(sig === 'SIGINT' && ctrlCFromTerminal(ownStat(), process.stdin.isTTY === true))) {
        child.kill(sig);
      }
      return;
    }
    interrupted = sig;
  };
  for (const sig of NETNS_SIGNALS) process.on(sig, onSignal);
  const aborted = (): boolean => interrupted !== null;

  try {
    world = await startWorld({
      run: 'netns',
      stateDir: o.stateDir,
      tenant: o.tenant,
      clientConfig: o.clientConfig,
      platform: o.platform,
      logLevel: o.logLevel,
      listen: { socksPort: null, httpPort: null, pacPort: null, adminPort: 0 },
      hostnames: () => tun?.hostnames() ?? [],
      metrics: () => tun?.metrics() ?? '',
      edgeGraceMs: 300,
      hosts,
      ...(tokenTtl !== undefined ? { tokenTtlSeconds: tokenTtl } : {}),
      ...(o.closeOnTokenExpiry ? { closeOnTokenExpiry: true } : {}),
      ...(o.sessionRotation === false ? { sessionRotation: false } : {}),
    });
    const { client, demo, edgeUrl } = world;
    await client.waitConnected(5000).catch(() => {});
    if (aborted()) return 128 + (osConstants.signals[interrupted!] ?? 15);
    tun = await attachTun(client, {
      hostsForDns: tunDnsHosts(demo!, hosts),
      ...(o.icmpOnDrop ? { icmpOnDrop: true } : {}),
    });
    const alsoIn = await adminInside(client, tun.ns!, say);
    world.writeState(alsoIn !== null ? { adminAlsoIn: [alsoIn] } : {});
    ready = true;
    // As `up`'s banner: the state and why (notes), a `warning:` line per problem, and a
    // warning when the client is not Connected as the command starts (a CI job would
    // "pass" with its flows bypassed, or blocked). The command is quoted as a shell would
    // take it: `sh -c 'a; b'` is one argument, not three words.
    const st = client.status();
    say(
      `${st.state}${st.notes.length ? ` (${st.notes.join('; ')})` : ''}; running \`${argv.map((a) => shellWord(a)).join(' ')}\` in netns ${tun.ns!.name} (TUN ${tun.ns!.tunName}, DNS 6.6.255.254), edge ${edgeUrl}, admin http://${client.addresses.admin}${alsoIn !== null ? ' on the host and in the namespace' : ''} (token in ${tokenFileOf(world.stateFile)})`,
    );
    for (const w of st.warnings) say(`warning: ${w}`);
    if (st.state !== 'Connected') {
      say(
        `warning: the client is not Connected (${st.state}) as the command starts: its traffic is not forwarded as the forwarding profile says`,
      );
    }
    if (aborted()) return 128 + (osConstants.signals[interrupted!] ?? 15);
    const [cmd, ...args] = argv as [string, ...string[]];
    const env = commandEnv(
      process.env,
      world.dir,
      alsoIn !== null
        ? { url: `http://${client.addresses.admin}`, tokenFile: tokenFileOf(world.stateFile) }
        : null,
    );
    child = tun.spawn(cmd, args, { stdio: 'inherit', env });
    const code = await exitCode(child);
    const flows = client.flows.list().filter((f) => f.capture === 'tun');
    say(
      `exit code ${code}; ${flows.length} flow(s); logs: ${world.clientLog}, edge traffic log ${world.edgeLog}`,
    );
    return code;
  } catch (e) {
    if (!ready) {
      // Past startWorld (the TUN device, the namespace): in the run's log too, as there.
      world?.log.error({ err: (e as Error)?.message ?? String(e) }, 'failed to start');
      recordStartFailure('netns', o.stateDir, e);
    }
    throw e;
  } finally {
    for (const sig of NETNS_SIGNALS) process.off(sig, onSignal);
    await stop();
  }
}
