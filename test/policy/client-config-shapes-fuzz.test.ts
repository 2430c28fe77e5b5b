/**
 * parseMobileconfig's contract over the shapes an MDM delivers (docs/decisions/
 * client-config-real-shapes.md): whatever the bytes (a prolog of declarations, doctypes and
 * comments; a bare <dict>; the managed domain; signed, binary or odd bytes), the result is
 * `{ config, warnings }` or one ConfigError, quickly. And the key-value pairs read as a
 * managed app configuration give the same configuration, warnings and errors as the same
 * pairs in the seed's VPN profile (VendorConfig).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import t from 'tap';
import { ConfigError } from '../../src/errors.js';
import { parseMobileconfig } from '../../src/policy/client-config.js';

const real = (name: string) =>
  readFileSync(fileURLToPath(new URL(`../fixtures/client-config/real/${name}`, import.meta.url)));

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const KEYS = [
  'EnableGSA',
  'EnableGSAPrivateChannel',
  'EnableGSAInternetChannel',
  'SilentOnboard',
  'EnableVPNToggleInApp',
  'BlockUsersFromDisablingAutomaticVPN',
  'Global Secure Access',
  'GlobalSecureAccessPrivateChannel',
  'enablegsa',
  'silentonboard',
  'HideSignOutButton',
  'IntuneMAMUPN',
  'PayloadContent',
  'EncryptedPayloadContent',
  'com.apple.configuration.managed',
  'constructor',
];

/** A plist value as XML: typed values, strings, nested dicts and arrays. */
const value: fc.Arbitrary<string> = fc.letrec<{ v: string }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc
      .constantFrom('0', '1', '2', '3', '4', 'TRUE', 'true', 'yes', 'no', '', ' 2 ')
      .map((s) => `<string>${s}</string>`),
    fc.string().map((s) => `<string>${esc(s)}</string>`),
    fc.integer({ min: -5, max: 5 }).map((n) => `<integer>${n}</integer>`),
    fc.constantFrom(
      '<true/>',
      '<false/>',
      '<real>2.0</real>',
      '<real>1.5</real>',
      '<data>AAAA</data>',
      '<date>2026-01-01T00:00:00Z</date>',
      '<integer>99999999999999999999</integer>',
      '<string/>',
      '<dict/>',
      '<array/>',
    ),
    fc.array(tie('v'), { maxLength: 3 }).map((vs) => `<array>${vs.join('')}</array>`),
    fc
      .array(fc.tuple(fc.constantFrom(...KEYS), tie('v')), { maxLength: 3 })
      .map((kv) => `<dict>${kv.map(([k, v]) => `<key>${esc(k)}</key>${v}`).join('')}</dict>`),
  ),
})).v;

const pairs = fc.uniqueArray(fc.tuple(fc.oneof(fc.constantFrom(...KEYS), fc.string()), value), {
  selector: ([k]) => k,
  maxLength: 6,
});
const dictOf = (kv: Array<[string, string]>) =>
  `<dict>${kv.map(([k, v]) => `<key>${esc(k)}</key>${v}`).join('')}</dict>`;

const prolog = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
        '<!DOCTYPE plist [<!ENTITY a "b">]>',
        '\n',
        ' ',
        '\uFEFF',
      ),
      fc.string().map((s) => `<!--${s.replace(/--/g, '')}-->`),
    ),
    { maxLength: 4 },
  )
  .map((xs) => xs.join(''));

const body = fc.oneof(
  pairs.map(dictOf),
  pairs.map((kv) => `<plist version="1.0">${dictOf(kv)}</plist>`),
  pairs.map(
    (kv) => `<plist><dict><key>com.apple.configuration.managed</key>${dictOf(kv)}</dict></plist>`,
  ),
  value,
  fc.array(value, { maxLength: 2 }).map((vs) => `<plist version="1.0">${vs.join('')}</plist>`),
);

/** The contract: a result, or one ConfigError with at least one issue; nothing else. */
function holds(input: string | Uint8Array): boolean {
  const t0 = performance.now();
  try {
    const r = parseMobileconfig(input, { file: 'x.xml' });
    if (typeof r.config !== 'object' || !Array.isArray(r.warnings)) return false;
  } catch (e) {
    if (!(e instanceof ConfigError) || e.issues.length === 0) throw e;
  }
  if (performance.now() - t0 > 2000) throw new Error('took over 2 s');
  return true;
}

t.test(
  'prolog + bare dict, plist, managed domain or any value: a result or a ConfigError',
  async (t) => {
    fc.assert(
      fc.property(prolog, body, fc.boolean(), (p, b, asBytes) => {
        const s = p + b;
        return holds(asBytes ? Buffer.from(s) : s);
      }),
      { numRuns: 400 },
    );
    t.pass('contract held');
  },
);

