/**
 * The health checks of the advanced diagnostics (gsa-facts section 6) and the channel
 * lines of `status`, from their inputs.
 */
import t from 'tap';
import type { HostnameEntry } from '../../src/client/client.js';
import {
  type HealthInput,
  healthChecks,
  type StatusInput,
  statusView,
} from '../../src/client/diagnostics.js';
import { createClientTiles, defaultClientConfig } from '../../src/policy/client-config.js';
import { loadPlatform } from '../../src/policy/platform.js';
import { loadTenantFile } from '../../src/policy/tenant-file.js';
import { healthInput, TEST_OVERVIEW } from './helpers.js';

const input = healthInput;

const check = (i: HealthInput, name: string) => healthChecks(i).find((c) => c.name === name);

t.test('every check the facts list is there', async (t) => {
  const names = healthChecks(input()).map((c) => c.name);
  for (const want of [
    'Internet reachable',
    'Services running',
    'Forwarding profile present and valid',
    'Break-glass disabled',
    'DNS over HTTPS disabled',
    'DNS responsive',
    'Magic IP received',
    'Cached token',
    'IPv4 preferred',
    'Edge hostname resolves',
    'Proxy disabled',
    'QUIC',
  ]) {
    t.ok(names.includes(want), want);
  }
  t.match(check(input(), 'Cached token'), {
    status: 'pass',
    detail: 'obtained 2026-11-27T12:00:00.000Z',
  });
});

t.test('proxy capture: DNS checks skipped, saying why', async (t) => {
  t.match(check(input(), 'DNS responsive'), { status: 'skip', detail: /proxy capture/ });
  t.match(check(input(), 'Magic IP received'), { status: 'skip', detail: /proxy capture/ });
});

t.test('proxy and DNS over HTTPS: each capture says what applies to it', async (t) => {
  t.match(check(input(), 'Proxy disabled'), { status: 'skip', detail: /gsa-emu is the proxy/ });
  t.match(check(input(), 'DNS over HTTPS disabled'), {
    status: 'skip',
    detail: /proxy capture/,
  });
  const tun = input({ hostnames: [], listeners: {} });
  t.match(check(tun, 'Proxy disabled'), { status: 'skip', detail: /TUN capture/ });
  t.notMatch(check(tun, 'Proxy disabled')?.detail, /gsa-emu is the proxy/);
  t.match(check(tun, 'DNS over HTTPS disabled'), {
    status: 'skip',
    detail: /bypasses the TUN resolver/,
  });
});

t.test('TUN capture: DNS checks from the hostname-acquisition table', async (t) => {
  const row = (
    fqdn: string,
    acquired: boolean,
    generatedIp: string | null,
    originalIp: string | null,
  ): HostnameEntry => ({
    time: '2026-11-27T12:00:00.000Z',
    fqdn,
    generatedIp,
    acquired,
    originalIp,
  });
  const empty = input({ hostnames: [] });
  t.match(check(empty, 'DNS responsive'), { status: 'skip' });
  t.match(check(empty, 'Magic IP received'), { status: 'skip' });
  const unanswered = input({ hostnames: [row('a.test', false, null, null)] });
  t.match(check(unanswered, 'DNS responsive'), { status: 'warn', detail: /1 name/ });
  const both = input({
    hostnames: [
      row('intranet.contoso.test', true, '6.6.0.1', null),
      row('news.test', false, null, '6.6.254.11'),
    ],
  });
  t.match(check(both, 'DNS responsive'), {
    status: 'pass',
    detail: /news\.test \(6\.6\.254\.11\)/,
  });
  t.match(check(both, 'Magic IP received'), {
    status: 'pass',
    detail: /^intranet\.contoso\.test -> 6\.6\.0\.1 at .* \(1 acquired name\(s\)\)$/,
  });
});

t.test('QUIC says where it is tunneled, for the platform', async (t) => {
  t.match(check(input(), 'QUIC'), {
    detail:
      'ios: QUIC (UDP 443, 80) is tunneled only where Exchange Online rules acquire it; other QUIC is dropped so apps fall back to TCP',
  });
  // Windows drops only the QUIC a rule acquires (Internet Access); the rest goes direct.
  t.match(check(input({ platform: loadPlatform('windows') }), 'QUIC'), {
    detail:
      'windows: QUIC (UDP 443, 80) is tunneled only where Microsoft 365 and Private Access rules acquire it; other QUIC that a rule acquires is dropped so apps fall back to TCP, and QUIC no rule acquires goes direct',
  });
});

