/** A real TLS ClientHello, as node:tls sends it (not a test file itself). Loopback only. */
import { createServer } from 'node:net';
import { connect } from 'node:tls';
import { sniffName } from '../../src/edge/sniff.js';

/**
 * The first flight node:tls sends to a server on 127.0.0.1 (one ClientHello), with
 * `servername` as its SNI; none when it is undefined.
 */
export async function clientHello(servername?: string): Promise<Buffer> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no ClientHello within 5 s')), 5000);
      server.once('connection', (s) => {
        const chunks: Buffer[] = [];
        s.on('error', () => {});
        s.on('data', (c: Buffer) => {
          chunks.push(c);
          const all = Buffer.concat(chunks);
          if (sniffName(all) !== 'more') {
            clearTimeout(timer);
            s.destroy();
            resolve(all);
          }
        });
      });
      const c = connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
      c.on('error', () => {});
      c.on('close', () => c.destroy());
      server.once('close', () => c.destroy());
    });
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
}
