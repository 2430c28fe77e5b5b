/**
 * `gsa-emu edge`: the mock GSA edge alone, on 127.0.0.1 by default. An optional config file
 * (JSON or YAML) gives the egress hosts map, the private connector's hosts, web filtering
 * and egress switches; see docs/edge.md.
 *
 * It holds `<state-dir>/edge.lock` (util/pid-lock.ts, as `up` holds up.lock) while it runs:
 * a second edge on the same state folder stops with GSA_ERR_BUSY naming the first, and
 * `gsa-emu stop --edge` finds the edge to stop by it (a script's `kill` may reach only an
 * `npx` wrapper). The lock is released on Ctrl+C, SIGTERM, SIGHUP (Windows: Ctrl+Break) and
 * when the start fails; one left by a killed edge is stale and taken over.
 */
import { closeSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import { domainToASCII } from 'node:url';
import type { Command } from 'commander';
import { isLoopbackHost } from '../../capture/listen.js';
import {
  checkBoolean,
  checkEdgeConfig,
  type EdgeFileConfig,
  withConfigFile,
} from '../../edge/config-check.js';
import { DEVICE_CERTIFICATE_MODES, type DeviceCertificateMode } from '../../edge/device-ca.js';
import { clientUrlHost, isWildcardHost } from '../../edge/machine-names.js';
import { type Edge, startEdge } from '../../edge/server.js';
import { ConfigError, type ConfigIssue, GsaError, ListenError, UsageError } from '../../errors.js';
import { loadTenantFile } from '../../policy/tenant-file.js';
import { parseConfigText } from '../../util/config-text.js';
import { DEFAULT_LOG_MAX_BYTES } from '../../util/log-rotation.js';
import { acquirePidLock } from '../../util/pid-lock.js';
import { makeDirs, openPrivateFile, stateDir, stateDirError } from '../../util/state-dir.js';
import { hostOption, logMaxBytes, numberOption, portNumber, stopSignals } from '../common.js';
import { ensureEdgeSecret, readSecretFile } from '../edge-secret.js';

interface EdgeCliOptions {
  host: string;
  port: string;
  tls: boolean;
  stateDir?: string;
  tenant?: string;
  config?: string;
  logFile?: string;
  logMaxSize?: string;
  allowRemote?: boolean;
  closeOnTokenExpiry?: boolean;
  maxTokenTtl?: string;
  clientSecretFile?: string;
  deviceCertificates?: string;
  hostname: string[];
  quiet?: boolean;
}

/**
 * One operational event of the edge (a session up or down, a refused tunnel or token, a
 * datagram too large) as a line on stdout: time, what, then `key=value` fields (a value
 * with spaces or quotes in JSON quotes). What a team running a shared edge watches for: a
 * client turned away (wrong secret, too many sessions) shows only here.
 */
export function edgeEventLine(level: 'info' | 'warn', obj: object, msg = ''): string {
  const fields = Object.entries(obj)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(
      ([k, v]) => `${k}=${typeof v === 'string' && /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)}`,
    );
  return `${new Date().toISOString()} ${level === 'warn' ? 'warn ' : ''}${msg}${fields.length ? ` ${fields.join(' ')}` : ''}\n`;
}

/** The lock file a running `gsa-emu edge` holds in its state folder (`gsa-emu stop --edge`). */
export const EDGE_LOCK = 'edge.lock';

/** The `--config` keys `gsa-emu edge` reads itself, besides the edge's own. */
const EDGE_COMMAND_KEYS = ['logMaxSize', 'closeOnTokenExpiry', 'maxTokenTtl'];

/**
 * A device certificate mode given on the command line (`edge --device-certificates`, `up
 * --edge-device-certificates`): off, optional or required; else a UsageError naming `flag`.
 */
export function deviceCertificatesOption(v: string, flag: string): DeviceCertificateMode {
  if ((DEVICE_CERTIFICATE_MODES as readonly string[]).includes(v))
    return v as DeviceCertificateMode;
  throw new UsageError(`${flag} ${v}: must be one of ${DEVICE_CERTIFICATE_MODES.join(', ')}`);
}

/** The longest token lifetime `--max-token-ttl` and `up --token-ttl` take: 365 days. */
export const MAX_TOKEN_TTL_SECONDS = 365 * 86_400;

/**
 * A token lifetime given on the command line (`--max-token-ttl`, `up --token-ttl`) or in a
 * config file: whole seconds from 1 to MAX_TOKEN_TTL_SECONDS; else a UsageError naming `flag`.
 */
export function tokenTtlSeconds(v: string, flag: string): number {
  return numberOption(v, flag, { unit: 'seconds', min: 1, max: MAX_TOKEN_TTL_SECONDS });
}

/** What `--config` gives `gsa-emu edge`: the edge's keys, and the command's own. */
export interface EdgeCommandConfig {
  config: EdgeFileConfig;
  /** `logMaxSize` (MiB), in bytes. */
  logMaxBytes?: number;
  /** `closeOnTokenExpiry`: as `--close-on-token-expiry`. */
  closeOnTokenExpiry?: boolean;
  /** `maxTokenTtl` (seconds): as `--max-token-ttl`. */
  maxTokenTtlSeconds?: number;
}

/**
 * Reads `--config` and checks it (every problem at once, each by its key path): the edge's
 * keys (EdgeFileConfig), and the command's own: `logMaxSize` (`--log-max-size`, in bytes),
 * `closeOnTokenExpiry` (`--close-on-token-expiry`), `maxTokenTtl` (`--max-token-ttl`).
 */
export function readEdgeConfig(file: string): EdgeCommandConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([{ path: '', message: `cannot read: ${(e as Error).message}` }], file);
  }
  const v = parseConfigText(text, file);
  if (
    typeof v !== 'object' ||
    v === null ||
    Array.isArray(v) ||
    !EDGE_COMMAND_KEYS.some((k) => Object.hasOwn(v, k))
  ) {
    return { config: checkEdgeConfig(v, file, EDGE_COMMAND_KEYS) };
  }
  const { logMaxSize, closeOnTokenExpiry, maxTokenTtl, ...rest } = v as Record<string, unknown>;
  const has = (k: string): boolean => Object.hasOwn(v, k);
  const issues: ConfigIssue[] = [];
  const out: Omit<EdgeCommandConfig, 'config'> = {};
  /** A flag's check of the key's value, its UsageError said of the key. */
  const flagValue = <T>(key: string, value: unknown, what: string, check: (s: string) => T) => {
    if (typeof value === 'string' || typeof value === 'number') {
      try {
        return check(String(value));
      } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        issues.push({ path: key, message: e.message.replace(/^--[\w-]+ /, '') });
        return undefined;
      }
    }
    issues.push({ path: key, message: `must be ${what}, not ${JSON.stringify(value)}` });
    return undefined;
  };
  if (has('logMaxSize')) {
    const bytes = flagValue('logMaxSize', logMaxSize, 'a number of MiB', (s) => logMaxBytes(s));
    if (bytes !== undefined) out.logMaxBytes = bytes;
  }
  if (has('closeOnTokenExpiry')) {
    if (typeof closeOnTokenExpiry === 'boolean') out.closeOnTokenExpiry = closeOnTokenExpiry;
    else checkBoolean(closeOnTokenExpiry, 'closeOnTokenExpiry', issues);
  }
  if (has('maxTokenTtl')) {
    const ttl = flagValue('maxTokenTtl', maxTokenTtl, 'a number of seconds', (s) =>
      tokenTtlSeconds(s, '--max-token-ttl'),
    );
    if (ttl !== undefined) out.maxTokenTtlSeconds = ttl;
  }
  let config: EdgeFileConfig;
  try {
    config = checkEdgeConfig(rest, file, EDGE_COMMAND_KEYS);
  } catch (e) {
    if (e instanceof ConfigError && issues.length > 0) {
      throw new ConfigError([...issues, ...e.issues], file);
    }
    throw e;
  }
  if (issues.length > 0) throw new ConfigError(issues, file);
  return { config, ...out };
}