t.test('Forwarding profile: kept after a failed poll (warn), missing (fail)', async (t) => {
  const tenant = loadTenantFile(undefined).tenant;
  const n = tenant.profiles.length;
  t.match(check(input({ tenant, rules: 7 }), 'Forwarding profile present and valid'), {
    status: 'pass',
    detail: `${n} profiles, 7 compiled rules (x)`,
  });
  const failed = 'cannot fetch forwarding profiles: connect ECONNREFUSED 127.0.0.1:8443';
  t.match(
    check(
      input({ tenant, rules: 7, profileError: failed }),
      'Forwarding profile present and valid',
    ),
    { status: 'warn', detail: `${n} profiles, 7 compiled rules (x); ${failed}` },
  );
  t.match(check(input({ profileError: failed }), 'Forwarding profile present and valid'), {
    status: 'fail',
    detail: failed,
  });
  t.match(check(input(), 'Forwarding profile present and valid'), {
    status: 'fail',
    detail: 'no forwarding profile yet',
  });
});

t.test('status with no profile yet: each channel says so, and why', async (t) => {
  const base: StatusInput = {
    overview: TEST_OVERVIEW,
    tenant: null,
    profileSource: 'edge http://127.0.0.1:8443',
    profileLoadedAt: null,
    generation: 1,
    tiles: createClientTiles(defaultClientConfig()).snapshot(),
    tunnelUp: () => true,
    tunnelDetail: () => 'tunnel up',
    tokenAt: null,
    tokenError: null,
    listeners: {},
    activeFlows: 0,
  };
  const details = (i: StatusInput) =>
    statusView(i)
      .channels.filter((c) => c.channel !== 'entra')
      .map((c) => c.detail);
  t.same(details(base), Array(3).fill('no forwarding profile yet'));
  const failed = 'cannot fetch forwarding profiles: connect ECONNREFUSED 127.0.0.1:8443';
  t.same(
    details({ ...base, profileError: failed }),
    Array(3).fill(`no forwarding profile yet (${failed})`),
  );
  const off = { ...base, tenant: { ...loadTenantFile(undefined).tenant, profiles: [] } };
  t.same(
    details(off),
    Array(3).fill('profile disabled by the administrator'),
    'a tenant without the profile: the administrator',
  );
});

t.test('Services running: the admin API or the PAC server alone capture nothing', async (t) => {
  const admin = '127.0.0.1:41000';
  t.match(
    check(input({ listeners: { socks: null, http: null, pac: null, admin } }), 'Services running'),
    {
      status: 'fail',
      detail: /^no capture: .*admin 127\.0\.0\.1:41000$/,
    },
  );
  t.match(
    check(input({ listeners: { socks: null, http: '127.0.0.1:3128', admin } }), 'Services running'),
    { status: 'pass', detail: 'http 127.0.0.1:3128, admin 127.0.0.1:41000' },
  );
  t.match(check(input({ listeners: { socks: null, admin }, hostnames: [] }), 'Services running'), {
    status: 'pass',
    detail: 'TUN capture, admin 127.0.0.1:41000',
  });
});

t.test('Tunneling succeeded: skipped for a channel whose profile is disabled', async (t) => {
  const tenant = loadTenantFile(undefined).tenant;
  const noPrivate = {
    ...tenant,
    profiles: tenant.profiles.map((p) => (p.type === 'private' ? { ...p, state: 'disabled' } : p)),
  } as typeof tenant;
  t.match(check(input({ tenant: noPrivate }), 'Tunneling succeeded (Private Access)'), {
    status: 'skip',
    detail: 'profile disabled by the administrator',
  });
  t.match(check(input({ tenant: noPrivate }), 'Tunneling succeeded (Internet Access)'), {
    status: 'pass',
  });
});

t.test(
  'Forwarding profile of the signed-in tenant: skipped until known, fails on another',
  async (t) => {
    const tenant = loadTenantFile(undefined).tenant;
    const name = 'Forwarding profile of the signed-in tenant';
    t.match(check(input(), name), { status: 'skip', detail: 'no forwarding profile yet' });
    t.match(check(input({ tenant }), name), { status: 'skip', detail: 'no token yet' });
    t.match(check(input({ tenant, tokenTenantId: tenant.tenantId }), name), { status: 'pass' });
    t.match(check(input({ tenant, tokenTenantId: 'other-tid', profileSource: 'f.json' }), name), {
      status: 'fail',
      detail: `the forwarding profile (f.json) is tenant ${tenant.name}'s (${tenant.tenantId}), but the edge signs in to another tenant, other-tid: its tokens and traffic log are that tenant's`,
    });
  },
);
