/**
 * The command layer every protocol shares: memcached's operations (get, touch, store, delete,
 * incr/decr, flush) over a `Store`, with memcached's accounting. The text, meta and binary
 * codecs only translate bytes to these calls and results back to bytes.
 *
 * @module
 */
import type { Config } from "./config.ts";
import { parseU64 } from "./protocol/numbers.ts";
import { ClassCounter, ClassCounters, Counters } from "./stats.ts";
import {
  absoluteExptime,
  AllocFailure,
  type ItemRef,
  Mode,
  NONE,
  type Store,
  StoreResult,
} from "./store/store.ts";

/** The outcome of `arith`. */
export const Arith = {
  Ok: 0,
  NotFound: 1,
  NonNumeric: 2,
  NoMemory: 3,
  Exists: 4,
} as const;
/** One of the `Arith` values. */
export type Arith = typeof Arith[keyof typeof Arith];

const U64_MASK = (1n << 64n) - 1n;
const DIGITS_MAX = 20;

/** The store counters memcached's `stats reset` zeroes (item and byte counts are kept). */
export const RESETTABLE_STORE_STATS = [
  "total_items",
  "evictions",
  "reclaimed",
  "expired_unfetched",
  "evicted_unfetched",
  "get_expired",
  "get_flushed",
] as const;
/** One of `RESETTABLE_STORE_STATS`. */
export type ResettableStoreStat = typeof RESETTABLE_STORE_STATS[number];

/** Connection figures the server reports for `stats`. */
export interface ConnectionInfo {
  curr: number;
  structures: number;
  accepting: boolean;
  /** The engine serving TCP connections: "epoll" (memg's own) or "deno" (Deno's sockets). */
  io: "epoll" | "deno";
}

/** memcached's operations on one store, counted. */
export class Cache {
  readonly store: Store;
  readonly config: Config;
  readonly counters = new Counters();
  readonly classCounters = new ClassCounters();
  readonly startedAt: number;
  readonly connections: ConnectionInfo = {
    curr: 0,
    structures: 0,
    accepting: true,
    io: "deno",
  };
  /** Result of the last successful `arith`: the new value and the item's CAS. */
  arithValue = 0n;
  arithCas = 0;
  /** Scratch space for the numbers `arith` reads from items and writes back (grows). */
  #digits = new Uint8Array(DIGITS_MAX * 2);
  /** The store's resettable counters at the last `stats reset`. */
  readonly #storeBase = new Map<ResettableStoreStat, number>();

  constructor(store: Store, config: Config) {
    this.store = store;
    this.config = config;
    this.startedAt = store.clock.now();
  }

  /** `stats reset`: zeroes every counter memcached's does, the store's included. */
  resetStats(): void {
    this.counters.reset();
    this.classCounters.reset();
    for (const name of RESETTABLE_STORE_STATS) this.#storeBase.set(name, this.store.stats[name]);
  }

  /** A store counter as `stats` shows it: counted since the last `stats reset`. */
  storeCounter(name: ResettableStoreStat): number {
    return this.store.stats[name] - (this.#storeBase.get(name) ?? 0);
  }

  /** The store's clock, now. */
  now(): number {
    return this.store.clock.now();
  }

  /** A protocol exptime as the store's absolute time. */
  exptime(exptime: number): number {
    return absoluteExptime(exptime, this.now());
  }

  /** `get`: a live item bumped in the LRU, or `NONE`; counts cmd_get and hits/misses. */
  get(key: Uint8Array, off: number, len: number): ItemRef {
    return this.#counted(this.store.find(key, off, len));
  }

  /** `get` of a key whose hash `Store.warm` gave (the bytes unchanged since). */
  getHashed(key: Uint8Array, off: number, len: number, hash: number): ItemRef {
    return this.#counted(this.store.findHashed(key, off, len, hash));
  }

  /** `get`'s counting and LRU bump of what the store found. */
  #counted(ref: ItemRef): ItemRef {
    this.counters.cmd_get++;
    if (ref === NONE) {
      this.counters.get_misses++;
      return NONE;
    }
    this.counters.get_hits++;
    this.classCounters.bump(ClassCounter.get_hits, this.store.slabClass(ref));
    this.store.bump(ref);
    return ref;
  }

  /** `gat`/`touch` lookup: a live item with its exptime set to `exptime` (absolute), or NONE. */
  touch(key: Uint8Array, off: number, len: number, exptime: number): ItemRef {
    this.counters.cmd_touch++;
    const ref = this.store.find(key, off, len);
    if (ref === NONE) {
      this.counters.touch_misses++;
      return NONE;
    }
    this.counters.touch_hits++;
    this.classCounters.bump(ClassCounter.touch_hits, this.store.slabClass(ref));
    this.store.touch(ref, exptime);
    this.store.bump(ref);
    return ref;
  }

  /** `delete`: true when an item was removed. */
  delete(key: Uint8Array, off: number, len: number): boolean {
    const ref = this.store.find(key, off, len);
    if (ref === NONE) {
      this.counters.delete_misses++;
      return false;
    }
    this.classCounters.bump(ClassCounter.delete_hits, this.store.slabClass(ref));
    this.counters.delete_hits++;
    this.store.unlink(ref);
    return true;
  }

