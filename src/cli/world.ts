/**
 * What `gsa-emu up` and `gsa-emu netns` both start: the state directory and its logs, the
 * demo servers and the mock edge in this process (unless `edge` names a remote one; on a
 * worker thread with `edgeThread`), and the client. One function so both commands build
 * the same world.
 *
 * State files never collide between runs sharing a state directory:
 * - `up` owns the default names (`client.json`, `logs/client.log`,
 *   `logs/edge-traffic.jsonl`, which `gsa-emu status` / `flows` find) and holds
 *   `<state-dir>/up.lock` while it runs; a second `up` on the same directory stops with
 *   GSA_ERR_BUSY naming the first (a lock left by a dead process is taken over).
 * - `netns` uses per-run names: `netns-<pid>.json`, `logs/netns-<pid>-client.log`,
 *   `logs/netns-<pid>-edge-traffic.jsonl`, so it can run next to `up` and next to other
 *   `netns` runs (CI jobs in parallel); the logs of the newest NETNS_LOG_RUNS ended runs
 *   are kept.
 * The demo CA (`demo-tls/`) and the edge's signing key and TLS files are shared on purpose
 * (trust the CA once).
 */
import { randomUUID, X509Certificate } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fchownSync,
  constants as fsConstants,
  fstatSync,
  linkSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import {
  readClientState,
  removeClientState,
  stateIsLive,
  writeClientState,
  writeStartFailure,
} from '../client/admin-client.js';
import {
  type ClientOptions,
  type HostnameEntry,
  type RunningClient,
  startClient,
} from '../client/client.js';
import { bypassSourceUsable, DEMO_BYPASS_SOURCE, type Demo, startDemo } from '../client/demo.js';
import { EdgeApi, isEdgeConfigError } from '../client/edge-api.js';
import type { DeviceCertificateMode } from '../edge/device-ca.js';
import { type Edge, startEdge } from '../edge/server.js';
import { type EdgeThreadOptions, startEdgeThread } from '../edge/thread.js';
import { EdgeHttpError, GsaError, UsageError } from '../errors.js';
import { loadTenantFile } from '../policy/tenant-file.js';
import { stateDirArg } from '../util/cli-command.js';
import { DEFAULT_LOG_MAX_BYTES } from '../util/log-rotation.js';
import { acquirePidLock, pidAlive } from '../util/pid-lock.js';
import { rotatingDestination } from '../util/rotating-destination.js';
import {
  notADirectory,
  openPrivateFile,
  prepareStateDir,
  stateDir,
  stateDirAccessError,
  stateDirUnusable,
  sudoHandOverTarget,
} from '../util/state-dir.js';
import { readSecretFile } from './edge-secret.js';
import { overlayHosts } from './hosts-option.js';

export type WorldRun = 'up' | 'netns';

