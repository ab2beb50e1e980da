/**
 * A buffered reader over a byte stream, in the style of Go's bufio.Reader: one reusable buffer
 * that grows when a line or a value needs it and shrinks back when it empties. Parsers call the
 * synchronous `line()` and `full(n)` to find complete commands in what has already arrived,
 * consume them, and await `fill()` only when nothing complete is left — so a read carrying a
 * thousand pipelined commands costs one await, not a thousand.
 *
 * @module
 */

/** Anything with Deno's `read` contract (`Deno.Conn`, a test double). */
export interface ByteSource {
  read(p: Uint8Array): Promise<number | null>;
}

import { giveBuffer, POOLED_SIZE, takeBuffer } from "./buffer_pool.ts";

const LF = 10;
/** The buffer of a reader that holds none (see `recycle`). */
const NONE = new Uint8Array(0);
/** Bytes `line` scans itself before handing the search to `indexOf`. */
const SHORT_LINE = 64;

/** A source that can also be read without waiting (the epoll engine's sockets). */
export interface SyncByteSource extends ByteSource {
  /** Reads into `p[off, off + len)` now: bytes read, 0 if none are there, -1 at the end. */
  readNow(p: Uint8Array, off: number, len: number): number;
  /** As `readNow`, into all of `first`, then `second[off, off + len)`, in one read. */
  readScattered(first: Uint8Array, second: Uint8Array, off: number, len: number): number;
}

/** Buffered reads from a `ByteSource`; `buf[start, end)` holds the unread bytes. */
export class BufferedReader {
  buf: Uint8Array;
  start = 0;
  end = 0;
  readonly #initial: number;
  readonly #src: ByteSource;
  /** Bytes read from the source since construction. */
  bytesRead = 0;
  /** Bytes read into `readDirect` views and not yet taken by the parser. */
  directRead = 0;
  #direct: Uint8Array | null = null;

  constructor(src: ByteSource, size = POOLED_SIZE) {
    this.#src = src;
    this.#initial = size;
    this.buf = size === POOLED_SIZE ? takeBuffer() : new Uint8Array(size);
  }

  /**
   * Gives the buffer back to the shared pool (`./buffer_pool.ts`) when nothing unread is in it
   * and no `readDirect` view waits; the next read takes one again. The caller must hold no
   * offsets into `buf` past this call.
   */
  recycle(): void {
    if (this.start !== this.end || this.#direct !== null || this.buf === NONE) return;
    if (giveBuffer(this.buf)) this.buf = NONE;
  }

  /** Number of unread bytes. */
  get buffered(): number {
    return this.end - this.start;
  }

  /**
   * Index in `buf` of the `\n` ending the next line, or -1 when no complete line has arrived.
   * The line is `buf[start, index)` (strip a trailing `\r` yourself).
   */
  line(): number {
    const buf = this.buf;
    const end = this.end;
    // Request lines are mostly short: a plain loop beats calling indexOf on them.
    const near = Math.min(end, this.start + SHORT_LINE);
    for (let i = this.start; i < near; i++) if (buf[i] === LF) return i;
    if (near === end) return -1;
    const i = buf.indexOf(LF, near);
    return i >= 0 && i < end ? i : -1;
  }

  /** Whether `n` unread bytes have arrived; when not, makes sure the buffer can hold them. */
  full(n: number): boolean {
    if (this.end - this.start >= n) return true;
    this.#makeRoom(n);
    return false;
  }

  /** Marks `n` bytes as read. */
  consume(n: number): void {
    this.start += n;
    if (this.start === this.end) {
      this.start = 0;
      this.end = 0;
      if (this.buf.length > 4 * this.#initial) this.buf = NONE;
    }
  }

  /**
   * Makes the next `fill()` read into `view` instead of the buffer, if the buffer is empty then
   * (a large value goes straight to its destination); the bytes read are added to `directRead`.
   */
  readDirect(view: Uint8Array): void {
    this.#direct = view;
  }

  /**
   * Reads at least one more byte from the source into the buffer (or the `readDirect` view),
   * compacting or growing the buffer first when it is full. Resolves false at end of stream.
   */
  async fill(): Promise<boolean> {
    const direct = this.#direct;
    this.#direct = null;
    if (direct !== null && this.start === this.end) {
      const n = await this.#src.read(direct);
      if (n === null) return false;
      this.directRead += n;
      this.bytesRead += n;
      return true;
    }
    if (this.end === this.buf.length) this.#makeRoom(this.end - this.start + this.#initial);
    const n = await this.#src.read(this.buf.subarray(this.end));
    if (n === null) return false;
    this.end += n;
    this.bytesRead += n;
    return true;
  }

  /**
   * As `fill`, without waiting, from the reader's own source: bytes read, 0 when nothing has
   * arrived, -1 at the end of the stream (or on an error). A `readDirect` view is filled first
   * and the buffer with what follows it, in the same read.
   */
  fillNow(src: SyncByteSource): number {
    if (this.buf === NONE) this.#makeRoom(this.#initial);
    const direct = this.#direct;
    this.#direct = null;
    if (direct !== null && this.start === this.end) {
      // (the buffer is empty: `consume` has moved start and end back to 0)
      const n = src.readScattered(direct, this.buf, 0, this.buf.length);
      if (n > 0) {
        const d = Math.min(n, direct.length);
        this.directRead += d;
        this.end = n - d;
        this.bytesRead += n;
      } else this.#direct = direct;
      return n;
    }
    if (this.end === this.buf.length) this.#makeRoom(this.end - this.start + this.#initial);
    const n = src.readNow(this.buf, this.end, this.buf.length - this.end);
    if (n > 0) {
      this.end += n;
      this.bytesRead += n;
    }
    return n;
  }

  /** Ensures the buffer can hold `n` unread bytes from `start`, compacting, then growing. */
  #makeRoom(n: number): void {
    if (this.start + n <= this.buf.length) return;
    if (this.buf === NONE) {
      // (recycled: start and end are 0)
      this.buf = n <= POOLED_SIZE && this.#initial === POOLED_SIZE
        ? takeBuffer()
        : new Uint8Array(Math.max(n, this.#initial));
      return;
    }
    const have = this.end - this.start;
    if (n <= this.buf.length) {
      this.buf.copyWithin(0, this.start, this.end);
    } else {
      let size = this.buf.length * 2;
      while (size < n) size *= 2;
      const bigger = new Uint8Array(size);
      bigger.set(this.buf.subarray(this.start, this.end));
      this.buf = bigger;
    }
    this.start = 0;
    this.end = have;
  }
}
