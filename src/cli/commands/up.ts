/**
 * `gsa-emu up`: the client (and, unless `--edge` names a remote one, a mock edge in the
 * same process with demo servers on loopback, so nothing reaches the real internet).
 * Prints the channel tiles, the proxy / PAC / admin addresses and example commands, then a
 * live flow table (redrawn on a TTY, one line per new flow otherwise). Ctrl+C stops
 * everything and says where the logs are. See docs/usage.md.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { Command } from 'commander';
import { clearStartFailure, tokenFileOf } from '../../client/admin-client.js';
import { edgeUrlOf, type RunningClient } from '../../client/client.js';
import { type DecidedTry, type Demo, decideTries } from '../../client/demo.js';
import { CHANNEL_LABEL, type StatusView } from '../../client/diagnostics.js';
import {
  formatFlowLine,
  formatFlows,
  formatTiles,
  tenantText,
  tryOutcome,
} from '../../client/format.js';
import {
  attachHostTun,
  type HostTun,
  type HostTunPlan,
  prepareHostTun,
  tunNameProblem,
} from '../../client/tun-host.js';
import { ConfigError, GsaError, ListenError, UsageError } from '../../errors.js';
import type { FlowRecord } from '../../forward/flow-table.js';
import { loadClientConfigFile } from '../../policy/client-config.js';
import { show } from '../../policy/graph.js';
import type { ChannelName } from '../../policy/model.js';
import { isPlatformFile, loadPlatform } from '../../policy/platform.js';
import { stateDirArg } from '../../util/cli-command.js';
import { parseConfigText } from '../../util/config-text.js';
import { keyGuess, unknownKeyMessage } from '../../util/key-guess.js';
import { shellWord } from '../../util/shell-word.js';
import { stateDir } from '../../util/state-dir.js';
import {
  addPolicyOptions,
  cliCommand,
  collect,
  hostOption,
  localSubnetsOption,
  logMaxBytes,
  numberOption,
  portNumber,
  readOptionFile,
  stopSignals,
} from '../common.js';
import { checkHostsConfig, parseAddHosts, tunDnsHosts } from '../hosts-option.js';
import { onOutputGone, outputGone } from '../stdio.js';
import { LOG_LEVELS, recordStartFailure, startWorld, type World } from '../world.js';
import { deviceCertificatesOption, tokenTtlSeconds } from './edge.js';

export interface UpOptions {
  config?: string;
  host?: string;
  socksPort?: string;
  httpPort?: string;
  pacPort?: string;
  adminPort?: string;
  user?: string;
  password?: string;
  /** `--password-file <file>`: the proxy password, kept out of the command line (`ps`). */
  passwordFile?: string;
  tenant?: string;
  clientConfig?: string;
  platform?: string;
  edge?: string;
  edgeCa?: string;
  /** `--edge-secret <file>`: the remote edge's client secret. */
  edgeSecret?: string;
  stateDir?: string;
  logLevel?: string;
  /** `--log-max-size <MiB>`: each log file's cap before it is rotated (0: none). */
  logMaxSize?: string;
  tty?: boolean;
  /** `--quiet`: no live table and no flow lines (the banner and the shutdown lines only). */
  quiet?: boolean;
  once?: boolean;
  exitAfter?: string;
  allowInternet?: boolean;
  plainEdge?: boolean;
  edgeThread?: boolean;
  profilePoll?: string;
  /** `--http-response-timeout <seconds>`: the HTTP proxy's wait for a response head. */
  httpResponseTimeout?: string;
  /** `--http-body-timeout <seconds>`: the HTTP proxy's wait for a request body's next byte. */
  httpBodyTimeout?: string;
  tun?: boolean;
  tunName?: string;
  tunSource?: string;
  tunDns?: string;
  icmpOnDrop?: boolean;
  processLookup?: boolean;
  /** `--add-host name=address` values (repeatable). */
  addHost?: string[];
  /** The config file's `hosts` (name -> address); `--add-host` entries win. */
  hosts?: Record<string, string>;
  /** `--local-subnets`: IPv4 CIDRs separated by commas, or `none` (default: the interfaces'). */
  localSubnets?: string;
  /** `--token-ttl <seconds>`: the token lifetime the client asks the edge for. */
  tokenTtl?: string;
  /** `--close-on-token-expiry`: the in-process edge closes a session when its token expires. */
  closeOnTokenExpiry?: boolean;
  /** `--no-session-rotation`: keep each session until the edge closes it (token expiry). */
  sessionRotation?: boolean;
  /** `--edge-device-certificates <mode>`: the in-process edge's device certificate mode. */
  edgeDeviceCertificates?: string;
  /** `--no-device-certificate`: present no device certificate (an older client). */
  deviceCertificate?: boolean;
}

const CONFIG_KEYS: Record<string, keyof UpOptions> = {
  host: 'host',
  socksPort: 'socksPort',
  httpPort: 'httpPort',
  pacPort: 'pacPort',
  adminPort: 'adminPort',
  user: 'user',
  password: 'password',
  passwordFile: 'passwordFile',
  tenant: 'tenant',
  clientConfig: 'clientConfig',
  platform: 'platform',
  edge: 'edge',
  edgeCa: 'edgeCa',
  edgeSecret: 'edgeSecret',
  stateDir: 'stateDir',
  logLevel: 'logLevel',
  logMaxSize: 'logMaxSize',
  allowInternet: 'allowInternet',
  plainEdge: 'plainEdge',
  edgeThread: 'edgeThread',
  profilePoll: 'profilePoll',
  httpResponseTimeout: 'httpResponseTimeout',
  httpBodyTimeout: 'httpBodyTimeout',
  tun: 'tun',
  tunName: 'tunName',
  tunSource: 'tunSource',
  tunDns: 'tunDns',
  icmpOnDrop: 'icmpOnDrop',
  processLookup: 'processLookup',
  hosts: 'hosts',
  localSubnets: 'localSubnets',
  tokenTtl: 'tokenTtl',
  closeOnTokenExpiry: 'closeOnTokenExpiry',
  sessionRotation: 'sessionRotation',
  edgeDeviceCertificates: 'edgeDeviceCertificates',
  deviceCertificate: 'deviceCertificate',
};

/** Config keys that are switches (the rest are strings; numbers are taken as strings). */
const BOOLEAN_KEYS = new Set<keyof UpOptions>([
  'allowInternet',
  'plainEdge',
  'edgeThread',
  'tun',
  'icmpOnDrop',
  'processLookup',
  'closeOnTokenExpiry',
  'sessionRotation',
  'deviceCertificate',
]);

