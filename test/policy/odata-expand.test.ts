import fc from 'fast-check';
import t from 'tap';
import { ConfigError } from '../../src/errors.js';
import { expandContext, parseExpand } from '../../src/policy/odata-expand.js';

// A cyclic model (a node's children are nodes) and a leaf type.
const MODEL = { node: { children: 'node', owner: 'user' }, user: {} };

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.issues[0]!.message;
    throw e;
  }
  return '(no error)';
}

t.test('parses nested $expand into a tree', async (t) => {
  t.same(parseExpand(undefined, MODEL, 'node'), {});
  t.same(parseExpand('  ', MODEL, 'node'), {});
  t.same(parseExpand('owner', MODEL, 'node'), { owner: {} });
  t.same(parseExpand('children,owner', MODEL, 'node'), { children: {}, owner: {} });
  t.same(parseExpand('*', MODEL, 'node'), { children: {}, owner: {} });
  t.same(parseExpand('*', MODEL, 'user'), {});
  t.same(parseExpand('children($expand=children($expand=owner))', MODEL, 'node'), {
    children: { children: { owner: {} } },
  });
  t.same(parseExpand(' children ( $expand = * ) , owner ', MODEL, 'node'), {
    children: { children: {}, owner: {} },
    owner: {},
  });
  t.same(parseExpand('owner,*', MODEL, 'node'), { owner: {}, children: {} });
});

t.test('refuses what it does not support, naming where', async (t) => {
  const cases: Array<[string, RegExp]> = [
    [
      'parent',
      /"parent" \(offset 0\) is not a navigation property of node \(it has children, owner\)/,
    ],
    ['owner($expand=x)', /"x" \(offset 14\) is not a navigation property of user \(it has none\)/],
    ['owner,owner', /owner expanded twice \(offset 6\)/],
    ['children($select=id)', /\$select \(offset 9\) is not supported in \$expand/],
    ['children($levels=2)', /\$levels \(offset 9\) is not supported in \$expand/],
    ['microsoft.graph.x', /"microsoft\.graph\.x" \(offset 0\) is not a navigation property/],
    ['children($expand=owner;$expand=owner)', /\$expand given twice/],
    ['children(', /expected a query option such as \$expand at end of input/],
    ['children()', /expected a query option such as \$expand at offset 9/],
    ['children($expand owner)', /expected = at offset 17/],
    ['children($expand=owner', /expected ; or \) at end of input/],
    ['children/owner', /unexpected character "\/" at offset 8/],
    ['owner)', /unexpected offset 5/],
    [',', /expected a navigation property or \* at offset 0/],
    ['owner,', /expected a navigation property or \* at end of input/],
    ['*(x)', /unexpected offset 1/],
    ['__proto__', /"__proto__" \(offset 0\) is not a navigation property/],
    ['constructor', /is not a navigation property/],
    [`${'children($expand='.repeat(9)}owner${')'.repeat(9)}`, /nested deeper than 8 levels/],
    ['o'.repeat(1025), /longer than 1024 characters/],
  ];
  for (const [text, want] of cases) {
    t.match(
      messageOf(() => parseExpand(text, MODEL, 'node')),
      want,
      text.slice(0, 40),
    );
  }
  t.same(
    parseExpand(`${'children($expand='.repeat(7)}owner${')'.repeat(7)}`, MODEL, 'node').children
      ?.children?.children?.children?.children?.children?.children,
    { owner: {} },
    '8 levels are fine',
  );
});

t.test('fuzz: any string -> a tree or a ConfigError at $expand', async (t) => {
  const alphabet = fc.constantFrom(
    'children',
    'owner',
    '*',
    '(',
    ')',
    ',',
    ';',
    '=',
    '$expand',
    '$select',
    ' ',
    '/',
    'x',
  );
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.array(alphabet, { maxLength: 40 }).map((a) => a.join('')),
      ),
      (s) => {
        try {
          const tree = parseExpand(s, MODEL, 'node');
          return typeof expandContext(tree) === 'string';
        } catch (e) {
          return (
            e instanceof ConfigError && e.issues.length === 1 && e.issues[0]!.path === '$expand'
          );
        }
      },
    ),
    { numRuns: 2000 },
  );
  t.pass('no other outcome');
});

t.test('expandContext', async (t) => {
  t.equal(expandContext({}), '');
  t.equal(expandContext({ a: {} }), '(a())');
  t.equal(expandContext({ a: { b: { c: {} } }, d: {} }), '(a(b(c())),d())');
});
