/**
 * The production store: items live off the JS heap in slab pages (see `slab_pages.ts`), found
 * through a chained hash index on typed arrays (`hash.ts`) and evicted from per-class LRUs
 * (`lru.ts`), as memcached's slabs.c/items.c do. The JS heap holds a fixed few dozen objects
 * whatever the number of items; lookups, allocation, linking and reads allocate nothing.
 *
 * Item layout: a 48-byte header (`slab_pages.ts`), the key, then the value. An item whose
 * header + key + value exceed the largest chunk (half a page by default) is "large": its first
 * chunk is of the largest class and holds the header, the key and the start of the value; the
 * rest of the value follows in a chain of continuation chunks (16-byte header each) of the
 * largest class, the last one of whichever class fits the remainder. Only the first chunk is in
 * the hash index and an LRU.
 *
 * Memory: at most max(2, floor(limit / pageSize)) pages, allocated lazily; unlike memcached, no
 * class gets a first page past the limit. When a class needs a chunk and no page may be added,
 * memcached's order applies: reclaim expired/flushed items from the class's LRU tail (5 tries),
 * else evict its tail. A class with nothing to evict (e.g. large items arriving in a cache filled
 * with small ones) takes a page from another class (memcached's slab_reassign, done on demand):
 * preferably one whose items fit in its class's other free chunks; else, when evicting, one of a
 * class with spare pages whose oldest items are the least recently used. Emptying a page evicts
 * the least recently used items of its class, as many as needed, then moves the page's remaining
 * items into the chunks so freed. So a page move costs a class its oldest items, never whatever
 * shared the page. When more classes are in use than there are pages, classes take pages from
 * each other in turn and keep few items: a limit of a few pages suits a few classes only.
 *
 * Hits: `bump` sets the fetched bit and the access time; it moves the item to the LRU head
 * only when its previous access is at least 60 s old (memcached's ITEM_UPDATE_INTERVAL),
 * otherwise it marks it active, and an active item reaching the tail gets a second chance
 * (moved to the head) instead of being evicted, as in memcached's segmented LRU.
 *
 * Flush: an immediate flush records the current CAS as a watermark (items with a CAS at or
 * below it are dead), O(1). A delayed flush to time `at` becomes that watermark at the first
 * operation whose clock reads ≥ `at`: every item linked before then has a smaller CAS, so items
 * whose update time is earlier than `at` are dead and items stored from `at` on survive.
 * (memcached's own code takes effect one second early, at `at - 1`; this follows its protocol
 * text and `Store.flush`.)
 *
 * @module
 */
import {
  AllocFailure,
  type Clock,
  type GetRunSink,
  type ItemRef,
  itemTotal,
  Mode,
  newStoreStats,
  NONE,
  type Store,
  StoreResult,
  type StoreStats,
  type WarmedKeys,
} from "./store.ts";
import {
  B_ACTIVE,
  B_CHUNK,
  B_FETCHED,
  B_FREE,
  B_LINKED,
  B_STALE,
  B_WIN,
  CHUNK_HEADER,
  F_CAS,
  ITEM_HEADER,
  KEY_MASK,
  MAX_MEMORY,
  SlabPages,
  W_CHAIN,
  W_CHEAD,
  W_CNEXT,
  W_EXPTIME,
  W_FLAGS,
  W_HASH,
  W_HNEXT,
  W_META,
  W_NBYTES,
  W_PREV,
  W_TIME,
} from "./slab_pages.ts";
import { copyBytes, ViewCache } from "./byte_copy.ts";
import { hashBytes, HashIndex } from "./hash.ts";
import { LargePages } from "./large_pages.ts";
import { Lru } from "./lru.ts";
import { bytes, DIRECT_SEND_MIN, writeValueHead } from "../reply.ts";

/** Options of a `SlabStore`; the first four are every store's. */
export interface SlabStoreOptions {
  /** Memory limit for item pages (`-m`), at most 16 GiB. */
  limitBytes: number;
  /** Largest key + value (`-I`): 1 KiB to 1 GiB, at most half of `limitBytes`. */
  itemSizeMax: number;
  /** Evict least recently used items when full; false = `-M` (fail instead). */
  evict: boolean;
  clock: Clock;
  /** Chunk size factor between classes (`-f`), default 1.25. */
  growthFactor?: number;
  /** Smallest chunk in bytes, default 96 (memcached's 48-byte header + `-n 48`). */
  minChunk?: number;
  /** Page size, a power of two, default 1 MiB. */
  pageSize?: number;
  /** Largest chunk (`-o slab_chunk_max`): divides the page, default half of it. */
  chunkMax?: number;
  /** Pages and hash table on transparent huge pages where available (`-L`), default false. */
  largePages?: boolean;
}

/** memcached's ITEM_UPDATE_INTERVAL: a hit moves an item to the LRU head at most this often. */
const UPDATE_INTERVAL = 60;
/** LRU tail items looked at per eviction attempt (memcached's lru_pull_tail tries 5). */
const TAIL_TRIES = 5;
/**
 * Active tail items given a second chance per eviction at most. Each chance consumes a hit's
 * active bit, so this is O(1) amortized; the cap bounds a single call.
 */
const SECOND_CHANCES = 1000;
/** Old hash buckets moved per link while the index doubles. */
const MIGRATE_PER_LINK = 16;
/**
 * Old hash buckets `sweep` moves between looks at the clock while the index doubles: each
 * bucket's chain is a cache miss or two, so 4,096 at once took 1-1.5 ms whatever the budget.
 */
const MIGRATE_STEP = 64;
/** `stats sizes` bucket width. */
const SIZE_BUCKET = 32;
const U32_MAX = 0xffffffff;
const EMPTY_WORDS: Int32Array = new Int32Array(0);
/** `getRun`'s reply to a miss. */
const END = bytes("END\r\n");

