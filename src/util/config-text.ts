/**
 * The text of a configuration file (forwarding profiles, client config, platform, `up` and
 * `edge` config files): YAML for `.yaml`/`.yml` names, else JSON, with a syntax error turned
 * into a ConfigError of one line. A key given twice in one object is refused in both: YAML
 * refuses it itself; JSON.parse would keep the last one, so JSON text is also scanned for it.
 */
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors.js';

/** True for a `.yaml` or `.yml` file name. */
export function isYamlFile(file: string): boolean {
  return /^\.ya?ml$/i.test(extname(file));
}

/**
 * Parses `text` as YAML or JSON (by `format`, else by `file`'s extension). A syntax error
 * throws ConfigError "not valid JSON: ..." / "not valid YAML: ..." on one line: YAML's code
 * frame is left out, and the newlines of the snippet V8 quotes from JSON are escaped.
 * A key given twice in one object throws ConfigError too: YAML's "Map keys must be unique"
 * as a syntax error; in JSON, at the path of the second occurrence, "key given twice (line L,
 * column C; first at line L', column C')".
 */
export function parseConfigText(text: string, file?: string, format?: 'json' | 'yaml'): unknown {
  const yaml = format ? format === 'yaml' : file !== undefined && isYamlFile(file);
  // A UTF-8 byte-order mark, as Windows editors write it, is not part of the document.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let value: unknown;
  try {
    value = yaml ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    const m = (e as Error).message;
    const detail = yaml
      ? m.split('\n')[0]!.replace(/:$/, '')
      : m.replace(/\r/g, '\\r').replace(/\n/g, '\\n');
    // A YAML file named otherwise (`config.txt`) is read as JSON: say what decides.
    const named =
      !yaml && !format && file !== undefined && extname(file).toLowerCase() !== '.json'
        ? ' (read as JSON: only a name ending in .yaml or .yml is read as YAML)'
        : '';
    throw new ConfigError(
      [{ path: '', message: `not valid ${yaml ? 'YAML' : 'JSON'}: ${detail}${named}` }],
      file,
    );
  }
  if (!yaml) {
    const dup = findDuplicateJsonKey(text);
    if (dup) {
      const at = lineColumn(text, dup.at);
      const first = lineColumn(text, dup.first);
      throw new ConfigError(
        [{ path: dup.path, message: `key given twice (${at}; first at ${first})` }],
        file,
      );
    }
  }
  return value;
}

/** A key given twice in one JSON object: its path, and the offsets of both occurrences. */
interface DuplicateJsonKey {
  /** JSON-style path of the second occurrence, e.g. `policies[1].policy.name`. */
  path: string;
  /** Offset of the second occurrence's opening quote. */
  at: number;
  /** Offset of the first occurrence's opening quote. */
  first: number;
}

/** One open object or array of the scan. */
interface Frame {
  /** Keys seen so far (decoded) -> offset of their quote; null for an array. */
  keys: Map<string, number> | null;
  /** The current member's key (object) or the current element's index (array). */
  key: string;
  index: number;
}

/** A key written as is in a path; others are quoted, `["a b"]`. */
const PLAIN_KEY = /^[^\s.[\]"'\\]+(?:\.[^\s.[\]"'\\]+)*$/;

/** The JSON-style path of the current member of the innermost open container. */
function pathOf(stack: readonly Frame[]): string {
  let path = '';
  for (const f of stack) {
    if (f.keys === null) path += `[${f.index}]`;
    else if (!PLAIN_KEY.test(f.key)) path += `[${JSON.stringify(f.key)}]`;
    else path += path === '' ? f.key : `.${f.key}`;
  }
  return path;
}

/**
 * The first key given twice in one object of `text`, which must be valid JSON (parse it
 * first), or null. Keys compare decoded, as JSON.parse sees them (`"a"` and `"\u0061"` are
 * the same key). One pass, no recursion: linear in the text, whatever its depth.
 */
function findDuplicateJsonKey(text: string): DuplicateJsonKey | null {
  const stack: Frame[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let end = i + 1;
      let escaped = false;
      for (; end < text.length; end++) {
        const d = text.charCodeAt(end);
        if (d === 0x5c /* \\ */) {
          escaped = true;
          end++;
        } else if (d === 0x22) break;
      }
      const lit = text.slice(i, end + 1);
      const top = stack[stack.length - 1];
      if (expectKey && top?.keys) {
        const key = escaped ? (JSON.parse(lit) as string) : lit.slice(1, -1);
        const first = top.keys.get(key);
        top.key = key;
        if (first !== undefined) return { path: pathOf(stack), at: i, first };
        top.keys.set(key, i);
        expectKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const obj = c === 0x7b;
      stack.push({ keys: obj ? new Map() : null, key: '', index: 0 });
      expectKey = obj;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) expectKey = true;
      else if (top) top.index++;
    }
  }
  return null;
}

/** "line L, column C" (1-based) of offset `at` in `text`. */
function lineColumn(text: string, at: number): string {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < at; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return `line ${line}, column ${at - start + 1}`;
}