/**
 * A `--hostname` as the certificate has it: an IP address, or a DNS name in ASCII (labels
 * of letters, digits and '-', 1 to 63 bytes, at most 253 in all; `*.` first for a wildcard;
 * a final dot dropped). Anything else is a UsageError (it would be a name no client checks).
 */
export function certName(v: string): string {
  if (isIP(v) !== 0) return v;
  const name = v.endsWith('.') ? v.slice(0, -1) : v;
  const label = '(?!-)[A-Za-z0-9-]{1,63}(?<!-)';
  if (name.length <= 253 && new RegExp(`^(\\*\\.)?${label}(\\.${label})*$`).test(name)) return name;
  const ascii = /[^\x00-\x7f]/.test(v) ? domainToASCII(name) : '';
  throw new UsageError(
    `--hostname "${v}" is not an IP address or a DNS name (letters, digits, '-' and dots; no port)${ascii ? `: in ASCII it is ${ascii}` : ''}`,
  );
}

/**
 * The banner's words for an edge on every address (0.0.0.0, `::`): where it listens, the
 * URL a client on another machine gives `up --edge` (the first `--hostname`, else an
 * address of this machine; loopback's, said so, when it has none) and the lines saying
 * which other names reach it (docs/decisions/edge-wildcard-names.md).
 */
