/**
 * A Windows registry export (`.reg`), as regedit writes it: UTF-16LE with its byte order
 * mark (also UTF-8, with or without a BOM, and REGEDIT4's ANSI), the header line
 * `Windows Registry Editor Version 5.00` (or `REGEDIT4`), `[key]` sections and
 * `"Name"=dword:00000001` values. Only what the client configuration needs is read: each
 * value's name and its DWORD (or string) value, with the line it is on and its key; only the
 * client's key (`...\Global Secure Access Client`, either hive) is read: an export of a wider
 * key holds other products' keys, whose values are skipped with one warning per key. Every
 * problem is an issue naming the line, never a throw.
 *
 * @example
 * const { pairs, issues, warnings } = parseRegFile(readFileSync('gsa.reg'));
 */
import type { ConfigIssue } from '../errors.js';

export const REG_HEADER = 'Windows Registry Editor Version 5.00';

export interface RegPair {
  key: string;
  /** The DWORD (a number) or REG_SZ (a string); for another type, its text. */
  value: unknown;
  path: string;
  /** The `[key]` the value is under, as written. */
  section: string;
  /** Set when the value is not a DWORD or string: why (the caller decides whether the name
   *  matters). */
  problem?: string;
}

/** The client's registry key: its last component (under HKLM\SOFTWARE\Microsoft, and
 *  HKCU\Software\Microsoft for the per-user value). */
export const CLIENT_KEY_NAME = 'Global Secure Access Client';

/** Whether a `[key]` is the client's: its last component is `Global Secure Access Client`. */
export function isClientKey(section: string): boolean {
  return section.split('\\').at(-1)?.trim().toLowerCase() === CLIENT_KEY_NAME.toLowerCase();
}

/** The hive a key is in: HKLM, HKCU, or its first component. */
export function hiveOf(section: string): string {
  const h = (section.split('\\')[0] ?? '').toUpperCase();
  return h === 'HKEY_LOCAL_MACHINE' ? 'HKLM' : h === 'HKEY_CURRENT_USER' ? 'HKCU' : h;
}

export interface RegParse {
  pairs: RegPair[];
  issues: ConfigIssue[];
  warnings: ConfigIssue[];
}

/** The text of a .reg file's bytes: by its byte order mark, else UTF-8. */
export function regText(bytes: Uint8Array): string {
  const b = Buffer.from(bytes);
  if (b[0] === 0xff && b[1] === 0xfe) return b.subarray(2).toString('utf16le');
  if (b[0] === 0xfe && b[1] === 0xff) {
    return Buffer.from(b.subarray(2, 2 + ((b.length - 2) & ~1)))
      .swap16()
      .toString('utf16le');
  }
  // UTF-16LE without its mark (a script's export): the first character is ASCII.
  if (b.length >= 2 && b[0] !== 0 && b[1] === 0) return b.toString('utf16le');
  return b.toString('utf8').replace(/^\uFEFF/, '');
}

/** `"Name"` at the start of a line: the name (with `\"` and `\\` unescaped) and the rest. */
function quotedName(line: string): { name: string; rest: string } | undefined {
  if (!line.startsWith('"')) return undefined;
  let name = '';
  for (let i = 1; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && i + 1 < line.length) {
      name += line[++i];
    } else if (c === '"') {
      return { name, rest: line.slice(i + 1) };
    } else {
      name += c;
    }
  }
  return undefined;
}

