import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildBinary } from 'plist';
import t from 'tap';
import { ConfigError, ToggleRefusedError } from '../../src/errors.js';
import {
  type ClientConfig,
  createClientTiles,
  defaultClientConfig,
  type Level,
  loadClientConfigFile,
  parseClientConfig,
  parseClientConfigText,
  parseMobileconfig,
  resolveTiles,
} from '../../src/policy/client-config.js';
import { CHANNELS, type ChannelName } from '../../src/policy/model.js';
import { loadPlatform } from '../../src/policy/platform.js';

const fixtures = fileURLToPath(new URL('../fixtures/client-config/', import.meta.url));
const fixture = (name: string) => join(fixtures, name);
const base = (): ClientConfig => ({
  silentOnboard: true,
  enableVPNToggleInApp: false,
  blockUsersFromDisablingAutomaticVPN: false,
});

t.test('.mobileconfig fixture (Intune custom VPN profile)', async (t) => {
  const { config, warnings } = loadClientConfigFile(fixture('defender-gsa.mobileconfig'));
  t.equal(config.enableGSA, 2);
  t.equal(config.enableGSAPrivateChannel, 3);
  t.equal(config.enableGSAInternetChannel, 1);
  t.equal(config.silentOnboard, true);
  t.equal(config.enableVPNToggleInApp, true);
  t.equal(config.blockUsersFromDisablingAutomaticVPN, true, 'from OnDemandUserOverrideDisabled');
  t.same(config.vpn, {
    connectionName: 'Microsoft Defender for Endpoint',
    identifier: 'com.microsoft.scmx',
    serverAddress: '127.0.0.1',
    onDemandEnabled: true,
  });
  t.same(warnings, [
    { path: 'PayloadContent[0].VendorConfig.ExampleCustomKey', message: warnings[0]?.message },
  ]);
  t.match(warnings[0]!.message, /unknown key, ignored/);
});

t.test('.mobileconfig: VPN payload differences are reported', async (t) => {
  const xml = readFileSync(fixture('defender-gsa.mobileconfig'), 'utf8')
    .replace('<string>127.0.0.1</string>', '<string>vpn.contoso.test</string>')
    .replace('<string>com.microsoft.scmx</string>', '<string>com.example.vpn</string>')
    .replace(
      '<key>OnDemandEnabled</key>\n\t\t\t\t<integer>1</integer>',
      '<key>OnDemandEnabled</key>\n\t\t\t\t<integer>0</integer>',
    );
  const { warnings } = parseMobileconfig(xml);
  const paths = warnings.map((w) => w.path);
  t.ok(paths.includes('PayloadContent[0].VPNSubType'));
  t.ok(paths.includes('PayloadContent[0].VPN.RemoteAddress'));
  t.ok(paths.includes('PayloadContent[0].VPN.OnDemandEnabled'));
  t.match(
    warnings.find((w) => w.path.endsWith('RemoteAddress'))!.message,
    /"vpn\.contoso\.test", not 127\.0\.0\.1/,
  );
});

