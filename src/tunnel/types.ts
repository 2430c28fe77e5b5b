/**
 * The contract between the client's forwarder, the tunnel and the edge. The tunnel wire
 * format (tunnel/frame.ts) is the one module client and edge share; this file is the API
 * both sides program against.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ChannelName } from '../policy/model.js';

/** Metadata carried by an OPEN frame. */
export interface OpenMeta {
  /** 'tcp' opens a byte stream; 'udp' opens a datagram flow (DGRAM frames, no flow control). */
  proto: 'tcp' | 'udp';
  /** Destination name when the client knew it (FQDN rules, SOCKS hostname, synthetic DNS). */
  host: string | null;
  /** Destination address when known (IPv4/IPv6 text). At least one of host/ip is set. */
  ip: string | null;
  port: number;
  /** Client-side flow id (shown in the client's Traffic table). */
  flowId: string;
  /** Connection id shared by the client's flow table and the edge's traffic log. */
  connectionId: string;
  channel: ChannelName;
  ruleId: string | null;
  policyId: string | null;
  /** The application's own source address and port as the client captured them. */
  srcIp: string;
  srcPort: number;
  /** Initiating process, when the capture knows it. */
  process?: string | null;
  /**
   * The opener is still looking up the initiating process: a META naming it (or null, not
   * found) follows, possibly after the stream ended; the acceptor may wait for it before
   * it logs the flow.
   */
  processPending?: boolean;
}

/** Upgrade response header naming the optional frames an edge understands. */
export const FEATURES_HEADER = 'x-gsa-tunnel-features';
/** What this version's edge names there. */
export const TUNNEL_FEATURES: readonly string[] = ['meta'];
/**
 * Upgrade response header: in how many milliseconds the edge will close this session (the
 * token it was opened with expires then; relative, so that the two clocks need not agree),
 * absent when it will not. The client replaces the session before then (TunnelClient).
 */
export const SESSION_CLOSES_HEADER = 'x-gsa-session-closes-in';

/** Metadata an opener learns after OPEN and sends in a META frame. */
export interface MetaUpdate {
  process?: string | null;
}

/** Reset codes (RST frame). Stable numbers: they are on the wire. */
export const ResetCode = {
  /** Normal abort by the application. */
  CANCEL: 0,
  /** The edge could not reach the destination (refused, unreachable, DNS failure). */
  CONNECT_FAILED: 1,
  /** Blocked by edge policy (web content filtering, private egress outside app segments). */
  BLOCKED: 2,
  /** The stream exceeded its credit window or otherwise broke protocol. */
  PROTOCOL: 3,
  /** The session is going away or died. */
  SESSION_CLOSED: 4,
  /** Timed out (connect or idle). */
  TIMEOUT: 5,
  /** Internal error. */
  INTERNAL: 6,
  /** Refused before any processing (stream limit reached, session going away): safe to retry. */
  REFUSED: 7,
} as const;
export type ResetCodeValue = (typeof ResetCode)[keyof typeof ResetCode];

/**
 * One tunneled flow. For 'tcp' it is a byte Duplex with backpressure (credit windows);
 * `end()` sends FIN (half-close). For 'udp' use sendDatagram / the 'datagram' event.
 * Events: 'reset' (code: number, reason: string) before 'close' when the stream was reset;
 * destroying the stream sends RST CANCEL.
 */
export interface TunnelStream extends Duplex {
  readonly streamId: number;
  readonly meta: OpenMeta;
  /** Bytes written to / read from the stream (payload only). */
  readonly bytesSent: number;
  readonly bytesReceived: number;
  /** Resolves when the peer accepted the stream (edge connected to the destination). */
  readonly opened: Promise<void>;
  reset(code: ResetCodeValue, reason?: string): void;
  sendDatagram(payload: Uint8Array): boolean;
  /**
   * Optional fast path in place of `stream.pipe(socket)`: incoming bytes go straight to the
   * socket's write() (see tunnel/stream.ts); the peer's FIN ends the socket.
   */
  spliceTo?(socket: Socket): void;
  /**
   * Optional: tells the acceptor what the opener learned after OPEN (META frame), e.g. the
   * initiating process; the acceptor's stream updates its `meta` and emits 'meta'.
   */
  updateMeta?(update: MetaUpdate): void;
}

/**
 * A stream as the accepting side (the edge) sees it: `accept()` sends OPEN_OK once the
 * destination is connected, which resolves the opener's `opened`; `reset(CONNECT_FAILED)`
 * refuses it. Writing to an unaccepted stream accepts it.
 */
export interface InboundTunnelStream extends TunnelStream {
  accept(): void;
  readonly accepted: boolean;
}

/**
 * The client's tunnels, one multiplexed session per channel. Implemented by
 * tunnel/client.ts; used by forward/. Opening a stream on a channel whose session is down
 * throws ChannelDownError synchronously, so the forwarder can apply hardening
 * (`clientFallbackAction`) at once.
 */
export interface ChannelTunnels {
  open(channel: ChannelName, meta: OpenMeta): TunnelStream;
  isUp(channel: ChannelName): boolean;
  /**
   * While a channel's session is being replaced after the edge ended it in the normal course
   * (token expiry, GOAWAY): resolves true once it is back, false when that takes too long.
   * null: nothing to wait for (up, or down for another reason).
   */
  whenBack?(channel: ChannelName): Promise<boolean> | null;
}
