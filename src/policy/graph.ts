/**
 * Forwarding profiles in the Microsoft Graph beta shape (`microsoft.graph.networkaccess`):
 * the types, the loader that validates a document and produces the normalized
 * `TenantSpec` of model.ts, and the two document operations the mock edge serves
 * (`setPolicyLinkState` for PATCH, `expandProfiles` / `expandPolicy` for GET with `$expand`).
 *
 * Contract: `loadTenant` either returns a valid TenantSpec or throws one ConfigError that
 * lists every problem, each named by the JSON path of the bad item. It never throws
 * anything else, whatever the input.
 *
 * Our extension (docs/policy.md): private rules may carry `ports`, `protocol` and `appId`
 * (Private Access application segments have ports), and a `dnsSuffix` destination.
 *
 * @example
 * const tenant = loadTenant(JSON.parse(text), { file: 'profiles.json' });
 */
import { ConfigError, type ConfigIssue } from '../errors.js';
import { cmp6, ipFamily, parseCidr, parseIPv4, parseIPv6 } from '../util/ip.js';
import type {
  ChannelName,
  DestinationSpec,
  FallbackAction,
  InternetPolicyKind,
  M365Group,
  PolicySpec,
  PortRange,
  ProfileSpec,
  Protocol,
  RuleAction,
  RuleSpec,
  State,
  TenantSpec,
} from './model.js';
import {
  type ExpandTree,
  expandContext,
  type NavigationModel,
  parseExpand,
} from './odata-expand.js';

// ---------------------------------------------------------------------------------------
// Graph types
// ---------------------------------------------------------------------------------------

/** The OData namespace prefix of every `@odata.type` we read and write. */
export const NS = '#microsoft.graph.networkaccess.';

export interface GraphFqdn {
  '@odata.type': '#microsoft.graph.networkaccess.fqdn';
  value: string;
}
export interface GraphIpAddress {
  '@odata.type': '#microsoft.graph.networkaccess.ipAddress';
  value: string;
}
export interface GraphIpSubnet {
  '@odata.type': '#microsoft.graph.networkaccess.ipSubnet';
  value: string;
}
export interface GraphIpRange {
  '@odata.type': '#microsoft.graph.networkaccess.ipRange';
  beginAddress: string;
  endAddress: string;
}
/** gsa-emu extension for Private Access segments (docs/decisions/policy-private-segments.md). */
export interface GraphDnsSuffix {
  '@odata.type': '#microsoft.graph.networkaccess.dnsSuffix';
  value: string;
}
export type GraphDestination =
  | GraphFqdn
  | GraphIpAddress
  | GraphIpSubnet
  | GraphIpRange
  | GraphDnsSuffix;

/** Graph `networkDestinationType` values a forwarding rule may carry, plus our dnsSuffix. */
export type GraphRuleType = 'fqdn' | 'ipAddress' | 'ipSubnet' | 'ipRange' | 'dnsSuffix';

interface GraphRuleBase {
  id: string;
  name: string;
  action: RuleAction;
  ruleType?: GraphRuleType;
  destinations: GraphDestination[];
  /** The rule's own fallback (gsa-facts section 1: profiles and rules carry one); else the profile's. */
  clientFallbackAction?: FallbackAction;
}
export interface GraphM365ForwardingRule extends GraphRuleBase {
  '@odata.type': '#microsoft.graph.networkaccess.m365ForwardingRule';
  /** `"80"` or `"400-500"`. */
  ports?: string[];
  /** `tcp`, `udp` (missing = tcp), or the flags form `tcp,udp`. */
  protocol?: string;
  category?: 'default' | 'optimized' | 'allow';
}
export interface GraphInternetAccessForwardingRule extends GraphRuleBase {
  '@odata.type': '#microsoft.graph.networkaccess.internetAccessForwardingRule';
  ports?: string[];
  protocol?: string;
}
export interface GraphPrivateAccessForwardingRule extends GraphRuleBase {
  '@odata.type': '#microsoft.graph.networkaccess.privateAccessForwardingRule';
  /** Extension: application segment ports (missing = any port). */
  ports?: string[];
  /** Extension: `tcp`, `udp` or `tcp,udp` (missing = any protocol). */
  protocol?: string;
  /** Extension: the Private Access application (client id) this segment belongs to. */
  appId?: string;
}
export type GraphPolicyRule =
  | GraphM365ForwardingRule
  | GraphInternetAccessForwardingRule
  | GraphPrivateAccessForwardingRule;

export interface GraphForwardingPolicy {
  '@odata.type'?: '#microsoft.graph.networkaccess.forwardingPolicy';
  id: string;
  name: string;
  description?: string;
  version?: string;
  trafficForwardingType?: ChannelName;
  policyRules?: GraphPolicyRule[];
}

export interface GraphForwardingPolicyLink {
  '@odata.type'?: '#microsoft.graph.networkaccess.forwardingPolicyLink';
  id: string;
  state?: State;
  version?: string;
  policy?: GraphForwardingPolicy;
}

export interface GraphForwardingProfile {
  '@odata.type'?: '#microsoft.graph.networkaccess.forwardingProfile';
  id: string;
  name: string;
  description?: string;
  state?: State;
  version?: string;
  lastModifiedDateTime?: string;
  trafficForwardingType: ChannelName;
  priority?: number;
  clientFallbackAction?: FallbackAction;
  isCustomProfile?: boolean;
  associations?: unknown[];
  policies?: GraphForwardingPolicyLink[];
}

/** Our on-disk document: a tenant with its profiles (data/tenants/default/forwarding-profiles.json). */
export interface GraphTenantDocument {
  tenantId: string;
  name: string;
  forwardingProfiles: GraphForwardingProfile[];
}

/** A Graph list response (`GET /networkAccess/forwardingProfiles`). */
export interface GraphProfileList {
  '@odata.context'?: string;
  value: GraphForwardingProfile[];
}

