/**
 * The text of a configuration file (forwarding profiles, client config, platform, `up` and
 * `edge` config files): YAML for `.yaml`/`.yml` names, else JSON, with a syntax error turned
 * into a ConfigError of one line.
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
 */
export function parseConfigText(text: string, file?: string, format?: 'json' | 'yaml'): unknown {
  const yaml = format ? format === 'yaml' : file !== undefined && isYamlFile(file);
  // A UTF-8 byte-order mark, as Windows editors write it, is not part of the document.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return yaml ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    const m = (e as Error).message;
    const detail = yaml
      ? m.split('\n')[0]!.replace(/:$/, '')
      : m.replace(/\r/g, '\\r').replace(/\n/g, '\\n');
    throw new ConfigError(
      [{ path: '', message: `not valid ${yaml ? 'YAML' : 'JSON'}: ${detail}` }],
      file,
    );
  }
}
