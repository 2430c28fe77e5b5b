/**
 * The client's side of the edge's HTTP API (undici): access tokens per channel from the
 * token endpoint, cached and refreshed before they expire, and the forwarding profiles,
 * polled with ETag / If-None-Match so an unchanged document costs a 304.
 *
 * ```ts
 * const api = new EdgeApi({ url: edge.url, ca: edge.caPem, userId: 'alice', deviceId: 'dev1' });
 * const token = await api.getToken('internet');         // cached; refreshed at 80% of its life
 * const poll = api.pollProfiles({ intervalMs: 30_000, onChange: (doc, etag) => reload(doc) });
 * poll.stop(); await api.close();
 * ```
 *
 * Contract: `getToken` is single-flight per channel and returns the cached token until
 * `refreshAt` of its lifetime (which ends at the earlier of `expires_in` and the token's own
 * `exp`: tokenExpiry); when a refresh fails it keeps returning the old token while that is
 * still valid. `getToken(channel, { fresh: true })` drops the cached token first (the
 * edge refused it) and fetches a new one. A control call the edge refuses with 401, or with
 * 403 `forged` / `wrong-tenant` (an edge restarted with another key or for another tenant),
 * is retried once with a fresh token. HTTP failures are EdgeHttpError (code
 * GSA_ERR_EDGE_HTTP, `status`, Graph `graphCode`); a refused token is AuthError (`reason`
 * from the edge). `pollProfiles` never throws: errors go to `onError` and polling goes on.
 * `onTenant` hears the tenant (`tid`) of each token fetched: an edge restarted for another
 * tenant shows there first. `close()` aborts the requests in flight.
 */
import { decodeJwt } from 'jose';
import { Agent, type Dispatcher, request } from 'undici';
import type { Audience } from '../edge/identity.js';
import { AuthError, EdgeHttpError } from '../errors.js';
import { EXPAND_ALL } from '../policy/graph.js';

export interface EdgeApiOptions {
  /** Edge base URL (`https://127.0.0.1:port`). */
  url: string;
  /** CA certificate(s) (PEM) to trust: the edge's local CA. */
  ca?: string | Buffer | Array<string | Buffer> | null;
  /** Default: the tenant the edge serves (the token endpoint fills it in). */
  tenantId?: string;
  userId: string;
  deviceId: string;
  upn?: string;
  /** Refresh a token once this fraction of its lifetime has passed. Default 0.8. */
  refreshAt?: number;
  /** Requested token lifetime (s); default: the edge's (3600). */
  tokenTtlSeconds?: number;
  /** The edge's client secret (`client_secret` of each token request): an edge reachable beyond loopback asks for it. */
  clientSecret?: string;
  /** Per-request timeout (ms). Default 10,000. */
  timeoutMs?: number;
  /** Use this dispatcher instead of creating an Agent (then `ca` and `localAddress` are ignored). */
  dispatcher?: Dispatcher;
  /** Local address the connections to the edge are bound to (TUN host mode). */
  localAddress?: string;
  /** Called with the tenant id (`tid`) of every token fetched (not of cached ones). */
  onTenant?: (tenantId: string) => void;
}

interface CachedToken {
  token: string;
  obtainedAt: number;
  expiresAt: number;
  refreshAt: number;
}

export type ProfilesResult =
  | { status: 200; etag: string | null; doc: GraphList }
  | { status: 304; etag: string | null };

/** The Graph list body (`{ '@odata.context', value: [...] }`). */
export interface GraphList {
  value: unknown[];
  [key: string]: unknown;
}

export interface PollOptions {
  /** Delay between polls (ms). GSA clients poll every few minutes; tests use ~50 ms. */
  intervalMs: number;
  /**
   * Default `policies($expand=policy($expand=policyRules))`: links, policies and rules in
   * one request (as on Graph, rules come only when expanded).
   */
  expand?: string;
  /** Called with the first document and each changed one. */
  onChange: (doc: GraphList, etag: string | null) => void | Promise<void>;
  onError?: (err: Error) => void;
  /** Called after each poll the edge answered (a new document or 304 Not Modified). */
  onChecked?: () => void;
  /** ETag already held (the first poll may then be a 304). */
  etag?: string | null;
}

