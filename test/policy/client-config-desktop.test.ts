/**
 * The Windows registry values and macOS settings (gsa-facts.md section 5), read with
 * `--platform windows` / `macos` and enforced by the tiles: HideDisablePrivateAccessButton,
 * HideDisableButton, RestrictNonPrivilegedUsers, IsPrivateAccessDisabledByUser,
 * HideSignOutButton (Windows); HideDisablePrivateAccessButton, HideDisableButton,
 * HidePauseButton (pause: 10 minutes), HideQuitButton (macOS).
 * docs/decisions/client-desktop-settings.md.
 */
import fc from 'fast-check';
import t from 'tap';
import { ConfigError, ToggleRefusedError, UsageError } from '../../src/errors.js';
import {
  createClientTiles,
  MACOS_DOMAIN,
  parseClientConfig,
  parseMobileconfig,
} from '../../src/policy/client-config.js';
import { ALL_DESKTOP_KEYS, PAUSE_MS } from '../../src/policy/desktop-settings.js';
import { loadPlatform } from '../../src/policy/platform.js';

const WINDOWS = loadPlatform('windows');
const MACOS = loadPlatform('macos');
const IOS = loadPlatform('ios');
const BASE = {
  EnableGSA: 2,
  EnableGSAPrivateChannel: 2,
  EnableGSAInternetChannel: 2,
  SilentOnboard: true,
  EnableVPNToggleInApp: true,
};

const win = (extra: Record<string, unknown>) =>
  parseClientConfig({ ...BASE, ...extra }, { platform: WINDOWS });
const mac = (extra: Record<string, unknown>) =>
  parseClientConfig({ ...BASE, ...extra }, { platform: MACOS });

/** A fake clock and scheduler: the automatic resume runs when the test says. */
function fakeTime(start = Date.parse('2026-11-30T01:00:00Z')) {
  let now = start;
  const pending: Array<{ fn: () => void; at: number; cancelled: boolean }> = [];
  return {
    now: () => now,
    schedule(fn: () => void, ms: number) {
      const e = { fn, at: now + ms, cancelled: false };
      pending.push(e);
      return () => {
        e.cancelled = true;
      };
    },
    advance(ms: number) {
      now += ms;
      for (const e of pending.splice(0)) {
        if (e.cancelled) continue;
        if (e.at <= now) e.fn();
        else pending.push(e);
      }
    },
    pendingCount: () => pending.filter((e) => !e.cancelled).length,
  };
}

t.test(
  'windows reads its registry values (DWORD 0/1) and warns about the macOS ones',
  async (t) => {
    const { config, warnings } = win({
      HideSignOutButton: 1,
      HideDisablePrivateAccessButton: '1',
      HideDisableButton: 0,
      RestrictNonPrivilegedUsers: true,
      IsPrivateAccessDisabledByUser: 1,
      HidePauseButton: 1,
    });
    t.same(config.desktop, {
      platform: 'windows',
      set: [
        'HideSignOutButton',
        'HideDisablePrivateAccessButton',
        'RestrictNonPrivilegedUsers',
        'IsPrivateAccessDisabledByUser',
      ],
    });
    t.match(
      warnings.find((w) => w.path === 'HidePauseButton')?.message,
      /^ignored: a macOS setting, not read on platform windows \(gsa-emu reads it with --platform macos\)$/,
    );
    t.match(
      warnings.find((w) => w.path === 'HideSignOutButton')?.message,
      /^read: gsa-emu has no sign-out action/,
    );
  },
);

