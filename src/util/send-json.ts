/** JSON answers of the edge's HTTP APIs (the control API, the token endpoint). */
import type { ServerResponse } from 'node:http';

/** Answers a request with a JSON body, then `headers` (which may override the defaults). */
export type SendJson = (
  res: ServerResponse,
  status: number,
  body: unknown,
  headers?: Record<string, string>,
) => void;

/**
 * A SendJson whose answers have this content-type, their content-length, then `defaults`
 * (in this order on the wire).
 */
export function jsonSender(contentType: string, defaults: Record<string, string>): SendJson {
  return (res, status, body, headers = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': contentType,
      'content-length': Buffer.byteLength(text),
      ...defaults,
      ...headers,
    });
    res.end(text);
  };
}
