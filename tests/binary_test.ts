/**
 * The binary protocol over real sockets: every opcode's success, quiet and error paths,
 * pipelines, malformed headers, values over -I, bodies split across reads, protocol selection
 * (-B) and SASL (-S).
 */
import { assert, assertEquals, assertGreater, assertThrows } from "./helpers/assert.ts";
import { latin1, RawClient } from "./helpers/client.ts";
import { type InProcessMemg, startMemg } from "./helpers/server.ts";
import { AuthFileError } from "../lib/auth.ts";
import { Op, Status } from "../lib/protocol/binary.ts";
import { statsGroup } from "../lib/report.ts";
import { arithExt, type Req, req, setExt, u32s } from "./helpers/binary.ts";

// ---- request encoding and response decoding -------------------------------------------------

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

interface Res {
  op: number;
  status: number;
  opaque: number;
  cas: bigint;
  extras: Uint8Array;
  key: string;
  value: string;
  /** The value as bytes. */
  data: Uint8Array;
  raw: Uint8Array;
}

/** Bytes as text, one char per byte (TextDecoder's "latin1" is windows-1252). */
function text(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 4096) {
    s += String.fromCharCode(...b.subarray(i, i + 4096));
  }
  return s;
}

/** Decodes one response from its header `h` and `body`. */
function decode(h: Uint8Array, body: Uint8Array): Res {
  const dv = new DataView(h.buffer, h.byteOffset, 24);
  assertEquals(h[0], 0x81, "response magic");
  const keylen = dv.getUint16(2);
  const extlen = h[4];
  return {
    op: h[1],
    status: dv.getUint16(6),
    opaque: dv.getUint32(12),
    cas: dv.getBigUint64(16),
    extras: body.subarray(0, extlen),
    key: text(body.subarray(extlen, extlen + keylen)),
    value: text(body.subarray(extlen + keylen)),
    data: body.subarray(extlen + keylen),
    raw: concat(h, body),
  };
}

async function read(c: RawClient): Promise<Res> {
  const h = await c.readBytes(24);
  return decode(h, await c.readBytes(new DataView(h.buffer).getUint32(8)));
}

/** Decodes a stream of whole responses. */
function decodeAll(all: Uint8Array): Res[] {
  const out: Res[] = [];
  let p = 0;
  while (p < all.length) {
    const end = p + 24 + new DataView(all.buffer, all.byteOffset + p).getUint32(8);
    out.push(decode(all.subarray(p, p + 24), all.subarray(p + 24, end)));
    p = end;
  }
  return out;
}

/** Sends `requests` in one write and reads responses until the Noop with `opaque` 0xfeed. */
async function pipeline(c: RawClient, ...requests: Req[]): Promise<Res[]> {
  await c.send(concat(...requests.map(req), req({ op: Op.Noop, opaque: 0xfeed })));
  const out: Res[] = [];
  for (;;) {
    const r = await read(c);
    if (r.op === Op.Noop && r.opaque === 0xfeed) return out;
    out.push(r);
  }
}

/** One request, one response. */
async function call(c: RawClient, r: Req): Promise<Res> {
  await c.send(req(r));
  return await read(c);
}

function flagsOf(r: Res): number {
  return new DataView(r.extras.buffer, r.extras.byteOffset, r.extras.length).getUint32(0);
}

function u64Of(value: string): bigint {
  return new DataView(latin1(value).buffer).getBigUint64(0);
}

/** A server with a hand-moved clock, and a connected client. */
async function withServer(
  args: string[],
  fn: (c: RawClient, memg: InProcessMemg, clock: { t: number }) => Promise<void>,
): Promise<void> {
  const clock = { t: 1_700_000_000 };
  const memg = startMemg(args, { now: () => clock.t });
  const c = await RawClient.connect(memg.port);
  try {
    await fn(c, memg, clock);
  } finally {
    c.close();
    await memg.close();
  }
}

// ---- tests ----------------------------------------------------------------------------------

