/**
 * The contract every item store honours. The protocol layers (text, meta, binary) speak only
 * to this interface; `tests/store_conformance_test.ts` pins it down for every implementation.
 *
 * Items are addressed by an opaque integer handle (`ItemRef`) so that a lookup allocates
 * nothing. A handle is valid until the next call that may allocate, link or unlink an item
 * (`alloc`, `link`, `unlink`, `flush`, `sweep`): read what you need from it before then.
 * Keys and values are bytes, never decoded as text.
 *
 * Times are whole seconds on the store's clock (`Clock.now()`); an `exptime` given to the
 * store is already absolute (0 = never): protocol layers convert with `absoluteExptime`.
 *
 * @module
 */
import type { ReplyBuffer } from "../reply.ts";

/** A handle to an item inside a store; `NONE` (-1) means "no item". */
export type ItemRef = number;

/** The handle value meaning "no item". */
export const NONE: ItemRef = -1;

/** The most keys one `Store.warm` call takes. */
export const WARM_MAX = 32;

/**
 * Keys of one read that `Store.warm` hashed, in buffer order: `starts[i]`, `lens[i]` and
 * `hashes[i]` for i < `count`; those before `next` have been passed. Scratch of one `process`
 * call, valid while the buffer is unchanged.
 */
export class WarmedKeys {
  readonly starts: Int32Array = new Int32Array(WARM_MAX);
  readonly lens: Int32Array = new Int32Array(WARM_MAX);
  readonly hashes: Int32Array = new Int32Array(WARM_MAX);
  count = 0;
  next = 0;

  /** Skips the keys starting before `ks`; true if the next one starts at `ks`. */
  seek(ks: number): boolean {
    const starts = this.starts;
    let i = this.next;
    while (i < this.count && starts[i] < ks) i++;
    this.next = i;
    return i < this.count && starts[i] === ks;
  }
}

/** What `Store.getRun` counts and writes to: a cache's counters and a connection's replies. */
export interface GetRunSink {
  readonly counters: { cmd_get: number; get_hits: number; get_misses: number };
  readonly classCounters: { bump(counter: 0, cls: number): void };
  readonly out: ReplyBuffer;
}

/** How `link` places a freshly allocated item, as memcached's store commands do. */
export const Mode = {
  Set: 0,
  Add: 1,
  Replace: 2,
  Append: 3,
  Prepend: 4,
} as const;
/** One of the `Mode` values. */
export type Mode = typeof Mode[keyof typeof Mode];

/** What `link` did, as memcached's `store_item` reports it. */
export const StoreResult = {
  Stored: 0,
  NotStored: 1,
  Exists: 2,
  NotFound: 3,
  /** append/prepend needed a bigger item and none could be had (too large or out of memory) */
  NoMemory: 4,
  TooLarge: 5,
} as const;
/** One of the `StoreResult` values. */
export type StoreResult = typeof StoreResult[keyof typeof StoreResult];

/** Why `alloc` returned `NONE`. */
export const AllocFailure = {
  /** key + value exceed the item size limit (`-I`) */
  TooLarge: 1,
  /** memory is full and eviction is off (`-M`) or found nothing to evict */
  OutOfMemory: 2,
} as const;
/** One of the `AllocFailure` values. */
export type AllocFailure = typeof AllocFailure[keyof typeof AllocFailure];

/** A source of the current time in whole seconds; tests inject one they move by hand. */
export interface Clock {
  /** Whole seconds since the Unix epoch. */
  now(): number;
  /** Re-reads the time source, for clocks that cache it (the server calls it periodically). */
  tick?(): void;
}

/** The wall clock, in whole seconds, read on every call. */
export const systemClock: Clock = { now: () => Math.floor(Date.now() / 1000) };

/**
 * The wall clock read only when ticked, as memcached's `current_time` is advanced by a timer:
 * `now()` is a field load on the hot path. Behind the wall clock by at most the tick interval.
 */
export class TickingClock implements Clock {
  #now = Math.floor(Date.now() / 1000);

  now(): number {
    return this.#now;
  }

  tick(): void {
    this.#now = Math.floor(Date.now() / 1000);
  }
}

/** memcached's REALTIME_MAXDELTA: exptimes up to 30 days are relative, larger are absolute. */
export const REALTIME_MAXDELTA = 60 * 60 * 24 * 30;

/**
 * Converts a protocol exptime to an absolute time on `now`'s clock, exactly as memcached's
 * `realtime()`: 0 never expires, negative is already expired, up to 30 days is relative, larger
 * is an absolute Unix time. Already-expired results are returned as 1 (a time in the past).
 */
export function absoluteExptime(exptime: number, now: number): number {
  if (exptime === 0) return 0;
  if (exptime < 0) return 1;
  if (exptime > REALTIME_MAXDELTA) return exptime <= now ? 1 : exptime;
  return now + exptime;
}

/** memcached's item header with its CAS field: what every item costs besides key and value. */
export const ITEM_HEADER = 56;

