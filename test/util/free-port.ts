/**
 * A TCP port on 127.0.0.1 that nothing listens on, for a test that hands a port to a
 * process it starts later (a child's `--port`, an edge started after its client) or that
 * needs a connection refused.
 *
 * Such a port must stay free until it is used. A port the kernel just gave to a port-0
 * listener and took back is in its ephemeral range (/proc/sys/net/ipv4/ip_local_port_range),
 * from which every outgoing connection and every port-0 listener of the parallel tests take
 * theirs: one of them may take it in the moment before the child binds it. So the port is
 * taken from below that range, where neither does, at random (two test files asking at once
 * rarely meet), and checked by binding it. Where the range cannot be read, a port-0 port.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The lowest port of the kernel's ephemeral range, or null where it cannot be read. */
function ephemeralLow(): number | null {
  try {
    const low = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0],
    );
    return Number.isInteger(low) && low > 2048 ? low : null;
  } catch {
    return null;
  }
}

/** Binds `port` (0: any) on `host` and lets it go: the port, or null when it was taken. */
function tryPort(port: number, host: string): Promise<number | null> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(null));
    s.listen(port, host, () => {
      const got = (s.address() as { port: number }).port;
      s.close(() => resolve(got));
    });
  });
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const low = ephemeralLow();
  if (low !== null) {
    const from = Math.max(1024, low - 12_000);
    // Bounded: 50 tries.
    for (let i = 0; i < 50; i++) {
      const port = from + Math.floor(Math.random() * (low - from));
      if ((await tryPort(port, host)) !== null) return port;
    }
  }
  const port = await tryPort(0, host);
  if (port === null) throw new Error(`no free port on ${host}`);
  return port;
}

/** A port on 127.0.0.1 nothing listens on: connecting to it is refused. */
export const closedPort = (): Promise<number> => freePort();
