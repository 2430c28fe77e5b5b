/**
 * Private DNS for single-label names (docs/decisions/private-dns-single-label.md).
 *
 * GSA: with Private DNS configured, the client appends `<appId>.globalsecureaccess.local`
 * to a single-label name (`fs1`) and sends it to the edge; the edge strips that suffix and
 * the private network connector resolves the bare label with its own DNS search suffixes.
 *
 * gsa-emu's model: Private DNS is configured when an active Private Access forward rule
 * (enabled profile, enabled link) has a dnsSuffix destination. The first such rule's app
 * (its `appId`, else its policy id) gives the suffix; each active dnsSuffix rule of that app
 * also matches names under the suffix (`withPrivateDns` adds it as a derived destination),
 * with the rule's ports and protocols. The connector's search list is that app's DNS
 * suffixes, in document order, unless the edge is given one.
 *
 * Contract: every function is pure and total (no throw on any string); `withPrivateDns`
 * returns the same object when there is nothing to add, and caches per tenant object.
 */
import { isLabel } from '../util/names.js';
import type { DestinationSpec, RuleSpec, TenantSpec } from './model.js';

/** The domain under which single-label names travel (an NRPT entry on Windows). */
export const SINGLE_LABEL_DOMAIN = 'globalsecureaccess.local';

export interface PrivateDns {
  /** `<appId>.globalsecureaccess.local`, lowercase. */
  suffix: string;
  /** The app whose DNS suffixes these are. */
  appId: string;
  /** The app's DNS suffixes (dnsSuffix destinations of its active rules), in order, unique. */
  searchList: string[];
  /** Ids of the rules that get the derived destination. */
  ruleIds: ReadonlySet<string>;
}

/**
 * Never qualified: `localhost` never leaves the machine, and GSA excludes WPAD from Private
 * DNS so that no proxy configuration is discovered through the tunnel.
 */
const NEVER = new Set(['localhost', 'wpad']);

/**
 * True for a normalized (lowercase, no trailing dot) name GSA treats as single-label: a DNS
 * label, not all digits or hex (an address), not in NEVER.
 */
export function isSingleLabel(name: string): boolean {
  return (
    isLabel(name) && !NEVER.has(name) && !/^\d+$/.test(name) && !/^0x[0-9a-f]+$/.test(name) // inet_aton reads "0x7f000001" as an address
  );
}

const cache = new WeakMap<TenantSpec, { pd: PrivateDns | null; tenant: TenantSpec }>();

function appOf(r: RuleSpec, policyId: string): string {
  return (r.appId ?? policyId).toLowerCase();
}

function compute(tenant: TenantSpec): { pd: PrivateDns | null; tenant: TenantSpec } {
  let app: string | null = null;
  const searchList: string[] = [];
  const ruleIds = new Set<string>();
  for (const p of tenant.profiles) {
    if (p.type !== 'private' || p.state !== 'enabled') continue;
    for (const pol of p.policies) {
      if (pol.linkState !== 'enabled') continue;
      for (const r of pol.rules) {
        if (r.action !== 'forward') continue;
        const suffixes = r.destinations.filter((d) => d.type === 'dnsSuffix');
        if (suffixes.length === 0) continue;
        const a = appOf(r, pol.id);
        app ??= a;
        if (a !== app) continue;
        ruleIds.add(r.id);
        for (const d of suffixes) if (!searchList.includes(d.value)) searchList.push(d.value);
      }
    }
  }
  // An app id that is not a DNS label (our extension allows any string) cannot be a suffix.
  if (app === null || !isLabel(app)) return { pd: null, tenant };
  const suffix = `${app}.${SINGLE_LABEL_DOMAIN}`;
  const pd: PrivateDns = { suffix, appId: app, searchList, ruleIds };
  const derived: DestinationSpec = { type: 'dnsSuffix', value: suffix };
  const withDerived: TenantSpec = {
    ...tenant,
    profiles: tenant.profiles.map((p) =>
      p.type !== 'private'
        ? p
        : {
            ...p,
            policies: p.policies.map((pol) => ({
              ...pol,
              rules: pol.rules.map((r) =>
                ruleIds.has(r.id) && pol.linkState === 'enabled'
                  ? { ...r, destinations: [...r.destinations, derived] }
                  : r,
              ),
            })),
          },
    ),
  };
  return { pd, tenant: withDerived };
}

function entry(tenant: TenantSpec): { pd: PrivateDns | null; tenant: TenantSpec } {
  let e = cache.get(tenant);
  if (!e) {
    e = compute(tenant);
    cache.set(tenant, e);
  }
  return e;
}

/** The tenant's Private DNS for single-label names, or null when none is configured. */
export function privateDnsOf(tenant: TenantSpec): PrivateDns | null {
  return entry(tenant).pd;
}

/**
 * The tenant with the single-label suffix as a derived dnsSuffix destination of each of
 * the Private DNS app's active dnsSuffix rules (the same object when there is none).
 */
export function withPrivateDns(tenant: TenantSpec): TenantSpec {
  return entry(tenant).tenant;
}

/** `fs1` -> `fs1.<suffix>`; null for a name that is not single-label. */
export function qualifySingleLabel(name: string, suffix: string): string | null {
  return isSingleLabel(name) ? `${name}.${suffix}` : null;
}

/** `fs1.<suffix>` -> `fs1`; null for any other name (including deeper names under it). */
export function stripSingleLabel(name: string, suffix: string): string | null {
  if (name.length <= suffix.length + 1 || !name.endsWith(suffix)) return null;
  if (name.charCodeAt(name.length - suffix.length - 1) !== 0x2e) return null;
  const label = name.slice(0, name.length - suffix.length - 1);
  return isSingleLabel(label) ? label : null;
}
