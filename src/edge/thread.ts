/**
 * The mock edge on its own thread (node:worker_threads), as `gsa-emu up --edge-thread` runs
 * it: the edge keeps its own event loop, so TLS, framing and egress for every tunneled byte
 * run on a second core instead of sharing the client's thread; each hop between client and
 * edge then wakes the other thread, which costs short connections
 * (docs/decisions/edge-worker-thread.md). Client and edge still talk only over loopback
 * sockets, exactly as with a remote edge.
 *
 * The options cross the thread boundary by structured clone, so they must be plain data
 * (no `log` callbacks). Errors from startEdge() come back with their message (a
 * ConfigError keeps its path-named issues, a ListenError its listener, port and errno).
 */
import { Worker } from 'node:worker_threads';
import { ConfigError, ListenError } from '../errors.js';
import type { EdgeOptions } from './server.js';

/** What a thread edge can be asked: plain data only. */
export type EdgeThreadOptions = Omit<EdgeOptions, 'log'>;

export interface EdgeThread {
  readonly url: string;
  readonly caPem: string | null;
  readonly tenantId: string;
  /** GOAWAY, grace period, then close everything and end the thread. Idempotent. */
  close(opts?: { graceMs?: number }): Promise<void>;
}

/** Messages between the thread and its owner. */
export type EdgeThreadMessage =
  | { type: 'ready'; url: string; caPem: string | null; tenantId: string }
  | { type: 'failed'; error: SerializedError }
  | { type: 'closed' };

export interface SerializedError {
  name: string;
  message: string;
  issues?: ConfigError['issues'];
  file?: string | undefined;
  listen?: Pick<ListenError, 'what' | 'host' | 'port' | 'errno' | 'detail'>;
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof ConfigError) {
    return { name: 'ConfigError', message: err.message, issues: err.issues, file: err.file };
  }
  if (err instanceof ListenError) {
    const { what, host, port, errno, detail } = err;
    return {
      name: 'ListenError',
      message: err.message,
      listen: { what, host, port, errno, detail },
    };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return { name: e.name, message: e.message };
}

function reviveError(s: SerializedError): Error {
  if (s.name === 'ConfigError' && s.issues) return new ConfigError(s.issues, s.file);
  if (s.name === 'ListenError' && s.listen) {
    const l = s.listen;
    return new ListenError(l.what, l.host, l.port, l.errno, l.detail);
  }
  const e = new Error(`edge thread: ${s.message}`);
  e.name = s.name;
  return e;
}

/** How long close() waits for the thread to end on its own before terminating it. */
const EXIT_WAIT_MS = 5000;

function entryUrl(): URL {
  // Built code runs thread-main.js; the test runner loads sources (.ts) directly.
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return new URL(`./thread-main.${ext}`, import.meta.url);
}

/**
 * Starts the edge on a worker thread. `onExit` is told when the thread ends other than
 * through close() (an uncaught error in the edge): the client then sees its tunnels drop.
 */
export function startEdgeThread(
  opts: EdgeThreadOptions,
  onExit?: (err: Error) => void,
  /** The thread's entry module (tests give one that fails on purpose). */
  entry: URL = entryUrl(),
): Promise<EdgeThread> {
  const worker = new Worker(entry, { workerData: opts });
  let closing: Promise<void> | null = null;
  return new Promise<EdgeThread>((resolve, reject) => {
    let started = false;
    let reported = false;
    // An uncaught error ends the thread: 'error' then 'exit'; tell the owner once.
    const ended = (err: Error): void => {
      if (!started) reject(err);
      else if (!closing && !reported) {
        reported = true;
        onExit?.(err);
      }
    };
    const exited = new Promise<void>((r) => worker.once('exit', () => r()));
    worker.once('error', ended);
    worker.once('exit', (code) =>
      ended(
        new Error(
          started
            ? `edge thread exited (code ${code})`
            : `edge thread exited (code ${code}) before it started`,
        ),
      ),
    );
    const onMessage = (m: EdgeThreadMessage): void => {
      if (m.type === 'failed') {
        worker.off('message', onMessage);
        reject(reviveError(m.error));
        void worker.terminate();
        return;
      }
      if (m.type !== 'ready') return;
      started = true;
      worker.off('message', onMessage);
      resolve({
        url: m.url,
        caPem: m.caPem,
        tenantId: m.tenantId,
        close(o?: { graceMs?: number }): Promise<void> {
          closing ??= (async () => {
            worker.postMessage({ type: 'close', graceMs: o?.graceMs });
            let timer: NodeJS.Timeout | undefined;
            const late = new Promise<'late'>((r) => {
              timer = setTimeout(() => r('late'), (o?.graceMs ?? 0) + EXIT_WAIT_MS);
            });
            const how = await Promise.race([exited, late]);
            clearTimeout(timer);
            if (how === 'late') await worker.terminate();
          })();
          return closing;
        },
      });
    };
    worker.on('message', onMessage);
  });
}
