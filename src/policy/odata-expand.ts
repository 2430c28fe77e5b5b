/**
 * The OData `$expand` subset the control API understands, checked against an entity model:
 *
 *   expand  := item ( ',' item )*
 *   item    := '*' | name [ '(' option ( ';' option )* ')' ]
 *   option  := '$expand' '=' expand
 *
 * Blanks between tokens are ignored. `*` expands every navigation property of its entity
 * one level (OData 4.0 part 2, 5.1.2), as Graph does; nested levels need nested `$expand`,
 * e.g. `policies($expand=policy($expand=policyRules))`. Other options (`$select`,
 * `$levels`, ...) are refused.
 *
 * Contract: `parseExpand()` returns an ExpandTree or throws a ConfigError with one issue at
 * path `$expand` naming the offset or the property; never anything else, for any input.
 */
import { ConfigError } from '../errors.js';

/** The navigation properties asked for, each with what is expanded beneath it. */
export interface ExpandTree {
  [navigationProperty: string]: ExpandTree;
}

/** Entity type name -> its navigation properties -> the entity type each leads to. */
export type NavigationModel = Readonly<Record<string, Readonly<Record<string, string>>>>;

const MAX_EXPAND = 1024;
const MAX_DEPTH = 8;

function bad(message: string): ConfigError {
  return new ConfigError([{ path: '$expand', message }]);
}

type Tok = { k: 'name' | '*' | '(' | ')' | ',' | ';' | '=' | 'opt'; v: string; at: number };

function tokenize(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    if (c === '*' || c === '(' || c === ')' || c === ',' || c === ';' || c === '=') {
      out.push({ k: c, v: c, at: i });
      i++;
      continue;
    }
    const w = /^\$?[A-Za-z0-9_.]+/.exec(s.slice(i));
    if (w) {
      out.push({ k: w[0].startsWith('$') ? 'opt' : 'name', v: w[0], at: i });
      i += w[0].length;
      continue;
    }
    throw bad(`unexpected character ${JSON.stringify(c)} at offset ${i}`);
  }
  return out;
}

/**
 * Parses `text` (the `$expand` query option; empty or undefined = nothing expanded) for an
 * entity of type `entity` of `model`.
 */
export function parseExpand(
  text: string | undefined,
  model: NavigationModel,
  entity: string,
): ExpandTree {
  if (text === undefined) return {};
  if (typeof text !== 'string') throw bad('$expand must be a string');
  if (text.length > MAX_EXPAND) throw bad(`longer than ${MAX_EXPAND} characters`);
  const toks = tokenize(text);
  if (toks.length === 0) return {};
  let pos = 0;
  const peek = (): Tok | undefined => toks[pos];
  const where = (t: Tok | undefined): string => (t ? `offset ${t.at}` : 'end of input');

  function list(type: string, depth: number): ExpandTree {
    if (depth > MAX_DEPTH) throw bad(`nested deeper than ${MAX_DEPTH} levels`);
    const navs = model[type] ?? {};
    const names = Object.keys(navs);
    const tree: ExpandTree = {};
    for (;;) {
      const t = peek();
      if (t?.k === '*') {
        pos++;
        for (const n of names) tree[n] ??= {};
      } else if (t?.k === 'name') {
        pos++;
        const target = Object.hasOwn(navs, t.v) ? navs[t.v] : undefined;
        if (target === undefined) {
          throw bad(
            `${JSON.stringify(t.v)} (offset ${t.at}) is not a navigation property of ${type}` +
              (names.length ? ` (it has ${names.join(', ')})` : ' (it has none)'),
          );
        }
        if (Object.hasOwn(tree, t.v)) throw bad(`${t.v} expanded twice (offset ${t.at})`);
        tree[t.v] = peek()?.k === '(' ? options(target, depth) : {};
      } else {
        throw bad(`expected a navigation property or * at ${where(t)}`);
      }
      if (peek()?.k !== ',') return tree;
      pos++;
    }
  }

  /** `( option ; ... )` after a navigation property leading to `type`. */
  function options(type: string, depth: number): ExpandTree {
    pos++; // (
    let sub: ExpandTree | null = null;
    for (;;) {
      const o = peek();
      if (o?.k !== 'opt') throw bad(`expected a query option such as $expand at ${where(o)}`);
      if (o.v !== '$expand') throw bad(`${o.v} (offset ${o.at}) is not supported in $expand`);
      if (sub !== null) throw bad(`$expand given twice (offset ${o.at})`);
      pos++;
      const eq = peek();
      if (eq?.k !== '=') throw bad(`expected = at ${where(eq)}`);
      pos++;
      sub = list(type, depth + 1);
      const t = peek();
      if (t?.k === ';') {
        pos++;
        continue;
      }
      if (t?.k === ')') {
        pos++;
        return sub;
      }
      throw bad(`expected ; or ) at ${where(t)}`);
    }
  }

  const tree = list(entity, 1);
  if (pos !== toks.length) throw bad(`unexpected ${where(peek())}`);
  return tree;
}

/**
 * The select-list part of an OData context URL for `tree`: '' for nothing expanded, else
 * `(policies(policy()))`-style (OData 4.0 part 1, 10.9).
 */
export function expandContext(tree: ExpandTree): string {
  const inner = (t: ExpandTree): string =>
    Object.entries(t)
      .map(([k, v]) => `${k}(${inner(v)})`)
      .join(',');
  const s = inner(tree);
  return s === '' ? '' : `(${s})`;
}
