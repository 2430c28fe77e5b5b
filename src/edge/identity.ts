/**
 * The edge's token issuer: a mock of Entra ID for one edge (or several edges sharing a
 * state folder). One ES256 key pair signs access tokens per tenant / user / device /
 * channel; `verify()` checks them for the tunnel upgrade and the control API.
 *
 * Contract: `verify()` either returns a Principal or throws AuthError whose `reason` is one
 * of `missing | malformed | forged | expired | wrong-audience | wrong-tenant`; it never
 * throws anything else, whatever the input (fuzzed in test/edge/identity.test.ts).
 *
 * Claims (docs/edge.md): iss, sub = oid = userId, tid, aud = audienceFor(channel), upn,
 * deviceid, scp, iat, nbf, exp, jti; header alg ES256 + kid (RFC 7638 thumbprint).
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import {
  type CryptoKey,
  calculateJwkThumbprint,
  decodeProtectedHeader,
  errors,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  jwtVerify,
  SignJWT,
} from 'jose';
import { AuthError } from '../errors.js';
import { CHANNELS, type ChannelName } from '../policy/model.js';
import { jsonSender } from '../util/send-json.js';
import { makeDirs } from '../util/state-dir.js';

/** A token's audience: one per tunnel channel, plus `graph` for the control API only. */
export type Audience = ChannelName | 'graph';
export const AUDIENCES: readonly Audience[] = [...CHANNELS, 'graph'];

export type AuthReason =
  | 'missing'
  | 'malformed'
  | 'forged'
  | 'expired'
  | 'wrong-audience'
  | 'wrong-tenant';

/** The audience URI of a channel: `https://<channel>.client.globalsecureaccess.test`. */
export function audienceFor(channel: Audience): string {
  return channel === 'graph'
    ? 'https://graph.globalsecureaccess.test'
    : `https://${channel}.client.globalsecureaccess.test`;
}

/** The channel an audience URI names, or null. */
export function channelOfAudience(aud: string): Audience | null {
  for (const c of AUDIENCES) if (audienceFor(c) === aud) return c;
  return null;
}

/** The issuer URI for a tenant (shaped like Entra's v2.0 issuer). */
export function issuerFor(tenantId: string): string {
  return `https://login.globalsecureaccess.test/${tenantId}/v2.0`;
}

export interface TokenRequest {
  tenantId: string;
  userId: string;
  /** Defaults to `<userId>@<tenantId>.test`. */
  upn?: string;
  deviceId: string;
  channel: Audience;
  /** Default 3600. May be negative (tests make expired tokens that way). */
  ttlSeconds?: number;
}

/** Who a verified token belongs to. */
export interface Principal {
  tenantId: string;
  userId: string;
  upn: string;
  deviceId: string;
  channel: Audience;
  /** Token expiry, ms since the epoch. */
  expiresAt: number;
  tokenId: string;
}

export interface VerifyExpect {
  /** The audience required; `'any'` accepts any of AUDIENCES (the control API). */
  channel: Audience | 'any';
  tenantId: string;
}

export interface IdentityOptions {
  /** When set, the key pair is loaded from / saved to `<stateDir>/edge-signing-key.json`,
   *  so edges sharing the folder accept each other's tokens. */
  stateDir?: string;
  /** Clock skew tolerated on exp/nbf, seconds. Default 30. */
  clockToleranceSeconds?: number;
  /** Longest token accepted by the token endpoint, seconds. Default 86400. */
  maxTtlSeconds?: number;
}

const KEY_FILE = 'edge-signing-key.json';
const MAX_TOKEN_CHARS = 16 * 1024;

export class Issuer {
  readonly kid: string;
  private readonly privateKey: CryptoKey;
  private readonly publicKey: CryptoKey;
  private readonly publicJwk: JWK;
  /** Clock tolerance of verify(), in seconds: a token is accepted this long past `exp`. */
  readonly tolerance: number;
  readonly maxTtlSeconds: number;

  private constructor(
    kid: string,
    priv: CryptoKey,
    pub: CryptoKey,
    publicJwk: JWK,
    opts: IdentityOptions,
  ) {
    this.kid = kid;
    this.privateKey = priv;
    this.publicKey = pub;
    this.publicJwk = publicJwk;
    this.tolerance = opts.clockToleranceSeconds ?? 30;
    this.maxTtlSeconds = opts.maxTtlSeconds ?? 86400;
  }