Deno.test("binary get family: hits, misses, quiet misses, keys, flags, CAS and opaque", async (t) => {
  await withServer([], async (c) => {
    const set = await call(c, {
      op: Op.Set,
      key: "k",
      extras: setExt(0xdeadbeef),
      value: "hello",
      opaque: 7,
    });
    assertEquals([set.status, set.opaque, set.value], [Status.Ok, 7, ""]);
    assertGreater(set.cas, 0n);
    await t.step("Get and GetK hits carry flags, CAS and (GetK) the key", async () => {
      const [get, getk, getq, getkq] = await pipeline(
        c,
        { op: Op.Get, key: "k", opaque: 1 },
        { op: Op.GetK, key: "k", opaque: 2 },
        { op: Op.GetQ, key: "k", opaque: 3 },
        { op: Op.GetKQ, key: "k", opaque: 4 },
      );
      for (const r of [get, getk, getq, getkq]) {
        assertEquals([r.status, flagsOf(r), r.value, r.cas], [
          Status.Ok,
          0xdeadbeef,
          "hello",
          set.cas,
        ]);
      }
      assertEquals([get.key, getk.key, getq.key, getkq.key], ["", "k", "", "k"]);
      assertEquals([get.op, getk.op, getq.op, getkq.op], [Op.Get, Op.GetK, Op.GetQ, Op.GetKQ]);
      assertEquals([get.opaque, getk.opaque, getq.opaque, getkq.opaque], [1, 2, 3, 4]);
    });
    await t.step(
      "misses: Get says Not found, GetK returns the key, quiet ones say nothing",
      async () => {
        const replies = await pipeline(
          c,
          { op: Op.GetQ, key: "nope", opaque: 1 },
          { op: Op.GetKQ, key: "nope", opaque: 2 },
          { op: Op.Get, key: "nope", opaque: 3 },
          { op: Op.GetK, key: "nope", opaque: 4 },
        );
        assertEquals(replies.length, 2);
        const [get, getk] = replies;
        assertEquals([get.status, get.opaque, get.value, get.cas], [
          Status.NotFound,
          3,
          "Not found",
          0n,
        ]);
        assertEquals([getk.status, getk.opaque, getk.key, getk.value], [
          Status.NotFound,
          4,
          "nope",
          "",
        ]);
      },
    );
  });
});

Deno.test("binary set/add/replace with CAS, quiet variants and their failures", async (t) => {
  await withServer([], async (c, memg) => {
    const first = await call(c, { op: Op.Set, key: "a", extras: setExt(), value: "1" });
    await t.step("a set with the item's CAS stores and returns a new CAS", async () => {
      const r = await call(c, {
        op: Op.Set,
        key: "a",
        extras: setExt(),
        value: "2",
        cas: first.cas,
      });
      assertEquals(r.status, Status.Ok);
      assertGreater(r.cas, first.cas);
    });
    await t.step("a stale CAS is EEXISTS, a CAS on a missing key ENOENT", async () => {
      const stale = await call(c, {
        op: Op.Set,
        key: "a",
        extras: setExt(),
        value: "3",
        cas: first.cas,
      });
      assertEquals([stale.status, stale.value, stale.cas], [
        Status.Exists,
        "Data exists for key.",
        0n,
      ]);
      const missing = await call(c, {
        op: Op.Set,
        key: "zz",
        extras: setExt(),
        value: "3",
        cas: 5n,
      });
      assertEquals([missing.status, missing.value], [Status.NotFound, "Not found"]);
      assertEquals((await call(c, { op: Op.Get, key: "a" })).value, "2");
    });
    await t.step("add on an existing key is EEXISTS, replace on a missing one ENOENT", async () => {
      const replies = await pipeline(
        c,
        { op: Op.Add, key: "a", extras: setExt(), value: "x", opaque: 1 },
        { op: Op.AddQ, key: "a", extras: setExt(), value: "x", opaque: 2 },
        { op: Op.Replace, key: "b", extras: setExt(), value: "x", opaque: 3 },
        { op: Op.ReplaceQ, key: "b", extras: setExt(), value: "x", opaque: 4 },
        { op: Op.Add, key: "b", extras: setExt(), value: "added", opaque: 5 },
        { op: Op.Replace, key: "b", extras: setExt(3), value: "replaced", opaque: 6 },
      );
      assertEquals(
        replies.map((r) => [r.op, r.status, r.opaque]),
        [
          [Op.Add, Status.Exists, 1],
          [Op.AddQ, Status.Exists, 2],
          [Op.Replace, Status.NotFound, 3],
          [Op.ReplaceQ, Status.NotFound, 4],
          [Op.Add, Status.Ok, 5],
          [Op.Replace, Status.Ok, 6],
        ],
      );
      const get = await call(c, { op: Op.Get, key: "b" });
      assertEquals([get.value, flagsOf(get)], ["replaced", 3]);
    });
    await t.step("quiet stores say nothing on success", async () => {
      const replies = await pipeline(
        c,
        { op: Op.SetQ, key: "q", extras: setExt(), value: "v1" },
        { op: Op.AddQ, key: "q2", extras: setExt(), value: "v2" },
        { op: Op.ReplaceQ, key: "q", extras: setExt(), value: "v3" },
      );
      assertEquals(replies, []);
      assertEquals((await call(c, { op: Op.Get, key: "q" })).value, "v3");
      assertEquals((await call(c, { op: Op.Get, key: "q2" })).value, "v2");
    });
    await t.step(
      "add/replace with a CAS act as cas: match stores, mismatch is EEXISTS",
      async () => {
        const cur = await call(c, { op: Op.Get, key: "q" });
        const bad = await call(c, { op: Op.Add, key: "q", extras: setExt(), value: "n", cas: 1n });
        assertEquals(bad.status, Status.Exists);
        const ok = await call(c, {
          op: Op.Add,
          key: "q",
          extras: setExt(),
          value: "n",
          cas: cur.cas,
        });
        assertEquals(ok.status, Status.Ok);
        assertEquals((await call(c, { op: Op.Get, key: "q" })).value, "n");
      },
    );
    await t.step("binary and text share one store and one command layer", async () => {
      const text = await RawClient.connect(memg.port);
      try {
        assertEquals(await text.call("get b\r\n", "END\r\n"), "VALUE b 3 8\r\nreplaced\r\nEND\r\n");
        assertEquals(await text.call("set fromtext 5 0 2\r\nhi\r\n"), "STORED\r\n");
      } finally {
        text.close();
      }
      const got = await call(c, { op: Op.Get, key: "fromtext" });
      assertEquals([got.status, flagsOf(got), got.value], [Status.Ok, 5, "hi"]);
    });
  });
});

