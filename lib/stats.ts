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

/** The index in `CLASS_COUNTERS` of each per-class counter: what `ClassCounters.bump` takes. */
export const ClassCounter = {
  get_hits: 0,
  cmd_set: 1,
  delete_hits: 2,
  incr_hits: 3,
  decr_hits: 4,
  cas_hits: 5,
  cas_badval: 6,
  touch_hits: 7,
} as const satisfies Record<typeof CLASS_COUNTERS[number], number>;
/** One of `ClassCounter`'s indices. */
export type ClassCounter = typeof ClassCounter[keyof typeof ClassCounter];

/** Slab class ids run 1..63 (memcached's MAX_NUMBER_OF_SLAB_CLASSES - 1). */
const CLASS_IDS = 64;

/**
 * Per-slab-class hit counters, for `stats slabs` (memcached's `slab_stats`). One typed array
 * indexed by counter and class, so that a bump on the hot path is one add, with no property
 * looked up by name.
 */
export class ClassCounters {
  readonly #counts = new Float64Array(CLASS_COUNTERS.length * CLASS_IDS);

  /** Adds one to `counter` of class `cls`. */
  bump(counter: ClassCounter, cls: number): void {
    this.#counts[counter * CLASS_IDS + cls]++;
  }

  /** The count of `counter` for class `cls`. */
  value(counter: ClassCounter, cls: number): number {
    return this.#counts[counter * CLASS_IDS + cls];
  }

  /** Zeroes every counter. */
  reset(): void {
    this.#counts.fill(0);
  }
}