export function wildcardUrl(
  edge: Pick<Edge, 'url' | 'host' | 'port' | 'caPem' | 'machineNames'>,
  hostnames: string[],
): { listening: string; url: string; lines: string[] } {
  const scheme = edge.caPem ? 'https' : 'http';
  const families = edge.host === '0.0.0.0' ? 'IPv4' : 'IPv4 and IPv6';
  const listening = `all ${families} addresses, port ${edge.port}`;
  const host = clientUrlHost(hostnames, [...edge.machineNames]);
  if (host === null) {
    const url = `${scheme}://${edge.host === '0.0.0.0' ? '127.0.0.1' : '[::1]'}:${edge.port}`;
    return {
      listening,
      url,
      lines: [
        `  URL         ${url} (this machine only: it has no address beyond loopback; give the name other machines reach it by with --hostname <name>)`,
      ],
    };
  }
  const url = `${scheme}://${host}:${edge.port}`;
  const all = [...new Set([...hostnames, ...edge.machineNames])];
  return {
    listening,
    url,
    lines: [
      `  URL         ${url}`,
      `  names       ${all.join(', ')} (${edge.caPem ? 'its certificate holds each: ' : ''}any may stand in the URL; --hostname <name> adds one)`,
    ],
  };
}

/**
 * The banner's `egress` line: an edge whose egress is open (the system resolver or direct IP
 * connections on, as they are without `--config`) relays tunneled traffic to the real
 * internet, which the user should not have to learn from docs/edge.md; the line names the
 * config keys that close it. None when the config closes both.
 */
export function egressLine(egress: EdgeFileConfig['egress']): string | null {
  const open = [
    ...((egress?.systemResolver ?? true) ? ['systemResolver'] : []),
    ...((egress?.directIp ?? true) ? ['directIp'] : []),
  ];
  if (open.length === 0) return null;
  const what = open.map((k) => (k === 'systemResolver' ? 'system resolver' : 'direct IPs'));
  return `  egress      reaches the internet (${what.join(' and ')} on); to keep its traffic on this machine: --config with egress: {${open.map((k) => `${k}: false`).join(', ')}} (docs/edge.md)`;
}