Deno.test("binary append/prepend: joins values, keeps flags, checks CAS, NOT_STORED on a miss", async (t) => {
  await withServer([], async (c) => {
    const base = await call(c, { op: Op.Set, key: "k", extras: setExt(9), value: "mid" });
    await t.step(
      "append and prepend join and answer a new CAS; quiet ones are silent",
      async () => {
        const replies = await pipeline(
          c,
          { op: Op.Append, key: "k", value: ">", opaque: 1 },
          { op: Op.Prepend, key: "k", value: "<", opaque: 2 },
          { op: Op.AppendQ, key: "k", value: "]" },
          { op: Op.PrependQ, key: "k", value: "[" },
        );
        assertEquals(replies.map((r) => [r.op, r.status, r.opaque]), [
          [Op.Append, Status.Ok, 1],
          [Op.Prepend, Status.Ok, 2],
        ]);
        assertGreater(replies[1].cas, replies[0].cas);
        assertGreater(replies[0].cas, base.cas);
        const get = await call(c, { op: Op.Get, key: "k" });
        assertEquals([get.value, flagsOf(get)], ["[<mid>]", 9]);
      },
    );
    await t.step("on a missing key: NOT_STORED, also when quiet", async () => {
      const replies = await pipeline(
        c,
        { op: Op.Append, key: "none", value: "x" },
        { op: Op.PrependQ, key: "none", value: "x" },
      );
      assertEquals(replies.map((r) => [r.status, r.value]), [
        [Status.NotStored, "Not stored."],
        [Status.NotStored, "Not stored."],
      ]);
    });
    await t.step(
      "a CAS is compared: mismatch EEXISTS, match appends, missing NOT_STORED",
      async () => {
        const cur = await call(c, { op: Op.Get, key: "k" });
        assertEquals(
          (await call(c, { op: Op.Append, key: "k", value: "!", cas: 1n })).status,
          Status.Exists,
        );
        assertEquals(
          (await call(c, { op: Op.Append, key: "k", value: "!", cas: cur.cas })).status,
          Status.Ok,
        );
        assertEquals((await call(c, { op: Op.Get, key: "k" })).value, "[<mid>]!");
        assertEquals(
          (await call(c, { op: Op.Append, key: "none", value: "!", cas: 3n })).status,
          Status.NotStored,
        );
      },
    );
  });
});

Deno.test("binary delete: hit, miss, CAS check, quiet", async () => {
  await withServer([], async (c) => {
    const a = await call(c, { op: Op.Set, key: "a", extras: setExt(), value: "1" });
    await call(c, { op: Op.Set, key: "b", extras: setExt(), value: "1" });
    const replies = await pipeline(
      c,
      { op: Op.Delete, key: "a", cas: a.cas + 100n, opaque: 1 },
      { op: Op.Delete, key: "a", cas: a.cas, opaque: 2 },
      { op: Op.Delete, key: "a", opaque: 3 },
      { op: Op.DeleteQ, key: "b", opaque: 4 },
      { op: Op.DeleteQ, key: "b", opaque: 5 },
      { op: Op.Get, key: "b", opaque: 6 },
    );
    assertEquals(replies.map((r) => [r.op, r.status, r.opaque, r.cas]), [
      [Op.Delete, Status.Exists, 1, 0n],
      [Op.Delete, Status.Ok, 2, 0n],
      [Op.Delete, Status.NotFound, 3, 0n],
      [Op.DeleteQ, Status.NotFound, 5, 0n],
      [Op.Get, Status.NotFound, 6, 0n],
    ]);
  });
});