// Per-class counters, `classStats[c * NSTAT + S_*]`.
const S_EVICTED = 0;
const S_EVICTED_NONZERO = 1;
const S_EVICTED_TIME = 2;
const S_OUTOFMEMORY = 3;
const S_RECLAIMED = 4;
const S_EXPIRED_UNFETCHED = 5;
const S_EVICTED_UNFETCHED = 6;
const S_CRAWLER_RECLAIMED = 7;
const S_CRAWLER_CHECKED = 8;
const S_DIRECT_RECLAIMS = 9;
const S_MEM_REQUESTED = 10;
const NSTAT = 11;

/**
 * A memcached-style slab store. Guarantees: item pages never exceed
 * max(2, floor(limitBytes / pageSize)) (a shrink blocked by items being filled finishes when
 * they are linked or released); allocated-but-unlinked items never move or get evicted; linked
 * items may move to another chunk during `alloc`, `link`, `release` and `setLimit` (their refs
 * change, as the `Store` contract allows); the hot path allocates no JS objects except a
 * `DataView` when a copy's read or reply buffer is not the previous copy's, and a `subarray`
 * view for copies over 192 bytes (see `copyBytes`).
 */
export class SlabStore implements Store {
  readonly clock: Clock;
  readonly stats: StoreStats = newStoreStats();
  readonly itemSizeMax: number;

  private limit: number;
  private failure: AllocFailure = AllocFailure.TooLarge;
  private linkedRef: ItemRef = NONE;
  private previousRef: ItemRef = NONE;
  private readonly evict: boolean;
  private readonly mem: SlabPages;
  private readonly lru: Lru;
  private readonly index: HashIndex;
  /** Views of the arrays values and keys are copied from and to (read and reply buffers). */
  private readonly inView = new ViewCache();
  private readonly outView = new ViewCache();
  private readonly classStats: Float64Array;
  private readonly sizes: Float64Array;
  private readonly maxKey: number;
  /** Scratch for `victimPage`: per class, its page with the fewest items. */
  private readonly fewest: Int32Array;
  private casCounter = 0;
  private flushCas = 0;
  private seekChunk = 0;
  private seekStart = 0;
  private seekCap = 0;
  private seekPos = 0;
  private flushAt = 0;
  private pagesMoved = 0;
  private sweepPage = 0;
  private sweepChunk = 0;

  constructor(opts: SlabStoreOptions) {
    checkLimit(opts.limitBytes);
    const max = opts.itemSizeMax;
    if (!Number.isInteger(max) || max < 1024 || max > 2 ** 30) {
      throw new RangeError(`item size max ${max} is not in [1 KiB, 1 GiB]`);
    }
    if (max > opts.limitBytes / 2) {
      throw new RangeError("item size max must be at most half of the memory limit");
    }
    this.clock = opts.clock;
    this.limit = opts.limitBytes;
    this.itemSizeMax = max;
    this.evict = opts.evict;
    const pageSize = opts.pageSize ?? 1 << 20;
    const large = opts.largePages ? LargePages.open(pageSize) : null;
    this.mem = new SlabPages(
      {
        pageSize,
        chunkMax: opts.chunkMax ?? pageSize / 2,
        minChunk: opts.minChunk ?? 96,
        growthFactor: opts.growthFactor ?? 1.25,
      },
      pagesFor(opts.limitBytes, pageSize),
      large,
    );
    const classes = this.mem.largest + 1;
    this.lru = new Lru(this.mem, classes);
    this.index = new HashIndex(this.mem, large);
    this.classStats = new Float64Array(classes * NSTAT);
    this.sizes = new Float64Array(this.mem.chunkMax / SIZE_BUCKET + 1);
    this.maxKey = Math.min(KEY_MASK, this.mem.chunkMax - ITEM_HEADER);
    this.fewest = new Int32Array(classes);
  }

  get limitBytes(): number {
    return this.limit;
  }

  get allocFailure(): AllocFailure {
    return this.failure;
  }

  get linked(): ItemRef {
    return this.linkedRef;
  }

  get previous(): ItemRef {
    return this.previousRef;
  }

  get size(): number {
    return this.stats.curr_items;
  }

  get sweepPending(): boolean {
    return this.index.expanding;
  }

  warm(
    buf: Uint8Array,
    starts: Int32Array,
    lens: Int32Array,
    hashes: Int32Array,
    n: number,
  ): number {
    for (let i = 0; i < n; i++) hashes[i] = hashBytes(buf, starts[i], lens[i]);
    return this.index.warm(hashes, n);
  }

