/**
 * Warm restart (`--snapshot`, lib/snapshot.ts): the checksum, the stores' `scan`/`restore`, the
 * file format against every corruption of a small file (in process, on a manual clock), and
 * real restarts of a memg child: every item back with its value, flags, CAS and TTL, items
 * expired while down dropped, `shutdown` saving, bad files reported and ignored, atomic saves,
 * and 200,000 items (the million is `deno run -A bench/snapshot.ts`).
 *
 * @module
 */
import {
  assert,
  assertEquals,
  assertGreater,
  assertMatch,
  assertStringIncludes,
} from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { type ChildMemg, spawnMemg } from "./helpers/server.ts";
import {
  crc32c,
  HEADER_LENGTH,
  loadSnapshot,
  saveSnapshot,
  type SnapshotLog,
} from "../lib/snapshot.ts";
import { MapStore } from "../lib/store/map.ts";
import { SlabStore } from "../lib/store/slab.ts";
import { type Clock, type ItemRef, Mode, NONE, type Store } from "../lib/store/store.ts";
import {
  checkAll,
  checkTtls,
  currItems,
  FAR_EXPTIME,
  fillItems,
  reportedMs,
} from "../bench/snapshot.ts";

const T0 = 1_700_000_000;
const MiB = 1 << 20;
const enc = new TextEncoder();
const latin1 = new TextDecoder("latin1");

class ManualClock implements Clock {
  t = T0;
  now(): number {
    return this.t;
  }
}

/** A log that keeps what it is told. */
function capture(): SnapshotLog & { infos: string[]; errors: string[] } {
  const infos: string[] = [];
  const errors: string[] = [];
  return { infos, errors, info: (l) => void infos.push(l), error: (l) => void errors.push(l) };
}

function slabStore(clock: Clock): SlabStore {
  return new SlabStore({ limitBytes: 64 * MiB, itemSizeMax: MiB, evict: true, clock });
}

function mapStore(clock: Clock): MapStore {
  return new MapStore({ limitBytes: 64 * MiB, itemSizeMax: MiB, evict: true, clock });
}

/** Stores an item; returns its CAS. */
function put(s: Store, key: Uint8Array, value: Uint8Array, flags = 0, exptime = 0): number {
  const ref = s.alloc(key, 0, key.length, value.length, flags, exptime);
  assert(ref !== NONE, "alloc failed");
  s.writeValue(ref, 0, value, 0, value.length);
  s.link(ref, Mode.Set, 0);
  return s.cas(s.linked);
}

interface Dumped {
  /** Bytes as Latin-1 text (one char per byte), which compares fast. */
  key: string;
  value: string;
  flags: number;
  exptime: number;
  cas: number;
}

/** Every live item in scan order, as plain data. */
function dump(s: Store): Dumped[] {
  const out: Dumped[] = [];
  s.scan((ref: ItemRef) => {
    const key = new Uint8Array(s.keyLength(ref));
    s.readKey(ref, key, 0);
    const value = new Uint8Array(s.valueLength(ref));
    s.readValue(ref, value, 0);
    out.push({
      key: latin1.decode(key),
      value: latin1.decode(value),
      flags: s.flags(ref),
      exptime: s.exptime(ref),
      cas: s.cas(ref),
    });
  });
  return out;
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 17 + (i >>> 9)) & 0xff;
  return b;
}

/** Fills a store with items of mixed sizes: binary keys, a chained 900 KB value, TTLs. */
function fill(s: Store, now: number): void {
  put(s, enc.encode("plain"), enc.encode("hello"), 7, 0);
  put(s, new Uint8Array([0, 1, 2, 0xff, 0x0d, 0x0a, 0x20]), pattern(256, 1), 0xffffffff, now + 100);
  put(s, enc.encode("large"), pattern(900 * 1024, 2), 3, now + 5000);
  put(s, enc.encode("short"), enc.encode("soon gone"), 0, now + 2);
  put(s, enc.encode("empty"), new Uint8Array(0), 1, 0);
  for (let i = 0; i < 50; i++) put(s, enc.encode(`k${i}`), pattern(10 + i * 40, i), i, 0);
}