export type GraphDocument = GraphTenantDocument | GraphProfileList;

export interface LoadTenantOptions {
  /** Named in the ConfigError (`file: 3 problems ...`). */
  file?: string;
  /** For a `{ value: [...] }` list, which carries no tenant: the tenant id (default all-zero GUID). */
  tenantId?: string;
  /** For a `{ value: [...] }` list: the tenant's display name. */
  name?: string;
}

// ---------------------------------------------------------------------------------------
// Small validation helpers
// ---------------------------------------------------------------------------------------

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Own property only: `constructor`, `__proto__` and friends never leak in from the prototype. */
function get(o: Obj, k: string): unknown {
  return Object.hasOwn(o, k) ? o[k] : undefined;
}

/** A short rendering of a bad value for messages. */
export function show(v: unknown): string {
  if (v === undefined) return 'undefined';
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = Array.isArray(v) ? 'an array' : typeof v;
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

class Issues {
  readonly list: ConfigIssue[] = [];
  add(path: string, message: string): void {
    this.list.push({ path, message });
  }
}

/**
 * Graph's evolvable enums: a client that does not send `Prefer: include-unknown-enum-members`
 * receives `unknownFutureValue` for any member added after the enum's sentinel. The value
 * says nothing about the rule, so it is an error that says how to export the real one.
 */
export const UNKNOWN_FUTURE_VALUE = 'unknownFutureValue';

/** The message for `v`, not one of `allowed`. */
function notOneOf(v: unknown, allowed: readonly string[]): string {
  if (v === UNKNOWN_FUTURE_VALUE) {
    return `"${UNKNOWN_FUTURE_VALUE}" is Graph's stand-in for a value newer than the request asked for: export again with the request header "Prefer: include-unknown-enum-members" (known here: ${allowed.join(', ')})`;
  }
  return `${show(v)} is not one of ${allowed.join(', ')}`;
}

function oneOf<T extends string>(
  is: Issues,
  o: Obj,
  key: string,
  path: string,
  allowed: readonly T[],
  dflt: T | undefined,
): T | undefined {
  const v = get(o, key);
  const p = join(path, key);
  if (v === undefined || v === null) {
    if (dflt === undefined) is.add(p, `missing (one of ${allowed.join(', ')})`);
    return dflt;
  }
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    is.add(p, notOneOf(v, allowed));
    return dflt;
  }
  return v as T;
}

function str(is: Issues, o: Obj, key: string, path: string, required: boolean): string | undefined {
  const v = get(o, key);
  const p = join(path, key);
  if (v === undefined || v === null) {
    if (required) is.add(p, 'missing');
    return undefined;
  }
  if (typeof v !== 'string') {
    is.add(p, `must be a string, not ${show(v)}`);
    return undefined;
  }
  if (required && v.trim() === '') {
    is.add(p, 'must not be empty');
    return undefined;
  }
  return v;
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** Accepts `#microsoft.graph.networkaccess.X`, `microsoft.graph.networkaccess.X`; returns X or null. */
function odataName(v: unknown): string | null {
  if (typeof v !== 'string') return null;
  const s = v.startsWith('#') ? v.slice(1) : v;
  const ns = NS.slice(1);
  return s.startsWith(ns) ? s.slice(ns.length) : null;
}

/** Checks an optional `@odata.type` against the accepted names. */
function checkType(is: Issues, o: Obj, path: string, accepted: readonly string[]): void {
  const v = get(o, '@odata.type');
  if (v === undefined) return;
  const n = odataName(v);
  if (n === null || !accepted.includes(n)) {
    is.add(join(path, '@odata.type'), `${show(v)} is not ${NS}${accepted[0]}`);
  }
}

// ---------------------------------------------------------------------------------------
// Destinations, ports, protocols, names
// ---------------------------------------------------------------------------------------

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * Validate and normalize an FQDN: lowercase, one trailing dot stripped. With `wildcards`,
 * `*` may stand as a whole label anywhere but last (`*.contoso.com`,
 * `autodiscover.*.onmicrosoft.com`). Returns `{ value }` or `{ error }`.
 */
export function normalizeFqdn(
  raw: string,
  wildcards: boolean,
): { value: string; error?: undefined } | { error: string; value?: undefined } {
  const q = show(raw);
  let s = raw.toLowerCase();
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (s === '') return { error: `${q} is not an FQDN: empty name` };
  if (/[^\x21-\x7e]/.test(s)) {
    return { error: `${q} is not an FQDN: spaces or non-ASCII characters (use punycode)` };
  }
  if (ipFamily(s) !== 0) return { error: `${q} is an IP address, not an FQDN` };
  if (s.length > 253) return { error: `${q} is not an FQDN: longer than 253 characters` };
  const labels = s.split('.');
  let named = 0;
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (l === '') return { error: `${q} is not an FQDN: empty label` };
    if (l === '*') {
      if (!wildcards) return { error: `${q}: wildcards are not allowed here` };
      if (i === labels.length - 1) {
        return { error: `${q} is not an FQDN: "*" cannot be the last label` };
      }
      continue;
    }
    if (l.includes('*')) {
      if (!wildcards) return { error: `${q}: wildcards are not allowed here` };
      const hint = wholeLabelWildcards(labels);
      return {
        error: `${q} is not an FQDN: "*" must be a whole label${hint ? ` (write "${hint}")` : ''}`,
      };
    }
    if (l.length > 63) return { error: `${q} is not an FQDN: label longer than 63 characters` };
    if (!LABEL.test(l)) return { error: `${q} is not an FQDN: bad label "${l}"` };
    named++;
  }
  if (named === 0) return { error: `${q} is not an FQDN: no label besides "*"` };
  return { value: s };
}

