/**
 * The reference store: a `Map` from key to a plain object per item. Simple enough to be
 * obviously right, so the conformance suite can check the slab store against it; too
 * GC-heavy for millions of items, so the server uses `SlabStore`.
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

/** memcached's item header size with CAS (bytes counted per item besides key and value). */
const HEADER = 56;

interface Item {
  key: string;
  value: Uint8Array;
  flags: number;
  exptime: number;
  cas: number;
  time: number;
  fetched: boolean;
  stale: boolean;
  winSent: boolean;
  linked: boolean;
}

/** Options shared by every store constructor. */
export interface StoreOptions {
  limitBytes: number;
  itemSizeMax: number;
  evict: boolean;
  clock: Clock;
}

function keyString(key: Uint8Array, off: number, len: number): string {
  let s = "";
  for (let i = off; i < off + len; i++) s += String.fromCharCode(key[i]);
  return s;
}

/** A `Store` over a JS `Map`, evicting in least-recently-used order by the Map's order. */
export class MapStore implements Store {
  readonly clock: Clock;
  readonly stats: StoreStats = newStoreStats();
  limitBytes: number;
  readonly itemSizeMax: number;
  allocFailure: AllocFailure = AllocFailure.TooLarge;
  linked: ItemRef = NONE;
  previous: ItemRef = NONE;

  #evict: boolean;
  #map = new Map<string, ItemRef>();
  #slots: (Item | undefined)[] = [];
  #free: ItemRef[] = [];
  #casCounter = 0;
  #flushCas = 0;
  #oldestLive = 0;

  constructor(opts: StoreOptions) {
    this.clock = opts.clock;
    this.limitBytes = opts.limitBytes;
    this.itemSizeMax = opts.itemSizeMax;
    this.#evict = opts.evict;
  }

  get size(): number {
    return this.#map.size;
  }

  readonly sweepPending = false;