  getRun(
    buf: Uint8Array,
    from: number,
    end: number,
    keyMax: number,
    warmed: WarmedKeys,
    sink: GetRunSink,
    outLimit: number,
  ): number {
    const index = this.index;
    // a doubling index or a pending flush_all: the general path knows those
    if (index.expanding || this.flushAt !== 0) return from;
    // The whole of `find`, `bump` and the reply, over the store's arrays loaded once for the
    // run: this loop answers most requests a cache gets. Its chain walk is `HashIndex.find`'s
    // and its checks `lookup`'s and `touchLru`'s, written out here so that nothing is looked up
    // through `this` per get; tests/get_run_test.ts holds it to the general path.
    const now = this.clock.now();
    const flushCas = this.flushCas;
    const { shift, mask, i32, u8, dv, f64, pageClass } = this.mem;
    const table = index.buckets;
    const buckets = index.bucketMask;
    const { counters, classCounters, out } = sink;
    let i = from;
    while (out.pos < outLimit) {
      if (i + 4 > end || buf[i] !== 103 || buf[i + 1] !== 101 || buf[i + 2] !== 116) break;
      if (buf[i + 3] !== 32) break;
      const ks = i + 4;
      const isWarmed = warmed.seek(ks);
      let k = ks;
      if (isWarmed) k += warmed.lens[warmed.next];
      else {
        const limit = Math.min(end, ks + keyMax + 1);
        while (k < limit && buf[k] > 32) k++;
        if (k === ks || k - ks > keyMax || k >= end) break;
      }
      const kl = k - ks;
      const lf = buf[k] === 13 ? k + 1 : k;
      if (lf >= end || buf[lf] !== 10) break;
      const h = isWarmed ? warmed.hashes[warmed.next] : hashBytes(buf, ks, kl);
      let ref = table[h & buckets] - 1;
      let words = EMPTY_WORDS;
      let w = 0;
      while (ref !== NONE) {
        words = i32[ref >>> shift];
        w = (ref & mask) << 1;
        if (words[w + W_HASH] === h && (words[w + W_META] & KEY_MASK) === kl) {
          const page = u8[ref >>> shift];
          const d = ((ref & mask) << 3) + ITEM_HEADER - ks;
          let j = ks;
          while (j < k && page[d + j] === buf[j]) j++;
          if (j === k) break;
        }
        ref = words[w + W_HNEXT];
      }
      const nbytes = ref === NONE ? 0 : words[w + W_NBYTES];
      if (ref !== NONE) {
        const exptime = words[w + W_EXPTIME] >>> 0;
        if (
          (exptime !== 0 && exptime <= now) ||
          f64[ref >>> shift][(ref & mask) + F_CAS] <= flushCas ||
          words[w + W_CHAIN] !== NONE || nbytes >= DIRECT_SEND_MIN ||
          now - (words[w + W_TIME] >>> 0) >= UPDATE_INTERVAL
        ) break;
      }
      // answered here from now on
      i = lf + 1;
      if (isWarmed) warmed.next++;
      counters.cmd_get++;
      if (ref === NONE) {
        counters.get_misses++;
        out.put(END);
        continue;
      }
      counters.get_hits++;
      const p = ref >>> shift;
      classCounters.bump(0, pageClass[p]);
      // `bump`: fetched, and within UPDATE_INTERVAL of its last move, marked active
      words[w + W_META] |= B_FETCHED | B_ACTIVE;
      words[w + W_TIME] = now;
      out.reserve(kl + 37 + nbytes);
      const o = out.buf;
      let pos = writeValueHead(o, out.pos, buf, ks, kl, words[w + W_FLAGS] >>> 0, nbytes);
      o[pos] = 13;
      o[pos + 1] = 10;
      pos += 2;
      const valueAt = ((ref & mask) << 3) + ITEM_HEADER + kl;
      copyBytes(o, this.outView.of(o), pos, u8[p], dv[p], valueAt, nbytes);
      pos += nbytes;
      // the data block's end and the reply's `END`, under the one bounds check above
      o[pos] = 13;
      o[pos + 1] = 10;
      o[pos + 2] = 69; // E
      o[pos + 3] = 78; // N
      o[pos + 4] = 68; // D
      o[pos + 5] = 13;
      o[pos + 6] = 10;
      out.pos = pos + 7;
    }
    return i;
  }

  find(key: Uint8Array, off: number, len: number): ItemRef {
    return this.lookup(key, off, len, hashBytes(key, off, len), this.tick());
  }

  findHashed(key: Uint8Array, off: number, len: number, hash: number): ItemRef {
    return this.lookup(key, off, len, hash, this.tick());
  }

  alloc(
    key: Uint8Array,
    off: number,
    len: number,
    valueLength: number,
    flags: number,
    exptime: number,
  ): ItemRef {
    if (itemTotal(len, valueLength, flags) > this.itemSizeMax || len > this.maxKey) {
      this.failure = AllocFailure.TooLarge;
      return NONE;
    }
    return this.allocItem(key, off, len, valueLength, flags, exptime, this.tick());
  }

  writeValue(ref: ItemRef, valueOff: number, src: Uint8Array, srcOff: number, len: number): void {
    if (len <= 0) return;
    const mem = this.mem;
    this.seek(ref, valueOff);
    let chunk = this.seekChunk;
    let start = this.seekStart;
    let cap = this.seekCap;
    let pos = this.seekPos;
    for (;;) {
      const n = Math.min(len, cap - pos);
      const p = mem.page(chunk);
      copyBytes(mem.u8[p], mem.dv[p], start + pos, src, this.inView.of(src), srcOff, n);
      len -= n;
      if (len === 0) return;
      srcOff += n;
      pos = 0;
      chunk = mem.word(chunk, chunk === ref ? W_CHAIN : W_CNEXT);
      start = mem.offset(chunk) + CHUNK_HEADER;
      cap = mem.chunkMax - CHUNK_HEADER;
    }
  }

  valueView(ref: ItemRef, valueOff: number, maxLen: number): Uint8Array {
    this.seek(ref, valueOff);
    const from = this.seekStart + this.seekPos;
    const n = Math.min(maxLen, this.seekCap - this.seekPos);
    return this.mem.u8[this.mem.page(this.seekChunk)].subarray(from, from + n);
  }

  /**
   * Finds where value byte `valueOff` of `ref` lies: in `seekChunk` (the item or a chained
   * chunk) at `seekStart + seekPos`, that chunk holding value bytes up to `seekStart + seekCap`.
   * Results go to fields so that the hot path allocates nothing.
   */
  private seek(ref: ItemRef, valueOff: number): void {
    const mem = this.mem;
    const nkey = mem.word(ref, W_META) & KEY_MASK;
    const headCap = mem.chunkMax - ITEM_HEADER - nkey;
    let chunk = ref;
    let start = mem.offset(ref) + ITEM_HEADER + nkey;
    let cap = headCap;
    let pos = valueOff;
    if (pos >= headCap) {
      pos -= headCap;
      cap = mem.chunkMax - CHUNK_HEADER;
      chunk = mem.word(ref, W_CHAIN);
      for (; pos >= cap; pos -= cap) chunk = mem.word(chunk, W_CNEXT);
      start = mem.offset(chunk) + CHUNK_HEADER;
    }
    this.seekChunk = chunk;
    this.seekStart = start;
    this.seekCap = cap;
    this.seekPos = pos;
  }