/**
 * Reads `--config` (JSON or YAML; the keys of CONFIG_KEYS: most long flags in camelCase,
 * `hosts` for `--add-host`; not `--once`, `--exit-after`, `--no-tty`, `--quiet`). Flags win.
 */
export function readUpConfig(file: string): Partial<UpOptions> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([{ path: '', message: `cannot read: ${(e as Error).message}` }], file);
  }
  const v = parseConfigText(text, file);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    // Says what it got, as the edge's and the platform's files do: an empty YAML file is null.
    throw new ConfigError([{ path: '', message: `must be an object, not ${show(v)}` }], file);
  }
  const out: Partial<UpOptions> = {};
  const issues = [];
  for (const [k, val] of Object.entries(v)) {
    const key = CONFIG_KEYS[k];
    if (!key) {
      const known = Object.keys(CONFIG_KEYS);
      // `add-host` is the flag of the key hosts.
      const guess = keyGuess(k, ['addHost']) !== null ? 'hosts' : keyGuess(k, known);
      issues.push({ path: k, message: unknownKeyMessage(k, known, guess) });
      continue;
    }
    if (key === 'hosts') {
      try {
        out.hosts = checkHostsConfig(val, file);
      } catch (e) {
        issues.push(...(e as ConfigError).issues);
      }
      continue;
    }
    // localSubnets: the flag's text, or a list of CIDRs ([] for none).
    const listed =
      key === 'localSubnets' && Array.isArray(val) && val.every((x) => typeof x === 'string')
        ? val.length === 0
          ? 'none'
          : val.join(',')
        : val;
    if (BOOLEAN_KEYS.has(key)) {
      if (typeof val !== 'boolean') {
        issues.push({ path: k, message: `must be true or false, not ${JSON.stringify(val)}` });
        continue;
      }
    } else if (typeof listed !== 'string' && typeof listed !== 'number') {
      issues.push({ path: k, message: `must be a string or a number, not ${JSON.stringify(val)}` });
      continue;
    }
    const value = typeof listed === 'number' ? String(listed) : listed;
    // The value checks of the flags, said of the file's key (not of a flag never typed).
    const check = typeof value === 'string' ? VALUE_CHECKS[key] : undefined;
    if (check) {
      try {
        check(value as string);
      } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        issues.push({ path: k, message: e.message.replace(/^--[\w-]+ /, '') });
        continue;
      }
    }
    (out as Record<string, unknown>)[key] = value;
  }
  if (issues.length) throw new ConfigError(issues, file);
  // A relative path in the file is relative to the file, wherever `up` runs from.
  for (const key of PATH_KEYS) {
    const v = out[key];
    if (typeof v !== 'string' || v === '' || isAbsolute(v)) continue;
    if (key === 'platform' && !isPlatformFile(v)) continue;
    out[key] = resolve(dirname(resolve(file)), v);
  }
  return out;
}

/** Config keys that name files or folders (`platform` when it is not a built-in name). */
const PATH_KEYS = [
  'tenant',
  'clientConfig',
  'platform',
  'edgeCa',
  'edgeSecret',
  'passwordFile',
  'stateDir',
] as const;

/** The checks of single values (ports, poll interval, log level, edge URL), by option. */
const VALUE_CHECKS: Partial<Record<keyof UpOptions, (v: string) => void>> = {
  host: (v) => hostOption(v),
  socksPort: (v) => port(v, '--socks-port', 0),
  httpPort: (v) => port(v, '--http-port', 0),
  pacPort: (v) => port(v, '--pac-port', 0),
  adminPort: (v) => port(v, '--admin-port', 0),
  profilePoll: (v) => profilePollMs(v),
  httpResponseTimeout: (v) => httpResponseTimeoutMs(v),
  httpBodyTimeout: (v) => httpBodyTimeoutMs(v),
  logLevel: (v) => checkUpOptions({ logLevel: v }),
  logMaxSize: (v) => logMaxBytes(v),
  edge: (v) => edgeUrlOf(v, '--edge'),
  localSubnets: (v) => localSubnetsOption(v),
  stateDir: (v) => stateDir(v),
  tokenTtl: (v) => tokenTtlSeconds(v, '--token-ttl'),
  edgeDeviceCertificates: (v) => deviceCertificatesOption(v, '--edge-device-certificates'),
};

function port(v: string | undefined, flag: string, dflt: number): number | null {
  if (v === undefined) return dflt;
  if (v === 'off') return null;
  // Digits only: Number() would take "" and " " as 0 (any free port), "0x438", "1e4".
  return portNumber(v, flag, '(or "off")');
}

