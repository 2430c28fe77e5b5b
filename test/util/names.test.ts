/**
 * Host-name patterns (src/util/names.ts NamePatterns): `*` is one or more whole labels at
 * the start, in the middle or at the end of a pattern; patterns with `*` elsewhere than one
 * leading `*.` are matched label by label, in bounded work however many `*` they hold.
 *
 * The whole file runs under a short tap timeout: a matcher that backtracks exponentially
 * (a regex per pattern, as before) blocks the event loop for minutes on the long names
 * below, and only the runner's timeout (SIGALRM from the parent) can end it.
 */
import fc from 'fast-check';
import t from 'tap';
import { PrivateApps } from '../../src/edge/connector.js';
import { loadTenant } from '../../src/policy/graph.js';
import { NamePatterns, normalizeName } from '../../src/util/names.js';

t.setTimeout(10_000);

/** Reference: does `name` (labels) match `pat` (labels, `*` = one or more labels)? */
function refMatch(pat: readonly string[], name: readonly string[]): boolean {
  const go = (pi: number, ni: number): boolean => {
    if (pi === pat.length) return ni === name.length;
    if (pat[pi] === '*') {
      for (let k = ni + 1; k <= name.length; k++) if (go(pi + 1, k)) return true;
      return false;
    }
    return ni < name.length && pat[pi] === name[ni] && go(pi + 1, ni + 1);
  };
  return go(0, 0);
}

/** Reference 2: the regex NamePatterns compiled each wildcard pattern to (small inputs only). */
function regexOf(pattern: string): RegExp {
  const src = pattern
    .split('.')
    .map((l) => (l === '*' ? '[^.]+(?:\\.[^.]+)*' : l.replace(/[-_]/g, '\\$&')))
    .join('\\.');
  return new RegExp(`^${src}$`);
}

const one = (pattern: string): NamePatterns<true> => {
  const n = new NamePatterns<true>();
  n.add(pattern, true);
  return n;
};

t.test('mid-name and several wildcards: one or more labels each', async (t) => {
  const n = one('a.*.b.*');
  t.equal(n.match('a.x.b.y'), true);
  t.equal(n.match('a.x.y.b.y.z'), true);
  t.equal(n.match('A.X.B.Y.'), true, 'case and trailing dot');
  t.equal(n.match('a.b.y'), undefined, 'the middle * takes at least one label');
  t.equal(n.match('a.x.b'), undefined, 'the last * takes at least one label');
  t.equal(n.match('a.x..b.y'), undefined, 'an empty label is no label');
  const lead = one('*.a.*.test');
  t.equal(lead.match('x.a.y.test'), true);
  t.equal(lead.match('x.y.a.b.c.test'), true);
  t.equal(lead.match('a.y.test'), undefined, 'the leading * takes at least one label');
  t.equal(lead.match('x.a.test'), undefined);
  const adjacent = one('x.*.*.test');
  t.equal(adjacent.match('x.a.test'), undefined, '*.* is two labels or more');
  t.equal(adjacent.match('x.a.b.test'), true);
  t.equal(adjacent.match('x.a.b.c.test'), true);
});

t.test('precedence: exact, longest suffix, then the first mid-name pattern added', async (t) => {
  const n = new NamePatterns<string>();
  n.add('*.x.*.test', 'mid1');
  n.add('a.*.test', 'mid2');
  n.add('*.b.x.y.test', 'suffix');
  n.add('a.x.y.test', 'exact');
  t.equal(n.match('a.x.y.test'), 'exact');
  t.equal(n.match('b.x.y.test'), 'mid1', 'b.x.y.test is not under *.b.x.y.test');
  t.equal(n.match('c.b.x.y.test'), 'suffix');
  t.equal(n.match('a.x.z.test'), 'mid1', 'first added wins among mid-name patterns');
  t.equal(n.match('a.z.test'), 'mid2');
  t.equal(n.match('z.test'), undefined);
  t.equal(n.size, 4);
});

const LABELS = ['a', 'b', 'c'];
const nameArb = fc.array(fc.constantFrom(...LABELS), { minLength: 1, maxLength: 9 });
const patternArb = fc
  .array(fc.constantFrom(...LABELS, '*'), { minLength: 1, maxLength: 7 })
  .filter((p) => p.some((l) => l !== '*') && p.filter((l) => l === '*').length <= 3);

