/**
 * The client configuration in the shapes an MDM really delivers (docs/decisions/
 * client-config-real-shapes.md): Intune's custom VPN profile as XML and as a binary plist,
 * typed plist values (<true/>, <integer>), a signed (CMS) profile, and Defender's managed app
 * configuration (Intune "Enter XML data": a bare <dict>; a plist; the
 * com.apple.configuration.managed domain). Fixtures: test/fixtures/client-config/real/.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import {
  createClientTiles,
  loadClientConfigFile,
  parseMobileconfig,
  resolveTiles,
} from '../../src/policy/client-config.js';
import { loadPlatform } from '../../src/policy/platform.js';

const dir = fileURLToPath(new URL('../fixtures/client-config/real/', import.meta.url));
const fixture = (name: string) => join(dir, name);
const platform = loadPlatform('ios');

/** Visible / on by default / user can toggle, per channel. */
const flags = (file: string) => {
  const { config } = loadClientConfigFile(fixture(file), { platform });
  const tiles = resolveTiles(config);
  const f = (c: 'm365' | 'private' | 'internet') =>
    `${tiles[c].visible ? 'visible' : 'hidden'},${tiles[c].defaultOn ? 'on' : 'off'},${tiles[c].userCanToggle ? 'user' : 'locked'}`;
  return { m365: f('m365'), private: f('private'), internet: f('internet') };
};

t.test('Intune custom VPN profile: XML and binary plist read alike', async (t) => {
  for (const file of ['intune-custom-vpn.mobileconfig', 'intune-custom-vpn-binary.mobileconfig']) {
    const { config, warnings } = loadClientConfigFile(fixture(file), { platform });
    t.same(warnings, [], `${file}: the seed's profile warns about nothing`);
    t.match(
      config,
      {
        enableGSA: 3,
        enableGSAPrivateChannel: 2,
        enableGSAInternetChannel: 1,
        silentOnboard: true, // "True"
        enableVPNToggleInApp: true, // "TRUE"
        blockUsersFromDisablingAutomaticVPN: true, // VPN.OnDemandUserOverrideDisabled 1
        vpn: {
          identifier: 'com.microsoft.scmx',
          serverAddress: '127.0.0.1',
          onDemandEnabled: true,
        },
      },
      file,
    );
    t.same(flags(file), {
      m365: 'visible,on,locked',
      private: 'visible,on,user',
      internet: 'visible,off,user',
    });
    const tiles = createClientTiles(config);
    t.same(tiles.state(), { m365: true, private: true, internet: false });
    t.throws(() => tiles.toggle('m365', false), { code: 'GSA_ERR_TOGGLE_LOCKED' }, 'EnableGSA=3');
    t.throws(() => tiles.setVpn(false, 'settings'), { code: 'GSA_ERR_TOGGLE_LOCKED' });
  }
});

t.test('typed plist values: <true/>, <integer>, lower-case "true"', async (t) => {
  const { config, warnings } = loadClientConfigFile(fixture('typed-values.mobileconfig'));
  t.same(warnings, []);
  t.match(config, {
    enableGSA: 2,
    enableGSAPrivateChannel: 3,
    enableGSAInternetChannel: 0,
    silentOnboard: true,
    enableVPNToggleInApp: true,
    blockUsersFromDisablingAutomaticVPN: true, // <true/>
  });
  t.same(flags('typed-values.mobileconfig'), {
    m365: 'visible,on,user',
    private: 'visible,on,locked',
    internet: 'hidden,off,locked',
  });
});

t.test('a signed profile (CMS SignedData, DER or PEM) says how to unwrap it', async (t) => {
  for (const [file, inform] of [
    ['intune-custom-vpn-signed.mobileconfig', 'DER'],
    ['intune-custom-vpn-signed.pem.mobileconfig', 'PEM'],
  ] as const) {
    t.throws(
      () => loadClientConfigFile(fixture(file)),
      {
        code: 'GSA_ERR_CONFIG',
        issues: [
          {
            path: '',
            message: new RegExp(
              `^this is a signed profile \\(CMS/PKCS#7 SignedData, ${inform}\\).*export the unsigned profile.*openssl smime -verify -noverify -inform ${inform} `,
            ),
          },
        ],
      },
      file,
    );
  }
  // The plist inside is the unsigned fixture (the command the message gives extracts it).
  const der = readFileSync(fixture('intune-custom-vpn-signed.mobileconfig'));
  const plain = readFileSync(fixture('intune-custom-vpn.mobileconfig'));
  t.ok(der.includes(plain), 'the signed fixture carries the unsigned profile');
});