/**
 * What one poll did: the edge answered (200 with a new document, `changed`: onChange ran; or
 * 304 / the same ETag), failed (`error`, also given to onError), or was not made (stopped).
 */
export type PollOutcome =
  | { status: 200 | 304; changed: boolean }
  | { status: 'error'; error: Error }
  | { status: 'stopped' };

export interface Poller {
  stop(): void;
  /**
   * Polls at once (resolves after onChange/onError ran) and says what that poll did. One
   * poll at a time: a call while one runs waits for it, then polls again (the edge may have
   * changed after it began); calls that wait together share that next poll. The timer
   * restarts from its end.
   */
  pollNow(): Promise<PollOutcome>;
  /**
   * Forget the ETag held: the next poll fetches the whole document and calls onChange even
   * when it did not change (the edge now serves another tenant the same profiles).
   */
  forgetEtag(): void;
  readonly etag: string | null;
}

export class EdgeApi {
  readonly url: string;
  private readonly opts: EdgeApiOptions;
  private readonly dispatcher: Dispatcher;
  private readonly ownDispatcher: boolean;
  private readonly tokens = new Map<Audience, CachedToken>();
  private readonly inflight = new Map<Audience, Promise<string>>();
  private readonly refreshFraction: number;
  private readonly timeoutMs: number;
  private closed = false;
  /** Requests in flight: close() aborts them (they would hold dispatcher.close()). */
  private readonly requests = new Set<AbortController>();
  private readonly pollers = new Set<Poller>();
  /** Token fetches made (for diagnostics and tests). */
  tokenFetches = 0;

