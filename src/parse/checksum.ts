/**
 * Internet checksum (RFC 1071) and its incremental update (RFC 1624).
 *
 * Sums are kept unfolded (plain numbers < 2^53) and folded once at the end; all readers
 * take `(buf, off, len)` so they work on views of a batch buffer without copies.
 */

/** One's-complement sum of `len` bytes at `off` added to `acc` (unfolded). Odd tail padded. */
export function sum16(buf: Uint8Array, off: number, len: number, acc = 0): number {
  const end = off + (len & ~1);
  let i = off;
  // Unrolled by 8 bytes: the sum stays far below 2^53 for any IP packet.
  for (; i + 8 <= end; i += 8) {
    acc +=
      ((buf[i]! << 8) | buf[i + 1]!) +
      ((buf[i + 2]! << 8) | buf[i + 3]!) +
      ((buf[i + 4]! << 8) | buf[i + 5]!) +
      ((buf[i + 6]! << 8) | buf[i + 7]!);
  }
  for (; i < end; i += 2) acc += (buf[i]! << 8) | buf[i + 1]!;
  if (len & 1) acc += buf[off + len - 1]! << 8;
  return acc;
}

/** Fold an unfolded sum to 16 bits (no complement). */
export function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 65536);
  return acc;
}

/** The checksum field value for the bytes: ~fold(sum). */
export function checksum(buf: Uint8Array, off: number, len: number, acc = 0): number {
  return ~fold(sum16(buf, off, len, acc)) & 0xffff;
}

/** Unfolded sum of the IPv4 pseudo-header (RFC 793 / 768). */
export function pseudo4(src: number, dst: number, proto: number, l4len: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + l4len;
}

/** Unfolded sum of the IPv6 pseudo-header (RFC 8200 8.1); addresses as four uint32 words. */
export function pseudo6(
  src: ArrayLike<number>,
  dst: ArrayLike<number>,
  proto: number,
  l4len: number,
): number {
  let acc = proto + (l4len >>> 16) + (l4len & 0xffff);
  for (let i = 0; i < 4; i++) {
    acc += (src[i]! >>> 16) + (src[i]! & 0xffff) + (dst[i]! >>> 16) + (dst[i]! & 0xffff);
  }
  return acc;
}

/**
 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for a 16-bit field changing from `oldv` to
 * `newv`. Returns the new checksum field value.
 */
export function update16(csum: number, oldv: number, newv: number): number {
  return ~fold((~csum & 0xffff) + (~oldv & 0xffff) + (newv & 0xffff)) & 0xffff;
}

/** RFC 1624 for a 32-bit field (an IPv4 address) changing from `oldv` to `newv`. */
export function update32(csum: number, oldv: number, newv: number): number {
  return (
    ~fold(
      (~csum & 0xffff) +
        (~(oldv >>> 16) & 0xffff) +
        (~oldv & 0xffff) +
        (newv >>> 16) +
        (newv & 0xffff),
    ) & 0xffff
  );
}

/**
 * The combined delta of several field changes, to apply with `applyDelta`: add
 * `~old` and `new` 16-bit words of every changed field (use `deltaWord`/`deltaWord32`).
 */
export function deltaWord(acc: number, oldv: number, newv: number): number {
  return acc + (~oldv & 0xffff) + (newv & 0xffff);
}
export function deltaWord32(acc: number, oldv: number, newv: number): number {
  return acc + (~(oldv >>> 16) & 0xffff) + (~oldv & 0xffff) + (newv >>> 16) + (newv & 0xffff);
}
/** Apply an accumulated delta to a checksum field value (RFC 1624 eqn. 3). */
export function applyDelta(csum: number, delta: number): number {
  return ~fold((~csum & 0xffff) + delta) & 0xffff;
}

/** Read / write a big-endian 16-bit field. */
export function rd16(buf: Uint8Array, off: number): number {
  return (buf[off]! << 8) | buf[off + 1]!;
}
export function wr16(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 8) & 0xff;
  buf[off + 1] = v & 0xff;
}
/** Read / write a big-endian 32-bit field as an unsigned number. */
export function rd32(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
}
export function wr32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 24) & 0xff;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}
