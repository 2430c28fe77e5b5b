/**
 * Android's managed keys (gsa-facts.md section 5: "Android uses keys `Global Secure Access`
 * and `GlobalSecureAccessPrivateChannel` (0-3)", the levels of iOS's EnableGSA and
 * EnableGSAPrivateChannel). The android platform reads them; each platform ignores the
 * other's level keys with a warning naming the platform.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { compile } from '../../src/classify/index.js';
import { newFlow, PROTO_TCP } from '../../src/classify/types.js';
import { loadPolicyContext } from '../../src/cli/common.js';
import { ConfigError, ToggleRefusedError } from '../../src/errors.js';
import {
  createClientTiles,
  type Level,
  parseClientConfig,
  resolveTiles,
} from '../../src/policy/client-config.js';
import { loadDefaultTenant } from '../../src/policy/default-tenant.js';
import { loadPlatform, parsePlatform } from '../../src/policy/platform.js';
import { tempDir } from '../edge/helpers.js';

const ANDROID = loadPlatform('android');
const IOS = loadPlatform('ios');
const GSA = 'Global Secure Access';
const PRIVATE = 'GlobalSecureAccessPrivateChannel';

/** [visible, defaultOn, userCanToggle] per level (docs/client-config.md). */
const LEVELS: Record<Level, [boolean, boolean, boolean]> = {
  0: [false, false, false],
  1: [true, false, true],
  2: [true, true, true],
  3: [true, true, false],
};

const flags = (x: { visible: boolean; defaultOn: boolean; userCanToggle: boolean }) => [
  x.visible,
  x.defaultOn,
  x.userCanToggle,
];

t.test('the android platform says it reads the Android keys; the others do not', async (t) => {
  t.equal(ANDROID.clientConfigKeys, 'android');
  for (const name of ['ios', 'windows', 'macos']) {
    t.equal(loadPlatform(name).clientConfigKeys, undefined, `${name}: iOS keys (the default)`);
  }
  const doc = {
    name: 'lab',
    acquireIPv6: false,
    clientConfigKeys: 'windows',
    quic: { ports: [], tunnel: [], otherwise: 'drop', scope: 'all' },
  };
  t.throws(() => parsePlatform(doc, 'p.json'), {
    code: 'GSA_ERR_CONFIG',
    issues: [{ path: 'clientConfigKeys', message: /"windows" is not one of ios, android/ }],
  });
  t.equal(parsePlatform({ ...doc, clientConfigKeys: 'android' }).clientConfigKeys, 'android');
});

t.test('Android: levels 0-3 of both keys, as numbers and strings', async (t) => {
  for (const level of [0, 1, 2, 3] as Level[]) {
    for (const v of [level, String(level)]) {
      const { config, warnings } = parseClientConfig(
        { [GSA]: v, [PRIVATE]: v, SilentOnboard: 'TRUE' },
        { platform: ANDROID },
      );
      const what = `level ${JSON.stringify(v)}`;
      t.equal(config.enableGSA, level, `${what}: GSA`);
      t.equal(config.enableGSAPrivateChannel, level, `${what}: private`);
      t.equal(config.keySet, 'android');
      const tiles = resolveTiles(config);
      t.same(flags(tiles.m365), LEVELS[level], `${what}: the GSA tile`);
      t.same(flags(tiles.private), LEVELS[level], `${what}: the Private Access toggle`);
      t.equal(tiles.m365.key, GSA);
      t.equal(tiles.private.key, PRIVATE);
      t.match(tiles.m365.reason, `"${GSA}"=${level}`);
      const on = level >= 2;
      t.same(createClientTiles(config).state(), { m365: on, private: on, internet: false }, what);
      // Level 0 warns that the private level has no effect, naming the Android key to set.
      t.same(
        warnings.map((w) => w.path),
        level === 0 ? [PRIVATE] : [],
        `${what}: ${warnings.map((w) => w.message).join(' | ')}`,
      );
      if (level === 0) t.match(warnings[0]!.message, `set "${GSA}" to 1, 2 or 3`);
    }
  }
});