export function register(program: Command): void {
  const cmd = program
    .command('up')
    .description(
      'run the GSA client (SOCKS5, HTTP proxy, PAC, admin API) with a mock edge and demo servers on loopback',
    )
    .option(
      '--config <file>',
      'options as JSON/YAML: the long flags in camelCase, but not --once, --exit-after, --no-tty, --quiet or --add-host (key hosts: {name: address}); processLookup: false for --no-process-lookup, sessionRotation: false for --no-session-rotation, deviceCertificate: false for --no-device-certificate; flags win (docs/usage.md)',
    )
    .option(
      '--host <address>',
      'listen address of the proxies (non-loopback needs --user and --password or --password-file)',
    )
    .option(
      '--socks-port <n>',
      'SOCKS5 port (default 1080, or a free port when 1080 is taken; off with --tun; 0 = any free, "off")',
    )
    .option(
      '--http-port <n>',
      'HTTP proxy port (default 8080, or a free port when 8080 is taken; off with --tun; 0 = any free, "off")',
    )
    .option(
      '--pac-port <n>',
      'PAC server port (default: any free; off with --tun; "off": none; also served at http-proxy/proxy.pac)',
    )
    .option(
      '--admin-port <n>',
      'admin API port on 127.0.0.1 (default: any free; see <state-dir>/client.json; "off": none)',
    )
    .option('--user <name>', 'proxy username (SOCKS5 RFC 1929 and HTTP Basic)')
    .option('--password <secret>', 'proxy password (shown by ps: see --password-file)')
    .option(
      '--password-file <file>',
      'proxy password from a file (one line), kept out of the command line',
    );
  addPolicyOptions(cmd, { platformDefault: false })
    .option('--edge <url>', 'use a remote edge (https://host:port) instead of starting one')
    .option('--edge-ca <file>', "the remote edge's CA certificate (PEM)")
    .option(
      '--edge-secret <file>',
      "the remote edge's client secret (the file `gsa-emu edge` printed: a non-loopback edge asks for it)",
    )
    .option('--state-dir <dir>', 'state and logs (default $GSA_EMU_STATE_DIR, else ~/.gsa-emu)')
    .option('--log-level <level>', `client log level (${LOG_LEVELS.join(', ')})`)
    .option(
      '--log-max-size <MiB>',
      'rotate each log file at this size: renamed <file>.1, replacing an older one (default 1024; 0: never)',
    )
    .option('--no-tty', 'no live table: print one line per new flow')
    .option(
      '--quiet',
      'no live table and no flow lines, for output kept in a file (flows: "gsa-emu flows" and the logs)',
    )
    .option(
      '--no-process-lookup',
      'do not look up the process behind each proxy flow (Linux /proc; the PROCESS column)',
    )
    .option('--once', 'start, print the banner, and exit (smoke test)')
    .option('--exit-after <seconds>', 'stop after this many seconds')
    .option(
      '--allow-internet',
      'let bypassed flows and the built-in edge use real DNS and addresses',
    )
    .option(
      '--plain-edge',
      'the in-process edge speaks plain ws/http instead of TLS (about twice the tunneled throughput, for benchmarks)',
    )
    .option(
      '--edge-thread',
      'run the in-process edge on its own worker thread: more tunneled throughput over wss, fewer sequential connections per second',
    )
    .option(
      '--profile-poll <ms>',
      'how often the client polls the edge for profiles (default 30000)',
    )
    .option(
      '--http-response-timeout <seconds>',
      "how long the HTTP proxy waits for an upstream's response head before its 504 (default 30)",
    )
    .option(
      '--http-body-timeout <seconds>',
      "how long the HTTP proxy waits for the next byte of a request's body before its 408 (default 60; 0: never)",
    )
    .option(
      '--tun',
      "capture the host's IPv4 with a TUN device and policy routing instead of proxies (Linux, root or CAP_NET_ADMIN); proxies are off unless their ports are given",
    )
    .option('--tun-name <name>', 'TUN interface name (default gsa0)')
    .option(
      '--tun-source <address>',
      "with --tun and --edge: the host address the client's own connections are bound to (default: the default route's source)",
    )
    .option(
      '--tun-dns <ip[:port]>',
      'with --tun and --edge: DNS server for names no rule acquires (default: the first non-loopback nameserver of resolv.conf)',
    )
    .option('--icmp-on-drop', 'with --tun: answer dropped UDP (QUIC) with ICMP admin-prohibited')
    .option(
      '--local-subnets <cidr,...|none>',
      "the device's local IPv4 subnets, where Private Access does not tunnel IP segments (default: this host's non-internal IPv4 interfaces)",
    )
    .option(
      '--token-ttl <seconds>',
      "the token lifetime the client asks the edge for (default: the edge's, 3600); the edge must allow it (its --max-token-ttl)",
    )
    .option(
      '--close-on-token-expiry',
      'the in-process edge closes a tunnel session (code 4419) when its token expires; the client replaces it before then with a fresh token',
    )
    .option(
      '--no-session-rotation',
      'keep each tunnel session until the edge closes it at token expiry instead of replacing it before then: the channel drops and flows in flight are reset at each expiry (to test how applications take it)',
    )
    .option(
      '--edge-device-certificates <mode>',
      'the in-process edge asks for device certificates (mTLS): optional (default: checked when presented), required (refuse a client without one), off',
    )
    .option(
      '--no-device-certificate',
      'behave as an older client: enroll and present no device certificate (a required edge then refuses the tunnels)',
    )
    .option(
      '--add-host <name=address>',
      'resolve a name (or *.suffix) to an address, like /etc/hosts: for the client and the in-process edge (repeatable)',
      collect,
    )
    .action(async (flags: UpOptions, cmd: Command) => {
      let o: UpOptions;
      try {
        const fromFile = flags.config !== undefined ? readUpConfig(flags.config) : {};
        const fromFlags = given(flags, cmd);
        // Flags win: a password on the command line replaces the file's, in either form.
        if (fromFlags.password !== undefined || fromFlags.passwordFile !== undefined) {
          delete fromFile.password;
          delete fromFile.passwordFile;
        }
        o = { ...fromFile, ...fromFlags };
      } catch (e) {
        recordStartFailure('up', flags.stateDir, e);
        throw e;
      }
      await up(o);
    });
}

/**
 * The options the command line set: not undefined ones, and not commander's defaults (a
 * `--no-process-lookup` flag defaults `processLookup` to true, which would otherwise
 * override the config file's `processLookup: false`).
 */
function given<T extends object>(o: T, cmd: Command): Partial<T> {
  return Object.fromEntries(
    Object.entries(o).filter(
      ([k, v]) => v !== undefined && cmd.getOptionValueSource(k) !== 'default',
    ),
  ) as Partial<T>;
}

/** The longest timer node keeps, in whole seconds. */
const MAX_TIMER_S = Math.floor((2 ** 31 - 1) / 1000);

/** `--no-tty` flow lines waiting for stdout (bytes) past which new ones are dropped. */
const MAX_PENDING_OUTPUT = 256 * 1024;

/** The port options, their flags, and whether they listen on --host (else on 127.0.0.1). */
const PORT_OPTIONS = [
  ['socksPort', '--socks-port', true],
  ['httpPort', '--http-port', true],
  ['pacPort', '--pac-port', true],
  ['adminPort', '--admin-port', false],
] as const;

/**
 * Each port given is a port number or "off"; two listeners given the same port would
 * collide (the second "in use", as if by another program): a usage error naming both
 * flags. The admin API listens on 127.0.0.1, which collides with a --host of loopback or
 * every address.
 */
function checkPorts(o: UpOptions, host: string): void {
  const sharesAdmin = ['127.0.0.1', 'localhost', '0.0.0.0', '::', '[::]'].includes(host);
  const seen = new Map<number, string>();
  for (const [key, flag, onHost] of PORT_OPTIONS) {
    const n = port(o[key], flag, 0);
    if (n === null || n === 0 || (!onHost && !sharesAdmin)) continue;
    const other = seen.get(n);
    if (other !== undefined) {
      throw new UsageError(
        `${other} and ${flag} are both ${n}: each listener needs its own port (0: any free port)`,
      );
    }
    seen.set(n, flag);
  }
}

/**
 * `--http-response-timeout <seconds>` in ms: a number of seconds above 0 (maybe a fraction),
 * at most node's longest timer.
 */
function httpResponseTimeoutMs(v: string): number {
  const s = numberOption(v, '--http-response-timeout', {
    unit: 'seconds',
    fraction: true,
    above: 0,
    max: MAX_TIMER_S,
  });
  return Math.max(1, Math.round(s * 1000));
}

