/**
 * Decimal numbers read straight from request bytes, with the exact acceptance rules of
 * memcached's `safe_strtoul`, `safe_strtol` and `safe_strtoull` (util.c): leading white space
 * and a sign are allowed as by strtol(3), the number must end the token, and out-of-range
 * values are refused. No string is built.
 *
 * @module
 */

/** Returned by the parsers when the token is not an acceptable number. */
export const BAD = -1;

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/** Parsed sign and digit span of a strtol-style number, or null when there are no digits. */
function scan(buf: Uint8Array, start: number, end: number): [boolean, number, number] | null {
  let i = start;
  while (i < end && isSpace(buf[i])) i++;
  let negative = false;
  if (i < end && (buf[i] === 43 || buf[i] === 45)) negative = buf[i++] === 45;
  const digits = i;
  while (i < end && buf[i] >= 48 && buf[i] <= 57) i++;
  if (i === digits || i !== end) return null;
  return [negative, digits, end];
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

/**
 * memcached's `safe_strtol` into an int32: a signed number within 32 bits, or null.
 */
export function parseI32(buf: Uint8Array, start: number, end: number): number | null {
  const s = scan(buf, start, end);
  if (s === null) return null;
  const [negative, from, to] = s;
  if (to - from > 12) return null;
  let n = 0;
  for (let i = from; i < to; i++) n = n * 10 + buf[i] - 48;
  if (negative) n = -n;
  if (n > 2147483647 || n < -2147483648) return null;
  return n;
}
