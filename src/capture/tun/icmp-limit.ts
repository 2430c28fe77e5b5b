/**
 * The token bucket that limits the ICMP errors the TUN stack originates, after Linux's
 * (net/ipv4/icmp.c): per peer, `icmp_ratelimit` (1000 ms) of tokens per message, at most
 * XRLIM_BURST_FACTOR (6) messages' worth saved (`inet_peer_xrlim_allow`), starting full;
 * host-wide, `icmp_msgs_per_sec` (1000) in bursts of `icmp_msgs_burst` (50). Numbers only:
 * taking a token allocates nothing.
 */
export class TokenBucket {
  #tokens: number;
  #last: number;
  readonly #cost: number;
  readonly #max: number;

  /** `burst` messages at once, then one per `intervalMs` (0: no limit). */
  constructor(intervalMs: number, burst: number, now: number) {
    this.#cost = Math.max(0, intervalMs);
    this.#max = this.#cost * Math.max(1, burst);
    this.#tokens = this.#max;
    this.#last = now;
  }

  /** May one more message go at `now` (ms, monotonic)? Takes its token when it may. */
  take(now: number): boolean {
    let t = this.#tokens + Math.max(0, now - this.#last);
    this.#last = now;
    if (t > this.#max) t = this.#max;
    if (t >= this.#cost) {
      this.#tokens = t - this.#cost;
      return true;
    }
    this.#tokens = t;
    return false;
  }
}

/** Linux's defaults: per destination 1 message/s in bursts of 6; per host 1000/s, bursts of 50. */
export const ICMP_RATE_MS = 1000;
export const ICMP_BURST = 6;
export const ICMP_GLOBAL_PER_SEC = 1000;
export const ICMP_GLOBAL_BURST = 50;
