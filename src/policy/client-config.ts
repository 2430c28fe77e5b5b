/**
 * The managed client configuration of the GSA client (iOS: the Defender for Endpoint custom
 * VPN profile's key-value pairs, as in the seed document) and the tiles and toggles it
 * produces. The exact table is in docs/client-config.md.
 *
 * Keys: EnableGSA, EnableGSAPrivateChannel, EnableGSAInternetChannel (no value, 0-3),
 * SilentOnboard, EnableVPNToggleInApp, BlockUsersFromDisablingAutomaticVPN (booleans). On a
 * platform whose `clientConfigKeys` is 'android', `Global Secure Access` and
 * `GlobalSecureAccessPrivateChannel` take the place of the first two (same levels); each
 * platform's keys are ignored on the other, with a warning.
 * Sources: a JSON or YAML key-value object (or a list of `{name, value}` pairs), or an
 * Apple `.mobileconfig` whose VPN payload carries them in `VendorConfig` (XML or binary; a
 * signed or encrypted profile is refused with how to unwrap it), or a managed app
 * configuration plist (the keys at the top level; Intune's bare `<dict>` XML too).
 *
 * Contract: parsing returns `{ config, warnings }`: unknown keys and VPN payload
 * differences are warnings (ConfigIssues); bad values throw one ConfigError listing every
 * problem. Tiles: a locked or hidden toggle throws ToggleRefusedError; state() never throws.
 *
 * @example
 * const platform = loadPlatform('ios');
 * const { config } = loadClientConfigFile('gsa.mobileconfig', { platform });
 * const tiles = createClientTiles(config);
 * tiles.toggle('internet', true);
 * classifierState = tiles.toClientState(platform);
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parseBinary as parsePlistBinary, parse as parsePlistXml } from 'plist';
import { ConfigError, type ConfigIssue, ToggleRefusedError, UsageError } from '../errors.js';
import { cliCommand } from '../util/cli-command.js';
import { parseConfigText } from '../util/config-text.js';
import { shellWord } from '../util/shell-word.js';
import {
  ALL_DESKTOP_KEYS,
  DESKTOP_KEYS,
  type DesktopKey,
  type DesktopSettings,
  desktopKeyIgnored,
  desktopPlatformOf,
  desktopSet,
  PAUSE_MS,
} from './desktop-settings.js';
import { show } from './graph.js';
import {
  type ChannelName,
  type ClientState,
  KEY_SETS,
  type KeySet,
  type PlatformSpec,
} from './model.js';
import { hiveOf, parseRegFile } from './reg-file.js';

/** An EnableGSA* level. */
export type Level = 0 | 1 | 2 | 3;
/** How a missing EnableGSA* value is read: the seed document's table, or newer Microsoft docs. */
export type NoValueMeans = 'seed' | 'newer';

/** The VPN payload a .mobileconfig carried (for diagnostics). */
export interface VpnPayloadInfo {
  /** `UserDefinedName` (Intune: Connection Name). */
  connectionName?: string;
  /** `VPN.RemoteAddress`; the seed says 127.0.0.1. */
  serverAddress?: string;
  /** `VPNSubType` (Intune: VPN identifier); the seed says com.microsoft.scmx. */
  identifier?: string;
  /** `VPN.OnDemandEnabled`. */
  onDemandEnabled?: boolean;
}

export interface ClientConfig {
  /** Configured levels; undefined = no value. On Android (`keySet` 'android') enableGSA comes
   *  from `Global Secure Access` and enableGSAPrivateChannel from
   *  `GlobalSecureAccessPrivateChannel`. */
  enableGSA?: Level;
  enableGSAPrivateChannel?: Level;
  enableGSAInternetChannel?: Level;
  /** Whose keys the levels were read from (named in tiles and messages); absent = iOS. */
  keySet?: KeySet;
  /** Onboard without user interaction (default false: the user onboards in the app). */
  silentOnboard: boolean;
  /** The user may switch the VPN from inside the app (default false). */
  enableVPNToggleInApp: boolean;
  /** Intune "Block users from disabling automatic VPN" (iOS `OnDemandUserOverrideDisabled`). */
  blockUsersFromDisablingAutomaticVPN: boolean;
  /** How a missing level is read (default 'seed'). */
  noValueMeans?: NoValueMeans;
  /** Set when the configuration came from a .mobileconfig. */
  vpn?: VpnPayloadInfo;
  /** The Windows registry values or macOS settings read (`--platform windows` / `macos`):
   *  desktop-settings.ts. Absent on other platforms. */
  desktop?: DesktopSettings;
}

export interface LoadedClientConfig {
  config: ClientConfig;
  /** Unknown keys, VPN payload values that differ from the seed's. */
  warnings: ConfigIssue[];
}

export interface ClientConfigOptions {
  /** Named in errors. */
  file?: string;
  noValueMeans?: NoValueMeans;
  /** The platform the client runs on: which keys it reads (its `clientConfigKeys`, default
   *  iOS's), named in warnings. Default: iOS. */
  platform?: Pick<PlatformSpec, 'name' | 'clientConfigKeys'>;
}

export const LEVEL_KEYS = [
  'EnableGSA',
  'EnableGSAPrivateChannel',
  'EnableGSAInternetChannel',
] as const;
export const BOOLEAN_KEYS = [
  'SilentOnboard',
  'EnableVPNToggleInApp',
  'BlockUsersFromDisablingAutomaticVPN',
] as const;
/** The keys the iOS client reads (`clientConfigKeys(keySet)` for another platform's). */
export const CLIENT_CONFIG_KEYS: readonly string[] = [...LEVEL_KEYS, ...BOOLEAN_KEYS];

/** The key that drives each channel's tile or toggle (iOS). */
export const CHANNEL_KEY: Record<ChannelName, (typeof LEVEL_KEYS)[number]> = {
  m365: 'EnableGSA',
  private: 'EnableGSAPrivateChannel',
  internet: 'EnableGSAInternetChannel',
};

/**
 * The key that drives each channel's tile or toggle, per key set. No Android key for
 * Internet Access is documented: gsa-emu reads EnableGSAInternetChannel there too
 * (data/platforms/android.json lists it as unconfirmed).
 */
export const CHANNEL_KEYS: Record<KeySet, Record<ChannelName, string>> = {
  ios: CHANNEL_KEY,
  android: {
    m365: 'Global Secure Access',
    private: 'GlobalSecureAccessPrivateChannel',
    internet: 'EnableGSAInternetChannel',
  },
};

const PLATFORM_OF: Record<KeySet, string> = { ios: 'iOS', android: 'Android' };

/** The keys a client reading `keySet` knows: its level keys, then the booleans. */
export function clientConfigKeys(keySet: KeySet = 'ios'): string[] {
  return [...new Set(Object.values(CHANNEL_KEYS[keySet])), ...BOOLEAN_KEYS];
}

/** A key as messages show it: quoted when it has a space (`"Global Secure Access"`). */
const keyText = (k: string): string => (/\s/.test(k) ? `"${k}"` : k);

/** The per-app VPN payload (Apple's AppLayerVPN): the VPN dictionary of com.apple.vpn.managed, for associated apps only. */
const PER_APP_VPN = 'com.apple.vpn.managed.applayer';
/** Payload types that carry a VPN configuration: the seed's device-wide one, and per-app. */
const VPN_PAYLOAD_TYPES: ReadonlySet<string> = new Set(['com.apple.vpn.managed', PER_APP_VPN]);

