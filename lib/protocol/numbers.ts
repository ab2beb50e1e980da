/**
 * Decimal numbers read straight from request bytes, with the exact acceptance rules of
 * memcached's `safe_strtoul`, `safe_strtol` and `safe_strtoull` (util.c): leading white space
 * and a sign are allowed as by strtol(3); the digits must end the token or be followed by a
 * white-space or NUL byte (memcached checks only the byte at `endptr`, so `1\tx` reads as 1);
 * values beyond the C type's range are refused, and `safe_strtol` truncates a `long` to 32 bits
 * as memcached's implicit conversion does. No string is built.
 *
 * @module
 */

/** Returned by the parsers when the token is not an acceptable number. */
export const BAD = -1;

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/**
 * Parsed sign and digit span of a strtol-style number, or null when there are no digits or the
 * byte after them is neither the end, white space nor NUL (memcached's `endptr` test).
 */
function scan(buf: Uint8Array, start: number, end: number): [boolean, number, number] | null {
  let i = start;
  while (i < end && isSpace(buf[i])) i++;
  let negative = false;
  if (i < end && (buf[i] === 43 || buf[i] === 45)) negative = buf[i++] === 45;
  const digits = i;
  while (i < end && buf[i] >= 48 && buf[i] <= 57) i++;
  if (i === digits || (i !== end && !isSpace(buf[i]) && buf[i] !== 0)) return null;
  return [negative, digits, i];
}

const U64_MAX = (1n << 64n) - 1n;

/**
 * memcached's `safe_strtoull`: an unsigned 64-bit number, or null. A leading `-` is accepted
 * only where strtoull's wrapped result still reads as a non-negative signed number.
 */
export function parseU64(buf: Uint8Array, start: number, end: number): bigint | null {
  const s = scan(buf, start, end);
  if (s === null) return null;
  const [negative, from, to] = s;
  let v = 0n;
  if (to - from < 16) {
    let n = 0;
    for (let i = from; i < to; i++) n = n * 10 + buf[i] - 48;
    v = BigInt(n);
  } else {
    for (let i = from; i < to; i++) {
      v = v * 10n + BigInt(buf[i] - 48);
      if (v > U64_MAX) return null;
    }
  }
  if (negative) v = (U64_MAX + 1n - v) & U64_MAX;
  if (negative && v >= 1n << 63n) return null;
  return v;
}

/**
 * A small unsigned decimal without sign or spaces (lengths, counts) below 2^53, or `BAD`.
 * Used where memcached's parse would accept the same bytes with the same value.
 */
export function parseCount(buf: Uint8Array, start: number, end: number): number {
  if (start === end || end - start > 15) return BAD;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i] - 48;
    if (d < 0 || d > 9) return BAD;
    n = n * 10 + d;
  }
  return n;
}

/**
 * memcached's `safe_strtoul` into a uint32: the parsed unsigned long truncated to 32 bits, or
 * null. Fast path for plain digits.
 */
export function parseU32(buf: Uint8Array, start: number, end: number): number | null {
  const n = parseCount(buf, start, end);
  if (n !== BAD) return n % 4294967296;
  const v = parseU64(buf, start, end);
  return v === null ? null : Number(v & 0xffffffffn);
}

const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;

/**
 * memcached's `safe_strtol` into an int32: strtol(3) reads a 64-bit `long` (null beyond its
 * range, as ERANGE), which is then truncated to 32 bits, so `4294967297` reads as 1 and
 * `2147483648` as -2147483648 — exactly what memcached 1.6.18 stores.
 */
export function parseI32(buf: Uint8Array, start: number, end: number): number | null {
  // plain digits (an exptime of `0`, flags): no scan, whose tuple would be an allocation
  const plain = parseCount(buf, start, end);
  if (plain !== BAD) return plain | 0;
  const s = scan(buf, start, end);
  if (s === null) return null;
  const [negative, from, to] = s;
  if (to - from < 16) {
    let n = 0;
    for (let i = from; i < to; i++) n = n * 10 + buf[i] - 48;
    return (negative ? -n : n) | 0;
  }
  let v = 0n;
  for (let i = from; i < to; i++) {
    v = v * 10n + BigInt(buf[i] - 48);
    if (v > I64_MAX + 1n) return null;
  }
  if (negative) v = -v;
  if (v < I64_MIN || v > I64_MAX) return null;
  return Number(BigInt.asIntN(32, v));
}