Deno.test("binary incr/decr: initial value, no-create expiration, wrap, floor, CAS, errors", async (t) => {
  await withServer([], async (c, _memg, clock) => {
    await t.step("a miss creates the item with the initial value and the expiration", async () => {
      const r = await call(c, { op: Op.Increment, key: "n", extras: arithExt(5n, 10n, 100) });
      assertEquals([r.status, u64Of(r.value)], [Status.Ok, 10n]);
      const get = await call(c, { op: Op.Get, key: "n" });
      assertEquals([get.value, get.cas], ["10", r.cas]);
      clock.t += 101;
      assertEquals((await call(c, { op: Op.Get, key: "n" })).status, Status.NotFound);
    });
    await t.step("expiration 0xffffffff never creates: ENOENT", async () => {
      const replies = await pipeline(
        c,
        { op: Op.Increment, key: "m", extras: arithExt(1n, 1n, 0xffffffff) },
        { op: Op.DecrementQ, key: "m", extras: arithExt(1n, 1n, 0xffffffff) },
      );
      assertEquals(replies.map((r) => [r.status, r.value]), [
        [Status.NotFound, "Not found"],
        [Status.NotFound, "Not found"],
      ]);
    });
    await t.step("incr wraps at 2^64, decr stops at 0, quiet ones are silent", async () => {
      await call(c, { op: Op.Set, key: "n", extras: setExt(), value: "18446744073709551615" });
      const replies = await pipeline(
        c,
        { op: Op.Increment, key: "n", extras: arithExt(2n, 0n, 0) },
        { op: Op.Decrement, key: "n", extras: arithExt(5n, 0n, 0) },
        { op: Op.IncrementQ, key: "n", extras: arithExt(7n, 0n, 0) },
        { op: Op.DecrementQ, key: "n", extras: arithExt(2n, 0n, 0) },
      );
      assertEquals(replies.map((r) => u64Of(r.value)), [1n, 0n]);
      assertEquals((await call(c, { op: Op.Get, key: "n" })).value, "5".padEnd(20)); // in place
    });
    await t.step("a CAS is checked; the answer carries the new CAS", async () => {
      const cur = await call(c, { op: Op.Get, key: "n" });
      const bad = await call(c, {
        op: Op.Increment,
        key: "n",
        extras: arithExt(1n, 0n, 0),
        cas: 1n,
      });
      assertEquals([bad.status, bad.value], [Status.Exists, "Data exists for key."]);
      const ok = await call(c, {
        op: Op.Increment,
        key: "n",
        extras: arithExt(1n, 0n, 0),
        cas: cur.cas,
      });
      assertEquals([ok.status, u64Of(ok.value)], [Status.Ok, 6n]);
      assertEquals((await call(c, { op: Op.Get, key: "n" })).cas, ok.cas);
    });
    await t.step("a non-numeric value is DELTA_BADVAL", async () => {
      await call(c, { op: Op.Set, key: "s", extras: setExt(), value: "abc" });
      const r = await call(c, { op: Op.DecrementQ, key: "s", extras: arithExt(1n, 0n, 0) });
      assertEquals(
        [r.status, r.value],
        [Status.DeltaBadval, "Non-numeric server-side value for incr or decr"],
      );
    });
  });
});

Deno.test("binary touch and GAT: new expiry, flags, values, keys, quiet misses", async (t) => {
  await withServer([], async (c, _memg, clock) => {
    const set = await call(c, { op: Op.Set, key: "k", extras: setExt(4, 10), value: "val" });
    await t.step(
      "Touch answers the flags only, GAT the value, GATK the key too; CAS unchanged",
      async () => {
        const [touch, gat, gatk, gatq, gatkq] = await pipeline(
          c,
          { op: Op.Touch, key: "k", extras: u32s(100), opaque: 1 },
          { op: Op.Gat, key: "k", extras: u32s(100), opaque: 2 },
          { op: Op.GatK, key: "k", extras: u32s(100), opaque: 3 },
          { op: Op.GatQ, key: "k", extras: u32s(100), opaque: 4 },
          { op: Op.GatKQ, key: "k", extras: u32s(100), opaque: 5 },
        );
        assertEquals([touch.status, flagsOf(touch), touch.key, touch.value], [
          Status.Ok,
          4,
          "",
          "",
        ]);
        assertEquals([gat.key, gat.value, gatk.key, gatk.value], ["", "val", "k", "val"]);
        assertEquals([gatq.value, gatkq.key, gatkq.value], ["val", "k", "val"]);
        for (const r of [touch, gat, gatk, gatq, gatkq]) assertEquals(r.cas, set.cas);
      },
    );
    await t.step(
      "the new expiry holds: alive after the old one, gone after the new one",
      async () => {
        clock.t += 50;
        assertEquals((await call(c, { op: Op.Get, key: "k" })).status, Status.Ok);
        clock.t += 51;
        assertEquals((await call(c, { op: Op.Get, key: "k" })).status, Status.NotFound);
      },
    );
    await t.step("misses: Touch/GAT Not found, GATK the key, GATQ/GATKQ nothing", async () => {
      const replies = await pipeline(
        c,
        { op: Op.GatQ, key: "k", extras: u32s(0), opaque: 1 },
        { op: Op.GatKQ, key: "k", extras: u32s(0), opaque: 2 },
        { op: Op.Touch, key: "k", extras: u32s(0), opaque: 3 },
        { op: Op.Gat, key: "k", extras: u32s(0), opaque: 4 },
        { op: Op.GatK, key: "k", extras: u32s(0), opaque: 5 },
      );
      assertEquals(replies.map((r) => [r.opaque, r.status, r.key, r.value]), [
        [3, Status.NotFound, "", "Not found"],
        [4, Status.NotFound, "", "Not found"],
        [5, Status.NotFound, "k", ""],
      ]);
    });
  });
});

