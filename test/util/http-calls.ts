/**
 * HTTP helpers for the API tests (admin API, edge control API): one request with its JSON
 * parsed when it is JSON, and a raw HEAD that shows any bytes a server wrongly sends after
 * a HEAD's head.
 */
import { connect } from 'node:net';
import { type Dispatcher, request } from 'undici';

// biome-ignore lint/suspicious/noExplicitAny: response JSON of many shapes
export type Json = any;

export interface Reply {
  status: number;
  headers: Record<string, unknown>;
  json: Json;
  text: string;
}

/** One request to `url`; `json` is null unless the body is JSON. */
export async function httpCall(
  url: string,
  method: string,
  o: { headers?: Record<string, string>; body?: string; dispatcher?: Dispatcher } = {},
): Promise<Reply> {
  const r = await request(url, {
    method: method as 'GET',
    headers: o.headers ?? {},
    ...(o.dispatcher ? { dispatcher: o.dispatcher } : {}),
    ...(o.body !== undefined ? { body: o.body } : {}),
  });
  const text = await r.body.text();
  let json: Json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: r.statusCode, headers: r.headers, json, text };
}

/**
 * HEAD `path` of the server at `base` over a raw socket (`Connection: close`): the head,
 * and whatever came after it (a body sent after a HEAD's head would show there). `host`:
 * the Host header, when it is not `base`'s.
 */
export async function rawHead(
  base: string,
  path: string,
  extraHeaders = '',
  host?: string,
): Promise<{ status: number; head: string; after: string }> {
  const u = new URL(base);
  const sock = connect(Number(u.port), u.hostname);
  const chunks: Buffer[] = [];
  sock.on('data', (d: Buffer) => chunks.push(d));
  const done = new Promise<void>((resolve, reject) => {
    sock.on('end', () => resolve());
    sock.on('error', reject);
  });
  sock.write(
    `HEAD ${path} HTTP/1.1\r\nhost: ${host ?? u.host}\r\n${extraHeaders}connection: close\r\n\r\n`,
  );
  const timer = setTimeout(() => sock.destroy(new Error('raw HEAD timed out')), 5000);
  try {
    await done;
  } finally {
    clearTimeout(timer);
    sock.destroy();
  }
  const all = Buffer.concat(chunks).toString('latin1');
  const end = all.indexOf('\r\n\r\n');
  const head = end === -1 ? all : all.slice(0, end);
  return {
    status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0),
    head,
    after: end === -1 ? '' : all.slice(end + 4),
  };
}
