/**
 * The meta protocol (mg ms md ma mn me) over real sockets against an in-process memg whose
 * clock the test moves by hand: every flag's behaviour, every error, quiet pipelines ended
 * by `mn`, stampede protection with two clients, binary (base64) keys, TTLs and counters.
 *
 * @module
 */
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { type InProcessMemg, startMemg } from "./helpers/server.ts";
import { decodeBase64, encodeBase64, encodedLength } from "../lib/protocol/base64.ts";

const T0 = 1_700_000_000;

/** A clock the test sets. */
class ManualClock {
  t = T0;
  now(): number {
    return this.t;
  }
}

/** Mn commands in a request (no data block in these tests holds one). */
const MN_COMMAND = /(^|\n)mn[ \r]/g;

/** Sends `request` then `mn`, and returns everything answered before the last `MN`. */
async function ask(c: RawClient, request: string): Promise<string> {
  const expected = (request.match(MN_COMMAND)?.length ?? 0) + 1;
  let reply = await c.call(request + "mn\r\n", "MN\r\n");
  while (reply.split("MN\r\n").length - 1 < expected) reply += await c.readUntil("MN\r\n");
  return reply.slice(0, -4);
}

/** The CAS in a reply's `c` flag. */
function casOf(reply: string): number {
  const m = / c(\d+)/.exec(reply);
  assert(m !== null, `no CAS in ${JSON.stringify(reply)}`);
  return Number(m[1]);
}

/** One counter from `stats`. */
async function stat(c: RawClient, name: string): Promise<number> {
  const stats = await c.call("stats\r\n", "END\r\n");
  const m = new RegExp(`^STAT ${name} (\\d+)\r$`, "m").exec(stats);
  assert(m !== null, `no stat ${name}`);
  return Number(m[1]);
}

/** The counters `names` as an object. */
async function stats(c: RawClient, names: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const n of names) out[n] = await stat(c, n);
  return out;
}

/** `after - before` for each counter. */
function delta(
  before: Record<string, number>,
  after: Record<string, number>,
): Record<string, number> {
  const d: Record<string, number> = {};
  for (const k of Object.keys(before)) d[k] = after[k] - before[k];
  return d;
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return s;
}

