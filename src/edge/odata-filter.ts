/**
 * The small OData `$filter` subset the traffic-log API understands:
 *
 *   filter  := clause ( 'and' clause )*
 *   clause  := field op value | '(' filter ')'
 *   op      := eq | ne | gt | ge | lt | le
 *   value   := 'string' ('' escapes a quote) | number | 2026-01-02T03:04:05Z (a datetime)
 *
 * Fields: string fields (trafficType, action, transportProtocol, operationStatus, userId,
 * userPrincipalName, deviceId, tenantId, destinationFQDN, destinationIp, sourceIp,
 * connectionId, sessionId, transactionId, policyId, policyRuleId) take eq/ne and a quoted
 * string (case-insensitive compare); number fields (destinationPort, sourcePort, sentBytes,
 * receivedBytes) take all ops and a number; createdDateTime takes all ops and a datetime.
 *
 * Contract: `parseFilter()` returns a predicate or throws FilterSyntaxError (a GsaError,
 * ConfigError, code GSA_ERR_CONFIG, path `$filter`) naming the offset; never anything else, for any input.
 */
import { ConfigError } from '../errors.js';
import type { NetworkAccessTraffic } from './traffic-log.js';

/** A bad `$filter`: a ConfigError (code GSA_ERR_CONFIG) with one issue at path `$filter`. */
export class FilterSyntaxError extends ConfigError {
  readonly detail: string;
  constructor(message: string) {
    super([{ path: '$filter', message }]);
    this.detail = message;
  }
}

type Pred = (r: NetworkAccessTraffic) => boolean;
type Op = 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'le';

const STRING_FIELDS = new Set([
  'trafficType',
  'action',
  'transportProtocol',
  'operationStatus',
  'userId',
  'userPrincipalName',
  'deviceId',
  'tenantId',
  'destinationFQDN',
  'destinationIp',
  'sourceIp',
  'connectionId',
  'sessionId',
  'transactionId',
  'policyId',
  'policyRuleId',
]);
const NUMBER_FIELDS = new Set(['destinationPort', 'sourcePort', 'sentBytes', 'receivedBytes']);
const DATE_FIELDS = new Set(['createdDateTime']);
const OPS = new Set<Op>(['eq', 'ne', 'gt', 'ge', 'lt', 'le']);
const MAX_FILTER = 2048;
const MAX_DEPTH = 16;

type Tok =
  | { k: 'word'; v: string; at: number }
  | { k: 'str'; v: string; at: number }
  | { k: 'num'; v: number; at: number }
  | { k: 'date'; v: number; text: string; at: number }
  | { k: '('; at: number }
  | { k: ')'; at: number };

const DATE_RE = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2}))?/;

function tokenize(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    if (c === '(' || c === ')') {
      out.push({ k: c, at: i });
      i++;
      continue;
    }
    if (c === "'") {
      let v = '';
      let j = i + 1;
      for (;;) {
        if (j >= s.length) throw new FilterSyntaxError(`unterminated string at offset ${i}`);
        if (s[j] === "'") {
          if (s[j + 1] === "'") {
            v += "'";
            j += 2;
            continue;
          }
          break;
        }
        v += s[j];
        j++;
      }
      out.push({ k: 'str', v, at: i });
      i = j + 1;
      continue;
    }
    const d = DATE_RE.exec(s.slice(i));
    if (d) {
      const ms = Date.parse(d[0]);
      if (Number.isNaN(ms)) throw new FilterSyntaxError(`bad datetime at offset ${i}`);
      out.push({ k: 'date', v: ms, text: d[0], at: i });
      i += d[0].length;
      continue;
    }
    const n = /^-?\d+(?:\.\d+)?/.exec(s.slice(i));
    if (n) {
      out.push({ k: 'num', v: Number(n[0]), at: i });
      i += n[0].length;
      continue;
    }
    const w = /^[A-Za-z_][A-Za-z0-9_]*/.exec(s.slice(i));
    if (w) {
      out.push({ k: 'word', v: w[0], at: i });
      i += w[0].length;
      continue;
    }
    throw new FilterSyntaxError(`unexpected character ${JSON.stringify(c)} at offset ${i}`);
  }
  return out;
}