  link(ref: ItemRef, mode: Mode, cas: number): StoreResult {
    const mem = this.mem;
    const now = this.tick();
    // A shrink blocked by reserved chunks finishes here, while `ref` is still reserved.
    if (mem.pagesInUse > mem.maxPages) this.shrink(now);
    const key = mem.u8[mem.page(ref)];
    const keyOff = mem.offset(ref) + ITEM_HEADER;
    const nkey = mem.word(ref, W_META) & KEY_MASK;
    const old = this.lookup(key, keyOff, nkey, mem.word(ref, W_HASH), now);
    this.previousRef = old;
    if (cas !== 0) {
      if (old === NONE) return this.reject(ref, StoreResult.NotFound);
      if (mem.cas(old) !== cas) return this.reject(ref, StoreResult.Exists);
    }
    if (old === NONE) {
      if (mode !== Mode.Set && mode !== Mode.Add) return this.reject(ref, StoreResult.NotStored);
    } else if (mode === Mode.Add) {
      this.touchLru(old, now);
      return this.reject(ref, StoreResult.NotStored);
    } else if (mode === Mode.Append || mode === Mode.Prepend) {
      return this.concat(ref, old, mode === Mode.Append, now);
    }
    this.publish(ref, old, now);
    return StoreResult.Stored;
  }

  release(ref: ItemRef): void {
    this.freeChunks(ref, true);
    if (this.mem.pagesInUse > this.mem.maxPages) this.shrink(this.clock.now());
  }

  unlink(ref: ItemRef): void {
    if ((this.mem.word(ref, W_META) & B_LINKED) !== 0) this.unlinkItem(ref);
  }

  bump(ref: ItemRef): void {
    const mem = this.mem;
    mem.setWord(ref, W_META, mem.word(ref, W_META) | B_FETCHED);
    this.touchLru(ref, this.clock.now());
  }

  touch(ref: ItemRef, exptime: number): void {
    this.mem.setWord(ref, W_EXPTIME, u32Time(exptime));
  }

  renewCas(ref: ItemRef): number {
    const cas = ++this.casCounter;
    this.mem.setCas(ref, cas);
    return cas;
  }

  flags(ref: ItemRef): number {
    return this.mem.word(ref, W_FLAGS) >>> 0;
  }

  cas(ref: ItemRef): number {
    return this.mem.cas(ref);
  }

  exptime(ref: ItemRef): number {
    return this.mem.word(ref, W_EXPTIME) >>> 0;
  }

  lastAccess(ref: ItemRef): number {
    return this.mem.word(ref, W_TIME) >>> 0;
  }

  fetched(ref: ItemRef): boolean {
    return (this.mem.word(ref, W_META) & B_FETCHED) !== 0;
  }

  valueLength(ref: ItemRef): number {
    return this.mem.word(ref, W_NBYTES);
  }

  readValue(ref: ItemRef, dst: Uint8Array, dstOff: number): number {
    const mem = this.mem;
    const nbytes = mem.word(ref, W_NBYTES);
    const nkey = mem.word(ref, W_META) & KEY_MASK;
    let start = mem.offset(ref) + ITEM_HEADER + nkey;
    let n = Math.min(nbytes, mem.chunkMax - ITEM_HEADER - nkey);
    let chunk = ref;
    let next = mem.word(ref, W_CHAIN);
    for (let done = 0;;) {
      const p = mem.page(chunk);
      copyBytes(dst, this.outView.of(dst), dstOff + done, mem.u8[p], mem.dv[p], start, n);
      done += n;
      if (done === nbytes) return nbytes;
      chunk = next;
      next = mem.word(chunk, W_CNEXT);
      start = mem.offset(chunk) + CHUNK_HEADER;
      n = Math.min(nbytes - done, mem.chunkMax - CHUNK_HEADER);
    }
  }

  keyLength(ref: ItemRef): number {
    return this.mem.word(ref, W_META) & KEY_MASK;
  }

  readKey(ref: ItemRef, dst: Uint8Array, dstOff: number): number {
    const mem = this.mem;
    const nkey = mem.word(ref, W_META) & KEY_MASK;
    const p = mem.page(ref);
    copyBytes(
      dst,
      this.outView.of(dst),
      dstOff,
      mem.u8[p],
      mem.dv[p],
      mem.offset(ref) + ITEM_HEADER,
      nkey,
    );
    return nkey;
  }

  slabClass(ref: ItemRef): number {
    return this.mem.pageClass[this.mem.page(ref)];
  }

  itemSize(ref: ItemRef): number {
    const mem = this.mem;
    return this.sizeOf(mem.word(ref, W_META) & KEY_MASK, mem.word(ref, W_NBYTES));
  }

  stale(ref: ItemRef): boolean {
    return (this.mem.word(ref, W_META) & B_STALE) !== 0;
  }

  setStale(ref: ItemRef, stale: boolean): void {
    this.setBit(ref, B_STALE, stale);
  }

  winSent(ref: ItemRef): boolean {
    return (this.mem.word(ref, W_META) & B_WIN) !== 0;
  }

  setWinSent(ref: ItemRef, sent: boolean): void {
    this.setBit(ref, B_WIN, sent);
  }

  flush(at: number): void {
    const now = this.tick();
    const oldestLive = at === 0 ? now - 1 : at - 1;
    if (oldestLive <= now) this.flushCas = this.casCounter++;
    this.flushAt = oldestLive >= now ? oldestLive : 0;
  }

  setLimit(bytes: number): void {
    checkLimit(bytes);
    this.limit = bytes;
    this.mem.setMaxPages(pagesFor(bytes, this.mem.pageSize));
    this.shrink(this.tick());
  }