  constructor(opts: EdgeApiOptions) {
    this.opts = opts;
    this.url = opts.url.replace(/\/+$/, '');
    this.refreshFraction = opts.refreshAt ?? 0.8;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    if (opts.dispatcher) {
      this.dispatcher = opts.dispatcher;
      this.ownDispatcher = false;
    } else {
      this.dispatcher = new Agent({
        connect: {
          // The abort signal of send() does not cut a connect or TLS handshake short:
          // without this, an edge that never answers holds each request for undici's 10 s.
          timeout: this.timeoutMs,
          ...(opts.ca ? { ca: opts.ca } : {}),
          ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
        },
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      this.ownDispatcher = true;
    }
  }

  /**
   * A valid token for `channel` (tunnel channels, or `graph` for the control API). `fresh`:
   * the edge refused the cached one; drop it and fetch another.
   */
  getToken(channel: Audience, opts: { fresh?: boolean } = {}): Promise<string> {
    if (opts.fresh === true) this.tokens.delete(channel);
    const now = Date.now();
    const c = this.tokens.get(channel);
    if (c && now < c.refreshAt) return Promise.resolve(c.token);
    const pending = this.inflight.get(channel);
    if (pending) return pending;
    const p = this.fetchToken(channel).then(
      (t) => {
        this.inflight.delete(channel);
        return t;
      },
      (err: unknown) => {
        this.inflight.delete(channel);
        const old = this.tokens.get(channel);
        if (old && Date.now() < old.expiresAt - 5000) return old.token;
        throw err;
      },
    );
    this.inflight.set(channel, p);
    return p;
  }

  /** Forget cached tokens (all, or one channel's). */
  invalidateToken(channel?: Audience): void {
    if (channel) this.tokens.delete(channel);
    else this.tokens.clear();
  }

  /** The cached token's timing, for diagnostics ("cached token" health check). */
  tokenInfo(
    channel: Audience,
  ): { obtainedAt: number; expiresAt: number; refreshAt: number } | null {
    const c = this.tokens.get(channel);
    return c ? { obtainedAt: c.obtainedAt, expiresAt: c.expiresAt, refreshAt: c.refreshAt } : null;
  }

  /** When the last cached token to expire expires (ms), or null with none cached. */
  lastTokenExpiresAt(): number | null {
    let at: number | null = null;
    for (const c of this.tokens.values()) if (at === null || c.expiresAt > at) at = c.expiresAt;
    return at;
  }

  /** When the newest cached token was issued (requested), or null with none cached. */
  lastTokenObtainedAt(): number | null {
    let at: number | null = null;
    for (const c of this.tokens.values()) if (at === null || c.obtainedAt > at) at = c.obtainedAt;
    return at;
  }

  private async fetchToken(channel: Audience): Promise<string> {
    this.tokenFetches++;
    const body: Record<string, unknown> = {
      userId: this.opts.userId,
      deviceId: this.opts.deviceId,
      channel,
    };
    if (this.opts.tenantId) body.tenantId = this.opts.tenantId;
    if (this.opts.upn) body.upn = this.opts.upn;
    if (this.opts.tokenTtlSeconds) body.ttlSeconds = this.opts.tokenTtlSeconds;
    if (this.opts.clientSecret !== undefined) body.client_secret = this.opts.clientSecret;
    const obtainedAt = Date.now();
    const r = await this.call('POST', '/oauth2/v2.0/token', {
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
      auth: null,
    });
    if (r.status !== 200) throw httpError(r.status, r.json, 'token request');
    const j = r.json as { access_token?: unknown; expires_in?: unknown } | null;
    if (!j || typeof j.access_token !== 'string' || typeof j.expires_in !== 'number') {
      throw new EdgeHttpError(r.status, null, 'token response without access_token / expires_in');
    }
    const expiresAt = tokenExpiry(j.access_token, obtainedAt, j.expires_in);
    this.tokens.set(channel, {
      token: j.access_token,
      obtainedAt,
      expiresAt,
      refreshAt: obtainedAt + (expiresAt - obtainedAt) * this.refreshFraction,
    });
    const tid = tenantOfToken(j.access_token);
    if (tid !== undefined) this.opts.onTenant?.(tid);
    return j.access_token;
  }

  /**
   * One GET of the forwarding profiles (If-None-Match when `etag` is given). `expand`
   * defaults to EXPAND_ALL (links, policies and their rules); '' asks for none.
   */
  async getProfiles(opts: { expand?: string; etag?: string | null } = {}): Promise<ProfilesResult> {
    const expand = opts.expand ?? EXPAND_ALL;
    const q = expand ? `?$expand=${encodeURIComponent(expand)}` : '';
    const headers: Record<string, string> = {};
    if (opts.etag) headers['if-none-match'] = opts.etag;
    const r = await this.call('GET', `/beta/networkAccess/forwardingProfiles${q}`, { headers });
    const etag = typeof r.headers.etag === 'string' ? r.headers.etag : null;
    if (r.status === 304) return { status: 304, etag: etag ?? opts.etag ?? null };
    if (r.status !== 200) throw httpError(r.status, r.json, 'GET forwardingProfiles');
    const doc = r.json as GraphList | null;
    if (!doc || !Array.isArray(doc.value))
      throw new EdgeHttpError(200, null, 'profiles response without value[]');
    return { status: 200, etag, doc };
  }

  /** Polls the profiles every `intervalMs` (first poll at once); see PollOptions. */
  pollProfiles(opts: PollOptions): Poller {
    const api = this;
    let etag = opts.etag ?? null;
    let timer: NodeJS.Timeout | null = null;
    let stopped = false;
    let running: Promise<PollOutcome> | null = null;
    /** The poll that starts when `running` ends, shared by the pollNow calls waiting for it. */
    let queued: Promise<PollOutcome> | null = null;
    const once = async (): Promise<PollOutcome> => {
      try {
        const r = await this.getProfiles({
          ...(opts.expand !== undefined ? { expand: opts.expand } : {}),
          etag,
        });
        if (stopped) return { status: 'stopped' };
        opts.onChecked?.();
        if (r.status === 200) {
          const changed = r.etag === null || r.etag !== etag;
          etag = r.etag;
          if (changed) await opts.onChange(r.doc, r.etag);
          return { status: 200, changed };
        }
        return { status: 304, changed: false };
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        if (stopped) return { status: 'stopped' };
        opts.onError?.(e);
        return { status: 'error', error: e };
      }
    };
    /** Starts a poll now (none running): the timer waits for its end. */
    const start = (): Promise<PollOutcome> => {
      if (timer) clearTimeout(timer);
      timer = null;
      const p = once().finally(() => {
        if (running === p) running = null;
        if (timer) clearTimeout(timer);
        timer = null;
        if (!stopped && !this.closed) timer = setTimeout(tick, opts.intervalMs);
      });
      running = p;
      return p;
    };
    const tick = (): void => {
      timer = null;
      if (stopped || this.closed || running !== null) return;
      void start();
    };
    const poller: Poller = {
      stop() {
        stopped = true;
        if (timer) clearTimeout(timer);
        timer = null;
        api.pollers.delete(poller);
      },
      pollNow() {
        if (stopped || api.closed) return Promise.resolve({ status: 'stopped' });
        if (running === null) return start();
        // A poll runs (it may have asked before the edge changed): the next one, shared.
        if (queued === null) {
          const wait = running;
          queued = wait.then(() => {
            queued = null;
            if (stopped || api.closed) return { status: 'stopped' } as const;
            // Another pollNow may have started one since: it began after this call too.
            return running ?? start();
          });
        }
        return queued;
      },
      forgetEtag() {
        etag = null;
      },
      get etag() {
        return etag;
      },
    };
    this.pollers.add(poller);
    tick();
    return poller;
  }

  /** The tenant the edge serves (Graph `GET /organization`): its id and display name. */
  async getOrganization(): Promise<{ id: string; displayName: string }> {
    const r = await this.call('GET', '/beta/organization', {});
    if (r.status !== 200) throw httpError(r.status, r.json, 'GET organization');
    const org = (r.json as { value?: Array<{ id?: unknown; displayName?: unknown }> } | null)
      ?.value?.[0];
    if (!org || typeof org.id !== 'string' || typeof org.displayName !== 'string') {
      throw new EdgeHttpError(200, null, 'organization response without value[0].id / displayName');
    }
    return { id: org.id, displayName: org.displayName };
  }

  /** PATCH a policy link's state (admin operation, as Graph). */
  async setPolicyLinkState(
    profileId: string,
    linkId: string,
    state: 'enabled' | 'disabled',
  ): Promise<void> {
    const path = `/beta/networkAccess/forwardingProfiles/${encodeURIComponent(profileId)}/policies/${encodeURIComponent(linkId)}`;
    const r = await this.call('PATCH', path, {
      body: JSON.stringify({ state }),
      headers: { 'content-type': 'application/json' },
    });
    if (r.status !== 204) throw httpError(r.status, r.json, 'PATCH policy link');
  }

  /** GET the edge's traffic log (`$filter`, `$top` as the API takes them). */
  async trafficLogs(q: { filter?: string; top?: number } = {}): Promise<unknown[]> {
    const p = new URLSearchParams();
    if (q.filter !== undefined) p.set('$filter', q.filter);
    if (q.top !== undefined) p.set('$top', String(q.top));
    const qs = p.toString();
    const r = await this.call('GET', `/beta/networkAccess/logs/traffic${qs ? `?${qs}` : ''}`, {});
    if (r.status !== 200) throw httpError(r.status, r.json, 'GET logs/traffic');
    return (r.json as { value: unknown[] }).value;
  }

  /** GET /health (no token). */
  async health(): Promise<Record<string, unknown>> {
    const r = await this.call('GET', '/health', { auth: null });
    if (r.status !== 200) throw httpError(r.status, r.json, 'GET /health');
    return r.json as Record<string, unknown>;
  }

  /** Stops every poller, aborts the requests in flight and closes the connections. */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of [...this.pollers]) p.stop();
    // An edge that stopped answering would hold dispatcher.close() for up to timeoutMs.
    for (const r of this.requests) r.abort(new EdgeHttpError(0, null, 'EdgeApi is closed'));
    // destroy, not close: close() waits for a connect or TLS handshake in progress, which
    // no abort cuts short (a silent edge: up to timeoutMs).
    if (this.ownDispatcher) await this.dispatcher.destroy();
  }

