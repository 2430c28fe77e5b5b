/**
 * Whether this host has an IPv6 loopback a test can listen on. Docker containers and some
 * CI runners run with IPv6 off (`net.ipv6.conf.all.disable_ipv6=1`): there `::1` (and the
 * dual-stack `::ffff:127.0.0.1`) cannot be bound, and tests that need it skip, saying so.
 * Asked once per test file, by binding an ephemeral port on ::1.
 */
import { createServer } from 'node:net';

let probe: Promise<boolean> | undefined;

export function hasIpv6Loopback(): Promise<boolean> {
  probe ??= new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => s.close(() => resolve(true)));
  });
  return probe;
}

/** What a test without IPv6 loopback says it is missing (tap's `skip` message). */
export const NO_IPV6_LOOPBACK =
  'no IPv6 loopback on this host: ::1 cannot be bound (IPv6 is off, e.g. net.ipv6.conf.all.disable_ipv6=1)';

/** For tap's `{ skip }`: false with an IPv6 loopback, else the message saying it is missing. */
export async function skipWithoutIpv6(): Promise<false | string> {
  return (await hasIpv6Loopback()) ? false : NO_IPV6_LOOPBACK;
}