  #item(ref: ItemRef): Item {
    const it = this.#slots[ref];
    if (it === undefined) throw new RangeError(`no item at ${ref}`);
    return it;
  }

  #total(it: Item): number {
    return HEADER + it.key.length + 1 + it.value.length + 2;
  }

  #dead(it: Item, now: number): "expired" | "flushed" | null {
    if (it.cas <= this.#flushCas) return "flushed";
    if (this.#oldestLive !== 0 && this.#oldestLive <= now && it.time <= this.#oldestLive) {
      return "flushed";
    }
    if (it.exptime !== 0 && it.exptime <= now) return "expired";
    return null;
  }

  #remove(ref: ItemRef): void {
    const it = this.#item(ref);
    this.#map.delete(it.key);
    it.linked = false;
    this.stats.curr_items--;
    this.stats.bytes -= this.#total(it);
    this.#slots[ref] = undefined;
    this.#free.push(ref);
  }

  warm(
    _buf: Uint8Array,
    _starts: Int32Array,
    _lens: Int32Array,
    _hashes: Int32Array,
    _n: number,
  ): number {
    return 0;
  }

  /** Answers none: the general path is this store's reference for `getRun`'s. */
  getRun(
    _buf: Uint8Array,
    from: number,
    _end: number,
    _keyMax: number,
    _warmed: WarmedKeys,
    _sink: GetRunSink,
    _outLimit: number,
  ): number {
    return from;
  }

  findHashed(key: Uint8Array, off: number, len: number, _hash: number): ItemRef {
    return this.find(key, off, len);
  }

  find(key: Uint8Array, off: number, len: number): ItemRef {
    const ref = this.#map.get(keyString(key, off, len));
    if (ref === undefined) return NONE;
    const it = this.#item(ref);
    const dead = this.#dead(it, this.clock.now());
    if (dead === null) return ref;
    if (dead === "expired") {
      this.stats.get_expired++;
      this.stats.reclaimed++;
      if (!it.fetched) this.stats.expired_unfetched++;
    } else {
      this.stats.get_flushed++;
    }
    this.#remove(ref);
    return NONE;
  }

  #makeRoom(need: number): boolean {
    while (this.stats.bytes + need > this.limitBytes) {
      const oldest = this.#map.values().next();
      if (oldest.done || !this.#evict) return false;
      const it = this.#item(oldest.value);
      if (it.exptime !== 0 && it.exptime <= this.clock.now()) {
        this.stats.reclaimed++;
        if (!it.fetched) this.stats.expired_unfetched++;
      } else {
        this.stats.evictions++;
        if (!it.fetched) this.stats.evicted_unfetched++;
      }
      this.#remove(oldest.value);
    }
    return true;
  }

  alloc(
    key: Uint8Array,
    off: number,
    len: number,
    valueLength: number,
    flags: number,
    exptime: number,
  ): ItemRef {
    if (itemTotal(len, valueLength, flags) > this.itemSizeMax) {
      this.allocFailure = AllocFailure.TooLarge;
      return NONE;
    }
    if (!this.#makeRoom(HEADER + len + 1 + valueLength + 2)) {
      this.allocFailure = AllocFailure.OutOfMemory;
      return NONE;
    }
    const it: Item = {
      key: keyString(key, off, len),
      value: new Uint8Array(valueLength),
      flags,
      exptime,
      cas: 0,
      time: this.clock.now(),
      fetched: false,
      stale: false,
      winSent: false,
      linked: false,
    };
    const ref = this.#free.pop() ?? this.#slots.length;
    this.#slots[ref] = it;
    return ref;
  }

  writeValue(ref: ItemRef, valueOff: number, src: Uint8Array, srcOff: number, len: number): void {
    this.#item(ref).value.set(src.subarray(srcOff, srcOff + len), valueOff);
  }

  valueView(ref: ItemRef, valueOff: number, maxLen: number): Uint8Array {
    return this.#item(ref).value.subarray(valueOff, valueOff + maxLen);
  }

  #place(ref: ItemRef, replacing: ItemRef): void {
    if (replacing !== NONE) this.#remove(replacing);
    const it = this.#item(ref);
    it.cas = ++this.#casCounter;
    it.time = this.clock.now();
    it.linked = true;
    this.#map.set(it.key, ref);
    this.stats.curr_items++;
    this.stats.total_items++;
    this.stats.bytes += this.#total(it);
    this.linked = ref;
  }

  link(ref: ItemRef, mode: Mode, cas: number): StoreResult {
    const it = this.#item(ref);
    const old = this.#findString(it.key);
    this.previous = old;
    if (cas !== 0) {
      if (old === NONE) return this.#reject(ref, StoreResult.NotFound);
      if (this.#item(old).cas !== cas) return this.#reject(ref, StoreResult.Exists);
    }
    switch (mode) {
      case Mode.Set:
        this.#place(ref, old);
        return StoreResult.Stored;
      case Mode.Add:
        if (old !== NONE) {
          this.#item(old).time = this.clock.now();
          return this.#reject(ref, StoreResult.NotStored);
        }
        this.#place(ref, NONE);
        return StoreResult.Stored;
      case Mode.Replace:
        if (old === NONE) return this.#reject(ref, StoreResult.NotStored);
        this.#place(ref, old);
        return StoreResult.Stored;
      case Mode.Append:
      case Mode.Prepend: {
        if (old === NONE) return this.#reject(ref, StoreResult.NotStored);
        const prev = this.#item(old);
        const size = prev.value.length + it.value.length;
        if (itemTotal(it.key.length, size, prev.flags) > this.itemSizeMax) {
          return this.#reject(ref, StoreResult.TooLarge);
        }
        const joined = new Uint8Array(size);
        if (mode === Mode.Append) {
          joined.set(prev.value);
          joined.set(it.value, prev.value.length);
        } else {
          joined.set(it.value);
          joined.set(prev.value, it.value.length);
        }
        it.value = joined;
        it.flags = prev.flags;
        it.exptime = prev.exptime;
        this.#place(ref, old);
        return StoreResult.Stored;
      }
    }
  }

  #findString(key: string): ItemRef {
    const ref = this.#map.get(key);
    if (ref === undefined) return NONE;
    const bytes = new Uint8Array(key.length);
    for (let i = 0; i < key.length; i++) bytes[i] = key.charCodeAt(i);
    return this.find(bytes, 0, bytes.length);
  }

  #reject(ref: ItemRef, result: StoreResult): StoreResult {
    this.release(ref);
    return result;
  }

  release(ref: ItemRef): void {
    if (this.#item(ref).linked) return;
    this.#slots[ref] = undefined;
    this.#free.push(ref);
  }

  unlink(ref: ItemRef): void {
    this.#remove(ref);
  }

  bump(ref: ItemRef): void {
    const it = this.#item(ref);
    it.fetched = true;
    it.time = this.clock.now();
    this.#map.delete(it.key);
    this.#map.set(it.key, ref);
  }

  touch(ref: ItemRef, exptime: number): void {
    this.#item(ref).exptime = exptime;
  }

  renewCas(ref: ItemRef): number {
    return this.#item(ref).cas = ++this.#casCounter;
  }

  flags(ref: ItemRef): number {
    return this.#item(ref).flags;
  }
  cas(ref: ItemRef): number {
    return this.#item(ref).cas;
  }
  exptime(ref: ItemRef): number {
    return this.#item(ref).exptime;
  }
  lastAccess(ref: ItemRef): number {
    return this.#item(ref).time;
  }
  fetched(ref: ItemRef): boolean {
    return this.#item(ref).fetched;
  }
  valueLength(ref: ItemRef): number {
    return this.#item(ref).value.length;
  }
  readValue(ref: ItemRef, dst: Uint8Array, dstOff: number): number {
    const v = this.#item(ref).value;
    dst.set(v, dstOff);
    return v.length;
  }
  keyLength(ref: ItemRef): number {
    return this.#item(ref).key.length;
  }
  readKey(ref: ItemRef, dst: Uint8Array, dstOff: number): number {
    const k = this.#item(ref).key;
    for (let i = 0; i < k.length; i++) dst[dstOff + i] = k.charCodeAt(i);
    return k.length;
  }
  slabClass(_ref: ItemRef): number {
    return 0;
  }
  itemSize(ref: ItemRef): number {
    return this.#total(this.#item(ref));
  }
  stale(ref: ItemRef): boolean {
    return this.#item(ref).stale;
  }
  setStale(ref: ItemRef, stale: boolean): void {
    this.#item(ref).stale = stale;
  }
  winSent(ref: ItemRef): boolean {
    return this.#item(ref).winSent;
  }
  setWinSent(ref: ItemRef, sent: boolean): void {
    this.#item(ref).winSent = sent;
  }

  flush(at: number): void {
    const now = this.clock.now();
    this.#oldestLive = at === 0 ? now - 1 : at - 1;
    if (this.#oldestLive <= now) this.#flushCas = this.#casCounter++;
  }

  setLimit(bytes: number): void {
    this.limitBytes = bytes;
    this.#makeRoom(0);
  }

  sweep(_budgetMs: number): number {
    const now = this.clock.now();
    let n = 0;
    for (const ref of [...this.#map.values()]) {
      const it = this.#item(ref);
      const dead = this.#dead(it, now);
      if (dead === null) continue;
      this.stats.reclaimed++;
      if (dead === "expired" && !it.fetched) this.stats.expired_unfetched++;
      this.#remove(ref);
      n++;
    }
    return n;
  }

  scan(visit: (ref: ItemRef) => void): void {
    const now = this.clock.now();
    for (const ref of this.#map.values()) {
      if (this.#dead(this.#item(ref), now) === null) visit(ref);
    }
  }

  restore(ref: ItemRef, cas: number): void {
    const it = this.#item(ref);
    const counter = this.#casCounter;
    this.#place(ref, this.#findString(it.key));
    it.cas = cas;
    this.#casCounter = Math.max(counter, cas);
  }

  extraStats(): Array<[string, number]> {
    return [];
  }

  groupStats(_group: string): Array<[string, string | number]> | null {
    return null;
  }
}