  sweep(budgetMs: number): number {
    if (!(budgetMs > 0)) return 0;
    const start = performance.now();
    const now = this.tick();
    const mem = this.mem;
    const index = this.index;
    if (index.expanding) {
      index.migrate(MIGRATE_STEP); // one step whatever the budget, so that a doubling ends
      while (index.expanding && performance.now() - start < budgetMs) index.migrate(MIGRATE_STEP);
      if (performance.now() - start >= budgetMs) return 0;
    }
    let chunks = 0;
    for (let c = 1; c <= mem.largest; c++) chunks += mem.classPages[c] * mem.perPage[c];
    let p = this.sweepPage;
    let i = this.sweepChunk;
    let reclaimed = 0;
    for (let seen = 0; seen < chunks;) {
      if (p >= mem.pageIds) {
        p = 0;
        i = 0;
      }
      const c = mem.pageClass[p];
      if (i >= mem.perPage[c]) {
        p++;
        i = 0;
        continue;
      }
      const ref = mem.chunkRef(p, i++);
      if ((mem.word(ref, W_META) & B_LINKED) !== 0) {
        this.classStats[c * NSTAT + S_CRAWLER_CHECKED]++;
        if (this.dead(ref, now)) {
          this.classStats[c * NSTAT + S_CRAWLER_RECLAIMED]++;
          this.reclaim(ref);
          reclaimed++;
        }
      }
      if ((++seen & 255) === 0 && performance.now() - start >= budgetMs) break;
    }
    this.sweepPage = p;
    this.sweepChunk = i;
    return reclaimed;
  }

  scan(visit: (ref: ItemRef) => void): void {
    const now = this.tick();
    const mem = this.mem;
    const lru = this.lru;
    for (let c = 1; c <= mem.largest; c++) {
      for (let ref = lru.tail[c]; ref !== NONE; ref = mem.word(ref, W_PREV)) {
        if (!this.dead(ref, now)) visit(ref);
      }
    }
  }

  restore(ref: ItemRef, cas: number): void {
    const mem = this.mem;
    const now = this.tick();
    if (mem.pagesInUse > mem.maxPages) this.shrink(now);
    const key = mem.u8[mem.page(ref)];
    const nkey = mem.word(ref, W_META) & KEY_MASK;
    const old = this.lookup(key, mem.offset(ref) + ITEM_HEADER, nkey, mem.word(ref, W_HASH), now);
    const counter = this.casCounter;
    this.publish(ref, old, now);
    mem.setCas(ref, cas);
    this.casCounter = Math.max(counter, cas);
  }

  groupStats(group: string): Array<[string, string | number]> | null {
    switch (group) {
      case "items":
        return this.itemRows();
      case "slabs":
        return this.slabRows();
      case "sizes":
        return this.sizeRows();
      default:
        return null;
    }
  }

  /** `hash_power_level`, `hash_bytes`, `hash_is_expanding`, `slabs_moved`. */
  extraStats(): Array<[string, number]> {
    return [
      ["hash_power_level", this.index.power],
      ["hash_bytes", this.index.bytes],
      ["hash_is_expanding", this.index.expanding ? 1 : 0],
      ["slabs_moved", this.pagesMoved],
    ];
  }

  /**
   * Reads the clock. From the flush's oldest-live second on, everything stored so far is below
   * the CAS watermark; during that second the watermark follows every store (memcached flushes
   * items whose time is that second), and after it the flush is done.
   */
  private tick(): number {
    const now = this.clock.now();
    if (this.flushAt !== 0 && now >= this.flushAt) {
      this.flushCas = this.casCounter;
      if (now > this.flushAt) this.flushAt = 0;
    }
    return now;
  }

  private lookup(key: Uint8Array, off: number, len: number, h: number, now: number): ItemRef {
    const ref = this.index.find(key, off, len, h);
    if (ref === NONE) return NONE;
    if (this.mem.cas(ref) <= this.flushCas) {
      this.stats.get_flushed++;
    } else {
      const exptime = this.mem.word(ref, W_EXPTIME) >>> 0;
      if (exptime === 0 || exptime > now) return ref;
      this.stats.get_expired++;
    }
    this.reclaim(ref);
    return NONE;
  }

  private dead(ref: ItemRef, now: number): boolean {
    const exptime = this.mem.word(ref, W_EXPTIME) >>> 0;
    return (exptime !== 0 && exptime <= now) || this.mem.cas(ref) <= this.flushCas;
  }

  private allocItem(
    key: Uint8Array,
    off: number,
    len: number,
    nbytes: number,
    flags: number,
    exptime: number,
    now: number,
  ): ItemRef {
    const mem = this.mem;
    const max = mem.chunkMax;
    const total = ITEM_HEADER + len + nbytes;
    const ref = this.allocChunk(total <= max ? mem.classFor(total) : mem.largest, now);
    if (ref === NONE) return NONE;
    mem.setWord(ref, W_META, len);
    mem.setWord(ref, W_NBYTES, nbytes);
    mem.setWord(ref, W_FLAGS, flags);
    mem.setWord(ref, W_TIME, now);
    mem.setWord(ref, W_EXPTIME, u32Time(exptime));
    mem.setWord(ref, W_HASH, hashBytes(key, off, len));
    mem.setWord(ref, W_CHAIN, NONE);
    mem.setCas(ref, 0);
    const p = mem.page(ref);
    copyBytes(
      mem.u8[p],
      mem.dv[p],
      mem.offset(ref) + ITEM_HEADER,
      key,
      this.inView.of(key),
      off,
      len,
    );
    let last = ref;
    for (let rem = total - max; rem > 0; rem -= max - CHUNK_HEADER) {
      const take = Math.min(rem, max - CHUNK_HEADER);
      const chunk = this.allocChunk(mem.classFor(take + CHUNK_HEADER), now);
      if (chunk === NONE) {
        this.freeChunks(ref, true);
        return NONE;
      }
      mem.setWord(chunk, W_META, B_CHUNK);
      mem.setWord(chunk, W_CHEAD, ref);
      mem.setWord(chunk, W_CNEXT, NONE);
      mem.setWord(last, last === ref ? W_CHAIN : W_CNEXT, chunk);
      last = chunk;
    }
    return ref;
  }