  /**
   * Enrolls a device certificate: POST /deviceCertificates with the PKCS#10 request `csrDer`
   * and the `graph` token (whose device id the edge puts in the certificate). Resolves to
   * the certificate (DER); EdgeHttpError when the edge refuses (400: a bad request, 404: an
   * edge without the endpoint).
   */
  async enrollDeviceCertificate(csrDer: Uint8Array): Promise<Buffer> {
    const r = await this.call('POST', '/deviceCertificates', {
      body: JSON.stringify({
        CertificateRequest: { Type: 'pkcs10', Data: Buffer.from(csrDer).toString('base64') },
      }),
      headers: { 'content-type': 'application/json' },
    });
    const raw = (r.json as { Certificate?: { RawBody?: unknown } } | null)?.Certificate?.RawBody;
    if (r.status !== 200 || typeof raw !== 'string')
      throw httpError(r.status, r.json, 'device certificate enrollment');
    return Buffer.from(raw, 'base64');
  }

  /**
   * One request; control-API calls carry the `graph` token and retry once with a fresh one
   * on 401, and on 403 `forged` or `wrong-tenant` (the edge restarted with another signing
   * key or for another tenant: the cached token will never pass again).
   */
  private async call(
    method: 'GET' | 'POST' | 'PATCH',
    path: string,
    o: { body?: string; headers?: Record<string, string>; auth?: Audience | null },
  ): Promise<{
    status: number;
    headers: Record<string, string | string[] | undefined>;
    json: unknown;
  }> {
    if (this.closed) throw new EdgeHttpError(0, null, 'EdgeApi is closed');
    const auth = o.auth === undefined ? 'graph' : o.auth;
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { accept: 'application/json', ...(o.headers ?? {}) };
      if (auth) headers.authorization = `Bearer ${await this.getToken(auth)}`;
      const { res, text } = await this.send(method, path, headers, o.body);
      let json: unknown = null;
      if (text) {
        try {
          json = JSON.parse(text);
        } catch {
          json = null;
        }
      }
      if (auth && (res.statusCode === 401 || res.statusCode === 403)) {
        const reason = res.headers['x-gsa-auth-reason'];
        const stale = res.statusCode === 401 || reason === 'forged' || reason === 'wrong-tenant';
        if (stale && attempt === 0) {
          this.invalidateToken(auth);
          continue;
        }
        throw new AuthError(
          typeof reason === 'string' ? reason : 'forged',
          `edge refused the token: ${graphMessage(json)}`,
        );
      }
      return { status: res.statusCode, headers: res.headers, json };
    }
  }

  /** One HTTP exchange, bounded by timeoutMs and aborted by close(). */
  private async send(
    method: 'GET' | 'POST' | 'PATCH',
    path: string,
    headers: Record<string, string>,
    body: string | undefined,
  ): Promise<{ res: Dispatcher.ResponseData; text: string }> {
    if (this.closed) throw new EdgeHttpError(0, null, 'EdgeApi is closed');
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(timeoutError()), this.timeoutMs);
    this.requests.add(ac);
    try {
      const res = await request(`${this.url}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        dispatcher: this.dispatcher,
        signal: ac.signal,
      }).catch((err: unknown) => {
        throw withTransportHint(err, this.url, this.opts.ca != null);
      });
      return { res, text: await res.body.text() };
    } finally {
      clearTimeout(timer);
      this.requests.delete(ac);
    }
  }
}

/** Certificate checks that fail when the client does not trust the edge's CA. */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
]);

/**
 * Transport errors that retrying cannot mend: the client does not trust the edge's
 * certificate, the certificate has other names, or https:// to an edge without TLS. The
 * configuration (`--edge`, `--edge-ca`) must change, so a start stops on them
 * (checkEdgeToken). http:// to a TLS edge is not among them: its error (a reset) is also
 * what an edge that is restarting gives.
 */
export function isEdgeConfigError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    typeof code === 'string' &&
    (UNTRUSTED.has(code) ||
      code === 'ERR_TLS_CERT_ALTNAME_INVALID' ||
      code === 'ERR_SSL_WRONG_VERSION_NUMBER')
  );
}

/**
 * Error codes that say this machine has no network toward the edge, rather than that the
 * edge is down: no route to its network (ENETUNREACH), the interface down (ENETDOWN), and
 * a name lookup that fails for now (EAI_AGAIN, what a resolver gives with no network).
 */
const NO_NETWORK: ReadonlySet<string> = new Set(['ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN']);

/**
 * The error's code when it says this machine has no network toward the edge (NO_NETWORK;
 * the error itself or its `cause`, as undici and withTransportHint keep it), else null:
 * the client's "No internet" state.
 */
export function noNetworkCode(err: unknown): string | null {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e !== null && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NO_NETWORK.has(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

/**
 * An edge request's transport error with what to change, when the URL or the CA is the
 * likely cause (the message is what `status` and `status --health` show): an untrusted
 * certificate (`--edge-ca` missing, or `caGiven` and another edge's), a certificate for other names, https:// to a plain edge (whose
 * OpenSSL message says only "wrong version number"), http:// to a TLS edge ("other side
 * closed"). The code and the original error (`cause`) are kept; other errors as they are.
 */
export function withTransportHint(err: unknown, url: string, caGiven = false): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !(err instanceof Error)) return err;
  const https = url.startsWith('https:');
  let text: string | null = null;
  if (UNTRUSTED.has(code)) {
    text = caGiven
      ? `${err.message}: the edge's certificate is not signed by the CA given with --edge-ca; give that edge's own <state-dir>/ca.pem`
      : `${err.message}: the edge's certificate is not trusted; give its CA with --edge-ca (the edge's <state-dir>/ca.pem)`;
  } else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    text = `${err.message}: use a name the edge's certificate has (gsa-emu edge --hostname adds one)`;
  } else if (https && code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
    text =
      'TLS handshake failed: the edge does not speak TLS there (gsa-emu edge --no-tls?); its URL is then http://';
  } else if (!https && (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET')) {
    text = `${err.message}: if the edge serves TLS (gsa-emu edge without --no-tls), its URL is https://`;
  }
  if (text === null) return err;
  return Object.assign(new Error(text, { cause: err }), { code });
}