Deno.test("binary flush: now, with a delay, quiet, and refused under -F", async (t) => {
  await withServer([], async (c, _memg, clock) => {
    await t.step("Flush removes everything; FlushQ says nothing", async () => {
      await call(c, { op: Op.Set, key: "a", extras: setExt(), value: "1" });
      const replies = await pipeline(c, { op: Op.Flush, opaque: 9 }, { op: Op.FlushQ });
      assertEquals(replies.map((r) => [r.status, r.opaque]), [[Status.Ok, 9]]);
      assertEquals((await call(c, { op: Op.Get, key: "a" })).status, Status.NotFound);
    });
    await t.step("a delay in the extras flushes later", async () => {
      await call(c, { op: Op.Set, key: "b", extras: setExt(), value: "1" });
      assertEquals((await call(c, { op: Op.Flush, extras: u32s(30) })).status, Status.Ok);
      assertEquals((await call(c, { op: Op.Get, key: "b" })).status, Status.Ok);
      clock.t += 31;
      assertEquals((await call(c, { op: Op.Get, key: "b" })).status, Status.NotFound);
    });
  });
  await withServer(["-F"], async (c, memg) => {
    const r = await call(c, { op: Op.Flush });
    assertEquals([r.status, r.value], [Status.AuthError, "Auth failure."]);
    assertEquals(memg.server.cache.counters.cmd_flush, 0);
  });
});

Deno.test("binary noop, version, quit and quitq", async (t) => {
  await withServer([], async (c, memg) => {
    await t.step("Version answers memcached's version first", async () => {
      const r = await call(c, { op: Op.Version, opaque: 3 });
      assertEquals([r.status, r.opaque], [Status.Ok, 3]);
      assert(r.value.startsWith("1.6.18"), r.value);
    });
    await t.step("Quit answers, then the server closes", async () => {
      const r = await call(c, { op: Op.Quit, opaque: 4 });
      assertEquals([r.op, r.status, r.opaque], [Op.Quit, Status.Ok, 4]);
      assert(await c.closedByServer());
    });
    await t.step("QuitQ closes without a word", async () => {
      const q = await RawClient.connect(memg.port);
      try {
        await q.send(req({ op: Op.QuitQ }));
        assert(await q.closedByServer());
        assertEquals(q.take().length, 0);
      } finally {
        q.close();
      }
    });
  });
});

/** Reads Stat packets until the empty terminator; returns name → value. */
async function stats(c: RawClient, group = "", opaque = 0): Promise<Map<string, string>> {
  await c.send(req({ op: Op.Stat, key: group, opaque }));
  const rows = new Map<string, string>();
  for (;;) {
    const r = await read(c);
    assertEquals([r.op, r.status, r.opaque, r.cas], [Op.Stat, Status.Ok, opaque, 0n]);
    if (r.key === "") {
      assertEquals(r.raw.length, 24);
      return rows;
    }
    rows.set(r.key, r.value);
  }
}

Deno.test("binary stat: general, settings, groups, conns, detail, reset and unknown", async (t) => {
  await withServer([], async (c, memg) => {
    const cache = memg.server.cache;
    await t.step("general stats count binary commands", async () => {
      await pipeline(c, { op: Op.Get, key: "x" }, {
        op: Op.Set,
        key: "x",
        extras: setExt(),
        value: "1",
      });
      const s = await stats(c, "", 77);
      assertEquals([s.get("cmd_get"), s.get("get_misses"), s.get("cmd_set")], ["1", "1", "1"]);
      assertEquals(s.get("pid"), String(Deno.pid));
    });
    await t.step(
      "settings (a prefix, as memcached matches it) and the store's groups",
      async () => {
        const settings = await stats(c, "settings");
        assertEquals(settings.get("binding_protocol"), "auto-negotiate");
        assertEquals((await stats(c, "settingsXYZ")).size, settings.size);
        for (const group of ["items", "slabs", "sizes"]) {
          const expected = statsGroup(cache, group);
          if (expected === null) {
            const r = await call(c, { op: Op.Stat, key: group });
            assertEquals([r.status, r.value], [Status.NotFound, "Not found"]);
          } else {
            const got = await stats(c, group);
            assertEquals([...got.keys()], expected.map(([name]) => name));
          }
        }
      },
    );
    await t.step("conns lists the connections", async () => {
      const s = await stats(c, "conns");
      assert([...s.keys()].some((k) => k.endsWith(":addr")), [...s.keys()].join());
    });
    await t.step("detail on/off are accepted, dump is empty, others unknown", async () => {
      assertEquals((await stats(c, "detail on")).size, 0);
      assertEquals((await stats(c, "detail off")).size, 0);
      assertEquals([...(await stats(c, "detail dump"))], [["detailed", "END\r\n"]]);
      const r = await call(c, { op: Op.Stat, key: "detail" });
      assertEquals(r.status, Status.NotFound);
    });
    await t.step("reset zeroes the counters and answers only the terminator", async () => {
      assertEquals((await stats(c, "reset")).size, 0);
      assertEquals(cache.counters.cmd_get, 0);
    });
    await t.step("an unknown group is Not found and the connection lives on", async () => {
      const r = await call(c, { op: Op.Stat, key: "bogus", opaque: 5 });
      assertEquals([r.status, r.value, r.opaque], [Status.NotFound, "Not found", 5]);
      assertEquals((await call(c, { op: Op.Noop })).status, Status.Ok);
    });
  });
});

