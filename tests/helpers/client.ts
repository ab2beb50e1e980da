/**
 * A raw loopback client for tests: writes exact bytes, reads exact replies.
 *
 * @module
 */

const enc = new TextEncoder();
const dec = new TextDecoder("latin1");

/** Encodes a test string as bytes, one byte per char code (so `\xff` stays one byte). */
export function latin1(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

/** A TCP connection with a receive buffer. */
export class RawClient {
  readonly conn: Deno.Conn;
  #buf = new Uint8Array(0);
  #chunk = new Uint8Array(256 * 1024);
  /** A read still in flight after a timeout; the next read waits for it instead. */
  #pending: Promise<number | null> | null = null;
  closed = false;

  private constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** Connects to 127.0.0.1:`port`. */
  static async connect(port: number, hostname = "127.0.0.1"): Promise<RawClient> {
    const conn = await Deno.connect({ hostname, port });
    conn.setNoDelay(true);
    return new RawClient(conn);
  }

  /** Writes all of `data` (a string is sent as Latin-1 bytes). */
  async send(data: string | Uint8Array): Promise<void> {
    const b = typeof data === "string" ? latin1(data) : data;
    let off = 0;
    while (off < b.length) off += await this.conn.write(b.subarray(off));
  }

  /** Reads more bytes; false at end of stream. Rejects after `timeoutMs`. */
  async #more(timeoutMs: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`read timed out; have: ${this.text()}`)),
        timeoutMs,
      );
    });
    try {
      if (this.#pending === null) {
        this.#pending = this.conn.read(this.#chunk);
        this.#pending.catch(() => {}); // a read cut by close() is not an error here
      }
      const n = await Promise.race([this.#pending, timeout]);
      this.#pending = null;
      if (n === null) {
        this.closed = true;
        return false;
      }
      const joined = new Uint8Array(this.#buf.length + n);
      joined.set(this.#buf);
      joined.set(this.#chunk.subarray(0, n), this.#buf.length);
      this.#buf = joined;
      return true;
    } finally {
      clearTimeout(timer);
    }
  }

  /** What has been received and not yet taken, as Latin-1 text. */
  text(): string {
    return dec.decode(this.#buf);
  }

  /** Takes everything received so far. */
  take(n = this.#buf.length): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  /** Reads until at least `n` bytes are buffered, then takes exactly `n`. */
  async readBytes(n: number, timeoutMs = 5000): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      if (!(await this.#more(timeoutMs))) throw new Error(`closed after ${this.#buf.length} bytes`);
    }
    return this.take(n);
  }

  /** Reads until the received text ends with `suffix`, then takes it all as text. */
  async readUntil(suffix: string, timeoutMs = 5000): Promise<string> {
    while (!this.text().endsWith(suffix)) {
      if (!(await this.#more(timeoutMs))) {
        throw new Error(
          `closed before ${JSON.stringify(suffix)}; have ${JSON.stringify(this.text())}`,
        );
      }
    }
    return dec.decode(this.take());
  }

  /** Reads one `\r\n`-terminated line (without the terminator). */
  async readLine(timeoutMs = 5000): Promise<string> {
    for (;;) {
      const i = this.text().indexOf("\r\n");
      if (i >= 0) {
        const line = dec.decode(this.take(i + 2));
        return line.slice(0, -2);
      }
      if (!(await this.#more(timeoutMs))) throw new Error(`closed; have ${this.text()}`);
    }
  }

  /** Sends `request` and reads until the reply ends with `suffix` (default `\r\n`). */
  async call(request: string | Uint8Array, suffix = "\r\n"): Promise<string> {
    await this.send(request);
    return await this.readUntil(suffix);
  }

  /** Resolves true when the server closes the connection within `timeoutMs`. */
  async closedByServer(timeoutMs = 2000): Promise<boolean> {
    try {
      while (await this.#more(timeoutMs)) { /* discard until EOF */ }
      return true;
    } catch (e) {
      if (e instanceof Error && e.message.startsWith("read timed out")) return false;
      return true; // reset by peer
    }
  }

  /** Closes the connection (idempotent). */
  close(): void {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
  }
}

export { enc };