  /** Generate a key pair, or load it from the state folder when one is saved there. */
  static async create(opts: IdentityOptions = {}): Promise<Issuer> {
    let privJwk: JWK | undefined;
    const file = opts.stateDir ? join(opts.stateDir, KEY_FILE) : undefined;
    if (file) {
      try {
        privJwk = JSON.parse(await readFile(file, 'utf8')) as JWK;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    if (!privJwk) {
      const pair = await generateKeyPair('ES256', { extractable: true });
      privJwk = await exportJWK(pair.privateKey);
      if (file && opts.stateDir) {
        makeDirs(opts.stateDir);
        const tmp = `${file}.${process.pid}.tmp`;
        await writeFile(tmp, JSON.stringify(privJwk), { mode: 0o600 });
        await rename(tmp, file);
      }
    }
    const { d: _d, ...pubFields } = privJwk;
    const publicJwk: JWK = {
      kty: pubFields.kty,
      crv: pubFields.crv,
      x: pubFields.x,
      y: pubFields.y,
    };
    const kid = await calculateJwkThumbprint(publicJwk);
    const priv = (await importJWK({ ...privJwk, alg: 'ES256' }, 'ES256')) as CryptoKey;
    const pub = (await importJWK({ ...publicJwk, alg: 'ES256' }, 'ES256')) as CryptoKey;
    return new Issuer(kid, priv, pub, { ...publicJwk, kid, alg: 'ES256', use: 'sig' }, opts);
  }

  /** The JWKS document (`/.well-known/jwks.json`, `/discovery/v2.0/keys`). */
  jwks(): { keys: JWK[] } {
    return { keys: [{ ...this.publicJwk }] };
  }

  async issueToken(req: TokenRequest): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const ttl = req.ttlSeconds ?? 3600;
    // No UPN given: a user id that is already a sign-in name stands for itself.
    const upn =
      req.upn ?? (req.userId.includes('@') ? req.userId : `${req.userId}@${req.tenantId}.test`);
    return new SignJWT({
      tid: req.tenantId,
      oid: req.userId,
      upn,
      deviceid: req.deviceId,
      scp: 'access_as_user',
      ver: '2.0',
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: this.kid })
      .setIssuer(issuerFor(req.tenantId))
      .setSubject(req.userId)
      .setAudience(audienceFor(req.channel))
      .setJti(randomUUID())
      .setIssuedAt(ttl < 0 ? now + ttl - 60 : now)
      .setNotBefore(ttl < 0 ? now + ttl - 60 : now)
      .setExpirationTime(now + ttl)
      .sign(this.privateKey);
  }

  /** Verify a token (with or without a `Bearer ` prefix). Throws AuthError only. */
  async verify(token: string | null | undefined, expect: VerifyExpect): Promise<Principal> {
    if (token === null || token === undefined) throw authError('missing', 'no bearer token');
    if (typeof token !== 'string') throw authError('malformed', 'token is not a string');
    let t = token.trim();
    t = t.replace(/^bearer(?:\s+|$)/i, '');
    if (t === '') throw authError('missing', 'no bearer token');
    if (t.length > MAX_TOKEN_CHARS) throw authError('malformed', 'token too long');
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(t)) {
      throw authError('malformed', 'not a compact JWS');
    }
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(t);
    } catch {
      throw authError('malformed', 'unreadable JWS header');
    }
    if (header.alg !== 'ES256')
      throw authError('forged', `algorithm ${String(header.alg)} not accepted`);
    if (header.kid !== undefined && header.kid !== this.kid) {
      throw authError('forged', 'unknown signing key');
    }
    let payload: Record<string, unknown>;
    try {
      const r = await jwtVerify(t, this.publicKey, {
        algorithms: ['ES256'],
        clockTolerance: this.tolerance,
        requiredClaims: ['exp', 'tid', 'aud', 'sub', 'iss'],
      });
      payload = r.payload as Record<string, unknown>;
    } catch (err) {
      throw mapJoseError(err);
    }
    const tid = payload.tid;
    const sub = payload.sub;
    const deviceId = payload.deviceid;
    if (typeof tid !== 'string' || typeof sub !== 'string') {
      throw authError('malformed', 'tid and sub must be strings');
    }
    if (payload.iss !== issuerFor(tid)) throw authError('malformed', 'issuer does not match tid');
    const auds = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    let channel: Audience | null = null;
    for (const a of auds) {
      const c = typeof a === 'string' ? channelOfAudience(a) : null;
      if (c && (expect.channel === 'any' || c === expect.channel)) channel = c;
    }
    if (!channel) {
      throw authError(
        'wrong-audience',
        `token audience is not ${expect.channel === 'any' ? 'an edge audience' : audienceFor(expect.channel)}`,
      );
    }
    if (tid !== expect.tenantId) throw authError('wrong-tenant', `token is for tenant ${tid}`);
    return {
      tenantId: tid,
      userId: typeof payload.oid === 'string' ? payload.oid : sub,
      upn: typeof payload.upn === 'string' ? payload.upn : '',
      deviceId: typeof deviceId === 'string' ? deviceId : '',
      channel,
      expiresAt: (payload.exp as number) * 1000,
      tokenId: typeof payload.jti === 'string' ? payload.jti : '',
    };
  }
}