/**
 * `--http-body-timeout <seconds>` in ms: a number of seconds (maybe a fraction) up to node's
 * longest timer; 0 = never.
 */
function httpBodyTimeoutMs(v: string): number {
  const s = numberOption(v, '--http-body-timeout', {
    unit: 'seconds',
    fraction: true,
    max: MAX_TIMER_S,
  });
  return s === 0 ? 0 : Math.max(1, Math.round(s * 1000));
}

/** `--profile-poll <ms>`: whole milliseconds from 100 to node's longest timer. */
function profilePollMs(v: string): number {
  return numberOption(v, '--profile-poll', {
    unit: 'milliseconds',
    min: 100,
    max: MAX_TIMER_S * 1000,
  });
}

/**
 * `--password-file`: the file's one line, without its line end (spaces are the password's:
 * it is taken as written). A second line is a UsageError, not silently dropped.
 */
function passwordOfFile(file: string): string {
  const text = readOptionFile(file, '--password-file').replace(/\r?\n$/, '');
  if (/[\r\n]/.test(text)) {
    throw new UsageError(`--password-file "${file}": give the password on one line`);
  }
  return text;
}

/** The flags' combinations that cannot run, as UsageErrors; the values up() derives from them. */
function checkUpOptions(o: UpOptions) {
  const host = hostOption(o.host ?? '127.0.0.1');
  if (o.password !== undefined && o.passwordFile !== undefined) {
    throw new UsageError('--password and --password-file: give one of them');
  }
  const [password, pwFlag] =
    o.passwordFile !== undefined
      ? [passwordOfFile(o.passwordFile), '--password-file']
      : [o.password, '--password'];
  if ((o.user === undefined) !== (password === undefined)) {
    throw new UsageError(`--user and ${pwFlag} go together`);
  }
  // RFC 1929: a username of 1 to 255 bytes; no SOCKS5 client could log in with another.
  if (o.user !== undefined && (o.user === '' || Buffer.byteLength(o.user) > 255)) {
    throw new UsageError('--user: give a name of 1 to 255 bytes');
  }
  // RFC 1929's PLEN is one byte: a longer password could only log in to the HTTP proxy.
  if (password !== undefined && Buffer.byteLength(password) > 255) {
    throw new UsageError(`${pwFlag}: give at most 255 bytes (SOCKS5 cannot send more)`);
  }
  // RFC 1929: a password of 1 to 255 bytes. An empty one would let anyone who guesses the
  // user name through a proxy listening beyond loopback: an open relay in all but name.
  if (password === '') {
    throw new UsageError(
      `${pwFlag}: give 1 to 255 bytes (RFC 1929); an empty password protects nothing`,
    );
  }
  const auth = o.user !== undefined ? { username: o.user, password: password! } : undefined;
  // setTimeout's limit: 2^31-1 ms, about 24.8 days (past it node fires at once).
  const exitAfter =
    o.exitAfter !== undefined
      ? numberOption(o.exitAfter, '--exit-after', {
          unit: 'seconds',
          fraction: true,
          max: MAX_TIMER_S,
        })
      : null;
  const pollMs = o.profilePoll !== undefined ? profilePollMs(o.profilePoll) : 30_000;
  if (o.logLevel !== undefined && !LOG_LEVELS.includes(o.logLevel)) {
    throw new UsageError(`--log-level "${o.logLevel}": use ${LOG_LEVELS.join(', ')}`);
  }
  if (o.edge !== undefined) edgeUrlOf(o.edge, '--edge');
  if (o.edgeCa !== undefined && o.edge === undefined) {
    throw new UsageError(
      '--edge-ca goes with --edge (the CA of a remote edge): the in-process edge has its own',
    );
  }
  if (o.edgeSecret !== undefined && o.edge === undefined) {
    throw new UsageError(
      '--edge-secret goes with --edge (the client secret of a remote edge): the in-process edge asks for none',
    );
  }
  checkPorts(o, host);
  const tunMode = o.tun === true;
  // The PAC file sends browsers to the proxies: one given with neither proxy on would be
  // dropped without a word.
  if (o.pacPort !== undefined && o.pacPort !== 'off') {
    const off = (v: string | undefined) => v === 'off' || (v === undefined && tunMode);
    if (off(o.socksPort) && off(o.httpPort)) {
      throw new UsageError(
        `--pac-port ${o.pacPort}: the PAC file sends browsers to the proxies, and both are off (${tunMode ? 'with --tun they are off unless given a port' : '--socks-port off, --http-port off'})`,
      );
    }
  }
  if (!tunMode && (o.tunName || o.tunSource || o.tunDns || o.icmpOnDrop)) {
    throw new UsageError('--tun-name, --tun-source, --tun-dns and --icmp-on-drop go with --tun');
  }
  // A name the kernel refuses (or would cut short), or an interface that is not a TUN:
  // said of the option, before anything starts, not as the ioctl's "Invalid argument".
  const tunNameWrong = tunMode && o.tunName !== undefined ? tunNameProblem(o.tunName) : null;
  if (tunNameWrong) throw new UsageError(`--tun-name "${o.tunName}": ${tunNameWrong}`);
  if (tunMode && !o.edge && (o.tunSource || o.tunDns)) {
    throw new UsageError(
      '--tun-source and --tun-dns go with --tun and a remote --edge: with the in-process edge nothing of the emulator leaves loopback and the demo names are answered locally',
    );
  }
  const inProcessOnly = o.plainEdge
    ? '--plain-edge'
    : o.edgeThread
      ? '--edge-thread'
      : o.closeOnTokenExpiry
        ? '--close-on-token-expiry'
        : o.edgeDeviceCertificates !== undefined
          ? '--edge-device-certificates'
          : null;
  if (inProcessOnly && o.edge) {
    const there =
      inProcessOnly === '--close-on-token-expiry'
        ? ' (start that edge with it: gsa-emu edge --close-on-token-expiry)'
        : inProcessOnly === '--edge-device-certificates'
          ? ` (start that edge with it: gsa-emu edge --device-certificates ${o.edgeDeviceCertificates})`
          : '';
    throw new UsageError(
      `${inProcessOnly} is for the in-process edge, not a remote --edge${there}`,
    );
  }
  if (o.tokenTtl !== undefined) tokenTtlSeconds(o.tokenTtl, '--token-ttl');
  const edgeDeviceMode =
    o.edgeDeviceCertificates !== undefined
      ? deviceCertificatesOption(o.edgeDeviceCertificates, '--edge-device-certificates')
      : undefined;
  if (edgeDeviceMode === 'required' && o.plainEdge) {
    throw new UsageError(
      '--edge-device-certificates required needs TLS (a device certificate is presented in the TLS handshake), and --plain-edge turns it off',
    );
  }
  if (tunMode && o.allowInternet && !o.edge) {
    throw new UsageError(
      "--tun with --allow-internet needs a remote --edge: the in-process edge's own connections to real addresses would be captured by the TUN",
    );
  }
  const hosts = { ...o.hosts, ...parseAddHosts(o.addHost ?? []) };
  if (tunMode && o.edge && Object.keys(hosts).length > 0) {
    throw new UsageError(
      '--add-host with --tun and a remote --edge: applications behind the TUN ask --tun-dns for names no rule acquires, and the remote edge resolves the rest; give the names to those',
    );
  }
  const localSubnets =
    o.localSubnets !== undefined ? localSubnetsOption(o.localSubnets) : undefined;
  const responseTimeoutMs =
    o.httpResponseTimeout !== undefined ? httpResponseTimeoutMs(o.httpResponseTimeout) : undefined;
  const bodyTimeoutMs =
    o.httpBodyTimeout !== undefined ? httpBodyTimeoutMs(o.httpBodyTimeout) : undefined;
  const logMax = o.logMaxSize !== undefined ? logMaxBytes(o.logMaxSize) : undefined;
  return {
    host,
    auth,
    exitAfter,
    pollMs,
    tunMode,
    hosts,
    localSubnets,
    responseTimeoutMs,
    bodyTimeoutMs,
    logMax,
  };
}

