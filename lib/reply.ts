/**
 * The reply buffer of one connection: every reply produced from one read is appended here and
 * leaves in one write. Numbers are written as ASCII digits directly, without building strings.
 *
 * @module
 */

/** Anything with Deno's `write` contract (`Deno.Conn`, a test double). */
export interface ByteSink {
  write(p: Uint8Array): Promise<number>;
}

const encoder = new TextEncoder();

/** Encodes an ASCII/UTF-8 string once, for replies that never change. */
export function bytes(s: string): Uint8Array {
  return encoder.encode(s);
}

/** A growable output buffer; `buf[0, pos)` is pending output. */
export class ReplyBuffer {
  buf: Uint8Array;
  pos = 0;
  readonly #initial: number;
  /** Bytes written to sinks since construction. */
  bytesWritten = 0;

  constructor(size = 16 * 1024) {
    this.#initial = size;
    this.buf = new Uint8Array(size);
  }

  /** Makes room for `n` more bytes. */
  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.buf.subarray(0, this.pos));
    this.buf = bigger;
  }

  /** Appends bytes. */
  put(src: Uint8Array): void {
    this.reserve(src.length);
    this.buf.set(src, this.pos);
    this.pos += src.length;
  }

  /** Appends `src[off, off + len)`. */
  putRange(src: Uint8Array, off: number, len: number): void {
    this.reserve(len);
    this.buf.set(len === src.length ? src : src.subarray(off, off + len), this.pos);
    this.pos += len;
  }

  /** Appends one byte. */
  putByte(b: number): void {
    this.reserve(1);
    this.buf[this.pos++] = b;
  }

  /** Appends an ASCII string (for rare replies; hot replies are pre-encoded with `bytes`). */
  putAscii(s: string): void {
    this.reserve(s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.pos++] = s.charCodeAt(i);
  }

  /** Appends a non-negative integer below 2^53 in decimal. */
  putUint(n: number): void {
    this.reserve(16);
    if (n < 10) {
      this.buf[this.pos++] = 48 + n;
      return;
    }
    let digits = 0;
    for (let m = n; m >= 1; m = Math.floor(m / 10)) digits++;
    let p = this.pos + digits;
    this.pos = p;
    while (n >= 1) {
      const q = Math.floor(n / 10);
      this.buf[--p] = 48 + (n - q * 10);
      n = q;
    }
  }

  /** Appends `\r\n`. */
  crlf(): void {
    this.reserve(2);
    this.buf[this.pos++] = 13;
    this.buf[this.pos++] = 10;
  }

  /** Writes all pending output to `sink` (looping over partial writes) and empties the buffer. */
  async flush(sink: ByteSink): Promise<void> {
    let off = 0;
    while (off < this.pos) {
      off += await sink.write(this.buf.subarray(off, this.pos));
    }
    this.bytesWritten += this.pos;
    this.pos = 0;
    if (this.buf.length > 16 * this.#initial) this.buf = new Uint8Array(this.#initial);
  }
}
