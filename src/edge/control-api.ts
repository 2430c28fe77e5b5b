/**
 * The edge's control API, shaped like Microsoft Graph beta (`networkAccess`), over plain
 * node:http handlers (no framework):
 *
 *   GET   /beta/networkAccess/forwardingProfiles[?$expand=policies($expand=policy($expand=policyRules))]
 *   GET   /beta/networkAccess/forwardingProfiles/{id}[?$expand=...]
 *   PATCH /beta/networkAccess/forwardingProfiles/{id}/policies/{linkId}  {"state": ...} -> 204
 *   GET   /beta/networkAccess/forwardingPolicies/{id}[?$expand=policyRules]
 *   GET   /beta/networkAccess/forwardingPolicies/{id}/policyRules
 *   GET   /beta/networkAccess/logs/traffic[?$filter=...&$top=n]
 *   GET   /beta/organization                        the tenant: [{id, displayName}]
 *   GET   /health                                   (no token)
 *
 * As on Graph, navigation properties (a profile's `policies`, a link's `policy`, a policy's
 * `policyRules`) are returned only when `$expand` asks for them (policy/odata-expand.ts).
 *
 * Every `/beta/` route needs `Authorization: Bearer <token>`: any valid token of the edge's
 * tenant, whatever its audience (a channel's or `graph`). Errors are Graph-style
 * `{"error":{"code","message","innerError":{"date","request-id"}}}`.
 *
 * Every GET route also answers HEAD (RFC 9110 9.1): the same status and headers (ETag,
 * content-length, 304), no body; their 405 says `Allow: GET, HEAD`. An id that is not
 * valid percent-encoding is 400 BadRequest `bad path`, on every route.
 *
 * Contract: `handle()` answers every request it claims exactly once and never throws;
 * unexpected exceptions become 500 InternalServerError.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AuthError, ConfigError } from '../errors.js';
import { GRAPH_BASE, parseGraphExpand } from '../policy/graph.js';
import { expandContext } from '../policy/odata-expand.js';
import { queryFault } from '../util/query-fault.js';
import { jsonSender } from '../util/send-json.js';
import { bearerOf, type Issuer, type Principal, readBody } from './identity.js';
import { parseFilter } from './odata-filter.js';
import type { TenantStore } from './tenant.js';
import type { TrafficLog } from './traffic-log.js';

export interface ControlApiDeps {
  store: TenantStore;
  log: TrafficLog;
  issuer: Issuer;
  /** Body of GET /health (merged with `status`). */
  health: () => Record<string, unknown>;
  /** Largest `$top` accepted. Default 10,000. */
  maxTop?: number;
}

export type RouteHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
) => Promise<boolean>;

/** HTTP status for an AuthError: 401 missing/malformed/expired, 403 forged/wrong-*. */
export function authHttpStatus(err: AuthError): 401 | 403 {
  return err.reason === 'missing' || err.reason === 'malformed' || err.reason === 'expired'
    ? 401
    : 403;
}

export function sendGraphError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJson(
    res,
    status,
    {
      error: {
        code,
        message,
        innerError: { date: new Date().toISOString(), 'request-id': randomUUID() },
      },
    },
    headers,
  );
}

const sendJson = jsonSender('application/json; odata.metadata=minimal; charset=utf-8', {
  'odata-version': '4.0',
});

/** The methods of a read-only resource (HEAD wherever GET: RFC 9110 9.1). */
const GET_HEAD = 'GET, HEAD';

function isGetOrHead(method: string): boolean {
  return method === 'GET' || method === 'HEAD';
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  sendGraphError(res, 405, 'MethodNotAllowed', `use ${allow}`, { allow });
}

/** sendGraphError, returning true (the request was handled). */
function fail(res: ServerResponse, status: number, code: string, message: string): true {
  sendGraphError(res, status, code, message);
  return true;
}

/** Only these query options are understood; others are a 400 (as Graph does). */
function checkQuery(url: URL, allowed: string[]): string | null {
  const f = queryFault(url.searchParams, allowed);
  if (f === null) return null;
  return `query option ${f.key} ${f.repeated ? 'given twice' : 'is not supported here'}`;
}

/**
 * A read (GET or HEAD) with only the `allowed` query options? If not, the 405 or the 400 is
 * sent and the answer is true (the request was handled).
 */