  /**
   * Reserves an item for a store command; `NONE` when it cannot be had (see
   * `store.allocFailure`, counted as store_too_large / store_no_memory). As memcached does, a
   * failed `set` also removes the old item so no stale value survives.
   */
  allocate(
    key: Uint8Array,
    off: number,
    len: number,
    flags: number,
    exptime: number,
    valueLength: number,
    mode: Mode,
  ): ItemRef {
    const ref = this.store.alloc(key, off, len, valueLength, flags, exptime);
    if (ref !== NONE) return ref;
    if (this.store.allocFailure === AllocFailure.TooLarge) this.counters.store_too_large++;
    else this.counters.store_no_memory++;
    if (mode === Mode.Set) {
      const old = this.store.find(key, off, len);
      if (old !== NONE) this.store.unlink(old);
    }
    return NONE;
  }

  /**
   * Links an allocated item (`link`), counting cmd_set and the CAS outcomes. As memcached, a
   * CAS given to append/prepend (meta `ms MA C…`) is compared but not counted as a cas command.
   */
  commit(ref: ItemRef, mode: Mode, cas: number): StoreResult {
    // memcached counts a set in the new item's class whatever becomes of it, a CAS outcome in
    // the class of the item compared with
    this.counters.cmd_set++;
    this.classCounters.bump(ClassCounter.cmd_set, this.store.slabClass(ref));
    const result = this.store.link(ref, mode, cas);
    if (mode === Mode.Append || mode === Mode.Prepend) cas = 0;
    if (cas !== 0) {
      const cls = this.store.slabClass(this.store.previous);
      if (result === StoreResult.Stored) {
        this.counters.cas_hits++;
        this.classCounters.bump(ClassCounter.cas_hits, cls);
      } else if (result === StoreResult.Exists) {
        this.counters.cas_badval++;
        this.classCounters.bump(ClassCounter.cas_badval, cls);
      } else if (result === StoreResult.NotFound) this.counters.cas_misses++;
    }
    return result;
  }

  /**
   * Frees an item whose data block ended in a bad trailer. memcached counts the set (in the
   * item's class) before it looks at the trailer.
   */
  discard(ref: ItemRef): void {
    this.counters.cmd_set++;
    this.classCounters.bump(ClassCounter.cmd_set, this.store.slabClass(ref));
    this.store.release(ref);
  }

  /**
   * `incr`/`decr` as memcached's `do_add_delta`: u64 arithmetic, incr wraps at 2^64, decr stops
   * at 0; the number is rewritten in place (space padded) when it fits, else in a new item.
   * With `cas` not 0 the item's CAS must match (`Exists`). On `Ok`, `arithValue` and
   * `arithCas` hold the result.
   */
  arith(
    key: Uint8Array,
    off: number,
    len: number,
    incr: boolean,
    delta: bigint,
    cas = 0,
  ): Arith {
    const store = this.store;
    const ref = store.find(key, off, len);
    if (ref === NONE) {
      if (incr) this.counters.incr_misses++;
      else this.counters.decr_misses++;
      return Arith.NotFound;
    }
    return this.arithOn(ref, incr, delta, cas);
  }

  /** `arith` on an item already found. */
  arithOn(ref: ItemRef, incr: boolean, delta: bigint, cas = 0): Arith {
    const store = this.store;
    const vlen = store.valueLength(ref);
    // memcached refuses empty values and chunked ones (larger than a slab chunk).
    if (vlen === 0 || store.itemSize(ref) > this.config.slabChunkMaxKb * 1024) {
      return Arith.NonNumeric;
    }
    if (cas !== 0 && store.cas(ref) !== cas) return Arith.Exists;
    if (this.#digits.length < vlen) this.#digits = new Uint8Array(Math.max(vlen, DIGITS_MAX * 2));
    const digits = this.#digits;
    store.readValue(ref, digits, 0);
    // memcached's safe_strtoull on the data, whose "\r\n" ends the number like white space.
    const current = parseU64(digits, 0, vlen);
    if (current === null) return Arith.NonNumeric;
    let value: bigint;
    if (incr) {
      value = (current + delta) & U64_MASK;
      this.counters.incr_hits++;
      this.classCounters.bump(ClassCounter.incr_hits, store.slabClass(ref));
    } else {
      value = delta > current ? 0n : current - delta;
      this.counters.decr_hits++;
      this.classCounters.bump(ClassCounter.decr_hits, store.slabClass(ref));
    }
    const text = value.toString();
    for (let i = 0; i < text.length; i++) digits[i] = text.charCodeAt(i);
    if (text.length <= vlen) {
      for (let i = text.length; i < vlen; i++) digits[i] = 32;
      store.writeValue(ref, 0, digits, 0, vlen);
      this.arithCas = store.renewCas(ref); // no bump: memcached leaves the fetched bit alone
    } else {
      const keyLen = store.keyLength(ref);
      const key = new Uint8Array(keyLen);
      store.readKey(ref, key, 0);
      const fresh = store.alloc(key, 0, keyLen, text.length, store.flags(ref), store.exptime(ref));
      if (fresh === NONE) return Arith.NoMemory;
      store.writeValue(fresh, 0, digits, 0, text.length);
      store.link(fresh, Mode.Set, 0);
      this.arithCas = store.cas(store.linked);
    }
    this.arithValue = value;
    return Arith.Ok;
  }

  /** `flush_all [delay]`; false when flushing is disabled (`-F`). Counts cmd_flush. */
  flushAll(delay: number): boolean {
    this.counters.cmd_flush++;
    if (!this.config.flushEnabled) return false;
    this.store.flush(delay > 0 ? absoluteExptime(delay, this.now()) : 0);
    return true;
  }
}
