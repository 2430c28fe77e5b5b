/**
 * TUN mode's DNS acquisition (FqdnAcquirer): a name is acquired when an FQDN or DNS-suffix
 * rule's pattern matches it (`*` = one or more whole labels) and the classifier puts a
 * name-only flow into a channel. A pattern with many `*` labels is matched without
 * backtracking, so a DNS query for a long name that misses returns at once.
 */
import t from 'tap';
import { compile } from '../../src/classify/compile.js';
import { FqdnAcquirer } from '../../src/client/tun-capture.js';
import { policy, profile, rule, state, tenant } from '../classify/helpers.js';

t.setTimeout(10_000);

function acquirer(dests: string[]) {
  const ten = tenant([profile('private', [policy('apps', [rule(dests)])])]);
  return new FqdnAcquirer({ classifier: compile(ten, state()), tenant: ten });
}

t.test('wildcards are whole labels; DNS suffixes need a label before them', async (t) => {
  const a = acquirer(['app.*.contoso.test', '*.corp.test']);
  t.ok(a.acquires('app.eu.contoso.test'));
  t.ok(a.acquires('app.eu.west.contoso.test'), 'a mid-name * is one or more labels');
  t.notOk(a.acquires('app.contoso.test'), 'not zero labels');
  t.notOk(a.acquires('app..contoso.test'), 'not an empty label');
  t.ok(a.acquires('x.corp.test'));
  t.notOk(a.acquires('corp.test'), 'a leading *. does not match the bare parent');
  t.notOk(a.acquires('xcorp.test'));
});

t.test('a pattern with many * labels against long names that miss: no backtracking', async (t) => {
  const a = acquirer(['*.a.*.b.*.c.*.d.*.e.*.f.*.g.*.h.*.i.*.j.example']);
  const long = Array.from({ length: 200 }, () => 'a').join('.');
  t.notOk(a.acquires(`${long}.example`));
  t.notOk(a.acquires(`${long}.b.c.d.e.f.g.h.i.j.example`));
  t.ok(a.acquires('x.a.x.b.x.c.x.d.x.e.x.f.x.g.x.h.x.i.x.j.example'));
});

t.test('every literal label everywhere in the name: still returns', async (t) => {
  // A backtracking matcher tries each way to share 200 labels among 10 wildcards.
  const a = acquirer([`${Array(10).fill('*.a').join('.')}.example`]);
  t.notOk(a.acquires(`${Array(200).fill('a').join('.')}.test`));
  t.ok(a.acquires(`${Array(200).fill('a').join('.')}.example`));
});
