/**
 * The edge's copy of its tenant: the Graph forwarding-profile document it serves and
 * PATCHes, the normalized TenantSpec (policy/graph.ts `loadTenant`), the Private Access
 * segments compiled from it, and the document's ETag.
 *
 * Contract: the constructor validates the document (ConfigError on a bad one) and works on
 * its own deep copy; `setLinkState()` changes the copy in place, re-derives everything and
 * changes the ETag; readers always see a consistent snapshot (one reference swap).
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  asGraphDocument,
  expandPolicy,
  expandProfiles,
  type GraphDocument,
  type GraphForwardingPolicy,
  type GraphForwardingProfile,
  type GraphPolicyRule,
  type LoadTenantOptions,
  loadTenant,
  setPolicyLinkState,
} from '../policy/graph.js';
import type { State, TenantSpec } from '../policy/model.js';
import type { ExpandTree } from '../policy/odata-expand.js';
import { PrivateApps } from './connector.js';

/** Weak ETag of a JSON document: `W/"<sha256 base64url, 27 chars>"`. */
export function weakEtag(doc: unknown): string {
  const h = createHash('sha256').update(JSON.stringify(doc)).digest('base64url').slice(0, 27);
  return `W/"${h}"`;
}

interface Snapshot {
  spec: TenantSpec;
  apps: PrivateApps;
  etag: string;
  /** Policy (and policy link) and rule ids to their names, for the traffic log. */
  names: Map<string, string>;
}

function namesOf(spec: TenantSpec): Map<string, string> {
  const m = new Map<string, string>();
  for (const p of spec.profiles) {
    for (const pol of p.policies) {
      m.set(pol.id, pol.name);
      m.set(pol.linkId, pol.name);
      for (const r of pol.rules) m.set(r.id, r.name);
    }
  }
  return m;
}

/** Events: 'change' (etag: string) after a successful setLinkState. */
export class TenantStore extends EventEmitter {
  private doc: GraphDocument;
  private snap: Snapshot;
  /** How every later version of the document is loaded: same tenant id, name and file. */
  private readonly loadOpts: LoadTenantOptions;

  /**
   * `tenantId` and `name` are for a Graph list (`{ value: [...] }`), which carries neither;
   * a tenant document's own `tenantId` and `name` win.
   */
  constructor(doc: unknown, opts: LoadTenantOptions = {}) {
    super();
    const spec = loadTenant(doc, opts);
    // Pin the identity the first load settled on, so a PATCHed list keeps it.
    this.loadOpts = { ...opts, tenantId: spec.tenantId, name: spec.name };
    // One profile entity (GET forwardingProfiles/{id}) is kept as a one-profile list, as
    // loadTenantFile gives it: the policy lookups below read a list.
    this.doc = structuredClone(asGraphDocument(doc)) as GraphDocument;
    this.snap = {
      spec,
      apps: new PrivateApps(spec),
      etag: weakEtag(this.doc),
      names: namesOf(spec),
    };
  }

  get tenantId(): string {
    return this.snap.spec.tenantId;
  }
  /** The tenant's display name (Graph `organization.displayName`). */
  get name(): string {
    return this.snap.spec.name;
  }
  get spec(): TenantSpec {
    return this.snap.spec;
  }
  get privateApps(): PrivateApps {
    return this.snap.apps;
  }
  get etag(): string {
    return this.snap.etag;
  }
  /** The name of a policy, policy link or rule of the current document; null if unknown. */
  nameOf(id: string | null): string | null {
    return id === null ? null : (this.snap.names.get(id) ?? null);
  }

  private profiles(): GraphForwardingProfile[] {
    const d = this.doc as {
      forwardingProfiles?: GraphForwardingProfile[];
      value?: GraphForwardingProfile[];
    };
    return d.forwardingProfiles ?? d.value ?? [];
  }

  /**
   * The Graph list response for `$expand` (text or a parsed tree; ConfigError on an
   * unsupported `$expand`): only the navigation properties asked for.
   */
  list(expand?: string | ExpandTree): ReturnType<typeof expandProfiles> {
    return expandProfiles(this.doc, expand);
  }

  /** One profile as the list would show it, or undefined. */
  profile(id: string, expand?: string | ExpandTree): GraphForwardingProfile | undefined {
    return this.list(expand).value.find((p) => p.id === id);
  }

  /** The stored policy (with its rules), not copied. */
  private findPolicy(id: string): GraphForwardingPolicy | undefined {
    for (const p of this.profiles()) {
      for (const l of p.policies ?? []) {
        if (l.policy && l.policy.id === id) return l.policy;
      }
    }
    return undefined;
  }

  /**
   * A forwarding policy by id as Graph returns it (a copy with `@odata.context`; its
   * `policyRules` only when `$expand` asks for them), or undefined.
   */
  policy(id: string, expand?: string | ExpandTree): ReturnType<typeof expandPolicy> | undefined {
    const pol = this.findPolicy(id);
    return pol && expandPolicy(pol, expand);
  }

  /** A forwarding policy's rules (a copy; [] when it has none), or undefined if no such policy. */
  policyRules(id: string): GraphPolicyRule[] | undefined {
    const pol = this.findPolicy(id);
    return pol && structuredClone(pol.policyRules ?? []);
  }

  /** PATCH a policy link's state; false when the profile or link does not exist. */
  setLinkState(profileId: string, linkId: string, state: State): boolean {
    const trial = structuredClone(this.doc);
    if (!setPolicyLinkState(trial, profileId, linkId, state)) return false;
    const spec = loadTenant(trial, this.loadOpts);
    this.doc = trial;
    const etag = weakEtag(this.doc);
    this.snap = { spec, apps: new PrivateApps(spec), etag, names: namesOf(spec) };
    this.emit('change', etag);
    return true;
  }
}