export async function up(o: UpOptions, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  let checked: ReturnType<typeof checkUpOptions>;
  try {
    checked = checkUpOptions(o);
  } catch (e) {
    recordStartFailure('up', o.stateDir, e);
    throw e;
  }
  const {
    host,
    auth,
    exitAfter,
    pollMs,
    tunMode,
    hosts,
    localSubnets,
    responseTimeoutMs,
    bodyTimeoutMs,
    logMax,
  } = checked;
  // With --tun the proxies are off unless a port is given.
  const proxyDefault = (v: string | undefined, d: number): string | undefined =>
    v ?? (tunMode ? 'off' : String(d));

  // Ctrl+C / SIGTERM / SIGHUP (Windows: also Ctrl+Break), and the admin API's POST
  // /shutdown (`gsa-emu stop`): during setup, stop once the current step is done.
  let signalled = false;
  let wake: (() => void) | null = null;
  const onSignal = (): void => {
    signalled = true;
    wake?.();
  };
  const SIGNALS = stopSignals();
  for (const s of SIGNALS) process.on(s, onSignal);

  let plan: HostTunPlan | null = null;
  let world: World | null = null;
  let hostTun: HostTun | null = null;
  let ready = false;
  // What up prints, unless its reader is gone (cli/stdio.ts): then nothing more.
  const say = (text: string): void => {
    if (!outputGone(out)) out.write(text);
  };
  let offGone = (): void => {};
  const stop = async (): Promise<void> => {
    await hostTun?.close().catch(() => {});
    plan?.release();
    await world?.stop();
  };
  try {
    // Before anything starts: a client configuration file that cannot load (its warnings
    // come back in the client's status), what is missing for TUN mode, the host-wide lock.
    if (o.clientConfig)
      loadClientConfigFile(o.clientConfig, { platform: loadPlatform(o.platform ?? 'ios') });
    if (tunMode) {
      plan = prepareHostTun({
        ownTraffic: o.edge !== undefined,
        ...(o.tunSource !== undefined ? { sourceAddress: o.tunSource } : {}),
        ...(o.tunDns !== undefined ? { dns: o.tunDns } : {}),
      });
    }
    world = await startWorld({
      run: 'up',
      stateDir: o.stateDir,
      tenant: o.tenant,
      clientConfig: o.clientConfig,
      platform: o.platform,
      edge: o.edge,
      edgeCa: o.edgeCa,
      edgeSecret: o.edgeSecret,
      allowInternet: o.allowInternet,
      edgeTls: !o.plainEdge,
      edgeThread: o.edgeThread === true,
      ...(o.tokenTtl !== undefined
        ? { tokenTtlSeconds: tokenTtlSeconds(o.tokenTtl, '--token-ttl') }
        : {}),
      ...(o.closeOnTokenExpiry ? { closeOnTokenExpiry: true } : {}),
      ...(o.sessionRotation === false ? { sessionRotation: false } : {}),
      ...(o.edgeDeviceCertificates !== undefined
        ? {
            edgeDeviceCertificates: deviceCertificatesOption(
              o.edgeDeviceCertificates,
              '--edge-device-certificates',
            ),
          }
        : {}),
      ...(o.deviceCertificate === false ? { deviceCertificate: false } : {}),
      hosts,
      ...(localSubnets ? { localSubnets } : {}),
      processLookup: o.processLookup !== false,
      logLevel: o.logLevel,
      ...(logMax !== undefined ? { logMaxBytes: logMax } : {}),
      profilePollMs: pollMs,
      ...(responseTimeoutMs !== undefined ? { httpResponseTimeoutMs: responseTimeoutMs } : {}),
      ...(bodyTimeoutMs !== undefined ? { httpBodyTimeoutMs: bodyTimeoutMs } : {}),
      listen: {
        host,
        socksPort: port(proxyDefault(o.socksPort, 1080), '--socks-port', 1080),
        httpPort: port(proxyDefault(o.httpPort, 8080), '--http-port', 8080),
        pacPort: port(proxyDefault(o.pacPort, 0), '--pac-port', 0),
        adminPort: port(o.adminPort, '--admin-port', 0),
        ...(auth ? { auth } : {}),
        // A default port that is taken (another proxy on 1080, a dev server on 8080) is
        // replaced by a free one, which the banner shows; a port the user chose is not.
        anyPortIfBusy: { socks: o.socksPort === undefined, http: o.httpPort === undefined },
      },
      ...(tunMode
        ? {
            hostnames: () => hostTun?.capture.hostnames() ?? [],
            metrics: () => hostTun?.capture.metrics() ?? '',
          }
        : {}),
      sourceAddress: plan?.sourceAddress ?? null,
      onEdgeExit: (err) => {
        // The client keeps running: its tunnels are down and hardening applies.
        process.stderr.write(`gsa-emu: the in-process edge stopped: ${err.message}\n`);
      },
      onWarning: (m) => process.stderr.write(`gsa-emu: warning: ${m}\n`),
    });
    const { client, demo } = world;
    // `gsa-emu stop` (POST /shutdown) takes the same path as Ctrl+C.
    client.admin?.onShutdown(onSignal);
    await client.waitConnected(CONNECT_WAIT_MS).catch(() => {});
    if (plan && !signalled) {
      hostTun = await attachHostTun(client, plan, {
        ...(o.tunName ? { tunName: o.tunName } : {}),
        ...(demo ? { hostsForDns: tunDnsHosts(demo, hosts) } : {}),
        ...(o.icmpOnDrop ? { icmpOnDrop: true } : {}),
      });
    }
    const w = world;
    // Stopped while it started (Ctrl+C, SIGTERM, `gsa-emu stop`): no banner, whose "Ctrl+C to
    // stop." would come too late, but where the logs are, as after a run.
    const stopNow = async (): Promise<void> => {
      say('stopping...\n');
      await stop();
      say(`stopped. logs: ${w.clientLog}${w.edgeLog ? `, edge traffic log ${w.edgeLog}` : ''}\n`);
    };
    if (signalled) {
      await stopNow();
      return;
    }
    world.writeState();
    ready = true;
    clearStartFailure(world.dir);
    const bannerOptions: Parameters<typeof bannerText>[1] = {
      dir: world.dir,
      tokenFile: client.admin?.token ? tokenFileOf(world.stateFile) : null,
      edgeUrl: world.edgeUrl,
      demo,
      inProcess: world.edge === null ? null : o.edgeThread ? 'thread' : 'same',
      auth: auth !== undefined,
      ...(auth ? { user: auth.username } : {}),
      cli: cliCommand(),
      ...(client.addresses.admin === null ? { adminApi: false } : {}),
      ...(o.once ? { once: true } : {}),
      tun: hostTun
        ? {
            name: hostTun.tunName,
            address: hostTun.tunAddress,
            source: hostTun.sourceAddress,
            dns: hostTun.capture.dnsUpstream,
            table: plan!.table,
            pref: plan!.pref,
          }
        : null,
    };
    // The example commands as the client decides them now: decided again when the classifier
    // is swapped (a toggle, new profiles), not at every redraw.
    let decided: { generation: number; tries: DecidedTry[] } | null = null;
    const draw = async (): Promise<string> => {
      if (demo && decided?.generation !== client.generation) {
        const generation = client.generation;
        decided = { generation, tries: await decideTries(client.forwarder) };
      }
      return bannerText(client, { ...bannerOptions, ...(decided ? { tries: decided.tries } : {}) });
    };
    const banner = await draw();
    if (signalled) {
      await stopNow();
      return;
    }
    say(`${banner}\n`);
    if (o.once) {
      // A smoke test: a client that could not reach its edge (a channel's tunnel down, or
      // no forwarding profile fetched) fails it. States chosen by configuration (Disabled,
      // not onboarded, no profile enabled) do not.
      const st = client.status();
      const unreached =
        st.state === 'Some channels are unreachable' ||
        st.state === 'Disconnected' ||
        st.state === 'No internet' ||
        (st.state === 'Initializing' && st.onboarded);
      await stop();
      if (unreached) {
        throw new GsaError(
          'GSA_ERR_NOT_READY',
          `--once: not Connected within ${CONNECT_WAIT_MS / 1000} s (state ${st.state}${st.notes.length ? `: ${st.notes.join('; ')}` : ''}); the tiles above say which channel is down`,
        );
      }
      return;
    }
    const tty = o.tty !== false && (out as NodeJS.WriteStream).isTTY === true;
    let timer: NodeJS.Timeout | null = null;
    let unsub: (() => void) | null = null;
    // --no-tty flow lines dropped since the last one printed (said with the next line, or at the end).
    let dropped = 0;
    const sayDropped = (): void => {
      if (dropped > 0) say(`(${dropped} flow lines not printed: output not read)\n`);
      dropped = 0;
    };
    // Its reader gone (`gsa-emu up | head -3`): no more flow lines or redraws; up runs on.
    offGone = onOutputGone(out, () => {
      if (timer) clearInterval(timer);
      timer = null;
      unsub?.();
      unsub = null;
    });
    if (o.quiet) {
      // Nothing per flow: a long run's output redirected to a file stays the banner's size.
    } else if (tty && !outputGone(out)) {
      let drawing = false;
      timer = setInterval(() => {
        if (drawing) return;
        drawing = true;
        void draw()
          .then((banner) => {
            if (timer === null) return; // stopped meanwhile
            const table = liveTable(banner, client.flows.list(), out as NodeJS.WriteStream);
            say(`\x1b[2J\x1b[H${banner}\n\n${table}\n`);
          })
          .finally(() => {
            drawing = false;
          });
      }, 1000);
    } else if (!tty && !outputGone(out)) {
      // A reader that does not keep up (stdout piped and never read): the lines past
      // MAX_PENDING_OUTPUT are dropped, not buffered without bound; the next one says so.
      unsub = client.flows.onChange((rec, ev) => {
        if (ev !== 'open') return;
        if (((out as { writableLength?: number }).writableLength ?? 0) > MAX_PENDING_OUTPUT) {
          dropped++;
          return;
        }
        sayDropped();
        say(`${formatFlowLine(rec)}\n`);
      });
    }
    await new Promise<void>((resolve) => {
      wake = resolve;
      if (signalled) resolve();
      if (exitAfter !== null) setTimeout(resolve, exitAfter * 1000).unref();
    });
    if (timer) clearInterval(timer);
    timer = null;
    unsub?.();
    sayDropped();
    say('\n');
    await stopNow();
  } catch (err) {
    const e = err instanceof ListenError ? withPortHint(err) : err;
    if (!ready) recordStartFailure('up', o.stateDir, e);
    await stop();
    throw e;
  } finally {
    offGone();
    for (const s of SIGNALS) process.off(s, onSignal);
  }
}

