/**
 * Base64 for meta-protocol binary keys (the `b` flag), on bytes only: no strings are built.
 *
 * Decoding follows memcached's `base64_decode` (base64.c) exactly, because what it accepts is
 * visible to clients: bytes outside the alphabet are skipped, the alphabet characters
 * (`=` included) must number a non-zero multiple of four, and decoding stops after the first
 * 4-character block holding `=` (one `=` drops one byte, two drop two, more is an error).
 * Encoding is the standard alphabet with `=` padding, as memcached's `base64_encode`.
 *
 * @module
 */

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const INVALID = 0x80;
const PAD = 61; // '='

const ENCODE = new Uint8Array(64);
const DECODE = new Uint8Array(256).fill(INVALID);
for (let i = 0; i < 64; i++) {
  ENCODE[i] = ALPHABET.charCodeAt(i);
  DECODE[ALPHABET.charCodeAt(i)] = i;
}
DECODE[PAD] = 0;

/** The encoded length of `n` bytes (padded to a multiple of four). */
export function encodedLength(n: number): number {
  return Math.ceil(n / 3) * 4;
}

/**
 * Encodes `src[off, off + len)` into `dst` at `dstOff`; returns the bytes written
 * (`encodedLength(len)`). `dst` must have room.
 */
export function encodeBase64(
  src: Uint8Array,
  off: number,
  len: number,
  dst: Uint8Array,
  dstOff: number,
): number {
  let o = dstOff;
  let i = off;
  const end = off + len;
  for (; end - i >= 3; i += 3) {
    const a = src[i], b = src[i + 1], c = src[i + 2];
    dst[o++] = ENCODE[a >> 2];
    dst[o++] = ENCODE[((a & 0x03) << 4) | (b >> 4)];
    dst[o++] = ENCODE[((b & 0x0f) << 2) | (c >> 6)];
    dst[o++] = ENCODE[c & 0x3f];
  }
  if (i < end) {
    const a = src[i];
    dst[o++] = ENCODE[a >> 2];
    if (end - i === 1) {
      dst[o++] = ENCODE[(a & 0x03) << 4];
      dst[o++] = PAD;
    } else {
      const b = src[i + 1];
      dst[o++] = ENCODE[((a & 0x03) << 4) | (b >> 4)];
      dst[o++] = ENCODE[(b & 0x0f) << 2];
    }
    dst[o++] = PAD;
  }
  return o - dstOff;
}

/**
 * Decodes `src[off, off + len)` into `dst` at `dstOff` with memcached's rules; returns the
 * number of bytes written, or 0 when memcached would refuse the input. `dst` needs room for
 * `len * 3 / 4` bytes; it may be `src` itself at `dstOff <= off` (decoding never overtakes).
 */
export function decodeBase64(
  src: Uint8Array,
  off: number,
  len: number,
  dst: Uint8Array,
  dstOff: number,
): number {
  const end = off + len;
  let count = 0;
  for (let i = off; i < end; i++) if (DECODE[src[i]] !== INVALID) count++;
  if (count === 0 || count % 4 !== 0) return 0;
  let o = dstOff;
  let block = 0;
  let filled = 0;
  let pad = 0;
  for (let i = off; i < end; i++) {
    const v = DECODE[src[i]];
    if (v === INVALID) continue;
    if (src[i] === PAD) pad++;
    block = (block << 6) | v;
    if (++filled < 4) continue;
    dst[o++] = block >> 16;
    dst[o++] = (block >> 8) & 0xff;
    dst[o++] = block & 0xff;
    filled = 0;
    block = 0;
    if (pad > 0) {
      if (pad > 2) return 0;
      o -= pad;
      break;
    }
  }
  return o - dstOff;
}
