/**
 * Shared by the tests of `up`'s banner (test/cli/up-banner-*.test.ts): its `curl` lines, and
 * a stand-in client for bannerText.
 */
import type { bannerText } from '../../src/cli/commands/up.js';
import type { StatusView } from '../../src/client/diagnostics.js';
import { createClientTiles, defaultClientConfig } from '../../src/policy/client-config.js';

/** The banner's `curl ...` line for a name ('' when there is none). */
export const line = (text: string, name: string): string =>
  text.split('\n').find((l) => /^\s+curl /.test(l) && l.includes(`//${name}/`)) ?? '';

/**
 * A client for bannerText: on iOS, SOCKS5 on 127.0.0.1:1080 and the HTTP proxy on
 * 127.0.0.1:8080, the default tiles; its status says `state`, and which channels' tunnels
 * are up.
 */
export function bannerClient(
  state: string,
  up: Record<string, boolean>,
): Parameters<typeof bannerText>[0] {
  const snap = createClientTiles(defaultClientConfig()).snapshot();
  const status = {
    state,
    notes: [],
    warnings: [],
    tenantId: 't',
    tenantName: 'T',
    channels: Object.entries(up).map(([channel, u]) => ({ channel, up: u })),
    tiles: snap.tiles,
    onboarded: true,
    vpnOn: true,
  } as unknown as StatusView;
  return {
    status: () => status,
    platform: { name: 'ios' },
    listenNotes: [],
    addresses: { socks: '127.0.0.1:1080', http: '127.0.0.1:8080', pac: null, admin: null },
  } as unknown as Parameters<typeof bannerText>[0];
}
