/**
 * memg's own TCP engine for Linux: non-blocking sockets and one edge-triggered epoll set,
 * driven through Deno's FFI (`./libc.ts`), in the way memcached's event loop works. Deno's own
 * sockets cost an op, a promise and a turn of Deno's event loop per read and per write; here a
 * single `epoll_wait` reports every ready socket at once, reads and writes are plain system
 * calls made on the spot, and a connection with data waiting never returns to the event loop
 * to get it. On this 2-core machine that lifts unpipelined traffic from about 0.7× to about
 * memcached's rate (README, Performance). Each round of the loop reads every ready socket, then
 * lets each connection handle its input, then sends the round's replies (`Poller.#serve`).
 *
 * The sockets look like Deno's (`read`/`write` resolve with byte counts, `close`, `closeWrite`,
 * `remoteAddr`), so the connection loop serves them and `Deno.Conn`s (TLS, unix sockets) alike.
 * When nothing is ready the loop waits in `epoll_wait` on Deno's blocking thread pool, so
 * timers, signals and Deno's own sockets run meanwhile; a busy loop gives the event loop a
 * turn every `TURN_MS` as well.
 *
 * @module
 */
import {
  AF_INET,
  AF_INET6,
  EACCES,
  EADDRINUSE,
  EADDRNOTAVAIL,
  EAGAIN,
  ECONNRESET,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EINTR,
  EMFILE,
  ENFILE,
  ENOBUFS,
  ENOMEM,
  EPERM,
  EPIPE,
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLLERR,
  EPOLLET,
  EPOLLHUP,
  EPOLLIN,
  EPOLLOUT,
  EPOLLRDHUP,
  errno,
  IPPROTO_TCP,
  type Libc,
  libc,
  MSG_NOSIGNAL,
  SHUT_WR,
  SO_REUSEADDR,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
  TCP_NODELAY,
} from "./libc.ts";
import { decodeSockaddr, encodeSockaddr, parseIp } from "./sockaddr.ts";

/** Events one `epoll_wait` returns at most. */
const MAX_EVENTS = 512;
/** `struct epoll_event` is packed on x86-64 only. */
const EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
const DATA_OFFSET = Deno.build.arch === "x86_64" ? 4 : 8;
/**
 * Busy time after which the loop lets Deno's event loop run (timers, signals, TLS sockets),
 * and the longest it then waits for input on the main thread: so the event loop waits for it
 * at most about twice this long.
 */
const TURN_MS = 5;
/** Microtask turns the loop gives the connections it handed input to, at most, per round. */
const SETTLE_TICKS = 64;
/** After running out of file descriptors, accepting is retried this much later. */
const ACCEPT_RETRY_MS = 10;
/** An eventfd increment. */
const ONE = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);
/** Parts one gathered send passes to `sendmsg` at most (the rest waits for the next send). */
const GATHER_MAX = 32;
/**
 * The iovecs and the `struct msghdr` of a gathered send (64-bit Linux layouts), shared: sends
 * run one at a time. The iovecs are larger than V8 keeps inside its heap, so they never move.
 */
const iov = new Uint8Array(GATHER_MAX * 16);
const iov64 = new BigUint64Array(iov.buffer);
const iov32 = new Uint32Array(iov.buffer);
const msghdr = new Uint8Array(56);
const msghdr64 = new BigUint64Array(msghdr.buffer);
const INTEREST = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
const READABLE = EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP;
const WRITABLE = EPOLLOUT | EPOLLHUP | EPOLLERR;

/** Something with a file descriptor in the epoll set. */
interface Watcher {
  onEvents(mask: number): void;
}

/** What `afterRound` runs at the end of the poller's round (a connection sending its replies). */
export interface RoundEnd {
  endRound(): void;
}

