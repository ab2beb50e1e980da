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
import { BufferedReader, type SyncByteSource } from "./reader.ts";
import { type DirectSink, ReplyBuffer } from "./reply.ts";
import type { InputHandler, RoundEnd } from "./net/epoll.ts";

/** How long a connection may keep the event loop to itself before it lets the others run. */
const TURN_MS = 1;
/** How much busy time between two waits of a connection for a timer (see `yieldTurn`). */
const PARK_MS = 10;
/**
 * How long after its last reply a connection ended by shutdown waits for the client to close
 * its side (a client that has read everything sent long ago is closed at once).
 */
const LINGER_MS = 3000;
const NOTHING = new Uint8Array(0);

/**
 * Returns to the event loop so that the other connections run. Reads and writes that can
 * complete at once resolve in microtasks without returning to it, so one client keeping memg
 * busy would starve all the others (for a second and more). Awaiting the cheapest operation
 * Deno runs on its thread pool (a digest of nothing) returns to the event loop; but sockets
 * are polled for new input only when the loop has nothing at all to do, and with several busy
 * connections that happens only once each waits for a timer, so every `PARK_MS` of busy time
 * a connection waits for one (a millisecond or two: too slow to do it every turn).
 */
function yieldTurn(park: boolean): Promise<unknown> {
  if (park) return new Promise((resolve) => setTimeout(resolve, 0));
  return crypto.subtle.digest("SHA-1", NOTHING);
}

/** What `run` waits for input with: input is in the reader, or the stream ended. */
const INPUT_READY = -2;
const INPUT_END = -1;

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

/**
 * A transport we can read from, write to and close: a `Deno.Conn` (TCP, unix socket, TLS) or
 * the epoll engine's `EpollConn`, which also sends at once (`DirectSink`).
 */
export interface Transport extends Partial<DirectSink> {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
  readonly remoteAddr: Deno.Addr;
  setNoDelay?(noDelay?: boolean): void;
  /** True when memg's own poller watches it, so waiting for Deno's sockets is not needed. */
  readonly polled?: boolean;
}

/** The epoll engine's sockets: input is handed over in the poller's round (`armInput`). */
interface SyncTransport extends Transport, SyncByteSource {
  armInput(handler: InputHandler): void;
  disarm(): void;
  afterRound(r: RoundEnd): void;
}

/**
 * A live client connection. On the epoll engine it is its own input handler and round end
 * (`readInput`, `onInput`, `endRound`, called by the poller): no closures or handler objects of
 * its own for a request to touch.
 */
export class Connection implements Session, InputHandler, RoundEnd {
  readonly reader: BufferedReader;
  readonly out = new ReplyBuffer();
  readonly cache: Cache;
  readonly id: number;
  readonly transport: Transport;
  /** Clock second of the last command received (or of the accept), for idle_timeout. */
  lastActive: number;
  /** True while the loop waits for the client to send. */
  idle = true;
  #owner: ConnectionOwner;
  #protocol: Protocol | null = null;
  #closed = false;
  #linger: ReturnType<typeof setTimeout> | undefined;
  /** While `run` waits for `onInput`: what resumes it. */
  #waiting: ((got: number) => void) | null = null;
  #readBefore = 0;
  #writtenBefore = 0;
  #commands = 0;
  /** Time spent handling commands since the last turn given to others (Deno's sockets). */
  #busy = 0;
  /** `Date.now()` of the last reply handed to a write, in an array: storing it allocates nothing. */
  readonly #lastSend = new Float64Array(1);

  constructor(transport: Transport, id: number, owner: ConnectionOwner) {
    this.transport = transport;
    this.id = id;
    this.#owner = owner;
    this.cache = owner.cache;
    this.reader = new BufferedReader(transport);
    if (transport.sendNow !== undefined && transport.sendGathered !== undefined) {
      this.out.sender = transport as DirectSink;
    }
    this.lastActive = owner.cache.now();
  }

  shutdown(graceful: boolean): void {
    this.#owner.shutdown(graceful);
  }

  connectionRows(): Array<[string, string | number]> {
    return this.#owner.connectionRows();
  }

