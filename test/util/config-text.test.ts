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

t.test(
  'a key given twice in a JSON object is a ConfigError at its path (as in YAML)',
  async (t) => {
    const yaml = t.throws(() => parseConfigText('a: 1\nb: 2\na: 3\n', 'c.yaml')) as ConfigError;
    t.ok(yaml instanceof ConfigError, 'YAML refuses it');

    const top = t.throws(() =>
      parseConfigText('{"EnableGSA": 3, "SilentOnboard": true, "EnableGSA": 0}', 'cc.json'),
    ) as ConfigError;
    t.ok(top instanceof ConfigError, 'JSON refuses it too');
    t.equal(top.file, 'cc.json', 'names the file');
    t.same(top.issues, [
      {
        path: 'EnableGSA',
        message: 'key given twice (line 1, column 41; first at line 1, column 2)',
      },
    ]);
    t.equal(top.message.split('\n').length, 2, 'file line and one issue line');

    const deep = [
      '{',
      '  "policies": [',
      '    { "name": "a" },',
      '    { "policy": { "rules": [ { "id": 1, "value": "x", "id": 2 } ] } }',
      '  ]',
      '}',
    ].join('\n');
    const e = t.throws(() => parseConfigText(deep, 't.json')) as ConfigError;
    t.same(
      e.issues,
      [
        {
          path: 'policies[1].policy.rules[0].id',
          message: 'key given twice (line 4, column 55; first at line 4, column 32)',
        },
      ],
      'any depth, the path and line of the second occurrence',
    );

    const cases: Array<[string, string, string]> = [
      ['{"a":{"b":{"c":1,"c":2}}}', 'a.b.c', 'three levels down'],
      ['[[{"k":1}],{"k":1,"k":1}]', '[1].k', 'under arrays, same value too'],
      ['{"a":1,"\\u0061":2}', 'a', 'keys compare decoded, as JSON.parse sees them'],
      [
        '{"a\\"b":1, "x": "\\"a\\\\\\"b\\": {", "a\\"b":2}',
        '["a\\"b"]',
        'quotes in keys and values',
      ],
      ['{"@odata.type":"x","@odata.type":"y"}', '@odata.type', 'a key with a dot'],
      ['{"x y":{"":1,"":2}}', '["x y"][""]', 'odd keys are quoted'],
      ['{"__proto__":1,"__proto__":2}', '__proto__', '__proto__ is a key like any other'],
    ];
    for (const [text, path, what] of cases) {
      const x = t.throws(() => parseConfigText(text, 'x.json'), what) as ConfigError;
      t.equal(x.issues?.[0]?.path, path, what);
    }
  },
);

t.test('JSON: values as JSON.parse reads them; any depth, no recursion', async (t) => {
  const ok = [
    '[{"k":1},{"k":2}]',
    '{"a":{"k":1},"b":{"k":1}}',
    '{"k":"{\\"k\\":1,\\"k\\":2}"}',
    '{"a":"\\/","A":1,"big":12345678901234567890}',
    '{"a":[],"b":{},"c":[{},[]],"d":"]}[{"}',
    '"just a string"',
    '0',
  ];
  for (const text of ok) t.same(parseConfigText(text, 'x.json'), JSON.parse(text), text);
  const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
  t.ok(Array.isArray(parseConfigText(deep, 'x.json')), 'deep nesting: no recursion');
  const dup = `${'['.repeat(10_000)}{"a":1,"a":2}${']'.repeat(10_000)}`;
  const e = t.throws(() => parseConfigText(dup, 'x.json')) as ConfigError;
  t.equal(e.issues?.[0]?.path, `${'[0]'.repeat(10_000)}.a`, 'found at the bottom');
});
