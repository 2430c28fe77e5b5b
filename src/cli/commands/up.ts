/**
 * `gsa-emu up`: the client (and, unless `--edge` names a remote one, a mock edge in the
 * same process with demo servers on loopback, so nothing reaches the real internet).
 * Prints the channel tiles, the proxy / PAC / admin addresses and example commands, then a
 * live flow table (redrawn on a TTY, one line per new flow otherwise). Ctrl+C stops
 * everything and says where the logs are. See docs/usage.md.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import pino from 'pino';
import { parse as parseYaml } from 'yaml';
import { removeClientState, writeClientState } from '../../client/admin-client.js';
import { type RunningClient, startClient } from '../../client/client.js';
import { DEMO_BYPASS_SOURCE, type Demo, startDemo } from '../../client/demo.js';
import { formatFlowLine, formatFlows, formatTiles } from '../../client/format.js';
import { type Edge, startEdge } from '../../edge/server.js';
import { ConfigError, UsageError } from '../../errors.js';
import { loadTenantFile } from '../../policy/tenant-file.js';
import { stateDir } from '../../util/state-dir.js';

export interface UpOptions {
  config?: string;
  host?: string;
  socksPort?: string;
  httpPort?: string;
  pacPort?: string;
  adminPort?: string;
  user?: string;
  password?: string;
  tenant?: string;
  clientConfig?: string;
  platform?: string;
  edge?: string;
  edgeCa?: string;
  stateDir?: string;
  logLevel?: string;
  tty?: boolean;
  once?: boolean;
  exitAfter?: string;
  allowInternet?: boolean;
  profilePoll?: string;
}

const CONFIG_KEYS: Record<string, keyof UpOptions> = {
  host: 'host',
  socksPort: 'socksPort',
  httpPort: 'httpPort',
  pacPort: 'pacPort',
  adminPort: 'adminPort',
  user: 'user',
  password: 'password',
  tenant: 'tenant',
  clientConfig: 'clientConfig',
  platform: 'platform',
  edge: 'edge',
  edgeCa: 'edgeCa',
  stateDir: 'stateDir',
  logLevel: 'logLevel',
  allowInternet: 'allowInternet',
  profilePoll: 'profilePoll',
};

/** Reads `--config` (JSON or YAML; keys as the long flags in camelCase). Flags win. */
export function readUpConfig(file: string): Partial<UpOptions> {
  let v: unknown;
  try {
    const text = readFileSync(file, 'utf8');
    v = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new ConfigError([{ path: '', message: (e as Error).message.split('\n')[0]! }], file);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new ConfigError([{ path: '', message: 'must be an object' }], file);
  }
  const out: Partial<UpOptions> = {};
  const issues = [];
  for (const [k, val] of Object.entries(v)) {
    const key = CONFIG_KEYS[k];
    if (!key) {
      issues.push({
        path: k,
        message: `unknown key (known: ${Object.keys(CONFIG_KEYS).join(', ')})`,
      });
      continue;
    }
    (out as Record<string, unknown>)[key] = typeof val === 'number' ? String(val) : val;
  }
  if (issues.length) throw new ConfigError(issues, file);
  return out;
}

function port(v: string | undefined, flag: string, dflt: number): number | null {
  if (v === undefined) return dflt;
  if (v === 'off') return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new UsageError(`${flag} "${v}" is not a port number (or "off")`);
  return n;
}

