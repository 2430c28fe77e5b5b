/**
 * Platform behaviour as data (data/platforms/*.json): which QUIC is tunneled, what happens to
 * the rest, whether IPv6 is acquired, whose managed client keys are read (`clientConfigKeys`:
 * ios, the default, or android). iOS is the default, as in the seed document.
 *
 * Contract: `loadPlatform` returns a valid PlatformSpec or throws a ConfigError naming the
 * path of each bad item; it never throws anything else.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { parseConfigText } from '../util/config-text.js';
import { dataPath } from '../util/package.js';
import { show } from './graph.js';
import {
  type ChannelName,
  KEY_SETS,
  type KeySet,
  type M365Group,
  type PlatformSpec,
} from './model.js';

export const DEFAULT_PLATFORM = 'ios';

const CHANNELS: readonly ChannelName[] = ['m365', 'private', 'internet'];
const GROUPS: readonly M365Group[] = ['exchange', 'sharepoint', 'common', 'teams', 'other'];
const TOP_KEYS = [
  'name',
  'description',
  'unconfirmed',
  'acquireIPv6',
  'clientConfigKeys',
  'quic',
  'dns',
];
const QUIC_KEYS = ['ports', 'tunnel', 'otherwise', 'scope'];

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const get = (o: Obj, k: string): unknown => (Object.hasOwn(o, k) ? o[k] : undefined);

/** The names of the built-in platform files (ios, windows, macos, android, ...). */
export function listPlatforms(): string[] {
  return readdirSync(dataPath('platforms'))
    .filter((f) => f.endsWith('.json'))
    .map((f) => basename(f, '.json'))
    .sort();
}

