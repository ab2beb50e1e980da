/**
 * The "bare ceiling" for the benchmark's pipelined scenario: the least a Deno TCP server has to
 * do to answer memcached text `get`/`set` traffic. It parses request lines, answers every get
 * with the requested key and one fixed canned value, skips set data blocks and answers STORED,
 * and sends all the replies to one read in one write. It stores nothing, so memg's distance to
 * it is the cost of memg's own parsing, storage and bookkeeping.
 *
 * It serves TCP with the same engine memg uses by default (memg's epoll engine, `lib/net/`),
 * or with Deno's own sockets when the third argument is `deno`, or, with `bare`, with the least
 * loop a Deno process can run: `epoll_wait` with no timeout on the main thread, reads and sends
 * straight after, and never a turn of Deno's event loop (so no timers, no signal listeners: a
 * SIGTERM ends it the default way). The bare loop is the floor under memg's engine, which shares
 * the thread with Deno's event loop (`lib/net/epoll.ts`).
 *
 * Usage: `deno run -A bench/ceiling.ts <port> [value-size] [epoll|deno|bare]`.
 *
 * @module
 */

import type { Transport } from "../lib/connection.ts";
import { EpollConn, listenEpoll } from "../lib/net/epoll.ts";
import {
  AF_INET,
  EAGAIN,
  EPOLL_CTL_ADD,
  EPOLLET,
  EPOLLIN,
  EPOLLOUT,
  errno,
  IPPROTO_TCP,
  libc,
  MSG_NOSIGNAL,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
  TCP_NODELAY,
} from "../lib/net/libc.ts";
import { encodeSockaddr } from "../lib/net/sockaddr.ts";
import type { Listener } from "../lib/server.ts";

const LF = 10;
const SPACE = 32;
const enc = new TextEncoder();
const STORED = enc.encode("STORED\r\n");
const ERROR = enc.encode("ERROR\r\n");
const VALUE = enc.encode("VALUE ");

/** A growable output buffer. */
class Out {
  buf = new Uint8Array(64 * 1024);
  len = 0;

  put(b: Uint8Array, from = 0, to = b.length): void {
    const n = to - from;
    if (this.len + n > this.buf.length) {
      const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
      bigger.set(this.buf.subarray(0, this.len));
      this.buf = bigger;
    }
    if (n <= 64) {
      // short ranges (keys) byte by byte: no subarray view to allocate, as memg's reply buffer
      for (let i = 0; i < n; i++) this.buf[this.len + i] = b[from + i];
    } else this.buf.set(from === 0 && to === b.length ? b : b.subarray(from, to), this.len);
    this.len += n;
  }
}

/** Parses the decimal token ending just before `end`, starting after the last space. */
function lastNumber(b: Uint8Array, start: number, end: number): number {
  let i = end;
  while (i > start && b[i - 1] !== SPACE) i--;
  let n = 0;
  for (; i < end; i++) n = n * 10 + (b[i] - 48);
  return n;
}

/** One connection's input buffer and replies. */
class Session {
  buf = new Uint8Array(64 * 1024);
  start = 0;
  end = 0;
  skip = 0;
  readonly out = new Out();

  constructor(readonly suffix: Uint8Array) {}