export function register(program: Command): void {
  program
    .command('edge')
    .description('run the mock GSA edge: tokens, JWKS, Graph-shaped control API, tunnel, egress')
    .option('--host <address>', 'listen address', '127.0.0.1')
    .option('--port <n>', 'listen port (0 = any free port)', '8443')
    .option('--no-tls', 'plain HTTP/WS instead of HTTPS/WSS (for benchmarks)')
    .option(
      '--state-dir <dir>',
      'CA, signing key and logs (default $GSA_EMU_STATE_DIR, else ~/.gsa-emu)',
    )
    .option('--tenant <file>', 'forwarding profiles to serve (default: the built-in tenant)')
    .option(
      '--config <file>',
      'hostsMap, connectorHosts, connectorSearch, filtering, egress, deviceCertificates; tenantId, tenantName for a Graph list --tenant; logMaxSize, closeOnTokenExpiry, maxTokenTtl (JSON/YAML)',
    )
    .option('--log-file <file>', 'traffic log, JSON lines (default <state-dir>/edge-traffic.jsonl)')
    .option(
      '--log-max-size <MiB>',
      'rotate the traffic log at this size: renamed <file>.1, replacing an older one (default 1024; 0: never)',
    )
    .option(
      '--close-on-token-expiry',
      'close a tunnel session (code 4419) when the token it was opened with expires, and say when on the upgrade (gsa-emu up replaces the session before then)',
    )
    .option(
      '--max-token-ttl <seconds>',
      `the longest token lifetime the token endpoint issues (default 86400; at most ${MAX_TOKEN_TTL_SECONDS})`,
    )
    .option(
      '--quiet',
      'print the banner only: no line per session up or down, refused tunnel or token',
    )
    .option(
      '--allow-remote',
      'allow a non-loopback --host (the edge relays traffic: tokens then need its client secret)',
    )
    .option(
      '--client-secret-file <file>',
      'issue tokens only to clients that give this secret (gsa-emu up --edge-secret); default with a non-loopback --host: <state-dir>/edge-client-secret, made if missing',
    )
    .option(
      '--device-certificates <mode>',
      'device certificates (mTLS) on the tunnels: optional (default: checked when presented), required (refuse a client without one), off (ask for none)',
    )
    .option(
      '--hostname <name>',
      'another name or address clients reach the edge by, put in its certificate (repeatable)',
      (v: string, all: string[]) => [...all, v],
      [],
    )
    .action(async (o: EdgeCliOptions) => {
      const port = portNumber(o.port, '--port');
      const host = hostOption(o.host, '--host', '--port');
      if (!isLoopbackHost(host) && !o.allowRemote) {
        throw new UsageError(`--host ${o.host} is not loopback; add --allow-remote if you mean it`);
      }
      const givenSecret =
        o.clientSecretFile !== undefined
          ? readSecretFile(o.clientSecretFile, '--client-secret-file')
          : undefined;
      const flagMax = o.logMaxSize !== undefined ? logMaxBytes(o.logMaxSize) : undefined;
      const deviceMode =
        o.deviceCertificates !== undefined
          ? deviceCertificatesOption(o.deviceCertificates, '--device-certificates')
          : undefined;
      if (deviceMode === 'required' && !o.tls) {
        throw new UsageError(
          '--device-certificates required needs TLS (a device certificate is presented in the TLS handshake): drop --no-tls',
        );
      }
      const flagTtl =
        o.maxTokenTtl !== undefined ? tokenTtlSeconds(o.maxTokenTtl, '--max-token-ttl') : undefined;
      const dir = stateDir(o.stateDir);
      const read: EdgeCommandConfig = o.config ? readEdgeConfig(o.config) : { config: {} };
      const cfg: EdgeFileConfig = read.config;
      const logMax = flagMax ?? read.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES;
      const maxTtl = flagTtl ?? read.maxTokenTtlSeconds;
      const closeOnExpiry = o.closeOnTokenExpiry === true || read.closeOnTokenExpiry === true;
      const loaded = loadTenantFile(o.tenant);
      const logFile = o.logFile ?? join(dir, 'edge-traffic.jsonl');
      // The listen address is in the certificate (not a wildcard, which no client dials:
      // then the edge adds this machine's addresses and name, machine-names.ts).
      const wildcard = isWildcardHost(host);
      const hostnames = o.hostname.map(certName);
      const names = [...(wildcard ? [] : [host]), ...hostnames];
      // A state folder that is a file, or not ours: said of the folder, as `up` does.
      // startEdge's own (said of its stateDir option) carry the file system's as their cause.
      const dirError = (err: unknown) =>
        stateDirError(err, dir) ??
        (err instanceof GsaError && err.cause !== undefined ? stateDirError(err.cause, dir) : null);
      // One edge per state folder, found by its lock (`gsa-emu stop --edge`).
      let release: () => void;
      try {
        makeDirs(dir);
        release = acquirePidLock(
          join(dir, EDGE_LOCK),
          'edge',
          `the state directory ${dir}`,
          'stop it first (`gsa-emu stop --edge`), or give this edge its own --state-dir',
        );
      } catch (err) {
        throw dirError(err) ?? err;
      }
      // Beyond loopback, tokens go only to clients with the secret (edge-client-secret.md).
      let secret: { secret: string; file: string } | null = null;
      try {
        if (givenSecret !== undefined) secret = { secret: givenSecret, file: o.clientSecretFile! };
        else if (!isLoopbackHost(host)) secret = ensureEdgeSecret(dir);
      } catch (err) {
        release();
        throw dirError(err) ?? err;
      }
      // Ctrl+C / SIGTERM / SIGHUP (Windows: also Ctrl+Break), also while it starts: stop
      // once it has started. A second one ends the process at once (the lock stays, stale).
      const SIGNALS = stopSignals();
      let signalled = false;
      let wake: (() => void) | null = null;
      const onSignal = (): void => {
        signalled = true;
        for (const s of SIGNALS) process.off(s, onSignal);
        wake?.();
      };
      for (const s of SIGNALS) process.on(s, onSignal);
      // Whatever ends the process from here (process.exit included) leaves no lock behind.
      process.once('exit', release);
      // A --log-file that cannot be written: said now, naming the flag (the edge would run
      // and keep its records in memory only).
      if (o.logFile !== undefined) {
        try {
          makeDirs(dirname(o.logFile), 0o700, 'log folder', 'none');
          closeSync(openPrivateFile(o.logFile));
        } catch (err) {
          release();
          const e = err as NodeJS.ErrnoException;
          throw new UsageError(
            `--log-file ${o.logFile}: cannot write it (${e.code ?? e.message}${e.path && e.path !== o.logFile ? ` on ${e.path}` : ''}): give a file in a folder you can write`,
          );
        }
      }
      try {
        const edge = await startEdge({
          host,
          port,
          hostnames: names,
          tls: o.tls,
          stateDir: dir,
          tenantDoc: loaded.document,
          logFile,
          logMaxBytes: logMax,
          ...(maxTtl !== undefined ? { maxTokenTtlSeconds: maxTtl } : {}),
          ...(closeOnExpiry ? { limits: { closeOnTokenExpiry: true } } : {}),
          ...(secret ? { clientSecret: secret.secret } : {}),
          ...(o.quiet
            ? {}
            : {
                log: {
                  // The banner says where it listens.
                  info: (obj: object, msg?: string) =>
                    msg === 'edge listening' ||
                    process.stdout.write(edgeEventLine('info', obj, msg)),
                  warn: (obj: object, msg?: string) =>
                    process.stdout.write(edgeEventLine('warn', obj, msg)),
                },
              }),
          ...cfg,
          ...(deviceMode !== undefined ? { deviceCertificates: deviceMode } : {}),
        }).catch((err: unknown) => {
          if (err instanceof ListenError && (err.errno === 'EADDRINUSE' || err.errno === 'EACCES'))
            throw err.withHint('choose another port with --port <n> (0: any free port)');
          throw dirError(err) ?? (o.config ? withConfigFile(err, cfg, o.config) : err);
        });
        if (!signalled) {
          const url = wildcard ? wildcardUrl(edge, hostnames) : null;
          const base = url?.url ?? edge.url;
          process.stdout.write(
            [
              `gsa-emu edge for tenant ${edge.tenantId} listening on ${url ? url.listening : edge.url}`,
              ...(url ? url.lines : []),
              `  tunnel      ${base.replace(/^http/, 'ws')}/tunnel/{m365,private,internet}`,
              `  control API ${base}/beta/networkAccess/forwardingProfiles`,
              `  JWKS        ${base}/.well-known/jwks.json`,
              ...(edge.caPem ? [`  CA          ${join(dir, 'ca.pem')}`] : []),
              ...(secret
                ? [
                    `  secret      ${secret.file} (tokens only with it: gsa-emu up --edge ${url ? base : '<url>'}${edge.caPem ? ` --edge-ca ${join(dir, 'ca.pem')}` : ''} --edge-secret ${secret.file})`,
                  ]
                : []),
              `  traffic log ${logFile}`,
              ...[egressLine(cfg.egress)].filter((l) => l !== null),
              // Only TLS keeps the secret and the tokens from others on the network.
              ...(!o.tls && !isLoopbackHost(host)
                ? [
                    '  warning     --no-tls beyond loopback: the client secret and the tokens cross the network in clear',
                  ]
                : []),
              `  devices     certificates ${edge.deviceCertificates}${edge.deviceCertificates === 'off' ? '' : ` (enrollment: POST ${base}/deviceCertificates; device CA ${join(dir, 'device-ca.pem')})`}`,
              ...(maxTtl !== undefined || closeOnExpiry
                ? [
                    `  tokens      ttlSeconds at most ${maxTtl ?? 86_400}${closeOnExpiry ? '; sessions closed at token expiry (4419)' : ''}`,
                  ]
                : []),
              'Ctrl+C to stop.',
              '',
            ].join('\n'),
          );
          await new Promise<void>((resolve) => {
            wake = resolve;
            if (signalled) resolve();
          });
        }
        await edge.close({ graceMs: 2000 });
      } finally {
        for (const s of SIGNALS) process.off(s, onSignal);
        process.off('exit', release);
        release();
      }
      process.stdout.write(`edge stopped; traffic log: ${logFile}\n`);
    });
}
