/**
 * A Windows registry export (.reg) as a client configuration (`--platform windows`):
 * regedit's UTF-16LE with its byte order mark (and UTF-8, REGEDIT4), `[key]` sections,
 * `"Name"=dword:0000000n`; every problem is one ConfigError naming its line and value, and
 * whatever the bytes the parser answers `{ config, warnings }` or a ConfigError (fuzzed).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { ConfigError } from '../../src/errors.js';
import {
  loadClientConfigFile,
  parseClientConfig,
  parseRegConfig,
} from '../../src/policy/client-config.js';
import { DESKTOP_KEYS } from '../../src/policy/desktop-settings.js';
import { loadPlatform } from '../../src/policy/platform.js';
import { regExport } from '../../src/policy/reg-file.js';
import { tempDir } from '../edge/helpers.js';

const WINDOWS = loadPlatform('windows');
const KEY = 'HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Global Secure Access Client';

const utf16 = (text: string) =>
  Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);

t.test("regedit's export (UTF-16LE, BOM) is read, both hives", async (t) => {
  const text = [
    'Windows Registry Editor Version 5.00',
    '',
    `[${KEY}]`,
    '"HideDisableButton"=dword:00000001',
    '"RestrictNonPrivilegedUsers"=dword:00000000',
    '"EnableGSA"=dword:00000002',
    '"SilentOnboard"="1"',
    '',
    '; the user switched Private Access off',
    '[HKEY_CURRENT_USER\\Software\\Microsoft\\Global Secure Access Client]',
    '"IsPrivateAccessDisabledByUser"=dword:00000001',
    '',
  ].join('\r\n');
  const { config, warnings } = parseRegConfig(utf16(text), { platform: WINDOWS });
  t.same(config.desktop?.set, ['HideDisableButton', 'IsPrivateAccessDisabledByUser']);
  t.equal(config.enableGSA, 2);
  t.equal(config.silentOnboard, true);
  t.same(warnings, []);
  // UTF-8 (no BOM) and REGEDIT4 too; and through the file loader by extension.
  const tmp = await tempDir();
  t.teardown(tmp.remove);
  const file = join(tmp.dir, 'gsa.reg');
  await writeFile(file, text.replace('Windows Registry Editor Version 5.00', 'REGEDIT4'));
  t.same(loadClientConfigFile(file, { platform: WINDOWS }).config, config);
});

t.test('bad input: one ConfigError naming each line and value', async (t) => {
  const bad = (text: string) => {
    const err = t.throws(() => parseRegConfig(utf16(text), { platform: WINDOWS, file: 'x.reg' }));
    t.ok(err instanceof ConfigError, text.slice(0, 40));
    return (err as Error).message;
  };
  t.match(
    bad('[HKEY_LOCAL_MACHINE]\r\n"A"=dword:1'),
    /^x\.reg: 1 problem\n {2}line 1: not a registry export/,
  );
  const m = bad(
    [
      'Windows Registry Editor Version 5.00',
      `[${KEY}]`,
      '"HideDisableButton"=dword:00000002',
      '"HideSignOutButton"=hex:01,00,00,00',
      'HideDisablePrivateAccessButton=dword:00000001',
      `[${KEY}`,
    ].join('\r\n'),
  );
  t.match(m, /line 3 HideDisableButton: 2 is not a boolean/);
  t.match(m, /line 4 HideSignOutButton: must be a DWORD \(dword:00000000 or dword:00000001\)/);
  t.match(m, /line 5: not a value line/);
  t.match(m, /line 6: a key line must end with "\]"/);
  t.match(
    bad('Windows Registry Editor Version 5.00\r\n"HideDisableButton"=dword:00000001'),
    /line 2 HideDisableButton: a value before any \[key\] line/,
  );
  t.match(
    bad(
      `Windows Registry Editor Version 5.00\r\n[${KEY}]\r\n"HideDisableButton"=dword:00000001\r\n"HideDisableButton"=dword:00000000`,
    ),
    /HideDisableButton is given twice \(also at line 3 HideDisableButton\)/,
  );
});

t.test('warnings: another key, deletions, a macOS setting', async (t) => {
  const { config, warnings } = parseRegConfig(
    [
      'Windows Registry Editor Version 5.00',
      '[HKEY_CURRENT_USER\\Software\\Other]',
      '"HideDisableButton"=dword:00000001',
      `[${KEY}]`,
      '"HideSignOutButton"=-',
      '"HidePauseButton"=dword:00000001',
      '[-HKEY_CURRENT_USER\\Software\\Gone]',
    ].join('\n'),
    { platform: WINDOWS },
  );
  t.same(config.desktop?.set, []);
  t.match(
    warnings.map((w) => `${w.path}: ${w.message}`).join('\n'),
    /line 2: the key .*not the client's .*its values are not read$/m,
  );
  t.ok(warnings.some((w) => /deletes the value/.test(w.message)));
  t.ok(warnings.some((w) => /not read on platform windows/.test(w.message)));
  t.ok(warnings.some((w) => /deletes the key/.test(w.message)));
});

t.test("a wider export: only the client's key is read, whatever the other keys hold", async (t) => {
  // regedit's export of HKLM\SOFTWARE\Microsoft holds every product's key: their values
  // (any type, any name) are neither read nor refused; the client's own key's unknown
  // values of other types are warnings, as unknown DWORDs are.
  const text = [
    'Windows Registry Editor Version 5.00',
    '',
    '[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft]',
    '',
    '[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Other Product]',
    '"InstallPath"=hex(2):43,00,3a,00,5c,00,00,00',
    '"HideDisableButton"=dword:00000001',
    '"Version"="1.2"',
    '"Big"=hex(b):01,00,00,00,00,00,00,00',
    '"List"=hex(7):41,00,00,00,\\',
    '  00,00',
    '@="default"',
    '',
    `[${KEY}]`,
    '"HideSignOutButton"=dword:00000001',
    '"InstalledVersion"="2.1.0"',
    '"Telemetry"=hex:01,02',
    '',
    `[${KEY}\\Subkey]`,
    '"RestrictNonPrivilegedUsers"=dword:00000001',
    '',
  ].join('\r\n');
  const { config, warnings } = parseRegConfig(utf16(text), { platform: WINDOWS });
  t.same(config.desktop?.set, ['HideSignOutButton']);
  const w = warnings.map((x) => `${x.path}: ${x.message}`).join('\n');
  // One warning for the other keys with values (not the parent key, which has none).
  t.match(
    w,
    /line 5: the key HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Other Product is not the client's .*: its values are not read, nor are those of 1 more key that is not \(line 19\)/,
  );
  t.notMatch(w, /line 3/);
  t.match(w, /line 16 InstalledVersion: unknown key, ignored/);
  t.match(w, /line 17 Telemetry: unknown key, ignored/);
  t.notMatch(w, /InstallPath|Version"|line 7/);
});

t.test('the values of a deleted key are not read, and are not "before any key"', async (t) => {
  const { config, warnings } = parseRegConfig(
    [
      'Windows Registry Editor Version 5.00',
      `[-${KEY}]`,
      '"HideDisableButton"=dword:00000001',
    ].join('\r\n'),
    { platform: WINDOWS },
  );
  t.same(config.desktop?.set, []);
  t.ok(warnings.some((x) => x.path === 'line 2' && /deletes the key/.test(x.message)));
});

t.test('a comment ending in a backslash does not swallow the next line', async (t) => {
  const { config } = parseRegConfig(
    [
      'Windows Registry Editor Version 5.00',
      `[${KEY}]`,
      '; set by C:\\Tools\\',
      '"HideDisableButton"=dword:00000001',
    ].join('\r\n'),
    { platform: WINDOWS },
  );
  t.same(config.desktop?.set, ['HideDisableButton']);
});

t.test('UTF-16LE without a byte order mark; a DWORD written as hex(4)', async (t) => {
  const text = [
    'Windows Registry Editor Version 5.00',
    `[${KEY}]`,
    '"HideDisableButton"=dword:00000001',
    '"HideSignOutButton"=hex(4):01,00,00,00',
    '"RestrictNonPrivilegedUsers"=hex(4):00,00,00,00',
  ].join('\r\n');
  const { config } = parseRegConfig(Buffer.from(text, 'utf16le'), { platform: WINDOWS });
  t.same(config.desktop?.set, ['HideDisableButton', 'HideSignOutButton']);
  // hex(4) of another length is not a DWORD.
  t.throws(
    () =>
      parseRegConfig(
        `Windows Registry Editor Version 5.00\n[${KEY}]\n"HideDisableButton"=hex(4):01,00`,
        {
          platform: WINDOWS,
        },
      ),
    /line 3 HideDisableButton: must be a DWORD/,
  );
});

t.test(
  'the hive: a per-user value under HKLM, or a policy under HKCU, is warned about',
  async (t) => {
    const { config, warnings } = parseRegConfig(
      [
        'Windows Registry Editor Version 5.00',
        '[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Global Secure Access Client]',
        '"IsPrivateAccessDisabledByUser"=dword:00000001',
        '[HKEY_CURRENT_USER\\Software\\Microsoft\\Global Secure Access Client]',
        '"HideDisableButton"=dword:00000001',
      ].join('\r\n'),
      { platform: WINDOWS },
    );
    t.same(config.desktop?.set, ['IsPrivateAccessDisabledByUser', 'HideDisableButton']);
    const w = warnings.map((x) => `${x.path}: ${x.message}`).join('\n');
    t.match(w, /line 3 IsPrivateAccessDisabledByUser: .*HKEY_CURRENT_USER/);
    t.match(w, /line 5 HideDisableButton: .*HKEY_LOCAL_MACHINE/);
  },
);

t.test('a big binary value continued over many lines is read in linear time', async (t) => {
  // regedit writes REG_BINARY as hex: continued with a trailing backslash, 25 bytes a line;
  // another product's 4 MiB blob in a wider export is ~170,000 lines. Joining them one by
  // one took minutes (quadratic); a linear join takes well under a second.
  const bytes = 4 * 1024 * 1024;
  const line = Array.from({ length: 25 }, () => '00').join(',');
  const hex = Array.from({ length: Math.ceil(bytes / 25) }, () => line).join(',\\\r\n  ');
  const text = [
    'Windows Registry Editor Version 5.00',
    '[HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Other Product]',
    `"Blob"=hex:${hex}`,
    `[${KEY}]`,
    '"HideDisableButton"=dword:00000001',
    '',
  ].join('\r\n');
  const t0 = performance.now();
  const { config } = parseRegConfig(text, { platform: WINDOWS });
  const ms = performance.now() - t0;
  t.same(config.desktop?.set, ['HideDisableButton']);
  t.ok(ms < 5000, `parsed in ${Math.round(ms)} ms`);
});

t.test('fuzz: any bytes give a result or one ConfigError', async () => {
  const lines = fc.array(
    fc.oneof(
      fc.constantFrom(
        'Windows Registry Editor Version 5.00',
        `[${KEY}]`,
        '[',
        '[-x]',
        '@="x"',
        '"HideDisableButton"=dword:00000001',
        '"HideDisableButton"=dword:',
        '"A\\"=dword:1',
        '"x"=hex:01,\\',
        '  02',
        '"x"="\\"',
        '[HKEY_LOCAL_MACHINE\\SOFTWARE\\Other]',
        `[${KEY}\\Sub]`,
        '"HideDisableButton"=hex(4):01,00,00,00',
        '"HideDisableButton"=hex(4):01',
        '"x"=hex(b):01,00,00,00,00,00,00,00',
        '; c:\\',
        ';c',
        '',
      ),
      fc.string({ maxLength: 30 }),
    ),
    { maxLength: 12 },
  );
  fc.assert(
    fc.property(lines, fc.constantFrom('\r\n', '\n', '\r'), fc.nat(2), (ls, eol, enc) => {
      const text = ls.join(eol);
      const data =
        enc === 0
          ? utf16(text)
          : enc === 1
            ? Buffer.from(text, 'utf8')
            : Buffer.from(text, 'utf16le');
      try {
        parseRegConfig(data, { platform: WINDOWS });
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
      }
    }),
    { numRuns: 400 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
      try {
        parseRegConfig(bytes, { platform: WINDOWS });
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
      }
    }),
    { numRuns: 300 },
  );
});

t.test('fuzz: an export reads as the same values in JSON', async () => {
  const values = fc.dictionary(fc.constantFrom(...DESKTOP_KEYS.windows), fc.constantFrom(0, 1));
  fc.assert(
    fc.property(values, (v) => {
      const fromReg = parseRegConfig(regExport(KEY, v), { platform: WINDOWS });
      const fromJson = parseClientConfig(v, { platform: WINDOWS });
      const a = JSON.stringify(fromReg.config);
      const b = JSON.stringify(fromJson.config);
      if (a !== b) throw new Error(`${a} !== ${b}`);
    }),
    { numRuns: 200 },
  );
});

t.test('the example files load by extension', async (t) => {
  const fixture = (f: string) => join(import.meta.dirname, '..', 'fixtures', 'client-config', f);
  const w = loadClientConfigFile(fixture('gsa-windows.reg'), { platform: WINDOWS });
  t.same(w.config.desktop?.set, [
    'HideSignOutButton',
    'HideDisablePrivateAccessButton',
    'HideDisableButton',
    'RestrictNonPrivilegedUsers',
  ]);
  const m = loadClientConfigFile(fixture('gsa-macos.mobileconfig'), {
    platform: loadPlatform('macos'),
  });
  t.same(m.config.desktop?.set, ['HideDisablePrivateAccessButton', 'HideQuitButton']);
});