export function register(program: Command): void {
  program
    .command('up')
    .description(
      'run the GSA client (SOCKS5, HTTP proxy, PAC, admin API) with a mock edge and demo servers on loopback',
    )
    .option('--config <file>', 'options as JSON/YAML (keys: the long flags in camelCase)')
    .option(
      '--host <address>',
      'listen address of the proxies (non-loopback needs --user/--password)',
    )
    .option('--socks-port <n>', 'SOCKS5 port (0 = any free, "off")', undefined)
    .option('--http-port <n>', 'HTTP proxy port (0 = any free, "off")')
    .option(
      '--pac-port <n>',
      'PAC server port (default: any free; also served at http-proxy/proxy.pac)',
    )
    .option(
      '--admin-port <n>',
      'admin API port on 127.0.0.1 (default: any free; see <state-dir>/client.json)',
    )
    .option('--user <name>', 'proxy username (SOCKS5 RFC 1929 and HTTP Basic)')
    .option('--password <secret>', 'proxy password')
    .option(
      '--tenant <file>',
      'forwarding profiles (Graph JSON/YAML); default: the built-in tenant',
    )
    .option(
      '--client-config <file>',
      'managed client keys (.json, .yaml, .mobileconfig); default: EnableGSA=2, channels 2, SilentOnboard',
    )
    .option(
      '--platform <name|file>',
      'platform behaviour: ios (default), windows, macos, android or a file',
    )
    .option('--edge <url>', 'use a remote edge (https://host:port) instead of starting one')
    .option('--edge-ca <file>', "the remote edge's CA certificate (PEM)")
    .option('--state-dir <dir>', 'state and logs (default ~/.gsa-emu)')
    .option('--log-level <level>', 'client log level (trace, debug, info, warn, error)')
    .option('--no-tty', 'no live table: print one line per new flow')
    .option('--once', 'start, print the banner, and exit (smoke test)')
    .option('--exit-after <seconds>', 'stop after this many seconds')
    .option(
      '--allow-internet',
      'let bypassed flows and the built-in edge use real DNS and addresses',
    )
    .option(
      '--profile-poll <ms>',
      'how often the client polls the edge for profiles (default 30000)',
    )
    .action(async (flags: UpOptions) => {
      const o: UpOptions = {
        ...(flags.config ? readUpConfig(flags.config) : {}),
        ...stripUndefined(flags),
      };
      await up(o);
    });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export async function up(o: UpOptions, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const dir = stateDir(o.stateDir);
  const logs = join(dir, 'logs');
  mkdirSync(logs, { recursive: true, mode: 0o700 });
  const host = o.host ?? '127.0.0.1';
  if ((o.user === undefined) !== (o.password === undefined)) {
    throw new UsageError('--user and --password go together');
  }
  const auth = o.user !== undefined ? { username: o.user, password: o.password! } : undefined;
  const exitAfter = o.exitAfter !== undefined ? Number(o.exitAfter) : null;
  if (exitAfter !== null && !(exitAfter >= 0))
    throw new UsageError(`--exit-after "${o.exitAfter}" is not a number of seconds`);
  const allowInternet = o.allowInternet === true;
  const clientLog = join(logs, 'client.log');
  const dest = pino.destination({ dest: clientLog, sync: false, mkdir: true });
  const log = pino({ level: o.logLevel ?? 'info', base: { component: 'client' } }, dest);

  let demo: Demo | null = null;
  let edge: Edge | null = null;
  let client: RunningClient | null = null;
  const edgeLog = join(logs, 'edge-traffic.jsonl');
  const stop = async (): Promise<void> => {
    await client?.close().catch(() => {});
    await edge?.close({ graceMs: 500 }).catch(() => {});
    await demo?.close().catch(() => {});
    removeClientState(dir);
    log.flush();
  };
  try {
    let edgeUrl: string;
    let edgeCa: string | null = null;
    if (o.edge) {
      edgeUrl = o.edge;
      if (o.edgeCa) edgeCa = readFileSync(o.edgeCa, 'utf8');
    } else {
      demo = await startDemo({ stateDir: dir });
      const loaded = loadTenantFile(o.tenant);
      edge = await startEdge({
        stateDir: dir,
        tenantDoc: loaded.document,
        hostsMap: demo.edge.hostsMap,
        connectorHosts: demo.edge.connectorHosts,
        filtering: demo.edge.filtering,
        logFile: edgeLog,
        egress: { systemResolver: allowInternet, directIp: allowInternet },
      });
      edgeUrl = edge.url;
      edgeCa = edge.caPem;
    }
    client = await startClient({
      edge: { url: edgeUrl, ca: edgeCa },
      // A remote edge with a local --tenant: the file wins; otherwise the edge's profiles.
      tenant: o.edge && o.tenant ? o.tenant : 'edge',
      profilePollMs: o.profilePoll ? Number(o.profilePoll) : 30_000,
      ...(o.clientConfig ? { clientConfig: o.clientConfig } : {}),
      ...(o.platform ? { platform: o.platform } : {}),
      listen: {
        host,
        socksPort: port(o.socksPort, '--socks-port', 1080),
        httpPort: port(o.httpPort, '--http-port', 8080),
        pacPort: port(o.pacPort, '--pac-port', 0),
        adminPort: port(o.adminPort, '--admin-port', 0),
        ...(auth ? { auth } : {}),
      },
      resolver: demo
        ? {
            hosts: demo.client.hosts,
            dial: demo.client.dial,
            system: allowInternet,
            directIp: allowInternet,
          }
        : { system: true },
      // Linux routes all of 127/8 to lo; elsewhere 127.0.0.3 may not exist.
      ...(demo && process.platform === 'linux' ? { bypassLocalAddress: DEMO_BYPASS_SOURCE } : {}),
      log,
    });
    await client.waitConnected(5000).catch(() => {});
    const a = client.addresses;
    writeClientState(dir, {
      pid: process.pid,
      startedAt: new Date().toISOString(),
      admin: a.admin,
      socks: a.socks,
      http: a.http,
      pac: a.pac,
      edge: edgeUrl,
      logs,
    });
    const banner = bannerText(client, {
      dir,
      logs,
      edgeUrl,
      demo,
      inProcess: edge !== null,
      auth: auth !== undefined,
    });
    out.write(`${banner}\n`);
    if (o.once) {
      await stop();
      return;
    }
    const tty = o.tty !== false && (out as NodeJS.WriteStream).isTTY === true;
    let timer: NodeJS.Timeout | null = null;
    let unsub: (() => void) | null = null;
    if (tty) {
      timer = setInterval(() => {
        const flows = client!.flows.list().slice(-20);
        out.write(`\x1b[2J\x1b[H${banner}\n\n${formatFlows(flows)}\n`);
      }, 1000);
    } else {
      unsub = client.flows.onChange((rec, ev) => {
        if (ev === 'open') out.write(`${formatFlowLine(rec)}\n`);
      });
    }
    await new Promise<void>((resolve) => {
      const done = (): void => {
        process.off('SIGINT', done);
        process.off('SIGTERM', done);
        resolve();
      };
      process.on('SIGINT', done);
      process.on('SIGTERM', done);
      if (exitAfter !== null) setTimeout(done, exitAfter * 1000).unref();
    });
    if (timer) clearInterval(timer);
    unsub?.();
    out.write('\nstopping...\n');
    await stop();
    out.write(`stopped. logs: ${clientLog}${edge ? `, edge traffic log ${edgeLog}` : ''}\n`);
  } catch (err) {
    await stop();
    throw err;
  }
}

function bannerText(
  client: RunningClient,
  x: {
    dir: string;
    logs: string;
    edgeUrl: string;
    demo: Demo | null;
    inProcess: boolean;
    auth: boolean;
  },
): string {
  const st = client.status();
  const up: Record<string, boolean> = {};
  for (const c of st.channels) up[c.channel] = c.up;
  const a = client.addresses;
  const lines = [
    `gsa-emu: Global Secure Access ${st.state}${st.notes.length ? ` (${st.notes.join('; ')})` : ''}`,
    `tenant ${st.tenantName ?? '-'} (${st.tenantId ?? '-'}), platform ${client.platform.name}, edge ${x.edgeUrl}${x.inProcess ? ' (in-process, demo servers on loopback)' : ''}`,
    '',
    formatTiles(st.tiles, up),
    '',
    `SOCKS5      ${a.socks ?? 'off'}${x.auth ? ' (username/password required)' : ''}`,
    `HTTP proxy  ${a.http ?? 'off'}`,
    `PAC         ${a.pac ?? 'off'}${a.http ? `  (also http://${a.http}/proxy.pac)` : ''}`,
    `admin API   ${a.admin ? `http://${a.admin}  (/status /flows /profile /health /metrics, POST /toggle)` : 'off'}`,
    `state       ${x.dir}`,
    '',
  ];
  if (x.demo && a.socks && a.http) {
    const ca = x.demo.caFile;
    lines.push(
      'try:',
      `  curl --socks5-hostname ${a.socks} http://intranet.contoso.test/          # Private Access, tunneled`,
      `  curl -x http://${a.http} --cacert ${ca} https://outlook.office365.com/   # Microsoft 365, tunneled`,
      `  curl -x http://${a.http} http://news.test/                               # Internet Access, tunneled`,
      `  curl --socks5-hostname ${a.socks} http://bypass.example.test/            # custom bypass, direct`,
      `  curl -x http://${a.http} http://casino.test/                             # blocked at the edge (403)`,
      '  gsa-emu toggle internet off; gsa-emu status; gsa-emu flows',
      '',
    );
  }
  lines.push('Ctrl+C to stop.');
  return lines.join('\n');
}
