/**
 * The few Linux C library calls memg makes through Deno's FFI: sockets, non-blocking reads and
 * writes and epoll for its own network engine (`./epoll.ts`), `madvise` (with `open` to read
 * the kernel's huge page setting) for large pages (`../store/large_pages.ts`), and `mlockall`
 * for `-k` (`../lock_memory.ts`). Loaded once, at
 * start-up, while the `ffi` permission is still granted; calling the loaded symbols needs no
 * permission later, so start-up revokes `ffi` like every other permission (no new library can
 * be loaded).
 *
 * Sizes are declared `u32`, not `usize`: a number passed where Deno's FFI expects a BigInt
 * deoptimises the calling code over and over. A 32-bit argument is zero-extended to the full
 * register on x86-64 and aarch64 (by V8's fast calls and by libffi), and no buffer memg passes
 * reaches 4 GiB.
 *
 * Memory safety rests on one rule: every buffer handed to C is a `Uint8Array` passed together
 * with its own length (or less), so C never writes outside memory JavaScript owns. `madvise`
 * takes an address instead, and is only ever given whole pages inside an `ArrayBuffer` memg
 * allocated and keeps.
 *
 * @module
 */

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  read: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  readv: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  /** The same call on Deno's blocking thread pool: waits without holding the event loop. */
  epoll_wait_async: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  memcpy: { parameters: ["buffer", "pointer", "u32"], result: "pointer" },
  /**
   * `memset(buf, 0, 0)` writes nothing and returns `buf`: the address of a buffer's bytes, for
   * an iovec. (`Deno.UnsafePointer.of` would do, but needs the `ffi` permission, which start-up
   * revokes; a call loaded before that keeps working.)
   */
  addressOf: { name: "memset", parameters: ["buffer", "i32", "u32"], result: "usize" },
  /** Asks for huge pages under a cache's pages (`-L`), or gives a released page's memory back. */
  madvise: { parameters: ["usize", "usize", "i32"], result: "i32" },
  /** For the kernel's huge page setting in sysfs, which Deno's read permission never covers. */
  open: { parameters: ["buffer", "i32"], result: "i32" },
  /** For `-k` (`../lock_memory.ts`). */
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  mlockall: { parameters: ["i32"], result: "i32" },
} as const;

/**
 * The loaded C library calls, typed as memg uses them: results are 32-bit (no buffer memg
 * passes reaches 2 GiB).
 */
export interface Libc {
  socket(domain: number, type: number, protocol: number): number;
  setsockopt(fd: number, level: number, name: number, value: Uint8Array, len: number): number;
  bind(fd: number, addr: Uint8Array, len: number): number;
  listen(fd: number, backlog: number): number;
  accept4(fd: number, addr: Uint8Array, len: Uint8Array, flags: number): number;
  getsockname(fd: number, addr: Uint8Array, len: Uint8Array): number;
  read(fd: number, buf: Uint8Array, len: number): number;
  readv(fd: number, iov: Uint8Array, count: number): number;
  send(fd: number, buf: Uint8Array, len: number, flags: number): number;
  sendmsg(fd: number, msg: Uint8Array, flags: number): number;
  shutdown(fd: number, how: number): number;
  close(fd: number): number;
  epoll_create1(flags: number): number;
  epoll_ctl(ep: number, op: number, fd: number, event: Uint8Array): number;
  epoll_wait(ep: number, events: Uint8Array, max: number, timeoutMs: number): number;
  epoll_wait_async(ep: number, events: Uint8Array, max: number, timeoutMs: number): Promise<number>;
  eventfd(initval: number, flags: number): number;
  write(fd: number, buf: Uint8Array, len: number): number;
  __errno_location(): Deno.PointerValue;
  memcpy(dst: Uint8Array, src: Deno.PointerValue, len: number): Deno.PointerValue;
  /** Call as `addressOf(buf, 0, 0)`. */
  addressOf(buf: Uint8Array, zero: 0, none: 0): bigint;
  madvise(addr: bigint, len: bigint, advice: number): number;
  /** `path` is NUL-terminated. */
  open(path: Uint8Array, flags: number): number;
  /** `limit` holds a `struct rlimit`: two 64-bit words. */
  getrlimit(resource: number, limit: Uint8Array): number;
  mlockall(flags: number): number;
}

export const O_RDONLY = 0;
export const RLIMIT_MEMLOCK = 8;
export const MCL_CURRENT = 1;
export const MCL_FUTURE = 2;
export const MCL_ONFAULT = 4;
export const O_CLOEXEC = 0o2000000;
export const MADV_DONTNEED = 4;
export const MADV_HUGEPAGE = 14;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const IPPROTO_TCP = 6;
export const TCP_NODELAY = 1;
export const SHUT_WR = 1;
export const MSG_NOSIGNAL = 0x4000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
export const EPOLLET = 1 << 31;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
export const EPOLL_CLOEXEC = 0o2000000;
export const EINTR = 4;
export const EAGAIN = 11;
export const EMFILE = 24;
export const ENFILE = 23;
export const ENOBUFS = 105;
export const ENOMEM = 12;
export const EADDRINUSE = 98;
export const EADDRNOTAVAIL = 99;
export const EACCES = 13;
export const EPERM = 1;
export const EPIPE = 32;
export const ECONNRESET = 104;

let loaded: Libc | null | undefined;
const errnoBuf = new Int32Array(1);
const errnoBytes = new Uint8Array(errnoBuf.buffer);
let errnoPtr: Deno.PointerValue = null;

/**
 * The C library, or null where it cannot be used: not Linux, no `ffi` permission, or no
 * `libc.so.6`. Loads it on the first call.
 */
export function libc(): Libc | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (Deno.build.os !== "linux") return null;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
    loaded = Deno.dlopen("libc.so.6", SYMBOLS).symbols as unknown as Libc;
    // Found now: looking it up later allocates, and whatever a collection then does could
    // overwrite the errno it is about to read.
    errnoPtr = loaded.__errno_location();
  } catch {
    loaded = null;
  }
  return loaded;
}

/**
 * The first `max` bytes of a file, read through libc (Deno asks for every permission to read
 * sysfs and procfs), or null if it cannot be read.
 */
export function readFileStart(c: Libc, path: string, max = 1024): string | null {
  const fd = c.open(new TextEncoder().encode(`${path}\0`), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return null;
  const buf = new Uint8Array(max);
  const n = c.read(fd, buf, buf.length);
  c.close(fd);
  return n < 0 ? null : new TextDecoder().decode(buf.subarray(0, n));
}

/** The calling thread's `errno`: read it right after the call that failed. */
export function errno(c: Libc): number {
  c.memcpy(errnoBytes, errnoPtr, 4);
  return errnoBuf[0];
}
