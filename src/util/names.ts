/**
 * Host-name patterns (the edge's web filtering lists, category map and Private Access FQDN
 * segments; the hosts maps of the edge, the connector and the client's dial map), with
 * GSA's wildcard meaning: `*` stands for one or more whole
 * labels anywhere in the name (`*.contoso.test`, `autodiscover.*.onmicrosoft.com`); a leading
 * `*.` does not match the bare parent. Exact names live in a hash, leading wildcards are
 * probed at each label boundary, other wildcard patterns are globbed (util/glob-fold.ts, as
 * the classifier's FQDN table does: one backtrack point, however many `*`; rare, per flow).
 *
 * Contract: `normalizeName` lowercases and strips one trailing dot; `match()` returns the
 * value of the most specific pattern (exact, then longest suffix, then first mid-name
 * pattern in insertion order) or undefined. Never throws on any input.
 */
import { globFold } from './glob-fold.js';

export function normalizeName(name: string): string {
  const n = name.trim().toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/** One DNS label: 1-63 letters, digits, `-` or `_`, not starting or ending with `-`. */
const LABEL = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?';
/** One label of a normalized name (lowercase). */
const LABEL_ONLY_RE = new RegExp(`^${LABEL}$`);
export function isLabel(label: string): boolean {
  return LABEL_ONLY_RE.test(label);
}
/** A label of a name pattern: a label or `*`. */
const LABEL_RE = new RegExp(`^(?:\\*|${LABEL})$`);
const NAME_RE = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*$`);

/**
 * True for a host name (normalized: lowercase, no trailing dot), no wildcards. A name's
 * last label is never all digits (RFC 3696 2), so "999.1.1.1" is a bad address, not a name.
 */
export function isHostName(name: string): boolean {
  return NAME_RE.test(name) && !/(^|\.)\d+$/.test(name);
}

/** Why `pattern` is not a valid name pattern, or null. */
export function checkNamePattern(pattern: string): string | null {
  const p = normalizeName(pattern);
  if (p === '' || p.length > 253) return `"${pattern}" is not a host name`;
  const labels = p.split('.');
  for (const l of labels) if (!LABEL_RE.test(l)) return `"${pattern}" is not a host name pattern`;
  if (labels.every((l) => l === '*')) return `"${pattern}" matches every name`;
  return null;
}

export class NamePatterns<V> {
  private readonly exact = new Map<string, V>();
  /** `*.suffix` -> value, keyed by `suffix`. */
  private readonly suffix = new Map<string, V>();
  /** Same, but also matching the bare suffix (category maps: `casino.test` covers its subdomains). */
  private readonly tree = new Map<string, V>();
  /** Other wildcard patterns (`a.*.b`, `*.a.*.b`, `a.*`), normalized, in insertion order. */
  private readonly mid: Array<{ pattern: string; value: V }> = [];

  /** Adds a pattern; throws Error with a reason when it is invalid (callers wrap it). */
  add(pattern: string, value: V, opts: { subdomains?: boolean } = {}): void {
    const bad = checkNamePattern(pattern);
    if (bad) throw new Error(bad);
    const p = normalizeName(pattern);
    if (!p.includes('*')) {
      if (opts.subdomains) this.tree.set(p, value);
      else this.exact.set(p, value);
      return;
    }
    if (p.startsWith('*.') && !p.slice(2).includes('*')) {
      this.suffix.set(p.slice(2), value);
      return;
    }
    this.mid.push({ pattern: p, value });
  }

  get size(): number {
    return this.exact.size + this.suffix.size + this.tree.size + this.mid.length;
  }

  match(name: string): V | undefined {
    const n = normalizeName(name);
    if (n === '') return undefined;
    const e = this.exact.get(n);
    if (e !== undefined) return e;
    if (this.tree.size > 0) {
      const t = this.tree.get(n);
      if (t !== undefined) return t;
    }
    if (this.suffix.size > 0 || this.tree.size > 0) {
      let i = n.indexOf('.');
      while (i !== -1) {
        const rest = n.slice(i + 1);
        const s = this.suffix.get(rest) ?? this.tree.get(rest);
        if (s !== undefined) return s;
        i = n.indexOf('.', i + 1);
      }
    }
    // globFold's `*` is any run of characters; with `*` only as whole labels (checked) and
    // no empty label in the name ("a..b"), that is "one or more labels".
    if (this.mid.length > 0 && !n.startsWith('.') && !n.endsWith('.') && !n.includes('..')) {
      for (const m of this.mid) {
        if (globFold(m.pattern, m.pattern.length, n, n.length)) return m.value;
      }
    }
    return undefined;
  }
}
