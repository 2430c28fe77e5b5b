/**
 * The parts of an HTTP/1.x request target in absolute form (RFC 9112 3.2.2,
 * `http://user@host:port/path`), shared by the HTTP proxy and the edge's Host sniffing.
 *
 * Contract: never throws; `absoluteForm(target)` is null for any other form.
 */

/** `scheme://authority`, the authority captured. */
const ABSOLUTE_FORM = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)/;

/** The `scheme://authority` prefix of an absolute-form target and its authority, or null. */
export function absoluteForm(target: string): { prefix: string; authority: string } | null {
  const m = ABSOLUTE_FORM.exec(target);
  return m ? { prefix: m[0], authority: m[1]! } : null;
}
