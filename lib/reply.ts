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

import { giveBuffer, POOLED_SIZE, takeBuffer } from "./buffer_pool.ts";

const encoder = new TextEncoder();
/** The buffer of a reply buffer that holds none (see `recycle`). */
const NONE = new Uint8Array(0);

/** Ranges up to this many bytes are copied byte by byte (see `putRange`). */
const SHORT_RANGE = 32;

/** Values from this size on go from the store straight to the socket when it can take them. */
export const DIRECT_SEND_MIN = 16 * 1024;
/** Value views `putValue` holds at most before it sends (a gathered send has 2 parts each). */
const HELD_MAX = 8;

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
  if (n < 1000) {
    // value lengths of small items, mostly: no loop
    const hundreds = (n / 100) >>> 0;
    const rest = n - hundreds * 100;
    const tens = (rest / 10) >>> 0;
    if (hundreds > 0) buf[pos++] = 48 + hundreds;
    buf[pos] = 48 + tens;
    buf[pos + 1] = 48 + rest - tens * 10;
    return pos + 2;
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

/**
 * Writes the text protocol's `VALUE <key> <flags> <bytes>` at `buf[pos]`, the key being
 * `key[ks, ks + kl)`, without the line's end; `buf` has room for `kl + 28` bytes from `pos`.
 * Returns the end.
 */
export function writeValueHead(
  buf: Uint8Array,
  pos: number,
  key: Uint8Array,
  ks: number,
  kl: number,
  flags: number,
  bytes: number,
): number {
  buf[pos] = 86; // V
  buf[pos + 1] = 65; // A
  buf[pos + 2] = 76; // L
  buf[pos + 3] = 85; // U
  buf[pos + 4] = 69; // E
  buf[pos + 5] = 32;
  pos += 6;
  if (kl <= 32) {
    // four bytes per step: a quarter of the loop's tests and index updates
    let i = 0;
    for (; i + 4 <= kl; i += 4) {
      buf[pos + i] = key[ks + i];
      buf[pos + i + 1] = key[ks + i + 1];
      buf[pos + i + 2] = key[ks + i + 2];
      buf[pos + i + 3] = key[ks + i + 3];
    }
    for (; i < kl; i++) buf[pos + i] = key[ks + i];
  } else buf.set(key.subarray(ks, ks + kl), pos);
  pos += kl;
  buf[pos++] = 32;
  pos = writeU32(buf, pos, flags);
  buf[pos++] = 32;
  return writeU32(buf, pos, bytes);
}

/** A socket that sends at once what it takes, without waiting (the epoll engine's). */
export interface DirectSink {
  /** Sends what the socket takes of `p[0, len)` now: the byte count (0 when it is full). */
  sendNow(p: Uint8Array, len: number): number;
  /** As `sendNow`, for `parts[0, count)` in order in one call. */
  sendGathered(parts: readonly Uint8Array[], count: number): number;
}

/** A growable output buffer; `buf[0, pos)` is pending output. */
export class ReplyBuffer {
  buf: Uint8Array;
  pos = 0;
  readonly #initial: number;
  /** The other buffer: free when no write is in flight. */
  #spare: Uint8Array = NONE;
  #inflight: Promise<void> | null = null;
  /** Bytes written to sinks since construction. */
  bytesWritten = 0;
  /** True while a write started by `send` is under way. */
  writing = false;
  /** The socket that takes bytes at once (the epoll engine's); null: it has no such calls. */
  sender: DirectSink | null = null;
  /** Views of values in the store that `putValue` holds, and where in `buf` each goes. */
  readonly #held: Uint8Array[] = [];
  readonly #heldAt = new Int32Array(HELD_MAX);
  /** Scratch for `release`. */
  readonly #parts: Uint8Array[] = [];

  constructor(size = POOLED_SIZE) {
    this.#initial = size;
    this.buf = size === POOLED_SIZE ? takeBuffer() : new Uint8Array(size);
  }

  /**
   * Gives the buffer back to the shared pool (`./buffer_pool.ts`) when nothing is pending in it,
   * no value is held and no write is under way; the next reply takes one again.
   */
  recycle(): void {
    if (this.pos !== 0 || this.writing || this.#held.length > 0 || this.buf === NONE) return;
    if (giveBuffer(this.buf)) this.buf = NONE;
  }

  /** Makes room for `n` more bytes. */
  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.buf === NONE && n <= this.#initial) {
      this.buf = this.#initial === POOLED_SIZE ? takeBuffer() : new Uint8Array(this.#initial);
      return;
    }
    let size = Math.max(this.buf.length, this.#initial) * 2;
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
   * Appends the value of item `ref`, `len` bytes. A large value is not copied when `direct`
   * allows it, the transport can send gathered parts and no write is under way: its views in
   * the store are held in place, to leave with the replies around them in one gathered send
   * (`release`). The caller must release before the store may change: the connection does so
   * before each command and at the end of each batch. Pass `direct` false when the caller may
   * still take back buffered replies.
   */
  putValue(store: ValueSource, ref: number, len: number, direct: boolean): void {
    if (!direct || len < DIRECT_SEND_MIN || this.sender === null || this.writing) {
      this.reserve(len);
      this.pos += store.readValue(ref, this.buf, this.pos);
      return;
    }
    const held = this.#held;
    for (let off = 0; off < len;) {
      if (held.length === HELD_MAX) this.release();
      const view = store.valueView(ref, off, len - off);
      this.#heldAt[held.length] = this.pos;
      held.push(view);
      off += view.length;
    }
  }

  /** True while `putValue` holds views of values in the store. */
  get holding(): boolean {
    return this.#held.length > 0;
  }

  /**
   * Sends the pending output with the held values in their places, in one gathered send; what
   * the socket does not take is copied into the buffer, in order. Afterwards nothing points
   * into the store.
   */
  release(): void {
    const held = this.#held;
    if (held.length === 0) return;
    const parts = this.#parts;
    let from = 0;
    let total = this.pos;
    for (let i = 0; i < held.length; i++) {
      const at = this.#heldAt[i];
      if (at > from) parts.push(this.buf.subarray(from, at));
      parts.push(held[i]);
      total += held[i].length;
      from = at;
    }
    if (this.pos > from) parts.push(this.buf.subarray(from, this.pos));
    held.length = 0;
    const sent = this.sender!.sendGathered(parts, parts.length);
    this.bytesWritten += sent;
    if (sent < total) {
      // the socket is full: the rest waits in the buffer, copied out of the store
      const rest = new Uint8Array(Math.max(this.#initial, total - sent));
      let skip = sent;
      let p = 0;
      for (const part of parts) {
        if (skip >= part.length) {
          skip -= part.length;
          continue;
        }
        rest.set(skip > 0 ? part.subarray(skip) : part, p);
        p += part.length - skip;
        skip = 0;
      }
      this.buf = rest;
      this.pos = p;
    } else this.pos = 0;
    parts.length = 0;
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
    if (this.sender === null || this.writing) return false;
    if (this.#held.length > 0) {
      this.release();
      if (this.pos === 0) return true;
    }
    const n = this.sender.sendNow(this.buf, this.pos);
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
    this.release();
    await this.drain();
    const out = this.buf;
    const len = this.pos;
    this.buf = this.#spare.length >= this.#initial ? this.#spare : new Uint8Array(this.#initial);
    this.#spare = NONE; // (the buffer is `buf` now, which `recycle` may give away)
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
