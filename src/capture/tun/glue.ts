/**
 * Minimal consumers for the stack's hooks, for tests, benchmarks and the harness until
 * the forwarding layer (src/forward/) plugs in its own. Destinations are always mapped
 * explicitly by the caller (`target`), so nothing here ever dials an address it was not
 * told to: tests map public-looking destinations to loopback servers.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { unreachableOfError } from '../../forward/refusal.js';
import type { TcpFlowInfo, UdpFlow } from './stack.js';

export interface Target {
  host: string;
  port: number;
  /**
   * Source address to bind (host mode: the address policy routing keeps off the TUN,
   * see host-routing.ts). Default: none.
   */
  localAddress?: string;
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
  const up = net.connect({
    host: t.host,
    port: t.port,
    allowHalfOpen: true,
    ...(t.localAddress ? { localAddress: t.localAddress } : {}),
  });
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
 * back with `flow.reply`, a refusal (ECONNREFUSED: the target's port unreachable) as ICMP
 * port unreachable, no route (ENETUNREACH, EHOSTUNREACH: from connect() or an ICMP error) as
 * net / host unreachable (`flow.unreachable`). The socket closes with the flow.
 */
export function relayUdp(
  target: (flow: UdpFlow) => Target | null,
): (flow: UdpFlow, payload: Buffer) => void {
  interface Relay {
    sock: dgram.Socket;
    /** Datagrams that arrived before connect() finished (bounded). */
    pending: Buffer[] | null;
    /** connect() failed: each datagram is answered as its error was. */
    dead?: NodeJS.ErrnoException;
  }
  const relays = new WeakMap<UdpFlow, Relay | null>();
  return (flow, payload) => {
    let r = relays.get(flow);
    if (r === undefined) {
      const t = target(flow);
      if (!t) {
        relays.set(flow, null);
        return;
      }
      const sock = dgram.createSocket('udp4');
      const relay: Relay = { sock, pending: [] };
      const failed = (err: NodeJS.ErrnoException): void => {
        const kind = unreachableOfError(err);
        if (kind !== null) flow.unreachable(kind);
      };
      sock.on('error', failed);
      sock.on('message', (m) => flow.reply(m));
      if (t.localAddress) sock.bind({ address: t.localAddress, port: 0 });
      sock.connect(t.port, t.host, (err?: Error) => {
        if (err) {
          // No route: this flow's datagrams are not sent (below), each answered instead.
          relay.dead = err as NodeJS.ErrnoException;
          relay.pending = null;
          failed(relay.dead);
          return;
        }
        const q = relay.pending ?? [];
        relay.pending = null;
        for (const p of q) sock.send(p);
      });
      relays.set(flow, relay);
      flow.onClose = () => sock.close();
      r = relay;
    }
    if (!r) return;
    if (r.dead) {
      // Not sent (not connected): answered as connect() was, as a router answers each.
      const kind = unreachableOfError(r.dead);
      if (kind !== null) flow.unreachable(kind);
      return;
    }
    if (r.pending) {
      if (r.pending.length < 64) r.pending.push(payload);
      return;
    }
    r.sock.send(payload);
  };
}
