/**
 * The hash index of the slab store: chained buckets on typed arrays, the chains running through
 * the items' own header words (`W_HNEXT`), keys compared as bytes in the pages.
 *
 * Growth doubles the bucket array incrementally, as memcached's assoc.c does (though at half
 * its load, see `maybeGrow`): while expanding, old buckets below `migrated` have moved to the
 * new array; each `migrate` call moves a few more, so no single call walks more than a handful
 * of chains. The new array is allocated
 * zero-filled (buckets hold ref + 1, 0 = empty), which costs no pass over it.
 *
 * @module
 */
import type { LargePages } from "./large_pages.ts";
import { NONE, WARM_MAX } from "./store.ts";
import { ITEM_HEADER, KEY_MASK, type SlabPages, W_HASH, W_HNEXT, W_META } from "./slab_pages.ts";

/**
 * murmur3's 32-bit hash of the bytes (seed 0): four bytes per step, so a short key costs a few
 * multiplications, not one per byte. A signed 32-bit integer.
 */
export function hashBytes(b: Uint8Array, off: number, len: number): number {
  let h = 0;
  const end = off + len;
  const body = off + (len & ~3);
  for (let i = off; i < body; i += 4) {
    let k = b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = end - body;
  if (tail > 0) {
    let k = b[body];
    if (tail > 1) k |= b[body + 1] << 8;
    if (tail > 2) k |= b[body + 2] << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
  }
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

const EMPTY: Int32Array = new Int32Array(0);

/**
 * The words 64, 128 and 188 bytes into the chunk at word `w` of `words`, xored: one load from
 * each cache line of its first 192 bytes after the line it starts in, however it lies across
 * lines, as far as the page goes.
 */
function lines(words: Int32Array, w: number): number {
  if (w + 47 < words.length) return words[w + 16] ^ words[w + 32] ^ words[w + 47];
  const last = words.length - 1;
  return words[Math.min(w + 16, last)] ^ words[Math.min(w + 32, last)];
}

/** Items per bucket beyond which the index doubles (see `maybeGrow`). */
const MAX_LOAD = 0.75;
/** memcached's default hashpower. */
const INITIAL_POWER = 16;

/** Finds linked items by key. Holds one ref per item, never a JS object per item. */
export class HashIndex {
  private table: Int32Array;
  private mask: number;
  private old: Int32Array = EMPTY;
  private oldMask = 0;
  private migrated = 0;
  /** The array `locate` chose. */
  private at: Int32Array = EMPTY;
  /** Scratch for `warm`: the buckets' first items. */
  private readonly warmRefs = new Int32Array(WARM_MAX);

  /** `large`: ask for huge pages under the bucket arrays (`-L`). */
  constructor(private readonly mem: SlabPages, private readonly large: LargePages | null = null) {
    this.table = new Int32Array(1 << INITIAL_POWER);
    large?.adviseBuffer(this.table.buffer);
    this.mask = this.table.length - 1;
  }

  /** log2 of the bucket count (memcached's hash_power_level, the new size while expanding). */
  get power(): number {
    return Math.log2(this.table.length);
  }

  /** Bytes of the bucket arrays. */
  get bytes(): number {
    return this.table.byteLength + this.old.byteLength;
  }

  /** The bucket array while no doubling is in progress (buckets hold ref + 1, 0 = empty). */
  get buckets(): Int32Array {
    return this.table;
  }

  /** The mask that takes a hash to its index in `buckets`. */
  get bucketMask(): number {
    return this.mask;
  }

  /** Whether a doubling is in progress. */
  get expanding(): boolean {
    return this.old !== EMPTY;
  }

  /** The linked item whose key is `key[off, off + len)` (hash `h`), or NONE. */
  find(key: Uint8Array, off: number, len: number, h: number): number {
    const mem = this.mem;
    const { shift, mask, i32, u8 } = mem;
    const b = this.locate(h);
    let ref = this.at[b] - 1;
    // The page's views are looked up once per chain item: this loop is the hottest in memg.
    while (ref !== NONE) {
      const words = i32[ref >>> shift];
      const w = (ref & mask) << 1;
      if (words[w + W_HASH] === h && (words[w + W_META] & KEY_MASK) === len) {
        const page = u8[ref >>> shift];
        const k = ((ref & mask) << 3) + ITEM_HEADER - off;
        let i = off;
        const end = off + len;
        while (i < end && page[k + i] === key[i]) i++;
        if (i === end) return ref;
      }
      ref = words[w + W_HNEXT];
    }
    return NONE;
  }

  /**
   * For each of the `n` hashes, loads its bucket and the cache lines of the bucket's first
   * item's first 192 bytes (header, key, a small value): what `find` and a reply will read.
   * Where that item is another key's (its hash differs), also the next item's first 192 bytes,
   * which `find` and the reply read next.
   * Returns a value made of those loads, meaningless, so that they are not optimised away.
   */
  warm(hashes: Int32Array, n: number): number {
    const { shift, mask, i32 } = this.mem;
    const refs = this.warmRefs;
    // Short loops with no dependency between keys: the CPU runs their loads side by side, first
    // every bucket, then every first item. The fewer instructions a key takes, the more keys'
    // loads are under way at once.
    if (this.old === EMPTY) {
      const table = this.table;
      const m = this.mask;
      for (let i = 0; i < n; i++) refs[i] = table[hashes[i] & m] - 1;
    } else {
      for (let i = 0; i < n; i++) {
        const b = this.locate(hashes[i]);
        refs[i] = this.at[b] - 1;
      }
    }
    let sink = 0;
    for (let i = 0; i < n; i++) {
      const ref = refs[i];
      if (ref === NONE) continue;
      const words = i32[ref >>> shift];
      const w = (ref & mask) << 1;
      sink ^= lines(words, w);
      // Another key's item heads the chain: the next one is where `find` goes after it.
      refs[i] = words[w + W_HASH] === hashes[i] ? NONE : words[w + W_HNEXT];
    }
    for (let i = 0; i < n; i++) {
      const ref = refs[i];
      if (ref === NONE) continue;
      const words = i32[ref >>> shift];
      const w = (ref & mask) << 1;
      sink ^= words[w] ^ lines(words, w);
    }
    return sink;
  }

  /** Adds an item whose key hash is `h`; the caller ensures the key is not present. */
  insert(ref: number, h: number): void {
    const b = this.locate(h);
    this.mem.setWord(ref, W_HNEXT, this.at[b] - 1);
    this.at[b] = ref + 1;
  }

  /** Removes an item whose key hash is `h`. */
  remove(ref: number, h: number): void {
    const mem = this.mem;
    const b = this.locate(h);
    let cur = this.at[b] - 1;
    if (cur === ref) {
      this.at[b] = mem.word(ref, W_HNEXT) + 1;
      return;
    }
    while (cur !== NONE) {
      const next = mem.word(cur, W_HNEXT);
      if (next === ref) {
        mem.setWord(cur, W_HNEXT, mem.word(ref, W_HNEXT));
        return;
      }
      cur = next;
    }
  }

  /** Makes the chain that held `from` (hash `h`) hold `to` instead, `to` having its header. */
  moved(from: number, to: number, h: number): void {
    const mem = this.mem;
    const b = this.locate(h);
    let cur = this.at[b] - 1;
    if (cur === from) {
      this.at[b] = to + 1;
      return;
    }
    while (cur !== NONE) {
      const next = mem.word(cur, W_HNEXT);
      if (next === from) {
        mem.setWord(cur, W_HNEXT, to);
        return;
      }
      cur = next;
    }
  }

  /**
   * Starts doubling when `items` exceeds `MAX_LOAD` per bucket. memcached doubles at 1.5; at
   * half that a get walks past half as many other items (0.19–0.38 on average instead of
   * 0.38–0.75), each a likely cache miss; the bucket array is twice memcached's size for the
   * same items: 5.3–10.7 bytes per item instead of 2.7–5.3.
   */
  maybeGrow(items: number): void {
    if (this.old !== EMPTY || items <= this.table.length * MAX_LOAD) return;
    this.old = this.table;
    this.oldMask = this.mask;
    this.migrated = 0;
    this.table = new Int32Array(this.old.length * 2);
    this.large?.adviseBuffer(this.table.buffer);
    this.mask = this.table.length - 1;
  }

  /** Moves up to `buckets` old buckets into the new array; finishes the doubling at the end. */
  migrate(buckets: number): void {
    const mem = this.mem;
    const old = this.old;
    const end = Math.min(old.length, this.migrated + buckets);
    for (let b = this.migrated; b < end; b++) {
      let ref = old[b] - 1;
      while (ref !== NONE) {
        const next = mem.word(ref, W_HNEXT);
        const nb = mem.word(ref, W_HASH) & this.mask;
        mem.setWord(ref, W_HNEXT, this.table[nb] - 1);
        this.table[nb] = ref + 1;
        ref = next;
      }
      old[b] = 0;
    }
    this.migrated = end;
    if (end === old.length) this.old = EMPTY;
  }

  /** The bucket index of hash `h`, with `at` set to the array holding it. */
  private locate(h: number): number {
    if (this.old !== EMPTY) {
      const ob = h & this.oldMask;
      if (ob >= this.migrated) {
        this.at = this.old;
        return ob;
      }
    }
    this.at = this.table;
    return h & this.mask;
  }
}
