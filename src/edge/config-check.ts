/**
 * The `gsa-emu edge --config` file (JSON or YAML, docs/edge.md): its keys are a subset of
 * `EdgeOptions`, checked here before the edge starts, because startEdge takes a TypeScript
 * caller's word for types and a file's values can be anything. YAML 1.2 reads `no`, `off`,
 * `yes`, `on` as strings, which the egress would take as truthy: a config written to keep
 * traffic on the machine would turn the system resolver and direct-IP egress on.
 *
 * Contract: `checkEdgeConfig` returns the file's options unchanged when they are all valid,
 * else throws one ConfigError (with the file name) listing every problem by its key path
 * (`egress.systemResolver`, `filtering.blockedFqdns[2]`, `hostsMap["x y"]`): wrong types,
 * unknown keys (with the known ones), and the values the edge itself would refuse (hosts
 * map entries, name patterns, categories, channels, the tenant id).
 */
import { ConfigError, type ConfigIssue } from '../errors.js';
import { CHANNELS } from '../policy/model.js';
import { HostsMap } from '../util/hosts-map.js';
import { unknownKeyMessage } from '../util/key-guess.js';
import { checkNamePattern, isHostName, normalizeName } from '../util/names.js';
import { DEVICE_CERTIFICATE_MODES } from './device-ca.js';
import { type FilteringConfig, WebFilter } from './filter.js';
import { type EdgeOptions, TENANT_ID_RE } from './server.js';

/** What an edge config file may set. */
export type EdgeFileConfig = Pick<
  EdgeOptions,
  | 'hostsMap'
  | 'connectorHosts'
  | 'connectorSearch'
  | 'filtering'
  | 'egress'
  | 'tenantId'
  | 'tenantName'
  | 'deviceCertificates'
>;

export const EDGE_CONFIG_KEYS: readonly (keyof EdgeFileConfig)[] = [
  'hostsMap',
  'connectorHosts',
  'connectorSearch',
  'filtering',
  'egress',
  'deviceCertificates',
  'tenantId',
  'tenantName',
];

const FILTERING_KEYS: readonly (keyof FilteringConfig)[] = [
  'channels',
  'blockedFqdns',
  'blockedCategories',
  'categories',
  'policyId',
  'policyName',
];

const EGRESS_KEYS = ['systemResolver', 'directIp', 'connectorDirectIp'] as const;

/** YAML 1.1 booleans that YAML 1.2 (the `yaml` package) reads as strings. */
const YAML11_BOOLEANS = /^(?:y|yes|n|no|on|off)$/i;

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `v` for a message: JSON when it has one (`"no"`, `5`, `[]`), else its type. */
function show(v: unknown): string {
  if (v === undefined) return 'undefined';
  try {
    const s = JSON.stringify(v);
    if (s !== undefined) return s.length > 60 ? `${s.slice(0, 57)}...` : s;
  } catch {
    // a cycle cannot come from JSON or YAML text; fall through
  }
  return typeof v;
}

/** `base.key`, or `base["key"]` when the key is not a plain identifier. */
function child(base: string, key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key)
    ? `${base ? `${base}.` : ''}${key}`
    : `${base}[${JSON.stringify(key)}]`;
}

function unknownKeys(v: Obj, base: string, known: readonly string[], issues: ConfigIssue[]) {
  for (const k of Object.keys(v)) {
    if (!known.includes(k)) {
      issues.push({ path: child(base, k), message: unknownKeyMessage(k, known) });
    }
  }
}

