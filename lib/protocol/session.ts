/**
 * What a protocol codec sees of its connection, and what it tells the connection to do next.
 *
 * @module
 */
import type { Cache } from "../cache.ts";
import type { BufferedReader } from "../reader.ts";
import type { ReplyBuffer } from "../reply.ts";

/** What `Protocol.process` asks of the connection loop. */
export const Step = {
  /** Every complete command was handled: send the replies, then read more. */
  More: 0,
  /** The reply buffer is large: send it, then call `process` again before reading. */
  Flush: 1,
  /** Send the replies, then close the connection. */
  Close: 2,
  /** Close at once, sending nothing more (memcached's conn_closing). */
  Abort: 3,
} as const;
/** One of the `Step` values. */
export type Step = typeof Step[keyof typeof Step];

/** Replies beyond this many bytes are sent before more commands are parsed. */
export const FLUSH_AT = 1024 * 1024;

/** The connection state a codec works on. */
export interface Session {
  readonly reader: BufferedReader;
  readonly out: ReplyBuffer;
  readonly cache: Cache;
  /** Asks the server to shut down (the `shutdown` command). */
  shutdown(graceful: boolean): void;
  /** Rows for `stats conns`. */
  connectionRows(): Array<[string, string | number]>;
}

/** A wire protocol: turns buffered request bytes into cache calls and reply bytes. */
export interface Protocol {
  /** Handles every complete command in `session.reader`; never awaits. */
  process(): Step;
  /** Frees whatever a half-received command holds (the client went away). */
  close(): void;
  /** Commands received so far: complete text lines, or binary headers with extras and key. */
  readonly commands: number;
  /**
   * Whether a command's data block is still arriving or being discarded (memcached's
   * conn_nread and conn_swallow, where `-o idle_timeout` never cuts a connection).
   */
  inData(): boolean;
}
