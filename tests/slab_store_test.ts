/**
 * What only the slab store promises: bounded pages under churn, per-class LRU eviction, `-M`,
 * chained large items, page moves between classes, hash growth, sweep budget, `setLimit`, and
 * memcached's stats names. Time is a manual clock; nothing sleeps.
 *
 * @module
 */
import { assert, assertEquals, assertNotEquals } from "./helpers/assert.ts";
import {
  AllocFailure,
  type Clock,
  type ItemRef,
  itemTotal,
  Mode,
  NONE,
  StoreResult,
  WARM_MAX,
} from "../lib/store/store.ts";
import { SlabStore, type SlabStoreOptions } from "../lib/store/slab.ts";
import { SlabPages } from "../lib/store/slab_pages.ts";
import { hashBytes } from "../lib/store/hash.ts";
import { libc } from "../lib/net/libc.ts";

const T0 = 1_700_000_000;
const KiB = 1 << 10;
const MiB = 1 << 20;

class ManualClock implements Clock {
  t = T0;
  now(): number {
    return this.t;
  }
}

function fixture(o: Partial<SlabStoreOptions> = {}) {
  const clock = new ManualClock();
  const store = new SlabStore({ limitBytes: 8 * MiB, itemSizeMax: MiB, evict: true, clock, ...o });
  return { store, clock };
}

/** Writes the decimal key `k<i>` into `buf`; returns its length. Allocates nothing. */
function keyInto(buf: Uint8Array, i: number): number {
  buf[0] = 0x6b;
  let n = 1;
  let d = 1;
  while (d * 10 <= i) d *= 10;
  for (; d >= 1; d = Math.floor(d / 10)) buf[n++] = 0x30 + (Math.floor(i / d) % 10);
  return n;
}

const scratch = new Uint8Array(32);

/** Bytes `(seed + j) & 255`, shared: values are views of it. */
const PATTERN = new Uint8Array(2 * MiB).map((_, j) => j & 255);

function valueOf(i: number, size: number): Uint8Array {
  return PATTERN.subarray(i & 255, (i & 255) + size);
}

/** Stores `value` under key `k<i>`, or returns the alloc failure. */
function put(
  s: SlabStore,
  i: number,
  value: Uint8Array,
  exptime = 0,
  mode: Mode = Mode.Set,
): StoreResult | AllocFailure {
  const n = keyInto(scratch, i);
  const ref = s.alloc(scratch, 0, n, value.length, 0, exptime);
  if (ref === NONE) return s.allocFailure;
  s.writeValue(ref, 0, value, 0, value.length);
  return s.link(ref, mode, 0);
}

function find(s: SlabStore, i: number): ItemRef {
  return s.find(scratch, 0, keyInto(scratch, i));
}

function get(s: SlabStore, i: number): Uint8Array | null {
  const ref = find(s, i);
  if (ref === NONE) return null;
  const out = new Uint8Array(s.valueLength(ref));
  s.readValue(ref, out, 0);
  return out;
}

function stat(s: SlabStore, group: string, name: string): number {
  const row = s.groupStats(group)?.find(([k]) => k === name);
  return row === undefined ? 0 : Number(row[1]);
}

/** xorshift32, for repeatable "random" sizes. */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

/** Checks the store's own bookkeeping against its stats groups. */
function checkInvariants(s: SlabStore): void {
  const items = s.groupStats("items") ?? [];
  const number = items.filter(([k]) => k.endsWith(":number")).reduce((n, r) => n + +r[1], 0);
  assertEquals(number, s.stats.curr_items);
  const requested = items.filter(([k]) => k.endsWith(":mem_requested"))
    .reduce((n, r) => n + +r[1], 0);
  assertEquals(requested, s.stats.bytes);
  assert(stat(s, "slabs", "total_malloced") <= Math.max(2 * MiB, s.limitBytes));
}