function authError(reason: AuthReason, message: string): AuthError {
  return new AuthError(reason, message);
}

function mapJoseError(err: unknown): AuthError {
  if (err instanceof errors.JWTExpired) return authError('expired', 'token expired');
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return authError('forged', 'signature verification failed');
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    // nbf in the future: not yet valid, reported with the expiry reason (docs/edge.md).
    if (err.claim === 'nbf') return authError('expired', 'token not yet valid');
    return authError('malformed', `claim ${err.claim}: ${err.reason}`);
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return authError('forged', 'algorithm not accepted');
  return authError('malformed', err instanceof Error ? err.message : 'invalid token');
}

/** `Authorization: Bearer x` -> `x`; anything else -> null (reason `missing`). */
export function bearerOf(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  if (!h) return null;
  const m = /^Bearer\s+(.+)$/i.exec(h.trim());
  return m ? m[1]!.trim() : null;
}

// ---- HTTP: token and JWKS endpoints ---------------------------------------------------

export interface TokenEndpointOptions {
  /** The only tenant the endpoint issues tokens for (the edge's tenant). */
  tenantId: string;
  /**
   * When set, a token is issued only to a request carrying this secret: `client_secret` in
   * the body, or HTTP Basic `client_id:client_secret` (RFC 6749 2.3.1). Else 401
   * `invalid_client`. An edge reachable beyond loopback needs it (docs/decisions/edge-client-secret.md).
   */
  clientSecret?: string | undefined;
  /** Told of each refused token request (the edge's operational log), after the answer. */
  onRefused?: (
    req: IncomingMessage,
    r: { status: number; error: string; description: string },
  ) => void;
}

/** The secret of `Authorization: Basic base64(id:secret)`, or undefined. */
function basicSecret(header: string | undefined): string | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  // RFC 6749 2.3.1: both parts are form-urlencoded before they are joined.
  try {
    return decodeURIComponent(text.slice(colon + 1).replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}

/** Equal secrets, compared in constant time whatever their lengths (digests first). */
export function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

const sendJson = jsonSender('application/json; charset=utf-8', { 'cache-control': 'no-store' });

function oauthError(res: ServerResponse, status: number, error: string, description: string): void {
  sendJson(res, status, { error, error_description: description });
}

/** Read a request body up to `limit` bytes; null when it is larger. */
export async function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > limit) return null;
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const ID_RE = /^[A-Za-z0-9._@-]{1,128}$/;

/**
 * Routes `POST /oauth2/v2.0/token` (also `/{tenant}/oauth2/v2.0/token`),
 * `GET /.well-known/jwks.json` and `GET /discovery/v2.0/keys` (also under `/{tenant}`).
 * Returns false when the path is not one of them.
 */
