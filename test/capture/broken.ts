/**
 * A forwarder with a bug (its connectTcp throws), and a logger that keeps the warnings: for
 * the proxies' "a bug of ours closes one connection, not the process" tests.
 */
import type { Forwarder, ForwardLogger } from '../../src/forward/forwarder.js';

export function brokenForwarder(): Forwarder {
  return {
    connectTcp: async () => {
      throw new TypeError('boom');
    },
  } as unknown as Forwarder;
}

export function warningLog(): { log: ForwardLogger; warnings: string[] } {
  const warnings: string[] = [];
  return {
    warnings,
    log: { info() {}, debug() {}, warn: (_o: object, m?: string) => warnings.push(m ?? '') },
  };
}