/**
 * The name `labels` with each `*` glued to a label made a label of its own (`*contoso.com` ->
 * `*.contoso.com`, `autodiscover*.onmicrosoft.com` -> `autodiscover.*.onmicrosoft.com`),
 * the other labels unchanged; null when that is still no valid wildcard FQDN (`contoso.com*`
 * would end in `*`).
 */
function wholeLabelWildcards(labels: readonly string[]): string | null {
  const fixed = labels
    .map((l) => (l === '*' ? l : l.replace(/\*+/g, '.*.').replace(/^\.|\.$/g, '')))
    .join('.');
  return normalizeFqdn(fixed, true).error === undefined ? fixed : null;
}

/** `"80"` or `"400-500"` -> PortRange; returns a reason string on bad input. */
export function parsePort(v: unknown): PortRange | string {
  if (typeof v !== 'string') return `${show(v)} is not a port string ("80" or "400-500")`;
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(v);
  if (!m) return `${show(v)} is not a port or port range ("80" or "400-500")`;
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (from > 65535 || to > 65535) return `${show(v)} is out of range (0-65535)`;
  if (from > to) return `${show(v)}: range start is after its end`;
  return { from, to };
}

/**
 * Graph's `networkingProtocol` members besides tcp and udp (learn.microsoft.com,
 * networkaccess-m365forwardingrule): valid Graph values that a forwarding rule does not
 * carry in practice (gsa-facts section 2: tcp, udp), and that gsa-emu cannot emulate.
 */
const OTHER_NETWORKING_PROTOCOLS = new Set([
  'ip',
  'icmp',
  'igmp',
  'ggp',
  'ipv4',
  'pup',
  'idp',
  'ipv6',
  'ipv6RoutingHeader',
  'ipv6FragmentHeader',
  'ipSecEncapsulatingSecurityPayload',
  'ipSecAuthenticationHeader',
  'icmpV6',
  'ipv6NoNextHeader',
  'ipv6DestinationOptions',
  'nd',
  'raw',
  'ipx',
  'spx',
  'spxII',
]);