/** The Custom Settings payload: preference domains, each `{Forced: [{mcx_preference_settings}]}`. */
const MCX_PAYLOAD_TYPE = 'com.apple.ManagedClient.preferences';

/**
 * A preference domain's dictionary in a Custom Settings payload: the `mcx_preference_settings`
 * of each `Forced` entry (managed: the user cannot change them). `Set-Once` and `Often` are
 * defaults the user may change: warned about and not read.
 */
function mcxPairs(
  domain: unknown,
  base: string,
  issues: ConfigIssue[],
  warnings: ConfigIssue[],
): Array<{ key: string; value: unknown; path: string }> {
  if (!isObj(domain)) {
    issues.push({ path: base, message: `must be a dictionary with Forced, not ${show(domain)}` });
    return [];
  }
  for (const k of ['Set-Once', 'Often']) {
    if (get(domain, k) !== undefined) {
      warnings.push({
        path: join(base, k),
        message:
          'ignored: a default the user may change, not a managed setting (gsa-emu reads Forced)',
      });
    }
  }
  const forced = get(domain, 'Forced');
  if (!Array.isArray(forced)) {
    issues.push({
      path: join(base, 'Forced'),
      message: `must be an array of {mcx_preference_settings: {...}}, not ${show(forced)}`,
    });
    return [];
  }
  return forced.flatMap((e, j) => {
    const path = `${join(base, 'Forced')}[${j}]`;
    const settings = isObj(e) ? get(e, 'mcx_preference_settings') : undefined;
    if (!isObj(settings)) {
      issues.push({
        path: join(path, 'mcx_preference_settings'),
        message: `must be a dictionary of settings, not ${show(settings)}`,
      });
      return [];
    }
    return pairsOf(settings, join(path, 'mcx_preference_settings'), issues);
  });
}

/** The VPN payload values the seed document prescribes. */
export const SEED_VPN = { serverAddress: '127.0.0.1', identifier: 'com.microsoft.scmx' } as const;

/** The dictionaries of `PayloadContent` that `match`, with their index (for paths). */
function payloadsWhere(
  content: unknown[],
  match: (p: Obj) => boolean,
): Array<{ p: Obj; i: number }> {
  return content.flatMap((p, i) => (isObj(p) && match(p) ? [{ p, i }] : []));
}

/** Every key gsa-emu reads on some platform: the level and boolean keys, the desktop settings. */
const READABLE_KEYS: ReadonlySet<string> = new Set([
  ...KEY_SETS.flatMap((s) => clientConfigKeys(s)),
  ...ALL_DESKTOP_KEYS,
]);

/** The macOS client's preference domain: a profile payload's PayloadType (gsa-facts.md section 5). */
export const MACOS_DOMAIN = 'com.microsoft.globalsecureaccess';

/** What gsa-emu uses when no configuration is given: every tile visible and on, user may toggle. */
export function defaultClientConfig(): ClientConfig {
  return {
    enableGSA: 2,
    enableGSAPrivateChannel: 2,
    enableGSAInternetChannel: 2,
    silentOnboard: true,
    enableVPNToggleInApp: true,
    blockUsersFromDisablingAutomaticVPN: false,
  };
}

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

/** A level: 0-3 as a number or numeric string; null, '' and undefined are "no value". */
export function parseLevel(v: unknown): Level | undefined | string {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') {
    const s = v.trim();
    if (s === '') return undefined;
    if (/^[0-3]$/.test(s)) return Number(s) as Level;
  } else if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 3) {
    return v as Level;
  }
  return `${show(v)} is not a level (no value, 0, 1, 2 or 3)`;
}

/** true/1/yes or false/0/no, in any case (strings), or a boolean or 0/1; missing = undefined. */
export function parseBool(v: unknown): boolean | undefined | string {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (v === 1 || v === 0) return v === 1;
  if (typeof v === 'string') {
    const s = v.trim().toLowerCase();
    if (s === '') return undefined;
    if (s === 'true' || s === '1' || s === 'yes') return true;
    if (s === 'false' || s === '0' || s === 'no') return false;
  }
  return `${show(v)} is not a boolean (true, 1 or yes; false, 0 or no; in any case)`;
}

/** A key's spelling for "did you mean": lower case, no spaces. */
const fold = (k: string): string => k.toLowerCase().replace(/\s+/g, '');

/** The key set a platform reads (its `clientConfigKeys`; default iOS's). */
function keySetOf(platform: ClientConfigOptions['platform']): KeySet {
  return platform?.clientConfigKeys ?? 'ios';
}

/** Read key-value pairs (already collected with their paths) into a ClientConfig. */
function fromPairs(
  pairs: Array<{ key: string; value: unknown; path: string }>,
  opts: ClientConfigOptions,
  issues: ConfigIssue[],
  warnings: ConfigIssue[],
): ClientConfig {
  const keySet = keySetOf(opts.platform);
  const platformName = opts.platform?.name ?? 'ios';
  const own = CHANNEL_KEYS[keySet];
  const desktop = desktopPlatformOf(opts.platform?.name);
  const desktopKeys: readonly string[] = desktop ? DESKTOP_KEYS[desktop] : [];
  const known = [...clientConfigKeys(keySet), ...desktopKeys];
  const near = new Map(known.map((k) => [fold(k), k]));
  const cfg: ClientConfig = {
    silentOnboard: false,
    enableVPNToggleInApp: false,
    blockUsersFromDisablingAutomaticVPN: false,
  };
  if (keySet !== 'ios') cfg.keySet = keySet;
  if (desktop) cfg.desktop = { platform: desktop, set: [] };
  if (opts.noValueMeans) cfg.noValueMeans = opts.noValueMeans;
  const seen = new Map<string, string>();
  /** Another platform's level keys, warned about once every pair is read. */
  const foreign: Array<{ path: string; set: KeySet; channel: ChannelName }> = [];
  const channelOf = (set: KeySet, key: string): ChannelName | undefined =>
    (Object.keys(CHANNEL_KEYS[set]) as ChannelName[]).find((c) => CHANNEL_KEYS[set][c] === key);
  for (const { key, value, path } of pairs) {
    if (!known.includes(key)) {
      const other = KEY_SETS.find((s) => s !== keySet && channelOf(s, key) !== undefined);
      if (other) {
        foreign.push({ path, set: other, channel: channelOf(other, key)! });
        continue;
      }
      const desktopKey = ALL_DESKTOP_KEYS.includes(key as DesktopKey);
      const guess = near.get(fold(key));
      warnings.push({
        path,
        message: desktopKey
          ? desktopKeyIgnored(key as DesktopKey, platformName)
          : guess
            ? `unknown key, ignored (did you mean ${keyText(guess)}? keys are case-sensitive)`
            : `unknown key, ignored (known on platform ${platformName}: ${known.map(keyText).join(', ')})`,
      });
      continue;
    }
    const prev = seen.get(key);
    if (prev !== undefined) {
      issues.push({ path, message: `${keyText(key)} is given twice (also at ${prev})` });
      continue;
    }
    seen.set(key, path);
    const channel = channelOf(keySet, key);
    if (desktopKeys.includes(key)) {
      // A registry DWORD 0/1 or a plist boolean (parseBool takes both, and "true"/"1").
      const b = parseBool(value);
      if (typeof b === 'string') issues.push({ path, message: b });
      else if (b === true) cfg.desktop!.set.push(key as DesktopKey);
    } else if (channel !== undefined) {
      const lv = parseLevel(value);
      if (typeof lv === 'string') issues.push({ path, message: lv });
      else if (lv !== undefined) {
        if (channel === 'm365') cfg.enableGSA = lv;
        else if (channel === 'private') cfg.enableGSAPrivateChannel = lv;
        else cfg.enableGSAInternetChannel = lv;
      }
    } else {
      const b = parseBool(value);
      if (typeof b === 'string') issues.push({ path, message: b });
      else if (b !== undefined) {
        if (key === 'SilentOnboard') cfg.silentOnboard = b;
        else if (key === 'EnableVPNToggleInApp') cfg.enableVPNToggleInApp = b;
        else cfg.blockUsersFromDisablingAutomaticVPN = b;
      }
    }
  }
  for (const f of foreign) {
    const instead = own[f.channel];
    const at = seen.get(instead);
    const hint =
      keySet === 'ios'
        ? ` (gsa-emu reads the ${PLATFORM_OF[f.set]} keys with --platform ${f.set})`
        : '';
    warnings.push({
      path: f.path,
      message:
        `ignored: an ${PLATFORM_OF[f.set]} key, not read on platform ${platformName}, ` +
        (at !== undefined
          ? `which reads ${keyText(instead)} (given at ${at})`
          : `which reads ${keyText(instead)} instead`) +
        hint,
    });
  }
  // Windows and macOS are not configured by the iOS keys: a file of only their settings
  // leaves the rest as gsa-emu's default (every channel on, onboarded), not the seed's
  // no-value reading (Global Secure Access hidden, not onboarded).
  if (desktop && [...seen.keys()].every((k) => desktopKeys.includes(k))) {
    Object.assign(cfg, defaultClientConfig());
  }
  warnings.push(...effectWarnings(cfg, seen));
  return cfg;
}