export interface WorldOptions {
  /** Which command runs: decides the state file names (see the file comment). */
  run: WorldRun;
  stateDir?: string | undefined;
  tenant?: string | undefined;
  clientConfig?: string | undefined;
  platform?: string | undefined;
  /** A remote edge (`https://host:port`); default: start one in this process with demo servers. */
  edge?: string | undefined;
  /** The remote edge's CA file (PEM). */
  edgeCa?: string | undefined;
  /** The remote edge's client secret file (`gsa-emu edge` prints it). */
  edgeSecret?: string | undefined;
  /** Bypassed flows and the in-process edge may use real DNS and addresses. */
  allowInternet?: boolean | undefined;
  /** The in-process edge speaks TLS (wss, https), as the real edge does. Default true. */
  edgeTls?: boolean | undefined;
  /** Look up the process behind each proxy flow (default true). */
  processLookup?: boolean | undefined;
  logLevel?: string | undefined;
  /**
   * Bytes past which each log file (the client log, the in-process edge's traffic log) is
   * renamed `<file>.1` and a new one begun; 0 = never. Default 1 GiB (`--log-max-size`).
   */
  logMaxBytes?: number | undefined;
  profilePollMs?: number | undefined;
  /** How long the HTTP proxy waits for an upstream's response head (ms; 504 after it). */
  httpResponseTimeoutMs?: number | undefined;
  /** How long the HTTP proxy waits for a request body's next byte (ms; 408 after it; 0: never). */
  httpBodyTimeoutMs?: number | undefined;
  listen: NonNullable<ClientOptions['listen']>;
  /** The hostname acquisition table (TUN mode) for the admin API. */
  hostnames?: () => HostnameEntry[];
  /** More Prometheus text for /metrics (the TUN capture's). */
  metrics?: () => string;
  /**
   * TUN host mode: the host address the client binds its own non-loopback connections to
   * (the remote edge's API and tunnels, bypassed flows), so they keep the normal routes.
   */
  sourceAddress?: string | null;
  /** Grace period of the in-process edge at stop (ms). Default 500. */
  edgeGraceMs?: number;
  /** Run the in-process edge on a worker thread (default: on this thread). */
  edgeThread?: boolean | undefined;
  /**
   * The token lifetime the client asks the edge for (s; `--token-ttl`); default the edge's.
   * One the edge refuses stops the start with a UsageError (checkEdgeToken).
   */
  tokenTtlSeconds?: number | undefined;
  /** The in-process edge closes a session when its token expires (`--close-on-token-expiry`). */
  closeOnTokenExpiry?: boolean | undefined;
  /**
   * false (`--no-session-rotation`): the client keeps each session until the edge closes it
   * at token expiry, instead of replacing it before then.
   */
  sessionRotation?: boolean | undefined;
  /** The in-process edge's `deviceCertificates` (`--edge-device-certificates`); default optional. */
  edgeDeviceCertificates?: DeviceCertificateMode | undefined;
  /**
   * false (`--no-device-certificate`): the client presents no device certificate (an older
   * client); default: it enrolls one and keeps it in the state folder.
   */
  deviceCertificate?: boolean | undefined;
  /**
   * The user's names (`--add-host`, cli/hosts-option.ts): name or `*.suffix` -> address.
   * The client resolves them (classification by address, bypassed flows); the in-process
   * edge egresses to them (hosts map and connector); they win over the demo's entries.
   */
  hosts?: Record<string, string> | undefined;
  /**
   * The device's local IPv4 subnets (ClientOptions.localSubnets); default: the interfaces'
   * for `up`, none for `netns` (the namespace has only the TUN).
   */
  localSubnets?: readonly string[] | undefined;
  /** The in-process edge's thread ended on its own (a crash); default: logged. */
  onEdgeExit?: (err: Error) => void;
  /** A warning for the user (a damaged `device-id` file replaced); also in the client log. */
  onWarning?: (message: string) => void;
}

/** What a run needs of its in-process edge, on whichever thread it runs. */
export type InProcessEdge = Pick<Edge, 'url' | 'caPem' | 'close'>;

export interface World {
  readonly dir: string;
  readonly logs: string;
  readonly clientLog: string;
  /** The in-process edge's traffic log, or null with a remote edge. */
  readonly edgeLog: string | null;
  /** Where the running client's addresses are written (`gsa-emu status` reads it). */
  readonly stateFile: string;
  readonly log: pino.Logger;
  readonly demo: Demo | null;
  /** The in-process edge (on this thread or its own), or null with a remote edge. */
  readonly edge: InProcessEdge | null;
  readonly edgeUrl: string;
  readonly client: RunningClient;
  /**
   * Write the state file with the client's listener addresses (pid, admin, proxies, logs);
   * `adminAlsoIn`: the namespaces where the admin API listens too (ClientStateFile).
   */
  writeState(o?: { adminAlsoIn?: string[] }): void;
  /** Close the client, the edge and the demo servers, remove the state file and lock. Idempotent. */
  stop(): Promise<void>;
}

/** The state file and log names of a run (see the file comment). */
export function runFiles(
  dir: string,
  run: WorldRun,
  pid = process.pid,
): { stateFile: string; clientLog: string; edgeLog: string } {
  const logs = join(dir, 'logs');
  const prefix = run === 'up' ? '' : `${run}-${pid}-`;
  return {
    stateFile: join(dir, run === 'up' ? 'client.json' : `${run}-${pid}.json`),
    clientLog: join(logs, `${prefix}client.log`),
    edgeLog: join(logs, `${prefix}edge-traffic.jsonl`),
  };
}

