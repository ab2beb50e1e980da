/**
 * memcached's `-k` (`--lock-memory`) on Linux: the process's memory is locked in RAM with
 * `mlockall`, so that no page of it is paged out, neither to swap nor by a proactive reclaimer
 * (such as DAMON's `pageout` scheme, which on the VM of 2026-12-08 dropped cold pages of
 * Deno's own code that the server then had to read back from disk; README, What decides (4)).
 *
 * memcached locks with `MCL_CURRENT | MCL_FUTURE`, which also makes every later mapping
 * resident at once. memg adds `MCL_ONFAULT`: a page is locked when it is first touched, so the
 * address space V8 reserves but never uses costs no memory, and the resident size still grows
 * with the cache.
 *
 * @module
 */
import {
  errno,
  type Libc,
  libc,
  MCL_CURRENT,
  MCL_FUTURE,
  MCL_ONFAULT,
  readFileStart,
  RLIMIT_MEMLOCK,
} from "./net/libc.ts";

/** `RLIM_INFINITY`: no limit. */
const UNLIMITED = 0xffff_ffff_ffff_ffffn;
/** The capability that lifts the locked-memory limit. */
const CAP_IPC_LOCK = 14n;

/** Whether this process holds `CAP_IPC_LOCK` (its effective set in `/proc/self/status`). */
function canLockPastLimit(c: Libc): boolean {
  const status = readFileStart(c, "/proc/self/status", 8192);
  const m = status === null ? null : /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m !== null && ((BigInt(`0x${m[1]}`) >> CAP_IPC_LOCK) & 1n) === 1n;
}

/**
 * Locks the process's memory, present and future, as pages are touched. Returns why it could
 * not (nothing is locked then), or null once it is. It refuses under a finite locked-memory
 * limit (`ulimit -l`) without `CAP_IPC_LOCK`: allocations past the limit would fail later,
 * while serving, and the process would stop.
 */
export function lockMemory(): string | null {
  if (Deno.build.os !== "linux") return "memory locking is only supported on Linux";
  const c = libc();
  if (c === null) return "mlockall cannot be called (no ffi permission or no libc.so.6)";
  const limit = new BigUint64Array(2);
  if (c.getrlimit(RLIMIT_MEMLOCK, new Uint8Array(limit.buffer)) !== 0) {
    return `getrlimit failed: os error ${errno(c)}`;
  }
  if (limit[0] !== UNLIMITED && !canLockPastLimit(c)) {
    return `the locked-memory limit is ${limit[0] / 1024n} KiB (ulimit -l) and memg lacks ` +
      `CAP_IPC_LOCK; allocations past it would fail while serving`;
  }
  if (c.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) !== 0) {
    return `mlockall() failed: os error ${errno(c)}`;
  }
  return null;
}