/**
 * Keys that are valid but leave the client forwarding nothing, which the user is unlikely to
 * mean: no SilentOnboard (the client waits for onboarding), and channel levels under a
 * Global Secure Access tile that is off (newer Microsoft docs read a missing EnableGSA as 1,
 * the seed as 0: gsa-facts.md section 5).
 */
function effectWarnings(cfg: ClientConfig, seen: Map<string, string>): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  if (!cfg.silentOnboard) {
    out.push({
      path: seen.get('SilentOnboard') ?? 'SilentOnboard',
      // The state dir is not known here: `up` names its own in the onboard command it suggests.
      message: `not TRUE: the client starts not onboarded and forwards nothing until the user onboards (\`${cliCommand()} onboard\`, with \`up\`'s --state-dir if it has one); the seed sets SilentOnboard=True`,
    });
  }
  // Settings gsa-emu reads but has nothing to hide: no sign-out, no user Quit.
  const noAction: Array<[DesktopKey, string]> = [
    [
      'HideSignOutButton',
      'gsa-emu has no sign-out action (the user stays signed in with the token it was given), so hiding the Sign out button changes nothing here',
    ],
    [
      'HideQuitButton',
      `gsa-emu has no user Quit action, so hiding the Quit button changes nothing here (\`${cliCommand()} stop\` is for scripts and is not refused)`,
    ],
  ];
  for (const [key, why] of noAction) {
    if (desktopSet(cfg.desktop, key))
      out.push({ path: seen.get(key) ?? key, message: `read: ${why}` });
  }
  const keys = CHANNEL_KEYS[cfg.keySet ?? 'ios'];
  const priv = resolveTiles(cfg).private;
  if (
    desktopSet(cfg.desktop, 'IsPrivateAccessDisabledByUser') &&
    priv.defaultOn &&
    !priv.userCanToggle
  ) {
    out.push({
      path: seen.get('IsPrivateAccessDisabledByUser') ?? 'IsPrivateAccessDisabledByUser',
      message: `read, but changes nothing: ${priv.reason} (the lock wins over the user's earlier choice, so Private Access starts on)`,
    });
  }
  const gsa = resolveTiles(cfg).m365;
  if (!gsa.visible && !gsa.defaultOn) {
    for (const key of [keys.private, keys.internet]) {
      const path = seen.get(key);
      if (path === undefined) continue;
      out.push({
        path,
        message: `has no effect: Global Secure Access itself is off (${gsa.reason}); set ${keyText(keys.m365)} to 1, 2 or 3`,
      });
    }
  }
  return out;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const get = (o: Obj, k: string): unknown => (Object.hasOwn(o, k) ? o[k] : undefined);
const join = (base: string, key: string) =>
  /^[A-Za-z_][A-Za-z0-9_]*$/.test(key)
    ? base === ''
      ? key
      : `${base}.${key}`
    : `${base}[${JSON.stringify(key)}]`;

function pairsOf(json: unknown, base: string, issues: ConfigIssue[]) {
  const pairs: Array<{ key: string; value: unknown; path: string }> = [];
  if (isObj(json)) {
    for (const key of Object.keys(json))
      pairs.push({ key, value: json[key], path: join(base, key) });
  } else if (Array.isArray(json)) {
    // Intune / Graph form: [{ "name": "EnableGSA", "value": "2" }, ...] (or "key").
    json.forEach((e, i) => {
      const path = `${base}[${i}]`;
      const key = isObj(e) ? (get(e, 'name') ?? get(e, 'key')) : undefined;
      if (!isObj(e) || typeof key !== 'string') {
        issues.push({ path, message: `must be {"name": ..., "value": ...}, not ${show(e)}` });
        return;
      }
      pairs.push({ key, value: get(e, 'value'), path: `${path}.value` });
    });
  } else if (json !== undefined && json !== null) {
    issues.push({ path: base, message: `must be an object of key-value pairs, not ${show(json)}` });
  }
  return pairs;
}

/** A JSON/YAML value: an object of key-value pairs, or a list of `{name, value}` pairs. */
export function parseClientConfig(
  json: unknown,
  opts: ClientConfigOptions = {},
): LoadedClientConfig {
  const issues: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const pairs = pairsOf(json, '', issues);
  const config = fromPairs(pairs, opts, issues, warnings);
  if (issues.length > 0) throw new ConfigError(issues, opts.file);
  return { config, warnings };
}

/**
 * An Apple configuration profile (XML or binary plist). Uses the VPN payload
 * (`com.apple.vpn.managed`) whose `VPNSubType` is com.microsoft.scmx, else the first VPN
 * payload (with a warning). Keys come from its `VendorConfig` (or `VPN.VendorConfig`);
 * `VPN.OnDemandUserOverrideDisabled` = 1 means BlockUsersFromDisablingAutomaticVPN.
 */