  /** A chunk of class `c`, reserved; may add a page, reclaim, evict or move a page. */
  private allocChunk(c: number, now: number): number {
    const mem = this.mem;
    for (;;) {
      const ref = mem.take(c);
      if (ref !== NONE) return ref;
      if (mem.addPage(c) || this.pullTail(c, now) || this.movePage(c, now)) continue;
      this.classStats[c * NSTAT + S_OUTOFMEMORY]++;
      this.failure = AllocFailure.OutOfMemory;
      return NONE;
    }
  }

  /**
   * memcached's lru_pull_tail: reclaims dead items among the last few of class `c`'s LRU, else
   * (when evicting) evicts the least recently used item, active ones first moved to the head.
   * True when a chunk of `c` was freed.
   */
  private pullTail(c: number, now: number): boolean {
    const mem = this.mem;
    const lru = this.lru;
    this.classStats[c * NSTAT + S_DIRECT_RECLAIMS]++;
    let removed = false;
    let tries = TAIL_TRIES;
    let chances = SECOND_CHANCES;
    // Each step reclaims, moves to the head or evicts the tail, so the next is the new tail.
    for (let ref = lru.tail[c]; ref !== NONE && tries > 0; ref = lru.tail[c]) {
      const meta = mem.word(ref, W_META);
      if (this.dead(ref, now)) {
        this.reclaim(ref);
        removed = true;
        tries--;
      } else if (removed || !this.evict) {
        break;
      } else if ((meta & B_ACTIVE) !== 0 && chances-- > 0) {
        mem.setWord(ref, W_META, meta & ~B_ACTIVE);
        lru.toHead(c, ref);
      } else {
        this.evictItem(ref, now);
        return true;
      }
    }
    return removed;
  }

  /** Gives class `c` a page taken from another class (memcached's slab_reassign). */
  private movePage(c: number, now: number): boolean {
    const p = this.victimPage(c, this.evict);
    if (p < 0) return false;
    this.emptyPage(p, now);
    this.mem.reassign(p, c);
    this.pagesMoved++;
    return true;
  }

  /**
   * A page of a class other than `exclude` to empty, never one holding reserved chunks: the page
   * with the fewest items among those whose items fit in their class's other free chunks (no
   * eviction needed); else, when `evict`, the page with the fewest items of the class whose
   * newest evicted item would be the least recently used, classes with more than one page first
   * (a class keeps its last page while others have spare ones). -1 when none.
   */
  private victimPage(exclude: number, evict: boolean): number {
    const mem = this.mem;
    const fewest = this.fewest.fill(NONE);
    let best = NONE;
    for (let p = 0; p < mem.pageIds; p++) {
      const c = mem.pageClass[p];
      if (c === 0 || c === exclude || mem.pageReserved[p] !== 0) continue;
      const used = mem.pageUsed[p];
      if (fewest[c] === NONE || used < mem.pageUsed[fewest[c]]) fewest[c] = p;
      const freeElsewhere = mem.freeCount[c] - (mem.perPage[c] - used);
      if (used <= freeElsewhere && (best === NONE || used < mem.pageUsed[best])) best = p;
    }
    if (best !== NONE || !evict) return best;
    let bestSpare = false;
    let bestTime = Infinity;
    let bestCas = Infinity;
    for (let c = 1; c <= mem.largest; c++) {
      const p = fewest[c];
      if (p === NONE) continue;
      const items = this.lru.count[c];
      // A class without LRU items holds only continuation chunks: take it last.
      if (items === 0) {
        if (best === NONE) best = p;
        continue;
      }
      // Emptying any page of the class evicts its `perPage - freeCount` oldest items. The newest
      // of them: the head when that is all of them, else (roughly) the tail.
      const evicted = mem.perPage[c] - mem.freeCount[c];
      const ref = evicted >= items ? this.lru.head[c] : this.lru.tail[c];
      const spare = mem.classPages[c] > 1;
      const time = mem.word(ref, W_TIME) >>> 0;
      const cas = mem.cas(ref);
      if (
        best === NONE || (spare && !bestSpare) ||
        (spare === bestSpare && (time < bestTime || (time === bestTime && cas < bestCas)))
      ) {
        best = p;
        bestSpare = spare;
        bestTime = time;
        bestCas = cas;
      }
    }
    return best;
  }

  /**
   * Empties page `p` (no reserved chunks): evicts its class's least recently used items until the
   * page's items fit in the class's other free chunks, then moves them there. So a page move
   * costs the class its oldest items, not whatever shared the page.
   */
  private emptyPage(p: number, now: number): void {
    const mem = this.mem;
    const c = mem.pageClass[p];
    const n = mem.perPage[c];
    for (;;) {
      const used = mem.pageUsed[p];
      if (used <= mem.freeCount[c] - (n - used)) break;
      let victim = this.lru.tail[c];
      // Only continuation chunks of items headed elsewhere left: evict one of those items.
      for (let i = 0; victim === NONE; i++) {
        const ref = mem.chunkRef(p, i);
        const meta = mem.word(ref, W_META);
        if ((meta & B_FREE) === 0) victim = (meta & B_CHUNK) !== 0 ? mem.word(ref, W_CHEAD) : ref;
      }
      if (this.dead(victim, now)) this.reclaim(victim);
      else this.evictItem(victim, now);
    }
    mem.detachFree(p);
    for (let i = 0; i < n && mem.pageUsed[p] > 0; i++) {
      const ref = mem.chunkRef(p, i);
      if ((mem.word(ref, W_META) & B_FREE) === 0) this.moveChunk(ref, c);
    }
  }

  /** Copies chunk `src` of class `c` into a free chunk of `c` and repoints everything at it. */
  private moveChunk(src: number, c: number): void {
    const mem = this.mem;
    const dst = mem.take(c);
    mem.reserve(dst, -1);
    const dp = mem.page(dst);
    const sp = mem.page(src);
    copyBytes(
      mem.u8[dp],
      mem.dv[dp],
      mem.offset(dst),
      mem.u8[sp],
      mem.dv[sp],
      mem.offset(src),
      mem.chunkSize[c],
    );
    if ((mem.word(dst, W_META) & B_CHUNK) !== 0) {
      const head = mem.word(dst, W_CHEAD);
      let prev = head;
      let at = W_CHAIN;
      while (mem.word(prev, at) !== src) {
        prev = mem.word(prev, at);
        at = W_CNEXT;
      }
      mem.setWord(prev, at, dst);
    } else {
      this.index.moved(src, dst, mem.word(dst, W_HASH));
      this.lru.moved(c, dst);
      for (let ch = mem.word(dst, W_CHAIN); ch !== NONE; ch = mem.word(ch, W_CNEXT)) {
        mem.setWord(ch, W_CHEAD, dst);
      }
    }
    mem.vacate(src);
  }