export async function handleIdentityRequest(
  issuer: Issuer,
  opts: TokenEndpointOptions,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): Promise<boolean> {
  const refuse = (status: number, error: string, description: string): void => {
    oauthError(res, status, error, description);
    opts.onRefused?.(req, { status, error, description });
  };
  const m =
    /^(?:\/([^/]+))?(\/oauth2\/v2\.0\/token|\/\.well-known\/jwks\.json|\/discovery\/v2\.0\/keys)$/.exec(
      path,
    );
  if (!m) return false;
  const pathTenant = m[1];
  const route = m[2]!;
  if (route !== '/oauth2/v2.0/token') {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(
        res,
        405,
        { error: { code: 'MethodNotAllowed', message: 'use GET' } },
        { allow: 'GET' },
      );
      return true;
    }
    sendJson(res, 200, issuer.jwks(), { 'cache-control': 'public, max-age=300' });
    return true;
  }
  if (req.method !== 'POST') {
    sendJson(
      res,
      405,
      { error: 'invalid_request', error_description: 'use POST' },
      { allow: 'POST' },
    );
    return true;
  }
  const text = await readBody(req);
  if (text === null) {
    refuse(413, 'invalid_request', 'body too large');
    return true;
  }
  const ctype = String(req.headers['content-type'] ?? '');
  let fields: Record<string, unknown>;
  try {
    if (ctype.includes('application/x-www-form-urlencoded')) {
      fields = Object.fromEntries(new URLSearchParams(text));
    } else {
      const parsed: unknown = JSON.parse(text || '{}');
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
        throw new Error('not an object');
      fields = parsed as Record<string, unknown>;
    }
  } catch {
    refuse(400, 'invalid_request', 'body must be a JSON object or a form');
    return true;
  }
  const str = (k: string): string | undefined =>
    typeof fields[k] === 'string' ? (fields[k] as string) : undefined;
  const tenantId = str('tenantId') ?? str('tenant_id') ?? pathTenant ?? opts.tenantId;
  const userId = str('userId') ?? str('client_id');
  const deviceId = str('deviceId') ?? str('device_id') ?? 'device-0';
  let channel = str('channel');
  const scope = str('scope');
  if (!channel && scope) {
    for (const c of AUDIENCES) if (scope.startsWith(audienceFor(c))) channel = c;
  }
  if (opts.clientSecret !== undefined) {
    const given = str('client_secret') ?? basicSecret(req.headers.authorization);
    if (given === undefined || !sameSecret(given, opts.clientSecret)) {
      refuse(
        401,
        'invalid_client',
        given === undefined
          ? 'this edge issues tokens only with its client secret: give client_secret (gsa-emu up --edge-secret <file>; the edge printed the file at its start)'
          : "the client_secret is not this edge's",
      );
      return true;
    }
  }
  if (!userId || !ID_RE.test(userId) || !ID_RE.test(deviceId)) {
    refuse(400, 'invalid_request', 'userId (or client_id) and deviceId: 1-128 of [A-Za-z0-9._@-]');
    return true;
  }
  if (!channel || !(AUDIENCES as readonly string[]).includes(channel)) {
    refuse(400, 'invalid_scope', `channel must be one of ${AUDIENCES.join(', ')}`);
    return true;
  }
  if (tenantId !== opts.tenantId) {
    // A tenant from the path may be an edge URL given with a path (`https://host:port/gsa`).
    const where =
      pathTenant !== undefined && tenantId === pathTenant
        ? ` (from the path /${pathTenant}/oauth2/v2.0/token; this edge serves ${opts.tenantId}: is the edge URL's path right?)`
        : '';
    refuse(400, 'invalid_tenant', `tenant ${tenantId} is not served by this edge${where}`);
    return true;
  }
  let ttl = 3600;
  const rawTtl = fields.ttlSeconds ?? fields.ttl_seconds;
  if (rawTtl !== undefined) {
    ttl = Number(rawTtl);
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > issuer.maxTtlSeconds) {
      refuse(400, 'invalid_request', `ttlSeconds must be 1-${issuer.maxTtlSeconds}`);
      return true;
    }
  }
  const upn = str('upn');
  const token = await issuer.issueToken({
    tenantId,
    userId,
    deviceId,
    channel: channel as Audience,
    ttlSeconds: ttl,
    ...(upn ? { upn } : {}),
  });
  sendJson(res, 200, {
    token_type: 'Bearer',
    access_token: token,
    expires_in: ttl,
    ext_expires_in: ttl,
    scope: `${audienceFor(channel as Audience)}/.default`,
  });
  return true;
}
