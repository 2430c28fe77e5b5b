/**
 * What the commands share: the options that load a tenant, a client configuration and a
 * platform, or find the running client; the values they parse; how to name gsa-emu in the
 * commands they suggest.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Command } from 'commander';
import { normalizeLocalSubnet } from '../classify/local-subnets.js';
import { UsageError } from '../errors.js';
import {
  type ClientTiles,
  createClientTiles,
  defaultClientConfig,
  loadClientConfigFile,
} from '../policy/client-config.js';
import type { ChannelName, ClientState, PlatformSpec } from '../policy/model.js';
import { loadPlatform, unknownPlatform } from '../policy/platform.js';
import { type LoadedTenant, loadTenantFile } from '../policy/tenant-file.js';
import { MIB } from '../util/log-rotation.js';
import { isHostName } from '../util/names.js';

export interface PolicyOptions {
  tenant?: string;
  clientConfig?: string;
  platform?: string;
}

/**
 * --tenant, --client-config and --platform. `platformDefault: false` leaves --platform unset
 * when not given (commands that also read a config file decide then; ios in the end).
 */
export function addPolicyOptions(cmd: Command, o: { platformDefault?: false } = {}): Command {
  return cmd
    .option(
      '--tenant <file>',
      'forwarding profiles (Graph JSON/YAML); default: the built-in tenant',
    )
    .option(
      '--client-config <file>',
      'managed client keys (.json, .yaml, .mobileconfig, .plist, .xml, .reg); default: EnableGSA=2, channels 2, SilentOnboard',
    )
    .option(
      '--platform <name|file>',
      `platform behaviour: ios${o.platformDefault === false ? ' (default)' : ''}, windows, macos, android or a file`,
      platformOption,
      o.platformDefault === false ? undefined : 'ios',
    );
}

/** A `--platform` value: a file, or a built-in platform's name; else UsageError (exit 2). */
export function platformOption(v: string): string {
  const unknown = unknownPlatform(v);
  if (unknown !== null) throw new UsageError(unknown);
  return v;
}

export interface PolicyContext {
  loaded: LoadedTenant;
  tiles: ClientTiles;
  platform: PlatformSpec;
  warnings: string[];
  state(): ClientState;
}

export function loadPolicyContext(opts: PolicyOptions): PolicyContext {
  const loaded = loadTenantFile(opts.tenant);
  const warnings: string[] = [];
  // The platform first: it says which managed keys the client reads (iOS's or Android's).
  const platform = loadPlatform(opts.platform ?? 'ios');
  let config = defaultClientConfig();
  if (opts.clientConfig) {
    const cc = loadClientConfigFile(opts.clientConfig, { platform });
    config = cc.config;
    for (const w of cc.warnings) warnings.push(`${w.path ? `${w.path}: ` : ''}${w.message}`);
  }
  const tiles = createClientTiles(config);
  return { loaded, tiles, platform, warnings, state: () => tiles.toClientState(platform) };
}

/** Commander's accumulator for a repeatable option (`--add-host a --add-host b`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** A `--wait <seconds>` value: more than 0, at most an hour; else UsageError naming it. */
export function waitSeconds(v: string): number {
  return numberOption(v, '--wait', { unit: 'seconds', fraction: true, above: 0, max: 3600 });
}

/**
 * A `--local-subnets` value: `none`, or IPv4 CIDRs separated by commas (a bare address is a
 * /32), as `network/prefix`; else UsageError naming the option and the entry.
 */
export function localSubnetsOption(v: string, flag = '--local-subnets'): string[] {
  if (v.trim().toLowerCase() === 'none') return [];
  return v.split(',').map((part) => {
    const n = normalizeLocalSubnet(part.trim());
    if (n === null) {
      throw new UsageError(
        `${flag} "${v}": "${part.trim()}" is not an IPv4 CIDR (a.b.c.d/n); give a comma-separated list, or "none"`,
      );
    }
    return n;
  });
}

/** Channel names a user may type (any case), with the tile names' aliases. */
const CHANNEL_NAMES: Record<string, ChannelName> = {
  m365: 'm365',
  microsoft365: 'm365',
  gsa: 'm365',
  private: 'private',
  internet: 'internet',
};

/** Whether a command-line word names a channel (`channelOf` takes it). */
export function isChannelName(name: string): boolean {
  return Object.hasOwn(CHANNEL_NAMES, name.toLowerCase());
}

/** The channel a command-line name means, or a UsageError listing the names. */
export function channelOf(name: string): ChannelName {
  const ch = CHANNEL_NAMES[name.toLowerCase()];
  if (!ch) throw new UsageError(`unknown channel "${name}" (use m365, private or internet)`);
  return ch;
}

/**
 * `--admin-token`'s help: it works alone (the address from the state file, the token from
 * the file) as well as with `--admin` (admin-client.ts adminTarget).
 */
export const ADMIN_TOKEN_HELP =
  "a file holding the admin API's token (a run's <state-dir>/client.token), used instead of the state file's: alone (the address from the state file) or with --admin (default: the token of the state file with that address)";

/**
 * The options that find the running client: `--admin`, `--admin-token`, `--state-dir`
 * (status, flows, toggle, vpn, onboard).
 */
export function addAdminOptions(c: Command): Command {
  return c
    .option('--admin <host:port>', 'admin API address (default: from <state-dir>/client.json)')
    .option('--admin-token <file>', ADMIN_TOKEN_HELP)
    .option(
      '--state-dir <dir>',
      'state folder of the running client (default $GSA_EMU_STATE_DIR, else ~/.gsa-emu)',
    );
}

/** What `addAdminOptions` gives an action. */
export interface AdminOptionValues {
  admin?: string;
  adminToken?: string;
  stateDir?: string;
}

