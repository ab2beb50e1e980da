/**
 * One client connection: read → protocol codec → one write of every reply, until the client
 * leaves, asks to quit, or the server shuts down. The protocol is chosen from the first byte
 * (0x80 → binary), as memcached's `-B auto` does, unless `-B` forces one.
 *
 * @module
 */
import type { Authentication } from "./auth.ts";
import type { Cache } from "./cache.ts";
import { AsciiAuthProtocol } from "./protocol/ascii_auth.ts";
import { BinaryProtocol, REQUEST_MAGIC } from "./protocol/binary.ts";
import { type Protocol, type Session, Step } from "./protocol/session.ts";
import { MetaProtocol } from "./protocol/meta.ts";
import { TextProtocol } from "./protocol/text.ts";
import { BufferedReader } from "./reader.ts";
import { ReplyBuffer } from "./reply.ts";

/** What a connection needs from the server that owns it. */
export interface ConnectionOwner {
  readonly cache: Cache;
  /** The users each protocol must authenticate as (from the password files). */
  readonly auth: Authentication;
  /** True once shutdown began: finish what was read, then close. */
  readonly closing: boolean;
  shutdown(graceful: boolean): void;
  connectionRows(): Array<[string, string | number]>;
}

/** A transport we can read from, write to and close (TCP, unix socket or TLS). */
export type Transport = Deno.Conn;

/** A live client connection. */
export class Connection implements Session {
  readonly reader: BufferedReader;
  readonly out = new ReplyBuffer();
  readonly cache: Cache;
  readonly id: number;
  readonly transport: Transport;
  /** Clock second of the last completed read, for idle_timeout. */
  lastActive: number;
  /** True while the loop waits for the client to send. */
  idle = true;
  #owner: ConnectionOwner;
  #protocol: Protocol | null = null;
  #closed = false;

  constructor(transport: Transport, id: number, owner: ConnectionOwner) {
    this.transport = transport;
    this.id = id;
    this.#owner = owner;
    this.cache = owner.cache;
    this.reader = new BufferedReader(transport);
    this.lastActive = owner.cache.now();
  }

  shutdown(graceful: boolean): void {
    this.#owner.shutdown(graceful);
  }

  connectionRows(): Array<[string, string | number]> {
    return this.#owner.connectionRows();
  }

  /** Closes the transport now; a pending read ends and `run` returns. */
  abort(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.transport.close();
    } catch {
      // already closed by the peer
    }
  }

  #choose(): Protocol {
    const protocol = this.cache.config.protocol;
    const auth = this.#owner.auth;
    const r = this.reader;
    if (protocol === "binary" || (protocol === "auto" && r.buf[r.start] === REQUEST_MAGIC)) {
      return new BinaryProtocol(this, auth.sasl);
    }
    const text = new TextProtocol(this, new MetaProtocol());
    return auth.ascii === null ? text : new AsciiAuthProtocol(this, text, auth.ascii);
  }

  /** Serves the connection until it ends; never throws. */
  async run(): Promise<void> {
    const counters = this.cache.counters;
    let readBefore = 0;
    let writtenBefore = 0;
    try {
      for (;;) {
        this.idle = true;
        if (this.#owner.closing || !(await this.reader.fill())) break;
        this.idle = false;
        this.lastActive = this.cache.now();
        counters.bytes_read += this.reader.bytesRead - readBefore;
        readBefore = this.reader.bytesRead;
        this.#protocol ??= this.#choose();
        const verbose = this.cache.config.verbose;
        if (verbose >= 2) this.#trace("<", this.reader.buf, this.reader.start, this.reader.end);
        let step: Step;
        do {
          step = this.#protocol.process();
          if (step === Step.Abort) break;
          if (verbose >= 2) this.#trace(">", this.out.buf, 0, this.out.pos);
          if (this.out.pos > 0) await this.out.send(this.transport);
        } while (step === Step.Flush);
        counters.bytes_written += this.out.bytesWritten - writtenBefore;
        writtenBefore = this.out.bytesWritten;
        if (step === Step.Close || step === Step.Abort) break;
      }
    } catch (e) {
      // the peer reset or the server closed us: nothing to answer
      if (this.cache.config.verbose >= 1) console.error(`memg: connection ${this.id}: ${e}`);
    } finally {
      this.#protocol?.close();
      // Replies already handed to a write go out in full before the socket closes.
      await this.out.drain().catch(() => {});
      counters.bytes_written += this.out.bytesWritten - writtenBefore;
      this.abort();
      if (this.cache.config.verbose >= 2) console.error(`<${this.id} connection closed.`);
    }
  }

  /** `-vv`: one stderr line per request batch (`<id`) and reply batch (`>id`), escaped, cut. */
  #trace(dir: string, buf: Uint8Array, from: number, to: number): void {
    const cut = Math.min(to, from + 200);
    let text = "";
    for (let i = from; i < cut; i++) {
      const c = buf[i];
      text += c >= 32 && c < 127
        ? String.fromCharCode(c)
        : c === 13
        ? "\\r"
        : c === 10
        ? "\\n"
        : `\\x${c.toString(16).padStart(2, "0")}`;
    }
    console.error(`${dir}${this.id} ${text}${to > cut ? ` ... (${to - from} bytes)` : ""}`);
  }
}
