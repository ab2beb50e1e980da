/**
 * `SlabStore.getRun`, the loop that answers runs of plain `get <key>` lines: byte for byte the
 * replies, counts and LRU marks of the general path (`find`, `bump`, a `VALUE` reply), and a
 * stop before every line it leaves to that path. Time is a manual clock; nothing sleeps.
 *
 * @module
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { type Clock, Mode, NONE, StoreResult, WarmedKeys } from "../lib/store/store.ts";
import { SlabStore } from "../lib/store/slab.ts";
import { ReplyBuffer } from "../lib/reply.ts";
import { ClassCounter, ClassCounters, Counters } from "../lib/stats.ts";

const T0 = 1_700_000_000;
const KEY_MAX = 250;
const OUT_LIMIT = 1 << 20;
const enc = new TextEncoder();
const dec = new TextDecoder();

class ManualClock implements Clock {
  t = T0;
  now(): number {
    return this.t;
  }
}

function fixture() {
  const clock = new ManualClock();
  const store = new SlabStore({ limitBytes: 64 << 20, itemSizeMax: 1 << 20, evict: true, clock });
  const sink = {
    counters: new Counters(),
    classCounters: new ClassCounters(),
    out: new ReplyBuffer(),
  };
  return { store, clock, sink };
}

function put(store: SlabStore, key: string, value: string, flags = 0, exptime = 0): void {
  const k = enc.encode(key);
  const v = enc.encode(value);
  const ref = store.alloc(k, 0, k.length, v.length, flags, exptime);
  assert(ref !== NONE, `alloc of ${key}`);
  store.writeValue(ref, 0, v, 0, v.length);
  assertEquals(store.link(ref, Mode.Set, 0), StoreResult.Stored);
}

function find(store: SlabStore, key: string): number {
  const k = enc.encode(key);
  return store.find(k, 0, k.length);
}

/** Runs `getRun` over `text`; returns the bytes it consumed and the replies it wrote. */
function run(
  f: ReturnType<typeof fixture>,
  text: string,
  warmed = new WarmedKeys(),
  outLimit = OUT_LIMIT,
): { consumed: number; replies: string } {
  const buf = enc.encode(text);
  const before = f.sink.out.pos;
  const to = f.store.getRun(buf, 0, buf.length, KEY_MAX, warmed, f.sink, outLimit);
  const replies = dec.decode(f.sink.out.buf.subarray(before, f.sink.out.pos));
  return { consumed: to, replies };
}