/** How long `up` waits for the client to be Connected before its banner. */
const CONNECT_WAIT_MS = 5000;

/** The option that sets each listener's port, for a ListenError's message. */
const PORT_FLAGS: Record<string, string> = {
  'SOCKS5 proxy': '--socks-port',
  'HTTP proxy': '--http-port',
  'PAC server': '--pac-port',
  'admin API': '--admin-port',
};

function withPortHint(err: ListenError): ListenError {
  const flag = PORT_FLAGS[err.what];
  if (!flag || err.errno === 'EADDRNOTAVAIL') return err;
  return err.withHint(`choose another port with ${flag} <n> (0: any free port)`);
}

// How the banner names gsa-emu and its state folder: util/cli-command.ts, where `status`
// and the status notes find them too.
export { cliCommand, stateDirArg };

const WILDCARD = /^(\w+:\/\/)?(0\.0\.0\.0|\[::\])(?=:\d)/;

/**
 * A listener's address (`host:port`, or a URL) as this host reaches it: a listener bound to
 * every address (0.0.0.0, [::]) is named by the loopback address of its family (127.0.0.1,
 * [::1]); 0.0.0.0 in a command would mean "this host" only by accident of the OS.
 */
export function reachableAddress(a: string): string {
  return a.replace(
    WILDCARD,
    (_m, scheme: string | undefined, host: string) =>
      `${scheme ?? ''}${host === '0.0.0.0' ? '127.0.0.1' : '[::1]'}`,
  );
}

