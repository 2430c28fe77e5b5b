/**
 * Configuration text (src/util/config-text.ts): YAML for .yaml/.yml, else JSON; a syntax
 * error is a ConfigError whose message is one line and names the file.
 */
import t from 'tap';
import { ConfigError } from '../../src/errors.js';
import { isYamlFile, parseConfigText } from '../../src/util/config-text.js';

t.test('the format follows the extension, or the given format', async (t) => {
  t.ok(isYamlFile('a/b.yaml'));
  t.ok(isYamlFile('B.YML'));
  t.notOk(isYamlFile('b.json'));
  t.notOk(isYamlFile('yaml'));
  t.same(parseConfigText('a: 1\n', 'x.yml'), { a: 1 });
  t.same(parseConfigText('{"a": 1}', 'x.json'), { a: 1 });
  t.same(parseConfigText('a: 1\n', 'x.json', 'yaml'), { a: 1 }, 'format wins over the name');
  t.same(parseConfigText('[1]', undefined), [1], 'no file: JSON');
});

t.test('a syntax error is a one-line ConfigError naming the file', async (t) => {
  // V8 quotes the start of the text, newline included, in its JSON.parse message.
  const json = t.throws(() => parseConfigText('vm-1234\nsecond line\n', '/etc/hostname'));
  t.ok(json instanceof ConfigError, 'a ConfigError');
  const e = json as ConfigError;
  t.equal(e.file, '/etc/hostname');
  t.equal(e.issues.length, 1);
  t.match(e.issues[0]!.message, /^not valid JSON: /);
  t.notMatch(e.issues[0]!.message, /\n/, 'one line');
  t.match(e.issues[0]!.message, /\\n/, 'the newline of the quoted text is escaped');

  const yaml = t.throws(() => parseConfigText('a: [1, 2\nb: 3\n', 'c.yaml')) as ConfigError;
  t.ok(yaml instanceof ConfigError);
  t.match(yaml.issues[0]!.message, /^not valid YAML: /);
  t.notMatch(yaml.issues[0]!.message, /\n/, "YAML's code frame is left out");
  t.notMatch(yaml.issues[0]!.message, /:$/, 'no colon left where the frame was');
  t.equal(yaml.message.split('\n').length, 2, 'file line and one issue line');
});

t.test('a UTF-8 byte-order mark before the document is ignored', async (t) => {
  t.same(parseConfigText('\uFEFF{"value":[]}', 'p.json'), { value: [] }, 'JSON');
  t.same(parseConfigText('\uFEFFvalue: []\n', 'p.yaml'), { value: [] }, 'YAML');
});