/** How far a token's `exp` may be from `obtainedAt + expires_in` and still be on our clock. */
const EXP_AGREES_MS = 2000;

/**
 * When a token fetched at `obtainedAt` (ms) with `expires_in` (s) expires (ms). The edge's
 * `exp` is whole seconds of its own clock at issue (after `obtainedAt`), so on a shared clock
 * the token expires up to a second before `obtainedAt + expires_in`: then the claim (read
 * without verifying it) is the earlier and is taken. A claim further than EXP_AGREES_MS from
 * `obtainedAt + expires_in` says the edge's clock is not ours (a remote edge, skewed): it
 * means nothing by this clock, and `expires_in`, which depends on neither clock, is used. So
 * is it for a token without a numeric `exp`.
 */
export function tokenExpiry(jwt: string, obtainedAt: number, expiresIn: number): number {
  const byLife = obtainedAt + expiresIn * 1000;
  let exp: unknown;
  try {
    exp = decodeJwt(jwt).exp;
  } catch {
    return byLife;
  }
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return byLife;
  const byClaim = exp * 1000;
  return byClaim < byLife && byLife - byClaim <= EXP_AGREES_MS ? byClaim : byLife;
}

/** The tenant id (`tid` claim) of a JWT, read without verifying it; undefined if none. */
export function tenantOfToken(jwt: string): string | undefined {
  try {
    const { tid } = decodeJwt(jwt);
    return typeof tid === 'string' ? tid : undefined;
  } catch {
    return undefined;
  }
}

function timeoutError(): DOMException {
  return new DOMException('The operation was aborted due to timeout', 'TimeoutError');
}

function graphMessage(json: unknown): string {
  const j = json as { error?: unknown; error_description?: unknown } | null;
  if (j && typeof j.error === 'object' && j.error !== null) {
    const e = j.error as { code?: unknown; message?: unknown };
    return `${String(e.code)}: ${String(e.message)}`;
  }
  if (j && typeof j.error === 'string') return `${j.error}: ${String(j.error_description ?? '')}`;
  return 'no error body';
}

function httpError(status: number, json: unknown, what: string): EdgeHttpError {
  const j = json as { error?: unknown } | null;
  let code: string | null = null;
  if (j && typeof j.error === 'string') code = j.error;
  else if (j && typeof j.error === 'object' && j.error !== null) {
    const c = (j.error as { code?: unknown }).code;
    code = typeof c === 'string' ? c : null;
  }
  return new EdgeHttpError(status, code, `${what}: HTTP ${status} ${graphMessage(json)}`);
}
