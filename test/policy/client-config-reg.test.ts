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
      '"HideSignOutButton"=-',
      '"HidePauseButton"=dword:00000001',
      '[-HKEY_CURRENT_USER\\Software\\Gone]',
    ].join('\n'),
    { platform: WINDOWS },
  );
  t.same(config.desktop?.set, ['HideDisableButton']);
  t.match(
    warnings.map((w) => `${w.path}: ${w.message}`).join('\n'),
    /line 2: the key .*not the client's/,
  );
  t.ok(warnings.some((w) => /deletes the value/.test(w.message)));
  t.ok(warnings.some((w) => /not read on platform windows/.test(w.message)));
  t.ok(warnings.some((w) => /deletes the key/.test(w.message)));
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
        ';c',
        '',
      ),
      fc.string({ maxLength: 30 }),
    ),
    { maxLength: 12 },
  );
  fc.assert(
    fc.property(lines, fc.constantFrom('\r\n', '\n', '\r'), fc.boolean(), (ls, eol, bom) => {
      const text = ls.join(eol);
      const data = bom ? utf16(text) : Buffer.from(text, 'utf8');
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