export function parseMobileconfig(
  data: string | Uint8Array,
  opts: ClientConfigOptions = {},
): LoadedClientConfig {
  const fail = (path: string, message: string): never => {
    throw new ConfigError([{ path, message }], opts.file);
  };
  let root: unknown;
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
  const signed = signedProfileKind(bytes);
  if (signed) {
    const inFile = opts.file ? shellWord(opts.file) : '<file>';
    const outFile = opts.file ? shellWord(`${opts.file}.plist`) : '<file>.plist';
    fail(
      '',
      `this is a signed profile (CMS/PKCS#7 SignedData, ${signed}) with the plist inside: export the unsigned profile, or extract it with \`openssl smime -verify -noverify -inform ${signed} -in ${inFile} -out ${outFile}\` (or \`security cms -D -i ${inFile} -o ${outFile}\` on macOS) and give that`,
    );
  }
  if (bytes.subarray(0, 8).toString('latin1') === 'bplist00') {
    try {
      root = parsePlistBinary(bytes);
    } catch (e) {
      fail('', `not a valid binary plist: ${(e as Error).message}`);
    }
  } else {
    // UTF-16 with its byte order mark (Windows PowerShell 5's Out-File, Notepad's "Unicode").
    const utf16 =
      bytes[0] === 0xff && bytes[1] === 0xfe
        ? bytes.subarray(2)
        : bytes[0] === 0xfe && bytes[1] === 0xff
          ? Buffer.from(bytes.subarray(2, bytes.length & ~1)).swap16()
          : null;
    let text = (utf16 ? utf16.toString('utf16le') : bytes.toString('utf8')).replace(/^\uFEFF/, '');
    if (!text.trimStart().startsWith('<')) {
      fail(
        '',
        // A signed profile is recognised above: not hinted at here.
        /^\s*[{[]/.test(text)
          ? 'not a plist (it looks like JSON: JSON or YAML key-value pairs go in a .json or .yaml file)'
          : 'not a plist (neither XML nor a binary plist)',
      );
    }
    // Intune's app configuration policy "Enter XML data" is a bare <dict>, without <plist>
    // (a comment or a string in it may still mention <plist>).
    const bare = stripXmlProlog(text);
    if (/^<dict[\s>/]/.test(bare)) text = `<plist version="1.0">${bare}</plist>`;
    try {
      root = quietly(() => parsePlistXml(text));
    } catch (e) {
      fail('', `not a valid XML plist: ${(e as Error).message}`);
    }
  }
  if (!isObj(root)) return fail('', 'the plist root is not a dictionary');
  const content = get(root, 'PayloadContent');
  if (content === undefined && get(root, 'EncryptedPayloadContent') !== undefined) {
    return fail(
      'EncryptedPayloadContent',
      'the payloads are encrypted to the device: export the profile unencrypted from the MDM',
    );
  }
  // A configuration profile (PayloadType Configuration) keeps its keys in its payloads: one
  // without PayloadContent is a broken profile, not app configuration (a device would not
  // read keys at its top level).
  const isProfile = get(root, 'PayloadType') === 'Configuration';
  if (content === undefined && !isProfile) {
    const app = appConfigOf(root);
    if (app) return parseAppConfig(app, opts);
  }
  if (!Array.isArray(content)) {
    return fail(
      'PayloadContent',
      content !== undefined
        ? 'not an array of payloads'
        : isProfile
          ? 'missing: a configuration profile (PayloadType Configuration) holds its payloads there; keys at its top level are not read'
          : 'missing: not a configuration profile, and no client configuration keys at the top level (managed app configuration) either',
    );
  }
  const vpns = payloadsWhere(content, (p) =>
    VPN_PAYLOAD_TYPES.has(get(p, 'PayloadType') as string),
  );
  // The macOS client's settings as a profile payload (PayloadType = its preference domain):
  // its keys besides the Payload* ones.
  const gsaPayloads = payloadsWhere(content, (p) => get(p, 'PayloadType') === MACOS_DOMAIN);
  // The same domain inside the Custom Settings wrapper (an MDM's upload of a plist).
  const mcx = payloadsWhere(
    content,
    (p) =>
      get(p, 'PayloadType') === MCX_PAYLOAD_TYPE &&
      isObj(get(p, 'PayloadContent')) &&
      get(get(p, 'PayloadContent') as Obj, MACOS_DOMAIN) !== undefined,
  );
  const desktopPairs = (issues: ConfigIssue[], warnings: ConfigIssue[]) => [
    ...gsaPayloads.flatMap(({ p, i }) =>
      pairsOf(p, `PayloadContent[${i}]`, issues).filter(({ key }) => !key.startsWith('Payload')),
    ),
    ...mcx.flatMap(({ p, i }) =>
      mcxPairs(
        get(get(p, 'PayloadContent') as Obj, MACOS_DOMAIN),
        join(`PayloadContent[${i}].PayloadContent`, MACOS_DOMAIN),
        issues,
        warnings,
      ),
    ),
  ];
  if (vpns.length === 0 && gsaPayloads.length + mcx.length > 0) {
    const issues: ConfigIssue[] = [];
    const warnings: ConfigIssue[] = [];
    const config = fromPairs(desktopPairs(issues, warnings), opts, issues, warnings);
    if (issues.length > 0) throw new ConfigError(issues, opts.file);
    return { config, warnings };
  }
  if (vpns.length === 0) {
    return fail(
      'PayloadContent',
      `no VPN payload (PayloadType com.apple.vpn.managed, or com.apple.vpn.managed.applayer for a per-app VPN) and no ${MACOS_DOMAIN} payload (alone, or in a ${MCX_PAYLOAD_TYPE} payload)`,
    );
  }
  const warnings: ConfigIssue[] = [];
  // The seed's device-wide VPN first, then a per-app one; the seed's identifier first in each.
  const rank = ({ p }: { p: Obj }): number =>
    (get(p, 'PayloadType') === PER_APP_VPN ? 2 : 0) +
    (get(p, 'VPNSubType') === SEED_VPN.identifier ? 0 : 1);
  const chosen = vpns.reduce((best, v) => (rank(v) < rank(best) ? v : best));
  const base = `PayloadContent[${chosen.i}]`;
  const payload = chosen.p;
  if (get(payload, 'PayloadType') === PER_APP_VPN) {
    const uuid = get(payload, 'VPNUUID');
    warnings.push({
      path: `${base}.PayloadType`,
      message: `a per-app VPN (${PER_APP_VPN}${typeof uuid === 'string' ? `, VPNUUID ${uuid}` : ''}): on a device only the managed apps the MDM associates with it go through the VPN, where the seed's device-wide VPN (com.apple.vpn.managed) takes all traffic; gsa-emu captures whatever its proxies or TUN are given regardless`,
    });
  }
  const vpnDict = get(payload, 'VPN');
  const vpn = isObj(vpnDict) ? vpnDict : {};
  const info: VpnPayloadInfo = {};
  const name = get(payload, 'UserDefinedName');
  if (typeof name === 'string') info.connectionName = name;
  const sub = get(payload, 'VPNSubType');
  if (typeof sub === 'string') info.identifier = sub;
  if (sub !== SEED_VPN.identifier) {
    warnings.push({
      path: `${base}.VPNSubType`,
      message: `VPN identifier is ${show(sub)}, not ${SEED_VPN.identifier} (Defender for Endpoint)`,
    });
  }
  const addr = get(vpn, 'RemoteAddress');
  if (typeof addr === 'string') info.serverAddress = addr;
  if (addr !== SEED_VPN.serverAddress) {
    warnings.push({
      path: `${base}.VPN.RemoteAddress`,
      message: `VPN server address is ${show(addr)}, not ${SEED_VPN.serverAddress} (the client's self-looping VPN)`,
    });
  }
  const onDemand = parseBool(get(vpn, 'OnDemandEnabled'));
  if (typeof onDemand === 'boolean') info.onDemandEnabled = onDemand;
  if (onDemand !== true) {
    warnings.push({
      path: `${base}.VPN.OnDemandEnabled`,
      message: 'on-demand VPN is not enabled (the seed sets "Connect VPN" for all domains)',
    });
  }
  if (onDemand === true && !connectsForAllDomains(get(vpn, 'OnDemandRules'))) {
    warnings.push({
      path: `${base}.VPN.OnDemandRules`,
      message:
        'no on-demand rule "Connect" for all domains (the seed: On Demand Rules "Connect VPN", restrict to "All domains"); gsa-emu starts the VPN on regardless',
    });
  }
  const ipv4 = get(payload, 'IPv4');
  if (parseBool(isObj(ipv4) ? get(ipv4, 'OverridePrimary') : undefined) !== true) {
    warnings.push({
      path: `${base}.IPv4.OverridePrimary`,
      message:
        'split tunneling is not disabled (the seed: Split Tunneling "Disable", IPv4.OverridePrimary 1): the self-looping VPN would not see all traffic; gsa-emu captures what its proxies or TUN are given regardless',
    });
  }
  for (const { p, i } of vpns) {
    if (p === payload) continue;
    const other = get(p, 'VPNSubType') ?? get(p, 'VPNType');
    warnings.push({
      path: `PayloadContent[${i}]`,
      message: `another VPN payload (${show(other)}) next to ${base}: side by side with another VPN tunnel (such as the Intune VPN tunnel) isn't supported (the seed's known limitations); gsa-emu reads only ${base}`,
    });
  }
  let vendorPath = `${base}.VendorConfig`;
  let vendor = get(payload, 'VendorConfig');
  if (vendor === undefined && get(vpn, 'VendorConfig') !== undefined) {
    vendor = get(vpn, 'VendorConfig');
    vendorPath = `${base}.VPN.VendorConfig`;
  }
  const issues: ConfigIssue[] = [];
  if (vendor === undefined) {
    warnings.push({ path: vendorPath, message: 'no VendorConfig: no key-value pairs configured' });
  } else if (!isObj(vendor)) {
    issues.push({ path: vendorPath, message: `must be a dictionary, not ${show(vendor)}` });
  }
  const pairs = [
    ...(isObj(vendor) ? pairsOf(vendor, vendorPath, issues) : []),
    ...desktopPairs(issues, warnings),
  ];
  const config = fromPairs(pairs, opts, issues, warnings);
  const override = get(vpn, 'OnDemandUserOverrideDisabled');
  if (override !== undefined) {
    const b = parseBool(override);
    if (typeof b === 'string') {
      issues.push({ path: `${base}.VPN.OnDemandUserOverrideDisabled`, message: b });
    } else if (b === true) config.blockUsersFromDisablingAutomaticVPN = true;
  }
  if (issues.length > 0) throw new ConfigError(issues, opts.file);
  config.vpn = info;
  return { config, warnings };
}

/** The CMS content type SignedData (1.2.840.113549.1.7.2), DER-encoded with its tag. */
const SIGNED_DATA_OID = Buffer.from([
  0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
]);

/**
 * A signed configuration profile: a CMS ContentInfo (DER: a SEQUENCE whose first element is
 * the SignedData OID) or its PEM armour. Not decoded: the caller says how to unwrap it.
 */
function signedProfileKind(bytes: Buffer): 'DER' | 'PEM' | undefined {
  if (bytes[0] === 0x30 && bytes.subarray(0, 32).includes(SIGNED_DATA_OID)) return 'DER';
  if (/^\s*-----BEGIN (PKCS7|CMS)-----/.test(bytes.subarray(0, 64).toString('latin1'))) {
    return 'PEM';
  }
  return undefined;
}

/** XML text without its declaration, doctype and leading comments. */
function stripXmlProlog(text: string): string {
  return text.replace(/^\s*(<\?xml[^>]*\?>\s*|<!DOCTYPE[^>]*>\s*|<!--[\s\S]*?-->\s*)*/i, '');
}

/** The domain an app's managed configuration is read from (NSUserDefaults). */
export const MANAGED_APP_CONFIG_DOMAIN = 'com.apple.configuration.managed';

/**
 * A plist that is a managed app configuration rather than a profile: the dictionary under
 * `com.apple.configuration.managed`, or a root dictionary with at least one client key
 * (any platform's, in any case).
 */
function appConfigOf(root: Obj): { dict: Obj; path: string; outside: string[] } | undefined {
  const known = new Set([...READABLE_KEYS].map(fold));
  const clientKeys = Object.keys(root).filter((k) => known.has(fold(k)));
  const domain = get(root, MANAGED_APP_CONFIG_DOMAIN);
  if (isObj(domain)) {
    // Client keys beside the domain are not read: say so rather than drop them silently.
    return { dict: domain, path: join('', MANAGED_APP_CONFIG_DOMAIN), outside: clientKeys };
  }
  return clientKeys.length > 0 ? { dict: root, path: '', outside: [] } : undefined;
}

/**
 * Managed app configuration (Intune app configuration policy, XML or a plist): the keys at
 * the top level, with a note that the seed puts them in the VPN profile.
 */
function parseAppConfig(
  { dict, path, outside }: { dict: Obj; path: string; outside: string[] },
  opts: ClientConfigOptions,
): LoadedClientConfig {
  const issues: ConfigIssue[] = [];
  // The macOS client's preference domain (com.microsoft.globalsecureaccess, as `defaults
  // export` writes it) holds only its own settings: not the iOS app configuration.
  const desktopOnly =
    desktopPlatformOf(opts.platform?.name) !== undefined &&
    Object.keys(dict).length > 0 &&
    Object.keys(dict).every((k) => ALL_DESKTOP_KEYS.includes(k as DesktopKey));
  const warnings: ConfigIssue[] = [
    ...outside.map((k) => ({
      path: join('', k),
      message: `ignored: outside ${MANAGED_APP_CONFIG_DOMAIN}, whose dictionary is what is read`,
    })),
  ];
  if (!desktopOnly) {
    warnings.unshift({
      path,
      message: `read as a managed app configuration (${MANAGED_APP_CONFIG_DOMAIN}), not a VPN profile: the seed sets these keys in the Defender for Endpoint custom VPN profile's key-value pairs (VendorConfig); whether the client also reads them from app configuration is not documented`,
    });
  }
  const config = fromPairs(pairsOf(dict, path, issues), opts, issues, warnings);
  if (issues.length > 0) throw new ConfigError(issues, opts.file);
  return { config, warnings };
}

/** The on-demand keys that limit a rule to some networks or domains. */
const ON_DEMAND_MATCH_KEYS = [
  'DNSDomainMatch',
  'DNSServerAddressMatch',
  'InterfaceTypeMatch',
  'SSIDMatch',
  'URLStringProbe',
] as const;

/**
 * The on-demand rules connect the VPN for every domain (the seed: "Connect VPN", "All
 * domains"): a rule with Action Connect and no DNSDomainMatch comes before any rule that
 * matches everything and does something else (rules are evaluated in order).
 */
function connectsForAllDomains(rules: unknown): boolean {
  if (!Array.isArray(rules)) return false;
  for (const r of rules) {
    if (!isObj(r)) continue;
    const connect = get(r, 'Action') === 'Connect';
    if (connect && get(r, 'DNSDomainMatch') === undefined) return true;
    if (!connect && ON_DEMAND_MATCH_KEYS.every((k) => get(r, k) === undefined)) return false;
  }
  return false;
}

/**
 * Run a synchronous parse with console.warn/error silenced: plist's XML parser (xmldom) prints
 * its complaints to the console before throwing, and we report them in the ConfigError.
 */
function quietly<T>(f: () => T): T {
  const { warn, error } = console;
  console.warn = () => {};
  console.error = () => {};
  try {
    return f();
  } finally {
    console.warn = warn;
    console.error = error;
  }
}

export type ClientConfigFormat = 'json' | 'yaml' | 'mobileconfig' | 'reg';

/** A Windows registry export (.reg, regedit's UTF-16LE): its values as key-value pairs. */
export function parseRegConfig(
  data: string | Uint8Array,
  opts: ClientConfigOptions = {},
): LoadedClientConfig {
  const { pairs: read, issues, warnings } = parseRegFile(data);
  // Not a registry export at all: that alone. Else every problem, the values' too.
  if (issues.length > 0 && read.length === 0) throw new ConfigError(issues, opts.file);
  // A value of another type is a problem only when gsa-emu reads its name; else it is an
  // unknown key like any other (the client's key may hold values gsa-emu does not read).
  const pairs = read.filter((p) => {
    if (p.problem !== undefined && READABLE_KEYS.has(p.key)) {
      issues.push({ path: p.path, message: p.problem });
      return false;
    }
    return true;
  });
  // The hive: the policies are the machine's (HKLM, only an administrator changes them),
  // IsPrivateAccessDisabledByUser is the user's (HKCU). Read wherever they are, but said.
  if (opts.platform?.name === 'windows') {
    for (const p of pairs) {
      if (!DESKTOP_KEYS.windows.includes(p.key as DesktopKey)) continue;
      const want = p.key === 'IsPrivateAccessDisabledByUser' ? 'HKCU' : 'HKLM';
      if (hiveOf(p.section) === want) continue;
      warnings.push({
        path: p.path,
        message:
          want === 'HKCU'
            ? 'read, but the client keeps this per-user value under HKEY_CURRENT_USER, not this key'
            : 'read, but the client reads this value from HKEY_LOCAL_MACHINE (which only an administrator may change), not this key',
      });
    }
  }
  const config = fromPairs(pairs, opts, issues, warnings);
  if (issues.length > 0) throw new ConfigError(issues, opts.file);
  return { config, warnings };
}

/** Parse text (or bytes, for a binary plist) in the given format. */
export function parseClientConfigText(
  text: string | Uint8Array,
  format: ClientConfigFormat,
  opts: ClientConfigOptions = {},
): LoadedClientConfig {
  if (format === 'mobileconfig') return parseMobileconfig(text, opts);
  if (format === 'reg') return parseRegConfig(text, opts);
  const s = typeof text === 'string' ? text : Buffer.from(text).toString('utf8');
  return parseClientConfig(parseConfigText(s, opts.file, format), opts);
}

/** Read a client configuration file: .json, .yaml/.yml, or .mobileconfig/.plist. */
export function loadClientConfigFile(
  file: string,
  opts: Omit<ClientConfigOptions, 'file'> = {},
): LoadedClientConfig {
  const ext = extname(file).toLowerCase();
  const format: ClientConfigFormat | undefined =
    ext === '.json'
      ? 'json'
      : ext === '.yaml' || ext === '.yml'
        ? 'yaml'
        : ext === '.mobileconfig' || ext === '.plist' || ext === '.xml'
          ? 'mobileconfig'
          : ext === '.reg'
            ? 'reg'
            : undefined;
  if (!format) {
    throw new ConfigError(
      [
        {
          path: '',
          message: `unknown file type ${show(ext)} (use .json, .yaml, .yml, .mobileconfig, .plist, .xml or .reg)`,
        },
      ],
      file,
    );
  }
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (e) {
    throw new ConfigError([{ path: '', message: `cannot read: ${(e as Error).message}` }], file);
  }
  const bytes = format === 'mobileconfig' || format === 'reg';
  return parseClientConfigText(bytes ? data : data.toString('utf8'), format, {
    ...opts,
    file,
  });
}

// ---------------------------------------------------------------------------------------
// Tiles
// ---------------------------------------------------------------------------------------

/** One channel's tile (m365 = the Global Secure Access tile) or toggle, as configured. */
export interface TileSpec {
  channel: ChannelName;
  /** The key that configures it. */
  key: string;
  /** The configured level; undefined = no value. */
  level: Level | undefined;
  visible: boolean;
  defaultOn: boolean;
  userCanToggle: boolean;
  /** One line for diagnostics: where these flags come from. */
  reason: string;
  /** Windows/macOS: the user may switch it on but not off (`HideDisablePrivateAccessButton=1`
   *  for Private Access, `HideDisableButton=1` for the Global Secure Access tile). */
  onOnly?: string;
  /** Windows: only a privileged user may switch it (`RestrictNonPrivilegedUsers=1`). */
  privilegedOnly?: string;
}
export type Tiles = Record<ChannelName, TileSpec>;

const LEVEL_FLAGS: Record<Level, { visible: boolean; defaultOn: boolean; userCanToggle: boolean }> =
  {
    0: { visible: false, defaultOn: false, userCanToggle: false },
    1: { visible: true, defaultOn: false, userCanToggle: true },
    2: { visible: true, defaultOn: true, userCanToggle: true },
    3: { visible: true, defaultOn: true, userCanToggle: false },
  };
const LEVEL_TEXT: Record<Level, string> = {
  0: 'not enabled, hidden',
  1: 'visible, off by default, the user can toggle',
  2: 'visible, on by default, the user can toggle',
  3: 'visible and greyed out, on, the user cannot disable',
};

/**
 * The tiles a configuration produces (docs/client-config.md has the table).
 * No value: 'seed' reads the seed's table (EnableGSA: hidden; private: on, user can toggle;
 * internet: hidden); 'newer' reads newer docs (EnableGSA: as 1; private: follows the GSA
 * tile, no separate toggle; internet: hidden).
 */
export function resolveTiles(config: ClientConfig, noValueMeans?: NoValueMeans): Tiles {
  const mode = noValueMeans ?? config.noValueMeans ?? 'seed';
  const levels: Record<ChannelName, Level | undefined> = {
    m365: config.enableGSA,
    private: config.enableGSAPrivateChannel,
    internet: config.enableGSAInternetChannel,
  };
  const keys = CHANNEL_KEYS[config.keySet ?? 'ios'];
  const tile = (channel: ChannelName): TileSpec => {
    const key = keys[channel];
    const level = levels[channel];
    if (level !== undefined) {
      return {
        channel,
        key,
        level,
        ...LEVEL_FLAGS[level],
        reason: `${keyText(key)}=${level}: ${LEVEL_TEXT[level]}`,
      };
    }
    const nv = `${keyText(key)} has no value (${mode})`;
    if (channel === 'm365') {
      const as: Level = mode === 'seed' ? 0 : 1;
      return {
        channel,
        key,
        level,
        ...LEVEL_FLAGS[as],
        reason: `${nv}: as ${as}, ${LEVEL_TEXT[as]}`,
      };
    }
    if (channel === 'private') {
      if (mode === 'seed') {
        return {
          channel,
          key,
          level,
          ...LEVEL_FLAGS[2],
          reason: `${nv}: enabled by default, the user can toggle`,
        };
      }
      return {
        channel,
        key,
        level,
        visible: false,
        defaultOn: true,
        userCanToggle: false,
        reason: `${nv}: follows the Global Secure Access tile, no separate toggle`,
      };
    }
    return { channel, key, level, ...LEVEL_FLAGS[0], reason: `${nv}: as 0, ${LEVEL_TEXT[0]}` };
  };
  return { m365: tile('m365'), private: tile('private'), internet: tile('internet') };
}

export type ChannelStates = Record<ChannelName, boolean>;

/** A tile with its current state. */
export interface TileView extends TileSpec {
  /** The switch position. */
  on: boolean;
  /** Whether the channel is forwarded now (see `state()`). */
  effective: boolean;
}

export interface ClientTilesSnapshot {
  onboarded: boolean;
  vpnOn: boolean;
  /** Who may switch the VPN off: how the administrator set the two keys (the seed). */
  vpn: {
    /** The app shows a VPN toggle (EnableVPNToggleInApp=TRUE; default no). */
    enableVPNToggleInApp: boolean;
    /** Turning the VPN off in Settings is refused (Block users from disabling automatic VPN). */
    blockUsersFromDisablingAutomaticVPN: boolean;
    /** Where the VPN was last switched off, while it is off. */
    offVia: 'app' | 'settings' | null;
  };
  /** Switch positions (what the user sees). */
  toggles: ChannelStates;
  /** What is forwarded: needs onboarding, the VPN, and the GSA tile for private/internet. */
  channels: ChannelStates;
  tiles: Record<ChannelName, TileView>;
  /** macOS: paused by the user until this time (ISO), when it resumes by itself; else null. */
  pausedUntil: string | null;
  /** The Windows registry values / macOS settings in force (`--platform windows` / `macos`). */
  desktop: { platform: string; set: DesktopKey[] } | null;
}

/** Who does a user action: a privileged user (Windows: an administrator, after UAC) or not. */
export interface UserActionOptions {
  /** With RestrictNonPrivilegedUsers=1 only a privileged user may disable or change the
   *  client. Default false: the user at the tray icon is a standard user. */
  privileged?: boolean;
}

export interface ClientTiles {
  readonly config: ClientConfig;
  readonly tiles: Tiles;
  /** Effective channel states: a channel forwards only when onboarded, the VPN is on, the
   *  GSA tile (m365) is on, and (private/internet) its own toggle is on. */
  state(): ChannelStates;
  /** Switch positions, regardless of the GSA tile and the VPN. */
  toggles(): ChannelStates;
  /** The user flips a tile (m365 = the GSA tile) or toggle; throws ToggleRefusedError if locked or hidden. */
  toggle(channel: ChannelName, on: boolean, who?: UserActionOptions): ChannelStates;
  /** The user switches the VPN in the app (needs EnableVPNToggleInApp) or in Settings
   *  (turning it off is refused with BlockUsersFromDisablingAutomaticVPN). On Windows and
   *  macOS this is the client's Disable/Enable (off refused with HideDisableButton). */
  setVpn(on: boolean, via: 'app' | 'settings', who?: UserActionOptions): ChannelStates;
  /** macOS: the user pauses the client for `pauseMs` (10 minutes): nothing is forwarded until
   *  it resumes by itself or `resume()`. Refused on other platforms and with HidePauseButton. */
  pause(): ChannelStates;
  /** Ends a pause now (nothing changes when not paused). Refused, as pause(), on a platform
   *  without Pause (all but macOS). */
  resume(): ChannelStates;
  /** Whether paused now. */
  paused(): boolean;
  /** Cancels a pending automatic resume (the client stops). */
  close(): void;
  /** Interactive onboarding, when SilentOnboard is not set. */
  onboard(): ChannelStates;
  snapshot(): ClientTilesSnapshot;
  /** Called after every change; returns an unsubscribe function. */
  onChange(listener: (state: ChannelStates) => void): () => void;
  toClientState(platform: PlatformSpec): ClientState;
}

export interface ClientTilesOptions {
  noValueMeans?: NoValueMeans;
  /** Start onboarded even without SilentOnboard (default: SilentOnboard). */
  onboarded?: boolean;
  /** The platform's name: only `macos` has Pause. Default: the configuration's desktop
   *  platform, else ios. */
  platform?: string;
  /** How long a pause lasts (ms). Default 10 minutes (PAUSE_MS). */
  pauseMs?: number;
  /** The clock (ms since the epoch). Default Date.now. */
  now?: () => number;
  /** Runs `fn` after `ms` (the automatic resume); returns its cancel. Default an unref'd
   *  setTimeout. Tests pass their own to resume without waiting. */
  schedule?: (fn: () => void, ms: number) => () => void;
}

const defaultSchedule = (fn: () => void, ms: number): (() => void) => {
  const t = setTimeout(fn, ms);
  t.unref();
  return () => clearTimeout(t);
};

/** `HideDisableButton=1`: the administrator's setting, as messages name it. */
const setting = (key: DesktopKey): string => `${key}=1`;

const LABEL: Record<ChannelName, string> = {
  m365: 'the Global Secure Access tile',
  private: 'the Private Access toggle',
  internet: 'the Internet Access toggle',
};

/** Why nothing is forwarded when the client is not onboarded. */
export const NOT_ONBOARDED = 'not onboarded (SilentOnboard is not TRUE)';

/** `the VPN is off (switched off in Settings)`: the status note's and the decision's. */
export function vpnOffText(offVia: ClientTilesSnapshot['vpn']['offVia']): string {
  return `the VPN is off (switched off in ${offVia === 'app' ? 'the app' : 'Settings'})`;
}

/** `paused by the user until <time> (resumes by itself)`: the status note's and the decision's. */
export function pausedText(until: string): string {
  return `the client is paused by the user until ${until} (it resumes by itself then)`;
}

/** The Global Secure Access tile is off: the user's doing, or the configuration's. */
export function gsaTileOffText(gsa: TileSpec): string {
  return gsa.visible && gsa.userCanToggle
    ? 'the Global Secure Access tile is off'
    : `the Global Secure Access tile is ${gsa.visible ? 'off and locked' : 'hidden and off'} by the client configuration (${gsa.reason})`;
}

/** Tiles and toggles in their default positions, with the admin's locks enforced. */
export function createClientTiles(
  config: ClientConfig,
  opts: ClientTilesOptions = {},
): ClientTiles {
  const tiles = resolveTiles(config, opts.noValueMeans);
  // The Windows/macOS settings that limit who may switch a tile (for tables and hints).
  if (desktopSet(config.desktop, 'HideDisablePrivateAccessButton')) {
    tiles.private.onOnly = setting('HideDisablePrivateAccessButton');
  }
  if (desktopSet(config.desktop, 'HideDisableButton')) {
    tiles.m365.onOnly = setting('HideDisableButton');
  }
  if (desktopSet(config.desktop, 'RestrictNonPrivilegedUsers')) {
    for (const t of Object.values(tiles)) t.privilegedOnly = setting('RestrictNonPrivilegedUsers');
  }
  const toggles: ChannelStates = {
    m365: tiles.m365.defaultOn,
    // Windows: the user switched Private Access off (a per-user value the client keeps),
    // unless the user cannot switch it (EnableGSAPrivateChannel=3 locks it on).
    private:
      tiles.private.defaultOn &&
      !(tiles.private.userCanToggle && desktopSet(config.desktop, 'IsPrivateAccessDisabledByUser')),
    internet: tiles.internet.defaultOn,
  };
  const platformName = opts.platform ?? config.desktop?.platform ?? 'ios';
  const now = opts.now ?? Date.now;
  const pauseMs = opts.pauseMs ?? PAUSE_MS;
  // A timer waits at most 2^31-1 ms (longer fires at once); NaN would make pausedUntil throw.
  if (!Number.isInteger(pauseMs) || pauseMs < 1 || pauseMs > 2 ** 31 - 1) {
    throw new UsageError(
      `pauseMs must be a whole number of milliseconds from 1 to ${2 ** 31 - 1}, not ${pauseMs}`,
    );
  }
  const schedule = opts.schedule ?? defaultSchedule;
  let pausedUntil: number | null = null;
  /** Pause and resume are the macOS client's only: elsewhere both are refused alike. */
  const noPauseHere = (): void => {
    if (platformName === 'macos') return;
    throw new ToggleRefusedError(
      `platform ${platformName} has no pause: only the macOS client has Pause (10 minutes); switch the client off with \`${cliCommand()} vpn off\` instead`,
    );
  };
  let cancelResume: (() => void) | null = null;
  const has = (key: DesktopKey): boolean => desktopSet(config.desktop, key);
  /** RestrictNonPrivilegedUsers: a standard user may not disable or change the client. */
  const restrict = (what: string, who: UserActionOptions | undefined): void => {
    if (has('RestrictNonPrivilegedUsers') && who?.privileged !== true) {
      throw new ToggleRefusedError(
        `only a privileged user may ${what}: the administrator restricts non-privileged users (${setting('RestrictNonPrivilegedUsers')}); an administrator can (gsa-emu: --privileged)`,
      );
    }
  };
  let onboarded = opts.onboarded ?? config.silentOnboard;
  let vpnOn = true; // on-demand "Connect VPN" for all domains (the seed)
  let offVia: 'app' | 'settings' | null = null;
  const listeners = new Set<(s: ChannelStates) => void>();

  const state = (): ChannelStates => {
    const gsa = onboarded && vpnOn && pausedUntil === null && toggles.m365;
    return { m365: gsa, private: gsa && toggles.private, internet: gsa && toggles.internet };
  };
  const changed = (): ChannelStates => {
    const s = state();
    for (const l of listeners) l(s);
    return s;
  };

  return {
    config,
    tiles,
    state,
    toggles: () => ({ ...toggles }),
    toggle(channel, on, who) {
      const t = tiles[channel];
      if (!t) throw new ToggleRefusedError(`unknown channel ${show(channel)}`);
      if (!t.visible) {
        throw new ToggleRefusedError(
          `${LABEL[channel]} is not shown to the user: ${t.reason}; it cannot be turned ${on ? 'on' : 'off'}`,
        );
      }
      // Already so (a locked tile too): nothing changes, so no listener runs (no classifier
      // swap) and nothing is refused.
      if (toggles[channel] === on) return state();
      // The Global Secure Access tile off forwards nothing: the client's Disable by another
      // name, so the hidden Disable button refuses it too (also for a privileged user).
      if (channel === 'm365' && !on && has('HideDisableButton')) {
        throw new ToggleRefusedError(
          `${LABEL[channel]} cannot be turned off: it disables the client, and the administrator hides the Disable button (${setting('HideDisableButton')})`,
        );
      }
      if (channel === 'private' && !on && has('HideDisablePrivateAccessButton')) {
        throw new ToggleRefusedError(
          `${LABEL[channel]} cannot be turned off: the administrator hides the Disable Private Access button (${setting('HideDisablePrivateAccessButton')})`,
        );
      }
      restrict(`turn ${LABEL[channel]} ${on ? 'on' : 'off'}`, who);
      if (!t.userCanToggle) {
        throw new ToggleRefusedError(
          `${LABEL[channel]} is locked by the administrator (${t.reason}); it cannot be turned ${on ? 'on' : 'off'}`,
        );
      }
      toggles[channel] = on;
      return changed();
    },
    setVpn(on, via, who) {
      if (!on && has('HideDisableButton')) {
        throw new ToggleRefusedError(
          `the client cannot be disabled: the administrator hides the Disable button (${setting('HideDisableButton')})`,
        );
      }
      if (via === 'app' && !config.enableVPNToggleInApp) {
        throw new ToggleRefusedError(
          'the VPN toggle in the app is not enabled (EnableVPNToggleInApp is not TRUE); use Settings',
        );
      }
      if (via === 'settings' && !on && config.blockUsersFromDisablingAutomaticVPN) {
        throw new ToggleRefusedError(
          'the administrator blocks disabling the automatic VPN (Block users from disabling automatic VPN = Yes)',
        );
      }
      if (vpnOn === on) return state();
      restrict(on ? 'enable the client' : 'disable the client', who);
      vpnOn = on;
      offVia = on ? null : via;
      return changed();
    },
    pause() {
      noPauseHere();
      if (has('HidePauseButton')) {
        throw new ToggleRefusedError(
          `the client cannot be paused: the administrator hides the Pause button (${setting('HidePauseButton')})`,
        );
      }
      if (pausedUntil !== null) return state();
      pausedUntil = now() + pauseMs;
      cancelResume = schedule(() => {
        cancelResume = null;
        if (pausedUntil === null) return;
        pausedUntil = null;
        changed();
      }, pauseMs);
      return changed();
    },
    resume() {
      // As pause(): a script learns that this platform has no Pause, not that it is not paused.
      noPauseHere();
      if (pausedUntil === null) return state();
      cancelResume?.();
      cancelResume = null;
      pausedUntil = null;
      return changed();
    },
    paused: () => pausedUntil !== null,
    close() {
      cancelResume?.();
      cancelResume = null;
    },
    onboard() {
      if (onboarded) return state();
      onboarded = true;
      return changed();
    },
    snapshot() {
      const channels = state();
      const view = (c: ChannelName): TileView => ({
        ...tiles[c],
        on: toggles[c],
        effective: channels[c],
      });
      return {
        onboarded,
        vpnOn,
        vpn: {
          enableVPNToggleInApp: config.enableVPNToggleInApp,
          blockUsersFromDisablingAutomaticVPN: config.blockUsersFromDisablingAutomaticVPN,
          offVia,
        },
        toggles: { ...toggles },
        channels,
        tiles: { m365: view('m365'), private: view('private'), internet: view('internet') },
        pausedUntil: pausedUntil === null ? null : new Date(pausedUntil).toISOString(),
        desktop: config.desktop
          ? { platform: config.desktop.platform, set: [...config.desktop.set] }
          : null,
      };
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    toClientState(platform) {
      // Every channel follows onboarding, the VPN and the GSA tile: the first one off is why.
      const cause = !onboarded
        ? NOT_ONBOARDED
        : !vpnOn
          ? vpnOffText(offVia)
          : pausedUntil !== null
            ? pausedText(new Date(pausedUntil).toISOString())
            : !toggles.m365
              ? gsaTileOffText(tiles.m365)
              : null;
      return { channels: state(), platform, ...(cause ? { disabledCause: cause } : {}) };
    },
  };
}