/** `tcp`, `udp`, or the flags form `tcp,udp` -> protocols; a reason string on bad input. */
export function parseProtocol(v: unknown): Protocol[] | string {
  const usage = '(tcp, udp or "tcp,udp")';
  if (typeof v !== 'string') return `${show(v)} is not a protocol ${usage}`;
  if (v === UNKNOWN_FUTURE_VALUE) return notOneOf(v, ['tcp', 'udp', 'tcp,udp']);
  if (OTHER_NETWORKING_PROTOCOLS.has(v)) {
    return `${show(v)} is a Graph networkingProtocol that GSA forwarding rules do not use: gsa-emu forwards tcp and udp ${usage}`;
  }
  const out: Protocol[] = [];
  for (const part of v.split(',')) {
    const p = part.trim();
    if (p !== 'tcp' && p !== 'udp') return `${show(v)} is not a protocol ${usage}`;
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

const DEST_TYPES = ['fqdn', 'ipAddress', 'ipSubnet', 'ipRange', 'dnsSuffix'] as const;
type DestType = (typeof DEST_TYPES)[number];
const RULE_TYPES = [...DEST_TYPES, 'ipRangeCidr'] as const;

function readDestination(is: Issues, d: unknown, path: string): DestinationSpec | null {
  if (!isObj(d)) {
    is.add(path, `must be an object, not ${show(d)}`);
    return null;
  }
  const t = get(d, '@odata.type');
  const tp = join(path, '@odata.type');
  if (t === undefined) {
    is.add(tp, `missing (one of ${DEST_TYPES.map((x) => NS + x).join(', ')})`);
    return null;
  }
  const n = odataName(t);
  if (n === 'url' || n === 'webCategory') {
    is.add(tp, `${show(t)} belongs to filtering policies, not forwarding rules`);
    return null;
  }
  if (n === 'ipRangeCidr') {
    // Graph's ruleType is ipRangeCidr, but its destinations are ipSubnet (an easy slip).
    is.add(
      tp,
      `${show(t)} is not a destination type: a rule of ruleType ipRangeCidr holds ${NS}ipSubnet destinations ({"value": "<CIDR>"})`,
    );
    return null;
  }
  if (n === null || !(DEST_TYPES as readonly string[]).includes(n)) {
    is.add(tp, `${show(t)} is not a known destination type (${DEST_TYPES.join(', ')})`);
    return null;
  }
  const type = n as DestType;
  if (type === 'ipRange') {
    const b = str(is, d, 'beginAddress', path, true);
    const e = str(is, d, 'endAddress', path, true);
    if (b === undefined || e === undefined) return null;
    const fb = ipFamily(b);
    const fe = ipFamily(e);
    let ok = true;
    if (fb === 0) {
      is.add(join(path, 'beginAddress'), `${show(b)} is not an IP address`);
      ok = false;
    }
    if (fe === 0) {
      is.add(join(path, 'endAddress'), `${show(e)} is not an IP address`);
      ok = false;
    }
    if (!ok) return null;
    if (fb !== fe) {
      is.add(path, `beginAddress ${b} and endAddress ${e} are not the same address family`);
      return null;
    }
    let order: number;
    if (fb === 4) {
      order = Math.sign(parseIPv4(b) - parseIPv4(e));
    } else {
      const wb = new Uint32Array(4);
      const we = new Uint32Array(4);
      parseIPv6(b, wb);
      parseIPv6(e, we);
      order = cmp6(wb, we);
    }
    if (order > 0) {
      is.add(path, `beginAddress ${b} is after endAddress ${e}`);
      return null;
    }
    return { type: 'ipRange', begin: b, end: e };
  }
  const value = str(is, d, 'value', path, true);
  if (value === undefined) return null;
  const vp = join(path, 'value');
  switch (type) {
    case 'fqdn':
    case 'dnsSuffix': {
      const raw = type === 'dnsSuffix' && value.startsWith('.') ? value.slice(1) : value;
      const r = normalizeFqdn(raw, type === 'fqdn');
      if (r.error !== undefined) {
        is.add(vp, r.error);
        return null;
      }
      return { type, value: r.value };
    }
    case 'ipAddress':
      if (ipFamily(value) === 0) {
        is.add(vp, `${show(value)} is not an IP address`);
        return null;
      }
      return { type, value };
    case 'ipSubnet': {
      const c = value.includes('/') ? parseCidr(value) : `${show(value)} is not a CIDR`;
      if (typeof c === 'string') {
        is.add(vp, c);
        return null;
      }
      return { type, value };
    }
  }
}

// ---------------------------------------------------------------------------------------
// Derived names
// ---------------------------------------------------------------------------------------

/** Microsoft profile policy group from the policy name (Exchange, SharePoint/OneDrive, ...). */
export function m365GroupOf(name: string): M365Group {
  const n = name.toLowerCase();
  if (n.includes('exchange')) return 'exchange';
  if (n.includes('sharepoint') || n.includes('onedrive')) return 'sharepoint';
  if (n.includes('teams')) return 'teams';
  if (n.includes('common') || n.includes('office online')) return 'common';
  return 'other';
}

const KIND_PATTERNS: Array<[InternetPolicyKind, RegExp]> = [
  ['customBypass', /\bcustom bypass\b/],
  ['defaultBypass', /\bdefault bypass\b/],
  ['microsoftBypass', /\bmicrosoft traffic\b/],
  ['customAcquire', /\bcustom acqui(?:re|sition)\b/],
  ['defaultAcquire', /\bdefault acqui(?:re|sition)\b/],
];

/** Internet Access policy kind from its name, else its description; undefined if neither says. */
export function internetKindOf(name: string, description?: string): InternetPolicyKind | undefined {
  for (const text of [name, description ?? '']) {
    const n = text.toLowerCase().replace(/[\s_-]+/g, ' ');
    for (const [kind, re] of KIND_PATTERNS) if (re.test(n)) return kind;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// The loader
// ---------------------------------------------------------------------------------------

const TYPES: readonly ChannelName[] = ['m365', 'private', 'internet'];
const STATES: readonly State[] = ['enabled', 'disabled'];
const ACTIONS: readonly RuleAction[] = ['forward', 'bypass'];
const FALLBACKS: readonly FallbackAction[] = ['bypass', 'block'];
const CATEGORIES = ['default', 'optimized', 'allow'] as const;
const RULE_ODATA: Record<string, ChannelName | null> = {
  m365ForwardingRule: 'm365',
  internetAccessForwardingRule: 'internet',
  privateAccessForwardingRule: 'private',
  forwardingRule: null,
  policyRule: null,
};
const DEFAULT_PRIORITY: Record<ChannelName, number> = { m365: 0, private: 1, internet: 2 };
export const DEFAULT_LIST_TENANT_ID = '00000000-0000-0000-0000-000000000000';

/** Tracks ids that must be unique across the tenant. */
class Seen {
  private readonly map = new Map<string, string>();
  check(is: Issues, what: string, id: string, path: string): void {
    const prev = this.map.get(id);
    if (prev !== undefined)
      is.add(join(path, 'id'), `duplicate ${what} id "${id}" (also at ${prev})`);
    else this.map.set(id, path);
  }
}

interface Ctx {
  is: Issues;
  ruleIds: Seen;
  policyIds: Seen;
  linkIds: Seen;
  profileIds: Seen;
}

/**
 * A Graph collection cut into pages carries `@odata.nextLink` (a nested expanded collection
 * `<name>@odata.nextLink`): the file holds one page, and the rest of the tenant would be
 * missing without a word. `collection` is the property name, '' for the response's `value`.
 */
function checkNextLink(is: Issues, o: Obj, path: string, collection: string): void {
  const key = `${collection}@odata.nextLink`;
  if (get(o, key) === undefined || get(o, key) === null) return;
  is.add(
    join(path, key),
    `${collection || 'value'} has more pages: follow @odata.nextLink and merge every page into one file (this file holds only the first)`,
  );
}

/**
 * A navigation property Graph returns only when expanded (a profile's `policies`, a
 * policy's `policyRules`): its array, or null where there is none to read (null, or an
 * issue added). Missing is an issue, not "none": a list saved without the nested $expand
 * would load as a tenant without rules, silently; so is a page of several.
 */
function expandedArray(
  is: Issues,
  o: Obj,
  path: string,
  prop: 'policies' | 'policyRules',
  items: string,
  none: string,
): unknown[] | null {
  const v = get(o, prop);
  const at = join(path, prop);
  checkNextLink(is, o, path, prop);
  if (v === undefined) {
    is.add(
      at,
      `is missing: fetch the profiles with $expand=${EXPAND_ALL} (Graph returns the ${items} only when expanded), or give "${prop}": [] for ${none}`,
    );
    return null;
  }
  if (v === null) return null;
  if (!Array.isArray(v)) {
    is.add(at, `must be an array, not ${show(v)}`);
    return null;
  }
  return v;
}

function readRule(ctx: Ctx, r: unknown, path: string, type: ChannelName): RuleSpec | null {
  const { is } = ctx;
  if (!isObj(r)) {
    is.add(path, `must be an object, not ${show(r)}`);
    return null;
  }
  const before = is.list.length;
  const t = get(r, '@odata.type');
  if (t !== undefined) {
    const n = odataName(t);
    if (n === null || !Object.hasOwn(RULE_ODATA, n)) {
      is.add(
        join(path, '@odata.type'),
        `${show(t)} is not a known rule type (m365ForwardingRule, internetAccessForwardingRule, privateAccessForwardingRule)`,
      );
    } else {
      const ruleFor = RULE_ODATA[n];
      if (ruleFor && ruleFor !== type) {
        is.add(join(path, '@odata.type'), `a ${n} cannot be in a ${type} profile`);
      }
    }
  }
  const id = str(is, r, 'id', path, true);
  if (id !== undefined) ctx.ruleIds.check(is, 'rule', id, path);
  const name = str(is, r, 'name', path, true);
  const action = oneOf(is, r, 'action', path, ACTIONS, undefined);

  const ruleType = get(r, 'ruleType');
  if (ruleType !== undefined && ruleType !== null) {
    if (ruleType === 'url' || ruleType === 'webCategory') {
      is.add(
        join(path, 'ruleType'),
        `${show(ruleType)} belongs to filtering policies, not forwarding rules`,
      );
    } else if (
      typeof ruleType !== 'string' ||
      !(RULE_TYPES as readonly string[]).includes(ruleType)
    ) {
      is.add(join(path, 'ruleType'), notOneOf(ruleType, RULE_TYPES));
    }
  }

  // Destinations.
  const destinations: DestinationSpec[] = [];
  const dv = get(r, 'destinations');
  const dp = join(path, 'destinations');
  if (dv === undefined || dv === null) is.add(dp, 'missing');
  else if (!Array.isArray(dv)) is.add(dp, `must be an array, not ${show(dv)}`);
  else if (dv.length === 0)
    is.add(dp, 'must not be empty (a rule without destinations matches nothing)');
  else {
    dv.forEach((d, i) => {
      const spec = readDestination(is, d, `${dp}[${i}]`);
      if (!spec) return;
      destinations.push(spec);
      if (typeof ruleType === 'string' && (RULE_TYPES as readonly string[]).includes(ruleType)) {
        const want = ruleType === 'ipRangeCidr' ? 'ipSubnet' : ruleType;
        if (spec.type !== want) {
          is.add(`${dp}[${i}]`, `a ${spec.type} destination in a rule of ruleType ${ruleType}`);
        }
      }
    });
  }

  // Ports.
  const ports: PortRange[] = [];
  const pv = get(r, 'ports');
  const pp = join(path, 'ports');
  if (pv !== undefined && pv !== null) {
    if (!Array.isArray(pv)) is.add(pp, `must be an array of strings, not ${show(pv)}`);
    else {
      pv.forEach((p, i) => {
        const pr = parsePort(p);
        if (typeof pr === 'string') is.add(`${pp}[${i}]`, pr);
        else ports.push(pr);
      });
    }
  }

  // Protocol: missing = tcp for m365/internet, any for private.
  let protocols: Protocol[] = type === 'private' ? [] : ['tcp'];
  const prv = get(r, 'protocol');
  if (prv !== undefined && prv !== null) {
    const pr = parseProtocol(prv);
    if (typeof pr === 'string') is.add(join(path, 'protocol'), pr);
    else protocols = pr;
  }

  // Category: m365 only.
  let category: string | undefined;
  if (type === 'm365') {
    category = oneOf(is, r, 'category', path, CATEGORIES, 'default');
  } else if (get(r, 'category') !== undefined) {
    is.add(join(path, 'category'), `only Microsoft profile (m365) rules have a category`);
  }

  // appId: private only (our extension).
  let appId: string | undefined;
  if (type === 'private') appId = str(is, r, 'appId', path, false);
  else if (get(r, 'appId') !== undefined) {
    is.add(join(path, 'appId'), 'only Private Access rules have an appId');
  }

  // The rule's own fallback, where it has one (else its profile's applies).
  const fallback =
    get(r, 'clientFallbackAction') == null
      ? undefined
      : oneOf(is, r, 'clientFallbackAction', path, FALLBACKS, undefined);

  if (is.list.length !== before || id === undefined || name === undefined || !action) return null;
  const rule: RuleSpec = { id, name, action, protocols, ports, destinations, path };
  if (fallback !== undefined) rule.fallback = fallback;
  if (category !== undefined) rule.category = category;
  if (appId !== undefined) rule.appId = appId;
  return rule;
}

function readPolicy(
  ctx: Ctx,
  p: unknown,
  path: string,
  type: ChannelName,
): { id: string; name: string; description?: string; rules: RuleSpec[] } | null {
  const { is } = ctx;
  if (p === undefined || p === null) {
    is.add(path, `missing (load the profiles with $expand=${EXPAND_ALL})`);
    return null;
  }
  if (!isObj(p)) {
    is.add(path, `must be an object, not ${show(p)}`);
    return null;
  }
  checkType(is, p, path, ['forwardingPolicy']);
  const id = str(is, p, 'id', path, true);
  if (id !== undefined) ctx.policyIds.check(is, 'policy', id, path);
  const name = str(is, p, 'name', path, true);
  const description = str(is, p, 'description', path, false);
  str(is, p, 'version', path, false);
  const tft = get(p, 'trafficForwardingType');
  if (tft !== undefined && tft !== null && tft !== type) {
    is.add(
      join(path, 'trafficForwardingType'),
      `${show(tft)} does not match the profile's trafficForwardingType "${type}"`,
    );
  }
  const rules: RuleSpec[] = [];
  expandedArray(is, p, path, 'policyRules', 'rules', 'a policy without rules')?.forEach((r, i) => {
    const rule = readRule(ctx, r, `${join(path, 'policyRules')}[${i}]`, type);
    if (rule) rules.push(rule);
  });
  if (id === undefined || name === undefined) return null;
  return description === undefined ? { id, name, rules } : { id, name, description, rules };
}

function readLink(ctx: Ctx, l: unknown, path: string, type: ChannelName): PolicySpec | null {
  const { is } = ctx;
  if (!isObj(l)) {
    is.add(path, `must be an object, not ${show(l)}`);
    return null;
  }
  checkType(is, l, path, ['forwardingPolicyLink', 'policyLink']);
  const linkId = str(is, l, 'id', path, true);
  if (linkId !== undefined) ctx.linkIds.check(is, 'policy link', linkId, path);
  const linkState = oneOf(is, l, 'state', path, STATES, 'enabled')!;
  str(is, l, 'version', path, false);
  const pol = readPolicy(ctx, get(l, 'policy'), join(path, 'policy'), type);
  if (!pol || linkId === undefined) return null;
  const spec: PolicySpec = { linkId, linkState, id: pol.id, name: pol.name, rules: pol.rules };
  if (type === 'm365') spec.group = m365GroupOf(pol.name);
  if (type === 'internet') {
    const kind = internetKindOf(pol.name, pol.description);
    if (kind) spec.kind = kind;
  }
  return spec;
}

function readProfile(ctx: Ctx, p: unknown, path: string): ProfileSpec | null {
  const { is } = ctx;
  if (!isObj(p)) {
    is.add(path, `must be an object, not ${show(p)}`);
    return null;
  }
  checkType(is, p, path, ['forwardingProfile']);
  const id = str(is, p, 'id', path, true);
  if (id !== undefined) ctx.profileIds.check(is, 'profile', id, path);
  const name = str(is, p, 'name', path, true);
  str(is, p, 'description', path, false);
  str(is, p, 'version', path, false);
  str(is, p, 'lastModifiedDateTime', path, false);
  const type = oneOf(is, p, 'trafficForwardingType', path, TYPES, undefined);
  const state = oneOf(is, p, 'state', path, STATES, 'enabled')!;
  const fallback = oneOf(is, p, 'clientFallbackAction', path, FALLBACKS, 'bypass')!;
  let priority = type ? DEFAULT_PRIORITY[type] : 0;
  const pr = get(p, 'priority');
  if (pr !== undefined && pr !== null) {
    if (typeof pr !== 'number' || !Number.isFinite(pr)) {
      is.add(join(path, 'priority'), `must be a number, not ${show(pr)}`);
    } else priority = pr;
  }
  const icp = get(p, 'isCustomProfile');
  if (icp !== undefined && icp !== null && typeof icp !== 'boolean') {
    is.add(join(path, 'isCustomProfile'), `must be true or false, not ${show(icp)}`);
  }
  const as = get(p, 'associations');
  if (as !== undefined && as !== null && !Array.isArray(as)) {
    is.add(join(path, 'associations'), `must be an array, not ${show(as)}`);
  }
  const policies: PolicySpec[] = [];
  const links = expandedArray(is, p, path, 'policies', 'policies', 'a profile without policies');
  if (type) {
    links?.forEach((l, i) => {
      const spec = readLink(ctx, l, `${join(path, 'policies')}[${i}]`, type);
      if (spec) policies.push(spec);
    });
  }
  if (id === undefined || name === undefined || !type) return null;
  return { id, name, type, state, priority, fallback, policies };
}

/**
 * One forwardingProfile entity at the root, as `GET /networkAccess/forwardingProfiles/{id}`
 * returns it (with `$expand`): an object with a `trafficForwardingType` and neither
 * `forwardingProfiles` nor `value`.
 */
export function isProfileEntity(json: unknown): json is Obj {
  return (
    isObj(json) &&
    !Object.hasOwn(json, 'forwardingProfiles') &&
    !Object.hasOwn(json, 'value') &&
    Object.hasOwn(json, 'trafficForwardingType')
  );
}

/**
 * The document as the edge keeps and serves it: a root profile entity becomes a one-profile
 * Graph list (its `@odata.context` dropped: it described the entity); anything else as is.
 */
export function asGraphDocument(json: unknown): unknown {
  if (!isProfileEntity(json)) return json;
  const { '@odata.context': _context, ...profile } = json;
  return { value: [profile] };
}

/**
 * `s` without its parenthesized parts, nested ones whole (`forwardingPolicies(policyRules())`
 * -> `forwardingPolicies`), in one pass: a context URL's `$select`/`$expand` and key segments.
 */
function withoutParens(s: string): string {
  let out = '';
  let depth = 0;
  for (const c of s) {
    if (c === '(') depth++;
    else if (c === ')') depth = Math.max(0, depth - 1);
    else if (depth === 0) out += c;
  }
  return out;
}

/**
 * What a document's `@odata.context` says it is, after the `#` and without parenthesized
 * parts (`.../$metadata#networkAccess/forwardingPolicies('x')/policyRules` ->
 * `networkAccess/forwardingPolicies/policyRules`); '' when it has none.
 */
function contextTail(json: Obj): string {
  const context = get(json, '@odata.context');
  return typeof context === 'string' ? (withoutParens(context).split('#')[1] ?? '') : '';
}

/**
 * The documented nested requests return other collections in the same `{ value }` shape:
 * `GET forwardingProfiles/{id}/policies?$expand=policy($expand=policyRules)` (policy links),
 * `GET forwardingPolicies` and `GET forwardingPolicies/{id}/policyRules`. Read as profiles,
 * they would give a dozen unrelated issues; name what the file is instead. Null for a
 * profile list (or one that does not say).
 */
function otherCollection(json: Obj): string | null {
  const tail = contextTail(json);
  if (/\/policies$/.test(tail)) return "policy links (a profile's policies)";
  if (/\/policyRules$/.test(tail)) return 'policy rules';
  if (/(^|\/)forwardingPolicies$/.test(tail)) return 'forwarding policies';
  const first = get(json, 'value');
  const item = Array.isArray(first) && isObj(first[0]) ? first[0] : null;
  const type = item ? odataName(get(item, '@odata.type')) : null;
  if (type === 'forwardingPolicyLink' || type === 'policyLink') {
    return "policy links (a profile's policies)";
  }
  if (type === 'forwardingPolicy') return 'forwarding policies';
  if (type !== null && Object.hasOwn(RULE_ODATA, type)) return 'policy rules';
  return null;
}

/**
 * `GET forwardingPolicies/{id}` (the edge serves it too) returns one forwardingPolicy, which
 * also carries a `trafficForwardingType`: name it rather than read it as a profile without
 * its policies. Null for anything else.
 */
function otherEntity(json: Obj): string | null {
  if (
    /(^|\/)forwardingPolicies(\/\$entity)?$/.test(contextTail(json)) ||
    odataName(get(json, '@odata.type')) === 'forwardingPolicy' ||
    (!Object.hasOwn(json, 'policies') && Object.hasOwn(json, 'policyRules'))
  ) {
    return 'one forwarding policy';
  }
  return null;
}

/** Private Access application segments allowed per application (gsa-facts section 2). */
export const MAX_SEGMENTS_PER_APP = 500;

/**
 * Private Access allows up to 500 application segments (docs/decisions/policy-private-segments.md):
 * each destination of a private rule is one segment, counted per application: the rule's
 * `appId`, else its policy (a Graph export carries no appId; each policy is one app). The
 * issue is at the first segment past the limit.
 */
function checkSegmentLimit(is: Issues, profiles: readonly ProfileSpec[]): void {
  const apps = new Map<string, { label: string; count: number; first: string | null }>();
  for (const profile of profiles) {
    if (profile.type !== 'private') continue;
    for (const policy of profile.policies) {
      for (const rule of policy.rules) {
        const key = rule.appId !== undefined ? `app:${rule.appId}` : `policy:${policy.id}`;
        let app = apps.get(key);
        if (!app) {
          const label =
            rule.appId !== undefined
              ? `application ${rule.appId} ("${policy.name}")`
              : `application "${policy.name}" (policy ${policy.id}, no appId)`;
          app = { label, count: 0, first: null };
          apps.set(key, app);
        }
        for (let i = 0; i < rule.destinations.length; i++) {
          app.count++;
          if (app.count === MAX_SEGMENTS_PER_APP + 1) app.first = `${rule.path}.destinations[${i}]`;
        }
      }
    }
  }
  for (const app of apps.values()) {
    if (app.first === null) continue;
    is.add(
      app.first,
      `${app.label} has ${app.count} segments; Private Access allows up to ${MAX_SEGMENTS_PER_APP} per application (this is segment ${MAX_SEGMENTS_PER_APP + 1})`,
    );
  }
}

/**
 * Validate a forwarding-profile document and produce the normalized TenantSpec.
 * Accepts `{ tenantId, name, forwardingProfiles: [...] }`, a Graph list `{ value: [...] }`,
 * or one profile entity (GET forwardingProfiles/{id}, paths from the root).
 * Throws one ConfigError listing every problem; never anything else.
 */
export function loadTenant(json: unknown, opts: LoadTenantOptions = {}): TenantSpec {
  const is = new Issues();
  const ctx: Ctx = {
    is,
    ruleIds: new Seen(),
    policyIds: new Seen(),
    linkIds: new Seen(),
    profileIds: new Seen(),
  };
  /** A document of something else than profiles: one issue, what it is and what to export. */
  const notProfiles = (path: string, what: string) =>
    new ConfigError(
      [
        {
          path,
          message: `this is ${what}: export GET /networkAccess/forwardingProfiles?$expand=${EXPAND_ALL}`,
        },
      ],
      opts.file,
    );
  if (!isObj(json)) {
    throw new ConfigError(
      [
        {
          path: '',
          message: `expected an object with "forwardingProfiles" or "value", not ${show(json)}`,
        },
      ],
      opts.file,
    );
  }
  // The profiles and the JSON path of each: a tenant document's `forwardingProfiles`, a
  // Graph list's `value`, or one profile entity (GET forwardingProfiles/{id}) at the root.
  let items: Array<{ p: unknown; path: string }> = [];
  let tenantId: string | undefined;
  let name: string | undefined;
  if (Object.hasOwn(json, 'forwardingProfiles') || Object.hasOwn(json, 'value')) {
    const list = Object.hasOwn(json, 'forwardingProfiles');
    const base = list ? 'forwardingProfiles' : 'value';
    if (list) {
      tenantId = str(is, json, 'tenantId', '', true);
      name = str(is, json, 'name', '', true);
    } else {
      tenantId = opts.tenantId ?? DEFAULT_LIST_TENANT_ID;
      name = opts.name ?? 'Graph forwarding profiles';
    }
    checkNextLink(is, json, '', '');
    const other = list ? null : otherCollection(json);
    if (other !== null)
      throw notProfiles('value', `a list of ${other}, not of forwarding profiles`);
    const pv = get(json, base);
    if (!Array.isArray(pv)) is.add(base, `must be an array, not ${show(pv)}`);
    else items = pv.map((p, i) => ({ p, path: `${base}[${i}]` }));
  } else if (isProfileEntity(json)) {
    const other = otherEntity(json);
    if (other !== null) throw notProfiles('', `${other}, not a forwarding profile`);
    tenantId = opts.tenantId ?? DEFAULT_LIST_TENANT_ID;
    name = opts.name ?? 'Graph forwarding profile';
    items = [{ p: json, path: '' }];
  } else {
    throw new ConfigError(
      [
        {
          path: '',
          message:
            'expected "forwardingProfiles" (a tenant document), "value" (a Graph list) or one forwardingProfile (with its trafficForwardingType)',
        },
      ],
      opts.file,
    );
  }
  const profiles: ProfileSpec[] = [];
  const byType = new Map<ChannelName, string>();
  for (const { p, path } of items) {
    const spec = readProfile(ctx, p, path);
    if (!spec) continue;
    const prev = byType.get(spec.type);
    if (prev !== undefined) {
      is.add(
        join(path, 'trafficForwardingType'),
        `a second "${spec.type}" profile (the first is ${prev}); a tenant has one profile per type`,
      );
      continue;
    }
    byType.set(spec.type, path);
    profiles.push(spec);
  }
  checkSegmentLimit(is, profiles);
  if (is.list.length > 0 || tenantId === undefined || name === undefined) {
    throw new ConfigError(is.list, opts.file);
  }
  return { tenantId, name, profiles };
}

// ---------------------------------------------------------------------------------------
// Document operations for the mock edge
// ---------------------------------------------------------------------------------------

function profilesOf(doc: GraphDocument): GraphForwardingProfile[] {
  const d = doc as Partial<GraphTenantDocument> & Partial<GraphProfileList>;
  const list = d.forwardingProfiles ?? d.value;
  return Array.isArray(list) ? list : [];
}

/** `"1.0.0"` -> `"1.0.1"`, `"7"` -> `"8"`; anything else -> `"1"`. */
export function bumpVersion(v: unknown): string {
  if (typeof v !== 'string') return '1';
  const m = /^(.*?)(\d+)$/.exec(v);
  return m ? `${m[1]}${Number(m[2]) + 1}` : '1';
}

/**
 * PATCH `/networkAccess/forwardingProfiles/{profileId}/policies/{linkId}` `{"state": ...}`:
 * sets the link's state in place, bumps the link's and the profile's `version` and the
 * profile's `lastModifiedDateTime`. Returns false when the profile or link does not exist.
 * A state other than enabled/disabled is a ConfigError (path `state`).
 */
export function setPolicyLinkState(
  doc: GraphDocument,
  profileId: string,
  linkId: string,
  state: State,
  now: Date = new Date(),
): boolean {
  if (state !== 'enabled' && state !== 'disabled') {
    throw new ConfigError([
      { path: 'state', message: `${show(state)} is not one of enabled, disabled` },
    ]);
  }
  const profile = profilesOf(doc).find((p) => isObj(p) && p.id === profileId);
  if (!profile || !Array.isArray(profile.policies)) return false;
  const link = profile.policies.find((l) => isObj(l) && l.id === linkId);
  if (!link) return false;
  link.state = state;
  link.version = bumpVersion(link.version);
  profile.version = bumpVersion(profile.version);
  profile.lastModifiedDateTime = now.toISOString();
  return true;
}

export const GRAPH_BASE = 'https://graph.microsoft.com/beta';

/** The navigation properties of the control API's entities (Graph beta `networkaccess`). */
export const GRAPH_NAVIGATION: NavigationModel = {
  forwardingProfile: { policies: 'forwardingPolicyLink' },
  forwardingPolicyLink: { policy: 'forwardingPolicy' },
  forwardingPolicy: { policyRules: 'policyRule' },
  policyRule: {},
};

/** The `$expand` that returns everything in one request (links, policies, their rules). */
export const EXPAND_ALL = 'policies($expand=policy($expand=policyRules))';

/**
 * `$expand` (text, or an already parsed tree) for an entity of `entity` (default a
 * forwardingProfile): an ExpandTree, or a ConfigError with path `$expand`.
 */
export function parseGraphExpand(
  expand: string | ExpandTree | undefined,
  entity: keyof typeof GRAPH_NAVIGATION = 'forwardingProfile',
): ExpandTree {
  return typeof expand === 'object' ? expand : parseExpand(expand, GRAPH_NAVIGATION, entity);
}

/** A copy of `policy` as Graph returns it for `tree`: `policyRules` only when expanded. */
function shapePolicy(policy: GraphForwardingPolicy, tree: ExpandTree): GraphForwardingPolicy {
  const copy = structuredClone(policy);
  if (tree.policyRules) copy.policyRules = copy.policyRules ?? [];
  else delete copy.policyRules;
  return copy;
}

/**
 * The Graph GET `/networkAccess/forwardingProfiles[?$expand=...]` response for `doc`, as a
 * fresh copy, carrying only the navigation properties `$expand` asks for: none gives the
 * profiles without `policies`; `policies` the links without `policy`;
 * `policies($expand=policy)` the links with their policy, without its `policyRules`;
 * `policies($expand=policy($expand=policyRules))` everything (EXPAND_ALL). `*` expands
 * one level. An unsupported `$expand` is a ConfigError (path `$expand`); the edge answers 400.
 */
export function expandProfiles(
  doc: GraphDocument,
  expand?: string | ExpandTree,
): { '@odata.context': string; value: GraphForwardingProfile[] } {
  const tree = parseGraphExpand(expand);
  const links = tree.policies;
  const value = profilesOf(doc).map((p) => {
    const copy = structuredClone(p);
    if (!links) delete copy.policies;
    else if (Array.isArray(copy.policies)) {
      for (const l of copy.policies) {
        if (!links.policy) delete l.policy;
        else if (l.policy) l.policy = shapePolicy(l.policy, links.policy);
      }
    }
    return copy;
  });
  return {
    '@odata.context': `${GRAPH_BASE}/$metadata#networkAccess/forwardingProfiles${expandContext(tree)}`,
    value,
  };
}

/**
 * The Graph GET `/networkAccess/forwardingPolicies/{id}[?$expand=policyRules]` entity for
 * `policy`, as a fresh copy: `policyRules` only with `$expand=policyRules` (or `*`).
 */
export function expandPolicy(
  policy: GraphForwardingPolicy,
  expand?: string | ExpandTree,
): GraphForwardingPolicy & { '@odata.context': string } {
  const tree = parseGraphExpand(expand, 'forwardingPolicy');
  return {
    '@odata.context': `${GRAPH_BASE}/$metadata#networkAccess/forwardingPolicies${expandContext(tree)}/$entity`,
    ...shapePolicy(policy, tree),
  };
}