t.test('Android: the user may toggle at 1 and 2, not at 3 (locked) or 0 (hidden)', async (t) => {
  const tiles = (l: Level) =>
    createClientTiles(
      parseClientConfig({ [GSA]: l, [PRIVATE]: 2, SilentOnboard: true }, { platform: ANDROID })
        .config,
    );
  const one = tiles(1);
  t.same(one.toggle('m365', true), { m365: true, private: true, internet: false });
  const two = tiles(2);
  t.same(two.toggle('m365', false), { m365: false, private: false, internet: false });
  t.throws(() => tiles(3).toggle('m365', false), ToggleRefusedError);
  t.throws(() => tiles(3).toggle('m365', false), {
    message: /Global Secure Access tile is locked by the administrator \("Global Secure Access"=3/,
  });
  t.throws(() => tiles(0).toggle('m365', true), {
    message: /not shown to the user: "Global Secure Access"=0/,
  });
  const locked = createClientTiles(
    parseClientConfig({ [GSA]: 2, [PRIVATE]: 3, SilentOnboard: true }, { platform: ANDROID })
      .config,
  );
  t.throws(() => locked.toggle('private', false), {
    message: /locked by the administrator \(GlobalSecureAccessPrivateChannel=3/,
  });
});

t.test('Android: no value, in the seed and the newer readings', async (t) => {
  for (const nothing of [{}, { [GSA]: '', [PRIVATE]: null }]) {
    const what = JSON.stringify(nothing);
    const { config } = parseClientConfig(
      { ...nothing, SilentOnboard: true },
      { platform: ANDROID },
    );
    t.equal(config.enableGSA, undefined, what);
    t.equal(config.enableGSAPrivateChannel, undefined, what);
    const seed = resolveTiles(config);
    t.same(flags(seed.m365), LEVELS[0], `${what}: seed: GSA as 0`);
    t.same(flags(seed.private), LEVELS[2], `${what}: seed: private enabled, user can toggle`);
    t.match(seed.m365.reason, `"${GSA}" has no value (seed)`);
    const newer = resolveTiles(config, 'newer');
    t.same(flags(newer.m365), LEVELS[1], `${what}: newer: GSA as 1`);
    t.same(flags(newer.private), [false, true, false], `${what}: newer: private follows GSA`);
    t.match(newer.private.reason, `${PRIVATE} has no value (newer): follows`);
  }
});

t.test('Android: bad values and a key given twice are errors at their paths', async (t) => {
  t.throws(() => parseClientConfig({ [GSA]: 4, [PRIVATE]: 'x' }, { platform: ANDROID }), {
    code: 'GSA_ERR_CONFIG',
    issues: [
      { path: `["${GSA}"]`, message: /4 is not a level/ },
      { path: PRIVATE, message: /"x" is not a level/ },
    ],
  });
  t.throws(
    () =>
      parseClientConfig(
        [
          { name: GSA, value: '3' },
          { name: GSA, value: '0' },
        ],
        { platform: ANDROID },
      ),
    ConfigError,
  );
  const near = parseClientConfig({ GlobalSecureAccess: 2 }, { platform: ANDROID }).warnings;
  t.match(near[0]!.message, `did you mean "${GSA}"?`);
});

t.test('both key sets: each platform reads its own and warns about the other', async (t) => {
  const both = {
    EnableGSA: '0',
    EnableGSAPrivateChannel: '0',
    [GSA]: '3',
    [PRIVATE]: '2',
    SilentOnboard: 'TRUE',
  };
  const a = parseClientConfig(both, { platform: ANDROID });
  t.equal(a.config.enableGSA, 3, 'android: the Android key');
  t.equal(a.config.enableGSAPrivateChannel, 2);
  t.same(
    a.warnings.map((w) => w.path),
    ['EnableGSA', 'EnableGSAPrivateChannel'],
  );
  t.match(
    a.warnings[0]!.message,
    `ignored: an iOS key, not read on platform android, which reads "${GSA}" (given at ["${GSA}"])`,
  );
  t.notMatch(a.warnings[0]!.message, /use EnableGSA|--platform/);

  const i = parseClientConfig(both, { platform: IOS });
  t.equal(i.config.enableGSA, 0, 'ios: the iOS key');
  t.equal(i.config.keySet, undefined);
  t.same(
    i.warnings.map((w) => w.path),
    // The private level under GSA 0 has no effect (the effect warning comes last).
    [`["${GSA}"]`, PRIVATE, 'EnableGSAPrivateChannel'],
  );
  t.match(
    i.warnings[0]!.message,
    /an Android key, not read on platform ios, which reads EnableGSA/,
  );
});

t.test(
  'Android keys on iOS (and on windows): ignored, the warning names the platform',
  async (t) => {
    const keys = { [GSA]: '2', [PRIVATE]: '2', SilentOnboard: 'TRUE' };
    for (const [platform, name] of [
      [undefined, 'ios'],
      [IOS, 'ios'],
      [loadPlatform('windows'), 'windows'],
    ] as const) {
      const { config, warnings } = parseClientConfig(keys, platform ? { platform } : {});
      t.equal(config.enableGSA, undefined, `${name}: not read`);
      t.same(createClientTiles(config).state(), { m365: false, private: false, internet: false });
      t.same(
        warnings.map((w) => w.message),
        [
          `ignored: an Android key, not read on platform ${name}, which reads EnableGSA instead (gsa-emu reads the Android keys with --platform android)`,
          `ignored: an Android key, not read on platform ${name}, which reads EnableGSAPrivateChannel instead (gsa-emu reads the Android keys with --platform android)`,
        ],
      );
    }
    // Only iOS keys on Android: GSA stays off, the warning names the Android key.
    const { config, warnings } = parseClientConfig(
      { EnableGSA: 2, SilentOnboard: true },
      { platform: ANDROID },
    );
    t.equal(config.enableGSA, undefined);
    t.same(warnings, [
      {
        path: 'EnableGSA',
        message: `ignored: an iOS key, not read on platform android, which reads "${GSA}" instead`,
      },
    ]);
  },
);

t.test('--platform android with a file of Android keys: GSA and Private Access on', async (t) => {
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const cc = join(tmp.dir, 'android.json');
  await writeFile(cc, JSON.stringify({ [GSA]: '2', [PRIVATE]: '2', SilentOnboard: 'TRUE' }));
  const ctx = loadPolicyContext({ clientConfig: cc, platform: 'android' });
  t.same(ctx.warnings, []);
  const state = ctx.state();
  t.same(state.channels, { m365: true, private: true, internet: false });
  const f = newFlow();
  f.proto = PROTO_TCP;
  f.family = 0;
  f.port = 443;
  f.host = 'intranet.contoso.test';
  const d = compile(loadDefaultTenant(), state).decide(f);
  t.equal(d.channel, 'private', `intranet.contoso.test:443 -> ${d.action} (${d.reason})`);
  // The same file on iOS: ignored, with the warnings.
  const ios = loadPolicyContext({ clientConfig: cc, platform: 'ios' });
  t.same(ios.state().channels, { m365: false, private: false, internet: false });
  t.equal(ios.warnings.length, 2);
  t.match(ios.warnings[0]!, /not read on platform ios/);
});