Deno.test("binary unknown opcodes: 0x81, body skipped, connection lives on", async () => {
  await withServer([], async (c) => {
    const replies = await pipeline(
      c,
      { op: 0x1b, opaque: 1 },
      { op: 0x50, key: "key", extras: u32s(1), value: "value", opaque: 2 },
      { op: 0xff, opaque: 3 },
      { op: Op.Set, key: "k", extras: setExt(), value: "v", opaque: 4 },
    );
    assertEquals(replies.map((r) => [r.op, r.status, r.value, r.opaque]), [
      [0x1b, Status.UnknownCommand, "Unknown command", 1],
      [0x50, Status.UnknownCommand, "Unknown command", 2],
      [0xff, Status.UnknownCommand, "Unknown command", 3],
      [Op.Set, Status.Ok, "", 4],
    ]);
  });
});

/** Sends `bytes` on a fresh connection; returns every reply until the server closes. */
async function untilClosed(port: number, bytes: Uint8Array): Promise<Res[]> {
  const c = await RawClient.connect(port);
  try {
    await c.send(bytes);
    assert(await c.closedByServer(), "the server keeps the connection");
    return decodeAll(c.take());
  } finally {
    c.close();
  }
}

Deno.test("binary malformed requests get memcached's answer and never desynchronise", async (t) => {
  await withServer(["-I", "2k", "-m", "8"], async (c, memg) => {
    await t.step(
      "bad magic mid-stream closes; only replies memcached would have flushed go out",
      async () => {
        const replies = await untilClosed(
          memg.port,
          concat(
            req({ op: Op.Set, key: "k", extras: setExt(), value: "v", opaque: 1 }),
            req({ op: Op.Get, key: "missing", opaque: 2 }), // an error: memcached flushes here
            req({ op: Op.Get, key: "k", opaque: 3 }), // queued, dropped on close
            req({ op: Op.Noop, magic: 0x81, opaque: 4 }),
          ),
        );
        assertEquals(replies.map((r) => r.opaque), [1, 2]);
      },
    );
    await t.step("lengths that do not add up: Unknown command, then close", async () => {
      const replies = await untilClosed(memg.port, req({ op: Op.Get, key: "abc", bodylen: 1 }));
      assertEquals(replies.map((r) => [r.status, r.value]), [[
        Status.UnknownCommand,
        "Unknown command",
      ]]);
    });
    await t.step("wrong extras or key shapes: EINVAL, then close", async () => {
      for (
        const bad of [
          { op: Op.Get, key: "k", extras: u32s(0) },
          { op: Op.Get },
          { op: Op.Set, key: "k", value: "v" },
          { op: Op.Increment, key: "k", extras: u32s(1) },
          { op: Op.Touch, key: "k" },
          { op: Op.Noop, key: "k" },
          { op: Op.Flush, extras: u32s(1, 2) },
          { op: Op.Get, key: "x".repeat(251) },
        ]
      ) {
        const replies = await untilClosed(memg.port, req(bad));
        assertEquals(replies.map((r) => [r.op, r.status, r.value]), [[
          bad.op,
          Status.Invalid,
          "Invalid arguments",
        ]]);
      }
    });
    await t.step("a body longer than the opcode uses is skipped", async () => {
      await c.send(concat(
        req({ op: Op.Touch, key: "nokey", extras: u32s(0), bodylen: 5 + 4 + 24, opaque: 1 }),
        req({ op: Op.Noop, opaque: 2 }), // inside the Touch's body: skipped
        req({ op: Op.Stat, key: "reset", bodylen: 5 + 3, opaque: 3 }),
        latin1("xyz"), // the rest of the Stat's body
        req({ op: Op.Noop, opaque: 4 }),
      ));
      const replies = [await read(c), await read(c), await read(c)];
      assertEquals(replies.map((r) => [r.opaque, r.op, r.status]), [
        [1, Op.Touch, Status.NotFound],
        [3, Op.Stat, Status.Ok],
        [4, Op.Noop, Status.Ok],
      ]);
    });
    await t.step("a value over -I is E2BIG; the value is skipped even when split", async () => {
      await call(c, { op: Op.Set, key: "big", extras: setExt(), value: "old" });
      const big = "x".repeat(4000);
      const bytes = req({ op: Op.SetQ, key: "big", extras: setExt(), value: big, opaque: 6 });
      for (let i = 0; i < bytes.length; i += 700) await c.send(bytes.subarray(i, i + 700));
      const r = await read(c);
      assertEquals([r.op, r.status, r.value, r.opaque], [
        Op.SetQ,
        Status.TooLarge,
        "Too large.",
        6,
      ]);
      // as memcached, a failed set removes the old value
      assertEquals((await call(c, { op: Op.Get, key: "big" })).status, Status.NotFound);
      assertEquals(
        (await call(c, { op: Op.Append, key: "x", value: big })).status,
        Status.TooLarge,
      );
      assertEquals((await call(c, { op: Op.Noop, opaque: 8 })).opaque, 8);
    });
  });
});