t.test(".mobileconfig: the seed's other VPN settings and known limitation", async (t) => {
  const xml = readFileSync(fixture('defender-gsa.mobileconfig'), 'utf8');
  const paths = (text: string) => parseMobileconfig(text).warnings.map((w) => w.path);
  const unknownKey = 'PayloadContent[0].VendorConfig.ExampleCustomKey';
  t.same(paths(xml), [unknownKey], 'the fixture follows the seed');

  // Split Tunneling: Disable (IPv4.OverridePrimary 1).
  const split = parseMobileconfig(
    xml.replace(
      '<key>OverridePrimary</key>\n\t\t\t\t<integer>1</integer>',
      '<key>OverridePrimary</key>\n\t\t\t\t<integer>0</integer>',
    ),
  ).warnings;
  t.same(
    split.map((w) => w.path),
    ['PayloadContent[0].IPv4.OverridePrimary', unknownKey],
  );
  t.match(split[0]!.message, /split tunneling is not disabled .*Split Tunneling "Disable"/);
  t.same(
    paths(xml.replace(/<key>IPv4<\/key>\s*<dict>[\s\S]*?<\/dict>/, '')),
    ['PayloadContent[0].IPv4.OverridePrimary', unknownKey],
    'no IPv4 dictionary: split tunneling not disabled',
  );

  // On Demand Rules: Connect VPN for All domains.
  const rule =
    '<dict>\n\t\t\t\t\t\t<key>Action</key>\n\t\t\t\t\t\t<string>Connect</string>\n\t\t\t\t\t</dict>';
  t.ok(xml.includes(rule));
  const rules = (r: string) => paths(xml.replace(rule, r));
  const onDemand = 'PayloadContent[0].VPN.OnDemandRules';
  t.same(rules(''), [onDemand, unknownKey], 'no rule');
  t.same(
    rules(
      '<dict><key>Action</key><string>Connect</string><key>DNSDomainMatch</key><array><string>*.contoso.com</string></array></dict>',
    ),
    [onDemand, unknownKey],
    'Connect for some domains only',
  );
  t.same(
    rules(
      '<dict><key>Action</key><string>Disconnect</string></dict><dict><key>Action</key><string>Connect</string></dict>',
    ),
    [onDemand, unknownKey],
    'a Disconnect for everything before the Connect',
  );
  t.same(
    rules(
      '<dict><key>Action</key><string>Disconnect</string><key>SSIDMatch</key><array><string>Home</string></array></dict><dict><key>Action</key><string>Connect</string></dict>',
    ),
    [unknownKey],
    'a Disconnect for one network before the Connect for all',
  );
  t.match(
    parseMobileconfig(xml.replace(rule, '')).warnings[0]!.message,
    /no on-demand rule "Connect" for all domains/,
  );

  // Known limitation: side by side with another VPN tunnel.
  const withTunnel = xml.replace(
    '<array>\n\t\t<dict>',
    '<array>\n\t\t<dict><key>PayloadType</key><string>com.apple.vpn.managed</string><key>VPNSubType</key><string>com.microsoft.CompanyPortal</string></dict>\n\t\t<dict>',
  );
  const side = parseMobileconfig(withTunnel);
  t.equal(side.config.enableGSA, 2, 'the scmx payload is read');
  t.same(
    side.warnings.map((w) => w.path),
    ['PayloadContent[0]', 'PayloadContent[1].VendorConfig.ExampleCustomKey'],
  );
  t.match(
    side.warnings[0]!.message,
    /another VPN payload \("com\.microsoft\.CompanyPortal"\) next to PayloadContent\[1\]: side by side .* isn't supported/,
  );
});