t.test('odd bytes behind real headers (DER, PEM, bplist, BOMs, fixtures cut short)', async (t) => {
  const heads = [
    Buffer.from([0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]),
    Buffer.from([
      0x30, 0x82, 0x01, 0x00, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03,
    ]),
    Buffer.from([0x30]),
    Buffer.from('-----BEGIN PKCS7-----\n'),
    Buffer.from('bplist00'),
    Buffer.from([0xef, 0xbb, 0xbf]),
    Buffer.from([0xff, 0xfe]),
    Buffer.from([0xfe, 0xff]),
    Buffer.from('<!--'),
    Buffer.from('<?xml'),
    Buffer.from(''),
  ];
  const fixtures = [
    'intune-custom-vpn.mobileconfig',
    'intune-custom-vpn-binary.mobileconfig',
    'intune-custom-vpn-signed.mobileconfig',
    'appconfig-intune.xml',
    'appconfig-managed-domain.plist',
  ].map(real);
  fc.assert(
    fc.property(
      fc.oneof(
        fc
          .tuple(fc.constantFrom(...heads), fc.uint8Array({ maxLength: 200 }))
          .map(([h, b]) => Buffer.concat([h, b])),
        fc.tuple(fc.constantFrom(...fixtures), fc.nat(), fc.nat(255)).map(([f, at, byte]) => {
          const b = Buffer.from(f.subarray(0, (at % f.length) + 1));
          b[at % b.length] = byte; // cut short, one byte changed
          return b;
        }),
      ),
      holds,
    ),
    { numRuns: 600 },
  );
  t.pass('contract held');
});

/** The seed's VPN profile (no payload warnings) with `vendor` as its VendorConfig. */
const profile = (vendor: string) =>
  `<plist version="1.0"><dict><key>PayloadContent</key><array><dict>` +
  '<key>PayloadType</key><string>com.apple.vpn.managed</string>' +
  '<key>VPNSubType</key><string>com.microsoft.scmx</string>' +
  '<key>IPv4</key><dict><key>OverridePrimary</key><integer>1</integer></dict>' +
  '<key>VPN</key><dict><key>RemoteAddress</key><string>127.0.0.1</string>' +
  '<key>OnDemandEnabled</key><integer>1</integer>' +
  '<key>OnDemandRules</key><array><dict><key>Action</key><string>Connect</string></dict></array></dict>' +
  `<key>VendorConfig</key>${vendor}</dict></array></dict></plist>`;

type Outcome = { config?: unknown; warnings?: string[]; issues?: string[] };
const outcome = (input: string, prefix: string): Outcome => {
  // Paths without the VendorConfig prefix, also where a message names one ("given at ...").
  // A missing key's warning names the bare key (SilentOnboard) in both forms.
  const strip = (p: string) => (prefix ? p.replaceAll(`${prefix}.`, '').replaceAll(prefix, '') : p);
  try {
    const { config, warnings } = parseMobileconfig(input);
    const { vpn: _vpn, ...rest } = config;
    return { config: rest, warnings: warnings.map((w) => strip(`${w.path}: ${w.message}`)) };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { issues: e.issues.map((i) => strip(`${i.path}: ${i.message}`)) };
  }
};

t.test('app configuration reads its pairs as the VPN profile reads VendorConfig', async (t) => {
  const known = fc.uniqueArray(
    fc.tuple(
      fc.constantFrom(...KEYS.filter((k) => !/Payload|managed/.test(k))),
      fc.oneof(
        fc.constantFrom('0', '1', '2', '3', 'TRUE', 'no', 'x').map((s) => `<string>${s}</string>`),
        fc.integer({ min: 0, max: 4 }).map((n) => `<integer>${n}</integer>`),
        fc.constantFrom('<true/>', '<false/>'),
      ),
    ),
    { selector: ([k]) => k, minLength: 1, maxLength: 6 },
  );
  fc.assert(
    fc.property(known, (kv) => {
      // At least one key the app configuration is recognised by.
      if (!kv.some(([k]) => KEYS.slice(0, 10).includes(k))) return true;
      const dict = dictOf(kv);
      const vpn = outcome(profile(dict), 'PayloadContent[0].VendorConfig');
      const app = outcome(dict, '');
      if (app.warnings) {
        const [note, ...rest] = app.warnings;
        if (!/^: read as a managed app configuration/.test(note ?? '')) return false;
        app.warnings = rest;
      }
      t.same(app, vpn, dict);
      return true;
    }),
    { numRuns: 200 },
  );
});
