/** The query checks of the local HTTP APIs (the edge's control API, the client's admin API). */

/**
 * What is wrong with a query beyond its values, or null: a parameter none of `allowed`
 * (first, over all of them), else one given more than once (all but one value would be
 * ignored). Each API words the message its own way.
 */
export function queryFault(
  q: URLSearchParams,
  allowed: readonly string[],
): { key: string; repeated: boolean } | null {
  for (const key of q.keys()) {
    if (!allowed.includes(key)) return { key, repeated: false };
  }
  for (const key of allowed) {
    if (q.getAll(key).length > 1) return { key, repeated: true };
  }
  return null;
}