/** Compile a `$filter` expression into a predicate over traffic records. */
export function parseFilter(text: string): Pred {
  if (typeof text !== 'string') throw new FilterSyntaxError('$filter must be a string');
  if (text.length > MAX_FILTER)
    throw new FilterSyntaxError(`$filter longer than ${MAX_FILTER} characters`);
  const toks = tokenize(text);
  let pos = 0;
  const peek = (): Tok | undefined => toks[pos];
  const where = (t: Tok | undefined): string => (t ? `offset ${t.at}` : 'end of input');

  function clause(depth: number): Pred {
    const t = peek();
    if (!t) throw new FilterSyntaxError('expected a condition at end of input');
    if (t.k === '(') {
      if (depth >= MAX_DEPTH) throw new FilterSyntaxError('parentheses nested too deep');
      pos++;
      const inner = conj(depth + 1);
      const close = peek();
      if (close?.k !== ')') throw new FilterSyntaxError(`expected ) at ${where(close)}`);
      pos++;
      return inner;
    }
    if (t.k !== 'word') throw new FilterSyntaxError(`expected a field name at ${where(t)}`);
    const field = t.v;
    pos++;
    const o = peek();
    if (o?.k !== 'word' || !OPS.has(o.v as Op)) {
      throw new FilterSyntaxError(`expected eq, ne, gt, ge, lt or le at ${where(o)}`);
    }
    const op = o.v as Op;
    pos++;
    const v = peek();
    if (!v) throw new FilterSyntaxError('expected a value at end of input');
    pos++;
    if (STRING_FIELDS.has(field)) {
      if (v.k !== 'str')
        throw new FilterSyntaxError(`${field} needs a quoted string at ${where(v)}`);
      if (op !== 'eq' && op !== 'ne')
        throw new FilterSyntaxError(`${field} supports only eq and ne`);
      const want = v.v.toLowerCase();
      const key = field as keyof NetworkAccessTraffic;
      return op === 'eq'
        ? (r) => String(r[key] ?? '').toLowerCase() === want
        : (r) => String(r[key] ?? '').toLowerCase() !== want;
    }
    if (NUMBER_FIELDS.has(field)) {
      if (v.k !== 'num') throw new FilterSyntaxError(`${field} needs a number at ${where(v)}`);
      const key = field as 'destinationPort';
      return cmp(op, (r) => r[key], v.v);
    }
    if (DATE_FIELDS.has(field)) {
      if (v.k !== 'date') throw new FilterSyntaxError(`${field} needs a datetime at ${where(v)}`);
      return cmp(op, (r) => Date.parse(r.createdDateTime), v.v);
    }
    throw new FilterSyntaxError(
      `unknown or unsupported field ${JSON.stringify(field)} at offset ${t.at}`,
    );
  }

  function conj(depth: number): Pred {
    const parts = [clause(depth)];
    for (;;) {
      const t = peek();
      if (!t || t.k === ')') break;
      if (t.k === 'word' && t.v === 'and') {
        pos++;
        parts.push(clause(depth));
        continue;
      }
      if (t.k === 'word' && t.v === 'or')
        throw new FilterSyntaxError(`'or' is not supported (offset ${t.at})`);
      throw new FilterSyntaxError(`expected 'and' at ${where(t)}`);
    }
    return parts.length === 1 ? parts[0]! : (r) => parts.every((p) => p(r));
  }

  const p = conj(0);
  if (pos !== toks.length) throw new FilterSyntaxError(`unexpected ${where(peek())}`);
  return p;
}

function cmp(op: Op, get: (r: NetworkAccessTraffic) => number, v: number): Pred {
  switch (op) {
    case 'eq':
      return (r) => get(r) === v;
    case 'ne':
      return (r) => get(r) !== v;
    case 'gt':
      return (r) => get(r) > v;
    case 'ge':
      return (r) => get(r) >= v;
    case 'lt':
      return (r) => get(r) < v;
    case 'le':
      return (r) => get(r) <= v;
  }
}