  /** Releases pages, evicting their items, until within the page limit. */
  private shrink(now: number): void {
    const mem = this.mem;
    while (mem.pagesInUse > mem.maxPages) {
      const p = this.victimPage(0, true);
      if (p < 0) return;
      this.emptyPage(p, now);
      mem.release(p);
    }
  }

  private concat(ref: ItemRef, old: ItemRef, append: boolean, now: number): StoreResult {
    const mem = this.mem;
    const nkey = mem.word(ref, W_META) & KEY_MASK;
    const addLen = mem.word(ref, W_NBYTES);
    const oldLen = mem.word(old, W_NBYTES);
    if (itemTotal(nkey, oldLen + addLen, mem.word(old, W_FLAGS)) > this.itemSizeMax) {
      return this.reject(ref, StoreResult.TooLarge);
    }
    this.pin(old, true);
    const joined = this.allocItem(
      mem.u8[mem.page(ref)],
      mem.offset(ref) + ITEM_HEADER,
      nkey,
      oldLen + addLen,
      mem.word(old, W_FLAGS),
      mem.word(old, W_EXPTIME) >>> 0,
      now,
    );
    this.pin(old, false);
    if (joined === NONE) return this.reject(ref, StoreResult.NoMemory);
    this.copyValue(append ? old : ref, joined, 0);
    this.copyValue(append ? ref : old, joined, append ? oldLen : addLen);
    this.release(ref);
    this.publish(joined, old, now);
    return StoreResult.Stored;
  }

  /** Shields a linked item from eviction and page moves while another item is allocated. */
  private pin(ref: ItemRef, on: boolean): void {
    const c = this.slabClass(ref);
    if (on) this.lru.remove(c, ref);
    this.reserveChunks(ref, on ? 1 : -1);
    if (!on) this.lru.push(c, ref);
  }

  private copyValue(src: ItemRef, dst: ItemRef, dstOff: number): void {
    const mem = this.mem;
    const nbytes = mem.word(src, W_NBYTES);
    const nkey = mem.word(src, W_META) & KEY_MASK;
    let start = mem.offset(src) + ITEM_HEADER + nkey;
    let n = Math.min(nbytes, mem.chunkMax - ITEM_HEADER - nkey);
    let chunk = src;
    let next = mem.word(src, W_CHAIN);
    for (let done = 0;;) {
      this.writeValue(dst, dstOff + done, mem.u8[mem.page(chunk)], start, n);
      done += n;
      if (done === nbytes) return;
      chunk = next;
      next = mem.word(chunk, W_CNEXT);
      start = mem.offset(chunk) + CHUNK_HEADER;
      n = Math.min(nbytes - done, mem.chunkMax - CHUNK_HEADER);
    }
  }

  private publish(ref: ItemRef, old: ItemRef, now: number): void {
    const mem = this.mem;
    // a replaced item's place in its hash chain goes to the new one: one walk of the chain
    if (old !== NONE) this.unlinkItem(old, ref);
    else this.index.insert(ref, mem.word(ref, W_HASH));
    const c = this.slabClass(ref);
    mem.setWord(ref, W_META, mem.word(ref, W_META) | B_LINKED);
    mem.setWord(ref, W_TIME, now);
    mem.setCas(ref, ++this.casCounter);
    this.reserveChunks(ref, -1);
    this.lru.push(c, ref);
    const size = this.itemSize(ref);
    const stats = this.stats;
    stats.curr_items++;
    stats.total_items++;
    stats.bytes += size;
    this.classStats[c * NSTAT + S_MEM_REQUESTED] += size;
    this.countSize(size, 1);
    this.linkedRef = ref;
    this.index.maybeGrow(stats.curr_items);
    if (this.index.expanding) this.index.migrate(MIGRATE_PER_LINK);
  }

  /** Takes a linked item out of the index (or puts `replacement` in its place) and frees it. */
  private unlinkItem(ref: ItemRef, replacement: ItemRef = NONE): void {
    const mem = this.mem;
    const c = this.slabClass(ref);
    const size = this.itemSize(ref);
    if (replacement === NONE) this.index.remove(ref, mem.word(ref, W_HASH));
    else {
      mem.setWord(replacement, W_HNEXT, mem.word(ref, W_HNEXT));
      this.index.moved(ref, replacement, mem.word(ref, W_HASH));
    }
    this.lru.remove(c, ref);
    this.stats.curr_items--;
    this.stats.bytes -= size;
    this.classStats[c * NSTAT + S_MEM_REQUESTED] -= size;
    this.countSize(size, -1);
    this.freeChunks(ref, false);
  }

  /** Unlinks a dead item, counted as memcached counts reclaimed memory. */
  private reclaim(ref: ItemRef): void {
    const base = this.slabClass(ref) * NSTAT;
    this.stats.reclaimed++;
    this.classStats[base + S_RECLAIMED]++;
    if ((this.mem.word(ref, W_META) & B_FETCHED) === 0) {
      this.stats.expired_unfetched++;
      this.classStats[base + S_EXPIRED_UNFETCHED]++;
    }
    this.unlinkItem(ref);
  }