/** Turns a failed call's errno into the error Deno's own sockets would throw. */
function socketError(code: number, what: string): Error {
  const message = `${what}: os error ${code}`;
  switch (code) {
    case ECONNRESET:
      return new Deno.errors.ConnectionReset(message);
    case EPIPE:
      return new Deno.errors.BrokenPipe(message);
    case EADDRINUSE:
      return new Deno.errors.AddrInUse(message);
    case EADDRNOTAVAIL:
      return new Deno.errors.AddrNotAvailable(message);
    case EACCES:
    case EPERM:
      return new Deno.errors.PermissionDenied(message);
    default:
      return new Error(message);
  }
}

/**
 * A list refilled every round that keeps its backing store: emptying an array with
 * `length = 0` frees it, and the next round's first push allocates a new one (about 300 bytes
 * per round, most of what a request allocated at a light rate).
 */
class RoundList<T> {
  readonly items: (T | undefined)[] = [];
  count = 0;

  push(item: T): void {
    this.items[this.count++] = item;
  }

  /** Empties the list and drops its references. */
  clear(): void {
    this.items.fill(undefined, 0, this.count);
    this.count = 0;
  }
}

/**
 * The one epoll set of the process and the loop that waits on it. Each round: collect the
 * ready sockets, hand each connection waiting to read one read's worth of input (memcached's
 * round robin: a client sending without pause gets one read per round, like any other), then
 * let those connections answer (microtasks) before the next round.
 */
class Poller {
  readonly #c: Libc;
  readonly #ep: number;
  readonly #wake: number;
  readonly #events = new Uint8Array(MAX_EVENTS * EVENT_SIZE);
  readonly #view = new DataView(this.#events.buffer);
  /**
   * The watcher of each descriptor in the set, indexed by descriptor: one load per event,
   * where a Map's lookup touched a bucket and an entry, cold at a light rate.
   */
  readonly #watchers: (Watcher | undefined)[] = [];
  #watched = 0;
  readonly #ctl = new Uint8Array(16);
  readonly #ctlView = new DataView(this.#ctl.buffer);
  /** Connections waiting to read whose socket has input (or may have): served next round. */
  #ready = new RoundList<EpollConn>();
  #serving = new RoundList<EpollConn>();
  /** What `afterRound` asked to run once every connection of this round has had its read. */
  readonly #after = new RoundList<RoundEnd>();
  /** Connections handed input this round that have not yet come back for more. */
  inflight = 0;
  #loop: Promise<void> | null = null;
  /** The loop waits for events with no timeout: `schedule` must wake it. */
  #sleeping = false;

  constructor(c: Libc) {
    this.#c = c;
    this.#ep = c.epoll_create1(EPOLL_CLOEXEC);
    this.#wake = c.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (this.#ep < 0 || this.#wake < 0) throw socketError(errno(c), "epoll");
    this.#control(EPOLL_CTL_ADD, this.#wake, EPOLLIN | EPOLLET);
  }

