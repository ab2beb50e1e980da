/**
 * memcached's ascii authentication (`-Y FILE`, proto_text.c's try_read_command_asciiauth):
 * until a connection authenticates, the only command is a `set` whose value is
 * `user password` — `set <any> <any> <any> <n>\r\n<user> <password>\r\n` — answered `STORED`
 * or `CLIENT_ERROR authentication failure`; any other line gets
 * `CLIENT_ERROR unauthenticated`. Once authenticated, the connection is handed to the text
 * protocol for good.
 *
 * As in memcached, the answers of the authentication phase share one reply slot until they are
 * sent: of several answered from one read, only the last is written.
 *
 * @module
 */
import type { Credentials } from "../auth.ts";
import { bytes } from "../reply.ts";
import { parseU32 } from "./numbers.ts";
import type { Protocol, Session } from "./session.ts";
import { Step } from "./session.ts";
import { Tokens } from "./tokens.ts";

const R = {
  STORED: bytes("STORED\r\n"),
  UNAUTHENTICATED: bytes("CLIENT_ERROR unauthenticated\r\n"),
  FAILURE: bytes("CLIENT_ERROR authentication failure\r\n"),
  BAD_TERMINATION: bytes("CLIENT_ERROR bad command line termination\r\n"),
  BAD_FORMAT: bytes("CLIENT_ERROR bad authentication token format\r\n"),
} as const;
const SET = bytes("set");

/** Without a newline in this many bytes, the client is sending junk: close (memcached's 2048). */
const LINE_MAX = 2048;
/** memcached reads the token into its 16 KB read buffer; a longer one closes the connection. */
const VALUE_MAX = 16384;

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/** memcached tokenizes C strings: a NUL ends the text early. */
function cString(buf: Uint8Array, start: number, end: number): number {
  for (let i = start; i < end; i++) if (buf[i] === 0) return i;
  return end;
}

/**
 * memcached's `safe_strtoul` on a token that may carry trailing bytes (the `\r` of the line):
 * the number must be followed by white space or the end of the token.
 */
function tokenU32(buf: Uint8Array, start: number, end: number): number | null {
  let i = start;
  while (i < end && isSpace(buf[i])) i++;
  if (i < end && (buf[i] === 43 || buf[i] === 45)) i++;
  while (i < end && buf[i] >= 48 && buf[i] <= 57) i++;
  if (i < end && !isSpace(buf[i])) return null;
  return parseU32(buf, start, i);
}

/** The `-Y` gate in front of a connection's text protocol. */
export class AsciiAuthProtocol implements Protocol {
  readonly session: Session;
  readonly #text: Protocol;
  readonly #users: Credentials;
  readonly #tokens = new Tokens();
  #authenticated = false;
  /** Bytes of the `user password` token still expected (with its `\r\n`), or -1 for a line. */
  #need = -1;
  /** Where the unsent reply of this read starts in the reply buffer, or -1. */
  #slot = -1;
  /** Lines read before the connection was authenticated. */
  #lines = 0;

  constructor(session: Session, text: Protocol, users: Credentials) {
    this.session = session;
    this.#text = text;
    this.#users = users;
  }

  close(): void {
    this.#text.close();
  }

  get commands(): number {
    return this.#lines + this.#text.commands;
  }

  inData(): boolean {
    return this.#need >= 0 || this.#text.inData();
  }

  process(): Step {
    if (this.#authenticated) return this.#text.process();
    const r = this.session.reader;
    this.#slot = -1;
    for (;;) {
      if (this.#need < 0) {
        if (r.buffered < 2) return Step.More;
        const lf = r.line();
        if (lf < 0) return r.buffered > LINE_MAX ? Step.Abort : Step.More;
        const t = this.#tokens;
        t.split(r.buf, r.start, cString(r.buf, r.start, lf));
        r.consume(lf + 1 - r.start);
        this.#lines++;
        const size = t.count >= 5 && t.is(0, SET) ? tokenU32(t.buf, t.start[4], t.end[4]) : null;
        if (size === null) {
          this.#reply(R.UNAUTHENTICATED);
          continue;
        }
        this.#need = (size + 2) >>> 0; // uint32 arithmetic, as in memcached
      }
      const need = this.#need;
      if (need > VALUE_MAX) return r.buffered >= VALUE_MAX ? Step.Abort : Step.More;
      if (!r.full(need)) return Step.More;
      this.#need = -1;
      const buf = r.buf;
      const start = r.start;
      r.consume(need);
      if (need < 2 || buf[start + need - 2] !== 13 || buf[start + need - 1] !== 10) {
        this.#reply(R.BAD_TERMINATION);
        continue;
      }
      if (this.#verify(buf, start, start + need - 2)) return this.#text.process();
    }
  }

  /** Checks `user password` in `buf[start, end)`; true once the connection is authenticated. */
  #verify(buf: Uint8Array, start: number, end: number): boolean {
    const t = this.#tokens;
    t.split(buf, start, cString(buf, start, end));
    if (t.count < 2) {
      this.#reply(R.BAD_FORMAT);
      return false;
    }
    const counters = this.session.cache.counters;
    counters.auth_cmds++;
    if (!this.#users.check(buf, t.start[0], t.len(0), t.start[1], t.len(1))) {
      counters.auth_errors++;
      this.#reply(R.FAILURE);
      return false;
    }
    this.#reply(R.STORED);
    this.#authenticated = true;
    return true;
  }

  /** Writes `reply` into this read's reply slot, replacing what an earlier line left there. */
  #reply(reply: Uint8Array): void {
    const out = this.session.out;
    if (this.#slot >= 0) out.pos = this.#slot;
    this.#slot = out.pos;
    out.put(reply);
  }
}