/** The issues of a ConfigError thrown by `fn` (the edge's own validation), or rethrows. */
function issuesOf(fn: () => unknown): ConfigIssue[] {
  try {
    fn();
    return [];
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
}

/** A switch: true or false, with a hint for YAML's yes/no and for a quoted "true". */
export function checkBoolean(v: unknown, path: string, issues: ConfigIssue[]): void {
  if (typeof v === 'boolean') return;
  let hint = '';
  if (typeof v === 'string' && YAML11_BOOLEANS.test(v.trim())) {
    hint = ' (YAML reads yes/no/on/off as strings: write true or false)';
  } else if (typeof v === 'string' && /^(?:true|false)$/i.test(v.trim())) {
    hint = ' (without quotes)';
  }
  issues.push({ path, message: `must be true or false, not ${show(v)}${hint}` });
}

function checkNonEmptyString(v: unknown, path: string, issues: ConfigIssue[]): boolean {
  if (typeof v === 'string' && v.trim() !== '') return true;
  issues.push({ path, message: `must be a non-empty string, not ${show(v)}` });
  return false;
}

/**
 * The string entries of a list, with their indexes; null when `v` is not a list. Entries
 * of another type are pushed as problems.
 */
function stringEntries(
  v: unknown,
  path: string,
  what: string,
  issues: ConfigIssue[],
): Array<[number, string]> | null {
  if (!Array.isArray(v)) {
    issues.push({ path, message: `must be a list of ${what}s, not ${show(v)}` });
    return null;
  }
  const out: Array<[number, string]> = [];
  v.forEach((e, i) => {
    if (typeof e === 'string') out.push([i, e]);
    else
      issues.push({ path: `${path}[${i}]`, message: `must be a ${what} string, not ${show(e)}` });
  });
  return out;
}

function checkHosts(v: unknown, key: 'hostsMap' | 'connectorHosts', issues: ConfigIssue[]) {
  if (!isObject(v)) {
    issues.push({
      path: key,
      message: `must be an object of "name[:port]": "ip[:port]", not ${show(v)}`,
    });
    return;
  }
  issues.push(...issuesOf(() => new HostsMap(v as Record<string, string>, key)));
}

function checkFiltering(v: unknown, issues: ConfigIssue[]): void {
  const base = 'filtering';
  if (!isObject(v)) {
    issues.push({ path: base, message: `must be an object, not ${show(v)}` });
    return;
  }
  unknownKeys(v, base, FILTERING_KEYS, issues);
  /** The parts WebFilter itself checks, once their types are right. */
  const probe: FilteringConfig = { categories: {} };
  if (v.channels !== undefined) {
    const path = `${base}.channels`;
    for (const [i, c] of stringEntries(v.channels, path, 'channel name', issues) ?? []) {
      if (!(CHANNELS as readonly string[]).includes(c)) {
        issues.push({
          path: `${path}[${i}]`,
          message: `unknown channel "${c}" (known: ${CHANNELS.join(', ')})`,
        });
      }
    }
  }
  if (v.blockedFqdns !== undefined) {
    const path = `${base}.blockedFqdns`;
    for (const [i, p] of stringEntries(v.blockedFqdns, path, 'host name pattern', issues) ?? []) {
      const bad = checkNamePattern(p);
      if (bad) issues.push({ path: `${path}[${i}]`, message: bad });
    }
  }
  if (v.blockedCategories !== undefined) {
    // WebFilter names each entry that is not a category name, whatever its type.
    if (Array.isArray(v.blockedCategories)) probe.blockedCategories = v.blockedCategories;
    else {
      issues.push({
        path: `${base}.blockedCategories`,
        message: `must be a list of category names, not ${show(v.blockedCategories)}`,
      });
    }
  }
  if (v.categories !== undefined) {
    if (isObject(v.categories)) probe.categories = v.categories as Record<string, string>;
    else {
      issues.push({
        path: `${base}.categories`,
        message: `must be an object of "name pattern": "category", not ${show(v.categories)}`,
      });
    }
  }
  for (const k of ['policyId', 'policyName'] as const) {
    if (v[k] !== undefined) checkNonEmptyString(v[k], `${base}.${k}`, issues);
  }
  issues.push(...issuesOf(() => new WebFilter(probe)));
}

function checkEgress(v: unknown, issues: ConfigIssue[]): void {
  if (!isObject(v)) {
    issues.push({
      path: 'egress',
      message: `must be an object of ${EGRESS_KEYS.join(', ')} (true or false), not ${show(v)}`,
    });
    return;
  }
  unknownKeys(v, 'egress', EGRESS_KEYS, issues);
  for (const k of EGRESS_KEYS) {
    if (v[k] !== undefined) checkBoolean(v[k], `egress.${k}`, issues);
  }
}

/** `connectorSearch`: DNS suffixes (host names, no wildcards). */
function checkSearch(v: unknown, issues: ConfigIssue[]): void {
  if (!Array.isArray(v)) {
    issues.push({
      path: 'connectorSearch',
      message: `must be a list of DNS suffixes (["corp.contoso.test"]), not ${show(v)}`,
    });
    return;
  }
  v.forEach((s, i) => {
    if (typeof s !== 'string' || !isHostName(normalizeName(s))) {
      issues.push({
        path: `connectorSearch[${i}]`,
        message: `${show(s)} is not a DNS suffix (a name such as corp.contoso.test)`,
      });
    }
  });
}

/**
 * The parsed text of an edge config file, checked (see the contract above). `file` names
 * the file in the ConfigError.
 */
export function checkEdgeConfig(
  v: unknown,
  file?: string,
  /** Keys the command reads itself (`gsa-emu edge`'s `logMaxSize`): let through, listed. */
  commandKeys: readonly string[] = [],
): EdgeFileConfig {
  if (!isObject(v)) {
    throw new ConfigError([{ path: '', message: `must be an object, not ${show(v)}` }], file);
  }
  const issues: ConfigIssue[] = [];
  unknownKeys(v, '', [...EDGE_CONFIG_KEYS, ...commandKeys], issues);
  if (v.hostsMap !== undefined) checkHosts(v.hostsMap, 'hostsMap', issues);
  if (v.connectorHosts !== undefined) checkHosts(v.connectorHosts, 'connectorHosts', issues);
  if (v.connectorSearch !== undefined) checkSearch(v.connectorSearch, issues);
  if (v.filtering !== undefined) checkFiltering(v.filtering, issues);
  if (v.egress !== undefined) checkEgress(v.egress, issues);
  if (v.tenantId !== undefined) {
    if (typeof v.tenantId !== 'string' || !TENANT_ID_RE.test(v.tenantId)) {
      issues.push({
        path: 'tenantId',
        message: `${show(v.tenantId)} is not a tenant id (a GUID)`,
      });
    }
  }
  if (v.tenantName !== undefined) checkNonEmptyString(v.tenantName, 'tenantName', issues);
  if (
    v.deviceCertificates !== undefined &&
    !(DEVICE_CERTIFICATE_MODES as readonly unknown[]).includes(v.deviceCertificates)
  ) {
    issues.push({
      path: 'deviceCertificates',
      message: `must be one of ${DEVICE_CERTIFICATE_MODES.join(', ')}, not ${show(v.deviceCertificates)}`,
    });
  }
  if (issues.length > 0) throw new ConfigError(issues, file);
  return v as EdgeFileConfig;
}

/**
 * `err` with `file` as its file when it is a ConfigError about the config file's own keys
 * (startEdge names no file), else `err` unchanged.
 */
export function withConfigFile(err: unknown, cfg: EdgeFileConfig, file: string): unknown {
  if (!(err instanceof ConfigError) || err.file !== undefined || err.issues.length === 0) {
    return err;
  }
  const given = Object.keys(cfg);
  const ours = err.issues.every((i) => {
    const root = /^[A-Za-z_$][\w$]*/.exec(i.path)?.[0];
    return root !== undefined && given.includes(root);
  });
  return ours ? new ConfigError(err.issues, file) : err;
}
