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

/** Ranges up to this many bytes are copied byte by byte (see `putRange`). */
const SHORT_RANGE = 32;

/** Values from this size on go from the store straight to the socket when it can take them. */
export const DIRECT_SEND_MIN = 16 * 1024;

/** What `putValue` needs of a store: the value's bytes, copied or viewed in place. */
export interface ValueSource {
  readValue(ref: number, dst: Uint8Array, dstOff: number): number;
  valueView(ref: number, valueOff: number, maxLen: number): Uint8Array;
}

/** Encodes an ASCII/UTF-8 string once, for replies that never change. */
export function bytes(s: string): Uint8Array {
  return encoder.encode(s);
}

/** Writes `n` (an integer, 0 ≤ n < 2^32) in decimal at `buf[pos]`, which has room; returns the end. */
export function writeU32(buf: Uint8Array, pos: number, n: number): number {
  if (n < 10) {
    buf[pos] = 48 + n;
    return pos + 1;
  }
  let digits = 2;
  for (let m = (n / 100) >>> 0; m > 0; m = (m / 10) >>> 0) digits++;
  let p = pos + digits;
  while (n > 0) {
    const q = (n / 10) >>> 0;
    buf[--p] = 48 + n - q * 10;
    n = q;
  }
  return pos + digits;
}

/** A growable output buffer; `buf[0, pos)` is pending output. */
export class ReplyBuffer {
  buf: Uint8Array;
  pos = 0;
  readonly #initial: number;
  /** The other buffer: free when no write is in flight. */
  #spare: Uint8Array = new Uint8Array(0);
  #inflight: Promise<void> | null = null;
  /** Bytes written to sinks since construction. */
  bytesWritten = 0;
  /** True while a write started by `send` is under way. */
  writing = false;
  /**
   * Sends bytes at once if the socket takes them (the epoll engine's `sendNow`), returning how
   * many it took; null: the transport has no such call.
   */
  sendNow: ((p: Uint8Array, len: number, more: boolean) => number) | null = null;

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
    const len = src.length;
    this.reserve(len);
    const buf = this.buf;
    const pos = this.pos;
    if (len <= SHORT_RANGE) {
      // short replies (VALUE, END, STORED): a loop beats calling `set`
      for (let i = 0; i < len; i++) buf[pos + i] = src[i];
    } else buf.set(src, pos);
    this.pos = pos + len;
  }

  /** Appends `src[off, off + len)`. */
  putRange(src: Uint8Array, off: number, len: number): void {
    this.reserve(len);
    const buf = this.buf;
    const pos = this.pos;
    if (len <= SHORT_RANGE) {
      // keys, mostly: a loop beats allocating a subarray view for `set`
      for (let i = 0; i < len; i++) buf[pos + i] = src[off + i];
    } else buf.set(len === src.length ? src : src.subarray(off, off + len), pos);
    this.pos = pos + len;
  }

  /**
   * Appends the value of item `ref`, `len` bytes. A large value goes straight from the store's
   * memory to the socket, after what is buffered, when `direct` allows it, the transport can
   * send at once and no write is under way; whatever the socket does not take at once is
   * copied here as usual. Nothing is kept pointing into the store: the item may change as soon
   * as this returns. Pass `direct` false when the caller may still take back buffered replies.
   */
  putValue(store: ValueSource, ref: number, len: number, direct: boolean): void {
    if (!direct || len < DIRECT_SEND_MIN || this.sendNow === null || this.writing) {
      this.reserve(len);
      this.pos += store.readValue(ref, this.buf, this.pos);
      return;
    }
    for (let off = 0; off < len;) {
      const view = store.valueView(ref, off, len - off);
      this.#putDirect(view);
      off += view.length;
    }
  }

  #putDirect(view: Uint8Array): void {
    const sendNow = this.sendNow!;
    if (this.pos > 0) {
      const n = sendNow(this.buf, this.pos, true);
      this.bytesWritten += n;
      if (n < this.pos) {
        // the socket is full: keep the rest, and the value after it, for the next send
        this.buf.copyWithin(0, n, this.pos);
        this.pos -= n;
        this.put(view);
        return;
      }
      this.pos = 0;
    }
    const n = sendNow(view, view.length, true);
    this.bytesWritten += n;
    if (n < view.length) this.put(n === 0 ? view : view.subarray(n));
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
    const buf = this.buf;
    if (n <= 0xffffffff) {
      // 32-bit integer arithmetic: the common case (lengths, flags, CAS values)
      this.pos = writeU32(buf, this.pos, n);
      return;
    }
    let digits = 0;
    for (let m = n; m >= 1; m = Math.floor(m / 10)) digits++;
    let p = this.pos + digits;
    this.pos = p;
    while (n >= 1) {
      const q = Math.floor(n / 10);
      buf[--p] = 48 + (n - q * 10);
      n = q;
    }
  }

  /** Appends `\r\n`. */
  crlf(): void {
    this.reserve(2);
    this.buf[this.pos++] = 13;
    this.buf[this.pos++] = 10;
  }

  /**
   * Sends all pending output at once if the transport can (`sendNow`) and no write is under
   * way; true when nothing is left pending. What the socket does not take stays for `send`.
   */
  sendAtOnce(): boolean {
    // (A finished write that failed is reported by `send`: the socket takes nothing then.)
    if (this.sendNow === null || this.writing) return false;
    const n = this.sendNow(this.buf, this.pos, false);
    this.bytesWritten += n;
    if (n === this.pos) {
      this.pos = 0;
      return true;
    }
    this.buf.copyWithin(0, n, this.pos);
    this.pos -= n;
    return false;
  }

  /**
   * Starts sending all pending output to `sink` and gives the buffer a fresh spare to fill, so
   * the connection can read and parse the next commands while this write is under way. Waits
   * first for the previous send: at most one write is in flight, and writes go out in order.
   */
  async send(sink: ByteSink): Promise<void> {
    await this.drain();
    const out = this.buf;
    const len = this.pos;
    this.buf = this.#spare.length >= this.#initial ? this.#spare : new Uint8Array(this.#initial);
    this.pos = 0;
    this.writing = true;
    this.#inflight = this.#writeAll(sink, out, len);
    // A failed write is reported by the next `drain`; until then it must not count as an
    // unhandled rejection, which would end the whole process.
    this.#inflight.catch(() => {});
  }

  /** Resolves when every send has completed (rejects if one failed). */
  async drain(): Promise<void> {
    const inflight = this.#inflight;
    if (inflight === null) return;
    this.#inflight = null;
    await inflight;
  }

  /** Resolves once the write under way, if any, has finished or failed. */
  async settled(): Promise<void> {
    await this.#inflight?.catch(() => {});
  }

  /** Writes all pending output to `sink` now and waits for it. */
  async flush(sink: ByteSink): Promise<void> {
    await this.send(sink);
    await this.drain();
  }

  async #writeAll(sink: ByteSink, out: Uint8Array, len: number): Promise<void> {
    let off = 0;
    try {
      while (off < len) off += await sink.write(out.subarray(off, len));
    } finally {
      this.writing = false;
    }
    this.bytesWritten += len;
    // Keep the buffer as the next spare unless a huge reply grew it.
    this.#spare = out.length > 16 * this.#initial ? new Uint8Array(0) : out;
  }
}
