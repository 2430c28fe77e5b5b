/**
 * The tests' free port (test/util/free-port.ts): below the kernel's ephemeral range, where
 * neither outgoing connections nor port-0 listeners take theirs, and free: it can be bound.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import t from 'tap';
import { freePort } from './free-port.js';

t.test('a free port below the ephemeral range', async (t) => {
  let low: number | null = null;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0]);
  } catch {}
  const ports = new Set<number>();
  for (let i = 0; i < 5; i++) {
    const port = await freePort();
    ports.add(port);
    if (low !== null) t.ok(port >= 1024 && port < low, `${port} is below ${low}`);
    const s = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => resolve(true));
    });
    t.ok(bound, `${port} can be bound`);
    await new Promise<void>((r) => (bound ? s.close(() => r()) : r()));
  }
  t.ok(ports.size > 1, 'picked at random');
});
