import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { ConfigError } from '../../src/errors.js';
import { defaultTenantDocument, loadDefaultTenant } from '../../src/policy/default-tenant.js';
import { loadTenantFile } from '../../src/policy/tenant-file.js';

const dir = mkdtempSync(join(tmpdir(), 'gsa-tenant-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('default tenant when no file is given', async (t) => {
  const l = loadTenantFile();
  t.equal(l.builtIn, true);
  t.match(l.file, /data[/\\]tenants[/\\]default[/\\]forwarding-profiles\.json$/);
  t.same(l.tenant, loadDefaultTenant());
  t.same(l.document, defaultTenantDocument());
});

t.test('JSON and YAML files', async (t) => {
  const yml = join(dir, 'tenant.yaml');
  writeFileSync(yml, stringify(defaultTenantDocument()));
  const y = loadTenantFile(yml);
  t.equal(y.builtIn, false);
  t.equal(y.file, yml);
  t.same(
    y.tenant.profiles.map((p) => p.type),
    ['m365', 'private', 'internet'],
  );
  const list = join(dir, 'list.json');
  writeFileSync(list, JSON.stringify({ value: defaultTenantDocument().forwardingProfiles }));
  t.equal(loadTenantFile(list, { tenantId: 'x-tenant' }).tenant.tenantId, 'x-tenant');
});

t.test('errors name the file', async (t) => {
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{"tenantId": ');
  t.throws(() => loadTenantFile(bad), {
    code: 'GSA_ERR_CONFIG',
    file: bad,
    message: /not valid JSON/,
  });
  const badYaml = join(dir, 'bad.yml');
  writeFileSync(badYaml, 'a: [1');
  t.throws(() => loadTenantFile(badYaml), { code: 'GSA_ERR_CONFIG', message: /not valid YAML/ });
  t.throws(() => loadTenantFile(join(dir, 'missing.json')), {
    code: 'GSA_ERR_CONFIG',
    message: /cannot read/,
  });
  const invalid = join(dir, 'invalid.json');
  const doc = defaultTenantDocument();
  doc.forwardingProfiles[0]!.priority = 'high' as unknown as number;
  writeFileSync(invalid, JSON.stringify(doc));
  const err = t.throws(() => loadTenantFile(invalid)) as ConfigError;
  t.ok(err instanceof ConfigError);
  t.equal(err.file, invalid);
  t.same(err.issues, [
    { path: 'forwardingProfiles[0].priority', message: 'must be a number, not "high"' },
  ]);
});

t.test('a key given twice deep in a JSON tenant file is refused at its path', async (t) => {
  const text = JSON.stringify(defaultTenantDocument(), null, 2).replace(
    '"state": "enabled"',
    '"state": "enabled",\n"state": "disabled"',
  );
  const file = join(dir, 'twice.json');
  writeFileSync(file, text);
  const err = t.throws(() => loadTenantFile(file)) as ConfigError;
  t.ok(err instanceof ConfigError);
  t.equal(err.file, file);
  t.equal(err.issues.length, 1);
  t.match(err.issues[0]!.path, /^forwardingProfiles\[0\]\.(?:.+\.)?state$/);
  t.match(err.issues[0]!.message, /^key given twice \(line \d+, column 1; first at line \d+/);
});
