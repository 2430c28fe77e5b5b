/**
 * Clients, origins' listener and the proxy for the early-response tests (an upstream answering while the body is still
 * being sent, RFC 9112 9.6): node:http and curl POSTs of a large body through the HTTP
 * proxy on 127.0.0.1.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { request as httpRequest, type Server } from 'node:http';
import type { Test } from 'tap';
import { HttpProxy } from '../../src/capture/http-proxy.js';
import { decision, FakeTunnels, fakeForwarder } from '../forward/fixtures/fakes.js';

/**
 * A node:http client through the proxy that sends its whole body whatever the answer (as
 * node's client does): `status body`, then any error it met, the write of the rest of its
 * body included (a reset by the proxy); settles once the request closed.
 */
export function nodePost(pport: number, target: string, size: number): Promise<string> {
  return new Promise((resolve) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port: pport,
      method: 'POST',
      path: target,
      headers: { 'content-length': String(size) },
      agent: false,
    });
    let out = '';
    const timer = setTimeout(() => {
      req.destroy();
      resolve(`${out}timeout`);
    }, 10_000);
    let answered = false;
    let closed = false;
    const settle = (): void => {
      if (!answered || !closed) return;
      clearTimeout(timer);
      resolve(out);
    };
    req.on('error', (e) => {
      out += `error ${e.message}`;
      answered = true;
    });
    req.on('close', () => {
      closed = true;
      settle();
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => {
        out = `${res.statusCode} ${body}${out}`;
        answered = true;
        settle();
      });
      res.on('error', (e) => {
        out += `response error ${e.message}`;
        answered = true;
        settle();
      });
    });
    const chunk = Buffer.alloc(256 * 1024, 2);
    let left = size / chunk.length;
    const pump = (): void => {
      while (left > 0 && !req.destroyed) {
        left--;
        if (left === 0) req.end(chunk);
        else if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

/**
 * curl's POST of `file` through the HTTP proxy at `proxy` (host:port), without `Expect`:
 * the status code it got (or its error text); 10 s at most.
 */
export function curlPost(proxy: string, url: string, file: string): Promise<string> {
  const args = ['-sS', '--max-time', '10', '-x', `http://${proxy}`, '-H', 'Expect:'];
  args.push('-o', '/dev/null', '-w', '%{http_code}', '--data-binary', `@${file}`, url);
  return new Promise((resolve) => {
    execFile('curl', args, { timeout: 15_000, encoding: 'latin1' }, (_err, out, err) => {
      resolve(`${out}${err}`.trim());
    });
  });
}

export const TUNNEL = decision({ action: 'tunnel', channel: 'internet', ruleId: 'ia' });
export const BYPASS = decision({ action: 'bypass', channel: 'internet', ruleId: 'bp' });

/** `server` listening on 127.0.0.1 (any port), closed at the test's end; its port. */
export async function listen(t: Test, server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

/**
 * The proxy over a forwarder: tunnel.test goes through the (fake) tunnel to `port`,
 * direct.test directly to 127.0.0.1; closed at the test's end.
 */
export async function proxyTo(t: Test, port: number): Promise<{ pport: number; proxy: HttpProxy }> {
  const tunnels = new FakeTunnels();
  tunnels.behaviour = { kind: 'connect', to: { 'tunnel.test': port } };
  const { fwd } = fakeForwarder(
    [{ host: 'tunnel.test', decision: TUNNEL }, { decision: BYPASS }],
    { 'direct.test': '127.0.0.1' },
    { tunnels, openTimeoutMs: 1000 },
  );
  const proxy = new HttpProxy({ forwarder: fwd, port: 0, responseTimeoutMs: 5000 });
  const { port: pport } = await proxy.listen();
  t.teardown(async () => {
    await proxy.close();
    fwd.close();
  });
  return { pport, proxy };
}
