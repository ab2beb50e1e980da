/**
 * A request line split into tokens the way memcached's `tokenize_command` splits it: on
 * spaces only, runs of spaces collapsing. Tokens are offsets into the reader's buffer, kept in
 * reusable typed arrays, so tokenizing allocates nothing.
 *
 * @module
 */

/** The tokens of one line: token `i` is `buf[start[i], end[i])`. */
export class Tokens {
  buf: Uint8Array = new Uint8Array(0);
  start: Int32Array = new Int32Array(32);
  end: Int32Array = new Int32Array(32);
  count = 0;

  /**
   * Splits `buf[from, to)` into tokens. A NUL byte ends the line early, as it ends the C string
   * memcached tokenizes.
   */
  split(buf: Uint8Array, from: number, to: number): void {
    this.buf = buf;
    let n = 0;
    let i = from;
    while (i < to) {
      while (i < to && buf[i] === 32) i++;
      if (i === to || buf[i] === 0) break;
      const s = i;
      while (i < to && buf[i] !== 32 && buf[i] !== 0) i++;
      if (n === this.start.length) this.#grow();
      this.start[n] = s;
      this.end[n] = i;
      n++;
      if (i < to && buf[i] === 0) break;
    }
    this.count = n;
  }

  #grow(): void {
    const start = new Int32Array(this.start.length * 2);
    start.set(this.start);
    const end = new Int32Array(this.end.length * 2);
    end.set(this.end);
    this.start = start;
    this.end = end;
  }

  /** Length of token `i`. */
  len(i: number): number {
    return this.end[i] - this.start[i];
  }

  /** Whether token `i` is exactly the ASCII bytes `word`. */
  is(i: number, word: Uint8Array): boolean {
    const s = this.start[i];
    if (this.end[i] - s !== word.length) return false;
    for (let k = 0; k < word.length; k++) if (this.buf[s + k] !== word[k]) return false;
    return true;
  }

  /** Token `i` decoded as Latin-1 text (for rare commands and error messages only). */
  text(i: number): string {
    let s = "";
    for (let k = this.start[i]; k < this.end[i]; k++) s += String.fromCharCode(this.buf[k]);
    return s;
  }
}