t.test('.mobileconfig: bad values, wrong files', async (t) => {
  const xml = readFileSync(fixture('defender-gsa.mobileconfig'), 'utf8').replace(
    '<key>EnableGSA</key>\n\t\t\t\t<string>2</string>',
    '<key>EnableGSA</key>\n\t\t\t\t<string>4</string>',
  );
  t.throws(() => parseMobileconfig(xml, { file: 'x.mobileconfig' }), {
    code: 'GSA_ERR_CONFIG',
    file: 'x.mobileconfig',
    issues: [
      {
        path: 'PayloadContent[0].VendorConfig.EnableGSA',
        message: '"4" is not a level (no value, 0, 1, 2 or 3)',
      },
    ],
  });
  // DER without the SignedData OID (signed profiles: client-config-real-shapes.test.ts).
  t.throws(() => parseMobileconfig('\x30\x82\x05\x00'), {
    code: 'GSA_ERR_CONFIG',
    message: /not a plist \(neither XML nor a binary plist\)/,
  });
  const errors: unknown[] = [];
  const { error } = console;
  console.error = (...a: unknown[]) => errors.push(a);
  try {
    t.throws(() => parseMobileconfig('<plist><dict><key>a</dict>'), {
      code: 'GSA_ERR_CONFIG',
      message: /not a valid XML plist: .*tag mismatch/,
    });
  } finally {
    console.error = error;
  }
  t.same(errors, [], 'xmldom complaints do not reach the console');
  t.throws(() => parseMobileconfig('<plist><array/></plist>'), {
    message: /root is not a dictionary/,
  });
  t.throws(() => parseMobileconfig('<plist><dict/></plist>'), {
    code: 'GSA_ERR_CONFIG',
    issues: [{ path: 'PayloadContent' }],
  });
  t.throws(
    () =>
      parseMobileconfig(
        '<plist><dict><key>PayloadContent</key><array><dict><key>PayloadType</key><string>com.apple.wifi.managed</string></dict></array></dict></plist>',
      ),
    { message: /no VPN payload/ },
  );
  // A VendorConfig inside the VPN dictionary is read too; the second VPN payload is chosen by identifier.
  const two = `<plist><dict><key>PayloadContent</key><array>
    <dict><key>PayloadType</key><string>com.apple.vpn.managed</string><key>VPNSubType</key><string>com.other</string></dict>
    <dict><key>PayloadType</key><string>com.apple.vpn.managed</string><key>VPNSubType</key><string>com.microsoft.scmx</string>
      <key>VPN</key><dict><key>RemoteAddress</key><string>127.0.0.1</string><key>OnDemandEnabled</key><true/>
      <key>OnDemandRules</key><array><dict><key>Action</key><string>Connect</string></dict></array>
      <key>VendorConfig</key><dict><key>EnableGSA</key><integer>3</integer><key>SilentOnboard</key><true/></dict></dict>
      <key>IPv4</key><dict><key>OverridePrimary</key><true/></dict></dict>
  </array></dict></plist>`;
  const r = parseMobileconfig(two);
  t.equal(r.config.enableGSA, 3);
  t.same(
    r.warnings.map((w) => w.path),
    ['PayloadContent[0]'],
    'only the other VPN payload (side by side) is warned of',
  );
  // A per-app VPN payload (Apple's AppLayerVPN) is read, with a warning that says what it
  // changes on a device; next to the seed's device-wide payload, the device-wide one wins.
  const perAppPayload = (type: string, level: number) => `<dict>
      <key>PayloadType</key><string>${type}</string><key>VPNSubType</key><string>com.microsoft.scmx</string>
      <key>VPNUUID</key><string>1653840A-E082-4CC2-877A-A8D188C183B6</string>
      <key>VPN</key><dict><key>RemoteAddress</key><string>127.0.0.1</string><key>OnDemandEnabled</key><true/>
      <key>OnDemandRules</key><array><dict><key>Action</key><string>Connect</string></dict></array></dict>
      <key>VendorConfig</key><dict><key>EnableGSA</key><integer>${level}</integer><key>SilentOnboard</key><true/></dict>
      <key>IPv4</key><dict><key>OverridePrimary</key><true/></dict></dict>`;
  const perApp = parseMobileconfig(
    `<plist><dict><key>PayloadContent</key><array>${perAppPayload('com.apple.vpn.managed.applayer', 3)}</array></dict></plist>`,
  );
  t.equal(perApp.config.enableGSA, 3, 'the per-app payload is read');
  t.same(
    perApp.warnings.map((w) => w.path),
    ['PayloadContent[0].PayloadType'],
  );
  t.match(perApp.warnings[0]?.message, /per-app VPN .*VPNUUID 1653840A-.*only the managed apps/);
  const both = parseMobileconfig(
    `<plist><dict><key>PayloadContent</key><array>${perAppPayload('com.apple.vpn.managed.applayer', 1)}${perAppPayload('com.apple.vpn.managed', 2)}</array></dict></plist>`,
  );
  t.equal(both.config.enableGSA, 2, 'the device-wide payload wins over a per-app one');
  t.same(
    both.warnings.map((w) => w.path),
    ['PayloadContent[0]'],
    'the per-app payload is the other VPN payload',
  );
  // Binary plists work as well.
  const bin = buildBinary({
    PayloadContent: [
      {
        PayloadType: 'com.apple.vpn.managed',
        VPNSubType: 'com.microsoft.scmx',
        VPN: { RemoteAddress: '127.0.0.1', OnDemandEnabled: 1 },
        VendorConfig: { EnableGSAInternetChannel: '2' },
      },
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), 'gsa-cc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'b.mobileconfig'), bin);
  t.equal(loadClientConfigFile(join(dir, 'b.mobileconfig')).config.enableGSAInternetChannel, 2);
});

t.test('YAML and JSON files', async (t) => {
  const y = loadClientConfigFile(fixture('gsa.yaml'));
  t.same(y.config, {
    silentOnboard: true,
    enableVPNToggleInApp: true,
    blockUsersFromDisablingAutomaticVPN: true,
    enableGSA: 3,
    enableGSAPrivateChannel: 2,
    enableGSAInternetChannel: 2,
  });
  t.same(y.warnings, []);
  const j = loadClientConfigFile(fixture('gsa.json'), { noValueMeans: 'newer' });
  t.equal(j.config.enableGSA, 1);
  t.equal(j.config.enableGSAPrivateChannel, undefined, 'empty string = no value');
  t.equal(j.config.enableGSAInternetChannel, 0);
  t.equal(j.config.noValueMeans, 'newer');
  t.equal(j.warnings.length, 1);
  t.equal(j.warnings[0]!.path, 'enablegsa');
  t.match(j.warnings[0]!.message, /did you mean EnableGSA\?/);
  t.throws(() => loadClientConfigFile(fixture('nope.ini')), { message: /unknown file type/ });
  t.throws(() => loadClientConfigFile(fixture('missing.json')), { message: /cannot read/ });
  t.throws(() => parseClientConfigText('EnableGSA: [1', 'yaml'), {
    code: 'GSA_ERR_CONFIG',
    message: /not valid YAML/,
  });
  t.throws(() => parseClientConfigText('{', 'json'), {
    code: 'GSA_ERR_CONFIG',
    message: /not valid JSON/,
  });
});

t.test('values: every accepted form, every bad value reported at once', async (t) => {
  for (const v of [2, '2', ' 2 '])
    t.equal(parseClientConfig({ EnableGSA: v }).config.enableGSA, 2, JSON.stringify(v));
  for (const v of [null, '', undefined])
    t.equal(parseClientConfig({ EnableGSA: v }).config.enableGSA, undefined);
  for (const v of ['TRUE', 'true', 'True', '1', 1, true, 'yes']) {
    t.equal(
      parseClientConfig({ EnableVPNToggleInApp: v }).config.enableVPNToggleInApp,
      true,
      String(v),
    );
  }
  for (const v of ['FALSE', 'false', '0', 0, false]) {
    t.equal(parseClientConfig({ SilentOnboard: v }).config.silentOnboard, false, String(v));
  }
  const err = t.throws(() =>
    parseClientConfig({
      EnableGSA: 4,
      EnableGSAPrivateChannel: '1.5',
      EnableGSAInternetChannel: true,
      SilentOnboard: 'maybe',
    }),
  ) as ConfigError;
  t.ok(err instanceof ConfigError);
  t.same(
    err.issues.map((i) => i.path),
    ['EnableGSA', 'EnableGSAPrivateChannel', 'EnableGSAInternetChannel', 'SilentOnboard'],
  );
  t.match(err.issues[3]!.message, /"maybe" is not a boolean/);
  // The Intune / Graph list form.
  const list = parseClientConfig([
    { name: 'EnableGSA', value: '3' },
    { key: 'SilentOnboard', value: 'True' },
    { name: 'Global Secure Access', value: '2' },
  ]);
  t.equal(list.config.enableGSA, 3);
  t.equal(list.config.silentOnboard, true);
  t.same(
    list.warnings.map((w) => w.path),
    ['[2].value'],
  );
  t.match(list.warnings[0]!.message, /Android key/);
  t.throws(
    () =>
      parseClientConfig([
        { name: 'EnableGSA', value: 1 },
        { name: 'EnableGSA', value: 2 },
      ]),
    {
      code: 'GSA_ERR_CONFIG',
      issues: [{ path: '[1].value', message: /given twice/ }],
    },
  );
  t.throws(() => parseClientConfig([7]), { code: 'GSA_ERR_CONFIG', issues: [{ path: '[0]' }] });
  t.throws(() => parseClientConfig('EnableGSA=1'), {
    code: 'GSA_ERR_CONFIG',
    issues: [{ path: '' }],
  });
  t.same(parseClientConfig({ 'Enable GSA': 1 }).warnings[0]!.path, '["Enable GSA"]');
});

/** Expected tile flags per configured level (the seed's table). */
const LEVELS: Record<Level, [boolean, boolean, boolean]> = {
  0: [false, false, false],
  1: [true, false, true],
  2: [true, true, true],
  3: [true, true, false],
};

t.test('tiles: every level 0-3 for every channel', async (t) => {
  for (const channel of CHANNELS) {
    for (const level of [0, 1, 2, 3] as Level[]) {
      const cfg: ClientConfig = {
        ...base(),
        enableGSA: 2,
        enableGSAPrivateChannel: 2,
        enableGSAInternetChannel: 2,
      };
      if (channel === 'm365') cfg.enableGSA = level;
      if (channel === 'private') cfg.enableGSAPrivateChannel = level;
      if (channel === 'internet') cfg.enableGSAInternetChannel = level;
      const tile = resolveTiles(cfg)[channel];
      t.same(
        [tile.visible, tile.defaultOn, tile.userCanToggle],
        LEVELS[level],
        `${channel} ${level}`,
      );
      t.equal(tile.level, level);
      const s = createClientTiles(cfg).state();
      const gsaOn = channel === 'm365' ? level >= 2 : true;
      t.equal(s[channel], channel === 'm365' ? gsaOn : level >= 2, `${channel} ${level} state`);
      if (channel === 'm365') {
        t.equal(s.private, gsaOn, 'private follows the GSA tile');
        t.equal(s.internet, gsaOn, 'internet follows the GSA tile');
      }
    }
  }
});

t.test('tiles: no value, seed and newer readings', async (t) => {
  const seed = resolveTiles(base());
  t.same(
    [seed.m365.visible, seed.m365.defaultOn, seed.m365.userCanToggle],
    LEVELS[0],
    'EnableGSA: not enabled',
  );
  t.same(
    [seed.private.visible, seed.private.defaultOn, seed.private.userCanToggle],
    LEVELS[2],
    'private: enabled, user can toggle',
  );
  t.same(
    [seed.internet.visible, seed.internet.defaultOn, seed.internet.userCanToggle],
    LEVELS[0],
    'internet: hidden',
  );
  t.same(createClientTiles(base()).state(), { m365: false, private: false, internet: false });
  t.same(createClientTiles({ ...base(), enableGSA: 2 }).state(), {
    m365: true,
    private: true,
    internet: false,
  });

  const newer = resolveTiles(base(), 'newer');
  t.same(
    [newer.m365.visible, newer.m365.defaultOn, newer.m365.userCanToggle],
    LEVELS[1],
    'EnableGSA: as 1',
  );
  t.same(
    [newer.private.visible, newer.private.defaultOn, newer.private.userCanToggle],
    [false, true, false],
  );
  t.match(newer.private.reason, /follows the Global Secure Access tile/);
  t.same(
    [newer.internet.visible, newer.internet.defaultOn, newer.internet.userCanToggle],
    LEVELS[0],
  );
  t.equal(resolveTiles({ ...base(), noValueMeans: 'newer' }).m365.visible, true, 'from the config');
  const tiles = createClientTiles(base(), { noValueMeans: 'newer' });
  t.same(tiles.state(), { m365: false, private: false, internet: false });
  t.same(
    tiles.toggle('m365', true),
    { m365: true, private: true, internet: false },
    'private follows',
  );
  t.throws(() => tiles.toggle('private', false), ToggleRefusedError);
});

t.test('toggles: allowed, refused when locked or hidden', async (t) => {
  const tiles = createClientTiles({
    ...base(),
    enableGSA: 1,
    enableGSAPrivateChannel: 3,
    enableGSAInternetChannel: 0,
  });
  t.same(tiles.state(), { m365: false, private: false, internet: false }, 'GSA defaults off');
  t.same(tiles.toggles(), { m365: false, private: true, internet: false });
  const seen: unknown[] = [];
  const off = tiles.onChange((s) => seen.push(s));
  t.same(tiles.toggle('m365', true), { m365: true, private: true, internet: false });
  const locked = t.throws(() => tiles.toggle('private', false)) as ToggleRefusedError;
  t.ok(locked instanceof ToggleRefusedError);
  t.equal(locked.code, 'GSA_ERR_TOGGLE_LOCKED');
  t.match(
    locked.message,
    /Private Access toggle is locked by the administrator \(EnableGSAPrivateChannel=3/,
  );
  const hidden = t.throws(() => tiles.toggle('internet', true)) as ToggleRefusedError;
  t.match(
    hidden.message,
    /Internet Access toggle is not shown to the user: EnableGSAInternetChannel=0/,
  );
  t.same(tiles.toggle('m365', false), { m365: false, private: false, internet: false });
  off();
  tiles.toggle('m365', true);
  t.equal(seen.length, 2, 'listener called per change until unsubscribed');
  const gsaLocked = createClientTiles({ ...base(), enableGSA: 3 });
  t.throws(() => gsaLocked.toggle('m365', false), {
    code: 'GSA_ERR_TOGGLE_LOCKED',
    message: /Global Secure Access tile is locked/,
  });
  // A locked tile asked for the position it has: nothing refused, nothing changes.
  const calls: unknown[] = [];
  gsaLocked.onChange((st) => calls.push(st));
  t.same(gsaLocked.toggle('m365', true), { m365: true, private: true, internet: false });
  t.equal(calls.length, 0, 'no change, no listener');
  t.throws(() => createClientTiles(base()).toggle('m365', true), {
    message: /EnableGSA has no value \(seed\)/,
  });
  const free = createClientTiles({ ...base(), enableGSA: 2, enableGSAInternetChannel: 1 });
  t.same(free.toggle('internet', true), { m365: true, private: true, internet: true });
  t.same(free.toggle('private', false), { m365: true, private: false, internet: true });
});

t.test('VPN, onboarding, ClientState', async (t) => {
  const cfg: ClientConfig = {
    ...defaultClientConfig(),
    silentOnboard: false,
    enableVPNToggleInApp: false,
    blockUsersFromDisablingAutomaticVPN: true,
  };
  const tiles = createClientTiles(cfg);
  t.same(tiles.state(), { m365: false, private: false, internet: false }, 'not onboarded');
  t.same(tiles.onboard(), { m365: true, private: true, internet: true });
  t.throws(() => tiles.setVpn(false, 'app'), {
    code: 'GSA_ERR_TOGGLE_LOCKED',
    message: /EnableVPNToggleInApp/,
  });
  t.throws(() => tiles.setVpn(false, 'settings'), {
    code: 'GSA_ERR_TOGGLE_LOCKED',
    message: /Block users from disabling automatic VPN/,
  });
  const open = createClientTiles({ ...defaultClientConfig() });
  t.same(open.setVpn(false, 'settings'), { m365: false, private: false, internet: false });
  t.same(
    open.toggles(),
    { m365: true, private: true, internet: true },
    'switches keep their positions',
  );
  t.same(open.setVpn(true, 'app'), { m365: true, private: true, internet: true });
  const ios = loadPlatform('ios');
  const st = open.toClientState(ios);
  t.same(st.channels, { m365: true, private: true, internet: true });
  t.equal(st.platform, ios);
  const snap = open.snapshot();
  t.equal(snap.onboarded, true);
  t.equal(snap.vpnOn, true);
  t.equal(snap.tiles.m365.key, 'EnableGSA');
  open.toggle('internet', false);
  const snap2 = open.snapshot();
  t.same(
    [snap2.tiles.internet.on, snap2.tiles.internet.effective, snap2.tiles.internet.visible],
    [false, false, true],
  );
  open.toggle('m365', false);
  t.same(
    [open.snapshot().tiles.private.on, open.snapshot().tiles.private.effective],
    [true, false],
  );
  const ch: ChannelName[] = Object.keys(snap.channels) as ChannelName[];
  t.same(ch, ['m365', 'private', 'internet']);
  t.equal(createClientTiles(cfg, { onboarded: true }).state().m365, true);
});

t.test('a key given twice is refused in every form (JSON object, YAML, list)', async (t) => {
  // gsa-facts.md §5: EnableGSA=3 means the user cannot disable GSA; a second EnableGSA=0
  // further down a JSON file must not silently turn it off (JSON.parse keeps the last).
  const JSON_TEXT = '{"EnableGSA": 3, "SilentOnboard": true, "EnableGSA": 0}';
  const YAML_TEXT = 'EnableGSA: 3\nSilentOnboard: true\nEnableGSA: 0\n';
  t.throws(() => parseClientConfigText(YAML_TEXT, 'yaml', { file: 'cc.yaml' }), ConfigError);
  const list = [
    { name: 'EnableGSA', value: '3' },
    { name: 'EnableGSA', value: '0' },
  ];
  t.throws(() => parseClientConfigText(JSON.stringify(list), 'json', { file: 'cc.json' }), {
    message: /given twice/,
  });
  let result: unknown = null;
  let err: unknown = null;
  try {
    result = parseClientConfigText(JSON_TEXT, 'json', { file: 'cc.json' });
  } catch (e) {
    err = e;
  }
  t.ok(
    err instanceof ConfigError,
    `a duplicate EnableGSA must be a ConfigError, got ${JSON.stringify(result)}`,
  );
  if (err instanceof ConfigError) {
    t.match(err.message, /EnableGSA/);
    t.equal(err.file, 'cc.json');
    t.same(err.issues, [
      {
        path: 'EnableGSA',
        message: 'key given twice (line 1, column 41; first at line 1, column 2)',
      },
    ]);
  }
});

t.test(
  'Windows and macOS settings (gsa-facts section 5) are explained, not "unknown"',
  async (t) => {
    const windows = [
      'HideSignOutButton',
      'HideDisablePrivateAccessButton',
      'HideDisableButton',
      'RestrictNonPrivilegedUsers',
      'IsPrivateAccessDisabledByUser',
    ];
    const macos = [
      'HideDisablePrivateAccessButton',
      'HideDisableButton',
      'HidePauseButton',
      'HideQuitButton',
    ];
    for (const key of new Set([...windows, ...macos])) {
      const { warnings } = parseClientConfig({ EnableGSA: 2, SilentOnboard: true, [key]: 1 });
      t.equal(warnings.length, 1, key);
      t.equal(warnings[0]?.path, key);
      t.match(
        warnings[0]?.message,
        /^ignored: a (Windows|macOS)\b.*, not read on platform ios \(gsa-emu reads it with --platform (windows|macos)( or --platform macos)?\)$/,
        key,
      );
    }
    const { warnings } = parseClientConfig({
      SilentOnboard: true,
      IsPrivateAccessDisabledByUser: 1,
    });
    t.match(warnings[0]?.message, /Windows per-user registry value/);
  },
);