Deno.test("binary values arriving over many reads are stored intact", async () => {
  await withServer([], async (c) => {
    const value = new Uint8Array(300_000);
    for (let i = 0; i < value.length; i++) value[i] = (i * 31 + 7) & 0xff;
    const bytes = concat(
      req({ op: Op.SetQ, key: "big", extras: setExt(1), value }),
      req({ op: Op.Get, key: "big", opaque: 2 }),
    );
    for (let i = 0; i < bytes.length; i += 4093) await c.send(bytes.subarray(i, i + 4093));
    const r = await read(c);
    assertEquals([r.status, r.opaque, r.value.length], [Status.Ok, 2, value.length]);
    assert(r.data.every((b, i) => b === value[i]), "the value came back changed");
  });
});

Deno.test("binary pipeline of quiet and loud commands, ended by Noop, in one write", async () => {
  await withServer([], async (c) => {
    const replies = await pipeline(
      c,
      { op: Op.SetQ, key: "a", extras: setExt(), value: "1", opaque: 1 },
      { op: Op.SetQ, key: "b", extras: setExt(), value: "2", opaque: 2 },
      { op: Op.GetQ, key: "a", opaque: 3 },
      { op: Op.GetQ, key: "zz", opaque: 4 },
      { op: Op.GetKQ, key: "b", opaque: 5 },
      { op: Op.AddQ, key: "a", extras: setExt(), value: "x", opaque: 6 },
      { op: Op.IncrementQ, key: "a", extras: arithExt(1n, 0n, 0), opaque: 7 },
      { op: Op.Get, key: "a", opaque: 8 },
      { op: Op.DeleteQ, key: "b", opaque: 9 },
      { op: Op.GetK, key: "b", opaque: 10 },
    );
    assertEquals(replies.map((r) => [r.opaque, r.status, r.key, r.value]), [
      [3, Status.Ok, "", "1"],
      [5, Status.Ok, "b", "2"],
      [6, Status.Exists, "", "Data exists for key."],
      [8, Status.Ok, "", "2"],
      [10, Status.NotFound, "b", ""],
    ]);
  });
});

Deno.test("binary protocol selection: -B auto, -B binary and -B ascii", async (t) => {
  await t.step("auto: the first byte picks the protocol per connection", async () => {
    await withServer([], async (c, memg) => {
      assertEquals((await call(c, { op: Op.Noop })).status, Status.Ok);
      const text = await RawClient.connect(memg.port);
      try {
        assertEquals(await text.call("version\r\n"), "VERSION 1.6.18-memg-0.1.0\r\n");
      } finally {
        text.close();
      }
    });
  });
  await t.step("binary: a text client is closed once a header's worth arrived", async () => {
    await withServer(["-B", "binary"], async (c) => {
      await c.send("get aaaaaaaaaaaaaaaaaaaaaa\r\n");
      assert(await c.closedByServer());
      assertEquals(c.take().length, 0);
    });
  });
  await t.step("ascii: binary bytes are read as text lines", async () => {
    await withServer(["-B", "ascii"], async (c) => {
      // the Noop opcode byte is a newline: two lines, two ERRORs, as memcached answers
      await c.send(concat(req({ op: Op.Noop }), latin1("\r\n")));
      assertEquals(await c.readUntil("ERROR\r\nERROR\r\n"), "ERROR\r\nERROR\r\n");
    });
  });
});

/** A password file for the duration of `fn`. */
async function withPwdb(text: string, fn: (path: string) => Promise<void>): Promise<void> {
  const path = Deno.makeTempFileSync({ prefix: "memg-sasl-" });
  Deno.writeTextFileSync(path, text);
  try {
    await fn(path);
  } finally {
    Deno.removeSync(path);
  }
}

const plain = (authz: string, user: string, pass: string) => `${authz}\0${user}\0${pass}`;

