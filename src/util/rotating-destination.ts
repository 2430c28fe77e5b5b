/**
 * The client log's destination: pino's own (sonic-boom, asynchronous), rotated by size
 * (util/log-rotation.ts). Apart from log-rotation.ts so that the edge, which rotates its
 * traffic log with plain write streams, does not load pino.
 */
import pino from 'pino';
import { SizeRotation } from './log-rotation.js';

/** A pino destination that can be flushed (pino's `logger.flush()` calls it). */
export type FlushableDestination = pino.DestinationStream & {
  flush(cb?: (err?: Error) => void): void;
};

/**
 * pino's asynchronous destination (pino.destination, sonic-boom) on `fd`, the open file
 * `file`, rotated past `maxBytes` (0: never, and then it is pino.destination itself).
 */
export function rotatingDestination(
  file: string,
  fd: number,
  maxBytes: number,
): FlushableDestination {
  let dest = pino.destination({ dest: fd, sync: false });
  if (!(maxBytes > 0)) return dest;
  const rotation = new SizeRotation(file, maxBytes, fd);
  return {
    write(line: string): void {
      const next = rotation.before(Buffer.byteLength(line));
      if (next !== null) {
        const old = dest;
        dest = pino.destination({ dest: next, sync: false });
        // What it still buffers goes to the old file (now `.1`), then it closes it.
        old.end();
      }
      dest.write(line);
    },
    flush(cb?: (err?: Error) => void): void {
      dest.flush(cb);
    },
  };
}