Deno.test("meta protocol", async (t) => {
  const clock = new ManualClock();
  const memg: InProcessMemg = startMemg([], clock);
  const a = await RawClient.connect(memg.port);
  const b = await RawClient.connect(memg.port);
  try {
    await t.step("mg: no flags, v, and every return flag in request order", async () => {
      assertEquals(await ask(a, "ms foo 3 F7 T100\r\nbar\r\n"), "HD\r\n");
      assertEquals(await ask(a, "mg foo\r\n"), "HD\r\n");
      assertEquals(await ask(a, "mg foo v\r\n"), "VA 3\r\nbar\r\n");
      const cas = casOf(await ask(a, "mg foo c\r\n"));
      assertEquals(
        await ask(a, "mg foo k s v f t c O123 h l\r\n"),
        `VA 3 kfoo s3 f7 t100 c${cas} O123 h1 l0\r\nbar\r\n`,
      );
      assertEquals(await ask(a, "mg foo O9 k t\r\n"), "HD O9 kfoo t100\r\n");
      assertEquals(await ask(a, "mg foo P Lpath O\r\n"), "HD O\r\n", "P and L are ignored");
      assertEquals(await ask(a, "mg foo F5 C5 I MS J5 D5\r\n"), "HD\r\n", "others' flags ignored");
    });

    await t.step("mg miss: EN echoes only O and k; q hides EN but not a hit", async () => {
      assertEquals(await ask(a, "mg nope v\r\n"), "EN\r\n");
      assertEquals(await ask(a, "mg nope v s t c O1 k\r\n"), "EN O1 knope\r\n");
      assertEquals(await ask(a, "mg nope q k O1\r\n"), "");
      assertEquals(await ask(a, "mg foo q k\r\n"), "HD kfoo\r\n");
      assertEquals(await ask(a, "mg foo q v\r\n"), "VA 3\r\nbar\r\n");
    });

    await t.step("mg O: opaque up to 32 bytes with the O", async () => {
      const o32 = "O" + "x".repeat(31);
      assertEquals(await ask(a, `mg foo ${o32}\r\n`), `HD ${o32}\r\n`);
      assertEquals(await ask(a, `mg nope ${o32}\r\n`), `EN ${o32}\r\n`);
      assertEquals(await ask(a, `mg foo ${o32}x\r\n`), "CLIENT_ERROR opaque token too long\r\n");
      assertEquals(await ask(a, `mg nope q ${o32}x\r\n`), "CLIENT_ERROR opaque token too long\r\n");
    });

    await t.step("mg t, T, l, h, u with the clock", async () => {
      // how long ago the store last saw `key` (whether a hit renews it is the store's policy)
      const ago = (key: string) => {
        const k = new TextEncoder().encode(key);
        const store = memg.server.cache.store;
        return clock.t - store.lastAccess(store.find(k, 0, k.length));
      };
      assertEquals(await ask(a, "ms ttl 1 T100\r\nx\r\n"), "HD\r\n");
      clock.t += 30;
      assertEquals(await ask(a, "mg ttl t l h\r\n"), "HD t70 l30 h0\r\n");
      const sinceHit = ago("ttl"); // the first hit renewed it or not, as the store decides
      assertEquals(await ask(a, "mg ttl t l h\r\n"), `HD t70 l${sinceHit} h1\r\n`);
      assertEquals(await ask(a, "mg ttl T10 t\r\n"), "HD t10\r\n");
      assertEquals(await ask(a, "mg ttl t T500 s\r\n"), "HD t10 s1\r\n", "flags act in order");
      assertEquals(await ask(a, "mg ttl T0 t\r\n"), "HD t-1\r\n");
      assertEquals(await ask(a, "mg ttl T5\r\n"), "HD\r\n");
      clock.t += 5;
      assertEquals(await ask(a, "mg ttl\r\n"), "EN\r\n", "expired by T5");

      assertEquals(await ask(a, "ms quiet 1\r\nx\r\n"), "HD\r\n");
      clock.t += 7;
      assertEquals(await ask(a, "mg quiet u h l\r\n"), "HD h0 l7\r\n");
      assertEquals(await ask(a, "mg quiet u h l\r\n"), "HD h0 l7\r\n", "u neither marks nor bumps");
      assertEquals(await ask(a, "mg quiet h l\r\n"), "HD h0 l7\r\n");
      const sinceQuietHit = ago("quiet");
      assertEquals(await ask(a, "mg quiet h l\r\n"), `HD h1 l${sinceQuietHit}\r\n`);
      assertEquals(await ask(a, "mg quiet T-1 v\r\n"), "VA 1\r\nx\r\n");
      assertEquals(await ask(a, "mg quiet v\r\n"), "EN\r\n", "a negative T expires at once");
    });

    await t.step("stampede: N vivifies and wins once, others see Z; N's TTL", async () => {
      assertMatch(await ask(a, "mg hot N30 t v s f c\r\n"), /^VA 0 t30 s0 f0 c\d+ W\r\n\r\n$/);
      assertEquals(await ask(b, "mg hot N30 v\r\n"), "VA 0 Z\r\n\r\n");
      assertEquals(await ask(b, "mg hot v t\r\n"), "VA 0 t30 Z\r\n\r\n");
      assertEquals(await ask(a, "ms hot 3 T300\r\nnew\r\n"), "HD\r\n", "the winner recaches");
      assertEquals(await ask(b, "mg hot N30 v\r\n"), "VA 3\r\nnew\r\n", "a new item: no Z");
      clock.t += 301;
      assertEquals(await ask(b, "mg hot N30 t\r\n"), "HD t30 W\r\n", "expired: vivified again");
      assertEquals(await ask(a, "mg hot N30 q\r\n"), "HD Z\r\n");
      assertEquals(await ask(a, "mg hot2 q T10 N5 t\r\n"), "HD t5 W\r\n", "the last TTL wins");
    });

    await t.step(
      "stampede: md I marks stale (X), one client wins (W), the rest see Z",
      async () => {
        assertEquals(await ask(a, "ms st 5 T900\r\nvalue\r\n"), "HD\r\n");
        const before = casOf(await ask(a, "mg st c\r\n"));
        assertEquals(await ask(a, "md st I T30 q\r\n"), "");
        const after = casOf(await ask(b, "mg st c t v\r\n"));
        assert(after > before, "md I bumps the CAS");
        assertEquals(await ask(b, "mg st t v\r\n"), "VA 5 t30 Z X\r\nvalue\r\n");
        assertEquals(await ask(a, "mg st v c\r\n"), `VA 5 c${after} Z X\r\nvalue\r\n`);
        assertEquals(await ask(a, "md st I\r\n"), "HD\r\n", "a second invalidation...");
        assertEquals(await ask(b, "mg st\r\n"), "HD X W\r\n", "...lets the next client win again");
        assertEquals(await ask(a, "ms st 3\r\nnew\r\n"), "HD\r\n");
        assertEquals(await ask(b, "mg st v\r\n"), "VA 3\r\nnew\r\n", "the recached item is fresh");
      },
    );

    await t.step("stampede: R wins when the TTL left is below its token", async () => {
      assertEquals(await ask(a, "ms rc 1 T100\r\n1\r\n"), "HD\r\n");
      assertEquals(await ask(a, "mg rc R30\r\n"), "HD\r\n");
      clock.t += 75;
      assertEquals(await ask(a, "mg rc R30 t\r\n"), "HD t25 W\r\n");
      assertEquals(await ask(b, "mg rc R30 t\r\n"), "HD t25 Z\r\n");
      assertEquals(await ask(a, "ms rc 1\r\n1\r\n"), "HD\r\n");
      assertEquals(await ask(a, "mg rc R30\r\n"), "HD\r\n", "no TTL: R never wins");
    });

    await t.step("ms I with an older CAS stores a stale value keeping the TTL", async () => {
      const cas = casOf(await ask(a, "ms inv 2 T900 c\r\nab\r\n"));
      const stale = casOf(await ask(a, `ms inv 3 I C${cas - 1} T5 c\r\nold\r\n`));
      assert(stale > cas);
      assertEquals(await ask(a, "mg inv v t c\r\n"), `VA 3 t900 c${stale} X W\r\nold\r\n`);
      assertEquals(await ask(b, "mg inv\r\n"), "HD Z X\r\n");
      assertEquals(await ask(a, `ms inv 3 I C${stale + 100}\r\nnew\r\n`), "EX\r\n");
      const fresh = casOf(await ask(a, `ms inv 3 I C${stale} c\r\nnew\r\n`));
      assertEquals(await ask(a, "mg inv v c t\r\n"), `VA 3 c${fresh} t-1\r\nnew\r\n`);
      assertEquals(await ask(a, "ms inv2 3 I C1 c\r\nnew\r\n"), "NF c0\r\n");
      const c3 = casOf(await ask(a, "ms inv3 2 T900 c\r\nab\r\n"));
      assertEquals(await ask(a, `ms inv3 3 I q C${c3 - 1}\r\nold\r\n`), "", "quiet, still stale");
      assertEquals(await ask(a, "mg inv3 v t\r\n"), "VA 3 t900 X W\r\nold\r\n");
    });

    await t.step("ms: F, T, return flags k c O in order, q hides HD only", async () => {
      const r = await ask(a, "ms m1 2 c F4294967295 T100 k O5\r\nhi\r\n");
      assertMatch(r, /^HD c\d+ km1 O5\r\n$/);
      assertEquals(await ask(a, "mg m1 f t v\r\n"), "VA 2 f4294967295 t100\r\nhi\r\n");
      assertEquals(await ask(a, "ms m1 2 F4294967296\r\nhi\r\n"), "HD\r\n");
      assertEquals(await ask(a, "mg m1 f t\r\n"), "HD f0 t-1\r\n", "flags wrap to u32");
      assertEquals(await ask(a, "ms m1 2 q k c\r\nhi\r\n"), "");
      assertEquals(await ask(a, "ms m1 2 q ME k c\r\nhi\r\n"), "NS km1 c0\r\n");
      assertEquals(await ask(a, "ms m1 2 q C1\r\nhi\r\n"), "EX\r\n");
      assertEquals(await ask(a, "ms m0 0\r\n\r\n"), "HD\r\n");
      assertEquals(await ask(a, "mg m0 s v\r\n"), "VA 0 s0\r\n\r\n");
    });

    await t.step("ms modes: S E R A P", async () => {
      assertEquals(await ask(a, "ms mode 2 ME\r\nab\r\n"), "HD\r\n");
      assertEquals(await ask(a, "ms mode 2 ME\r\nzz\r\n"), "NS\r\n");
      assertEquals(await ask(a, "ms mode 2 MA\r\ncd\r\n"), "HD\r\n");
      assertEquals(await ask(a, "ms mode 2 MP\r\n12\r\n"), "HD\r\n");
      assertEquals(await ask(a, "mg mode v\r\n"), "VA 6\r\n12abcd\r\n");
      assertEquals(await ask(a, "ms mode 2 MR\r\nxy\r\n"), "HD\r\n");
      assertEquals(await ask(a, "ms mode 2 MS\r\nzw\r\n"), "HD\r\n");
      assertEquals(await ask(a, "mg mode v\r\n"), "VA 2\r\nzw\r\n");
      for (const m of ["MR", "MA", "MP"]) {
        assertEquals(await ask(a, `ms nomode 2 ${m} k\r\nab\r\n`), "NS knomode\r\n", m);
      }
      assertEquals(
        await ask(a, "ms mode 2 Ms\r\nab\r\n"),
        "CLIENT_ERROR invalid mode for ms M token\r\n",
      );
      assertEquals(
        await ask(a, "ms mode 2 MSS\r\nab\r\n"),
        "CLIENT_ERROR incorrect length for M token\r\n",
      );
    });

    await t.step("ms C compares the CAS (set, replace; C0 never matches)", async () => {
      const cas = casOf(await ask(a, "ms cas 2 c\r\nab\r\n"));
      assertEquals(await ask(a, `ms cas 2 C${cas + 1}\r\ncd\r\n`), "EX\r\n");
      assertEquals(await ask(a, "ms cas 2 C0\r\ncd\r\n"), "EX\r\n");
      const next = casOf(await ask(a, `ms cas 2 C${cas} c\r\ncd\r\n`));
      assert(next > cas);
      assertEquals(await ask(a, `ms cas 2 MR C${cas}\r\nef\r\n`), "EX\r\n");
      assertEquals(await ask(a, `ms cas 2 MR C${next}\r\nef\r\n`), "HD\r\n");
      assertEquals(await ask(a, "mg cas v\r\n"), "VA 2\r\nef\r\n");
      assertEquals(await ask(a, "ms cas 2 ME C1\r\nef\r\n"), "NS\r\n", "add ignores C");
      assertEquals(await ask(a, "ms nocas 2 C5\r\nab\r\n"), "NF\r\n");
      assertEquals(await ask(a, "ms nocas 2 MR C5\r\nab\r\n"), "NF\r\n");
      assertEquals(await ask(a, "ms nocas 2 MA C5\r\nab\r\n"), "NS\r\n");
      assertEquals(await ask(a, "ms cas 2 MA C1\r\ngh\r\n"), "EX\r\n");
      assertEquals(await ask(a, "ms cas 2 MA C0\r\ngh\r\n"), "HD\r\n", "C0: no comparison");
      assertEquals(await ask(a, "mg cas v\r\n"), "VA 4\r\nefgh\r\n");
    });

    await t.step("ms MA/MP with a matching C append/prepend (not replace)", async () => {
      const cas = casOf(await ask(a, "ms cat 2 c\r\nab\r\n"));
      const next = casOf(await ask(a, `ms cat 2 MA C${cas} c\r\ncd\r\n`));
      assertEquals(await ask(a, `ms cat 2 MP C${next}\r\n01\r\n`), "HD\r\n");
      assertEquals(await ask(a, "mg cat v\r\n"), "VA 6\r\n01abcd\r\n");
    });

    await t.step("ms: data arriving later, with another connection in between", async () => {
      await a.send("ms split 5 k c O7\r\nhe");
      assertEquals(await ask(b, "ms split 1\r\nx\r\nmg split v\r\n"), "HD\r\nVA 1\r\nx\r\n");
      await a.send("llo\r\n");
      assertMatch(await a.readLine(), /^HD ksplit c\d+ O7$/);
      assertEquals(await ask(b, "mg split v\r\n"), "VA 5\r\nhello\r\n");
    });

    await t.step("ms errors: refused before the length, or after (data swallowed)", async () => {
      assertEquals(await ask(a, "ms\r\n"), "ERROR\r\n");
      assertEquals(await ask(a, "ms e1\r\n"), "CLIENT_ERROR bad command line format\r\n");
      assertEquals(
        await ask(a, "ms e1 abc\r\nxyz\r\n"),
        "CLIENT_ERROR bad command line format\r\nERROR\r\n",
        "no length: the data line is read as a command",
      );
      assertEquals(await ask(a, "ms e1 -1\r\n"), "CLIENT_ERROR bad command line format\r\n");
      assertEquals(
        await ask(a, `ms ${"k".repeat(251)} 1\r\nx\r\n`),
        "CLIENT_ERROR bad command line format\r\nERROR\r\n",
      );
      assertEquals(
        await ask(a, "ms e1 2 v c f s t k h l u O1 N1 R1 T1 P L F1 J1\r\nab\r\n"),
        "CLIENT_ERROR options flags too long\r\nERROR\r\n",
      );
      const swallowed: Array<[string, string]> = [
        ["x", "CLIENT_ERROR invalid flag"],
        ["v v", "CLIENT_ERROR duplicate flag"],
        ["\xff", "CLIENT_ERROR duplicate flag"],
        ["Tx", "CLIENT_ERROR bad token in command line format"],
        ["Cx", "CLIENT_ERROR bad token in command line format"],
        ["Fx", "CLIENT_ERROR bad command line format"],
        ["Tx Fx", "CLIENT_ERROR bad token in command line format"],
        ["MX", "CLIENT_ERROR invalid mode for ms M token"],
        ["M", "CLIENT_ERROR incorrect length for M token"],
        ["O" + "x".repeat(32), "CLIENT_ERROR opaque token too long"],
        ["MX O" + "x".repeat(32), "CLIENT_ERROR invalid mode for ms M token"],
        ["b", "CLIENT_ERROR error decoding key"],
        ["q T", "CLIENT_ERROR bad token in command line format"],
      ];
      for (const [flags, error] of swallowed) {
        assertEquals(await ask(a, `ms e1 2 ${flags}\r\nab\r\n`), error + "\r\n", flags);
      }
      assertEquals(
        await ask(a, "ms e1 2 q\r\nabc\r\n"),
        "CLIENT_ERROR bad data chunk\r\nERROR\r\n",
        "a bad chunk is answered even with q",
      );
      assertEquals(await ask(a, "mg e1\r\n"), "EN\r\n", "nothing was stored");
    });

    await t.step("ms too large: refused, data swallowed, the old item dropped", async () => {
      assertEquals(await ask(a, "ms big 2\r\nab\r\n"), "HD\r\n");
      const n = 2 * 1024 * 1024;
      assertEquals(
        await ask(a, `ms big ${n} ME\r\n${"x".repeat(n)}\r\n`),
        "SERVER_ERROR object too large for cache\r\n",
      );
      assertEquals(await ask(a, "mg big\r\n"), "EN\r\n");
    });

    await t.step("md: delete, q, C, I with T, k and O", async () => {
      assertEquals(await ask(a, "ms d1 2\r\nab\r\n"), "HD\r\n");
      assertEquals(await ask(a, "md d1 q\r\n"), "");
      assertEquals(await ask(a, "md d1 k O4\r\n"), "NF kd1 O4\r\n");
      assertEquals(await ask(a, "md d1 q\r\n"), "NF\r\n", "q hides only HD");
      const cas = casOf(await ask(a, "ms d1 2 c T100\r\nab\r\n"));
      assertEquals(await ask(a, `md d1 C${cas + 1} q\r\n`), "EX\r\n");
      assertEquals(await ask(a, "md d1 C0\r\n"), "EX\r\n");
      assertEquals(await ask(a, "md d1 T5\r\n"), "HD\r\n", "T without I: deleted");
      assertEquals(await ask(a, "mg d1\r\n"), "EN\r\n");
      const c2 = casOf(await ask(a, "ms d1 2 c T100\r\nab\r\n"));
      assertEquals(await ask(a, `md d1 C${c2} I T30 k\r\n`), "HD kd1\r\n");
      assertEquals(await ask(a, "mg d1 t v\r\n"), "VA 2 t30 X W\r\nab\r\n");
      assertEquals(await ask(a, "md d1 I\r\n"), "HD\r\n");
      assertEquals(await ask(a, "mg d1 t\r\n"), "HD t30 X W\r\n", "I without T keeps the TTL");
    });

    await t.step("ma: incr, decr, D, modes, v t c, wrap at 2^64, floor at 0", async () => {
      assertEquals(await ask(a, "ms n 1 T100\r\n5\r\n"), "HD\r\n");
      assertEquals(await ask(a, "ma n\r\n"), "HD\r\n");
      assertEquals(await ask(a, "ma n v\r\n"), "VA 1\r\n7\r\n");
      assertEquals(await ask(a, "ma n MD D2 v\r\n"), "VA 1\r\n5\r\n");
      assertEquals(await ask(a, "ma n M- v\r\n"), "VA 1\r\n4\r\n");
      assertEquals(await ask(a, "ma n M+ D6 v t\r\n"), "VA 2 t100\r\n10\r\n");
      assertEquals(await ask(a, "ma n MI v k O1\r\n"), "VA 2 kn O1\r\n11\r\n");
      assertEquals(await ask(a, "ma n MD D999 v\r\n"), "VA 1\r\n0\r\n", "decr stops at 0");
      const c = casOf(await ask(a, "ma n c\r\n"));
      assertEquals(await ask(a, `ma n C${c + 1} v\r\n`), "EX\r\n");
      assertEquals(await ask(a, `ma n C${c} v c\r\n`), `VA 1 c${c + 1}\r\n2\r\n`);
      assertEquals(await ask(a, "ma n t T500 t\r\n"), "CLIENT_ERROR invalid or duplicate flag\r\n");
      assertEquals(await ask(a, "ma n t T500\r\n"), "HD t100\r\n", "t before T: the old TTL");
      assertEquals(await ask(a, "ma n T600 t\r\n"), "HD t600\r\n");
      assertEquals(await ask(a, "ma n q\r\n"), "");
      assertEquals(await ask(a, "ma n q v\r\n"), "", "q hides a successful VA too");
      assertEquals(await ask(a, "mg n v\r\n"), "VA 2\r\n6 \r\n", "rewritten in place, padded");
      assertEquals(await ask(a, "ms max 20\r\n18446744073709551615\r\n"), "HD\r\n");
      assertEquals(await ask(a, "ma max v\r\n"), "VA 1\r\n0\r\n", "incr wraps at 2^64");
      assertEquals(
        await ask(a, "ma max D18446744073709551615 v\r\n"),
        "VA 20\r\n18446744073709551615\r\n",
      );
      assertEquals(await ask(a, "ms nine 1\r\n9\r\n"), "HD\r\n");
      assertEquals(await ask(a, "ma nine v\r\n"), "VA 2\r\n10\r\n", "grows into a new item");
      assertEquals(await ask(a, "mg nine s v\r\n"), "VA 2 s2\r\n10\r\n");
    });

    await t.step("ma: misses, N J vivify with TTL, q, errors", async () => {
      assertEquals(await ask(a, "ma none\r\n"), "NF\r\n");
      assertEquals(await ask(a, "ma none q MD k\r\n"), "NF knone\r\n");
      assertEquals(
        await ask(a, "ma none N50 J10 v t c\r\n").then((r) => r.replace(/c\d+/, "c_")),
        "VA 2 t50 c_\r\n10\r\n",
      );
      assertEquals(await ask(a, "ma none N50 J10 v\r\n"), "VA 2\r\n11\r\n");
      assertEquals(await ask(a, "ma none2 q N0\r\n"), "HD\r\n", "a vivify is answered even with q");
      assertEquals(await ask(a, "mg none2 v t\r\n"), "VA 1 t-1\r\n0\r\n");
      clock.t += 51;
      assertEquals(await ask(a, "ma none\r\n"), "NF\r\n", "N's TTL ran out");
      assertEquals(await ask(a, "ms text 3\r\nabc\r\n"), "HD\r\n");
      const nonNumeric = "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
      assertEquals(await ask(a, "ma text q\r\n"), nonNumeric);
      assertEquals(await ask(a, "ma n MX\r\n"), "CLIENT_ERROR invalid mode for ma M token\r\n");
      for (const flags of ["x", "v v", "Dx", "D-1", "Jx", "Tx", "b"]) {
        assertEquals(
          await ask(a, `ma n ${flags}\r\n`),
          "CLIENT_ERROR invalid or duplicate flag\r\n",
          flags,
        );
      }
      assertEquals(
        await ask(a, `ma n O${"x".repeat(32)}\r\n`),
        "CLIENT_ERROR opaque token too long\r\n",
      );
      assertEquals(await ask(a, "ma\r\n"), "ERROR\r\n");
    });

    await t.step("mg and md errors, worded as memcached", async () => {
      assertEquals(await ask(a, "mg\r\n"), "ERROR\r\n");
      assertEquals(
        await ask(a, `mg ${"k".repeat(251)}\r\n`),
        "CLIENT_ERROR bad command line format\r\n",
      );
      assertEquals(await ask(a, `mg ${"k".repeat(250)}\r\n`), "EN\r\n");
      assertEquals(
        await ask(a, "mg foo v c f s t k h l u O1 N1 R1 T1 P L F1 J1 D1\r\n"),
        "CLIENT_ERROR options flags are too long\r\n",
      );
      const errors: Array<[string, string]> = [
        ["x", "CLIENT_ERROR invalid flag"],
        ["5", "CLIENT_ERROR invalid flag"],
        ["v v", "CLIENT_ERROR duplicate flag"],
        ["Tx v v", "CLIENT_ERROR duplicate flag"],
        ["\xff", "CLIENT_ERROR duplicate flag"],
        ["Tabc", "CLIENT_ERROR bad token in command line format"],
        ["N", "CLIENT_ERROR bad token in command line format"],
        ["Rx", "CLIENT_ERROR bad token in command line format"],
        ["Cx", "CLIENT_ERROR bad token in command line format"],
        ["Fx", "CLIENT_ERROR bad command line format"],
        ["Jx", "CLIENT_ERROR invalid numeric initial value"],
        ["Dx", "CLIENT_ERROR invalid numeric delta value"],
        ["Tx Jx", "CLIENT_ERROR invalid numeric initial value"],
        ["M", "CLIENT_ERROR incorrect length for M token"],
        ["b", "CLIENT_ERROR error decoding key"],
        ["q x", "CLIENT_ERROR invalid flag"],
      ];
      for (const [flags, error] of errors) {
        assertEquals(await ask(a, `mg foo ${flags}\r\n`), error + "\r\n", flags);
      }
      assertEquals(await ask(a, "md\r\n"), "ERROR\r\n");
      assertEquals(
        await ask(a, `md ${"k".repeat(251)} q\r\n`),
        "CLIENT_ERROR bad command line format\r\n",
      );
      for (const flags of ["x", "q q", "Tx", "b"]) {
        assertEquals(
          await ask(a, `md foo ${flags}\r\n`),
          "CLIENT_ERROR invalid or duplicate flag\r\n",
        );
      }
      assertEquals(
        await ask(a, "md foo v c f s t k h l u O1 N1 R1 T1 P L F1 J1 D1\r\n"),
        "CLIENT_ERROR options flags too long\r\n",
      );
      assertEquals(
        await ask(a, `md foo O${"x".repeat(32)}\r\n`),
        "CLIENT_ERROR opaque token too long\r\n",
      );
      assertEquals(await ask(a, "mz\r\n"), "ERROR\r\n");
      assertEquals(await ask(a, "mn with args\r\n"), "MN\r\n");
    });

    await t.step("quiet pipeline: silent until mn but for what needs saying", async () => {
      const pipeline = "mg p1 q v\r\nmg p2 q v k\r\nms p1 1 q\r\na\r\nmg p1 q v k\r\n" +
        "ms p1 1 q ME\r\nb\r\nmd p2 q\r\nmd p1 q\r\nma p3 q\r\nmg p1 q\r\nmn\r\n";
      assertEquals(
        await a.call(pipeline, "MN\r\n"),
        "VA 1 kp1\r\na\r\nNS\r\nNF\r\nNF\r\nMN\r\n",
      );
    });

    await t.step("base64 keys: all 256 byte values, k answers base64 with b", async () => {
      const bytes = new Uint8Array(256).map((_, i) => i);
      for (const [from, to] of [[0, 128], [128, 256]]) {
        const key = btoa(latin1(bytes.subarray(from, to)));
        assertEquals(await ask(a, `ms ${key} 2 b k\r\nhi\r\n`), `HD k${key} b\r\n`);
        assertEquals(await ask(a, `mg ${key} b k v\r\n`), `VA 2 k${key} b\r\nhi\r\n`);
        assertMatch(
          await ask(a, `me ${key} b\r\n`),
          new RegExp(`^ME ${key.replaceAll("+", "\\+")} exp=-1 `),
        );
        assertEquals(
          await ask(a, `ma ${key} b N0 J4 v k\r\n`),
          "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
        );
        assertEquals(await ask(a, `md ${key} b k\r\n`), `HD k${key} b\r\n`);
        assertEquals(await ask(a, `mg ${key} b k q\r\n`), "");
        assertEquals(await ask(a, `ma ${key} b N0 J4 v k\r\n`), `VA 1 k${key} b\r\n4\r\n`);
      }
      // the binary key is the decoded bytes: a text key with the same bytes is the same item
      assertEquals(await ask(a, "ms a2V5 3 b\r\nbin\r\n"), "HD\r\n");
      assertEquals(await ask(a, "mg key v\r\n"), "VA 3\r\nbin\r\n");
      // memcached's decoder: skips non-alphabet bytes, stops after padding; k re-encodes
      assertEquals(await ask(a, "mg a-2V5 b k v\r\n"), "VA 3 ka2V5 b\r\nbin\r\n");
      assertEquals(await ask(a, "mg YWJjZA==YWJj b k\r\n"), "EN kYWJjZA== b\r\n");
      assertEquals(await ask(a, "mg a2V b\r\n"), "CLIENT_ERROR error decoding key\r\n");
      assertEquals(await ask(a, "mg Y=== b\r\n"), "CLIENT_ERROR error decoding key\r\n");
      assertEquals(await ask(a, "me a2V b\r\n"), "CLIENT_ERROR bad command line format\r\n");
    });

    await t.step("base64 codec: round trips and memcached's decoding rules", () => {
      const src = new Uint8Array(64).map((_, i) => (i * 97 + 13) & 0xff);
      for (let n = 1; n <= src.length; n++) {
        const enc = new Uint8Array(encodedLength(n));
        assertEquals(encodeBase64(src, 0, n, enc, 0), enc.length);
        assertEquals(latin1(enc), btoa(latin1(src.subarray(0, n))));
        const dec = new Uint8Array(n);
        assertEquals(decodeBase64(enc, 0, enc.length, dec, 0), n);
        assertEquals(dec, src.subarray(0, n));
        assertEquals(decodeBase64(enc, 0, enc.length, enc, 0), n, "in place");
        assertEquals(enc.subarray(0, n), src.subarray(0, n));
      }
      const text = (s: string) => Uint8Array.from(s, (ch) => ch.charCodeAt(0));
      const decode = (s: string) => {
        const out = new Uint8Array(s.length);
        return latin1(out.subarray(0, decodeBase64(text(s), 0, s.length, out, 0)));
      };
      assertEquals(decode("a2V5"), "key");
      assertEquals(decode("a\n2 V*5"), "key", "non-alphabet bytes are skipped");
      assertEquals(decode("YQ=="), "a");
      assertEquals(decode("YWI="), "ab");
      assertEquals(decode("YWJjZA==YWJj"), "abcd", "decoding stops after a padded block");
      assertEquals(decode(""), "");
      assertEquals(decode("a2V"), "", "not a multiple of four");
      assertEquals(decode("Y==="), "", "three pads");
      assertEquals(decode("===="), "");
    });

    await t.step("me: item metadata with the clock", async () => {
      const store = memg.server.cache.store;
      const key = new TextEncoder().encode("dbg");
      /** cls and size as the store reports them (a store's layout, not protocol). */
      const layout = () => {
        const ref = store.find(key, 0, key.length);
        return `cls=${store.slabClass(ref)} size=${store.itemSize(ref)}`;
      };
      assertEquals(await ask(a, "ms dbg 2 T100\r\nab\r\n"), "HD\r\n");
      const cas = casOf(await ask(a, "mg dbg c u\r\n"));
      clock.t += 4;
      assertEquals(
        await ask(a, "me dbg\r\n"),
        `ME dbg exp=-96 la=4 cas=${cas} fetch=no ${layout()}\r\n`,
      );
      const [, me] = (await ask(a, "mg dbg\r\nme dbg x\r\n")).split("\r\n");
      const la = clock.t - store.lastAccess(store.find(key, 0, key.length));
      assertEquals(me, `ME dbg exp=-96 la=${la} cas=${cas} fetch=yes ${layout()}`);
      assertEquals(await ask(a, "ms dbg 2\r\nab\r\n"), "HD\r\n");
      assertMatch(
        await ask(a, "me dbg\r\n"),
        /^ME dbg exp=-1 la=0 cas=\d+ fetch=no cls=\d+ size=\d+\r\n$/,
      );
      assertEquals(await ask(a, "me nosuch\r\n"), "EN\r\n");
      assertEquals(await ask(a, "me\r\n"), "CLIENT_ERROR bad command line format\r\n");
      assertEquals(
        await ask(a, `me ${"k".repeat(251)}\r\n`),
        "CLIENT_ERROR bad command line format\r\n",
      );
    });

    await t.step("counters: only me counts cmd_meta; mg, md, ma count as memcached", async () => {
      const names = [
        "cmd_meta",
        "cmd_get",
        "get_hits",
        "get_misses",
        "cmd_touch",
        "touch_hits",
        "touch_misses",
        "cmd_set",
        "delete_hits",
        "delete_misses",
        "incr_hits",
        "incr_misses",
        "decr_hits",
        "cas_hits",
        "cas_badval",
        "cas_misses",
      ];
      assertEquals(await ask(a, "ms cnt 1\r\n1\r\n"), "HD\r\n");
      const before = await stats(a, names);
      await ask(
        a,
        "mg cnt\r\nmg cnt v u\r\nmg cnt T100\r\nmg cmiss\r\nmg cmiss T100\r\nmg cviv N10\r\n" +
          "mg cmiss x\r\nme cnt\r\nme cmiss\r\nme\r\n" +
          "md cmiss\r\nmd cnt C1\r\nmd cnt I\r\nmd cviv\r\n" +
          "ma cnt\r\nma cnt MD\r\nma cmiss\r\nma cviv2 N0\r\nma cnt C1\r\n" +
          "ms cnt 1 C1\r\n1\r\nms cnt 1 MA C1\r\n1\r\nms cmiss 1 C1\r\n1\r\nms cnt 1 q\r\n12\r\n",
      );
      assertEquals(delta(before, await stats(a, names)), {
        cmd_meta: 2, // me hit and miss; not mg ms md ma mn, nor a refused me
        cmd_get: 5, // a miss with T counts as a get
        get_hits: 3, // an N vivify counts as a hit
        get_misses: 2,
        cmd_touch: 1, // a hit with T counts as a touch, not a get
        touch_hits: 1,
        touch_misses: 0,
        cmd_set: 4, // every ms whose data arrived, the bad chunk too; not the vivify
        delete_hits: 1, // md I counts nothing
        delete_misses: 2, // the miss and the CAS mismatch
        incr_hits: 1,
        incr_misses: 1, // the vivify is not a miss
        decr_hits: 1,
        cas_hits: 0,
        cas_badval: 1, // append with C is not a cas command
        cas_misses: 1,
      });
    });
  } finally {
    a.close();
    b.close();
    await memg.close();
  }
});