  /** Makes room at the end of `buf` for the next read. */
  room(): void {
    if (this.end < this.buf.length) return;
    if (this.start > 0) {
      this.buf.copyWithin(0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    } else {
      const bigger = new Uint8Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
  }

  /** Answers every complete request in `buf` into `out`. */
  parse(): void {
    const buf = this.buf;
    const out = this.out;
    for (;;) {
      if (this.skip > 0) {
        const k = Math.min(this.skip, this.end - this.start);
        this.start += k;
        this.skip -= k;
        if (this.skip > 0) break;
      }
      const start = this.start;
      const end = this.end;
      // A plain loop over what was read: indexOf would search on past `end`, through whatever
      // the buffer held before (all of it when that is zeros: 64 KiB per read).
      let lf = start;
      while (lf < end && buf[lf] !== LF) lf++;
      if (lf === end) break;
      const lineEnd = lf > start && buf[lf - 1] === 13 ? lf - 1 : lf;
      if (buf[start] === 103 && buf[start + 3] === SPACE) { // "get <key>"
        out.put(VALUE);
        out.put(buf, start + 4, lineEnd);
        out.put(this.suffix);
      } else if (buf[start] === 115 && buf[start + 3] === SPACE) { // "set <key> f e <bytes>"
        this.skip = lastNumber(buf, start, lineEnd) + 2;
        out.put(STORED);
      } else {
        out.put(ERROR);
      }
      this.start = lf + 1;
    }
    if (this.start === this.end) this.start = this.end = 0;
  }
}

/** Writes the pending replies, waiting for the socket as needed. */
async function flush(conn: Transport, out: Out): Promise<void> {
  for (let off = 0; off < out.len;) off += await conn.write(out.buf.subarray(off, out.len));
  out.len = 0;
}

/**
 * The epoll engine as memg uses it: the poller hands input over in its round (no promise per
 * request), replies go out at the end of the round; only a full socket falls back to an
 * awaited write.
 */
async function serveEpoll(conn: EpollConn, c: Session): Promise<void> {
  for (;;) {
    const ended = await new Promise<boolean>((resolve) => {
      const roundEnd = {
        endRound: () => {
          const sent = conn.sendNow(c.out.buf, c.out.len);
          if (sent === c.out.len) {
            c.out.len = 0;
            return;
          }
          c.out.buf.copyWithin(0, sent, c.out.len);
          c.out.len -= sent;
          conn.disarm();
          resolve(false);
        },
      };
      conn.armInput({
        readInput: () => {
          c.room();
          return conn.readNow(c.buf, c.end, c.buf.length - c.end);
        },
        onInput: (n) => {
          if (n === 0) return true;
          if (n < 0) {
            resolve(true);
            return false;
          }
          c.end += n;
          c.parse();
          if (c.out.len > 0) conn.afterRound(roundEnd);
          return true;
        },
      });
    });
    if (ended) return;
    await flush(conn, c.out);
  }
}

async function serve(conn: Transport, suffix: Uint8Array): Promise<void> {
  conn.setNoDelay?.(true);
  const c = new Session(suffix);
  try {
    if (conn instanceof EpollConn) return await serveEpoll(conn, c);
    for (;;) {
      c.room();
      const n = await conn.read(c.buf.subarray(c.end));
      if (n === null) return;
      c.end += n;
      c.parse();
      await flush(conn, c.out);
    }
  } catch {
    // the client reset the connection
  } finally {
    try {
      conn.close();
    } catch {
      // closed already
    }
  }
}

/**
 * The bare loop: one blocking `epoll_wait` after another on the main thread, each ready socket
 * read until it is empty, answered, and sent to at once. Never returns.
 */
function serveBare(port: number, suffix: Uint8Array): never {
  const c = libc();
  if (c === null) throw new Error("the bare loop needs Linux's libc and --allow-ffi");
  const one = new Uint8Array([1, 0, 0, 0]);
  const lfd = c.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  c.setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, one, 4);
  const sa = encodeSockaddr(new Uint8Array([127, 0, 0, 1]), port);
  if (c.bind(lfd, sa, sa.length) < 0 || c.listen(lfd, 4096) < 0) {
    throw new Error(`listen on 127.0.0.1:${port}: errno ${errno(c)}`);
  }
  const ep = c.epoll_create1(0);
  const ctl = new Uint8Array(16);
  const ctlView = new DataView(ctl.buffer);
  const DATA = Deno.build.arch === "x86_64" ? 4 : 8; // struct epoll_event is packed on x86-64
  const SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
  const watch = (fd: number, events: number) => {
    ctlView.setUint32(0, events >>> 0, true);
    ctlView.setUint32(DATA, fd, true);
    c.epoll_ctl(ep, EPOLL_CTL_ADD, fd, ctl);
  };
  watch(lfd, EPOLLIN);
  const events = new Uint8Array(512 * SIZE);
  const view = new DataView(events.buffer);
  const addr = new Uint8Array(128);
  const addrLen = new Uint8Array(4);
  const sessions = new Map<number, Session>();
  console.log(`ceiling listening on tcp:127.0.0.1:${port} (bare)`);
  for (;;) {
    const n = c.epoll_wait(ep, events, 512, -1);
    for (let i = 0; i < n; i++) {
      const fd = view.getUint32(i * SIZE + DATA, true);
      if (fd === lfd) {
        for (;;) {
          new DataView(addrLen.buffer).setUint32(0, addr.length, true);
          const conn = c.accept4(lfd, addr, addrLen, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (conn < 0) break;
          c.setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, one, 4);
          sessions.set(conn, new Session(suffix));
          watch(conn, EPOLLIN | EPOLLOUT | EPOLLET);
        }
        continue;
      }
      const s = sessions.get(fd);
      if (s === undefined) continue;
      let open = true;
      for (;;) {
        s.room();
        const room = s.buf.length - s.end;
        const got = c.read(fd, s.buf.subarray(s.end), room);
        if (got > 0) {
          s.end += got;
          if (got < room) break; // drained: edge-triggered, the next input brings an event
          continue;
        }
        open = got < 0 && errno(c) === EAGAIN;
        break;
      }
      s.parse();
      if (s.out.len > 0) {
        const sent = c.send(fd, s.out.buf, s.out.len, MSG_NOSIGNAL);
        if (sent > 0) {
          s.out.buf.copyWithin(0, sent, s.out.len);
          s.out.len -= sent;
        }
      }
      if (!open) {
        sessions.delete(fd);
        c.close(fd); // (closing takes it out of the epoll set)
      }
    }
  }
}

if (import.meta.main) {
  const port = Number(Deno.args[0]);
  const valueSize = Number(Deno.args[1] ?? "100");
  const io = Deno.args[2] ?? "epoll";
  if (
    !Number.isInteger(port) || !Number.isInteger(valueSize) || valueSize < 0 ||
    (io !== "epoll" && io !== "deno" && io !== "bare")
  ) {
    console.error("usage: deno run -A bench/ceiling.ts <port> [value-size] [epoll|deno|bare]");
    Deno.exit(64);
  }
  // " 0 <size>\r\n<canned value>\r\nEND\r\n" follows the echoed key.
  const suffix = enc.encode(` 0 ${valueSize}\r\n${"x".repeat(valueSize)}\r\nEND\r\n`);
  if (io === "bare") serveBare(port, suffix);
  // The same TCP engine memg uses, so that the gap between the two is parsing and storage.
  const listener: Listener = (io === "epoll" ? listenEpoll("127.0.0.1", port, 1024) : null) ??
    Deno.listen({ hostname: "127.0.0.1", port });
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
  console.log(`ceiling listening on tcp:127.0.0.1:${port} (${io})`);
  for (;;) serve(await listener.accept(), suffix);
}
