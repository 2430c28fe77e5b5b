import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { base64url } from 'jose';
import t from 'tap';
import { audienceFor, Issuer } from '../../src/edge/identity.js';
import { AuthError } from '../../src/errors.js';

const TID = '11111111-2222-3333-4444-555555555555';
const base = { tenantId: TID, userId: 'u1', deviceId: 'd1', channel: 'internet' as const };

async function reasonOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (err) {
    if (err instanceof AuthError) return err.reason;
    return `unexpected ${(err as Error).name}: ${(err as Error).message}`;
  }
}

t.test(
  'no UPN given: a sign-in-name user id stands for itself, an object id gets one',
  async (t) => {
    const iss = await Issuer.create();
    const named = await iss.verify(await iss.issueToken({ ...base, userId: 'bob@contoso.test' }), {
      channel: 'internet',
      tenantId: TID,
    });
    t.equal(named.upn, 'bob@contoso.test');
    const oid = await iss.verify(await iss.issueToken({ ...base, userId: 'u1' }), {
      channel: 'internet',
      tenantId: TID,
    });
    t.equal(oid.upn, `u1@${TID}.test`);
  },
);

t.test('issue and verify a token; claims', async (t) => {
  const iss = await Issuer.create();
  const tok = await iss.issueToken({ ...base, upn: 'alice@contoso.test' });
  const p = await iss.verify(tok, { channel: 'internet', tenantId: TID });
  t.equal(p.tenantId, TID);
  t.equal(p.userId, 'u1');
  t.equal(p.deviceId, 'd1');
  t.equal(p.upn, 'alice@contoso.test');
  t.equal(p.channel, 'internet');
  t.ok(p.expiresAt > Date.now() + 3500_000);
  const [h, b] = tok.split('.');
  const header = JSON.parse(Buffer.from(h!, 'base64url').toString());
  const claims = JSON.parse(Buffer.from(b!, 'base64url').toString());
  t.equal(header.alg, 'ES256');
  t.equal(header.kid, iss.kid);
  t.equal(claims.aud, 'https://internet.client.globalsecureaccess.test');
  t.equal(claims.iss, `https://login.globalsecureaccess.test/${TID}/v2.0`);
  for (const k of ['sub', 'oid', 'tid', 'deviceid', 'exp', 'iat', 'nbf', 'jti'])
    t.ok(k in claims, k);
  t.equal(iss.jwks().keys.length, 1);
  t.equal(iss.jwks().keys[0]!.kid, iss.kid);
  t.notOk('d' in iss.jwks().keys[0]!, 'no private part in the JWKS');
  // Bearer prefix accepted; 'any' accepts any edge audience.
  t.equal(
    (await iss.verify(`Bearer ${tok}`, { channel: 'any', tenantId: TID })).channel,
    'internet',
  );
});

t.test('rejections carry the documented reason', async (t) => {
  const iss = await Issuer.create();
  const other = await Issuer.create();
  const ok = { channel: 'internet' as const, tenantId: TID };
  t.equal(await reasonOf(iss.verify(undefined, ok)), 'missing');
  t.equal(await reasonOf(iss.verify('', ok)), 'missing');
  t.equal(await reasonOf(iss.verify('Bearer ', ok)), 'missing');
  t.equal(await reasonOf(iss.verify('not a jwt', ok)), 'malformed');
  t.equal(await reasonOf(iss.verify('a.b.c', ok)), 'malformed');
  const expired = await iss.issueToken({ ...base, ttlSeconds: -120 });
  t.equal(await reasonOf(iss.verify(expired, ok)), 'expired');
  // Forged: signed by another key (other kid), and the same kid with another key.
  t.equal(await reasonOf(iss.verify(await other.issueToken(base), ok)), 'forged');
  const [, body, sig] = (await other.issueToken(base)).split('.');
  const fakeHeader = base64url.encode(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid: iss.kid }));
  t.equal(await reasonOf(iss.verify(`${fakeHeader}.${body}.${sig}`, ok)), 'forged');
  // Tampered payload keeps the header and signature.
  const good = await iss.issueToken(base);
  const [gh, gb, gs] = good.split('.');
  const claims = JSON.parse(Buffer.from(gb!, 'base64url').toString());
  claims.tid = 'someone-else';
  const tampered = `${gh}.${base64url.encode(JSON.stringify(claims))}.${gs}`;
  t.equal(await reasonOf(iss.verify(tampered, ok)), 'forged');
  // alg none.
  const none = `${base64url.encode('{"alg":"none"}')}.${gb}.`;
  t.equal(await reasonOf(iss.verify(none, ok)), 'forged');
  // Wrong audience and wrong tenant.
  const m365 = await iss.issueToken({ ...base, channel: 'm365' });
  t.equal(await reasonOf(iss.verify(m365, ok)), 'wrong-audience');
  t.equal(await reasonOf(iss.verify(m365, { channel: 'm365', tenantId: TID })), 'accepted');
  const otherTenant = await iss.issueToken({ ...base, tenantId: 'tenant-b' });
  t.equal(await reasonOf(iss.verify(otherTenant, ok)), 'wrong-tenant');
  t.equal(audienceFor('private'), 'https://private.client.globalsecureaccess.test');
  // An AuthError has the stable code.
  const err = await iss.verify(expired, ok).catch((e: unknown) => e);
  t.equal((err as AuthError).code, 'GSA_ERR_AUTH');
});

t.test('the key persists in the state folder and is shared', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gsa-edge-id-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const a = await Issuer.create({ stateDir: dir });
  const b = await Issuer.create({ stateDir: dir });
  t.equal(a.kid, b.kid);
  const tok = await a.issueToken(base);
  t.equal((await b.verify(tok, { channel: 'internet', tenantId: TID })).userId, 'u1');
  const c = await Issuer.create();
  t.not(c.kid, a.kid);
});

t.test('fuzz: random strings and mangled tokens only ever give AuthError', async (t) => {
  const iss = await Issuer.create();
  const good = await iss.issueToken(base);
  const expect = { channel: 'internet' as const, tenantId: TID };
  const check = async (s: string): Promise<boolean> => {
    const r = await reasonOf(iss.verify(s, expect));
    return ['missing', 'malformed', 'forged', 'expired', 'wrong-audience', 'wrong-tenant'].includes(
      r,
    );
  };
  await fc.assert(fc.asyncProperty(fc.string({ maxLength: 300 }), check), { numRuns: 300 });
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.oneof(fc.base64String({ maxLength: 80 }), fc.constantFrom('.', '-', '_', 'ey')), {
        maxLength: 12,
      }),
      (parts) => check(parts.join('')),
    ),
    { numRuns: 300 },
  );
  // Flip one character of a valid token: never accepted unless unchanged.
  await fc.assert(
    fc.asyncProperty(
      fc.nat({ max: good.length - 1 }),
      fc.string({ minLength: 1, maxLength: 1 }),
      async (i, ch) => {
        const s = good.slice(0, i) + ch + good.slice(i + 1);
        const r = await reasonOf(iss.verify(s, expect));
        if (s === good) return r === 'accepted';
        if (r !== 'accepted') return true;
        // Accepted only if the change decodes to the same bytes (unused trailing base64 bits).
        const a = s.split('.').map((x) => Buffer.from(x, 'base64url').toString('hex'));
        const b = good.split('.').map((x) => Buffer.from(x, 'base64url').toString('hex'));
        return a.join('.') === b.join('.');
      },
    ),
    { numRuns: 300 },
  );
  t.pass('900 fuzzed inputs, only AuthError');
});
