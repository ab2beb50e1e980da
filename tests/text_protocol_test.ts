/**
 * The text protocol against an in-process memg over real sockets, with a clock the test moves
 * by hand: every command's success and error replies, expiry at exact second boundaries,
 * incr/decr's u64 rules, flush_all's delay, and memcached's limits (key length, line length,
 * item size, data trailer). Every expected reply is what Debian's memcached 1.6.18 answers to
 * the same bytes (`tests/text_differential_test.ts` replays the same cases against it).
 *
 * @module
 */
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { type InProcessMemg, startMemg } from "./helpers/server.ts";

const T0 = 1_700_000_000;
const dec = new TextDecoder("latin1");

/** A clock the test sets. */
class ManualClock {
  t = T0;
  now(): number {
    return this.t;
  }
}

/** Sends `request` and asserts the next bytes received are exactly `reply`. */
async function expect(c: RawClient, request: string, reply: string): Promise<void> {
  await c.send(request);
  const got = dec.decode(await c.readBytes(reply.length, 3000));
  assertEquals(got, reply, `reply to ${JSON.stringify(request.slice(0, 100))}`);
}

/** Sends `request` (whose replies, if any, must be none) then `get key`; returns get's reply. */
async function getAfter(c: RawClient, request: string, key: string): Promise<string> {
  return await c.call(`${request}get ${key}\r\n`, "END\r\n");
}

/** One number from `stats` (or `stats settings` with `group`). */
async function stat(c: RawClient, name: string, group = ""): Promise<string> {
  const rows = await c.call(`stats${group === "" ? "" : " " + group}\r\n`, "END\r\n");
  const m = new RegExp(`^STAT ${name} ([^\r]*)\r$`, "m").exec(rows);
  assert(m !== null, `no STAT ${name} in ${group || "stats"}`);
  return m[1];
}

/** Runs `fn` with a memg started with `args` (and `clock`) and one client; cleans up both. */
async function withMemg(
  args: string[],
  fn: (c: RawClient, memg: InProcessMemg, clock: ManualClock) => Promise<void>,
): Promise<void> {
  const clock = new ManualClock();
  const memg = startMemg(args, clock);
  const c = await RawClient.connect(memg.port);
  try {
    await fn(c, memg, clock);
  } finally {
    c.close();
    await memg.close();
  }
}