  /**
   * Whether `-o idle_timeout` may cut the connection: it waits for the next command, not in
   * the middle of one's data nor of a write (memcached cuts only in conn_new_cmd/conn_read).
   */
  get awaitingCommand(): boolean {
    return this.idle && !this.out.writing && !(this.#protocol?.inData() ?? false);
  }

  /**
   * For shutdown: once the replies being written have gone out, ends a connection waiting for
   * the client (a busy one ends by itself before reading again).
   */
  async finish(): Promise<void> {
    await this.out.settled();
    if (this.idle) await this.#closeWrite();
  }

  /**
   * Ends the sending side after the replies already written (they go out, then a FIN) and
   * closes the connection once the client has closed its side, or `LINGER_MS` after the last
   * reply. Closing at once would reset a connection the client still writes to, and a reset
   * discards the replies not yet delivered.
   */
  async #closeWrite(): Promise<void> {
    if (this.#closed || this.#linger !== undefined) return;
    const wait = Math.max(0, this.#lastSend[0] + LINGER_MS - Date.now());
    this.#linger = setTimeout(() => this.abort(), wait);
    try {
      await this.transport.closeWrite();
    } catch {
      this.abort();
    }
  }

  /** Closes the transport now; a pending read ends and `run` returns. */
  abort(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#resume(INPUT_END);
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

  /**
   * Epoll sockets: the poller calls `readInput`, then `onInput`, in its rounds while `run` waits
   * for input. The common case (a read's commands answered, the replies left for the round's
   * end) runs to the end there, with no promise; anything else is handed to `run`.
   */
  readInput(): number {
    return this.#owner.closing ? -1 : this.reader.fillNow(this.transport as SyncTransport);
  }

  /** Handles what `readInput` got. True: still waiting. */
  onInput(n: number): boolean {
    if (n === 0) return true;
    if (n < 0) return this.#resume(INPUT_END);
    this.idle = false;
    let step: Step;
    try {
      step = this.#batch(true, false);
    } catch (e) {
      // as `run` treats a failure: this connection ends, the poller and the others go on
      if (this.cache.config.verbose >= 1) console.error(`memg: connection ${this.id}: ${e}`);
      return this.#resume(INPUT_END);
    }
    // The replies leave at the end of the poller's round, with the other connections'.
    const later = step === Step.More && this.out.pos > 0;
    if (later) (this.transport as SyncTransport).afterRound(this);
    else if (step !== Step.Abort) this.#sendNow();
    if (step === Step.More && (later || this.out.pos === 0)) {
      // with replies still to send it is not idle yet: shutdown must not end it before they go
      this.idle = !later;
      if (!later) this.#recycle();
      return true;
    }
    return this.#resume(step);
  }

  /**
   * The end of the poller's round: sends the replies `onInput` left. What the socket does not
   * take, `run` sends, and waits for input again after.
   */
  endRound(): void {
    if (this.out.pos > 0) this.#sendNow();
    if (this.out.pos === 0) {
      this.idle = true;
      this.#recycle();
      // a shutdown that began meanwhile passed this connection by as busy: it ends it now
      if (this.#owner.closing) void this.finish();
      return;
    }
    (this.transport as SyncTransport).disarm();
    this.#resume(Step.More);
  }

  /**
   * Waiting for the next command with nothing unread and nothing unsent: the buffers go back to
   * the shared pool (`./buffer_pool.ts`) until the next read or reply. Not in the middle of a
   * command's data, which the protocol may still point into.
   */
  #recycle(): void {
    if (this.#protocol?.inData() === true) return;
    this.reader.recycle();
    this.out.recycle();
  }

  /** Serves the connection until it ends; never throws. */
  async run(): Promise<void> {
    const counters = this.cache.counters;
    let sincePark = 0;
    const polled = this.transport.polled === true;
    try {
      for (;;) {
        this.idle = true;
        if (this.#owner.closing || this.#closed) break;
        const got = polled
          ? await new Promise<number>((resolve) => {
            this.#waiting = resolve;
            (this.transport as SyncTransport).armInput(this);
          })
          : (await this.reader.fill())
          ? INPUT_READY
          : INPUT_END;
        if (got === INPUT_END || (got === INPUT_READY && this.#owner.closing)) break;
        this.idle = false;
        // a batch `onInput` began, or the input `fill` brought
        let step: Step = got === INPUT_READY ? this.#batch(true, true) : got as Step;
        while (step !== Step.Abort) {
          if (this.out.pos > 0) {
            await this.out.send(this.transport);
            this.#lastSend[0] = Date.now();
          }
          if (step !== Step.Flush) break;
          step = this.#batch(false, true);
        }
        if (step === Step.Close || step === Step.Abort) break;
        if (this.#busy >= TURN_MS) {
          // after a turn this long, the other connections get theirs (memcached's -R)
          counters.conn_yields++;
          sincePark += this.#busy;
          await yieldTurn(sincePark >= PARK_MS);
          if (sincePark >= PARK_MS) sincePark = 0;
          this.#busy = 0;
        }
      }
    } catch (e) {
      // the peer reset or the server closed us: nothing to answer
      if (this.cache.config.verbose >= 1) console.error(`memg: connection ${this.id}: ${e}`);
    } finally {
      this.#protocol?.close();
      // Replies already handed to a write go out in full before the socket closes.
      await this.out.drain().catch(() => {});
      counters.bytes_written += this.out.bytesWritten - this.#writtenBefore;
      if (this.#owner.closing) await this.#discardUntilEnd();
      clearTimeout(this.#linger);
      this.abort();
      if (this.cache.config.verbose >= 2) console.error(`<${this.id} connection closed.`);
    }
  }

  /** Hands the connection back to `run` with what `onInput` got; false (not waiting). */
  #resume(got: number): boolean {
    const resolve = this.#waiting;
    this.#waiting = null;
    resolve?.(got);
    return false;
  }

  /**
   * Handles every complete command in the reader (`fresh`: input just arrived) and, with
   * `send`, sends the replies at once if the socket takes them (what it does not stays in `out`).
   */
  #batch(fresh: boolean, send: boolean): Step {
    const counters = this.cache.counters;
    const r = this.reader;
    counters.bytes_read += r.bytesRead - this.#readBefore;
    this.#readBefore = r.bytesRead;
    const protocol = this.#protocol ??= this.#choose();
    const verbose = this.cache.config.verbose;
    if (verbose >= 2 && fresh) this.#trace("<", r.buf, r.start, r.end);
    let step: Step;
    if (this.transport.polled === true) step = protocol.process();
    else {
      // Deno's sockets: time the work, to give the other connections a turn (see `run`)
      const start = performance.now();
      step = protocol.process();
      this.#busy += performance.now() - start;
    }
    // large values held in the store leave now, before anything can change them
    this.out.release();
    if (step !== Step.Abort) {
      if (verbose >= 2) this.#trace(">", this.out.buf, 0, this.out.pos);
      if (send) this.#sendNow();
    }
    if (protocol.commands !== this.#commands) {
      this.#commands = protocol.commands;
      this.lastActive = this.cache.now();
    }
    this.#countWritten();
    return step;
  }

  /** Sends the pending replies if the socket takes them all at once (the rest stays in `out`). */
  #sendNow(): void {
    if (this.out.pos > 0) this.out.sendAtOnce();
    this.#countWritten();
  }

  /** Counts what was sent at once since the last call (gathered sends included) as a reply. */
  #countWritten(): void {
    const sent = this.out.bytesWritten - this.#writtenBefore;
    if (sent === 0) return;
    this.cache.counters.bytes_written += sent;
    this.#writtenBefore = this.out.bytesWritten;
    this.#lastSend[0] = Date.now();
  }

  /** Shutdown: reads and drops what the client still sends until it closes (or `LINGER_MS`). */
  async #discardUntilEnd(): Promise<void> {
    await this.#closeWrite();
    try {
      const sink = new Uint8Array(4096);
      while (!this.#closed && (await this.transport.read(sink)) !== null) {
        // dropped: commands that arrive after shutdown began are not served
      }
    } catch {
      // closed by the linger timer, or reset by the client
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
