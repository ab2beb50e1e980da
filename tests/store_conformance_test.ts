/**
 * The `Store` contract, one suite run against every implementation: `conformance(name, make)`.
 * Time is a manual clock; nothing sleeps.
 *
 * @module
 */
import { assert, assertEquals, assertNotEquals } from "./helpers/assert.ts";
import {
  absoluteExptime,
  AllocFailure,
  type Clock,
  type ItemRef,
  itemTotal,
  Mode,
  NONE,
  REALTIME_MAXDELTA,
  type Store,
  StoreResult,
} from "../lib/store/store.ts";
import { SlabStore } from "../lib/store/slab.ts";
import { MapStore } from "../lib/store/map.ts";

/** The options every store constructor takes. */
export interface ConformanceOptions {
  limitBytes: number;
  itemSizeMax: number;
  evict: boolean;
  clock: Clock;
}

const T0 = 1_700_000_000;
const MiB = 1 << 20;

class ManualClock implements Clock {
  t = T0;
  now(): number {
    return this.t;
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function bytes(s: string | Uint8Array): Uint8Array {
  return typeof s === "string" ? enc.encode(s) : s;
}

interface PutOptions {
  mode?: Mode;
  cas?: number;
  flags?: number;
  exptime?: number;
}

/** Allocates, fills and links an item; throws when `alloc` fails. */
function put(
  s: Store,
  key: string | Uint8Array,
  value: string | Uint8Array,
  o: PutOptions = {},
): StoreResult {
  const k = bytes(key);
  const v = bytes(value);
  const ref = s.alloc(k, 0, k.length, v.length, o.flags ?? 0, o.exptime ?? 0);
  if (ref === NONE) throw new Error(`alloc failed: ${s.allocFailure}`);
  s.writeValue(ref, 0, v, 0, v.length);
  return s.link(ref, o.mode ?? Mode.Set, o.cas ?? 0);
}

function find(s: Store, key: string | Uint8Array): ItemRef {
  const k = bytes(key);
  return s.find(k, 0, k.length);
}

/** The value under `key` (no bump), or null. */
function get(s: Store, key: string | Uint8Array): Uint8Array | null {
  const ref = find(s, key);
  if (ref === NONE) return null;
  const out = new Uint8Array(s.valueLength(ref));
  assertEquals(s.readValue(ref, out, 0), out.length);
  return out;
}

function text(s: Store, key: string): string | null {
  const v = get(s, key);
  return v === null ? null : dec.decode(v);
}

/** Runs the whole `Store` contract against the stores `make` builds. */
export function conformance(
  name: string,
  make: (opts: ConformanceOptions) => Store,
): void {
  function fixture(o: Partial<ConformanceOptions> = {}) {
    const clock = new ManualClock();
    const store = make({ limitBytes: 8 * MiB, itemSizeMax: MiB, evict: true, clock, ...o });
    return { store, clock };
  }

  Deno.test(`store conformance: ${name}`, async (t) => {
    await t.step("stores every byte value, \\r\\n included, under a binary key", () => {
      const { store } = fixture();
      const value = new Uint8Array(260);
      for (let i = 0; i < 256; i++) value[i] = i;
      value.set([13, 10, 13, 10], 256);
      const key = new Uint8Array([0x6b, 0x00, 0xff, 0x0d, 0x0a, 0x20]);
      assertEquals(put(store, key, value, { flags: 0xffffffff }), StoreResult.Stored);
      const ref = find(store, key);
      assertNotEquals(ref, NONE);
      assertEquals(get(store, key), value);
      assertEquals(store.flags(ref), 0xffffffff);
      assertEquals(store.exptime(ref), 0);
      assertEquals(store.lastAccess(ref), T0);
      assertEquals(store.keyLength(ref), key.length);
      const k = new Uint8Array(key.length + 2);
      assertEquals(store.readKey(ref, k, 2), key.length);
      assertEquals(k.subarray(2), key);
      const framed = new Uint8Array([9, 9, ...key, 9]);
      assertEquals(store.find(framed, 2, key.length), ref);
      assertEquals(store.find(framed, 2, key.length - 1), NONE);
      assert(store.itemSize(ref) >= key.length + value.length);
      assertEquals(store.groupStats("no such group"), null);
    });

    await t.step("writes a value in pieces and stores empty values", () => {
      const { store } = fixture();
      const src = new Uint8Array(3000);
      for (let i = 0; i < src.length; i++) src[i] = (i * 7) & 255;
      const key = bytes("pieces");
      const ref = store.alloc(key, 0, key.length, 2000, 3, 0);
      store.writeValue(ref, 0, src, 100, 10);
      store.writeValue(ref, 10, src, 110, 1500);
      store.writeValue(ref, 1510, src, 1610, 490);
      assertEquals(store.link(ref, Mode.Set, 0), StoreResult.Stored);
      assertEquals(get(store, "pieces"), src.subarray(100, 2100));
      assertEquals(put(store, "empty", ""), StoreResult.Stored);
      assertEquals(get(store, "empty"), new Uint8Array(0));
    });

    await t.step("add, replace, append and prepend", () => {
      const { store } = fixture();
      assertEquals(put(store, "a", "1", { mode: Mode.Add, flags: 5 }), StoreResult.Stored);
      assertEquals(put(store, "a", "2", { mode: Mode.Add }), StoreResult.NotStored);
      assertEquals(text(store, "a"), "1");
      assertEquals(put(store, "b", "x", { mode: Mode.Replace }), StoreResult.NotStored);
      assertEquals(get(store, "b"), null);
      const exptime = T0 + 1000;
      const res = put(store, "a", "3", { mode: Mode.Replace, flags: 6, exptime });
      assertEquals(res, StoreResult.Stored);
      assertEquals(text(store, "a"), "3");
      assertEquals(put(store, "c", "x", { mode: Mode.Append }), StoreResult.NotStored);
      assertEquals(put(store, "c", "x", { mode: Mode.Prepend }), StoreResult.NotStored);
      assertEquals(get(store, "c"), null);
      assertEquals(put(store, "a", "45", { mode: Mode.Append, flags: 9 }), StoreResult.Stored);
      assertEquals(store.linked, find(store, "a"));
      assertEquals(text(store, "a"), "345");
      assertEquals(put(store, "a", "12", { mode: Mode.Prepend }), StoreResult.Stored);
      assertEquals(text(store, "a"), "12345");
      const ref = find(store, "a");
      assertEquals(store.flags(ref), 6);
      assertEquals(store.exptime(ref), exptime);
      assertEquals(store.stats.curr_items, 1);
      assertEquals(store.size, 1);
    });

    await t.step("append beyond the item size limit is TooLarge and keeps the item", () => {
      const { store } = fixture();
      const max = MiB - itemTotal(3, 0, 0); // the largest value under key "big" with flags 0
      const big = new Uint8Array(max - 10).fill(65);
      assertEquals(put(store, "big", big), StoreResult.Stored);
      const res = put(store, "big", "x".repeat(20), { mode: Mode.Append });
      assertEquals(res, StoreResult.TooLarge);
      assertEquals(get(store, "big"), big);
      assertEquals(put(store, "big", "x".repeat(10), { mode: Mode.Append }), StoreResult.Stored);
      assertEquals(get(store, "big")?.length, max);
    });

    await t.step("alloc refuses items whose memcached size (itemTotal) is above the limit", () => {
      const { store } = fixture();
      const key = bytes("key");
      // memcached's item_size_ok: 56-byte header, key + 1, 4 bytes for non-zero flags, value + 2.
      assertEquals(itemTotal(3, 100, 0), 56 + 4 + 102);
      assertEquals(itemTotal(3, 100, 7), 56 + 4 + 4 + 102);
      for (const flags of [0, 7]) {
        const max = MiB - itemTotal(3, 0, flags);
        const ok = store.alloc(key, 0, 3, max, flags, 0);
        assertNotEquals(ok, NONE);
        store.release(ok);
        assertEquals(store.alloc(key, 0, 3, max + 1, flags, 0), NONE);
        assertEquals(store.allocFailure, AllocFailure.TooLarge);
      }
    });

    await t.step("cas: NotFound, Exists, Stored", () => {
      const { store } = fixture();
      assertEquals(put(store, "k", "v1"), StoreResult.Stored);
      const c1 = store.cas(store.linked);
      assert(c1 >= 1);
      assertEquals(put(store, "k", "bad", { cas: c1 + 1000 }), StoreResult.Exists);
      assertEquals(text(store, "k"), "v1");
      assertEquals(put(store, "k", "v2", { cas: c1 }), StoreResult.Stored);
      const c2 = store.cas(store.linked);
      assertNotEquals(c2, c1);
      assertEquals(text(store, "k"), "v2");
      assertEquals(put(store, "k", "v3", { cas: c1 }), StoreResult.Exists);
      assertEquals(put(store, "nope", "v", { cas: c1 }), StoreResult.NotFound);
      assertEquals(get(store, "nope"), null);
      assertEquals(store.stats.curr_items, 1);
    });

    await t.step("every link and renewCas gives a new, larger CAS", () => {
      const { store } = fixture();
      let last = 0;
      for (const key of ["a", "b", "a", "c", "a"]) {
        put(store, key, "v");
        const cas = store.cas(store.linked);
        assert(cas > last, `cas ${cas} after ${last}`);
        last = cas;
      }
      const ref = find(store, "b");
      const renewed = store.renewCas(ref);
      assert(renewed > last);
      assertEquals(store.cas(ref), renewed);
      assertEquals(store.cas(find(store, "b")), renewed);
      put(store, "b", "v", { mode: Mode.Append });
      assert(store.cas(store.linked) > renewed);
    });

    await t.step("expires at the exact second", () => {
      const { store, clock } = fixture();
      put(store, "e", "v", { exptime: T0 + 10 });
      clock.t = T0 + 9;
      assertEquals(text(store, "e"), "v");
      clock.t = T0 + 10;
      assertEquals(get(store, "e"), null);
      assertEquals(store.stats.get_expired, 1);
      assertEquals(store.stats.reclaimed, 1);
      assertEquals(store.stats.expired_unfetched, 1);
      assertEquals(store.stats.curr_items, 0);
    });

    await t.step("absoluteExptime: 0, negative, 30-day boundary, absolute past and future", () => {
      const { store, clock } = fixture();
      const now = T0;
      assertEquals(absoluteExptime(0, now), 0);
      assertEquals(absoluteExptime(-1, now), 1);
      assertEquals(absoluteExptime(REALTIME_MAXDELTA, now), now + 2592000);
      assertEquals(absoluteExptime(REALTIME_MAXDELTA + 1, now), 1);
      assertEquals(absoluteExptime(now, now), 1);
      assertEquals(absoluteExptime(now + 100, now), now + 100);
      put(store, "neg", "v", { exptime: absoluteExptime(-1, now) });
      put(store, "past", "v", { exptime: absoluteExptime(2592001, now) });
      put(store, "rel", "v", { exptime: absoluteExptime(2592000, now) });
      put(store, "abs", "v", { exptime: absoluteExptime(now + 100, now) });
      assertEquals(get(store, "neg"), null);
      assertEquals(get(store, "past"), null);
      clock.t = now + 99;
      assertEquals(text(store, "abs"), "v");
      clock.t = now + 100;
      assertEquals(get(store, "abs"), null);
      clock.t = now + 2592000 - 1;
      assertEquals(text(store, "rel"), "v");
      clock.t = now + 2592000;
      assertEquals(get(store, "rel"), null);
    });

    await t.step("touch changes the exptime", () => {
      const { store, clock } = fixture();
      put(store, "t", "v", { exptime: T0 + 10 });
      store.touch(find(store, "t"), T0 + 100);
      assertEquals(store.exptime(find(store, "t")), T0 + 100);
      clock.t = T0 + 50;
      assertEquals(text(store, "t"), "v");
      store.touch(find(store, "t"), 0);
      clock.t = T0 + 5000;
      assertEquals(text(store, "t"), "v");
      store.touch(find(store, "t"), 1);
      assertEquals(get(store, "t"), null);
    });

    await t.step("flush now invalidates every existing item", () => {
      const { store, clock } = fixture();
      put(store, "a", "1");
      put(store, "b", "2");
      store.flush(0);
      assertEquals(get(store, "a"), null);
      assertEquals(get(store, "b"), null);
      assertEquals(store.stats.get_flushed, 2);
      put(store, "c", "3");
      assertEquals(text(store, "c"), "3");
      clock.t = T0 + 5;
      store.flush(T0 + 5);
      assertEquals(get(store, "c"), null);
      put(store, "d", "4");
      store.flush(T0 - 100);
      assertEquals(get(store, "d"), null);
      put(store, "e", "5");
      assertEquals(text(store, "e"), "5");
    });

    await t.step("delayed flush invalidates what was stored before it took effect", () => {
      const { store, clock } = fixture();
      const at = T0 + 10;
      put(store, "a", "1");
      store.flush(at);
      clock.t = T0 + 5;
      put(store, "b", "2");
      clock.t = at - 2;
      assertEquals(text(store, "a"), "1");
      assertEquals(text(store, "b"), "2");
      clock.t = at;
      assertEquals(get(store, "a"), null);
      assertEquals(get(store, "b"), null);
      assertEquals(store.stats.get_flushed, 2);
      put(store, "c", "3");
      clock.t = at + 1;
      put(store, "d", "4");
      clock.t = at + 100;
      assertEquals(text(store, "c"), "3");
      assertEquals(text(store, "d"), "4");
    });

    await t.step("a delayed flush's oldest-live second is at - 1, as memcached's", () => {
      const { store, clock } = fixture();
      const at = T0 + 10;
      put(store, "a", "1");
      store.flush(at);
      clock.t = at - 2;
      assertEquals(text(store, "a"), "1");
      clock.t = at - 1; // memcached: oldest_live = realtime(delay) - 1 has come
      assertEquals(get(store, "a"), null);
      put(store, "same-second", "2"); // stored during the oldest-live second: flushed too
      assertEquals(get(store, "same-second"), null);
      clock.t = at;
      put(store, "after", "3");
      assertEquals(text(store, "after"), "3");
    });

    await t.step("an immediate flush takes a CAS value; a delayed one does not", () => {
      const { store } = fixture();
      put(store, "a", "1");
      const c1 = store.cas(store.linked);
      store.flush(0);
      put(store, "b", "2");
      assertEquals(store.cas(store.linked), c1 + 2);
      store.flush(T0 + 100);
      put(store, "c", "3");
      assertEquals(store.cas(store.linked), c1 + 3);
    });

    await t.step("valueView exposes the value's contiguous pieces for direct writes", () => {
      const { store } = fixture();
      const key = bytes("view");
      const size = 700 * 1024; // chained in the slab store (chunks are at most 512 KiB)
      const ref = store.alloc(key, 0, key.length, size, 0, 0);
      const expected = new Uint8Array(size);
      for (let off = 0; off < size;) {
        const view = store.valueView(ref, off, Math.min(5000, size - off));
        assert(view.length > 0 && view.length <= 5000);
        for (let i = 0; i < view.length; i++) view[i] = expected[off + i] = (off + i * 7) & 0xff;
        off += view.length;
      }
      assertEquals(store.link(ref, Mode.Set, 0), StoreResult.Stored);
      assertEquals(get(store, "view"), expected);
    });

    await t.step("unlink removes a live item", () => {
      const { store } = fixture();
      put(store, "u", "value");
      store.unlink(find(store, "u"));
      assertEquals(get(store, "u"), null);
      assertEquals(store.stats.curr_items, 0);
      assertEquals(store.stats.bytes, 0);
      assertEquals(put(store, "u", "again", { mode: Mode.Add }), StoreResult.Stored);
      assertEquals(text(store, "u"), "again");
    });

    await t.step("bump sets the fetched bit and the access time", () => {
      const { store, clock } = fixture();
      put(store, "f", "v");
      let ref = find(store, "f");
      assertEquals(store.fetched(ref), false);
      clock.t = T0 + 100;
      store.bump(ref);
      assertEquals(store.fetched(ref), true);
      assertEquals(store.lastAccess(ref), T0 + 100);
      put(store, "f", "w");
      ref = find(store, "f");
      assertEquals(store.fetched(ref), false);
      clock.t = T0 + 200;
      assertEquals(put(store, "f", "x", { mode: Mode.Add }), StoreResult.NotStored);
      assertEquals(store.lastAccess(find(store, "f")), T0 + 200);
    });

    await t.step("stale and win bits", () => {
      const { store } = fixture();
      put(store, "s", "v");
      const ref = find(store, "s");
      assertEquals([store.stale(ref), store.winSent(ref)], [false, false]);
      store.setStale(ref, true);
      assertEquals([store.stale(ref), store.winSent(ref)], [true, false]);
      store.setWinSent(ref, true);
      assertEquals([store.stale(ref), store.winSent(ref)], [true, true]);
      store.setStale(ref, false);
      assertEquals([store.stale(ref), store.winSent(ref)], [false, true]);
      assertEquals(text(store, "s"), "v");
      put(store, "s", "w");
      const again = find(store, "s");
      assertEquals([store.stale(again), store.winSent(again)], [false, false]);
    });

    await t.step("stats: items, bytes and expiry counters", () => {
      const { store, clock } = fixture();
      put(store, "x", "12345");
      put(store, "y", "1", { exptime: T0 + 1 });
      put(store, "z", "1", { exptime: T0 + 1 });
      put(store, "x", "1234567890");
      const s = store.stats;
      assertEquals([s.curr_items, s.total_items, store.size], [3, 4, 3]);
      const total = ["x", "y", "z"].reduce((n, k) => n + store.itemSize(find(store, k)), 0);
      assertEquals(s.bytes, total);
      store.bump(find(store, "z"));
      clock.t = T0 + 1;
      assertEquals(get(store, "y"), null);
      assertEquals(get(store, "z"), null);
      assertEquals([s.get_expired, s.reclaimed, s.expired_unfetched], [2, 2, 1]);
      assertEquals([s.curr_items, s.bytes], [1, store.itemSize(find(store, "x"))]);
      store.flush(0);
      assertEquals(get(store, "x"), null);
      assertEquals([s.get_flushed, s.curr_items, s.bytes], [1, 0, 0]);
      assertEquals(s.evictions, 0);
    });

    await t.step("alloc and release do not leak", () => {
      const { store } = fixture({ limitBytes: 4 * MiB });
      const key = bytes("leak");
      const value = new Uint8Array(1000).fill(1);
      for (let i = 0; i < 100_000; i++) {
        const ref = store.alloc(key, 0, key.length, value.length, 0, 0);
        assertNotEquals(ref, NONE);
        store.writeValue(ref, 0, value, 0, value.length);
        store.release(ref);
      }
      const s = store.stats;
      assertEquals([s.curr_items, s.total_items, s.bytes], [0, 0, 0]);
      const chunk = new Uint8Array(10_000).fill(2);
      for (let i = 0; i < 1200; i++) assertEquals(put(store, `k${i}`, chunk), StoreResult.Stored);
      assert(s.evictions > 0);
      for (let i = 0; i < 1000; i++) {
        const ref = store.alloc(key, 0, key.length, chunk.length, 0, 0);
        assertNotEquals(ref, NONE);
        store.release(ref);
      }
      assertEquals(get(store, "k1199"), chunk);
    });

    await t.step("without eviction, a full store fails with OutOfMemory", () => {
      const { store } = fixture({ limitBytes: 4 * MiB, evict: false });
      const chunk = new Uint8Array(10_000).fill(3);
      let stored = 0;
      for (; stored < 1000; stored++) {
        const key = bytes(`k${stored}`);
        const ref = store.alloc(key, 0, key.length, chunk.length, 0, 0);
        if (ref === NONE) break;
        store.writeValue(ref, 0, chunk, 0, chunk.length);
        assertEquals(store.link(ref, Mode.Set, 0), StoreResult.Stored);
      }
      assert(stored > 100 && stored < 1000, `stored ${stored}`);
      assertEquals(store.allocFailure, AllocFailure.OutOfMemory);
      assertEquals(store.stats.evictions, 0);
      assertEquals(get(store, "k0"), chunk);
      store.unlink(find(store, "k0"));
      assertEquals(put(store, "again", chunk), StoreResult.Stored);
      const key = bytes("more");
      assertEquals(store.alloc(key, 0, key.length, chunk.length, 0, 0), NONE);
    });

    await t.step("sweep reclaims expired and flushed items", () => {
      const { store, clock } = fixture();
      for (let i = 0; i < 100; i++) put(store, `e${i}`, "v", { exptime: T0 + 5 });
      for (let i = 0; i < 50; i++) put(store, `l${i}`, "v");
      clock.t = T0 + 5;
      let swept = 0;
      for (let n = store.sweep(50); n > 0; n = store.sweep(50)) swept += n;
      assertEquals(swept, 100);
      const s = store.stats;
      assertEquals([s.curr_items, s.reclaimed, s.expired_unfetched, s.get_expired], [
        50,
        100,
        100,
        0,
      ]);
      for (let i = 0; i < 50; i++) assertEquals(text(store, `l${i}`), "v");
      store.flush(0);
      swept = 0;
      for (let n = store.sweep(50); n > 0; n = store.sweep(50)) swept += n;
      assertEquals(swept, 50);
      assertEquals([s.curr_items, s.bytes], [0, 0]);
    });
  });
}

conformance("SlabStore", (o) => new SlabStore(o));
conformance(
  "SlabStore with 64 KiB pages and 16 KiB chunks (values over 16 KiB are chained)",
  (o) => new SlabStore({ ...o, pageSize: 64 << 10, chunkMax: 16 << 10, growthFactor: 2 }),
);
conformance(
  "SlabStore with -L (pages carved from huge-page arenas where Linux offers them)",
  (o) => new SlabStore({ ...o, largePages: true }),
);
conformance("MapStore", (o) => new MapStore(o));
