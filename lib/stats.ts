/**
 * The server-wide counters behind `stats`, named exactly as memcached names them. Protocol
 * layers increment them; `stats reset` zeroes the resettable ones.
 *
 * @module
 */

/** Command and traffic counters (memcached's `thread_stats` summed over threads). */
export class Counters {
  cmd_get = 0;
  cmd_set = 0;
  cmd_flush = 0;
  cmd_touch = 0;
  cmd_meta = 0;
  get_hits = 0;
  get_misses = 0;
  delete_misses = 0;
  delete_hits = 0;
  incr_misses = 0;
  incr_hits = 0;
  decr_misses = 0;
  decr_hits = 0;
  cas_misses = 0;
  cas_hits = 0;
  cas_badval = 0;
  touch_hits = 0;
  touch_misses = 0;
  store_too_large = 0;
  store_no_memory = 0;
  auth_cmds = 0;
  auth_errors = 0;
  bytes_read = 0;
  bytes_written = 0;
  total_connections = 0;
  rejected_connections = 0;
  conn_yields = 0;

  /** Zeroes every counter (`stats reset`). */
  reset(): void {
    for (const k of Object.keys(this) as (keyof Counters)[]) {
      if (typeof this[k] === "number") (this as Record<string, unknown>)[k] = 0;
    }
  }
}

/** Per-slab-class hit counters, for `stats slabs` (memcached's `slab_stats`). */
export class ClassCounters {
  readonly get_hits: number[] = [];
  readonly cmd_set: number[] = [];
  readonly delete_hits: number[] = [];
  readonly incr_hits: number[] = [];
  readonly decr_hits: number[] = [];
  readonly cas_hits: number[] = [];
  readonly cas_badval: number[] = [];
  readonly touch_hits: number[] = [];

  /** Adds one to `counter` of class `cls`. */
  bump(counter: ClassCounter, cls: number): void {
    const a = this[counter];
    a[cls] = (a[cls] ?? 0) + 1;
  }

  /** Zeroes every counter. */
  reset(): void {
    for (const k of CLASS_COUNTERS) this[k].length = 0;
  }
}

/** The per-class counters, in the order memcached prints them. */
export const CLASS_COUNTERS = [
  "get_hits",
  "cmd_set",
  "delete_hits",
  "incr_hits",
  "decr_hits",
  "cas_hits",
  "cas_badval",
  "touch_hits",
] as const;
/** One of `CLASS_COUNTERS`. */
export type ClassCounter = typeof CLASS_COUNTERS[number];