/** Parse a .reg export into name-value pairs (path `line N Name`). */
export function parseRegFile(data: string | Uint8Array): RegParse {
  const text = typeof data === 'string' ? data.replace(/^\uFEFF/, '') : regText(data);
  const issues: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const pairs: RegPair[] = [];
  const raw = text.split(/\r\n|\r|\n/);
  let i = 0;
  while (i < raw.length && raw[i]!.trim() === '') i++;
  const header = (raw[i] ?? '').trim();
  if (header !== REG_HEADER && header !== 'REGEDIT4') {
    issues.push({
      path: `line ${i + 1}`,
      message: `not a registry export: the first line must be "${REG_HEADER}" (regedit's File > Export), not ${JSON.stringify(header.slice(0, 60))}`,
    });
    return { pairs, issues, warnings };
  }
  /** The `[key]` the lines are under (null: none yet), and whether its values are read. */
  let section: string | null = null;
  let read = false;
  /** Keys that are not the client's, and how many value lines each has. */
  const others: Array<{ at: string; section: string; values: number }> = [];
  let other: (typeof others)[number] | undefined;
  for (i = i + 1; i < raw.length; i++) {
    const lineNo = i + 1;
    let line = raw[i]!.trim();
    // A value continued on the next lines (hex data): a trailing backslash. The parts are
    // joined once (a big REG_BINARY is thousands of lines: joining one by one is quadratic).
    if (line.endsWith('\\') && !line.startsWith('[') && !line.startsWith(';')) {
      const parts = [line.slice(0, -1)];
      while (i + 1 < raw.length) {
        const next = raw[++i]!.trim();
        if (!next.endsWith('\\')) {
          parts.push(next);
          break;
        }
        parts.push(next.slice(0, -1));
      }
      line = parts.join('');
    }
    if (line === '' || line.startsWith(';')) continue;
    const at = `line ${lineNo}`;
    if (line.startsWith('[')) {
      read = false;
      other = undefined;
      if (!line.endsWith(']')) {
        issues.push({ path: at, message: 'a key line must end with "]"' });
        section = '';
        continue;
      }
      section = line.slice(1, -1);
      if (section.startsWith('-')) {
        warnings.push({
          path: at,
          message: `deletes the key ${section.slice(1)}: ignored, and the values under it`,
        });
      } else if (!isClientKey(section)) {
        // A wider export's other keys (another product's, or one of the client's subkeys):
        // warned about at the end, those with values, in one warning.
        other = { at, section, values: 0 };
        others.push(other);
      } else {
        read = true;
      }
      continue;
    }
    // The values of a key that is not read: not looked at (any type, any syntax).
    if (section !== null && !read) {
      if (other) other.values++;
      continue;
    }
    if (line.startsWith('@=')) {
      warnings.push({ path: at, message: "the key's default value: ignored" });
      continue;
    }
    const q = quotedName(line);
    if (!q?.rest.startsWith('=')) {
      issues.push({
        path: at,
        message: `not a value line ("Name"=dword:00000001): ${JSON.stringify(line.slice(0, 60))}`,
      });
      continue;
    }
    if (section === null) {
      issues.push({ path: `${at} ${q.name}`, message: 'a value before any [key] line' });
      continue;
    }
    const v = q.rest.slice(1).trim();
    const path = `${at} ${q.name}`;
    const dword = /^dword:([0-9a-fA-F]{1,8})$/.exec(v);
    // REG_DWORD in hex form: four bytes, little-endian.
    const hex4 =
      /^hex\(4\):([0-9a-fA-F]{2}),([0-9a-fA-F]{2}),([0-9a-fA-F]{2}),([0-9a-fA-F]{2})$/.exec(v);
    if (dword) {
      pairs.push({ key: q.name, value: Number.parseInt(dword[1]!, 16), path, section });
    } else if (hex4) {
      const value = Buffer.from(hex4.slice(1, 5).join(''), 'hex').readUInt32LE(0);
      pairs.push({ key: q.name, value, path, section });
    } else if (v === '-') {
      warnings.push({ path, message: 'deletes the value: ignored (as not given)' });
    } else if (/^"(?:[^"\\]|\\.)*"$/.test(v)) {
      // REG_SZ "1": read as its text (the boolean parser takes "1" / "0").
      pairs.push({ key: q.name, value: v.slice(1, -1).replace(/\\(.)/g, '$1'), path, section });
    } else {
      pairs.push({
        key: q.name,
        value: v,
        path,
        section,
        problem: `must be a DWORD (dword:00000000 or dword:00000001), not ${JSON.stringify(v.slice(0, 40))}`,
      });
    }
  }
  const withValues = others.filter((o) => o.values > 0);
  const [first, ...more] = withValues;
  if (first) {
    const rest =
      more.length === 0
        ? ''
        : `, nor are those of ${more.length} more key${more.length === 1 ? '' : 's'} that ${more.length === 1 ? 'is' : 'are'} not (${more
            .slice(0, 3)
            .map((o) => o.at)
            .join(', ')}${more.length > 3 ? ', ...' : ''})`;
    warnings.push({
      path: first.at,
      message: `the key ${first.section} is not the client's (...\\${CLIENT_KEY_NAME}): its values are not read${rest}`,
    });
  }
  return { pairs, issues, warnings };
}

/** A .reg export of `values` (DWORDs) under `key`, as regedit writes it (UTF-16LE, BOM). */
export function regExport(key: string, values: Record<string, number>): Buffer {
  const lines = [REG_HEADER, '', `[${key}]`];
  for (const [k, v] of Object.entries(values)) {
    lines.push(
      `"${k.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"=dword:${(v >>> 0).toString(16).padStart(8, '0')}`,
    );
  }
  const text = `${lines.join('\r\n')}\r\n\r\n`;
  return Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
}
