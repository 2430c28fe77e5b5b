/**
 * Entry point of the edge's worker thread (see thread.ts): starts the edge with the
 * options it was given, reports its address, and closes it when asked.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { startEdge } from './server.js';
import { type EdgeThreadMessage, type EdgeThreadOptions, serializeError } from './thread.js';

const port = parentPort;
if (port === null) throw new Error('thread-main.js runs only as a worker thread');

const post = (m: EdgeThreadMessage): void => port.postMessage(m);

try {
  const edge = await startEdge(workerData as EdgeThreadOptions);
  port.on('message', (m: { type?: string; graceMs?: number }) => {
    if (m?.type !== 'close') return;
    void edge
      .close(m.graceMs !== undefined ? { graceMs: m.graceMs } : {})
      .catch(() => {})
      .then(() => {
        post({ type: 'closed' });
        // Nothing of the edge is left: let the thread end.
        port.close();
      });
  });
  post({ type: 'ready', url: edge.url, caPem: edge.caPem, tenantId: edge.tenantId });
} catch (err) {
  post({ type: 'failed', error: serializeError(err) });
  port.close();
}