t.test('property: NamePatterns agrees with a reference label matcher', async (t) => {
  fc.assert(
    fc.property(patternArb, nameArb, (pat, name) => {
      const got = one(pat.join('.')).match(name.join('.')) === true;
      return got === refMatch(pat, name);
    }),
    { numRuns: 3000 },
  );
  t.pass('3000 random patterns (at most 3 wildcards) and names');
});

t.test('property: mid-name patterns match as their former regex on any text', async (t) => {
  const mid = patternArb.filter((p) => !(p[0] === '*' && !p.slice(1).includes('*')));
  const text = fc
    .array(fc.constantFrom('a', 'b', '.', 'A', ' '), { maxLength: 14 })
    .map((cs) => cs.join(''));
  fc.assert(
    fc.property(mid, text, (pat, raw) => {
      const pattern = pat.join('.');
      const got = one(pattern).match(raw) === true;
      return got === regexOf(pattern).test(normalizeName(raw));
    }),
    { numRuns: 3000 },
  );
  t.pass('3000 random mid-name patterns and texts (empty labels, dots, case)');
});

t.test('10 wildcards against a 200-label name: bounded work', async (t) => {
  const pattern = '*.a.*.b.*.c.*.d.*.e.*.f.*.g.*.h.*.i.*.j.example';
  const n = one(pattern);
  const miss = `${Array(200).fill('x').join('.')}.example`;
  t.equal(n.match(miss), undefined, 'no match, and it returns');
  const near = `${Array(190).fill('a.b.c').join('.')}.example`;
  t.equal(n.match(near), undefined, 'many partial matches, no match, and it returns');
  const tail = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'].map((l) => `x.${l}`).join('.');
  const hit = `${Array(180).fill('x').join('.')}.${tail}.example`;
  t.equal(hit.split('.').length, 201);
  t.equal(n.match(hit), true, 'a 201-label name that matches');
  t.equal(n.match(hit.replace('.j.', '.k.')), undefined, 'the same, one label off');
  // Every literal label occurs everywhere in the name: a backtracking matcher tries each
  // way to share 200 labels among 10 wildcards (about 10^20) before it gives up.
  const same = one(`${Array(10).fill('*.a').join('.')}.example`);
  t.equal(same.match(`${Array(200).fill('a').join('.')}.test`), undefined, 'returns');
  t.equal(same.match(`${Array(200).fill('a').join('.')}.example`), true);
  t.equal(same.match(`${Array(19).fill('a').join('.')}.example`), undefined, '20 labels needed');
  const five = one('*.*.*.*.x.contoso.test');
  t.equal(five.match(`${Array(120).fill('a').join('.')}.contoso.test`), undefined);
});

// Review (helper-32): a Private Access segment with several `*` labels, which the tenant
// loader accepts, made the edge's segment check (PrivateApps.match, on the edge's event
// loop for every private flow) backtrack exponentially on a long name it does not match.
t.test(
  'the edge matches a long private name quickly despite a multi-wildcard segment',
  async (t) => {
    const NS = '#microsoft.graph.networkaccess.';
    const fqdn = (value: string) => ({ '@odata.type': `${NS}fqdn`, value });
    const doc = {
      tenantId: 't',
      name: 'review',
      forwardingProfiles: [
        {
          id: 'p',
          name: 'Private',
          trafficForwardingType: 'private',
          policies: [
            {
              id: 'l',
              policy: {
                id: 'q',
                name: 'Apps',
                policyRules: [
                  {
                    id: 'r1',
                    name: 'deep names',
                    action: 'forward',
                    destinations: [fqdn('*.*.*.*.x.contoso.test')],
                  },
                  {
                    id: 'r2',
                    name: 'Quick Access',
                    action: 'forward',
                    destinations: [fqdn('*.contoso.test')],
                  },
                ],
              },
            },
          ],
        },
      ],
    };
    const apps = new PrivateApps(loadTenant(doc));
    // 120 labels + contoso.test: 252 characters, a valid name.
    const host = `${Array(120).fill('a').join('.')}.contoso.test`;
    const t0 = performance.now();
    const seg = apps.match('tcp', host, null, 443);
    const ms = performance.now() - t0;
    t.equal(seg?.ruleId, 'r2', 'the Quick Access segment takes it');
    t.ok(ms < 200, `one segment check took ${ms.toFixed(0)} ms (expected well under 200 ms)`);
  },
);