/**
 * A run that stops before it is ready says why, for a `gsa-emu status --wait` waiting on it
 * (writeStartFailure), in the state folder `flag` names (as stateDir() computes it); a
 * `netns` run also names its client log when it made one (`up`'s default one may be
 * another run's: the `up` that holds the folder). Nothing without a folder (an empty
 * --state-dir: its error says so).
 */
export function recordStartFailure(run: WorldRun, flag: string | undefined, e: unknown): void {
  let dir: string;
  try {
    dir = stateDir(flag);
  } catch {
    return;
  }
  const { clientLog } = runFiles(dir, run);
  writeStartFailure(dir, (e as Error)?.message ?? String(e), {
    run,
    ...(run === 'netns' && existsSync(clientLog) ? { log: clientLog } : {}),
  });
}

/**
 * How long the start-failure record of an ended `netns` run (`netns-<pid>-failed.json`)
 * stays: a `status --wait` launched with that run reads it at its next look (200 ms), a
 * run starting meanwhile next to it (a parallel CI job) must not take it away first.
 */
export const NETNS_FAILURE_KEEP_MS = 10 * 60_000;

/**
 * Removes what `netns` runs that are gone left in `dir`: a run killed with SIGKILL leaves
 * `netns-<pid>.json` and `netns-<pid>.token` (an admin token of nothing). A file goes when
 * the writer of `netns-<pid>.json` no longer runs (`stateIsLive`: the pid, and on Linux its
 * start id, so a reused pid does not keep it), or, without a readable state file, when the
 * pid is dead. A run that failed to start leaves `netns-<pid>-failed.json`: it goes once
 * NETNS_FAILURE_KEEP_MS old and its pid does not run, or when its pid is this process's (an
 * earlier process's record). Returns the names removed.
 */
export function removeDeadNetnsFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = /^netns-(\d+)(?:\.(json|token)|-failed\.json)$/.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    let gone: boolean;
    if (m[2] === undefined) {
      // A start-failure record.
      if (pid === process.pid) gone = true;
      else {
        try {
          gone =
            Date.now() - statSync(join(dir, n)).mtimeMs >= NETNS_FAILURE_KEEP_MS && !pidAlive(pid);
        } catch {
          continue;
        }
      }
    } else {
      if (pid === process.pid) continue;
      const s = readClientState(join(dir, `netns-${pid}.json`));
      gone = s !== null && s !== 'garbled' && s.pid === pid ? !stateIsLive(s) : !pidAlive(pid);
    }
    if (!gone) continue;
    try {
      rmSync(join(dir, n), { force: true });
      removed.push(n);
    } catch {}
  }
  return removed;
}

/** How many ended `netns` runs keep their logs in a state folder (pruneNetnsLogs). */
export const NETNS_LOG_RUNS = 20;

/**
 * Keeps the logs of the newest `keep` ended `netns` runs in `logs` and removes the older
 * ones (`netns-<pid>-client.log`, `netns-<pid>-edge-traffic.jsonl`, and their rotated `.1`),
 * so a CI job that reuses a state folder does not pile up two files a run. A run is ended
 * when its pid does not run; the newest is the one whose newest file was written last.
 * The logs of running runs (this process included) and every other file stay. Returns
 * the names removed.
 */
export function pruneNetnsLogs(logs: string, keep = NETNS_LOG_RUNS): string[] {
  let names: string[];
  try {
    names = readdirSync(logs);
  } catch {
    return [];
  }
  const runs = new Map<number, { files: string[]; newest: number }>();
  for (const n of names) {
    const m = /^netns-(\d+)-(?:client\.log|edge-traffic\.jsonl)(?:\.1)?$/.exec(n);
    if (!m) continue;
    const pid = Number(m[1]);
    let mtime: number;
    try {
      mtime = statSync(join(logs, n)).mtimeMs;
    } catch {
      continue;
    }
    const r = runs.get(pid) ?? { files: [], newest: 0 };
    r.files.push(n);
    r.newest = Math.max(r.newest, mtime);
    runs.set(pid, r);
  }
  const ended = [...runs.entries()]
    .filter(([pid]) => pid !== process.pid && !pidAlive(pid))
    .sort((a, b) => b[1].newest - a[1].newest);
  const removed: string[] = [];
  for (const [, r] of ended.slice(Math.max(0, keep))) {
    for (const n of r.files) {
      try {
        rmSync(join(logs, n), { force: true });
        removed.push(n);
      } catch {}
    }
  }
  return removed;
}