/** The wildcard (`0.0.0.0` or `::`) a listener address is bound to, or null. */
function wildcardOf(a: string | null): string | null {
  const m = a === null ? null : WILDCARD.exec(a);
  return m ? (m[2] === '0.0.0.0' ? '0.0.0.0' : '::') : null;
}

/** What the banner shows: the running client's state and listeners, and how `up` runs. */
export type BannerClient = Pick<RunningClient, 'status' | 'addresses' | 'platform' | 'listenNotes'>;

export function bannerText(
  client: BannerClient,
  x: {
    dir: string;
    /** The admin API's token file (`<state-dir>/client.token`), or null/absent: none. */
    tokenFile?: string | null;
    edgeUrl: string;
    demo: Demo | null;
    /** The in-process edge: on the client's thread, on its own thread, or none (remote). */
    inProcess: 'same' | 'thread' | null;
    auth: boolean;
    /** The proxy username, for the example commands (curl prompts for the password). */
    user?: string;
    /** How the user runs gsa-emu from a shell: `gsa-emu`, or `npx gsa-emu` (default). */
    cli?: string;
    /**
     * false: the client runs without an admin API (`--admin-port off`), so the banner
     * suggests no command that asks it (onboard, toggle, status, flows). Default true.
     */
    adminApi?: boolean;
    /** `--once`: the banner ends the run (no "Ctrl+C to stop."). */
    once?: boolean;
    /** The demo's example commands with the client's decisions (`decideTries`); default none. */
    tries?: readonly DecidedTry[];
    tun: {
      name: string;
      address: string;
      source: string | null;
      dns: { host: string; port: number } | null;
      table: number;
      pref: number;
    } | null;
  },
): string {
  const st = client.status();
  const up: Record<string, boolean> = {};
  for (const c of st.channels) up[c.channel] = c.up;
  const bound = client.addresses;
  // Listeners on every address are shown, and used in the commands, by loopback.
  const a = {
    socks: bound.socks && reachableAddress(bound.socks),
    http: bound.http && reachableAddress(bound.http),
    pac: bound.pac && reachableAddress(bound.pac),
    admin: bound.admin && reachableAddress(bound.admin),
  };
  const wildcards = [
    ...new Set([bound.socks, bound.http, bound.pac].map(wildcardOf).filter((w) => w !== null)),
  ];
  const required = x.auth ? ' (username/password required)' : '';
  // curl asks for the proxy password of `-U user` (SOCKS5 and HTTP proxy alike).
  const cred = x.auth && x.user !== undefined ? `-U ${shellWord(x.user)} ` : '';
  const sd = stateDirArg(x.dir);
  const g = x.cli ?? 'npx gsa-emu';
  const lines = [
    `gsa-emu: Global Secure Access ${st.state}${st.notes.length ? ` (${st.notes.join('; ')})` : ''}`,
    `tenant ${tenantText(st)}, platform ${client.platform.name}, edge ${x.edgeUrl}${x.inProcess === 'thread' ? ' (in-process on its own thread, demo servers on loopback)' : x.inProcess ? ' (in-process, demo servers on loopback)' : ''}`,
    ...st.warnings.map((w) => `warning: ${w}`),
    '',
    formatTiles(st.tiles, up),
    '',
    `SOCKS5      ${a.socks ? `${a.socks}${required}` : 'off'}`,
    `HTTP proxy  ${a.http ? `${a.http}${required}` : 'off'}`,
    `PAC         ${a.pac ?? 'off'}${a.http ? `  (also http://${a.http}/proxy.pac)` : ''}`,
    ...(wildcards.length
      ? [
          `listening   on all interfaces (${wildcards.join(', ')})${x.auth ? ', username/password required' : ''}; the addresses above are loopback, for this host`,
          "            from another machine use this host's address (the PAC file names the address it was fetched on)",
        ]
      : []),
    ...client.listenNotes.map((n) => `note: ${n}`),
    ...(x.tun
      ? [
          `TUN         ${x.tun.name} ${x.tun.address}/30: the host's IPv4 is routed into it (ip rule pref ${x.tun.pref}-${x.tun.pref + 3}, table ${x.tun.table})`,
          `own traffic ${x.tun.source ? `bound to ${x.tun.source} (rule "from ${x.tun.source} lookup main")` : 'loopback only (in-process edge)'}`,
          `DNS         UDP 53 into the TUN: acquired names -> 6.6.x.y, others -> ${x.tun.dns ? `${x.tun.dns.host}:${x.tun.dns.port}` : 'SERVFAIL'}`,
        ]
      : []),
    `admin API   ${a.admin ? `http://${a.admin}  (/status /flows /hostnames /profile /health /explain /metrics, POST /toggle /vpn /onboard /shutdown /profile/refresh)` : 'off'}`,
    ...(a.admin && x.tokenFile
      ? [`            token in ${shellWord(x.tokenFile)} (send "Authorization: Bearer <token>")`]
      : []),
    `state       ${x.dir}`,
    '',
  ];
  // The demo's example commands, each with what the client does with it now: a tunneled
  // flow whose tunnel is not up gets its fallback (redrawn each second on a terminal).
  const { shown, leftOut } = shownTries(st, x.tries ?? []);
  const tunnelUp = (t: DecidedTry): boolean =>
    t.decision.channel === null || up[t.decision.channel] === true;
  const toggle = toggleHint(st);
  // The commands that ask the admin API (onboard, toggle, status, flows, explain --running):
  // none without one (`--admin-port off`), where each would fail.
  const admin = x.adminApi !== false;
  const more = (cmds: string[]) =>
    admin ? [`  ${cmds.map((c) => `${g} ${c}${sd}`).join('; ')}`] : [];
  const before =
    st.onboarded || !admin ? [] : [`  ${g} onboard${sd}   # first: the client is not onboarded`];
  const after = leftOut ? [`  # ${leftOut}`] : [];
  if (x.demo && (a.socks || a.http)) {
    const ca = shellWord(x.demo.caFile);
    // Each try through its own proxy, or through the other when its own is off.
    const cmds = shown.map(({ t, off }): [string, string] => {
      const socks = a.http ? (t.proxy === 'socks' && a.socks) || null : a.socks;
      const cacert = t.tls ? `--cacert ${ca} ` : '';
      return [
        socks
          ? `--socks5-hostname ${socks} ${cacert}${urlOf(t)}`
          : `-x http://${a.http} ${cacert}${urlOf(t)}`,
        withNote(
          tryOutcome(
            t.decision,
            off,
            t.edgeBlocks ? (socks ? 'SOCKS reply 0x02' : '403') : null,
            tunnelUp(t),
          ),
          t,
        ),
      ];
    });
    lines.push(
      'try:',
      ...before,
      ...tryLines(cmds, `curl ${cred}`),
      ...after,
      ...more([...(toggle ? [toggle] : []), 'status', 'flows']),
      '',
    );
  }
  if (x.demo && x.tun) {
    const ca = shellWord(x.demo.caFile);
    const cmds = shown.map(({ t, off }): [string, string] => [
      `${t.tls ? `--cacert ${ca} ` : ''}${urlOf(t)}`,
      withNote(tryOutcome(t.decision, off, t.edgeBlocks ? 'reset' : null, tunnelUp(t)), t),
    ]);
    lines.push(
      'try (any application on this host is captured):',
      ...before,
      ...tryLines(cmds, 'curl '),
      ...after,
      ...more(['flows', 'hostnames', 'status']),
      '',
    );
  }
  if (!x.demo && !x.tun && (a.socks || a.http)) {
    // A remote edge: no demo names; say how to try a name of one's own.
    lines.push(
      'try (your own names: resolved by --add-host first, then the system resolver; address rules see the result):',
      ...(a.socks ? [`  curl ${cred}--socks5-hostname ${a.socks} http://<name>/`] : []),
      ...(a.http ? [`  curl ${cred}-x http://${a.http} http://<name>/`] : []),
      ...more(['explain --running <name>', 'flows', 'status']),
      '',
    );
  }
  if (!x.once) lines.push('Ctrl+C to stop.');
  return lines.join('\n');
}

/**
 * The live table under `banner`: the last 20 flows, or fewer, so that the redraw fits the
 * terminal's rows (long lines wrapping at its columns) and does not scroll the status line
 * and tiles off the screen (and a copy into the scrollback) every second. At least 3: a
 * terminal too small for the banner scrolls anyway.
 */
export function liveTable(
  banner: string,
  flows: readonly FlowRecord[],
  term: { rows?: number; columns?: number },
): string {
  const rows = term.rows && term.rows > 0 ? term.rows : 0;
  const cols = term.columns && term.columns > 0 ? term.columns : 80;
  const screenRows = (text: string): number =>
    text.split('\n').reduce((n, l) => n + Math.max(1, Math.ceil(l.length / cols)), 0);
  // The banner, the blank line after it, and the line left for the cursor.
  const used = screenRows(banner) + 2;
  for (let n = Math.min(20, flows.length); ; n--) {
    const table = formatFlows(flows.slice(flows.length - n));
    if (rows === 0 || n <= 3 || used + screenRows(table) <= rows) return table;
  }
}

/** A try's outcome with its note, if it has one. */
function withNote(outcome: string, t: DecidedTry): string {
  if (t.unresolvable) {
    const why = t.note ? ': without Private DNS a single-label name does not resolve' : '';
    return `fails: cannot resolve ${t.host} (${outcome}${why})`;
  }
  return t.note ? `${outcome} (${t.note})` : outcome;
}

/** `http://name/`, `https://name/` (the demo tries use the default ports). */
function urlOf(t: DecidedTry): string {
  return `${t.tls ? 'https' : 'http'}://${t.host}/`;
}

/**
 * The tries the banner shows, each with why its channel does not forward now (null: it
 * does), and `leftOut`: which channels' tries it leaves out, and why (null: none). Left out
 * are those of a channel the client configuration hides (its tile hidden and off, or the
 * Global Secure Access tile hidden and off): no user action turns it on.
 */
function shownTries(
  st: StatusView,
  tries: readonly DecidedTry[],
): { shown: Array<{ t: DecidedTry; off: string | null }>; leftOut: string | null } {
  const hiddenOff = (c: ChannelName) => !st.tiles[c].visible && !st.tiles[c].on;
  const gsaOff = !st.onboarded
    ? 'not onboarded'
    : !st.vpnOn
      ? 'the VPN is off'
      : !st.tiles.m365.effective
        ? 'Global Secure Access is off'
        : null;
  const shown = tries
    .filter((t) => !hiddenOff(t.channel) && !hiddenOff('m365'))
    .map((t) => ({
      t,
      off: gsaOff ?? (st.tiles[t.channel].effective ? null : `${CHANNEL_LABEL[t.channel]} is off`),
    }));
  const hidden = [...new Set(tries.map((t) => t.channel))].filter(hiddenOff);
  const leftOut =
    tries.length > 0 && hiddenOff('m365')
      ? 'no example: the client configuration hides Global Secure Access'
      : hidden.length > 0
        ? `no example for ${hidden.map((c) => CHANNEL_LABEL[c]).join(' or ')}: the client configuration hides it`
        : null;
  return { shown, leftOut };
}

/**
 * The toggle the banner suggests: the Global Secure Access tile on when it is off, else the
 * Internet Access toggle to its other position; none where the user may not switch it.
 */
function toggleHint(st: StatusView): string | null {
  const gsa = st.tiles.m365;
  const inet = st.tiles.internet;
  // Windows RestrictNonPrivilegedUsers=1: only an administrator may (`--privileged`).
  const as = (t: typeof gsa) => (t.privilegedOnly ? ' --privileged' : '');
  if (!gsa.on) return gsa.visible && gsa.userCanToggle ? `toggle m365 on${as(gsa)}` : null;
  if (!inet.visible || !inet.userCanToggle) return null;
  return `toggle internet ${inet.on ? 'off' : 'on'}${as(inet)}`;
}

/** `  curl <args>   # <what>`, the comments lined up but for a long --cacert line's. */
function tryLines(cmds: Array<[string, string]>, prefix: string): string[] {
  const width = Math.max(
    0,
    ...cmds.filter(([c]) => !c.includes('--cacert')).map(([c]) => c.length),
  );
  return cmds.map(([c, what]) => `  ${prefix}${c.padEnd(width)}   # ${what}`);
}