function refusedRead(res: ServerResponse, method: string, url: URL, allowed: string[]): boolean {
  if (!isGetOrHead(method)) {
    methodNotAllowed(res, GET_HEAD);
    return true;
  }
  const bad = checkQuery(url, allowed);
  if (bad) {
    sendGraphError(res, 400, 'BadRequest', bad);
    return true;
  }
  return false;
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  const strip = (s: string): string => s.trim().replace(/^W\//, '');
  const want = strip(etag);
  return header.split(',').some((t) => strip(t) === want);
}

const PREFIX = '/beta/networkAccess';
const ORGANIZATION = '/beta/organization';
const SEG = '([^/]{1,200})';
const R_PROFILES = new RegExp(`^${PREFIX}/forwardingProfiles/?$`);
const R_PROFILE = new RegExp(`^${PREFIX}/forwardingProfiles/${SEG}$`);
const R_LINK = new RegExp(`^${PREFIX}/forwardingProfiles/${SEG}/policies/${SEG}$`);
const R_POLICY = new RegExp(`^${PREFIX}/forwardingPolicies/${SEG}$`);
const R_RULES = new RegExp(`^${PREFIX}/forwardingPolicies/${SEG}/policyRules/?$`);
const R_TRAFFIC = new RegExp(`^${PREFIX}/logs/traffic/?$`);

function seg(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

export function createControlApi(deps: ControlApiDeps): RouteHandler {
  const maxTop = deps.maxTop ?? 10_000;

  async function authorize(req: IncomingMessage, res: ServerResponse): Promise<Principal | null> {
    try {
      return await deps.issuer.verify(bearerOf(req), {
        channel: 'any',
        tenantId: deps.store.tenantId,
      });
    } catch (err) {
      const e = err instanceof AuthError ? err : new AuthError('malformed', 'invalid token');
      const status = authHttpStatus(e);
      sendGraphError(
        res,
        status,
        status === 401 ? 'InvalidAuthenticationToken' : 'Forbidden',
        `${e.reason}: ${e.message}`,
        {
          'www-authenticate': `Bearer realm="gsa-emu", error="invalid_token", error_description="${e.reason}"`,
          'x-gsa-auth-reason': e.reason,
        },
      );
      return null;
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === '/health') {
      if (!isGetOrHead(method)) methodNotAllowed(res, GET_HEAD);
      else sendJson(res, 200, { status: 'ok', ...deps.health() }, { 'cache-control': 'no-store' });
      return true;
    }
    if (path === ORGANIZATION) {
      if (!(await authorize(req, res))) return true;
      if (!isGetOrHead(method)) methodNotAllowed(res, GET_HEAD);
      else {
        // Graph `GET /organization`: the signed-in user's tenant (id and display name).
        sendJson(res, 200, {
          '@odata.context': `${GRAPH_BASE}/$metadata#organization`,
          value: [{ id: deps.store.tenantId, displayName: deps.store.name }],
        });
      }
      return true;
    }
    if (path !== PREFIX && !path.startsWith(`${PREFIX}/`)) return false;
    if (!(await authorize(req, res))) return true;
    const store = deps.store;
    const mLink = R_LINK.exec(path);
    const mProfile = R_PROFILE.exec(path);
    const mRules = R_RULES.exec(path);
    const mPolicy = mRules ?? R_POLICY.exec(path);

    if (R_PROFILES.test(path)) {
      if (refusedRead(res, method, url, ['$expand'])) return true;
      // A bad $expand is a 400 (the catch below) even when If-None-Match matches.
      const expand = parseGraphExpand(url.searchParams.get('$expand') ?? undefined);
      const etag = store.etag;
      if (etagMatches(req.headers['if-none-match'], etag)) {
        res.writeHead(304, { etag });
        res.end();
        return true;
      }
      const body = store.list(expand);
      sendJson(res, 200, body, { etag, 'cache-control': 'no-cache' });
      return true;
    }
    if (mLink) {
      const m = mLink;
      if (method !== 'PATCH') {
        methodNotAllowed(res, 'PATCH');
        return true;
      }
      const profileId = seg(m[1]!);
      const linkId = seg(m[2]!);
      if (profileId === null || linkId === null) {
        sendGraphError(res, 400, 'BadRequest', 'bad path');
        return true;
      }
      const text = await readBody(req, 16 * 1024);
      if (text === null) {
        sendGraphError(res, 413, 'RequestEntityTooLarge', 'body too large');
        return true;
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        sendGraphError(res, 400, 'BadRequest', 'body is not JSON');
        return true;
      }
      const state =
        body && typeof body === 'object' && !Array.isArray(body)
          ? (body as { state?: unknown }).state
          : undefined;
      if (state !== 'enabled' && state !== 'disabled') {
        return fail(res, 400, 'BadRequest', 'body must be {"state":"enabled"|"disabled"}');
      }
      const ifMatch = req.headers['if-match'];
      if (ifMatch && !etagMatches(ifMatch, store.etag)) {
        return fail(res, 412, 'PreconditionFailed', 'If-Match does not match the current ETag');
      }
      if (!store.setLinkState(profileId, linkId, state)) {
        return fail(
          res,
          404,
          'ResourceNotFound',
          `no policy link ${linkId} in forwarding profile ${profileId}`,
        );
      }
      res.writeHead(204, { etag: store.etag });
      res.end();
      return true;
    }
    if (mProfile) {
      const m = mProfile;
      if (refusedRead(res, method, url, ['$expand'])) return true;
      const id = seg(m[1]!);
      if (id === null) return fail(res, 400, 'BadRequest', 'bad path');
      const expand = parseGraphExpand(url.searchParams.get('$expand') ?? undefined);
      const p = store.profile(id, expand);
      if (!p) {
        sendGraphError(res, 404, 'ResourceNotFound', `no forwarding profile ${id}`);
        return true;
      }
      sendJson(res, 200, {
        '@odata.context': `${GRAPH_BASE}/$metadata#networkAccess/forwardingProfiles${expandContext(expand)}/$entity`,
        ...p,
      });
      return true;
    }
    if (mPolicy) {
      const m = mPolicy;
      const rulesOnly = mRules !== null;
      // A rule has no navigation property to expand: the rules route takes no $expand.
      if (refusedRead(res, method, url, rulesOnly ? [] : ['$expand'])) return true;
      const id = seg(m[1]!);
      if (id === null) return fail(res, 400, 'BadRequest', 'bad path');
      if (rulesOnly) {
        const rules = store.policyRules(id);
        if (!rules) return fail(res, 404, 'ResourceNotFound', `no forwarding policy ${id}`);
        sendJson(res, 200, {
          '@odata.context': `${GRAPH_BASE}/$metadata#networkAccess/forwardingPolicies('${id}')/policyRules`,
          value: rules,
        });
        return true;
      }
      const expand = parseGraphExpand(
        url.searchParams.get('$expand') ?? undefined,
        'forwardingPolicy',
      );
      const pol = store.policy(id, expand);
      if (!pol) return fail(res, 404, 'ResourceNotFound', `no forwarding policy ${id}`);
      sendJson(res, 200, pol);
      return true;
    }
    if (R_TRAFFIC.test(path)) {
      if (refusedRead(res, method, url, ['$filter', '$top'])) return true;
      const topText = url.searchParams.get('$top');
      let top: number | undefined;
      if (topText !== null) {
        if (!/^\d{1,9}$/.test(topText) || Number(topText) < 1 || Number(topText) > maxTop) {
          return fail(res, 400, 'BadRequest', `$top must be an integer 1-${maxTop}`);
        }
        top = Number(topText);
      }
      const filterText = url.searchParams.get('$filter');
      let where: ReturnType<typeof parseFilter> | undefined;
      if (filterText !== null) {
        try {
          where = parseFilter(filterText);
        } catch (err) {
          const msg =
            err instanceof ConfigError ? (err.issues[0]?.message ?? err.message) : 'bad $filter';
          sendGraphError(res, 400, 'BadRequest', `$filter: ${msg}`);
          return true;
        }
      }
      const value = deps.log.query({ ...(where ? { where } : {}), ...(top ? { top } : {}) });
      sendJson(res, 200, {
        '@odata.context': `${GRAPH_BASE}/$metadata#networkAccess/logs/traffic`,
        value,
      });
      return true;
    }
    sendGraphError(res, 404, 'ResourceNotFound', `no resource at ${path}`);
    return true;
  }

  return async (req, res, url) => {
    try {
      return await route(req, res, url);
    } catch (err) {
      if (res.headersSent) {
        res.destroy();
        return true;
      }
      if (err instanceof ConfigError) {
        const issue = err.issues[0];
        sendGraphError(
          res,
          400,
          'BadRequest',
          issue ? `${issue.path}: ${issue.message}` : err.message,
        );
        return true;
      }
      sendGraphError(
        res,
        500,
        'InternalServerError',
        err instanceof Error ? err.message : 'internal error',
      );
      return true;
    }
  };
}