Deno.test("binary SASL PLAIN under -S", async (t) => {
  await withPwdb("alice:wonder\nbob:builder:ignored\n", async (path) => {
    await withServer(["-S", "--sasl-pwdb", path], async (c, memg) => {
      await t.step("list-mechs and version need no authentication", async () => {
        const mechs = await call(c, { op: Op.SaslListMechs });
        assertEquals([mechs.status, mechs.value], [Status.Ok, "PLAIN"]);
        const version = await call(c, { op: Op.Version });
        assertEquals(version.status, Status.Ok);
      });
      await t.step("a wrong password is AUTH_ERROR; the connection stays", async () => {
        const r = await call(c, { op: Op.SaslAuth, key: "PLAIN", value: plain("", "alice", "x") });
        assertEquals([r.status, r.value], [Status.AuthError, "Auth failure."]);
      });
      await t.step("PLAIN with the right password authenticates; commands then work", async () => {
        const r = await call(c, {
          op: Op.SaslAuth,
          key: "PLAIN",
          value: plain("", "alice", "wonder"),
        });
        assertEquals([r.status, r.value], [Status.Ok, "Authenticated"]);
        assertEquals(
          (await call(c, { op: Op.Set, key: "k", extras: setExt(), value: "v" })).status,
          Status.Ok,
        );
        assertEquals((await call(c, { op: Op.Get, key: "k" })).value, "v");
      });
      await t.step(
        "unauthenticated commands get AUTH_ERROR and the connection closes",
        async () => {
          const replies = await untilClosed(
            memg.port,
            concat(req({ op: Op.Get, key: "k", opaque: 1 }), req({ op: Op.Noop })),
          );
          assertEquals(replies.map((r) => [r.status, r.opaque]), [[Status.AuthError, 1]]);
        },
      );
      await t.step("an empty first message continues; the step completes", async () => {
        const d = await RawClient.connect(memg.port);
        try {
          const replies = await pipeline(
            d,
            { op: Op.SaslStep, key: "PLAIN", value: plain("", "bob", "builder") }, // not started
            { op: Op.SaslAuth, key: "plain", value: "" },
            { op: Op.SaslStep, key: "PLAIN", value: plain("bob", "bob", "builder") },
          );
          assertEquals(replies.map((r) => [r.op, r.status]), [
            [Op.SaslStep, Status.AuthError],
            [Op.SaslAuth, Status.AuthContinue],
            [Op.SaslStep, Status.Ok],
          ]);
        } finally {
          d.close();
        }
      });
      await t.step("auth_cmds and auth_errors count attempts", () => {
        const counters = memg.server.cache.counters;
        assertEquals([counters.auth_cmds, counters.auth_errors], [4, 2]);
      });
      await t.step("a text client is closed (-S implies -B binary)", async () => {
        const text = await RawClient.connect(memg.port);
        try {
          await text.send("get aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
          assert(await text.closedByServer());
        } finally {
          text.close();
        }
      });
    });
  });
});

Deno.test("binary SASL opcodes without -S are unknown commands", async () => {
  await withServer([], async (c) => {
    const replies = await pipeline(
      c,
      { op: Op.SaslListMechs, opaque: 1 },
      { op: Op.SaslAuth, key: "PLAIN", value: plain("", "a", "b"), opaque: 2 },
      { op: Op.Get, key: "k", opaque: 3 },
    );
    assertEquals(replies.map((r) => [r.opaque, r.status]), [
      [1, Status.UnknownCommand],
      [2, Status.UnknownCommand],
      [3, Status.NotFound],
    ]);
  });
});

Deno.test("binary start-up refuses -S without a readable password file", () => {
  assertThrows(
    () => startMemg(["-S", "--sasl-pwdb", "/nonexistent/memg-pwdb"]),
    AuthFileError,
    "Could not open SASL password file [/nonexistent/memg-pwdb]",
  );
});

Deno.test("binary ENOMEM when memory is full and evictions are off (-M)", async () => {
  await withServer(["-M", "-m", "1", "-I", "100k"], async (c, memg) => {
    // fill memory with items the size of a counter under a 200-byte key, until sets are refused
    const key = (name: string) => name.padEnd(200, ".");
    let refused: Res[] = [];
    for (let batch = 0; batch < 20 && refused.length === 0; batch++) {
      const fill = Array.from({ length: 1000 }, (_, i) => ({
        op: Op.SetQ,
        key: key(`s${batch}-${i}`),
        extras: setExt(),
        value: "7",
      }));
      refused = await pipeline(c, ...fill);
    }
    assert(refused.length > 0, "memory never filled up");
    for (const r of refused) {
      assertEquals([r.op, r.status, r.value], [
        Op.SetQ,
        Status.NoMemory,
        "Out of memory allocating item",
      ]);
    }
    const replies = await pipeline(
      c,
      { op: Op.Set, key: "more", extras: setExt(), value: "x".repeat(5000), opaque: 1 },
      { op: Op.Increment, key: key("counter"), extras: arithExt(1n, 5n, 0), opaque: 2 },
      { op: Op.Get, key: key("s0-0"), opaque: 3 },
    );
    // the refused value was swallowed: the requests behind it were read as requests
    assertEquals(replies.map((r) => [r.op, r.status, r.value, r.opaque]), [
      [Op.Set, Status.NoMemory, "Out of memory allocating item", 1],
      [Op.Increment, Status.NoMemory, "Out of memory allocating new item", 2],
      [Op.Get, Status.Ok, "7", 3],
    ]);
    assert(memg.server.cache.counters.store_no_memory >= refused.length + 1);
  });
});
