/**
 * One flow's decision and the rule behind it, as `gsa-emu explain` prints it. The shape is
 * shared by the offline command (a tenant file compiled on the spot) and the running
 * client's admin API (`GET /explain`), which asks the client's own forwarder: its current
 * classifier (profiles, tiles, platform) and its resolver (hosts entries, then DNS) for a
 * name no rule acquires, exactly as a proxy flow is classified.
 */
import type { Decision } from '../classify/types.js';
import { PROTO_TCP, PROTO_UDP } from '../classify/types.js';
import { UsageError } from '../errors.js';
import type { Forwarder } from '../forward/forwarder.js';
import type { Resolver } from '../forward/resolver.js';
import { ipFamily } from '../util/ip.js';
import { type Target, targetText } from '../util/target.js';

export interface Explanation {
  target: string;
  protocol: 'tcp' | 'udp';
  host: string | null;
  ip: string | null;
  port: number;
  decision: Decision;
  /** The name the flow goes by: a single-label host qualified for Private DNS. */
  qualified?: string;
  /**
   * A single-label host Private DNS leaves as given because the Private Access channel is
   * off, where a rule would acquire it with the channel on: the name it would go by then.
   */
  qualifiedWhenOn?: string;
  /** The running client resolved the name (no rule acquired it by name). */
  resolved?: boolean;
  /**
   * The running client bypasses the name and has no address for it (neither its resolver
   * nor its dial map): a proxy flow to it fails with "cannot resolve".
   */
  unresolvable?: boolean;
  /** The client configuration's warnings (offline: an unknown key in --client-config). */
  warnings?: string[];
}

/** A forwarder's `decide` and, where known, the resolver its bypassed flows connect with. */
export type Deciding = Pick<Forwarder, 'decide'> & {
  resolver?: Pick<Resolver, 'dialTarget' | 'resolve'>;
};

/**
 * Whether a bypassed flow to `host` fails with "cannot resolve", given `decide`'s answer
 * `r`: it connects as the forwarder does, by the dial map, else by the resolver. `decide`
 * has asked the resolver already (and had no address) unless a rule decided by the name;
 * then it is asked here.
 */
export async function bypassCannotResolve(
  resolver: Deciding['resolver'],
  host: string | null,
  port: number,
  r: { decision: Decision; ip: string | null; qualified?: true },
): Promise<boolean> {
  if (resolver === undefined || host === null || r.ip !== null || r.qualified) return false;
  if (r.decision.action !== 'bypass' || resolver.dialTarget(host, null, port) !== null) {
    return false;
  }
  return r.decision.ruleId === null || (await resolver.resolve(host)) === null;
}

/** The running client's answer for `target` (`ip`: the address the name resolved to). */
export async function explainWithForwarder(
  forwarder: Deciding,
  target: Target,
  ip: string | null,
): Promise<Explanation> {
  const given = target.ip ?? ip;
  if (given !== null && ipFamily(given) === 0) {
    throw new UsageError(`"${given}" is not an IP address`);
  }
  const proto = target.proto === 'udp' ? PROTO_UDP : PROTO_TCP;
  const r = await forwarder.decide(proto, target.host, given, target.port);
  return {
    target: targetText(target),
    protocol: target.proto,
    host: target.host,
    ...(r.qualified && r.host ? { qualified: r.host } : {}),
    ...(r.qualifiedWhenOn ? { qualifiedWhenOn: r.qualifiedWhenOn } : {}),
    ip: r.ip,
    port: target.port,
    // A copy: decisions are shared, immutable records of the classifier.
    decision: { ...r.decision },
    resolved: given === null && r.ip !== null,
    ...((await bypassCannotResolve(forwarder.resolver, target.host, target.port, r))
      ? { unresolvable: true }
      : {}),
  };
}