/** Validate a platform document. `file` is named in the error. */
export function parsePlatform(json: unknown, file?: string): PlatformSpec {
  const issues: ConfigIssue[] = [];
  const add = (path: string, message: string) => issues.push({ path, message });
  if (!isObj(json))
    throw new ConfigError([{ path: '', message: `must be an object, not ${show(json)}` }], file);
  for (const k of Object.keys(json))
    if (!TOP_KEYS.includes(k)) add(k, `unknown key (known: ${TOP_KEYS.join(', ')})`);
  const name = get(json, 'name');
  if (typeof name !== 'string' || name.trim() === '')
    add('name', `must be a non-empty string, not ${show(name)}`);
  const desc = get(json, 'description');
  if (desc !== undefined && typeof desc !== 'string')
    add('description', `must be a string, not ${show(desc)}`);
  const unc = get(json, 'unconfirmed');
  if (unc !== undefined && !(Array.isArray(unc) && unc.every((u) => typeof u === 'string'))) {
    add('unconfirmed', `must be an array of strings, not ${show(unc)}`);
  }
  const v6 = get(json, 'acquireIPv6');
  if (typeof v6 !== 'boolean') add('acquireIPv6', `must be true or false, not ${show(v6)}`);
  const keys = get(json, 'clientConfigKeys');
  if (keys !== undefined && !(KEY_SETS as readonly unknown[]).includes(keys)) {
    add('clientConfigKeys', `${show(keys)} is not one of ${KEY_SETS.join(', ')}`);
  }

  const quic = get(json, 'quic');
  const ports: number[] = [];
  const tunnel: PlatformSpec['quic']['tunnel'] = [];
  let otherwise: unknown;
  let scope: unknown;
  if (!isObj(quic)) add('quic', `must be an object, not ${show(quic)}`);
  else {
    for (const k of Object.keys(quic)) {
      if (!QUIC_KEYS.includes(k)) add(`quic.${k}`, `unknown key (known: ${QUIC_KEYS.join(', ')})`);
    }
    const pv = get(quic, 'ports');
    if (!Array.isArray(pv)) add('quic.ports', `must be an array of port numbers, not ${show(pv)}`);
    else {
      pv.forEach((p, i) => {
        if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > 65535) {
          add(`quic.ports[${i}]`, `${show(p)} is not a port (0-65535)`);
        } else ports.push(p);
      });
    }
    const tv = get(quic, 'tunnel');
    if (!Array.isArray(tv)) add('quic.tunnel', `must be an array, not ${show(tv)}`);
    else {
      for (const [i, e] of tv.entries()) {
        const path = `quic.tunnel[${i}]`;
        if (!isObj(e)) {
          add(path, `must be an object like {"profile":"m365"}, not ${show(e)}`);
          continue;
        }
        for (const k of Object.keys(e)) {
          if (k !== 'profile' && k !== 'group')
            add(`${path}.${k}`, 'unknown key (known: profile, group)');
        }
        const profile = get(e, 'profile');
        const group = get(e, 'group');
        if (typeof profile !== 'string' || !(CHANNELS as readonly string[]).includes(profile)) {
          add(`${path}.profile`, `${show(profile)} is not one of ${CHANNELS.join(', ')}`);
        } else if (group === undefined) {
          tunnel.push({ profile: profile as ChannelName });
        } else if (profile !== 'm365') {
          add(`${path}.group`, 'only the m365 profile has policy groups');
        } else if (typeof group !== 'string' || !(GROUPS as readonly string[]).includes(group)) {
          add(`${path}.group`, `${show(group)} is not one of ${GROUPS.join(', ')}`);
        } else {
          tunnel.push({ profile: 'm365', group: group as M365Group });
        }
      }
    }
    otherwise = get(quic, 'otherwise');
    if (otherwise !== 'drop' && otherwise !== 'bypass') {
      add('quic.otherwise', `${show(otherwise)} is not one of drop, bypass`);
    }
    scope = get(quic, 'scope');
    if (scope !== 'all' && scope !== 'acquired')
      add('quic.scope', `${show(scope)} is not one of all, acquired`);
  }
  const dns = get(json, 'dns');
  let tcpDns: 'acquire' | 'upstream' | undefined;
  if (dns !== undefined) {
    if (!isObj(dns)) add('dns', `must be an object like {"tcp":"upstream"}, not ${show(dns)}`);
    else {
      for (const k of Object.keys(dns))
        if (k !== 'tcp') add(`dns.${k}`, 'unknown key (known: tcp)');
      const tcp = get(dns, 'tcp');
      if (tcp !== 'acquire' && tcp !== 'upstream') {
        add('dns.tcp', `${show(tcp)} is not one of acquire, upstream`);
      } else tcpDns = tcp;
    }
  }
  if (issues.length > 0) throw new ConfigError(issues, file);
  return {
    name: name as string,
    ...(tcpDns !== undefined ? { dns: { tcp: tcpDns } } : {}),
    acquireIPv6: v6 as boolean,
    ...(keys !== undefined ? { clientConfigKeys: keys as KeySet } : {}),
    quic: {
      ports,
      tunnel,
      otherwise: otherwise as 'drop' | 'bypass',
      scope: scope as 'all' | 'acquired',
    },
  };
}

/** Whether a `--platform` value names a file (a path, or a .json/.yaml name), not a built-in platform. */
export function isPlatformFile(nameOrFile: string): boolean {
  return /[/\\]/.test(nameOrFile) || /\.(json|ya?ml)$/i.test(nameOrFile);
}

/** Why `nameOrFile` is neither a file nor a built-in platform's name, or null. */
export function unknownPlatform(nameOrFile: string): string | null {
  if (isPlatformFile(nameOrFile)) return null;
  if (
    /^[a-z0-9_-]+$/i.test(nameOrFile) &&
    existsSync(dataPath('platforms', `${nameOrFile.toLowerCase()}.json`))
  ) {
    return null;
  }
  return `unknown platform ${show(nameOrFile)} (--platform, or the config key platform: built in are ${listPlatforms().join(', ')}; or give a .json/.yaml file)`;
}

/**
 * A built-in platform by name (`ios`, `windows`, `macos`, `android`) or a JSON/YAML file
 * path. Default: iOS.
 */

export function loadPlatform(nameOrFile: string = DEFAULT_PLATFORM): PlatformSpec {
  const looksLikeFile = isPlatformFile(nameOrFile);
  let file: string;
  if (looksLikeFile) file = nameOrFile;
  else {
    const unknown = unknownPlatform(nameOrFile);
    if (unknown !== null) throw new ConfigError([{ path: '', message: unknown }]);
    file = dataPath('platforms', `${nameOrFile.toLowerCase()}.json`);
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([{ path: '', message: `cannot read: ${(e as Error).message}` }], file);
  }
  return parsePlatform(parseConfigText(text, file), file);
}
