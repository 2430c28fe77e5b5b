/**
 * The floor for a Node.js SOCKS proxy on this machine: SOCKS5 no-auth CONNECT (IPv4 or
 * domain name) relayed with pipe(), nothing else. bench/proxy.ts runs it as a peer so the
 * cost of Node's own socket handling can be told apart from gsa-emu's.
 *
 *   node dist-bench/bench/node-floor-socks.js <port>
 */
import net from 'node:net';

const port = Number(process.argv[2]);

function readOnce(c: net.Socket, then: (b: Buffer) => void): void {
  const b = c.read() as Buffer | null;
  if (b) then(b);
  else c.once('readable', () => readOnce(c, then));
}

net
  .createServer({ noDelay: true }, (c) => {
    c.on('error', () => c.destroy());
    readOnce(c, () => {
      c.write(Buffer.from([5, 0]));
      readOnce(c, (r) => {
        const v4 = r[3] === 1;
        const host = v4 ? `${r[4]}.${r[5]}.${r[6]}.${r[7]}` : r.toString('latin1', 5, 5 + r[4]!);
        const p = v4 ? r.readUInt16BE(8) : r.readUInt16BE(5 + r[4]!);
        const d = net.connect({ host, port: p, noDelay: true }, () => {
          c.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
          c.pipe(d);
          d.pipe(c);
        });
        d.on('error', () => c.destroy());
        c.on('close', () => d.destroy());
        d.on('close', () => c.destroy());
      });
    });
  })
  .listen(port, '127.0.0.1');