Deno.test("getRun answers runs of plain gets as find, bump and a VALUE reply do", async (t) => {
  await t.step("hits and misses, CRLF or LF, byte for byte with memcached's replies", () => {
    const f = fixture();
    put(f.store, "k1", "hello", 7);
    put(f.store, "k2", "x".repeat(1000), 4294967295);
    const text = "get k1\r\nget nope\r\nget k2\nget k1\r\n";
    const { consumed, replies } = run(f, text);
    assertEquals(consumed, text.length);
    assertEquals(
      replies,
      "VALUE k1 7 5\r\nhello\r\nEND\r\nEND\r\n" +
        `VALUE k2 4294967295 1000\r\n${"x".repeat(1000)}\r\nEND\r\n` +
        "VALUE k1 7 5\r\nhello\r\nEND\r\n",
    );
    const c = f.sink.counters;
    assertEquals([c.cmd_get, c.get_hits, c.get_misses], [4, 3, 1]);
    const cls = f.store.slabClass(find(f.store, "k1"));
    const cls2 = f.store.slabClass(find(f.store, "k2"));
    assert(cls !== cls2);
    assertEquals(f.sink.classCounters.value(ClassCounter.get_hits, cls), 2);
    assertEquals(f.sink.classCounters.value(ClassCounter.get_hits, cls2), 1);
  });

  await t.step("a hit is marked fetched and its access time is now, as bump marks it", () => {
    const f = fixture();
    put(f.store, "a", "1");
    put(f.store, "b", "2");
    f.clock.t += 30;
    run(f, "get a\r\n");
    assert(f.store.fetched(find(f.store, "a")));
    assertEquals(f.store.lastAccess(find(f.store, "a")), T0 + 30);
    assert(!f.store.fetched(find(f.store, "b")));
    assertEquals(f.store.lastAccess(find(f.store, "b")), T0);
  });

  await t.step("the 250-byte key of memcached's limit is answered", () => {
    const f = fixture();
    const key = "k".repeat(250);
    put(f.store, key, "v");
    const text = `get ${key}\r\n`;
    assertEquals(run(f, text), {
      consumed: text.length,
      replies: `VALUE ${key} 0 1\r\nv\r\nEND\r\n`,
    });
  });

  await t.step("warmed keys use warm's hashes and are passed", () => {
    const f = fixture();
    put(f.store, "k1", "one");
    put(f.store, "k2", "two");
    const text = "get k1\r\nget k2\r\nset x 0 0 1\r\n";
    const buf = enc.encode(text);
    const warmed = new WarmedKeys();
    warmed.starts.set([4, 12, 20]);
    warmed.lens.set([2, 2, 1]);
    f.store.warm(buf, warmed.starts, warmed.lens, warmed.hashes, 3);
    warmed.count = 3;
    const { consumed, replies } = run(f, text, warmed);
    assertEquals(consumed, 16);
    assertEquals(replies, "VALUE k1 0 3\r\none\r\nEND\r\nVALUE k2 0 3\r\ntwo\r\nEND\r\n");
    assertEquals(warmed.next, 2);
  });

  await t.step("it stops before each line it leaves to the general path", () => {
    const f = fixture();
    put(f.store, "live", "v");
    put(f.store, "gone", "v", 0, T0 - 1);
    put(f.store, "big", "b".repeat(16 * 1024));
    put(f.store, "chained", "c".repeat(600 * 1024));
    const first = "get live\r\n";
    const cases = [
      "set live 0 0 1\r\nv\r\n",
      "gets live\r\n",
      "get live live\r\n",
      "get live",
      "get live\r",
      "get  live\r\n",
      `get ${"k".repeat(251)}\r\n`,
      "get gone\r\n",
      "get big\r\n",
      "get chained\r\n",
      "GET live\r\n",
    ];
    for (const line of cases) {
      const before = { ...f.sink.counters };
      const { consumed, replies } = run(f, first + line);
      assertEquals(consumed, first.length, JSON.stringify(line));
      assertEquals(replies, "VALUE live 0 1\r\nv\r\nEND\r\n", JSON.stringify(line));
      assertEquals(f.sink.counters.cmd_get, before.cmd_get + 1, JSON.stringify(line));
    }
    // the expired item was left where it was: the general path reclaims and counts it
    assertEquals(f.store.stats.get_expired, 0);
    assertEquals(f.store.stats.curr_items, 4);
  });

  await t.step(
    "an item due an LRU move, a flushed one, a flush to come: left to the general path",
    () => {
      const f = fixture();
      put(f.store, "old", "v");
      f.clock.t += 60;
      assertEquals(run(f, "get old\r\n").consumed, 0);
      f.store.bump(find(f.store, "old"));
      assertEquals(run(f, "get old\r\n").consumed, 9);
      f.store.flush(0);
      assertEquals(run(f, "get old\r\n").consumed, 0);
      put(f.store, "new", "v");
      assertEquals(run(f, "get new\r\n").consumed, 9);
      f.store.flush(f.clock.t + 10);
      assertEquals(run(f, "get new\r\n").consumed, 0, "a delayed flush is pending");
    },
  );

  await t.step("it stops once the replies reach the limit it is given", () => {
    const f = fixture();
    put(f.store, "k", "v".repeat(100));
    const one = "get k\r\n";
    const { consumed, replies } = run(f, one.repeat(10), new WarmedKeys(), 300);
    // each reply is 122 bytes: the third starts below 300 and ends past it
    assertEquals(consumed, 3 * one.length);
    assertEquals(replies.length, 3 * 122);
  });

  await t.step("while the index doubles it answers nothing, and the general path all", () => {
    const f = fixture();
    let i = 0;
    while (!Object.fromEntries(f.store.extraStats()).hash_is_expanding) {
      put(f.store, `k${i++}`, "v");
    }
    assertEquals(run(f, "get k0\r\n").consumed, 0);
    while (Object.fromEntries(f.store.extraStats()).hash_is_expanding) f.store.sweep(100);
    assertEquals(run(f, "get k0\r\n").consumed, 8);
  });
});
