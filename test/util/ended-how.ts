/**
 * How a socket's connection ended, for tests of resets: 'end' (a FIN) or the error code
 * ('ECONNRESET' for an RST; 'close' when it closed without either). A test's own sockets
 * meet the libuv behaviour the relay works around (an RST behind queued bytes reads as an
 * end), so an end is checked as util/reset.ts whenEndIsFin does, with a zero-byte write that
 * a connection reset before its FIN fails with ECONNRESET (on a socket whose own side has
 * ended, a zero-byte write(2) past libuv: kernelProbe).
 */
import type { Socket } from 'node:net';
import { kernelProbe } from '../../src/util/reset.js';

export function endedHow(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    s.once('end', () => {
      // Its own side ended too: libuv takes no more writes, the kernel is asked directly.
      if (s.writableEnded) {
        const code = kernelProbe(s);
        resolve(code === 'ECONNRESET' ? code : 'end');
        return;
      }
      s.write(Buffer.alloc(0), (err?: Error | null) =>
        resolve(err ? ((err as NodeJS.ErrnoException).code ?? 'error') : 'end'),
      );
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    s.once('close', () => resolve('close'));
  });
}