Deno.test("slab store", async (t) => {
  await t.step("pages start on a cache line, so a 192-byte chunk lies in three lines", () => {
    const c = libc();
    assert(c !== null, "the tests run with the ffi permission");
    const geometry = { pageSize: MiB, chunkMax: MiB / 2, minChunk: 96, growthFactor: 1.25 };
    const mem = new SlabPages(geometry, 8);
    for (let p = 0; p < 8; p++) {
      assert(mem.addPage(4)); // the 192-byte class
      for (const view of [mem.u8[p], mem.i32[p], mem.f64[p]]) {
        assertEquals(c.addressOf(new Uint8Array(view.buffer, view.byteOffset, 1), 0, 0) % 64n, 0n);
        assertEquals(view.byteLength, MiB);
      }
      assertEquals(mem.dv[p].byteOffset, mem.u8[p].byteOffset);
    }
  });
  await t.step("chunk sizes are memcached's defaults (-n 48 -f 1.25, 512 KiB largest)", () => {
    const geometry = { pageSize: MiB, chunkMax: MiB / 2, minChunk: 96, growthFactor: 1.25 };
    const mem = new SlabPages(geometry, 64);
    assertEquals(Array.from(mem.chunkSize.subarray(1)), [
      96,
      120,
      152,
      192,
      240,
      304,
      384,
      480,
      600,
      752,
      944,
      1184,
      1480,
      1856,
      2320,
      2904,
      3632,
      4544,
      5680,
      7104,
      8880,
      11104,
      13880,
      17352,
      21696,
      27120,
      33904,
      42384,
      52984,
      66232,
      82792,
      103496,
      129376,
      161720,
      202152,
      252696,
      315872,
      394840,
      524288,
    ]);
    assertEquals([mem.perPage[1], mem.perPage[39]], [10922, 2]);
  });

  await t.step("100 MiB of mixed sizes through 4 MiB stays within 4 MiB", () => {
    const { store } = fixture({ limitBytes: 4 * MiB });
    const random = rng(12345);
    const sizes: number[] = [];
    let written = 0;
    let i = 0;
    for (; written < 100 * MiB; i++) {
      const size = Math.floor(100 * 2000 ** random());
      sizes.push(size);
      assertEquals(put(store, i, valueOf(i, size)), StoreResult.Stored);
      written += size;
      if (i % 64 === 0) assert(stat(store, "slabs", "total_malloced") <= 4 * MiB);
    }
    assert(store.stats.evictions > 0);
    assert(store.stats.bytes <= 4 * MiB);
    checkInvariants(store);
    // Four pages for some 35 classes: each class that needs a page takes one from the class
    // whose newest item is the oldest, so the last four classes written keep their items.
    for (let j = i - 4; j < i; j++) assertEquals(get(store, j), valueOf(j, sizes[j]));
    for (let j = 0; j < i - 4; j++) {
      const v = get(store, j);
      if (v !== null) assertEquals(v, valueOf(j, sizes[j]));
    }
  });

  await t.step("bumped items outlive unbumped ones", () => {
    for (const later of [61, 0]) {
      // later = 61: bumps move items to the head; 0: they mark them active (second chance).
      const { store, clock } = fixture({ limitBytes: 2 * MiB });
      const value = new Uint8Array(1000);
      const fits = 2 * 885; // two pages of 1184-byte chunks
      for (let i = 0; i < fits; i++) put(store, i, value);
      assertEquals(store.stats.evictions, 0);
      clock.t += later;
      for (let i = 0; i < 100; i++) store.bump(find(store, i));
      for (let i = fits; i < fits + 1000; i++) put(store, i, value);
      assertEquals(store.stats.evictions, 1000);
      assertEquals(store.stats.evicted_unfetched, 1000);
      for (let i = 0; i < 100; i++) assertNotEquals(find(store, i), NONE, `bumped ${i}`);
      for (let i = 100; i < 1100; i++) assertEquals(find(store, i), NONE, `unbumped ${i}`);
      assertNotEquals(find(store, 1100), NONE);
    }
  });

  await t.step("without eviction: OutOfMemory, yet expired items are reclaimed", () => {
    const { store, clock } = fixture({ limitBytes: 2 * MiB, evict: false });
    const value = new Uint8Array(1000);
    let i = 0;
    while (put(store, i, value, T0 + 10) === StoreResult.Stored) i++;
    assertEquals(store.allocFailure, AllocFailure.OutOfMemory);
    assertEquals(i, 2 * 885);
    assertEquals(store.stats.evictions, 0);
    assert(stat(store, "items", "items:12:outofmemory") >= 1);
    clock.t = T0 + 10;
    assertEquals(put(store, i, value), StoreResult.Stored);
    // As memcached's lru_pull_tail, one pull reclaims up to 5 expired tail items.
    assertEquals(store.stats.reclaimed, 5);
    assertEquals(store.stats.evictions, 0);
  });

  await t.step("large items are chained chunks and round-trip byte for byte", () => {
    const { store } = fixture();
    const random = rng(7);
    const big = new Uint8Array(900 * KiB).map(() => random() * 256);
    const n = keyInto(scratch, 1);
    const ref = store.alloc(scratch, 0, n, big.length, 42, 0);
    for (let off = 0; off < big.length; off += 7777) {
      const len = Math.min(7777, big.length - off);
      store.writeValue(ref, off, big, off, len);
    }
    assertEquals(store.link(ref, Mode.Set, 0), StoreResult.Stored);
    assertEquals(get(store, 1), big);
    const item = find(store, 1);
    assertEquals(store.slabClass(item), 39);
    assertEquals(store.flags(item), 42);
    assert(store.itemSize(item) > big.length + 48);
    assertEquals(store.stats.bytes, store.itemSize(item));
    const max = MiB - itemTotal(n, 0, 42); // the largest value memcached's -I allows here
    const tail = new Uint8Array(max - big.length).fill(7);
    assertEquals(put(store, 1, tail, 0, Mode.Append), StoreResult.Stored);
    const joined = get(store, 1);
    assertEquals(joined?.length, max);
    assertEquals(joined?.subarray(0, big.length), big);
    assertEquals(joined?.subarray(big.length), tail);
    assertEquals(put(store, 1, new Uint8Array(1), 0, Mode.Prepend), StoreResult.TooLarge);
    store.unlink(find(store, 1));
    assertEquals([store.stats.curr_items, store.stats.bytes], [0, 0]);
    assertEquals(stat(store, "slabs", "39:used_chunks"), 0);
    assertEquals(stat(store, "slabs", "1:used_chunks"), 0);
  });

  await t.step("a cache full of small items still takes large ones (pages move)", () => {
    const { store } = fixture({ limitBytes: 4 * MiB });
    const small = new Uint8Array(100);
    for (let i = 0; i < 100_000; i++) assertEquals(put(store, i, small), StoreResult.Stored);
    assertEquals(stat(store, "slabs", "total_malloced"), 4 * MiB);
    for (let i = 0; i < 10; i++) {
      assertEquals(put(store, 1_000_000 + i, valueOf(i, 900 * KiB)), StoreResult.Stored);
      assertEquals(get(store, 1_000_000 + i), valueOf(i, 900 * KiB));
    }
    assertNotEquals(get(store, 99_999), null);
    assert(Object.fromEntries(store.extraStats()).slabs_moved > 0);
    checkInvariants(store);
  });

  await t.step("the hash index grows past 1M items, replacing and removing as it goes", () => {
    const { store } = fixture({ limitBytes: 160 * MiB });
    const value = new Uint8Array(8);
    const count = 1_100_000;
    let expanding = 0;
    for (let i = 0; i < count; i++) {
      put(store, i, value);
      if (i % 5 === 3) put(store, i - 3, value.subarray(0, 4)); // replace: old one leaves the index
      if (i % 5 === 4) store.unlink(find(store, i - 2)); // remove keys ≡ 2 (mod 5)
      if (i % 1024 === 0) expanding += Object.fromEntries(store.extraStats()).hash_is_expanding;
    }
    assertEquals(store.stats.curr_items, count - count / 5);
    for (let i = 0; i < count; i++) {
      const ref = find(store, i);
      if ((ref === NONE) !== (i % 5 === 2)) throw new Error(`key ${i}: ref ${ref}`);
      if (ref !== NONE) assertEquals(store.valueLength(ref), i % 5 === 0 ? 4 : 8);
    }
    const hash = Object.fromEntries(store.extraStats());
    assert(hash.hash_power_level >= 20, `hash power ${hash.hash_power_level}`);
    // Seen mid-doubling between calls: the index grows in steps, never in one blocking pass.
    assert(expanding > 0);
  });

  await t.step("the hash index doubles once it holds more than 0.75 items per bucket", () => {
    const { store } = fixture({ limitBytes: 64 * MiB });
    const value = new Uint8Array(8);
    const power = () => Object.fromEntries(store.extraStats()).hash_power_level;
    assertEquals(power(), 16); // memcached's default hashpower
    const threshold = 0.75 * 2 ** 16;
    for (let i = 0; i < threshold; i++) put(store, i, value);
    assertEquals(power(), 16, "at 0.75 items per bucket: not yet");
    put(store, threshold, value);
    assertEquals(power(), 17, "one item more: doubling");
  });

  await t.step("warm changes nothing and its hashes find what find finds, mid-doubling too", () => {
    const { store } = fixture({ limitBytes: 64 * MiB });
    const value = new Uint8Array(100);
    const keys = new Uint8Array(WARM_MAX * 8);
    const starts = new Int32Array(WARM_MAX);
    const lens = new Int32Array(WARM_MAX);
    const hashes = new Int32Array(WARM_MAX);
    let warmedMidDoubling = 0;
    starts[0] = 0;
    lens[0] = keyInto(keys, 1);
    assertEquals(store.warm(keys, starts, lens, hashes, 1), 0); // an empty store: no page to look at
    for (let i = 0; i < 200_000; i++) {
      put(store, i, value);
      if (i % 97 !== 0) continue;
      // keys i - 31 .. i, every third one absent (k<i + 1 000 000>)
      for (let j = 0; j < WARM_MAX; j++) {
        const k = j % 3 === 0 ? i + 1_000_000 + j : Math.max(0, i - j);
        starts[j] = j * 8;
        lens[j] = keyInto(scratch, k);
        keys.set(scratch.subarray(0, lens[j]), starts[j]);
      }
      const before = JSON.stringify([store.stats, store.extraStats()]);
      store.warm(keys, starts, lens, hashes, WARM_MAX);
      assertEquals(JSON.stringify([store.stats, store.extraStats()]), before);
      for (let j = 0; j < WARM_MAX; j++) {
        const found = store.findHashed(keys, starts[j], lens[j], hashes[j]);
        assertEquals(found, store.find(keys, starts[j], lens[j]));
        assertEquals(found === NONE, j % 3 === 0);
      }
      if (Object.fromEntries(store.extraStats()).hash_is_expanding) warmedMidDoubling++;
    }
    assert(warmedMidDoubling > 0, "never warmed while the index was doubling");
    for (let i = 0; i < 200_000; i++) assertNotEquals(find(store, i), NONE);
    checkInvariants(store);
  });

  await t.step("keys with the same hash and length are told apart by every byte", () => {
    // `find` compares the bytes of a chain's keys whose hash and length match the one sought:
    // pairs of murmur3 collisions of 5, 8 and 11 bytes reach that compare
    const { store } = fixture();
    const enc = new TextEncoder();
    for (const len of [5, 8, 11]) {
      const seen = new Map<number, string>();
      let pair: [Uint8Array, Uint8Array] | null = null;
      for (let i = 0; i < 1_000_000 && pair === null; i++) {
        // digits spread over every byte: with one word changing alone murmur3 never collides
        const x = Math.imul(i, 0x9e3779b1) >>> 0;
        const name = `k${(x.toString(36) + i.toString(36)).padStart(len - 1, "0").slice(1 - len)}`;
        const h = hashBytes(enc.encode(name), 0, len);
        const other = seen.get(h);
        if (other !== undefined && other !== name) pair = [enc.encode(other), enc.encode(name)];
        seen.set(h, name);
      }
      assert(pair !== null, `a collision among 1M keys of ${len} bytes`);
      const [a, b] = pair;
      const store1 = (key: Uint8Array, v: number) => {
        const ref = store.alloc(key, 0, len, 1, v, 0);
        store.writeValue(ref, 0, new Uint8Array([v]), 0, 1);
        assertEquals(store.link(ref, Mode.Set, 0), StoreResult.Stored);
      };
      store1(a, 1);
      assertEquals(store.find(b, 0, len), NONE, `${len} bytes: the other key is not found`);
      store1(b, 2);
      assertEquals(store.flags(store.find(a, 0, len)), 1);
      assertEquals(store.flags(store.find(b, 0, len)), 2);
      // the key at an offset of a larger array, as keys sit in a read buffer
      const inBuf = new Uint8Array(len + 3);
      inBuf.set(b, 3);
      assertEquals(store.flags(store.find(inBuf, 3, len)), 2);
    }
  });

  await t.step("sweep keeps to its budget and resumes", () => {
    const { store, clock } = fixture({ limitBytes: 64 * MiB });
    const value = new Uint8Array(8);
    const count = 300_000;
    for (let i = 0; i < count; i++) put(store, i, value, T0 + 5);
    clock.t = T0 + 5;
    const start = performance.now();
    const first = store.sweep(1);
    assert(performance.now() - start < 50, `sweep(1) took ${performance.now() - start} ms`);
    assert(first > 0 && first < count, `first slice reclaimed ${first}`);
    let total = first;
    let calls = 1;
    for (let n = store.sweep(1); n > 0; n = store.sweep(1), calls++) total += n;
    assertEquals(total, count);
    assert(calls > 2);
    assertEquals([store.stats.curr_items, store.stats.bytes], [0, 0]);
    assertEquals(store.sweep(0), 0);
  });

  await t.step("sweep moves a doubling of the index along in slices of its budget", () => {
    const { store } = fixture({ limitBytes: 64 * MiB });
    const expanding = () => Object.fromEntries(store.extraStats()).hash_is_expanding === 1;
    const value = new Uint8Array(8);
    // One item past 0.75 of memcached's 65,536 buckets starts the doubling; no link after it
    // moves buckets, so only sweeps can finish it.
    for (let i = 0; i <= 49_152; i++) put(store, i, value);
    assert(expanding() && store.sweepPending);
    // A budget too small for more than a step or two: 64 buckets per step, 65,536 to move.
    let calls = 0;
    while (expanding() && calls < 10_000) {
      assertEquals(store.sweep(0.000_001), 0);
      calls++;
    }
    assert(!expanding() && !store.sweepPending, "the doubling never finished");
    assert(calls >= 256, `${calls} sweeps of a microsecond's budget moved 65,536 buckets`);
    for (let i = 0; i <= 49_152; i++) assertNotEquals(find(store, i), NONE);
    checkInvariants(store);
  });

  await t.step("setLimit shrinks by evicting whole pages and grows again", () => {
    const { store } = fixture();
    const value = new Uint8Array(10_000);
    for (let i = 0; i < 700; i++) put(store, i, value);
    assertEquals(stat(store, "slabs", "total_malloced"), 8 * MiB);
    const before = store.stats.curr_items;
    store.setLimit(4 * MiB);
    assertEquals(store.limitBytes, 4 * MiB);
    assertEquals(stat(store, "slabs", "total_malloced"), 4 * MiB);
    assert(store.stats.evictions > 0 && store.stats.curr_items < before);
    checkInvariants(store);
    assertNotEquals(get(store, 699), null);
    for (let i = 700; i < 1400; i++) assertEquals(put(store, i, value), StoreResult.Stored);
    assertEquals(stat(store, "slabs", "total_malloced"), 4 * MiB);
    store.setLimit(8 * MiB);
    for (let i = 1400; i < 2100; i++) put(store, i, value);
    assertEquals(stat(store, "slabs", "total_malloced"), 8 * MiB);
  });

  await t.step("a shrink blocked by items being filled finishes when they are linked", () => {
    const { store } = fixture();
    const pending: ItemRef[] = [];
    for (const size of [100, 2000, 30_000]) {
      const ref = store.alloc(scratch, 0, keyInto(scratch, size), size, 0, 0);
      store.writeValue(ref, 0, PATTERN, 0, size);
      pending.push(ref);
    }
    store.setLimit(2 * MiB);
    assertEquals(stat(store, "slabs", "total_malloced"), 3 * MiB);
    store.release(pending[0]);
    assertEquals(stat(store, "slabs", "total_malloced"), 2 * MiB);
    assertEquals(store.link(pending[1], Mode.Set, 0), StoreResult.Stored);
    assertEquals(store.link(pending[2], Mode.Set, 0), StoreResult.Stored);
    assertEquals(get(store, 30_000), PATTERN.subarray(0, 30_000));
  });

  await t.step("random operations agree with a model (pages move, chains, pending items)", () => {
    // `largePages`: pages carved from huge-page arenas and given back on shrinks (Linux)
    const geometries = [{}, { pageSize: 64 * KiB, growthFactor: 1.5 }, { largePages: true }];
    for (const geometry of geometries) {
      const { store, clock } = fixture({ ...geometry, limitBytes: 12 * MiB });
      const model = new Map<number, Uint8Array>();
      const pending: Array<{ ref: ItemRef; key: number; value: Uint8Array }> = [];
      const random = rng(99);
      const pick = (n: number) => Math.floor(random() * n);
      const size = () => {
        const r = random();
        return r < 0.6
          ? pick(200)
          : r < 0.9
          ? pick(5000)
          : r < 0.98
          ? pick(100 * KiB)
          : pick(MiB - 8);
      };
      const verify = () => {
        let found = 0;
        for (const [key, value] of model) {
          const v = get(store, key);
          if (v === null) model.delete(key);
          else {
            assertEquals(v, value, `key ${key}`);
            found++;
          }
        }
        assertEquals(found, store.stats.curr_items);
        checkInvariants(store);
      };
      for (let op = 0; op < 20_000; op++) {
        const key = pick(3000);
        const r = random();
        if (r < 0.4) {
          const value = valueOf(pick(256), size());
          if (put(store, key, value) === StoreResult.Stored) model.set(key, value);
        } else if (r < 0.5) {
          const extra = valueOf(pick(256), size());
          const append = random() < 0.5;
          const res = put(store, key, extra, 0, append ? Mode.Append : Mode.Prepend);
          const old = model.get(key);
          if (res === StoreResult.Stored && old !== undefined) {
            const joined = new Uint8Array(old.length + extra.length);
            joined.set(append ? old : extra);
            joined.set(append ? extra : old, append ? old.length : extra.length);
            model.set(key, joined);
          }
        } else if (r < 0.6) {
          const ref = find(store, key);
          if (ref !== NONE) store.unlink(ref);
          model.delete(key);
        } else if (r < 0.75) {
          const ref = find(store, key);
          if (ref !== NONE) store.bump(ref);
        } else if (r < 0.8 && pending.length < 3) {
          const value = valueOf(pick(256), size());
          const n = keyInto(scratch, key);
          const ref = store.alloc(scratch, 0, n, value.length, 0, 0);
          if (ref !== NONE) {
            store.writeValue(ref, 0, value, 0, value.length);
            pending.push({ ref, key, value });
          }
        } else if (r < 0.85 && pending.length > 0) {
          const { ref, key, value } = pending.splice(pick(pending.length), 1)[0];
          if (random() < 0.3) store.release(ref);
          else if (store.link(ref, Mode.Set, 0) === StoreResult.Stored) model.set(key, value);
        } else if (r < 0.865) {
          store.setLimit((4 + pick(10)) * MiB);
        } else if (r < 0.866) {
          store.flush(0);
          model.clear();
          while (store.sweep(100) > 0);
        } else if (r < 0.95) {
          clock.t += pick(90);
        }
        if (op % 2000 === 1999) verify();
      }
      for (const { ref } of pending) store.release(ref);
      verify();
      assert(Object.fromEntries(store.extraStats()).slabs_moved > 0);
    }
  });

  await t.step("stats groups use memcached's names", () => {
    const { store, clock } = fixture();
    put(store, 1, new Uint8Array(10));
    put(store, 2, new Uint8Array(5000), T0 + 1);
    clock.t = T0 + 7;
    const items = Object.fromEntries(store.groupStats("items") ?? []);
    assertEquals(items["items:1:number"], 1);
    assertEquals(items["items:1:age"], 7);
    assertEquals(items["items:19:number"], 1);
    for (
      const name of [
        "mem_requested",
        "evicted",
        "evicted_nonzero",
        "evicted_time",
        "outofmemory",
        "reclaimed",
        "expired_unfetched",
        "evicted_unfetched",
        "crawler_reclaimed",
      ]
    ) assert(`items:1:${name}` in items, name);
    const slabs = Object.fromEntries(store.groupStats("slabs") ?? []);
    assertEquals(slabs["1:chunk_size"], 96);
    assertEquals(slabs["1:chunks_per_page"], 10922);
    assertEquals(slabs["1:total_pages"], 1);
    assertEquals(slabs["1:used_chunks"], 1);
    assertEquals(slabs["1:free_chunks"], 10921);
    assertEquals(slabs["active_slabs"], 2);
    assertEquals(slabs["total_malloced"], 2 * MiB);
    const sizes = store.groupStats("sizes") ?? [];
    assertEquals(sizes, [["64", 1], ["5056", 1]]);
    assertEquals(store.groupStats("conns"), null);
  });
});