/**
 * The admin API's answer to a user action (POST /toggle, /vpn, /onboard). `changed` false:
 * it was so already (absent, from an older gsa-emu: taken as changed).
 */
export interface UserActionAnswer {
  channels: Record<string, boolean>;
  changed?: boolean;
}

/** The `<state>` argument of toggle and vpn: on or off, any case; else a usage error. */
export function onOff(state: string): 'on' | 'off' {
  const s = state.toLowerCase();
  if (s !== 'on' && s !== 'off') throw new UsageError(`state must be on or off, not "${state}"`);
  return s;
}

/** `m365 on, private on, internet off`: what the client forwards now. */
export function forwardingText(channels: Record<string, boolean>): string {
  return Object.entries(channels)
    .map(([k, v]) => `${k} ${v ? 'on' : 'off'}`)
    .join(', ');
}

/** How the user runs gsa-emu from a shell (`gsa-emu` or `npx gsa-emu`): util/cli-command.ts. */
export { cliCommand } from '../util/cli-command.js';

/**
 * A port number given on the command line or in a config file: digits only, 0 to 65535
 * (0: any free port); else a UsageError naming `flag` (`also` adds the other accepted
 * values, such as `(or "off")`). Not Number(): it takes "" and " " as 0, "0x438", "1e4".
 */
export function portNumber(v: string, flag: string, also = ''): number {
  const n = /^\d{1,5}$/.test(v) ? Number(v) : Number.NaN;
  if (!(n >= 0 && n <= 65535))
    throw new UsageError(`${flag} "${v}" is not a port number${also ? ` ${also}` : ''}`);
  return n;
}

/** What `numberOption` accepts: a unit, fractions or not, and the range. */
export interface NumberRange {
  /** `seconds`, `milliseconds`; none: a bare count (`--limit`). */
  unit?: string;
  /** Whether a fraction (`0.5`) is allowed; else whole numbers only. */
  fraction?: boolean;
  /** The least value allowed (`min`), or the value it must be above (`above`). */
  min?: number;
  above?: number;
  /** The largest value allowed; none: no bound (but Number.MAX_SAFE_INTEGER). */
  max?: number;
}

/**
 * A number of seconds, milliseconds or things given on the command line or in a config
 * file: decimal digits, with a fraction (`1.5`) where `fraction` allows it, in the range;
 * else a UsageError naming `flag`, the value and the range. Not Number(): it takes "" and
 * " " as 0, and "0x10", "1e3", "Infinity" as numbers.
 */
export function numberOption(v: string, flag: string, r: NumberRange): number {
  const form = r.fraction ? /^\d+(\.\d+)?$/ : /^\d+$/;
  const n = form.test(v) ? Number(v) : Number.NaN;
  const max = r.max ?? Number.MAX_SAFE_INTEGER;
  const low = r.above !== undefined ? n > r.above : n >= (r.min ?? 0);
  if (!(low && n <= max)) {
    const what = `${r.fraction ? 'a' : 'a whole'} number${r.unit ? ` of ${r.unit}` : ''}`;
    const atMost = r.max !== undefined ? `, at most ${r.max}` : '';
    const range =
      r.above !== undefined
        ? `above ${r.above}${atMost}`
        : r.max !== undefined
          ? `from ${r.min ?? 0} to ${r.max}`
          : `of ${r.min ?? 0} or more`;
    throw new UsageError(`${flag} "${v}" is not ${what} ${range}`);
  }
  return n;
}

/** The largest `--log-max-size`: 1 TiB, in MiB. */
export const MAX_LOG_MAX_MIB = 1024 * 1024;

/**
 * A `--log-max-size <MiB>` value (a config file's `logMaxSize`) in bytes: a number of MiB,
 * fractions allowed (at least one byte), up to 1 TiB; 0 = no cap. Else a UsageError naming
 * `flag`.
 */
export function logMaxBytes(v: string, flag = '--log-max-size'): number {
  const mib = numberOption(v, flag, { unit: 'MiB', fraction: true, max: MAX_LOG_MAX_MIB });
  return mib === 0 ? 0 : Math.max(1, Math.round(mib * MIB));
}

/**
 * A `--host` value: an IPv4 or IPv6 address (`[::1]`, as in a URL, is the address `::1`) or
 * a host name, else a UsageError naming `flag` (`127.0.0.1:80`: the port goes in its own
 * option, `ports`).
 */
export function hostOption(
  v: string,
  flag = '--host',
  ports = '--socks-port, --http-port',
): string {
  const h = /^\[.*\]$/.test(v) ? v.slice(1, -1) : v;
  if (isIP(h) !== 0 || isHostName(h.toLowerCase().replace(/\.$/, ''))) return h;
  const port = /^(?:\[[^\]]*\]|[^:]*):\d*$/.test(v)
    ? `; a port goes in its own option (${ports})`
    : '';
  throw new UsageError(
    `${flag} ${JSON.stringify(v)}: not an IPv4 or IPv6 address or a host name${port}`,
  );
}

/**
 * The signals a long-running command (`up`, `edge`) stops cleanly on: Ctrl+C, SIGTERM,
 * SIGHUP, and on Windows Ctrl+Break. Asked when the command starts (the list it listens on
 * is the one it stops listening on).
 */
export function stopSignals(): NodeJS.Signals[] {
  const list: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  if (process.platform === 'win32') list.push('SIGBREAK');
  return list;
}

/**
 * The text of the file an option names (`--edge-secret <file>`, `--password-file <file>`);
 * one it cannot read is a UsageError naming the option, the file and why (ENOENT, EACCES).
 */
export function readOptionFile(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new UsageError(`${flag} "${file}": cannot read it (${err.code ?? err.message})`);
  }
}
