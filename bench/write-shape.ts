/**
 * Does the shape of a small message's write matter? Two Node processes ping-pong 40-byte
 * messages over loopback TCP, sent either as one write() or, as the `ws` library frames a
 * message, as a corked header + payload (one writev). Prints wall time and the sender's
 * CPU per round trip, alternating the two shapes.
 *
 *   npx tsc -p tsconfig.bench.json && node dist-bench/bench/write-shape.js [round trips]
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

if (process.argv[2] === 'echo') {
  // Child: answer every read with one byte.
  const srv = net.createServer({ noDelay: true }, (s) => {
    s.on('data', (b: Buffer) => s.write(b.subarray(0, 1)));
    s.on('error', () => s.destroy());
  });
  srv.listen(0, '127.0.0.1', () => process.send?.((srv.address() as AddressInfo).port));
  process.on('disconnect', () => process.exit(0));
} else {
  const n = Math.min(Math.max(Number(process.argv[2] ?? 20_000) || 20_000, 100), 1_000_000);
  const child = fork(fileURLToPath(import.meta.url), ['echo']);
  const [port] = (await once(child, 'message')) as [number];
  const header = Buffer.alloc(6, 1);
  const payload = Buffer.alloc(34, 2);
  const whole = Buffer.alloc(40, 3);
  for (const shape of ['write', 'writev', 'write', 'writev'] as const) {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
    await once(s, 'connect');
    const send = (): void => {
      if (shape === 'write') s.write(whole);
      else {
        s.cork();
        s.write(header);
        s.write(payload);
        s.uncork();
      }
    };
    let i = 0;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    await new Promise<void>((done) => {
      s.on('data', () => {
        if (++i >= n) done();
        else send();
      });
      send();
    });
    const cpu = process.cpuUsage(c0);
    const wall = ((performance.now() - t0) * 1000) / n;
    console.log(
      `${shape.padEnd(6)} ${wall.toFixed(1)} us per round trip, sender CPU ${((cpu.user + cpu.system) / n).toFixed(1)} us`,
    );
    s.destroy();
  }
  child.disconnect();
}