/**
 * An item's size as memcached's `item_make_header` counts it for the `-I` limit: header, key
 * and its terminator, 4 bytes of client flags when they are not 0, value and its `\r\n`.
 */
export function itemTotal(keyLength: number, valueLength: number, flags: number): number {
  return ITEM_HEADER + keyLength + 1 + (flags !== 0 ? 4 : 0) + valueLength + 2;
}

/** Counters a store keeps about itself, named as in memcached's `stats`. */
export interface StoreStats {
  curr_items: number;
  total_items: number;
  /** bytes used by live items (key + value + header), as memcached's `bytes` */
  bytes: number;
  evictions: number;
  reclaimed: number;
  expired_unfetched: number;
  evicted_unfetched: number;
  get_expired: number;
  get_flushed: number;
}

/** A fresh set of store counters, all zero. */
export function newStoreStats(): StoreStats {
  return {
    curr_items: 0,
    total_items: 0,
    bytes: 0,
    evictions: 0,
    reclaimed: 0,
    expired_unfetched: 0,
    evicted_unfetched: 0,
    get_expired: 0,
    get_flushed: 0,
  };
}

/** The operations a cache store offers. All of them run to completion synchronously. */
export interface Store {
  /** The clock the store reads expiry against. */
  readonly clock: Clock;
  /** Live counters (read them; do not write). */
  readonly stats: StoreStats;
  /** The memory limit in bytes (`-m`). */
  readonly limitBytes: number;
  /** The largest item accepted (`-I`), measured by `itemTotal`. */
  readonly itemSizeMax: number;

  /**
   * Finds a live item. Expired and flushed items are unlinked, counted (`get_expired`,
   * `get_flushed`, `reclaimed`) and reported as `NONE`. Does not bump the LRU: see `bump`.
   */
  find(key: Uint8Array, off: number, len: number): ItemRef;

  /**
   * A hint that `find` of keys `buf[starts[i], starts[i] + lens[i])`, i < n, follows soon: loads
   * what those lookups will read first, all at once, so that their cache misses overlap instead
   * of coming one after another, and sets `hashes[i]` to the key's hash for `findHashed`.
   * Changes nothing in the store; the result only keeps the loads from being optimised away.
   */
  warm(
    buf: Uint8Array,
    starts: Int32Array,
    lens: Int32Array,
    hashes: Int32Array,
    n: number,
  ): number;

  /** `find`, given the hash `warm` set for this key (the bytes unchanged since). */
  findHashed(key: Uint8Array, off: number, len: number, hash: number): ItemRef;

  /**
   * Answers the text protocol's commonest requests in one loop: consecutive lines of exactly
   * `get <key>\r\n` (or `\n`) from `buf[from]`, a key of 1 to `keyMax` bytes above space, each
   * as `find`, `bump` and a `VALUE` reply or `END` would, counted as `get` counts them. Stops
   * before the first line it leaves to the general path: another command, an incomplete line,
   * or a key whose item it does not serve here (expired, flushed, large, due an LRU move),
   * and once `sink.out` holds `outLimit` bytes. Returns where it stopped; `from` when it
   * answered nothing. Uses and advances `warmed` for the keys it lists.
   */
  getRun(
    buf: Uint8Array,
    from: number,
    end: number,
    keyMax: number,
    warmed: WarmedKeys,
    sink: GetRunSink,
    outLimit: number,
  ): number;

  /**
   * Reserves an item of `valueLength` bytes, not yet visible to `find`. Fill its value with
   * `writeValue`, then `link` it or `release` it. May evict least recently used items to make
   * room. Returns `NONE` and sets `allocFailure` when it cannot: `TooLarge` when
   * `itemTotal(len, valueLength, flags)` exceeds `itemSizeMax`.
   */
  alloc(
    key: Uint8Array,
    off: number,
    len: number,
    valueLength: number,
    flags: number,
    exptime: number,
  ): ItemRef;
  /** Why the last failed `alloc` failed. */
  readonly allocFailure: AllocFailure;
  /** Copies `src[srcOff, srcOff + len)` into the value of `ref` at `valueOff`. */
  writeValue(ref: ItemRef, valueOff: number, src: Uint8Array, srcOff: number, len: number): void;
  /**
   * A view of an item's value from `valueOff`: as many bytes as lie contiguously there, at
   * most `maxLen`. Of an allocated, not yet linked item it is writable (reading a socket
   * straight into it saves a copy) and stays valid until the item is linked or released; of a
   * linked item it may only be read, at once (sending a value straight from the store).
   */
  valueView(ref: ItemRef, valueOff: number, maxLen: number): Uint8Array;
  /**
   * Links an allocated item as `mode` says, comparing `cas` first when it is not 0 (the `cas`
   * command: `NotFound` when no item, `Exists` when it differs). Append/prepend keep the old
   * item's flags and exptime. On success the item gets a new CAS; read it with `cas(ref)`
   * through the handle `linked` returns. Whatever the result, `ref` is consumed.
   */
  link(ref: ItemRef, mode: Mode, cas: number): StoreResult;
  /** The item that the last successful `link` made visible (for append/prepend, a new one). */
  readonly linked: ItemRef;
  /**
   * The live item the last `link` found under its key (NONE: none), whatever the result; gone
   * from the index once replaced, but its `slabClass` still answers until the next store call.
   */
  readonly previous: ItemRef;
  /** Frees an allocated item that will not be linked. */
  release(ref: ItemRef): void;
  /** Removes a live item. */
  unlink(ref: ItemRef): void;