/** Bitwise CRC-32C, the definition the table-driven one must match. */
function crcReference(b: Uint8Array): number {
  let c = ~0;
  for (const byte of b) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

Deno.test("snapshot: format, checksum and store iteration (in process)", async (t) => {
  const dir = Deno.makeTempDirSync({ prefix: "memg-snapshot-" });
  const path = `${dir}/cache.snap`;
  try {
    await t.step("CRC-32C: check value, every alignment and length, chaining", () => {
      assertEquals(crc32c(0, enc.encode("123456789"), 0, 9), 0xe3069283);
      const data = pattern(300, 9);
      for (let off = 0; off < 8; off++) {
        for (let end = off; end <= data.length; end += 13) {
          assertEquals(crc32c(0, data, off, end), crcReference(data.subarray(off, end)));
        }
      }
      const whole = crc32c(0, data, 0, data.length);
      assertEquals(crc32c(crc32c(0, data, 0, 123), data, 123, data.length), whole);
    });

    for (const [name, make] of [["SlabStore", slabStore], ["MapStore", mapStore]] as const) {
      await t.step(
        `${name}: scan visits live items only; restore keeps CAS, counter follows`,
        () => {
          const clock = new ManualClock();
          const s = make(clock);
          put(s, enc.encode("a"), enc.encode("1"));
          put(s, enc.encode("b"), enc.encode("2"), 0, T0 + 5);
          put(s, enc.encode("c"), enc.encode("3"));
          clock.t = T0 + 5; // b expires
          assertEquals(dump(s).map((d) => d.key).sort(), ["a", "c"]);
          s.flush(0);
          assertEquals(dump(s).length, 0, "flushed items are not visited");

          const fresh = make(clock);
          const ref = fresh.alloc(enc.encode("x"), 0, 1, 2, 9, 0);
          fresh.writeValue(ref, 0, enc.encode("xy"), 0, 2);
          fresh.restore(ref, 1000);
          const found = fresh.find(enc.encode("x"), 0, 1);
          assertEquals(fresh.cas(found), 1000);
          assertEquals(fresh.flags(found), 9);
          assertEquals(put(fresh, enc.encode("y"), enc.encode("new")), 1001);
          // A lower restored CAS does not move the counter back; restoring a key replaces it.
          const again = fresh.alloc(enc.encode("y"), 0, 1, 1, 0, 0);
          fresh.writeValue(again, 0, enc.encode("z"), 0, 1);
          fresh.restore(again, 5);
          assertEquals(fresh.cas(fresh.find(enc.encode("y"), 0, 1)), 5);
          assertEquals(fresh.size, 2);
          assertEquals(put(fresh, enc.encode("w"), enc.encode("w")), 1002);
        },
      );

      await t.step(`${name}: save and load round trip, exact fields, expired dropped`, () => {
        const clock = new ManualClock();
        const s = make(clock);
        fill(s, T0);
        const before = dump(s);
        const log = capture();
        const saved = saveSnapshot(s, path, log);
        assert(saved !== null);
        assertEquals(saved.items, before.length);
        assertEquals(saved.bytes, Deno.statSync(path).size);
        assertMatch(log.infos[0], /saved 55 items \(\d+\.\d KiB\) in \d+ ms$/);

        clock.t = T0 + 2; // "short" expired while down
        const loaded = make(clock);
        const result = loadSnapshot(loaded, path, log);
        assertEquals(log.errors, []);
        assertEquals(result.status, "loaded");
        assertEquals(result.restored, before.length - 1);
        assertEquals(result.expired, 1);
        assertEquals(result.refused, 0);
        const expected = before.filter((d) => d.key !== "short");
        assertEquals(dump(loaded), expected, "same items, same fields, same LRU order");
        const maxCas = Math.max(...before.map((d) => d.cas));
        assertGreater(put(loaded, enc.encode("next"), enc.encode("n")), maxCas);
      });
    }

    await t.step("a store with a smaller -I refuses what it cannot hold, reported", () => {
      const clock = new ManualClock();
      const s = slabStore(clock);
      fill(s, T0);
      assert(saveSnapshot(s, path, capture()) !== null);
      const small = new SlabStore({
        limitBytes: 64 * MiB,
        itemSizeMax: 512 * 1024,
        evict: true,
        clock,
      });
      const log = capture();
      const result = loadSnapshot(small, path, log);
      assertEquals([result.status, result.refused, result.restored], ["loaded", 1, 54]);
      assertStringIncludes(log.infos.at(-1)!, "1 refused by the store");
      assertEquals(small.find(enc.encode("large"), 0, 5), NONE);
    });

    await t.step(
      "every truncation and every flipped byte of a file is reported, nothing loaded",
      () => {
        const clock = new ManualClock();
        const s = slabStore(clock);
        put(s, enc.encode("a"), pattern(40, 1), 1, 0);
        put(s, new Uint8Array([0xfe, 0]), pattern(70, 2), 2, T0 + 50);
        put(s, enc.encode("c"), new Uint8Array(0), 3, 0);
        assert(saveSnapshot(s, path, capture()) !== null);
        const good = Deno.readFileSync(path);
        const bad = `${dir}/bad.snap`;
        const target = slabStore(clock); // stays empty: no attempt loads anything
        const attempt = (bytes: Uint8Array): string => {
          Deno.writeFileSync(bad, bytes);
          const log = capture();
          const result = loadSnapshot(target, bad, log);
          assertEquals(result.status, "invalid");
          assertEquals([target.size, log.errors.length], [0, 1]);
          return log.errors[0];
        };
        for (let n = 0; n < good.length; n++) {
          const message = attempt(good.slice(0, n));
          if (n === 0) assertStringIncludes(message, "ignored: empty file;");
          else if (n < HEADER_LENGTH) assertStringIncludes(message, "ignored: truncated header");
          else assertStringIncludes(message, `ignored: truncated: ${n} bytes, the header says`);
        }
        for (let i = 0; i < good.length; i++) {
          const flipped = good.slice();
          flipped[i] ^= 0x5a;
          const message = attempt(flipped);
          if (i < 8) assertStringIncludes(message, "ignored: not a memg snapshot (bad magic);");
          else if (i < 12) assertStringIncludes(message, "ignored: unsupported version");
          else if (i < HEADER_LENGTH) assertStringIncludes(message, "ignored: corrupt header");
          else assertStringIncludes(message, "ignored: corrupt: checksum mismatch;");
          assertStringIncludes(message, "starting with an empty cache");
        }
        const longer = new Uint8Array(good.length + 3);
        longer.set(good);
        assertStringIncludes(attempt(longer), "3 bytes past the end the header gives");
        const v2 = good.slice();
        v2[8] = 2;
        new DataView(v2.buffer).setUint32(44, crc32c(0, v2, 0, 44), true);
        assertStringIncludes(attempt(v2), "unsupported version 2");
        assertStringIncludes(attempt(enc.encode("VALUE foo 0 3\r\nbar\r\n")), "bad magic");
      },
    );

    await t.step("a missing file is a first start; an unreadable one is reported", () => {
      const log = capture();
      const result = loadSnapshot(slabStore(new ManualClock()), `${dir}/none.snap`, log);
      assertEquals([result.status, log.errors.length], ["missing", 0]);
      assertStringIncludes(log.infos[0], "not found; starting with an empty cache");
      const asDir = loadSnapshot(slabStore(new ManualClock()), dir, log);
      assertEquals(asDir.status, "invalid");
      assertEquals(log.errors.length, 1);
    });

    await t.step("a second pass that fails unloads what it loaded", () => {
      const clock = new ManualClock();
      const s = mapStore(clock);
      fill(s, T0);
      assert(saveSnapshot(s, path, capture()) !== null);
      class FailingStore extends MapStore {
        restored = 0;
        override restore(ref: ItemRef, cas: number): void {
          if (++this.restored === 10) throw new Error("disk gone");
          super.restore(ref, cas);
        }
      }
      const target = new FailingStore({
        limitBytes: 64 * MiB,
        itemSizeMax: MiB,
        evict: true,
        clock,
      });
      const log = capture();
      assertEquals(loadSnapshot(target, path, log).status, "invalid");
      assertStringIncludes(log.errors[0], "ignored: disk gone; starting with an empty cache");
      assertEquals(target.find(enc.encode("plain"), 0, 5), NONE, "restored items flushed");
      assertEquals(dump(target).length, 0);
    });

    await t.step("save: a leftover .tmp is replaced; a failed save leaves the old file", () => {
      const clock = new ManualClock();
      const s = slabStore(clock);
      put(s, enc.encode("a"), enc.encode("1"));
      Deno.writeFileSync(`${path}.tmp`, enc.encode("half a snapshot from a crash"));
      assert(saveSnapshot(s, path, capture()) !== null);
      assertEquals(exists(`${path}.tmp`), false);
      const good = Deno.readFileSync(path);

      put(s, enc.encode("b"), enc.encode("2"));
      Deno.mkdirSync(`${path}.tmp`); // opening FILE.tmp for writing now fails, even for root
      const log = capture();
      assertEquals(saveSnapshot(s, path, log), null);
      assertStringIncludes(log.errors[0], "not saved:");
      assertStringIncludes(log.errors[0], "the previous file is unchanged");
      assertEquals(Deno.readFileSync(path), good);
      assert(Deno.statSync(`${path}.tmp`).isDirectory, "what it did not create is left alone");
      Deno.removeSync(`${path}.tmp`);

      const nowhere = capture();
      assertEquals(saveSnapshot(s, `${dir}/no/such/dir.snap`, nowhere), null);
      assertEquals(nowhere.errors.length, 1);

      // The rename itself fails (a directory is in the way): the written .tmp is removed.
      Deno.mkdirSync(`${dir}/in-the-way`);
      const blocked = capture();
      assertEquals(saveSnapshot(s, `${dir}/in-the-way`, blocked), null);
      assertStringIncludes(blocked.errors[0], "not saved:");
      assertEquals(exists(`${dir}/in-the-way.tmp`), false);
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** An item the child-process test stores and expects back. */
interface Expect {
  /** `mg` key token (base64 with the `b` flag for binary keys). */
  key: string;
  binary: boolean;
  value: Uint8Array;
  flags: number;
  /** Absolute exptime, 0 = never, or null for a relative TTL checked loosely. */
  exptime: number | null;
}

/** `mg <key> v f c t` of one item: its value, flags, CAS and remaining TTL; null on a miss. */
async function mg(
  c: RawClient,
  e: Expect,
): Promise<{ value: Uint8Array; flags: number; cas: number; ttl: number } | null> {
  await c.send(`mg ${e.key} ${e.binary ? "b " : ""}v f c t\r\n`);
  const head = await c.readLine();
  if (head === "EN") return null;
  const m = /^VA (\d+) f(\d+) c(\d+) t(-?\d+)$/.exec(head);
  assert(m !== null, `mg ${e.key}: ${head}`);
  const value = await c.readBytes(Number(m[1]) + 2);
  return {
    value: value.subarray(0, -2),
    flags: Number(m[2]),
    cas: Number(m[3]),
    ttl: Number(m[4]),
  };
}

async function store(c: RawClient, e: Expect, ttl: number): Promise<void> {
  const head = `ms ${e.key} ${e.value.length} ${e.binary ? "b " : ""}F${e.flags} T${ttl}\r\n`;
  await c.send(head);
  await c.send(e.value);
  assertEquals(await c.call("\r\n"), "HD\r\n");
}

function b64(bytes: number[]): string {
  return btoa(String.fromCharCode(...bytes));
}

/** Checks every item in `items` is there, identical, with `cas[i]` and its exptime. */
async function expectItems(port: number, items: Expect[], cas: number[]): Promise<void> {
  const c = await RawClient.connect(port);
  try {
    for (let i = 0; i < items.length; i++) {
      const before = Math.floor(Date.now() / 1000);
      const got = await mg(c, items[i]);
      const after = Math.floor(Date.now() / 1000);
      assert(got !== null, `${items[i].key} is back`);
      assertEquals(got.value, items[i].value, `${items[i].key}: value`);
      assertEquals(got.flags, items[i].flags, `${items[i].key}: flags`);
      assertEquals(got.cas, cas[i], `${items[i].key}: cas`);
      const e = items[i].exptime;
      if (e === 0) assertEquals(got.ttl, -1);
      else if (e !== null) {
        // The server's clock is the wall clock read at most 0.2 s ago.
        assert(
          e - got.ttl >= before - 1 && e - got.ttl <= after,
          `${items[i].key}: ttl ${got.ttl}`,
        );
      } else assert(got.ttl > 900 && got.ttl <= 1000, `${items[i].key}: ttl ${got.ttl}`);
    }
    // `gets` shows the same CAS through the classic protocol.
    const text = items.filter((e) => !e.binary);
    const reply = await c.call(`gets ${text.map((e) => e.key).join(" ")}\r\n`, "END\r\n");
    for (const e of text) {
      assertStringIncludes(
        reply,
        `VALUE ${e.key} ${e.flags} ${e.value.length} ${cas[items.indexOf(e)]}\r\n`,
      );
    }
  } finally {
    c.close();
  }
}

async function stopped(m: ChildMemg, expectCode: number, signal?: Deno.Signal): Promise<void> {
  const status = await m.stop(signal);
  assertEquals(status.code, expectCode, `exit code; stderr: ${m.stderr.join("")}`);
}

Deno.test("snapshot: warm restart of a memg child process", async (t) => {
  const dir = Deno.makeTempDirSync({ prefix: "memg-snapshot-" });
  const path = `${dir}/cache.snap`;
  const running = new Set<ChildMemg>();
  const spawn = async (args: string[]) => {
    const m = await spawnMemg(args);
    running.add(m);
    return m;
  };
  const far = FAR_EXPTIME + 12345;
  const items: Expect[] = [
    { key: "plain", binary: false, value: enc.encode("hello"), flags: 7, exptime: 0 },
    { key: "absolute", binary: false, value: pattern(300, 3), flags: 0xffffffff, exptime: far },
    { key: "relative", binary: false, value: pattern(1000, 4), flags: 1, exptime: null },
    { key: "large", binary: false, value: pattern(900 * 1024, 5), flags: 42, exptime: 0 },
    {
      key: b64([0, 1, 0xff, 0x0d, 0x0a, 32]),
      binary: true,
      value: pattern(64, 6),
      flags: 5,
      exptime: 0,
    },
    { key: b64([0xc3, 0x28, 0x80]), binary: true, value: pattern(5000, 7), flags: 0, exptime: far },
    { key: "empty", binary: false, value: new Uint8Array(0), flags: 0, exptime: 0 },
  ];
  const cas: number[] = [];
  let again: ChildMemg | null = null;
  try {
    await t.step(
      "SIGTERM saves every item; a restart brings them back; expired-while-down dropped",
      async () => {
        const m = await spawn(["--snapshot", path]);
        const c = await RawClient.connect(m.port);
        for (const e of items) await store(c, e, e.exptime === null ? 1000 : e.exptime);
        for (const e of items) cas.push((await mg(c, e))!.cas);
        // Stored last, just before the save: alive at the save, expired at the restart.
        assertEquals(await c.call("set short 0 2 4\r\ngone\r\n"), "STORED\r\n");
        const setBy = Math.floor(Date.now() / 1000); // "short" expires at setBy + 2 at the latest
        c.close();
        await stopped(m, 0);
        running.delete(m);
        assertMatch(m.stdout.at(-1)!, /snapshot .*: saved 8 items \(\d+\.\d KiB\) in \d+ ms$/);
        assertEquals(exists(`${path}.tmp`), false);

        // Start again once "short" (TTL 2 s) has expired.
        const wait = (setBy + 2) * 1000 - Date.now() + 50;
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        again = await spawn(["--snapshot", path, "-A"]);
        assertStringIncludes(
          again.stdout.join("\n"),
          "restored 7 items (1 expired while down, 0 refused",
        );
        await expectItems(again.port, items, cas);
        const c2 = await RawClient.connect(again.port);
        assertEquals(await c2.call("get short\r\n"), "END\r\n");
        assertEquals(await c2.call("set later 0 0 1\r\nL\r\n"), "STORED\r\n");
        const later = /^VALUE later 0 1 (\d+)\r\n/.exec(await c2.call("gets later\r\n", "END\r\n"));
        c2.close();
        assert(later !== null);
        assertGreater(
          Number(later[1]),
          Math.max(...cas),
          "new CAS values continue above restored ones",
        );
        items.push({ key: "later", binary: false, value: enc.encode("L"), flags: 0, exptime: 0 });
        cas.push(Number(later[1]));
      },
    );

    await t.step("the shutdown command (-A) saves too", async () => {
      const c = await RawClient.connect(again!.port);
      await c.send("shutdown\r\n");
      assert(await c.closedByServer(5000), "shutdown closes the connection");
      c.close();
      assertEquals((await again!.process.status).code, 0);
      await again!.stop();
      running.delete(again!);
      assertMatch(again!.stdout.at(-1)!, /saved 8 items/);
    });

    await t.step(
      "a leftover FILE.tmp from a crash is ignored at start and replaced at save (SIGINT)",
      async () => {
        Deno.writeFileSync(`${path}.tmp`, enc.encode("MEMGSNAP and then a crash"));
        const m = await spawn(["--snapshot", path]);
        await expectItems(m.port, items, cas);
        assertEquals(m.stderr.join("").includes("memg: snapshot"), false, "no report on stderr");
        await stopped(m, 0, "SIGINT");
        running.delete(m);
        assertEquals(exists(`${path}.tmp`), false);
        assertStringIncludes(m.stdout.at(-1)!, "saved 8 items");
      },
    );

    await t.step(
      "a save that fails exits 1, reported, and leaves the previous file intact",
      async () => {
        const m = await spawn(["--snapshot", path]);
        const c = await RawClient.connect(m.port);
        assertEquals(await c.call("set extra 0 0 1\r\nx\r\n"), "STORED\r\n");
        c.close();
        const previous = Deno.readFileSync(path);
        Deno.mkdirSync(`${path}.tmp`);
        await stopped(m, 1);
        running.delete(m);
        assertStringIncludes(m.stderr.join(""), "not saved:");
        assertEquals(Deno.readFileSync(path), previous);
        Deno.removeSync(`${path}.tmp`);
      },
    );

    await t.step(
      "corrupt, truncated, foreign and empty files: reported, start empty, exit 0",
      async () => {
        const good = Deno.readFileSync(path);
        const flipped = good.slice();
        flipped[good.length - 10] ^= 1;
        const foreign = good.slice();
        foreign[0] = 0x58;
        const cases: Array<[string, Uint8Array, string]> = [
          ["flipped", flipped, "corrupt: checksum mismatch"],
          ["truncated", good.slice(0, good.length - 1000), "truncated:"],
          ["foreign", foreign, "not a memg snapshot (bad magic)"],
          ["empty", new Uint8Array(0), "empty file"],
        ];
        await Promise.all(cases.map(async ([name, bytes, reason]) => {
          const file = `${dir}/${name}.snap`;
          Deno.writeFileSync(file, bytes);
          const m = await spawn(["--snapshot", file]);
          assertEquals(await currItems(m.port), 0, name);
          const c = await RawClient.connect(m.port);
          assertEquals(
            await c.call("set k 0 0 1\r\nv\r\nget k\r\n", "END\r\n"),
            "STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n",
          );
          c.close();
          await stopped(m, 0);
          running.delete(m);
          const stderr = m.stderr.join("");
          assertStringIncludes(stderr, `memg: snapshot ${file}: ignored: ${reason}`);
          assertStringIncludes(stderr, "starting with an empty cache");
        }));
      },
    );

    await t.step(
      "200,000 items: restart, all back byte for byte with their CAS; timings",
      async () => {
        const big = `${dir}/big.snap`;
        const n = 200_000;
        const m = await spawn(["-m", "256", "--snapshot", big]);
        await fillItems(m.port, n);
        assertEquals(await currItems(m.port), n);
        const casBefore = await checkAll(m.port, n);
        await stopped(m, 0);
        running.delete(m);
        const saveMs = reportedMs(m.stdout, "saved");
        const m2 = await spawn(["-m", "256", "--snapshot", big]);
        const loadMs = reportedMs(m2.stdout, "restored");
        assertStringIncludes(m2.stdout.join("\n"), `restored ${n} items (0 expired`);
        assertEquals(await currItems(m2.port), n);
        await checkAll(m2.port, n, casBefore);
        await checkTtls(m2.port, n, 10_000);
        await stopped(m2, 0);
        running.delete(m2);
        assert(saveMs >= 0 && loadMs >= 0, "the server reported both timings");
        const mib = (Deno.statSync(big).size / MiB).toFixed(1);
        console.log(`    ${n} items, ${mib} MiB: saved in ${saveMs} ms, loaded in ${loadMs} ms`);
      },
    );
  } finally {
    for (const m of running) await m.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