  private evictItem(ref: ItemRef, now: number): void {
    const mem = this.mem;
    const base = this.slabClass(ref) * NSTAT;
    const cs = this.classStats;
    this.stats.evictions++;
    cs[base + S_EVICTED]++;
    if (mem.word(ref, W_EXPTIME) !== 0) cs[base + S_EVICTED_NONZERO]++;
    cs[base + S_EVICTED_TIME] = now - (mem.word(ref, W_TIME) >>> 0);
    if ((mem.word(ref, W_META) & B_FETCHED) === 0) {
      this.stats.evicted_unfetched++;
      cs[base + S_EVICTED_UNFETCHED]++;
    }
    this.unlinkItem(ref);
  }

  private freeChunks(ref: ItemRef, reserved: boolean): void {
    const mem = this.mem;
    let chunk = mem.word(ref, W_CHAIN);
    mem.give(ref, reserved);
    while (chunk !== NONE) {
      const next = mem.word(chunk, W_CNEXT);
      mem.give(chunk, reserved);
      chunk = next;
    }
  }

  private reserveChunks(ref: ItemRef, delta: number): void {
    const mem = this.mem;
    mem.reserve(ref, delta);
    for (let chunk = mem.word(ref, W_CHAIN); chunk !== NONE; chunk = mem.word(chunk, W_CNEXT)) {
      mem.reserve(chunk, delta);
    }
  }

  /** memcached's do_item_update: to the LRU head at most every 60 s, else marked active. */
  private touchLru(ref: ItemRef, now: number): void {
    const mem = this.mem;
    const meta = mem.word(ref, W_META);
    if ((meta & B_LINKED) === 0) return;
    if (now - (mem.word(ref, W_TIME) >>> 0) >= UPDATE_INTERVAL) {
      mem.setWord(ref, W_META, meta & ~B_ACTIVE);
      this.lru.toHead(this.slabClass(ref), ref);
    } else {
      mem.setWord(ref, W_META, meta | B_ACTIVE);
    }
    mem.setWord(ref, W_TIME, now);
  }

  private reject(ref: ItemRef, result: StoreResult): StoreResult {
    this.release(ref);
    return result;
  }

  private setBit(ref: ItemRef, bit: number, on: boolean): void {
    const meta = this.mem.word(ref, W_META);
    this.mem.setWord(ref, W_META, on ? meta | bit : meta & ~bit);
  }

  /** Bytes an item takes: header, key, value and the headers of its continuation chunks. */
  private sizeOf(nkey: number, nbytes: number): number {
    const max = this.mem.chunkMax;
    const total = ITEM_HEADER + nkey + nbytes;
    if (total <= max) return total;
    return total + CHUNK_HEADER * Math.ceil((total - max) / (max - CHUNK_HEADER));
  }

  /** memcached's size histogram: 32-byte buckets, items above the largest chunk not counted. */
  private countSize(size: number, delta: number): void {
    const bucket = Math.ceil(size / SIZE_BUCKET);
    if (bucket < this.sizes.length) this.sizes[bucket] += delta;
  }

  private itemRows(): Array<[string, string | number]> {
    const rows: Array<[string, string | number]> = [];
    const now = this.clock.now();
    const mem = this.mem;
    const cs = this.classStats;
    for (let c = 1; c <= mem.largest; c++) {
      const number = this.lru.count[c];
      if (number === 0) continue;
      const b = c * NSTAT;
      const p = `items:${c}:`;
      rows.push(
        [p + "number", number],
        [p + "age", now - (mem.word(this.lru.tail[c], W_TIME) >>> 0)],
        [p + "mem_requested", cs[b + S_MEM_REQUESTED]],
        [p + "evicted", cs[b + S_EVICTED]],
        [p + "evicted_nonzero", cs[b + S_EVICTED_NONZERO]],
        [p + "evicted_time", cs[b + S_EVICTED_TIME]],
        [p + "outofmemory", cs[b + S_OUTOFMEMORY]],
        [p + "reclaimed", cs[b + S_RECLAIMED]],
        [p + "expired_unfetched", cs[b + S_EXPIRED_UNFETCHED]],
        [p + "evicted_unfetched", cs[b + S_EVICTED_UNFETCHED]],
        [p + "crawler_reclaimed", cs[b + S_CRAWLER_RECLAIMED]],
        [p + "crawler_items_checked", cs[b + S_CRAWLER_CHECKED]],
        [p + "direct_reclaims", cs[b + S_DIRECT_RECLAIMS]],
      );
    }
    return rows;
  }

  private slabRows(): Array<[string, string | number]> {
    const rows: Array<[string, string | number]> = [];
    const mem = this.mem;
    let active = 0;
    for (let c = 1; c <= mem.largest; c++) {
      const pages = mem.classPages[c];
      if (pages === 0) continue;
      active++;
      const total = pages * mem.perPage[c];
      rows.push(
        [`${c}:chunk_size`, mem.chunkSize[c]],
        [`${c}:chunks_per_page`, mem.perPage[c]],
        [`${c}:total_pages`, pages],
        [`${c}:total_chunks`, total],
        [`${c}:used_chunks`, total - mem.freeCount[c]],
        [`${c}:free_chunks`, mem.freeCount[c]],
        [`${c}:free_chunks_end`, 0],
      );
    }
    rows.push(["active_slabs", active], ["total_malloced", mem.pagesInUse * mem.pageSize]);
    return rows;
  }

  private sizeRows(): Array<[string, string | number]> {
    const rows: Array<[string, string | number]> = [];
    for (let b = 0; b < this.sizes.length; b++) {
      if (this.sizes[b] !== 0) rows.push([String(b * SIZE_BUCKET), this.sizes[b]]);
    }
    return rows;
  }
}

function checkLimit(bytes: number): void {
  if (!Number.isInteger(bytes) || bytes <= 0 || bytes > MAX_MEMORY) {
    throw new RangeError(`memory limit ${bytes} is not in [1, 16 GiB]`);
  }
}

function pagesFor(limitBytes: number, pageSize: number): number {
  return Math.max(2, Math.floor(limitBytes / pageSize));
}

/** A time as stored in a u32 header word. */
function u32Time(t: number): number {
  return t < 0 ? 1 : Math.min(t, U32_MAX);
}
