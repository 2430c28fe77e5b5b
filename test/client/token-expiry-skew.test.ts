/**
 * The client times a token by the edge's `exp` claim only when that agrees with its own
 * clock: `exp` is a time on the EDGE's clock. An edge whose clock is behind the client's by
 * `skew` seconds (less than the lifetime) issues a token the edge accepts for the whole
 * `expires_in`; taking `exp` by the client's clock made it expire `skew` seconds early
 * (refreshed far more often than needed, the old token dropped early when a refresh failed,
 * `status` saying "Entra: token expired" while the edge still accepted it). `expires_in` is
 * clock-independent (RFC 6749 5.1).
 *
 * The token endpoint is the test's own server on 127.0.0.1 (its "clock" 50 s behind),
 * closed at the end.
 */
import t from 'tap';
import { tokenEndpointApi } from './token-endpoint.js';

t.test('an edge clock 50 s behind: a 60 s token is still timed ~60 s', async (t) => {
  const skewS = 50;
  const ttl = 60;
  const api = await tokenEndpointApi(t, () => {
    // The edge's clock: 50 s behind this host's. exp = iat + ttl on that clock, as
    // src/edge/identity.ts issues it.
    const iat = Math.floor(Date.now() / 1000) - skewS;
    return { claims: { iat, nbf: iat, exp: iat + ttl, tid: 't1' }, expiresIn: ttl };
  });
  await api.getToken('internet');
  const info = api.tokenInfo('internet')!;
  const life = (info.expiresAt - info.obtainedAt) / 1000;
  // The edge accepts the token for `ttl` seconds from its issue (its own clock), so the
  // client should take it as valid for about that long (at most 1 s less: whole seconds).
  t.ok(life >= ttl - 1, `the client times the token for ${life.toFixed(1)} s, not ~${ttl} s`);
});
