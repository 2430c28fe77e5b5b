/**
 * Glob `pat[0..plen)` (`*` = any run of characters, dots included) against `host[0..hlen)`,
 * ASCII-case-insensitively. With `*` only as whole labels, this is exactly "each `*` is one
 * or more labels". Iterative with one backtrack point: no recursion, no allocation.
 */
export function globFold(pat: string, plen: number, host: string, hlen: number): boolean {
  let p = 0;
  let s = 0;
  let starP = -1;
  let starS = 0;
  while (s < hlen) {
    if (p < plen) {
      const pc = pat.charCodeAt(p);
      if (pc === 42) {
        starP = p++;
        starS = s;
        continue;
      }
      let c = host.charCodeAt(s);
      if (c >= 65 && c <= 90) c |= 32;
      if (pc === c) {
        p++;
        s++;
        continue;
      }
    }
    if (starP < 0) return false;
    p = starP + 1;
    s = ++starS;
  }
  while (p < plen && pat.charCodeAt(p) === 42) p++;
  return p === plen;
}
