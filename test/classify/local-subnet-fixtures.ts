/**
 * Shared by the local-subnet tests (test/classify/local-subnet.test.ts,
 * test/client/local-subnets.test.ts): a tenant of Private Access IP segments, and this
 * host's first interface subnet with an address in it.
 */
import { networkInterfaces } from 'node:os';
import { formatIPv4, parseCidr, parseIPv4 } from '../../src/util/ip.js';

/** A Graph tenant document whose Private Access segments are `cidrs` (443/tcp each). */
export function privateSegmentsTenant(cidrs: string[], name = 'local subnets'): unknown {
  return {
    tenantId: '22222222-2222-2222-2222-222222222222',
    name,
    forwardingProfiles: [
      {
        id: 'pa',
        name: 'Private access profile',
        trafficForwardingType: 'private',
        state: 'enabled',
        policies: [
          {
            id: 'pa-link',
            state: 'enabled',
            policy: {
              id: 'pa-app',
              name: 'LAN app',
              policyRules: cidrs.map((value, i) => ({
                '@odata.type': '#microsoft.graph.networkaccess.privateAccessForwardingRule',
                id: `pa-seg-${i}`,
                name: `segment ${value}`,
                action: 'forward',
                ruleType: 'ipSubnet',
                destinations: [{ '@odata.type': '#microsoft.graph.networkaccess.ipSubnet', value }],
                ports: ['443'],
                protocol: 'tcp',
              })),
            },
          },
        ],
      },
    ],
  };
}

/**
 * The first non-internal IPv4 interface with at least 4 addresses: its CIDR, its own
 * address, and another address in it (a neighbour on the LAN); null without one.
 */
export function hostLan(): { cidr: string; own: string; neighbour: string } | null {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.family !== 'IPv4' || a.internal || !a.cidr) continue;
      const c = parseCidr(a.cidr);
      if (typeof c === 'string' || c.family !== 4 || c.last - c.first < 3) continue;
      const own = parseIPv4(a.address);
      const neighbour = own === c.first + 1 ? c.first + 2 : c.first + 1;
      return { cidr: a.cidr, own: a.address, neighbour: formatIPv4(neighbour) };
    }
  }
  return null;
}
