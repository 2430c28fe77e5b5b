/**
 * Host-name patterns (the edge's web filtering lists, category map and Private Access FQDN
 * segments; the hosts maps of the edge, the connector and the client's dial map), with
 * GSA's wildcard meaning: `*` stands for one or more whole
 * labels anywhere in the name (`*.contoso.test`, `autodiscover.*.onmicrosoft.com`); a leading
 * `*.` does not match the bare parent. Exact names live in a hash, leading wildcards are
 * probed at each label boundary, other wildcard patterns are matched label by label
 * (`matchLabelGlob`: at most labels x pattern labels steps, however many `*`; rare, per flow).
 *
 * Contract: `normalizeName` lowercases and strips one trailing dot; `match()` returns the
 * value of the most specific pattern (exact, then longest suffix, then first mid-name
 * pattern in insertion order) or undefined. Never throws on any input.
 */

export function normalizeName(name: string): string {
  const n = name.trim().toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/** One DNS label: 1-63 letters, digits, `-` or `_`, not starting or ending with `-`. */
const LABEL = '[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?';
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

/** A pattern token that matches any one label (the first label of a `*`). */
const ANY = '?';
/** A pattern token that matches zero or more labels (the rest of a `*`). */
const STAR = '*';

/**
 * The tokens of a wildcard pattern (normalized, valid): each literal label as is, each `*`
 * as ANY then STAR ("one or more labels"). Neither token can be a literal label.
 */
function globTokens(pattern: string): string[] {
  const out: string[] = [];
  for (const l of pattern.split('.')) {
    if (l === '*') out.push(ANY, STAR);
    else out.push(l);
  }
  return out;
}

/**
 * Do the `labels` of a name (none empty) match the pattern `tokens` (globTokens)? ANY takes
 * one label, STAR any run of labels, a literal one equal label. Greedy with one
 * backtrack point (the last STAR): no recursion, no allocation, at most
 * `labels.length * tokens.length` steps however many `*` the pattern has.
 */
function matchLabelGlob(tokens: readonly string[], labels: readonly string[]): boolean {
  const m = tokens.length;
  const n = labels.length;
  let p = 0;
  let s = 0;
  let starP = -1;
  let starS = 0;
  while (s < n) {
    if (p < m) {
      const t = tokens[p]!;
      if (t === STAR) {
        starP = p++;
        starS = s;
        continue;
      }
      if (t === ANY || t === labels[s]) {
        p++;
        s++;
        continue;
      }
    }
    if (starP < 0) return false;
    // Let the last STAR take one more label, and retry the tokens after it from there.
    p = starP + 1;
    s = ++starS;
  }
  while (p < m && tokens[p] === STAR) p++;
  return p === m;
}

export class NamePatterns<V> {
  private readonly exact = new Map<string, V>();
  /** `*.suffix` -> value, keyed by `suffix`. */
  private readonly suffix = new Map<string, V>();
  /** Same, but also matching the bare suffix (category maps: `casino.test` covers its subdomains). */
  private readonly tree = new Map<string, V>();
  /** Other wildcard patterns (`a.*.b`, `*.a.*.b`, `a.*`), as globTokens, in insertion order. */
  private readonly mid: Array<{ tokens: string[]; value: V }> = [];

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
    this.mid.push({ tokens: globTokens(p), value });
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
    if (this.mid.length > 0) {
      const labels = n.split('.');
      // An empty label ("a..b") is in no wildcard's labels, and is no literal label.
      if (labels.includes('')) return undefined;
      for (const m of this.mid) if (matchLabelGlob(m.tokens, labels)) return m.value;
    }
    return undefined;
  }
}
