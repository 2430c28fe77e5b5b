/**
 * Minimal consumers for the stack's hooks, for tests, benchmarks and the harness until
 * the forwarding layer (src/forward/) plugs in its own. Destinations are always mapped
 * explicitly by the caller (`target`), so nothing here ever dials an address it was not
 * told to: tests map public-looking destinations to loopback servers.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { TcpFlowInfo, UdpFlow } from './stack.js';

export interface Target {
  host: string;
  port: number;
}

/**
 * Bypass a TCP flow: connect from the host namespace to `target(info)` and pipe both
 * ways (half-close kept); a null target or a failed connect resets the application's
 * connection.
 */
export function pipeTcp(
  socket: net.Socket,
  info: TcpFlowInfo,
  target: (info: TcpFlowInfo) => Target | null,
): void {
  const t = target(info);
  if (!t) {
    info.reject('no target');
    return;
  }
  const up = net.connect({ host: t.host, port: t.port, allowHalfOpen: true });
  socket.setNoDelay(true);
  up.setNoDelay(true);
  socket.pipe(up);
  up.pipe(socket);
  up.once('error', () => {
    if (!socket.destroyed) info.reject('connect failed');
  });
  socket.once('error', () => up.destroy());
  socket.once('close', () => up.destroy());
  up.once('close', () => {
    if (!socket.destroyed && !socket.writableEnded) socket.end();
  });
}

/**
 * Relay a UDP flow through one host-side socket per flow to `target(flow)`; answers go
 * back with `flow.reply`. The socket closes with the flow.
 */
export function relayUdp(
  target: (flow: UdpFlow) => Target | null,
): (flow: UdpFlow, payload: Buffer) => void {
  const socks = new WeakMap<UdpFlow, dgram.Socket | null>();
  return (flow, payload) => {
    let s = socks.get(flow);
    if (s === undefined) {
      const t = target(flow);
      if (!t) {
        socks.set(flow, null);
        return;
      }
      const sock = dgram.createSocket('udp4');
      sock.on('error', () => {});
      sock.on('message', (m) => flow.reply(m));
      sock.connect(t.port, t.host);
      socks.set(flow, sock);
      flow.onClose = () => sock.close();
      s = sock;
      sock.once('connect', () => sock.send(payload));
      return;
    }
    if (s) {
      try {
        s.send(payload);
      } catch {
        // not connected yet: the datagram is lost, as UDP may be
      }
    }
  };
}