Deno.test("storage commands: set add replace append prepend cas", async (t) => {
  await withMemg([], async (c) => {
    await t.step("set then get; flags are a u32", async () => {
      await expect(c, "set k 0 0 5\r\nhello\r\n", "STORED\r\n");
      await expect(c, "get k\r\n", "VALUE k 0 5\r\nhello\r\nEND\r\n");
      await expect(c, "set k 4294967295 0 1\r\nx\r\n", "STORED\r\n");
      await expect(c, "get k\r\n", "VALUE k 4294967295 1\r\nx\r\nEND\r\n");
      // memcached's safe_strtoul keeps the low 32 bits of an unsigned long
      await expect(c, "set k 4294967297 0 1\r\nx\r\n", "STORED\r\n");
      await expect(c, "get k\r\n", "VALUE k 1 1\r\nx\r\nEND\r\n");
      await expect(c, "set k +5 0 1\r\nx\r\n", "STORED\r\n");
      await expect(c, "get k\r\n", "VALUE k 5 1\r\nx\r\nEND\r\n");
    });
    await t.step(
      "a bad flags/exptime/bytes token refuses the line; its data is a new line",
      async () => {
        for (const line of ["set k -1 0 1", "set k 0x1 0 1", "set k 18446744073709551616 0 1"]) {
          await expect(c, `${line}\r\nx\r\n`, "CLIENT_ERROR bad command line format\r\nERROR\r\n");
        }
        await expect(c, "set k 0 abc 1\r\n", "CLIENT_ERROR bad command line format\r\n");
        await expect(c, "set k 0 0 -1\r\n", "CLIENT_ERROR bad command line format\r\n");
        await expect(c, "set k 0 0 abc\r\n", "CLIENT_ERROR bad command line format\r\n");
        await expect(c, "set k 0 0 2147483646\r\n", "CLIENT_ERROR bad command line format\r\n");
        await expect(c, "get k\r\n", "VALUE k 5 1\r\nx\r\nEND\r\n");
      },
    );
    await t.step(
      "numbers are read as memcached's strtol: truncated to 32 bits, trailing space ok",
      async () => {
        // "4294967297" is a long that becomes the int32 1: memcached reads one byte of data
        await expect(c, "set k 0 0 4294967297\r\ny\r\n", "STORED\r\n");
        await expect(c, "get k\r\n", "VALUE k 0 1\r\ny\r\nEND\r\n");
        await expect(c, "set k 7\v 0 2\t\r\nzz\r\n", "STORED\r\n");
        await expect(c, "get k\r\n", "VALUE k 7 2\r\nzz\r\nEND\r\n");
      },
    );
    await t.step("wrong token counts are ERROR", async () => {
      await expect(c, "set k 0 0\r\n", "ERROR\r\n");
      await expect(c, "set k 0 0 1 noreply extra\r\n", "ERROR\r\n");
      await expect(c, "add k\r\n", "ERROR\r\n");
      await expect(c, "cas k 0 0 1\r\n", "ERROR\r\n");
      await expect(c, "cas k 0 0 1 1 noreply x\r\n", "ERROR\r\n");
    });
    await t.step("zero-length value", async () => {
      await expect(c, "set e 0 0 0\r\n\r\n", "STORED\r\n");
      await expect(c, "get e\r\n", "VALUE e 0 0\r\n\r\nEND\r\n");
    });
    await t.step("noreply answers nothing", async () => {
      assertEquals(
        await getAfter(c, "set q 3 0 2 noreply\r\nqq\r\n", "q"),
        "VALUE q 3 2\r\nqq\r\nEND\r\n",
      );
    });
    await t.step("add stores only a new key", async () => {
      await expect(c, "add q 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
      await expect(c, "add a 9 0 1\r\nA\r\n", "STORED\r\n");
      assertEquals(
        await getAfter(c, "add a 0 0 1 noreply\r\nx\r\n", "a"),
        "VALUE a 9 1\r\nA\r\nEND\r\n",
      );
    });
    await t.step("replace stores only an existing key", async () => {
      await expect(c, "replace nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
      await expect(c, "get nope\r\n", "END\r\n");
      await expect(c, "replace a 7 0 2\r\nAA\r\n", "STORED\r\n");
      await expect(c, "get a\r\n", "VALUE a 7 2\r\nAA\r\nEND\r\n");
    });
    await t.step("append and prepend keep the old flags and need the key", async () => {
      await expect(c, "append a 1 0 1\r\nZ\r\n", "STORED\r\n");
      await expect(c, "prepend a 2 0 1\r\n<\r\n", "STORED\r\n");
      await expect(c, "get a\r\n", "VALUE a 7 4\r\n<AAZ\r\nEND\r\n");
      await expect(c, "append nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
      await expect(c, "prepend nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
      assertEquals(
        await getAfter(c, "append a 0 0 1 noreply\r\n>\r\n", "a"),
        "VALUE a 7 5\r\n<AAZ>\r\nEND\r\n",
      );
    });
    await t.step(
      "cas: STORED with the current unique, EXISTS when changed, NOT_FOUND when gone",
      async () => {
        const reply = await c.call("gets a\r\n", "END\r\n");
        const m = /^VALUE a 7 5 (\d+)\r\n<AAZ>\r\nEND\r\n$/.exec(reply);
        assert(m !== null, reply);
        const unique = BigInt(m[1]);
        await expect(c, `cas a 0 0 1 ${unique + 1n}\r\nx\r\n`, "EXISTS\r\n");
        await expect(c, `cas a 5 0 1 ${unique}\r\nc\r\n`, "STORED\r\n");
        await expect(c, `cas a 5 0 1 ${unique}\r\nd\r\n`, "EXISTS\r\n");
        await expect(c, "get a\r\n", "VALUE a 5 1\r\nc\r\nEND\r\n");
        await expect(c, "cas nope 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n");
        await expect(c, "cas a 0 0 1 0\r\nx\r\n", "EXISTS\r\n");
        await expect(c, "cas nope 0 0 1 0\r\nx\r\n", "NOT_FOUND\r\n");
        await expect(
          c,
          "cas a 0 0 1 abc\r\nx\r\n",
          "CLIENT_ERROR bad command line format\r\nERROR\r\n",
        );
        await expect(
          c,
          "cas a 0 0 1 -1\r\nx\r\n",
          "CLIENT_ERROR bad command line format\r\nERROR\r\n",
        );
        const again = await c.call("gets a\r\n", "END\r\n");
        const u2 = /^VALUE a 5 1 (\d+)\r\n/.exec(again);
        assert(u2 !== null && BigInt(u2[1]) > unique, again);
        assertEquals(
          await getAfter(c, `cas a 0 0 1 ${u2[1]} noreply\r\ne\r\n`, "a"),
          "VALUE a 0 1\r\ne\r\nEND\r\n",
        );
      },
    );
  });
});

Deno.test("a set answers and stores the same whether its data arrives with its line or later", async () => {
  // With the data block in the same read, a plain `set` takes the codec's fast path
  // (`#simpleSet`); sent 20 ms after its line, the general path. Cases on both sides of the
  // fast path's limits (9-digit numbers, single spaces, `noreply`, a bad trailer, too large).
  const cases: Array<[line: string, data: string, reply: string]> = [
    ["set K 0 0 5", "hello", "STORED\r\nVALUE K 0 5\r\nhello\r\nEND\r\n"],
    ["set K 123456789 0 1", "x", "STORED\r\nVALUE K 123456789 1\r\nx\r\nEND\r\n"],
    ["set K 1234567890 0 1", "x", "STORED\r\nVALUE K 1234567890 1\r\nx\r\nEND\r\n"],
    ["set K 0 999999999 1", "x", "STORED\r\nEND\r\n"], // an absolute time long past
    ["set K 0 100 1", "x", "STORED\r\nVALUE K 0 1\r\nx\r\nEND\r\n"],
    ["set K 0 -1 1", "x", "STORED\r\nEND\r\n"],
    ["set K 5 0 1 noreply", "x", "VALUE K 5 1\r\nx\r\nEND\r\n"],
    ["set K 5 0 1 norepl", "x", "STORED\r\nVALUE K 5 1\r\nx\r\nEND\r\n"],
    ["set  K 0 0 1", "x", "STORED\r\nVALUE K 0 1\r\nx\r\nEND\r\n"],
    ["set K 0 0 0", "", "STORED\r\nVALUE K 0 0\r\n\r\nEND\r\n"],
    ["set K 0 0 3", "abcde", "CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n"],
    [
      "set K 0 0 2000000",
      "v".repeat(2_000_000),
      "SERVER_ERROR object too large for cache\r\nEND\r\n",
    ],
  ];
  await withMemg([], async (c) => {
    for (const [i, [line, data, reply]] of cases.entries()) {
      for (const split of [false, true]) {
        const key = `${split ? "s" : "w"}${i}`;
        const head = `${line.replace("K", key)}\r\n`;
        const rest = `${data}\r\nget ${key}\r\nmn\r\n`;
        if (split) {
          await c.send(head);
          await new Promise((done) => setTimeout(done, 20));
          await c.send(rest);
        } else await c.send(head + rest);
        const got = (await c.readUntil("MN\r\n")).slice(0, -4).replaceAll(key, "K");
        assertEquals(got, reply, `${split ? "split" : "whole"}: ${line}`);
      }
    }
    // a line ending in a bare LF, and a 250-byte key
    for (const split of [false, true]) {
      const key = (split ? "s" : "w").padEnd(250, "k");
      const head = `set ${key} 7 0 2\n`;
      const rest = `xy\r\nget ${key}\r\nmn\r\n`;
      if (split) {
        await c.send(head);
        await new Promise((done) => setTimeout(done, 20));
        await c.send(rest);
      } else await c.send(head + rest);
      assertEquals(
        await c.readUntil("MN\r\n"),
        `STORED\r\nVALUE ${key} 7 2\r\nxy\r\nEND\r\nMN\r\n`,
        split ? "split" : "whole",
      );
    }
  });
});

Deno.test("retrieval: get gets gat gats", async (t) => {
  await withMemg([], async (c, _memg, clock) => {
    await expect(c, "set a 1 0 1\r\nA\r\n", "STORED\r\n");
    await expect(c, "set b 2 0 2\r\nBB\r\n", "STORED\r\n");
    await t.step("many keys answer hits in order and skip misses", async () => {
      await expect(
        c,
        "get b nope a b\r\n",
        "VALUE b 2 2\r\nBB\r\nVALUE a 1 1\r\nA\r\nVALUE b 2 2\r\nBB\r\nEND\r\n",
      );
      await expect(c, "get nope\r\n", "END\r\n");
      await expect(c, "   get  a  \r\n", "VALUE a 1 1\r\nA\r\nEND\r\n");
    });
    await t.step("gets adds a unique that changes when the item does", async () => {
      const first = await c.call("gets a b\r\n", "END\r\n");
      const m = /^VALUE a 1 1 (\d+)\r\nA\r\nVALUE b 2 2 (\d+)\r\nBB\r\nEND\r\n$/.exec(first);
      assert(m !== null, first);
      assert(m[1] !== m[2], "two items share a unique");
      await expect(c, "set a 1 0 1\r\nA\r\n", "STORED\r\n");
      const second = await c.call("gets a\r\n", "END\r\n");
      assert(!second.includes(` ${m[1]}\r\n`), "the unique did not change on set");
    });
    await t.step("get with no key is ERROR", async () => {
      await expect(c, "get\r\n", "ERROR\r\n");
      await expect(c, "gets \r\n", "ERROR\r\n");
      await expect(c, "gat\r\n", "ERROR\r\n");
    });
    await t.step("gat and gats return the item and set its exptime", async () => {
      await expect(c, "gat 10 a nope\r\n", "VALUE a 1 1\r\nA\r\nEND\r\n");
      const gats = await c.call("gats 10 b\r\n", "END\r\n");
      assertMatch(gats, /^VALUE b 2 2 \d+\r\nBB\r\nEND\r\n$/);
      await expect(c, "gat 0\r\n", "END\r\n");
      clock.t = T0 + 9;
      await expect(c, "get a b\r\n", "VALUE a 1 1\r\nA\r\nVALUE b 2 2\r\nBB\r\nEND\r\n");
      clock.t = T0 + 10;
      await expect(c, "get a b\r\n", "END\r\n");
    });
    await t.step("gat with a bad exptime", async () => {
      await expect(c, "gat x a\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
      await expect(c, "gats 1.5 a\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
    });
    await t.step("gat -1 returns the item once and expires it", async () => {
      await expect(c, "set g 0 0 1\r\ng\r\n", "STORED\r\n");
      await expect(c, "gat -1 g\r\n", "VALUE g 0 1\r\ng\r\nEND\r\n");
      await expect(c, "get g\r\n", "END\r\n");
    });
  });
});

Deno.test("delete, including memcached's legacy `delete k 0`", async (t) => {
  await withMemg([], async (c) => {
    const set = "set d 0 0 1\r\nd\r\n";
    await t.step("DELETED then NOT_FOUND", async () => {
      await expect(c, set, "STORED\r\n");
      await expect(c, "delete d\r\n", "DELETED\r\n");
      await expect(c, "delete d\r\n", "NOT_FOUND\r\n");
      await expect(c, "get d\r\n", "END\r\n");
    });
    await t.step("a hold time of 0 is accepted, any other is the usage error", async () => {
      await expect(c, set, "STORED\r\n");
      await expect(
        c,
        "delete d 1\r\n",
        "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
      );
      await expect(
        c,
        "delete d 0 1\r\n",
        "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
      );
      await expect(c, "delete d 0\r\n", "DELETED\r\n");
    });
    await t.step("noreply, with or without the 0", async () => {
      await expect(c, set, "STORED\r\n");
      assertEquals(await getAfter(c, "delete d noreply\r\n", "d"), "END\r\n");
      await expect(c, set, "STORED\r\n");
      assertEquals(await getAfter(c, "delete d 0 noreply\r\n", "d"), "END\r\n");
      // the usage error is silenced by noreply too, and nothing is deleted
      await expect(c, set, "STORED\r\n");
      assertEquals(await getAfter(c, "delete d 5 noreply\r\n", "d"), "VALUE d 0 1\r\nd\r\nEND\r\n");
    });
    await t.step("no key or too many tokens is ERROR", async () => {
      await expect(c, "delete\r\n", "ERROR\r\n");
      await expect(c, "delete d 0 noreply x\r\n", "ERROR\r\n");
    });
  });
});

Deno.test("incr and decr: u64, wrap, floor at 0, in-place rewrite", async (t) => {
  await withMemg([], async (c) => {
    await t.step('decr 10 → 9, stored as "9 " as memcached rewrites in place', async () => {
      await expect(c, "set n 5 0 2\r\n10\r\n", "STORED\r\n");
      await expect(c, "decr n 1\r\n", "9\r\n");
      await expect(c, "get n\r\n", "VALUE n 5 2\r\n9 \r\nEND\r\n");
      await expect(c, "incr n 5\r\n", "14\r\n");
      await expect(c, "get n\r\n", "VALUE n 5 2\r\n14\r\nEND\r\n");
    });
    await t.step("a longer result makes a new item with the old flags", async () => {
      await expect(c, "set n 5 0 2\r\n99\r\n", "STORED\r\n");
      await expect(c, "incr n 1\r\n", "100\r\n");
      await expect(c, "get n\r\n", "VALUE n 5 3\r\n100\r\nEND\r\n");
    });
    await t.step("incr wraps at 2^64", async () => {
      await expect(c, "set n 0 0 20\r\n18446744073709551615\r\n", "STORED\r\n");
      await expect(c, "incr n 1\r\n", "0\r\n");
      await expect(c, "get n\r\n", `VALUE n 0 20\r\n0${" ".repeat(19)}\r\nEND\r\n`);
      await expect(c, "incr n 18446744073709551615\r\n", "18446744073709551615\r\n");
      await expect(c, "incr n 2\r\n", "1\r\n");
    });
    await t.step("decr stops at 0", async () => {
      await expect(c, "decr n 5\r\n", "0\r\n");
      await expect(c, "decr n 18446744073709551615\r\n", "0\r\n");
    });
    await t.step("the value is read as strtoull reads it", async () => {
      const cases: Array<[string, string, string]> = [
        [" 12", "13", "13 "], // rewritten from the first byte, padded with spaces
        ["+12", "13", "13 "],
        ["000000000000000000001", "2", "2" + " ".repeat(20)],
        ["1 2", "2", "2  "],
        ["-0", "1", "1 "],
        ["\t\t7\t\t", "8", "8    "],
      ];
      for (const [value, result, stored] of cases) {
        await expect(c, `set v 0 0 ${value.length}\r\n${value}\r\n`, "STORED\r\n");
        await expect(c, "incr v 1\r\n", `${result}\r\n`);
        await expect(c, "get v\r\n", `VALUE v 0 ${value.length}\r\n${stored}\r\nEND\r\n`);
      }
    });
    await t.step("non-numeric values", async () => {
      for (const value of ["abc", "12a", "-1", "", "18446744073709551616"]) {
        await expect(c, `set v 0 0 ${value.length}\r\n${value}\r\n`, "STORED\r\n");
        await expect(
          c,
          "incr v 1\r\n",
          "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        );
        await expect(
          c,
          "decr v 1\r\n",
          "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        );
      }
    });
    await t.step("bad deltas, missing keys, token counts, noreply", async () => {
      for (const delta of ["abc", "-1", "18446744073709551616", "0x1", "1.5"]) {
        await expect(c, `incr n ${delta}\r\n`, "CLIENT_ERROR invalid numeric delta argument\r\n");
      }
      await expect(c, "incr nope 1\r\n", "NOT_FOUND\r\n");
      await expect(c, "decr nope 1\r\n", "NOT_FOUND\r\n");
      await expect(c, "incr n\r\n", "ERROR\r\n");
      await expect(c, "incr n 1 2 3\r\n", "ERROR\r\n");
      await expect(c, "set n 0 0 1\r\n1\r\n", "STORED\r\n");
      assertEquals(await getAfter(c, "incr n 1 noreply\r\n", "n"), "VALUE n 0 1\r\n2\r\nEND\r\n");
      assertEquals(await getAfter(c, "incr n x noreply\r\n", "n"), "VALUE n 0 1\r\n2\r\nEND\r\n");
    });
  });
});

Deno.test("touch", async (t) => {
  await withMemg([], async (c, _memg, clock) => {
    await t.step("TOUCHED sets a new exptime, NOT_FOUND for a missing key", async () => {
      await expect(c, "touch t 10\r\n", "NOT_FOUND\r\n");
      await expect(c, "set t 0 100 1\r\nt\r\n", "STORED\r\n");
      await expect(c, "touch t 10\r\n", "TOUCHED\r\n");
      clock.t = T0 + 9;
      await expect(c, "get t\r\n", "VALUE t 0 1\r\nt\r\nEND\r\n");
      clock.t = T0 + 10;
      await expect(c, "get t\r\n", "END\r\n");
    });
    await t.step("errors and noreply", async () => {
      await expect(c, "set t 0 0 1\r\nt\r\n", "STORED\r\n");
      await expect(c, "touch t x\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
      await expect(c, "touch t\r\n", "ERROR\r\n");
      await expect(c, "touch t 1 2 3\r\n", "ERROR\r\n");
      assertEquals(await getAfter(c, "touch t 0 noreply\r\n", "t"), "VALUE t 0 1\r\nt\r\nEND\r\n");
      await expect(c, "touch t -1\r\n", "TOUCHED\r\n");
      await expect(c, "get t\r\n", "END\r\n");
    });
  });
});

Deno.test("expiry: 0 never, ≤ 30 days relative, larger absolute, negative expired", async (t) => {
  await withMemg([], async (c, _memg, clock) => {
    const at = async (time: number, key: string, hit: boolean) => {
      clock.t = time;
      await expect(c, `get ${key}\r\n`, hit ? `VALUE ${key} 0 1\r\nx\r\nEND\r\n` : "END\r\n");
    };
    const set = async (key: string, exptime: string | number) => {
      clock.t = T0;
      await expect(c, `set ${key} 0 ${exptime} 1\r\nx\r\n`, "STORED\r\n");
    };
    await t.step("0 never expires", async () => {
      await set("never", 0);
      await at(T0 + 10 * 365 * 86400, "never", true);
    });
    await t.step("10 seconds: alive at +9, gone at +10", async () => {
      await set("ten", 10);
      await at(T0 + 9, "ten", true);
      await at(T0 + 10, "ten", false);
    });
    await t.step("2592000 (30 days) is still relative", async () => {
      await set("month", 2592000);
      await at(T0 + 2591999, "month", true);
      await at(T0 + 2592000, "month", false);
    });
    await t.step("2592001 is an absolute Unix time, long past", async () => {
      await set("abs-past", 2592001);
      await at(T0, "abs-past", false);
    });
    await t.step("an absolute time in the future expires at that second", async () => {
      await set("abs", T0 + 100);
      await at(T0 + 99, "abs", true);
      await at(T0 + 100, "abs", false);
    });
    await t.step("negative is already expired", async () => {
      await set("neg", -1);
      await at(T0, "neg", false);
    });
    await t.step(
      "an exptime beyond 32 bits is truncated as memcached does (2^32+10 → 10)",
      async () => {
        await set("wrap", 4294967306);
        await at(T0 + 9, "wrap", true);
        await at(T0 + 10, "wrap", false);
        await set("wrap-neg", 2147483648); // the int32 -2147483648: expired
        await at(T0, "wrap-neg", false);
      },
    );
  });
});

Deno.test("flush_all [delay] [noreply]", async (t) => {
  await withMemg([], async (c, _memg, clock) => {
    const fill = async () => {
      for (const k of ["f1", "f2"]) await expect(c, `set ${k} 0 0 1\r\nx\r\n`, "STORED\r\n");
    };
    await t.step("immediate flush; items stored after it survive", async () => {
      await fill();
      await expect(c, "flush_all\r\n", "OK\r\n");
      await expect(c, "get f1 f2\r\n", "END\r\n");
      await expect(c, "set f3 0 0 1\r\nx\r\n", "STORED\r\n");
      await expect(c, "get f3\r\n", "VALUE f3 0 1\r\nx\r\nEND\r\n");
      await fill();
      await expect(c, "flush_all 0\r\n", "OK\r\n");
      await expect(c, "get f1 f2 f3\r\n", "END\r\n");
      await fill();
      assertEquals(await getAfter(c, "flush_all noreply\r\n", "f1"), "END\r\n");
      await fill();
      assertEquals(await getAfter(c, "flush_all 0 noreply\r\n", "f1"), "END\r\n");
      await fill();
      await expect(c, "flush_all -1\r\n", "OK\r\n");
      await expect(c, "get f1\r\n", "END\r\n");
    });
    await t.step(
      "flush_all 10 takes effect at +9, as memcached's oldest_live = realtime - 1",
      async () => {
        clock.t = T0 + 1000;
        await fill();
        await expect(c, "flush_all 10\r\n", "OK\r\n");
        clock.t = T0 + 1008;
        await expect(c, "get f1 f2\r\n", "VALUE f1 0 1\r\nx\r\nVALUE f2 0 1\r\nx\r\nEND\r\n");
        clock.t = T0 + 1009;
        await expect(c, "get f1\r\n", "END\r\n");
        // stored in the flush's last second: flushed too; one second later: kept
        await expect(c, "set f3 0 0 1\r\nx\r\n", "STORED\r\n");
        await expect(c, "get f3\r\n", "END\r\n");
        clock.t = T0 + 1010;
        await expect(c, "get f2\r\n", "END\r\n");
        await expect(c, "set f3 0 0 1\r\nx\r\n", "STORED\r\n");
        await expect(c, "get f3\r\n", "VALUE f3 0 1\r\nx\r\nEND\r\n");
      },
    );
    await t.step("a delayed flush with noreply", async () => {
      clock.t = T0 + 2000;
      await fill();
      assertEquals(
        await getAfter(c, "flush_all 5 noreply\r\n", "f1"),
        "VALUE f1 0 1\r\nx\r\nEND\r\n",
      );
      clock.t = T0 + 2004;
      await expect(c, "get f1\r\n", "END\r\n");
    });
    await t.step("errors", async () => {
      await expect(c, "flush_all x\r\n", "CLIENT_ERROR invalid exptime argument\r\n");
      await expect(c, "flush_all 1 2 3\r\n", "ERROR\r\n");
    });
  });
  await t.step("-F refuses flush_all before reading its delay", async () => {
    await withMemg(["-F"], async (c) => {
      await expect(c, "set k 0 0 1\r\nx\r\n", "STORED\r\n");
      await expect(c, "flush_all\r\n", "CLIENT_ERROR flush_all not allowed\r\n");
      await expect(c, "flush_all x\r\n", "CLIENT_ERROR flush_all not allowed\r\n");
      await expect(c, "get k\r\n", "VALUE k 0 1\r\nx\r\nEND\r\n");
      assertEquals(await stat(c, "cmd_flush"), "2");
    });
  });
});

Deno.test("version, verbosity, quit", async (t) => {
  await withMemg([], async (c) => {
    await t.step("version starts with memcached's version", async () => {
      const v = await c.call("version\r\n");
      assertMatch(v, /^VERSION 1\.6\.18[^\r\n ]*\r\n$/);
    });
    await t.step("verbosity", async () => {
      await expect(c, "verbosity 1\r\n", "OK\r\n");
      await expect(c, "verbosity 1 2\r\n", "OK\r\n"); // memcached ignores the extra token
      await expect(c, "verbosity\r\n", "ERROR\r\n");
      await expect(c, "verbosity 1 2 3\r\n", "ERROR\r\n");
      await expect(c, "verbosity x\r\n", "CLIENT_ERROR bad command line format\r\n");
      await expect(c, "verbosity -1\r\n", "CLIENT_ERROR bad command line format\r\n");
      assertEquals(await getAfter(c, "verbosity 0 noreply\r\n", "nope"), "END\r\n");
    });
    await t.step("quit closes without a reply, ignoring what follows it", async () => {
      await c.send("quit\r\nversion\r\n");
      assert(await c.closedByServer(), "quit did not close");
      assertEquals(c.text(), "");
    });
  });
});

Deno.test("stats, stats settings, stats reset", async (t) => {
  await withMemg(["-I", "2m", "-c", "77"], async (c, _memg, clock) => {
    await t.step("general stats count commands and show the clock", async () => {
      await expect(c, "set s 0 0 1\r\nx\r\n", "STORED\r\n");
      await expect(c, "get s nope\r\n", "VALUE s 0 1\r\nx\r\nEND\r\n");
      clock.t = T0 + 5;
      const rows = await c.call("stats\r\n", "END\r\n");
      assertMatch(rows, /^STAT pid \d+\r\n/);
      for (
        const [name, value] of [
          ["uptime", "5"],
          ["time", String(T0 + 5)],
          ["cmd_get", "2"],
          ["get_hits", "1"],
          ["get_misses", "1"],
          ["cmd_set", "1"],
          ["curr_items", "1"],
          ["total_items", "1"],
          ["curr_connections", "1"],
          ["max_connections", "77"],
        ]
      ) {
        assert(rows.includes(`\r\nSTAT ${name} ${value}\r\n`), `STAT ${name} ${value}`);
      }
      assertMatch(rows, /\r\nSTAT version 1\.6\.18[^\r]*\r\n/);
    });
    await t.step("stats settings reflect the command line", async () => {
      assertEquals(await stat(c, "item_size_max", "settings"), "2097152");
      assertEquals(await stat(c, "maxconns", "settings"), "77");
      assertEquals(await stat(c, "maxbytes", "settings"), String(64 * 1024 * 1024));
      assertEquals(await stat(c, "evictions", "settings"), "on");
    });
    await t.step("stats reset answers RESET and zeroes the counters", async () => {
      await expect(c, "stats reset\r\n", "RESET\r\n");
      assertEquals(await stat(c, "cmd_get"), "0");
      assertEquals(await stat(c, "total_items"), "0"); // memcached resets it too
      assertEquals(await stat(c, "curr_items"), "1"); // items are not counters
      await expect(c, "set s2 0 0 1\r\nx\r\n", "STORED\r\n");
      assertEquals(await stat(c, "total_items"), "1");
    });
    await t.step("an unknown group is ERROR", async () => {
      await expect(c, "stats nonsense\r\n", "ERROR\r\n");
    });
  });
});

Deno.test("shutdown", async (t) => {
  await t.step("without -A: memcached's ERROR: shutdown not enabled", async () => {
    await withMemg([], async (c) => {
      await expect(c, "shutdown\r\n", "ERROR: shutdown not enabled\r\n");
      await expect(c, "shutdown graceful\r\n", "ERROR: shutdown not enabled\r\n");
      assertMatch(await c.call("version\r\n"), /^VERSION /); // still connected
    });
  });
  for (const command of ["shutdown", "shutdown graceful"]) {
    await t.step(`with -A: "${command}" closes the connection and stops the server`, async () => {
      const memg = startMemg(["-A"]);
      const c = await RawClient.connect(memg.port);
      try {
        await expect(c, "shutdown x\r\n", "CLIENT_ERROR invalid shutdown mode\r\n");
        await expect(c, "shutdown graceful x\r\n", "CLIENT_ERROR invalid shutdown mode\r\n");
        await c.send(`${command}\r\n`);
        assert(await c.closedByServer(), "the connection stayed open");
        assertEquals(c.text(), "");
        await memg.server.done;
        let refused = false;
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port: memg.port })).close();
        } catch {
          refused = true;
        }
        assert(refused, "still accepting after shutdown");
      } finally {
        c.close();
        await memg.close();
      }
    });
  }
});

Deno.test("cache_memlimit and its three error replies", async () => {
  await withMemg([], async (c) => {
    await expect(c, "cache_memlimit 100\r\n", "OK\r\n");
    assertEquals(await stat(c, "limit_maxbytes"), String(100 * 1024 * 1024));
    await expect(
      c,
      "cache_memlimit 7\r\n",
      "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
    );
    await expect(
      c,
      "cache_memlimit 1000000001\r\n",
      "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n",
    );
    await expect(c, "cache_memlimit x\r\n", "ERROR\r\n");
    await expect(c, "cache_memlimit -1\r\n", "ERROR\r\n");
    await expect(c, "cache_memlimit\r\n", "ERROR\r\n");
    await expect(c, "cache_memlimit 1 2 3\r\n", "ERROR\r\n");
    await expect(c, "cache_memlimit 8\r\n", "OK\r\n");
    assertEquals(await getAfter(c, "cache_memlimit 64 noreply\r\n", "nope"), "END\r\n");
    assertEquals(await stat(c, "limit_maxbytes"), String(64 * 1024 * 1024));
  });
});

Deno.test("limits and errors, byte for byte as memcached", async (t) => {
  await withMemg([], async (c, memg) => {
    const k250 = "k".repeat(250);
    const k251 = "k".repeat(251);
    await t.step("a 250-byte key works; 251 is CLIENT_ERROR bad command line format", async () => {
      await expect(c, `set ${k250} 0 0 1\r\nx\r\n`, "STORED\r\n");
      await expect(c, `get ${k250}\r\n`, `VALUE ${k250} 0 1\r\nx\r\nEND\r\n`);
      // the value line after a refused set line is read as a command
      await expect(
        c,
        `set ${k251} 0 0 1\r\nx\r\n`,
        "CLIENT_ERROR bad command line format\r\nERROR\r\n",
      );
      for (
        const line of [
          `get ${k251}`,
          `get ${k250} ${k251}`, // the hit before the long key is dropped too
          `gat 0 ${k251}`,
          `delete ${k251}`,
          `incr ${k251} 1`,
          `touch ${k251} 0`,
        ]
      ) {
        await expect(c, `${line}\r\n`, "CLIENT_ERROR bad command line format\r\n");
      }
    });
    await t.step("unknown commands are ERROR", async () => {
      for (const line of ["bogus", "SET k 0 0 1", "g", "", " ", "gz", "mz"]) {
        await expect(c, `${line}\r\n`, "ERROR\r\n");
      }
      await expect(c, "set k\t0 0 1\r\nx\r\n", "ERROR\r\nERROR\r\n");
    });
    await t.step(
      "a bad data trailer: bad data chunk, and the bytes after bytes+2 are a new line",
      async () => {
        await expect(c, "set k 0 0 3\r\nabc\r\n", "STORED\r\n");
        await expect(c, "set k 0 0 3\r\nabcde\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
        await expect(c, "set k 0 0 3\r\nabc\r\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n");
        // "abc\n" + "g": the trailer is "\ng"; "et k\r\n" is then an unknown command
        await expect(
          c,
          "set k 0 0 3\r\nabc\nget k\r\n",
          "CLIENT_ERROR bad data chunk\r\nERROR\r\n",
        );
        // noreply silences the bad data chunk but not the ERROR for the leftover line
        await expect(c, "set k 0 0 1 noreply\r\nxyz\r\n", "ERROR\r\n");
        // the old value is untouched
        await expect(c, "get k\r\n", "VALUE k 0 3\r\nabc\r\nEND\r\n");
      },
    );
    await t.step("a line ending in HTTP/… closes the connection without a reply", async () => {
      for (const line of ["GET / HTTP/1.1", "POST /x HTTP/1.0", "xx HTTP/1.1", "pz HTTP/1.1"]) {
        const h = await RawClient.connect(memg.port);
        try {
          await h.send(`${line}\r\n`);
          assert(await h.closedByServer(), `${line} did not close`);
          assertEquals(h.text(), "");
        } finally {
          h.close();
        }
      }
      // commands whose first letter memcached dispatches on answer instead of closing
      await expect(c, "get k HTTP/1.1\r\n", "VALUE k 0 3\r\nabc\r\nEND\r\n");
      await expect(c, "stats HTTP/1.1\r\n", "ERROR\r\n");
      await expect(c, "az HTTP/1.1\r\n", "ERROR\r\n");
      assertMatch(await c.call("version HTTP/1.1\r\n"), /^VERSION /);
    });
  });
});

Deno.test("line length: 2048 bytes without a newline closes, except a long get", async (t) => {
  await withMemg([], async (c, memg) => {
    await t.step("a 3000-byte line without a newline closes the connection", async () => {
      const h = await RawClient.connect(memg.port);
      try {
        await h.send(`set ${"k".repeat(3000)}`);
        assert(await h.closedByServer(), "not closed");
        assertEquals(h.text(), "");
      } finally {
        h.close();
      }
    });
    await t.step("a shorter partial line waits for its end", async () => {
      await c.send(`get ${"k".repeat(2000)}`);
      await c.send(" nope\r\n");
      assertEquals(await c.readLine(), "CLIENT_ERROR bad command line format");
    });
    await t.step("500 keys of 200 bytes in one get or gets", async () => {
      const keys = Array.from({ length: 500 }, (_, i) => String(i).padStart(200, "x"));
      let sets = "";
      for (const k of keys) sets += `set ${k} ${keys.indexOf(k)} 0 3\r\nv${k.slice(-2)}\r\n`;
      await c.send(sets);
      for (let i = 0; i < keys.length; i++) assertEquals(await c.readLine(), "STORED");
      for (const cmd of ["get", "gets"]) {
        // sent in pieces, so the server sees more than 2048 bytes before the newline
        const line = `${cmd} ${keys.join(" ")}\r\n`;
        for (let off = 0; off < line.length; off += 8192) {
          await c.send(line.slice(off, off + 8192));
        }
        const reply = await c.readUntil("END\r\n");
        const values = reply.split("\r\n").filter((l) => l.startsWith("VALUE "));
        assertEquals(values.length, 500);
        for (let i = 0; i < 500; i++) {
          assert(values[i].startsWith(`VALUE ${keys[i]} ${i} 3`), values[i]);
        }
      }
    });
  });
});

Deno.test("-I: a value over the item size limit is read, discarded and refused", async (t) => {
  for (
    const [args, limit, fits, over] of [
      [[], 1024 * 1024, 1000 * 1000, 1024 * 1024 + 1],
      [["-I", "512k"], 512 * 1024, 500 * 1000, 512 * 1024 + 1],
      [["-I", "2m"], 2 * 1024 * 1024, 2000 * 1000, 2 * 1024 * 1024 + 1],
    ] as const
  ) {
    await t.step(`${args.join(" ") || "default"}: ${fits} fits, ${over} does not`, async () => {
      await withMemg([...args], async (c) => {
        assertEquals(await stat(c, "item_size_max", "settings"), String(limit));
        await expect(c, `set big 0 0 ${fits}\r\n${"a".repeat(fits)}\r\n`, "STORED\r\n");
        const head = await c.call("get big\r\n", "END\r\n");
        assertEquals(head.length, `VALUE big 0 ${fits}\r\n`.length + fits + 2 + 5);
        // add of a too-large value leaves the old item; set removes it (memcached's stale-data rule)
        await expect(
          c,
          `add big 0 0 ${over}\r\n${"b".repeat(over)}\r\nget nope\r\n`,
          "SERVER_ERROR object too large for cache\r\nEND\r\n",
        );
        assertEquals((await c.call("get big\r\n", "END\r\n")).length, head.length);
        await expect(
          c,
          `set big 0 0 ${over}\r\n${"b".repeat(over)}\r\nget big\r\n`,
          "SERVER_ERROR object too large for cache\r\nEND\r\n",
        );
        assertEquals(await stat(c, "store_too_large"), "2");
        // noreply silences the refusal; the data is still swallowed
        await expect(
          c,
          `set big 0 0 ${over} noreply\r\n${"c".repeat(over)}\r\nversion\r\n`,
          "VERSION ",
        );
        await c.readLine();
      });
    });
  }
});
