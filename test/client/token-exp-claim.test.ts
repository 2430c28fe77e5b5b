/**
 * A token's expiry as the client times it: the edge's `exp` is whole seconds from when it
 * issued the token, so the token may expire up to a second before `obtainedAt + expires_in`.
 * The client takes the earlier of the two (tokenExpiry), and refreshes at its share of that
 * life. The token endpoint is a server of the test's own on 127.0.0.1, closed at the end.
 */
import t from 'tap';
import { tokenExpiry } from '../../src/client/edge-api.js';
import { unsignedJwt as jwt, tokenEndpointApi } from './token-endpoint.js';

t.test('tokenExpiry: the earlier of expires_in and the exp claim', async (t) => {
  const obtainedAt = 1_700_000_000_400; // .4 s into a second
  const byLife = obtainedAt + 3600_000;
  // Issued 300 ms after the request, at .7 s: exp is that second + 3600, 700 ms early.
  const exp = Math.floor((obtainedAt + 300) / 1000) + 3600;
  t.equal(tokenExpiry(jwt({ exp }), obtainedAt, 3600), exp * 1000, 'exp first: exp');
  t.ok(exp * 1000 < byLife);
  t.equal(tokenExpiry(jwt({ exp: exp + 5 }), obtainedAt, 3600), byLife, 'exp later: expires_in');
  t.equal(tokenExpiry(jwt({}), obtainedAt, 3600), byLife, 'no exp');
  t.equal(tokenExpiry(jwt({ exp: String(exp) }), obtainedAt, 3600), byLife, 'exp not a number');
  t.equal(tokenExpiry('not.a.jwt', obtainedAt, 3600), byLife, 'not a JWT');
  t.equal(tokenExpiry('opaque', obtainedAt, 3600), byLife, 'an opaque token');
  // An edge whose clock is behind by more than the lifetime: its exp is already past here.
  t.equal(
    tokenExpiry(jwt({ exp: Math.floor(obtainedAt / 1000) - 10 }), obtainedAt, 3600),
    byLife,
    'an exp before the request: expires_in',
  );
  // An edge whose clock is behind ours by less than the lifetime (a remote edge, 50 s
  // skew): its exp is on its clock, not ours; the token lives its expires_in at the edge.
  t.equal(
    tokenExpiry(jwt({ exp: Math.floor(obtainedAt / 1000) - 50 + 3600 }), obtainedAt, 3600),
    byLife,
    'a skewed clock (exp 50 s early): expires_in',
  );
  t.equal(
    tokenExpiry(jwt({ exp: Math.floor(obtainedAt / 1000) - 3 + 3600 }), obtainedAt, 3600),
    byLife,
    'exp 3.4 s early: not our clock, expires_in',
  );
});

t.test('EdgeApi times a fetched token by its exp claim when that is earlier', async (t) => {
  const early = 1; // seconds before obtainedAt + expires_in (as a shared clock's truncation)
  const api = await tokenEndpointApi(
    t,
    () => ({
      claims: { exp: Math.floor(Date.now() / 1000) + 60 - early, tid: 't1' },
      expiresIn: 60,
    }),
    { refreshAt: 0.5 },
  );
  const token = await api.getToken('internet');
  const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp as number;
  const info = api.tokenInfo('internet')!;
  t.equal(info.expiresAt, exp * 1000, 'expires at its exp claim');
  t.ok(info.expiresAt < info.obtainedAt + 60_000, 'before obtainedAt + expires_in');
  t.equal(
    info.refreshAt,
    info.obtainedAt + (info.expiresAt - info.obtainedAt) * 0.5,
    'refreshed at its share of that life',
  );
  t.equal(api.lastTokenExpiresAt(), exp * 1000);
});