/** The device id file of a state folder (see stateDeviceId). */
export const DEVICE_ID_FILE = 'device-id';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const O_NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0;
// A FIFO in the file's place must not block the open (it is then replaced as damaged).
const O_NONBLOCK = fsConstants.O_NONBLOCK ?? 0;

/**
 * The device id of the state folder `dir`, the client's `deviceId` at the edge (the real
 * client's: the Entra device object id, one per device): `<dir>/device-id`, a random UUID
 * written on first use (0600, whole or not at all: written aside, then linked or renamed
 * into place). A file that is not one UUID (damaged, a symbolic link) is replaced by a
 * new id and `warn` says so. Two clients with their own state folders (two machines, two
 * CI jobs) are two devices at a shared edge.
 */
export function stateDeviceId(dir: string, warn: (message: string) => void): string {
  const file = join(dir, DEVICE_ID_FILE);
  let found = readDeviceId(file);
  if (typeof found === 'string') return found;
  const id = randomUUID();
  const tmp = join(dir, `${DEVICE_ID_FILE}.${process.pid}.${randomUUID().slice(0, 8)}.tmp`);
  const fd = openSync(
    tmp,
    fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | O_NOFOLLOW,
    0o600,
  );
  try {
    writeSync(fd, `${id}\n`);
    // Under sudo: the sudo user's, as the rest of their state folder (prepareStateDir).
    const owner = sudoHandOverTarget(dir);
    if (owner) fchownSync(fd, owner.uid, owner.gid);
  } finally {
    closeSync(fd);
  }
  try {
    if (found === null) {
      // First use: linked, so that of two runs starting at once the first one's id stays.
      try {
        linkSync(tmp, file);
        return id;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      found = readDeviceId(file);
      if (typeof found === 'string') return found;
    }
    try {
      renameSync(tmp, file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EISDIR' && code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      throw new GsaError(
        'GSA_ERR_CONFIG',
        `${file} is a folder, not a device id file: remove it, or give this run another --state-dir`,
      );
    }
    warn(`${file} was damaged (${found?.damaged ?? 'gone'}): replaced with a new device id ${id}`);
    return id;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** The id in a device id file; null: no such file; `damaged`: not one UUID, and why. */
function readDeviceId(file: string): string | { damaged: string } | null {
  let fd: number;
  try {
    fd = openSync(file, fsConstants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    return { damaged: code === 'ELOOP' ? 'a symbolic link' : `cannot read it: ${code}` };
  }
  try {
    if (!fstatSync(fd).isFile()) return { damaged: 'not a regular file' };
    const buf = Buffer.alloc(256);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const id = buf.subarray(0, n).toString('utf8').trim();
    return UUID.test(id) ? id.toLowerCase() : { damaged: 'not a UUID' };
  } catch (e) {
    return { damaged: `cannot read it: ${(e as NodeJS.ErrnoException).code}` };
  } finally {
    closeSync(fd);
  }
}

/** pino's levels, for `--log-level`. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

/**
 * `--edge-ca <file>`: a PEM certificate (the first of the file is parsed); else a
 * UsageError saying what is wrong with the file, rather than a TLS error about the edge's
 * certificate later.
 */
export function readEdgeCa(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--edge-ca "${file}": cannot read it: ${(e as Error).message}`);
  }
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(text);
  try {
    if (!pem) throw new Error('no "-----BEGIN CERTIFICATE-----" block');
    new X509Certificate(pem[0]);
  } catch (e) {
    throw new UsageError(
      `--edge-ca "${file}" is not a PEM certificate (${(e as Error).message}): give the remote edge's CA certificate, such as its <state-dir>/ca.pem`,
    );
  }
  return text;
}

/**
 * One token asked of the edge before the client starts (with `--token-ttl`, or of a remote
 * edge), so that what the edge will always refuse is a UsageError with the edge's words,
 * not a client that retries every tunnel and profile poll for ever:
 * - a lifetime past the edge's `--max-token-ttl` (400 `invalid_request` about `ttlSeconds`);
 * - a client secret missing or wrong (401 `invalid_client`: `--edge-secret`);
 * - a certificate the client cannot trust or that has other names, or https:// to an edge
 *   without TLS (`--edge`, `--edge-ca`: isEdgeConfigError).
 * Any other failure (an edge not up yet) is left to the client, which retries.
 */
export async function checkEdgeToken(edge: {
  url: string;
  ca: string | null;
  deviceId: string;
  /** `--token-ttl`, seconds. */
  ttlSeconds?: number | undefined;
  /** `--edge-secret`: its file and the secret in it. */
  secret?: { file: string; secret: string } | null;
  localAddress?: string;
  /** A remote edge (`--edge`), whose own `--max-token-ttl` could be raised. */
  remote?: boolean;
}): Promise<void> {
  const api = new EdgeApi({
    url: edge.url,
    ca: edge.ca,
    ...(edge.localAddress ? { localAddress: edge.localAddress } : {}),
    userId: 'token-check',
    deviceId: edge.deviceId,
    ...(edge.ttlSeconds !== undefined ? { tokenTtlSeconds: edge.ttlSeconds } : {}),
    ...(edge.secret ? { clientSecret: edge.secret.secret } : {}),
    timeoutMs: 5000,
  });
  try {
    await api.getToken('graph');
  } catch (err) {
    if (err instanceof EdgeHttpError && err.status === 401 && err.graphCode === 'invalid_client') {
      throw new UsageError(
        edge.secret
          ? `--edge-secret "${edge.secret.file}": the edge ${edge.url} refuses it as its client secret: give the file that edge printed at its start (its <state-dir>/edge-client-secret)`
          : `the edge ${edge.url} issues tokens only with its client secret: give --edge-secret <file>, the file that edge printed at its start (its <state-dir>/edge-client-secret)`,
      );
    }
    if (isEdgeConfigError(err)) {
      throw new UsageError(`--edge ${edge.url}: ${(err as Error).message}`);
    }
    if (
      edge.ttlSeconds !== undefined &&
      err instanceof EdgeHttpError &&
      err.status === 400 &&
      err.graphCode === 'invalid_request' &&
      /ttlSeconds/.test(err.message)
    ) {
      const said = /ttlSeconds[^"]*$/.exec(err.message)?.[0] ?? err.message;
      throw new UsageError(
        `--token-ttl ${edge.ttlSeconds}: the edge ${edge.url} refuses it (${said}): give a shorter one${edge.remote ? ', or start that edge with a larger --max-token-ttl' : ''}`,
      );
    }
  } finally {
    await api.close();
  }
}

export async function startWorld(o: WorldOptions): Promise<World> {
  // Before the lock and the log: a bad level must leave nothing behind.
  if (o.logLevel !== undefined && !LOG_LEVELS.includes(o.logLevel)) {
    throw new UsageError(`--log-level "${o.logLevel}": use ${LOG_LEVELS.join(', ')}`);
  }
  // A remote edge's CA: read and checked before anything is written.
  const remoteCa = o.edge && o.edgeCa ? readEdgeCa(o.edgeCa) : null;
  const remoteSecret =
    o.edge && o.edgeSecret
      ? { file: o.edgeSecret, secret: readSecretFile(o.edgeSecret, '--edge-secret') }
      : null;
  const dir = stateDir(o.stateDir);
  // Made 0700 and checked (owner, mode) before anything is written there; under sudo, given
  // to the invoking user (util/state-dir.ts).
  let prepared: ReturnType<typeof prepareStateDir>;
  try {
    prepared = prepareStateDir(dir);
  } catch (err) {
    throw notADirectory(err, dir) ?? stateDirUnusable(err, dir) ?? err;
  }
  const logs = prepared.logs;
  const files = runFiles(dir, o.run);
  const logMaxBytes = o.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES;
  // The state files of netns runs killed with SIGKILL (their namespaces: cleanupStaleNetns),
  // and the logs of all but the newest ended runs.
  if (o.run === 'netns') {
    removeDeadNetnsFiles(dir);
    pruneNetnsLogs(logs);
  }
  let unlock = (): void => {};
  let dest: pino.DestinationStream;
  try {
    if (o.run === 'up') {
      unlock = acquirePidLock(
        join(dir, 'up.lock'),
        'up',
        `the state directory ${dir}`,
        'stop it first, or give this run its own --state-dir',
      );
    }
    // 0600, never through a symbolic link; the edge's log is made so before it opens it.
    // Rotated past logMaxBytes (`<file>.1`), the new file opened as this one.
    dest = rotatingDestination(files.clientLog, openPrivateFile(files.clientLog), logMaxBytes);
    if (!o.edge) closeSync(openPrivateFile(files.edgeLog));
    prepared.handOver();
  } catch (err) {
    unlock();
    prepared.close();
    throw stateDirAccessError(err, dir) ?? err;
  }
  const log = pino({ level: o.logLevel ?? 'info', base: { component: 'client' } }, dest);
  const allowInternet = o.allowInternet === true;
  const userHosts = o.hosts ?? {};
  let demo: Demo | null = null;
  let edge: InProcessEdge | null = null;
  let client: RunningClient | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await client?.close().catch(() => {});
      await edge?.close({ graceMs: o.edgeGraceMs ?? 500 }).catch(() => {});
      await demo?.close().catch(() => {});
      removeClientState(dir, process.pid, files.stateFile);
      log.flush();
      unlock();
      prepared.close();
    })();
    return stopping;
  };
  try {
    // One device per state folder: two clients on one shared edge are two devices there.
    const deviceId = stateDeviceId(dir, (m) => {
      log.warn({ file: join(dir, DEVICE_ID_FILE) }, m);
      o.onWarning?.(m);
    });
    let edgeUrl: string;
    let edgeCa: string | null = null;
    let bypassFromSource = false;
    if (o.edge) {
      edgeUrl = o.edge;
      edgeCa = remoteCa;
    } else {
      // Bypassed demo flows come from 127.0.0.3 where it can be bound, else reach servers
      // of their own (the demo servers tell the path by either).
      bypassFromSource = await bypassSourceUsable();
      demo = await startDemo({ stateDir: dir, directPorts: !bypassFromSource });
      const loaded = loadTenantFile(o.tenant);
      const edgeOpts: EdgeThreadOptions = {
        stateDir: dir,
        tenantDoc: loaded.document,
        hostsMap: overlayHosts(demo.edge.hostsMap, userHosts),
        connectorHosts: overlayHosts(demo.edge.connectorHosts, userHosts),
        filtering: demo.edge.filtering,
        logFile: files.edgeLog,
        logMaxBytes,
        egress: { systemResolver: allowInternet, directIp: allowInternet },
        tls: o.edgeTls !== false,
        ...(o.closeOnTokenExpiry ? { limits: { closeOnTokenExpiry: true } } : {}),
        ...(o.edgeDeviceCertificates !== undefined
          ? { deviceCertificates: o.edgeDeviceCertificates }
          : {}),
      };
      edge = o.edgeThread
        ? await startEdgeThread(
            edgeOpts,
            o.onEdgeExit ??
              ((err) =>
                log.error({ err: err.message }, 'the in-process edge stopped unexpectedly')),
          )
        : await startEdge(edgeOpts);
      edgeUrl = edge.url;
      edgeCa = edge.caPem;
    }
    const source = o.sourceAddress ?? null;
    if (o.tokenTtlSeconds !== undefined || o.edge) {
      await checkEdgeToken({
        url: edgeUrl,
        ca: edgeCa,
        deviceId,
        ttlSeconds: o.tokenTtlSeconds,
        secret: remoteSecret,
        ...(o.edge && source ? { localAddress: source } : {}),
        ...(o.edge ? { remote: true } : {}),
      });
    }
    // Demo: bypassed flows reach loopback servers from 127.0.0.3 where it can be bound (the
    // servers tell the path by it; Linux and Windows route all of 127/8 to loopback).
    // Otherwise the TUN host address, if any.
    const bypassLocal = demo && bypassFromSource ? DEMO_BYPASS_SOURCE : (source ?? undefined);
    client = await startClient({
      edge: {
        url: edgeUrl,
        ca: edgeCa,
        ...(o.edge && source ? { localAddress: source } : {}),
        ...(o.tokenTtlSeconds !== undefined ? { tokenTtlSeconds: o.tokenTtlSeconds } : {}),
        ...(remoteSecret ? { clientSecret: remoteSecret.secret } : {}),
        ...(o.sessionRotation === false ? { rotateSessions: false } : {}),
        // A newer client: its device certificate (mTLS) in the state folder.
        ...(o.deviceCertificate !== false ? { deviceCertificate: { dir } } : {}),
      },
      // A remote edge with a local --tenant: the file wins; otherwise the edge's profiles.
      tenant: o.edge && o.tenant ? o.tenant : 'edge',
      // The demo user (alice@contoso.test) on this state folder's device.
      user: { deviceId },
      commandFlags: stateDirArg(dir),
      profilePollMs: o.profilePollMs ?? 30_000,
      ...(o.clientConfig ? { clientConfig: o.clientConfig } : {}),
      ...(o.platform ? { platform: o.platform } : {}),
      listen: o.listen,
      ...(o.httpResponseTimeoutMs !== undefined || o.httpBodyTimeoutMs !== undefined
        ? {
            limits: {
              ...(o.httpResponseTimeoutMs !== undefined
                ? { httpResponseTimeoutMs: o.httpResponseTimeoutMs }
                : {}),
              ...(o.httpBodyTimeoutMs !== undefined
                ? { httpBodyTimeoutMs: o.httpBodyTimeoutMs }
                : {}),
            },
          }
        : {}),
      resolver: demo
        ? {
            hosts: { ...demo.client.hosts, ...userHosts },
            // Bypassed flows to the user's names may dial their addresses, loopback or not.
            dial: overlayHosts(demo.client.dial, userHosts),
            system: allowInternet,
            directIp: allowInternet,
          }
        : { hosts: userHosts, system: true },
      ...(bypassLocal ? { bypassLocalAddress: bypassLocal } : {}),
      ...(o.hostnames ? { hostnames: o.hostnames } : {}),
      ...(o.metrics ? { metrics: o.metrics } : {}),
      ...(o.processLookup === false ? { processLookup: false } : {}),
      // A netns run's device is the namespace, whose only interface is the TUN: no LAN of
      // its own, so the host's subnets are not its local subnets.
      ...(o.localSubnets
        ? { localSubnets: o.localSubnets }
        : o.run === 'netns'
          ? { localSubnets: [] }
          : {}),
      log,
    });
    // Under sudo: the demo CA, the edge's key and TLS files, the lock, to the invoking user.
    prepared.handOver();
    const c = client;
    return {
      dir,
      logs,
      clientLog: files.clientLog,
      edgeLog: edge ? files.edgeLog : null,
      stateFile: files.stateFile,
      log,
      demo,
      edge,
      edgeUrl,
      client: c,
      writeState(o = {}) {
        const a = c.addresses;
        writeClientState(
          dir,
          {
            pid: process.pid,
            startedAt: new Date().toISOString(),
            admin: a.admin,
            socks: a.socks,
            http: a.http,
            pac: a.pac,
            edge: edgeUrl,
            logs,
            adminToken: c.admin?.token ?? null,
            ...(o.adminAlsoIn?.length ? { adminAlsoIn: o.adminAlsoIn } : {}),
          },
          files.stateFile,
        );
        // Under sudo: the state file and its token, to the invoking user.
        prepared.handOver();
      },
      stop,
    };
  } catch (err) {
    // In the run's log too, which the start-failure record names (recordStartFailure).
    log.error({ err: (err as Error)?.message ?? String(err) }, 'failed to start');
    await stop();
    throw stateDirAccessError(err, dir) ?? err;
  }
}