t.test('macos reads its plist booleans and warns about the Windows-only ones', async (t) => {
  const { config, warnings } = mac({
    HideDisablePrivateAccessButton: true,
    HideDisableButton: false,
    HidePauseButton: 'true',
    HideQuitButton: true,
    RestrictNonPrivilegedUsers: 1,
  });
  t.same(config.desktop, {
    platform: 'macos',
    set: ['HideDisablePrivateAccessButton', 'HidePauseButton', 'HideQuitButton'],
  });
  t.match(
    warnings.find((w) => w.path === 'RestrictNonPrivilegedUsers')?.message,
    /^ignored: a Windows registry value, not read on platform macos/,
  );
  t.match(
    warnings.find((w) => w.path === 'HideQuitButton')?.message,
    /no user Quit action.*stop` is for scripts and is not refused/,
  );
});

t.test('ios and android read none of them (config.desktop stays unset)', async (t) => {
  const { config, warnings } = parseClientConfig(
    { ...BASE, HideDisableButton: 1 },
    { platform: IOS },
  );
  t.equal(config.desktop, undefined);
  t.match(warnings[0]?.message, /--platform windows or --platform macos/);
  const tiles = createClientTiles(config);
  t.same(tiles.setVpn(false, 'settings'), { m365: false, private: false, internet: false });
});

t.test('bad values: one ConfigError naming each key', async (t) => {
  const err = t.throws(() => win({ HideDisableButton: 2, RestrictNonPrivilegedUsers: 'maybe' }));
  t.ok(err instanceof ConfigError);
  t.match((err as ConfigError).message, /HideDisableButton: 2 is not a boolean/);
  t.match((err as ConfigError).message, /RestrictNonPrivilegedUsers: "maybe" is not a boolean/);
  const twice = t.throws(() =>
    parseClientConfig(
      [
        { name: 'HidePauseButton', value: 1 },
        { name: 'HidePauseButton', value: 0 },
      ],
      { platform: MACOS },
    ),
  );
  t.match((twice as ConfigError).message, /HidePauseButton is given twice/);
});

t.test('HideDisablePrivateAccessButton: Private Access cannot be switched off', async (t) => {
  for (const platform of [WINDOWS, MACOS]) {
    const tiles = createClientTiles(
      parseClientConfig({ ...BASE, HideDisablePrivateAccessButton: 1 }, { platform }).config,
    );
    const err = t.throws(() => tiles.toggle('private', false));
    t.ok(err instanceof ToggleRefusedError, platform.name);
    t.equal((err as ToggleRefusedError).code, 'GSA_ERR_TOGGLE_LOCKED');
    t.match(
      (err as Error).message,
      /Private Access toggle cannot be turned off: the administrator hides the Disable Private Access button \(HideDisablePrivateAccessButton=1\)/,
    );
    t.equal(tiles.state().private, true);
    // Other channels still toggle.
    t.equal(tiles.toggle('internet', false).internet, false);
  }
  // Without the setting it switches off.
  const tiles = createClientTiles(win({}).config);
  t.equal(tiles.toggle('private', false).private, false);
});

t.test(
  'IsPrivateAccessDisabledByUser=1: Private Access starts off, and can be turned on',
  async (t) => {
    const tiles = createClientTiles(win({ IsPrivateAccessDisabledByUser: 1 }).config);
    t.equal(tiles.state().private, false);
    t.equal(tiles.toggles().private, false);
    t.equal(tiles.state().m365, true);
    t.equal(tiles.toggle('private', true).private, true);
    // With the button hidden too: starts off (the user's choice), on is still allowed.
    const both = createClientTiles(
      win({ IsPrivateAccessDisabledByUser: 1, HideDisablePrivateAccessButton: 1 }).config,
    );
    t.equal(both.state().private, false);
    t.equal(both.toggle('private', true).private, true);
    t.throws(() => both.toggle('private', false), /HideDisablePrivateAccessButton=1/);
  },
);

t.test('pauseMs: a whole number of ms a timer can wait, else a UsageError', async (t) => {
  // NaN would make the snapshot's pausedUntil throw (a status that crashes); past 2^31-1 ms
  // a timer fires at once (the pause would end immediately).
  for (const pauseMs of [Number.NaN, 0, -1, 1.5, 2 ** 31, Number.POSITIVE_INFINITY]) {
    const err = t.throws(() => createClientTiles(mac({}).config, { platform: 'macos', pauseMs }));
    t.ok(err instanceof UsageError, String(pauseMs));
    t.match((err as Error).message, /pauseMs/);
  }
  t.doesNotThrow(() => createClientTiles(mac({}).config, { pauseMs: 2 ** 31 - 1 }).close());
});

t.test(
  'IsPrivateAccessDisabledByUser=1 under EnableGSAPrivateChannel=3: the lock wins, and a warning says so',
  async (t) => {
    // Level 3: on, and the user cannot disable it; the user's old choice cannot undo that
    // (else Private Access would be locked off, which no setting asks for).
    const { config, warnings } = win({
      EnableGSAPrivateChannel: 3,
      IsPrivateAccessDisabledByUser: 1,
    });
    const tiles = createClientTiles(config);
    t.equal(tiles.toggles().private, true);
    t.equal(tiles.state().private, true);
    t.match(
      warnings.find((w) => w.path === 'IsPrivateAccessDisabledByUser')?.message ?? '',
      /EnableGSAPrivateChannel=3/,
    );
    // Levels the user may switch: the user's choice holds (starts off).
    for (const level of [1, 2]) {
      const w = win({ EnableGSAPrivateChannel: level, IsPrivateAccessDisabledByUser: 1 });
      t.equal(createClientTiles(w.config).toggles().private, false, `level ${level}`);
      t.notOk(w.warnings.some((x) => x.path === 'IsPrivateAccessDisabledByUser'));
    }
  },
);

t.test(
  'HideDisableButton: the Global Secure Access tile cannot be turned off either (it disables the client)',
  async (t) => {
    for (const platform of [WINDOWS, MACOS]) {
      const tiles = createClientTiles(
        parseClientConfig({ ...BASE, HideDisableButton: true }, { platform }).config,
      );
      // Turning the whole of Global Secure Access off is the client's Disable by another name.
      const err = t.throws(() => tiles.toggle('m365', false, { privileged: true }));
      t.ok(err instanceof ToggleRefusedError);
      t.match((err as Error).message, /HideDisableButton=1/);
      t.equal(tiles.state().m365, true);
      t.equal(tiles.tiles.m365.onOnly, 'HideDisableButton=1', 'the tiles table: user: on only');
      // The channels' own toggles are not the Disable button.
      t.equal(tiles.toggle('internet', false).internet, false);
    }
  },
);

t.test('RestrictNonPrivilegedUsers=1 does not restrict onboarding (signing in)', async (t) => {
  const tiles = createClientTiles(win({ RestrictNonPrivilegedUsers: 1 }).config, {
    onboarded: false,
  });
  t.equal(tiles.state().m365, false);
  t.equal(tiles.onboard().m365, true);
});

t.test('HideDisableButton: the client cannot be disabled (vpn off), either way', async (t) => {
  for (const platform of [WINDOWS, MACOS]) {
    const tiles = createClientTiles(
      parseClientConfig({ ...BASE, HideDisableButton: true }, { platform }).config,
    );
    for (const via of ['settings', 'app'] as const) {
      const err = t.throws(() => tiles.setVpn(false, via));
      t.ok(err instanceof ToggleRefusedError);
      t.match(
        (err as Error).message,
        /the client cannot be disabled: the administrator hides the Disable button \(HideDisableButton=1\)/,
      );
    }
    t.equal(tiles.snapshot().vpnOn, true);
    t.same(tiles.setVpn(true, 'settings'), tiles.state());
  }
});

t.test(
  'RestrictNonPrivilegedUsers: a standard user cannot disable or change the client',
  async (t) => {
    const tiles = createClientTiles(win({ RestrictNonPrivilegedUsers: 1 }).config);
    const off = t.throws(() => tiles.setVpn(false, 'settings'));
    t.ok(off instanceof ToggleRefusedError);
    t.match(
      (off as Error).message,
      /^only a privileged user may disable the client: the administrator restricts non-privileged users \(RestrictNonPrivilegedUsers=1\); an administrator can \(gsa-emu: --privileged\)$/,
    );
    t.throws(
      () => tiles.toggle('private', false),
      /only a privileged user may turn the Private Access toggle off/,
    );
    t.throws(() => tiles.toggle('m365', false), /RestrictNonPrivilegedUsers=1/);
    t.equal(tiles.snapshot().vpnOn, true);
    // A privileged user can, both ways.
    t.equal(tiles.setVpn(false, 'settings', { privileged: true }).m365, false);
    t.throws(() => tiles.setVpn(true, 'settings'), /may enable the client/);
    t.equal(tiles.setVpn(true, 'settings', { privileged: true }).m365, true);
    t.equal(tiles.toggle('private', false, { privileged: true }).private, false);
    // Asking for what is so already is not a change: not refused.
    t.equal(tiles.setVpn(true, 'settings').m365, true);
    // HideDisableButton wins over privilege: there is no button to click.
    const hidden = createClientTiles(
      win({ RestrictNonPrivilegedUsers: 1, HideDisableButton: 1 }).config,
    );
    t.throws(() => hidden.setVpn(false, 'settings', { privileged: true }), /HideDisableButton=1/);
  },
);

t.test('macOS pause: 10 minutes, nothing forwarded, resumes by itself', async (t) => {
  const time = fakeTime();
  const tiles = createClientTiles(mac({}).config, { platform: 'macos', ...time });
  const changes: unknown[] = [];
  tiles.onChange((s) => changes.push(s));
  t.equal(tiles.paused(), false);
  const s = tiles.pause();
  t.same(s, { m365: false, private: false, internet: false });
  t.equal(tiles.paused(), true);
  t.equal(tiles.snapshot().pausedUntil, new Date(time.now() + PAUSE_MS).toISOString());
  t.match(
    tiles.toClientState(MACOS).disabledCause,
    /paused by the user until .* resumes by itself/,
  );
  // Pausing again changes nothing (no listener call).
  tiles.pause();
  t.equal(changes.length, 1);
  time.advance(PAUSE_MS - 1);
  t.equal(tiles.paused(), true);
  time.advance(1);
  t.equal(tiles.paused(), false);
  t.same(tiles.state(), { m365: true, private: true, internet: true });
  t.equal(tiles.snapshot().pausedUntil, null);
  t.equal(changes.length, 2);
});

t.test('resume ends a pause now and cancels the automatic resume', async (t) => {
  const time = fakeTime();
  const tiles = createClientTiles(mac({}).config, { platform: 'macos', ...time });
  t.same(tiles.resume(), tiles.state(), 'not paused: nothing to do');
  tiles.pause();
  t.equal(time.pendingCount(), 1);
  t.equal(tiles.resume().m365, true);
  t.equal(time.pendingCount(), 0);
  // close() cancels a pending resume (the client stops).
  tiles.pause();
  tiles.close();
  t.equal(time.pendingCount(), 0);
});

t.test('pause length is an option', async (t) => {
  const time = fakeTime();
  const tiles = createClientTiles(mac({}).config, { platform: 'macos', pauseMs: 5, ...time });
  tiles.pause();
  time.advance(5);
  t.equal(tiles.paused(), false);
});

t.test('HidePauseButton refuses pause; other platforms have no pause', async (t) => {
  const hidden = createClientTiles(mac({ HidePauseButton: 1 }).config, { platform: 'macos' });
  t.throws(
    () => hidden.pause(),
    /the client cannot be paused: the administrator hides the Pause button \(HidePauseButton=1\)/,
  );
  t.equal(hidden.paused(), false);
  for (const platform of ['windows', 'ios', 'android']) {
    const tiles = createClientTiles(win({}).config, { platform });
    const err = t.throws(() => tiles.pause());
    t.ok(err instanceof ToggleRefusedError);
    const rerr = t.throws(() => tiles.resume(), 'resume is refused as pause is');
    t.ok(rerr instanceof ToggleRefusedError);
    t.equal((rerr as Error).message, (err as Error).message);
    t.match(
      (err as Error).message,
      new RegExp(
        `^platform ${platform} has no pause: only the macOS client has Pause \\(10 minutes\\)`,
      ),
    );
  }
  // The configuration's platform is the default.
  const time = fakeTime();
  const byConfig = createClientTiles(mac({}).config, time);
  t.equal(byConfig.pause().m365, false);
});

t.test(`a .mobileconfig payload of PayloadType ${MACOS_DOMAIN} is read on macos`, async (t) => {
  const profile = `<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadContent</key><array><dict>
    <key>PayloadType</key><string>${MACOS_DOMAIN}</string>
    <key>PayloadIdentifier</key><string>x</string>
    <key>HidePauseButton</key><true/>
    <key>HideDisableButton</key><integer>1</integer>
    <key>HideQuitButton</key><false/>
  </dict></array>
</dict></plist>`;
  const { config, warnings } = parseMobileconfig(profile, { platform: MACOS });
  t.same(config.desktop?.set, ['HidePauseButton', 'HideDisableButton']);
  t.same(warnings, [], 'only desktop settings: the rest is the default (onboarded)');
  // Bad value: its path.
  const bad = profile.replace('<integer>1</integer>', '<string>sometimes</string>');
  const err = t.throws(() => parseMobileconfig(bad, { platform: MACOS }));
  t.match(
    (err as Error).message,
    /PayloadContent\[0\]\.HideDisableButton: "sometimes" is not a boolean/,
  );
  // On windows the macOS-only keys are warned about.
  const w = parseMobileconfig(profile, { platform: WINDOWS });
  t.match(
    w.warnings.find((x) => /HidePauseButton/.test(x.path))?.message,
    /not read on platform windows/,
  );
});

t.test(
  `the Custom Settings wrapper (com.apple.ManagedClient.preferences, ${MACOS_DOMAIN} Forced) is read`,
  async (t) => {
    // What Intune's and Jamf's custom settings upload wraps a preference domain in.
    const mcx = (domain: string) => `<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadContent</key><array><dict>
    <key>PayloadType</key><string>com.apple.ManagedClient.preferences</string>
    <key>PayloadIdentifier</key><string>x</string>
    <key>PayloadContent</key><dict>
      <key>${domain}</key><dict>
        <key>Forced</key><array><dict>
          <key>mcx_preference_settings</key><dict>
            <key>HidePauseButton</key><true/>
            <key>HideQuitButton</key><false/>
          </dict>
        </dict></array>
        <key>Set-Once</key><array><dict>
          <key>mcx_preference_settings</key><dict>
            <key>HideDisableButton</key><true/>
          </dict>
        </dict></array>
      </dict>
    </dict>
  </dict></array>
</dict></plist>`;
    const { config, warnings } = parseMobileconfig(mcx(MACOS_DOMAIN), { platform: MACOS });
    t.same(config.desktop?.set, ['HidePauseButton']);
    t.equal(config.silentOnboard, true, 'only desktop settings: the rest is the default');
    // Set-Once is a default the user may change, not a managed setting: ignored, said.
    t.match(
      warnings.map((w) => `${w.path}: ${w.message}`).join('\n'),
      /PayloadContent\[0\]\.PayloadContent\["com\.microsoft\.globalsecureaccess"\]\["Set-Once"\]: ignored/,
    );
    // A bad value names its path through the wrapper.
    const bad = mcx(MACOS_DOMAIN).replace(
      '<key>HideQuitButton</key><false/>',
      '<key>HideQuitButton</key><integer>2</integer>',
    );
    const err = t.throws(() => parseMobileconfig(bad, { platform: MACOS }));
    t.ok(err instanceof ConfigError);
    t.match(
      (err as Error).message,
      /Forced\[0\]\.mcx_preference_settings\.HideQuitButton: 2 is not a boolean/,
    );
    // Another domain's wrapper alone: no client settings, said so.
    t.throws(
      () => parseMobileconfig(mcx('com.example.other'), { platform: MACOS }),
      /ManagedClient/,
    );
  },
);

t.test(
  'a defaults export of the macOS domain (keys at the top level) reads without the app-config note',
  async (t) => {
    const plist = `<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
  <key>HideDisablePrivateAccessButton</key><true/>
</dict></plist>`;
    const { config, warnings } = parseMobileconfig(plist, { platform: MACOS });
    t.same(config.desktop?.set, ['HideDisablePrivateAccessButton']);
    t.notOk(warnings.some((w) => /managed app configuration/.test(w.message)));
  },
);

t.test(
  `fuzz: a ${MACOS_DOMAIN} payload reads as the same pairs in JSON, or one ConfigError`,
  async (t) => {
    const value = fc.constantFrom<[string, unknown]>(
      ['<true/>', true],
      ['<false/>', false],
      ['<integer>1</integer>', 1],
      ['<integer>0</integer>', 0],
      ['<integer>2</integer>', 2],
      ['<string>true</string>', 'true'],
      ['<string>maybe</string>', 'maybe'],
      ['<string></string>', ''],
    );
    const keys = fc.dictionary(fc.constantFrom(...ALL_DESKTOP_KEYS, 'Other'), value, {
      maxKeys: 6,
    });
    fc.assert(
      fc.property(keys, fc.constantFrom(WINDOWS, MACOS), (kv, platform) => {
        const body = Object.entries(kv)
          .map(([k, [xml]]) => `<key>${k}</key>${xml}`)
          .join('');
        const profile = `<plist version="1.0"><dict><key>PayloadType</key><string>Configuration</string><key>PayloadContent</key><array><dict><key>PayloadType</key><string>${MACOS_DOMAIN}</string>${body}</dict></array></dict></plist>`;
        const json = Object.fromEntries(Object.entries(kv).map(([k, [, v]]) => [k, v]));
        let a: string;
        let b: string;
        try {
          a = JSON.stringify(parseMobileconfig(profile, { platform }).config);
        } catch (e) {
          if (!(e instanceof ConfigError)) throw e;
          a = 'error';
        }
        try {
          b = JSON.stringify(parseClientConfig(json, { platform }).config);
        } catch (e) {
          if (!(e instanceof ConfigError)) throw e;
          b = 'error';
        }
        if (a !== b) throw new Error(`${a} !== ${b}`);
      }),
      { numRuns: 300 },
    );
    t.pass('no difference');
  },
);

t.test(
  'only desktop settings: every channel on and onboarded (the iOS keys are not theirs)',
  async (t) => {
    for (const platform of [WINDOWS, MACOS]) {
      const { config, warnings } = parseClientConfig({ HideDisableButton: 1 }, { platform });
      t.equal(config.enableGSA, 2);
      t.equal(config.enableGSAPrivateChannel, 2);
      t.equal(config.enableGSAInternetChannel, 2);
      t.equal(config.silentOnboard, true);
      t.same(config.desktop?.set, ['HideDisableButton']);
      t.same(warnings, []);
      t.same(createClientTiles(config).state(), { m365: true, private: true, internet: true });
    }
    // With an iOS key given, the iOS keys are read as on iOS (missing SilentOnboard: not onboarded).
    const { config } = parseClientConfig(
      { EnableGSA: 2, HideDisableButton: 1 },
      { platform: WINDOWS },
    );
    t.equal(config.silentOnboard, false);
    // iOS: the seed's reading, as before.
    t.equal(parseClientConfig({}, { platform: IOS }).config.enableGSA, undefined);
  },
);

t.test(
  'fuzz: a Custom Settings payload of any shape gives a result or one ConfigError',
  async () => {
    const keys = [
      'Forced',
      'Set-Once',
      'Often',
      'mcx_preference_settings',
      'mcx_data_timestamp',
      'HidePauseButton',
      'HideDisableButton',
      'PayloadType',
      MACOS_DOMAIN,
    ];
    const value: fc.Arbitrary<string> = fc.letrec<{ v: string }>((tie) => ({
      v: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        fc.constantFrom(
          '<true/>',
          '<false/>',
          '<integer>1</integer>',
          '<integer>2</integer>',
          '<string>yes</string>',
          '<string>x</string>',
          '<date>2026-01-01T00:00:00Z</date>',
          '<data>AAAA</data>',
          '<dict/>',
          '<array/>',
        ),
        fc.array(tie('v'), { maxLength: 3 }).map((vs) => `<array>${vs.join('')}</array>`),
        fc
          .array(fc.tuple(fc.constantFrom(...keys), tie('v')), { maxLength: 3 })
          .map((kv) => `<dict>${kv.map(([k, v]) => `<key>${k}</key>${v}`).join('')}</dict>`),
      ),
    })).v;
    fc.assert(
      fc.property(value, fc.constantFrom(WINDOWS, MACOS, IOS), (domain, platform) => {
        const profile = `<plist version="1.0"><dict><key>PayloadType</key><string>Configuration</string><key>PayloadContent</key><array><dict><key>PayloadType</key><string>com.apple.ManagedClient.preferences</string><key>PayloadContent</key><dict><key>${MACOS_DOMAIN}</key>${domain}</dict></dict></array></dict></plist>`;
        try {
          parseMobileconfig(profile, { platform });
        } catch (e) {
          if (!(e instanceof ConfigError)) throw e;
        }
      }),
      { numRuns: 400 },
    );
  },
);