  /** Adds `fd` to the set (edge-triggered, for input and output) and starts the loop. */
  add(fd: number, watcher: Watcher, events = INTEREST): void {
    if (this.#control(EPOLL_CTL_ADD, fd, events) < 0) {
      throw socketError(errno(this.#c), "epoll_ctl");
    }
    if (this.#watchers[fd] === undefined) this.#watched++;
    this.#watchers[fd] = watcher;
    this.#loop ??= this.#run();
  }

  /** Takes `fd` out of the set (call before closing it); the loop ends with the last one. */
  remove(fd: number): void {
    if (this.#watchers[fd] === undefined) return;
    this.#watchers[fd] = undefined;
    this.#watched--;
    this.#control(EPOLL_CTL_DEL, fd, 0);
    if (this.#watched === 0) this.#wakeUp();
  }

  /** Runs `r.endRound()` at the end of this round, after every ready connection's turn. */
  afterRound(r: RoundEnd): void {
    this.#after.push(r);
  }

  /** Queues a connection that waits to read and has input, for the next round. */
  schedule(conn: EpollConn): void {
    this.#ready.push(conn);
    if (this.#sleeping) this.#wakeUp();
  }

  /** Ends a wait of the loop for events (the eventfd becomes readable). */
  #wakeUp(): void {
    this.#sleeping = false;
    this.#c.write(this.#wake, ONE, 8);
  }

  /** Resolves once no descriptor is watched and the loop has ended (no wait left running). */
  async stopped(): Promise<void> {
    while (this.#loop !== null && this.#watched === 0) await this.#loop;
  }

  #control(op: number, fd: number, events: number): number {
    this.#ctlView.setUint32(0, events >>> 0, true);
    this.#ctlView.setUint32(DATA_OFFSET, fd, true);
    this.#ctlView.setUint32(DATA_OFFSET + 4, 0, true);
    return this.#c.epoll_ctl(this.#ep, op, fd, this.#ctl);
  }

  async #run(): Promise<void> {
    const c = this.#c;
    const ep = this.#ep;
    const events = this.#events;
    let turnStart = performance.now();
    let settled = true;
    let busy = false;
    try {
      while (this.#watched > 0) {
        const turnOver = performance.now() - turnStart >= TURN_MS;
        // Busy a moment ago and every connection has answered: the next request is likely
        // close. Waiting here for it (up to a turn's length) is cheaper than a trip through the
        // thread pool; a 1 ms wait cost a quarter more CPU at a light rate (README, The TCP
        // engine). Otherwise just look.
        const timeout = busy && settled && this.#ready.count === 0 ? TURN_MS : 0;
        let n: number = turnOver ? 0 : c.epoll_wait(ep, events, MAX_EVENTS, timeout);
        const wasBusy: boolean = busy;
        busy = n > 0;
        if (turnOver || (n === 0 && this.#ready.count === 0)) {
          // The turn is over (look, and let the event loop run timers, signals and Deno's own
          // sockets) or nothing is ready (wait): on the thread pool, the event loop runs on.
          const wait = turnOver || this.#ready.count > 0 ? 0 : -1;
          this.#sleeping = wait < 0;
          n = await c.epoll_wait_async(ep, events, MAX_EVENTS, wait);
          this.#sleeping = false;
          turnStart = performance.now();
          // A turn leaves the pace as it was; a request that ends a sleep starts a busy spell.
          busy = n > 0 || (turnOver && wasBusy);
        }
        this.#dispatch(n);
        this.#serve();
        for (let i = 0; i < SETTLE_TICKS && this.inflight > 0; i++) await null;
        settled = this.inflight === 0;
        this.inflight = 0;
      }
    } finally {
      this.#loop = null;
    }
  }

  #dispatch(n: number): void {
    const view = this.#view;
    for (let i = 0; i < n; i++) {
      const at = i * EVENT_SIZE;
      const fd = view.getUint32(at + DATA_OFFSET, true);
      if (fd === this.#wake) {
        this.#c.read(this.#wake, this.#ctl, 8);
        continue;
      }
      this.#watchers[fd]?.onEvents(view.getUint32(at, true));
    }
  }

  /**
   * A round for the connections queued by `schedule`: first every read, then every
   * connection's handling of its input, then what they left for the end of the round (their
   * replies). The kernel's read and send work then does not run between one connection's
   * parsing and the next one's.
   */
  #serve(): void {
    const serving = this.#ready;
    this.#ready = this.#serving;
    this.#serving = serving;
    const conns = serving.items;
    for (let i = 0; i < serving.count; i++) {
      try {
        conns[i]!.readAhead();
      } catch (e) {
        this.#failed(conns[i]!, e);
      }
    }
    for (let i = 0; i < serving.count; i++) {
      try {
        conns[i]!.serve();
      } catch (e) {
        this.#failed(conns[i]!, e);
      }
    }
    serving.clear();
    const after = this.#after;
    for (let i = 0; i < after.count; i++) {
      try {
        after.items[i]!.endRound();
      } catch (e) {
        console.error(`memg: internal error at the end of a round: ${e}`);
      }
    }
    after.clear();
  }

  /** A connection's failure is its own: close it, keep the loop for the others. */
  #failed(conn: EpollConn, e: unknown): void {
    console.error(`memg: closing a connection after an internal error: ${e}`);
    conn.abandon();
  }
}

let poller: Poller | null = null;

/** A pending read or write: its buffer and its promise's ends. */
interface Waiter<T> {
  p: Uint8Array;
  resolve(v: T): void;
  reject(e: Error): void;
}

/** How the poller serves a connection that waits for input (see `EpollConn.armInput`). */
export interface InputHandler {
  /**
   * Reads what has arrived, with `readNow`: the byte count, 0 if nothing has, -1 at the end.
   */
  readInput(): number;
  /** Handles what `readInput` returned: true to go on waiting, false once handed to async work. */
  onInput(got: number): boolean;
}

/** `EpollConn.#got` when this round has not read for the connection yet. */
const NOT_READ = -2;

/** A non-blocking TCP socket served by the poller, with `Deno.Conn`'s read/write contract. */
export class EpollConn implements Watcher {
  readonly remoteAddr: Deno.NetAddr;
  readonly localAddr: Deno.NetAddr;
  /** It waits on memg's own poller, which takes turns itself: the connection need not yield. */
  readonly polled = true;
  readonly #c: Libc;
  readonly #poller: Poller;
  readonly #fd: number;
  /** Input may be waiting (no read has come up short since the last edge). */
  #readable = true;
  /** Output may be sent (no send has come up short since the last edge). */
  #writable = true;
  /** The peer hung up or the socket failed: reads end with null or an error, not a wait. */
  #hungUp = false;
  #closed = false;
  /** Handed input by the poller this round and not back yet (counted in `inflight`). */
  #owed = false;
  #scheduled = false;
  #reading: Waiter<number | null> | null = null;
  #writing: Waiter<number> | null = null;
  /** Called in the poller's round while armed and input may be waiting (see `armInput`). */
  #handler: InputHandler | null = null;
  /** What `readAhead` read this round for the handler, or NOT_READ. */
  #got = NOT_READ;
  #armed = false;

  constructor(c: Libc, p: Poller, fd: number, local: Deno.NetAddr, remote: Deno.NetAddr) {
    this.#c = c;
    this.#poller = p;
    this.#fd = fd;
    this.localAddr = local;
    this.remoteAddr = remote;
  }

  /**
   * Reads into `p`: the byte count, or null at end of stream (as `Deno.Conn.read`). The read
   * itself happens in the poller's next round.
   */
  read(p: Uint8Array): Promise<number | null> {
    this.#back();
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("connection closed"));
    return new Promise((resolve, reject) => {
      this.#reading = { p, resolve, reject };
      if (this.#readable) this.#schedule();
    });
  }

  /**
   * Waits for input by having the poller call the handler in its rounds (synchronously, no
   * promise) instead of through `read`: `readInput` with every other ready connection's, then
   * `onInput` with what it read. `onInput` returns true to go on waiting this way, false when
   * it has handed over to asynchronous work (which ends by arming again, writing, or closing).
   */
  armInput(handler: InputHandler): void {
    this.#back();
    if (this.#closed) return;
    this.#handler = handler;
    this.#got = NOT_READ;
    this.#armed = true;
    if (this.#readable) this.#schedule();
  }

  /**
   * Stops calling the input handler: the connection has handed over to asynchronous work (as
   * when `onInput` returns false), which ends by arming again, writing, or closing.
   */
  disarm(): void {
    if (!this.#armed) return;
    this.#armed = false;
    this.#handler = null;
    if (this.#owed) return;
    this.#owed = true;
    this.#poller.inflight++;
  }

  /** Has the poller call `r.endRound()` at the end of its round (see `Poller.afterRound`). */
  afterRound(r: RoundEnd): void {
    this.#poller.afterRound(r);
  }

  /**
   * Reads what has arrived into `p[off, off + len)` at once: the byte count, 0 when nothing
   * has, -1 at the end of the stream or on an error (which a later `read` reports again).
   */
  readNow(p: Uint8Array, off: number, len: number): number {
    if (this.#closed) return -1;
    if (!this.#readable || len === 0) return 0;
    const r = this.#tryRead(off === 0 && len === p.length ? p : p.subarray(off, off + len));
    if (r === undefined) return 0;
    return typeof r === "number" ? r : -1;
  }

  /**
   * As `readNow`, into all of `first` and then `second[off, off + len)`, with one `readv`. Both
   * must be buffers of more than 64 bytes (see `sendGathered`).
   */
  readScattered(first: Uint8Array, second: Uint8Array, off: number, len: number): number {
    if (this.#closed) return -1;
    if (!this.#readable) return 0;
    const c = this.#c;
    iov64[0] = c.addressOf(first, 0, 0);
    iov32[2] = first.length;
    iov32[3] = 0;
    iov64[2] = c.addressOf(second, 0, 0) + BigInt(off);
    iov32[6] = len;
    iov32[7] = 0;
    const want = first.length + len;
    for (;;) {
      const n = c.readv(this.#fd, iov, 2);
      if (n > 0) {
        if (n < want && !this.#hungUp) this.#readable = false;
        return n;
      }
      if (n === 0) return -1;
      const code = errno(c);
      if (code === EINTR) continue;
      if (code === EAGAIN) this.#readable = false;
      return code === EAGAIN ? 0 : -1;
    }
  }

  /** Writes some of `p` now if the socket takes it: the byte count (as `Deno.Conn.write`). */
  write(p: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("connection closed"));
    if (this.#writable) {
      const r = this.#trySend(p);
      if (r !== undefined) return typeof r === "number" ? Promise.resolve(r) : Promise.reject(r);
    }
    this.#back();
    return new Promise((resolve, reject) => this.#writing = { p, resolve, reject });
  }

  /**
   * Sends what the socket takes of `p[0, len)` right now: the byte count (0 when it is full,
   * when a write is waiting, or on an error, which the next `write` reports).
   */
  sendNow(p: Uint8Array, len = p.length): number {
    if (this.#closed || !this.#writable || this.#writing !== null) return 0;
    // (C reads `len` bytes of `p`: never more than `p` holds.)
    const r = this.#trySend(p, Math.min(len, p.length));
    return typeof r === "number" ? r : 0;
  }

  /**
   * Sends what the socket takes of `parts[0, count)` right now, in order, with one `sendmsg`:
   * the byte count (0 as `sendNow`). Every part must view a buffer of more than 64 bytes (kept
   * outside V8's heap, so not moved while the addresses are taken).
   */
  sendGathered(parts: readonly Uint8Array[], count: number): number {
    if (this.#closed || !this.#writable || this.#writing !== null) return 0;
    const c = this.#c;
    const n = Math.min(count, GATHER_MAX);
    let len = 0;
    for (let i = 0; i < n; i++) {
      const part = parts[i];
      iov64[2 * i] = c.addressOf(part, 0, 0);
      iov32[4 * i + 2] = part.length;
      iov32[4 * i + 3] = 0;
      len += part.length;
    }
    if (len === 0) return 0;
    msghdr64[2] = c.addressOf(iov, 0, 0); // msg_iov; msg_name and msg_control stay null
    msghdr64[3] = BigInt(n); // msg_iovlen
    for (;;) {
      const sent = c.sendmsg(this.#fd, msghdr, MSG_NOSIGNAL);
      if (sent >= 0) {
        if (sent < len) this.#writable = false;
        return sent;
      }
      const code = errno(c);
      if (code === EINTR) continue;
      if (code === EAGAIN) this.#writable = false;
      return 0; // (an error: the next `write` reports it)
    }
  }

  /** Closes the socket if it is still open (after an internal error). */
  abandon(): void {
    if (!this.#closed) this.close();
  }

  /** Sends a FIN after what was written; reads go on. */
  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("connection closed"));
    this.#c.shutdown(this.#fd, SHUT_WR);
    return Promise.resolve();
  }

  /**
   * Closes the socket; a pending read ends with null, a pending write fails, and an armed
   * input handler is told of the end of the stream.
   */
  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("connection closed");
    this.#back();
    this.#closed = true;
    const handler = this.#armed ? this.#handler : null;
    this.#armed = false;
    this.#handler = null;
    this.#got = NOT_READ;
    this.#poller.remove(this.#fd);
    this.#c.close(this.#fd);
    const reading = this.#reading;
    const writing = this.#writing;
    this.#reading = this.#writing = null;
    reading?.resolve(null);
    writing?.reject(new Deno.errors.BadResource("connection closed"));
    handler?.onInput(-1); // whoever waits for input sees the end of the stream
  }

  onEvents(mask: number): void {
    if (mask & READABLE) {
      this.#readable = true;
      // A short read says nothing about an end of stream that came with the data: once the
      // peer has hung up (or the socket failed), every read is tried until it says so.
      if (mask & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) this.#hungUp = true;
      if (this.#reading !== null || this.#armed) this.#schedule();
    }
    if (mask & WRITABLE) {
      this.#writable = true;
      const w = this.#writing;
      if (w !== null) {
        const r = this.#trySend(w.p);
        if (r !== undefined) {
          this.#writing = null;
          if (typeof r === "number") w.resolve(r);
          else w.reject(r);
        }
      }
    }
  }

  /** The round's first pass: the armed handler's read. */
  readAhead(): void {
    if (this.#armed && !this.#closed) this.#got = this.#handler!.readInput();
  }

  /** The poller's turn for this connection: the handler's input, or one read for `read`. */
  serve(): void {
    this.#scheduled = false;
    if (this.#armed && !this.#closed) {
      this.#armed = false;
      const handler = this.#handler!;
      const got = this.#got === NOT_READ ? handler.readInput() : this.#got;
      this.#got = NOT_READ;
      if (handler.onInput(got)) {
        // still waiting: more may be there already (a full read), which gets the next round
        this.#armed = !this.#closed;
        if (this.#armed && this.#readable) this.#schedule();
      } else {
        this.#owed = true;
        this.#poller.inflight++;
      }
      return;
    }
    const w = this.#reading;
    if (w === null || this.#closed) return;
    const r = this.#tryRead(w.p);
    if (r === undefined) return; // nothing after all: the next edge brings it
    this.#reading = null;
    this.#owed = true;
    this.#poller.inflight++;
    if (typeof r === "object" && r !== null) w.reject(r);
    else w.resolve(r);
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#poller.schedule(this);
  }

  /** The connection is back from its turn (reading again, waiting to write, or closing). */
  #back(): void {
    if (!this.#owed) return;
    this.#owed = false;
    this.#poller.inflight--;
  }

  /** Bytes read, null at end of stream, an error, or undefined: nothing there yet. */
  #tryRead(p: Uint8Array): number | null | Error | undefined {
    if (p.length === 0) return 0;
    for (;;) {
      const n = this.#c.read(this.#fd, p, p.length);
      if (n > 0) {
        // A short read emptied the socket: new input raises a new edge.
        if (n < p.length && !this.#hungUp) this.#readable = false;
        return n;
      }
      if (n === 0) return null;
      const code = errno(this.#c);
      if (code === EINTR) continue;
      if (code === EAGAIN) {
        this.#readable = false;
        return undefined;
      }
      return socketError(code, "read");
    }
  }

  /** Bytes sent, an error, or undefined: the socket buffer is full. */
  #trySend(p: Uint8Array, len = p.length): number | Error | undefined {
    if (len === 0) return 0;
    for (;;) {
      const n = this.#c.send(this.#fd, p, len, MSG_NOSIGNAL);
      if (n >= 0) {
        if (n < len) this.#writable = false;
        return n;
      }
      const code = errno(this.#c);
      if (code === EINTR) continue;
      if (code === EAGAIN) {
        this.#writable = false;
        return undefined;
      }
      return socketError(code, "write");
    }
  }
}

/** A listening TCP socket served by the poller, with `Deno.Listener`'s accept/close contract. */
export class EpollListener implements Watcher {
  readonly addr: Deno.NetAddr;
  readonly #c: Libc;
  readonly #fd: number;
  readonly #peer = new Uint8Array(128);
  readonly #peerLen = new Uint32Array(1);
  readonly #one = new Uint8Array(new Int32Array([1]).buffer);
  #closed = false;
  #accepting: Omit<Waiter<EpollConn>, "p"> | null = null;
  #retry: ReturnType<typeof setTimeout> | undefined;

  constructor(c: Libc, fd: number, addr: Deno.NetAddr) {
    this.#c = c;
    this.#fd = fd;
    this.addr = addr;
  }

  /** The next connection (rejects once the listener is closed). */
  accept(): Promise<EpollConn> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("listener closed"));
    const conn = this.#tryAccept();
    if (conn !== undefined) return Promise.resolve(conn);
    return new Promise((resolve, reject) => this.#accepting = { resolve, reject });
  }

  close(): void {
    if (this.#closed) throw new Deno.errors.BadResource("listener closed");
    this.#closed = true;
    clearTimeout(this.#retry);
    poller?.remove(this.#fd);
    this.#c.close(this.#fd);
    const w = this.#accepting;
    this.#accepting = null;
    w?.reject(new Deno.errors.BadResource("listener closed"));
  }

  onEvents(): void {
    const w = this.#accepting;
    if (w === null) return;
    const conn = this.#tryAccept();
    if (conn === undefined) return;
    this.#accepting = null;
    w.resolve(conn);
  }

  /** A new connection, or undefined: none waiting (or no descriptor free: retried later). */
  #tryAccept(): EpollConn | undefined {
    const c = this.#c;
    for (;;) {
      this.#peerLen[0] = this.#peer.length;
      const fd = c.accept4(
        this.#fd,
        this.#peer,
        new Uint8Array(this.#peerLen.buffer),
        SOCK_NONBLOCK | SOCK_CLOEXEC,
      );
      if (fd >= 0) {
        c.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, this.#one, 4);
        const conn = new EpollConn(c, poller!, fd, this.addr, decodeSockaddr(this.#peer));
        poller!.add(fd, conn);
        return conn;
      }
      const code = errno(c);
      if (code === EAGAIN) return undefined;
      if (code === EMFILE || code === ENFILE || code === ENOBUFS || code === ENOMEM) {
        // out of descriptors or memory: the client waits in the backlog until we can take it
        this.#retry ??= setTimeout(() => {
          this.#retry = undefined;
          this.onEvents();
        }, ACCEPT_RETRY_MS);
        return undefined;
      }
      // ECONNABORTED and the like concern that one client only: take the next
    }
  }
}

/**
 * Opens a TCP listener on `hostname:port` served by memg's epoll engine, or returns null when
 * the engine cannot be used here (not Linux, no `ffi` permission, or `hostname` is not a
 * numeric address): the caller then uses `Deno.listen`. Throws as `Deno.listen` does when the
 * address cannot be bound.
 */
export function listenEpoll(hostname: string, port: number, backlog: number): EpollListener | null {
  const ip = parseIp(hostname);
  const c = libc();
  if (ip === null || c === null) return null;
  poller ??= new Poller(c);
  const family = ip.length === 4 ? AF_INET : AF_INET6;
  const fd = c.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw socketError(errno(c), "socket");
  const one = new Uint8Array(new Int32Array([1]).buffer);
  c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4);
  const sa = encodeSockaddr(ip, port);
  if (c.bind(fd, sa, sa.length) < 0 || c.listen(fd, backlog) < 0) {
    const code = errno(c);
    c.close(fd);
    throw socketError(code, `listen on ${hostname}:${port}`);
  }
  const bound = new Uint8Array(128);
  const len = new Uint32Array([bound.length]);
  c.getsockname(fd, bound, new Uint8Array(len.buffer));
  const listener = new EpollListener(c, fd, decodeSockaddr(bound));
  poller.add(fd, listener, EPOLLIN | EPOLLET);
  return listener;
}

/** Resolves once the engine has nothing left to watch and its wait has ended. */
export async function epollStopped(): Promise<void> {
  await poller?.stopped();
}