t.test('managed app configuration: Intune XML, a plist, the managed domain', async (t) => {
  for (const [file, path] of [
    ['appconfig-intune.xml', ''],
    ['appconfig.plist', ''],
    ['appconfig-managed-domain.plist', '["com.apple.configuration.managed"]'],
  ] as const) {
    const { config, warnings } = loadClientConfigFile(fixture(file), { platform });
    t.match(
      config,
      {
        enableGSA: 2,
        enableGSAPrivateChannel: 3,
        enableGSAInternetChannel: 1,
        silentOnboard: true,
        enableVPNToggleInApp: true,
        blockUsersFromDisablingAutomaticVPN: false,
      },
      file,
    );
    t.equal(config.vpn, undefined, `${file}: no VPN payload`);
    t.same(
      warnings.map((w) => w.path),
      [path],
      `${file}: one warning, that it is app configuration`,
    );
    t.match(warnings[0]?.message, /managed app configuration .*not a VPN profile/);
    t.same(flags(file), {
      m365: 'visible,on,user',
      private: 'visible,on,locked',
      internet: 'visible,off,user',
    });
  }
  // Unknown and misspelt keys are warned about with their paths, as in VendorConfig.
  const { warnings } = parseMobileconfig(
    '<dict><key>EnableGSA</key><string>1</string><key>silentonboard</key><string>TRUE</string></dict>',
  );
  t.match(
    warnings.map((w) => `${w.path}: ${w.message}`),
    [
      /^: read as a managed app configuration/,
      /^silentonboard: unknown key.*did you mean SilentOnboard/,
      /^SilentOnboard: not TRUE/,
    ],
  );
  // A plist with neither a profile nor a client key is still refused.
  t.throws(
    () => parseMobileconfig('<plist><dict><key>Other</key><string>x</string></dict></plist>'),
    {
      code: 'GSA_ERR_CONFIG',
      issues: [{ path: 'PayloadContent', message: /^missing: not a configuration profile/ }],
    },
  );
  t.throws(
    () =>
      parseMobileconfig('<plist><dict><key>PayloadContent</key><string>x</string></dict></plist>'),
    {
      code: 'GSA_ERR_CONFIG',
      issues: [{ path: 'PayloadContent', message: 'not an array of payloads' }],
    },
  );
});

t.test('an encrypted profile says so', async (t) => {
  t.throws(
    () =>
      parseMobileconfig(
        '<plist><dict><key>PayloadType</key><string>Configuration</string><key>EncryptedPayloadContent</key><data>AAAA</data></dict></plist>',
      ),
    { code: 'GSA_ERR_CONFIG', issues: [{ path: 'EncryptedPayloadContent', message: /encrypted/ }] },
  );
});

t.test('a configuration profile without payloads is not read as app configuration', async (t) => {
  // Keys at a profile's top level are not read by a device: refused, not taken.
  t.throws(
    () =>
      parseMobileconfig(
        '<plist><dict><key>PayloadType</key><string>Configuration</string><key>EnableGSA</key><string>3</string></dict></plist>',
      ),
    {
      code: 'GSA_ERR_CONFIG',
      issues: [
        { path: 'PayloadContent', message: /a configuration profile .* holds its payloads there/ },
      ],
    },
  );
});

t.test('a bare <dict> is read even where a comment or a string mentions <plist>', async (t) => {
  for (const xml of [
    '<!-- Intune "Enter XML data": the <dict> alone, no <plist> around it -->\n<dict><key>EnableGSA</key><integer>2</integer></dict>',
    '<dict><key>EnableGSA</key><integer>2</integer><!-- not a <plist> --></dict>',
    '<dict><key>EnableGSA</key><integer>2</integer><key>Note</key><string><![CDATA[<plist>]]></string></dict>',
  ]) {
    t.equal(parseMobileconfig(xml).config.enableGSA, 2, xml);
  }
});

t.test(
  'the managed domain: client keys outside it are warned about, not dropped silently',
  async (t) => {
    const { config, warnings } = parseMobileconfig(
      '<plist><dict><key>com.apple.configuration.managed</key><dict><key>EnableGSA</key><integer>2</integer><key>SilentOnboard</key><true/></dict>' +
        '<key>EnableGSAInternetChannel</key><integer>2</integer><key>Other</key><string>x</string></dict></plist>',
    );
    t.equal(config.enableGSA, 2);
    t.equal(config.enableGSAInternetChannel, undefined, 'not read from outside the domain');
    t.match(
      warnings.map((w) => `${w.path}: ${w.message}`),
      [
        /^\["com\.apple\.configuration\.managed"\]: read as a managed app configuration/,
        /^EnableGSAInternetChannel: ignored: outside com\.apple\.configuration\.managed/,
      ],
    );
    t.equal(warnings.length, 2, 'a key no client reads (Other) is not named');
  },
);

t.test('UTF-16 XML (Windows PowerShell 5 `Out-File`, Notepad "Unicode") is read', async (t) => {
  const xml =
    '<?xml version="1.0" encoding="utf-16"?>\r\n<dict><key>EnableGSA</key><integer>2</integer></dict>\r\n';
  const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(xml, 'utf16le')]);
  const be = Buffer.from(le).swap16();
  for (const [name, bytes] of [
    ['UTF-16LE', le],
    ['UTF-16BE', be],
  ] as const) {
    t.equal(parseMobileconfig(bytes).config.enableGSA, 2, name);
  }
});

t.test('bytes that are no plist and no signed profile are not called signed', async (t) => {
  const envelopedData = Buffer.from([
    0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03, 0xa0, 0x80,
  ]);
  for (const [name, bytes, hint] of [
    ['JSON', Buffer.from('{"EnableGSA": "2"}'), /\.json or \.yaml/],
    ['DER, not SignedData', envelopedData, /not a plist \(neither XML nor a binary plist\)/],
  ] as const) {
    t.throws(() => parseMobileconfig(bytes), { code: 'GSA_ERR_CONFIG', message: hint }, name);
    t.throws(
      () => parseMobileconfig(bytes),
      { message: /^(?![\s\S]*signed)/ },
      `${name}: not "signed"`,
    );
  }
});