  /** Marks a hit: moves the item towards the head of the LRU and sets its fetched bit and access time. */
  bump(ref: ItemRef): void;
  /** Sets the absolute exptime of a live item. */
  touch(ref: ItemRef, exptime: number): void;
  /** Gives a live item a new CAS value (after an in-place change) and returns it. */
  renewCas(ref: ItemRef): number;

  /** Client flags (u32). */
  flags(ref: ItemRef): number;
  /** The item's CAS value (≥ 1). */
  cas(ref: ItemRef): number;
  /** Absolute exptime (0 = never). */
  exptime(ref: ItemRef): number;
  /** The clock time of the last access (store or bump). */
  lastAccess(ref: ItemRef): number;
  /** Whether the item was fetched (bumped) since it was stored. */
  fetched(ref: ItemRef): boolean;
  /** Value length in bytes. */
  valueLength(ref: ItemRef): number;
  /** Copies the value into `dst` at `dstOff`; returns the number of bytes copied. */
  readValue(ref: ItemRef, dst: Uint8Array, dstOff: number): number;
  /** Key length in bytes. */
  keyLength(ref: ItemRef): number;
  /** Copies the key into `dst` at `dstOff`; returns the number of bytes copied. */
  readKey(ref: ItemRef, dst: Uint8Array, dstOff: number): number;
  /** The slab class id of the item (1-based; 0 for stores without classes). */
  slabClass(ref: ItemRef): number;
  /** Total bytes the item occupies (header + key + value). */
  itemSize(ref: ItemRef): number;

  /** Meta-protocol item bits: stale (invalidated by `md I`/`ms I`) and win-token-sent. */
  stale(ref: ItemRef): boolean;
  setStale(ref: ItemRef, stale: boolean): void;
  winSent(ref: ItemRef): boolean;
  setWinSent(ref: ItemRef, sent: boolean): void;

  /**
   * Invalidates items as memcached's `flush_all [delay]` does, `at` being the absolute time of
   * the delay (0 for none). Its "oldest live" second is `at - 1` (now - 1 without a delay):
   * once the clock reaches it, every item stored or touched up to and during that second is
   * gone. When that second is not in the future (no delay, or a delay of 1), the flush also
   * takes a CAS value, so the CAS of the next item stored is one higher than without it.
   */
  flush(at: number): void;
  /** Changes the memory limit at run time (`cache_memlimit`), evicting as needed to meet it. */
  setLimit(bytes: number): void;
  /**
   * Reclaims expired and flushed items for at most `budgetMs` milliseconds, resuming where the
   * previous call stopped. Returns the number of items reclaimed.
   */
  sweep(budgetMs: number): number;
  /**
   * Whether `sweep` has work left besides reclaiming (the slab store's hash index doubling, for
   * which gets wait on longer chains meanwhile): call it on every tick then, without backing off.
   */
  readonly sweepPending: boolean;
  /** Number of items visible to `find` (expired ones included until reclaimed). */
  readonly size: number;
  /**
   * Calls `visit` once for every live item (linked, neither expired nor flushed), least
   * recently used first (per slab class in the slab store), allocating nothing per item. While
   * scanning, `visit` may only read items (`readKey`, `readValue`, `flags`, `exptime`, `cas`,
   * …): it must not alloc, link, release, unlink, bump, touch, flush or sweep, so that every
   * handle stays valid and each item is visited exactly once. It may throw, ending the scan.
   */
  scan(visit: (ref: ItemRef) => void): void;
  /**
   * Links an allocated item as a `Set` would, but keeping the given `cas` (≥ 1) instead of
   * taking a new one: for loading a snapshot, so a client's `gets` unique survives a restart.
   * The CAS counter moves up to at least `cas`, so every CAS handed out later is higher. Meant
   * for a store not yet flushed: an item whose `cas` is at or below a flush's watermark counts
   * as flushed. `ref` is consumed and `linked` is set, as with `link`.
   */
  restore(ref: ItemRef, cas: number): void;
  /**
   * The rows of `stats items`, `stats slabs` or `stats sizes` (memcached's names, without the
   * `STAT ` prefix), or `null` when the group is unknown to this store.
   */
  groupStats(group: string): Array<[string, string | number]> | null;
  /** Rows of the general `stats` that only this store can give (memcached's names), or none. */
  extraStats(): Array<[string, number]>;
}
