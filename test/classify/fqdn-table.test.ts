import t from 'tap';
import { NO_ITEM } from '../../src/classify/candidates.js';
import {
  FqdnTable,
  globFold,
  type NamePattern,
  suffixHash,
} from '../../src/classify/fqdn-table.js';
import { asciiLower, matchLabels } from '../../src/classify/oracle.js';
import { PBIT_TCP, PBIT_UDP, PortProtoChecks } from '../../src/classify/ports.js';
import { ports } from './helpers.js';

const NONE = NO_ITEM;

t.test('suffixHash: same hash for a suffix inside a name and for the key alone', async (t) => {
  t.equal(suffixHash('x.sharepoint.com', 2), suffixHash('sharepoint.com', 0));
  t.equal(suffixHash('X.SharePoint.COM', 2), suffixHash('sharepoint.com', 0), 'ASCII-folded');
  t.not(suffixHash('sharepoint.com', 0), suffixHash('sharepoint.co', 0));
});

t.test('globFold', async (t) => {
  const g = (p: string, h: string) => globFold(p, p.length, h, h.length);
  t.ok(g('autodiscover.*', 'autodiscover.contoso'));
  t.ok(g('autodiscover.*', 'autodiscover.a.b'));
  t.notOk(g('autodiscover.*', 'autodiscover'));
  t.ok(g('a.*.b.*', 'a.x.y.b.z'));
  t.ok(g('*', ''));
  t.ok(g('A.*', 'a.b') === false, 'pattern is lowercase by contract; host is folded');
  t.ok(g('a.*', 'A.B'));
  t.notOk(g('a.*.b', 'a.b'));
});

const PATTERNS: Array<[NamePattern['type'], string, string[]]> = [
  // value, protocols/ports as [proto, ...ports]
  ['fqdn', 'outlook.office365.com', ['tcp', '80', '443']], // 0
  ['fqdn', 'autodiscover.*.onmicrosoft.com', ['tcp', '80', '443']], // 1
  ['fqdn', '*.sharepoint.com', ['tcp', '80', '443']], // 2
  ['fqdn', '*.sharepoint.com', ['udp', '443']], // 3
  ['dnsSuffix', 'corp.contoso.test', []], // 4
  ['fqdn', 'login.microsoftonline.com', ['tcp', '443']], // 5
  ['fqdn', '*.microsoftonline.com', []], // 6
  ['fqdn', '*.a.*.contoso.com', []], // 7
  ['fqdn', 'x.sharepoint.com', []], // 8: exact, after the wildcard
  ['fqdn', 'contoso.*', []], // 9: trailing star (not loader-valid, still handled)
];

function build() {
  const rules = PATTERNS.map(([, , spec]) => ({
    protocols: spec.length ? [spec[0] as 'tcp' | 'udp'] : [],
    ports: ports(...spec.slice(1)),
  }));
  const checks = new PortProtoChecks(rules);
  const pats = PATTERNS.map(([type, value], item) => ({ type, value, item }));
  return new FqdnTable(pats, checks);
}

t.test('real M365 names', async (t) => {
  const table = build();
  const look = (h: string, port = 443, pbit = PBIT_TCP) => table.lookup(h, pbit, port, NONE);
  t.equal(look('outlook.office365.com'), 0);
  t.equal(look('OUTLOOK.Office365.com'), 0, 'case-insensitive');
  t.equal(look('outlook.office365.com', 22), NONE);
  t.equal(look('outlook.office365.co'), NONE);
  t.equal(look('xoutlook.office365.com'), NONE);
  t.equal(look('autodiscover.contoso.onmicrosoft.com'), 1);
  t.equal(look('autodiscover.a.b.onmicrosoft.com'), 1, 'star = several labels');
  t.equal(look('autodiscover.onmicrosoft.com'), NONE, 'star = at least one label');
  t.equal(look('x.autodiscover.contoso.onmicrosoft.com'), NONE);
  t.equal(look('x.sharepoint.com'), 2, 'wildcard earlier than the exact name');
  t.equal(look('a.b.sharepoint.com'), 2);
  t.equal(look('sharepoint.com'), NONE, 'leading *. does not match the parent');
  t.equal(look('x.sharepoint.com', 443, PBIT_UDP), 3);
  t.equal(look('x.sharepoint.com', 22), 8, 'exact name wins when wildcards fail on port');
  t.equal(look('fs.corp.contoso.test', 445), 4);
  t.equal(look('corp.contoso.test', 445), NONE, 'dnsSuffix: strictly under');
  t.equal(look('login.microsoftonline.com'), 5);
  t.equal(look('login.microsoftonline.com', 80), 6);
  t.equal(look('q.a.r.s.contoso.com', 1), 7);
  t.equal(look('a.contoso.com', 1), NONE);
  t.equal(look('contoso.anything', 1), 9);
  t.equal(look('', 1), NONE);
  t.equal(look('.', 1), NONE);
  t.equal(look('.sharepoint.com', 443), 2, 'an empty label is still a label (garbage in)');
  t.match(table.toString(), /^fqdn\(10 patterns/);
});

t.test('agrees with the label oracle on generated names', async (t) => {
  const table = build();
  const labels = [
    'a',
    'x',
    'contoso',
    'com',
    'sharepoint',
    'onmicrosoft',
    'autodiscover',
    'corp',
    'test',
    'SharePoint',
    '',
  ];
  let seed = 3;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  let bad = 0;
  for (let k = 0; k < 20000; k++) {
    const n = 1 + rnd(5);
    const parts: string[] = [];
    for (let i = 0; i < n; i++) parts.push(labels[rnd(labels.length)]!);
    const host = parts.join('.');
    const hl = asciiLower(host).split('.');
    const port = k % 2 ? 443 : 22;
    let want = NONE;
    PATTERNS.forEach(([type, value, spec], item) => {
      if (want !== NONE) return;
      const pat = type === 'dnsSuffix' ? ['*', ...value.split('.')] : value.split('.');
      const portOk =
        spec.length === 0 || (spec[0] === 'tcp' && spec.slice(1).map(Number).includes(port));
      if (portOk && matchLabels(pat, 0, hl, 0)) want = item;
    });
    if (table.lookup(host, PBIT_TCP, port, NONE) !== want) bad++;
  }
  t.equal(bad, 0);
});
