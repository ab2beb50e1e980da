/**
 * The meta protocol, memg against Debian's memcached 1.6.18: one script of meta commands
 * covering every flag, mode, reply code and error, played on a fresh memg and a fresh
 * memcached over two connections each, replies compared byte for byte, then the counters the
 * script moves (`stats`) compared too. Steps may build their request from the previous reply
 * (to send back a CAS), so each server is driven by its own answers.
 *
 * Normalised, and only this:
 * - `me`'s `cls=` and `size=`: slab class ids and item header sizes are a store's layout, not
 *   protocol (memg's stores lay items out differently; documented in the README).
 * - time tokens (`t…`, `l…`, `exp=…`, `la=…`) may differ by one: memcached's clock ticks on
 *   its own timer, so a second may turn between two commands on one server and not the other.
 *   TTLs are hundreds of seconds, so nothing expires during the script.
 *
 * Kept out of the script (differences memg documents in its README): echoing a key whose
 * `b` differs between the request and the command that created the item (memg's stores keep
 * no "binary key" bit, so memg follows the request), `h`/`fetch` after `ma` (memg's arith
 * marks the item fetched), and the TTL `t` shows after a negative `T` (memcached's depends on
 * its process start time).
 *
 * @module
 */
import { assertEquals } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { haveMemcached, spawnMemcached, startMemg, type TestServer } from "./helpers/server.ts";

/** A request for client 0 or 1: fixed text, or built from that client's previous reply. */
type Step = [client: 0 | 1, request: string | ((previous: string) => string)];

/** The CAS (`c` return flag) in a reply. */
function casOf(reply: string): number {
  const m = / c(\d+)/.exec(reply);
  if (m === null) throw new Error(`no CAS in ${JSON.stringify(reply)}`);
  return Number(m[1]);
}

/** `n` bytes counting up from `from`, base64-encoded (a binary key). */
function b64(from: number, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCharCode((from + i) & 0xff);
  return btoa(s);
}

const LOW = b64(0, 128); // bytes 0..127
const HIGH = b64(128, 128); // bytes 128..255
const O32 = "O" + "x".repeat(31);
const O33 = "O" + "x".repeat(32);
const KEY250 = "k".repeat(250);
const KEY251 = "k".repeat(251);
const FLAGS17 = "v c f s t k h l u O1 N30 R30 T30 P L F1 J1";
const FLAGS18 = `${FLAGS17} D1`;

const SCRIPT: Step[] = [
  // mg basics and every return flag
  [0, "ms foo 3\r\nbar\r\n"],
  [0, "mg foo\r\n"],
  [0, "mg foo v\r\n"],
  [0, "mg foo s v f t c k\r\n"],
  [0, "mg foo k O123 q\r\n"],
  [0, "mg foo h l\r\n"],
  [0, "mg foo P Lpath k\r\n"],
  [0, `mg foo ${O32}\r\n`],
  [0, "mg foo O\r\n"],
  [0, "mg nosuch\r\n"],
  [0, "mg nosuch q\r\n"],
  [0, "mg nosuch k Oabc v\r\n"],
  [0, "mg nosuch q k Oabc\r\n"],
  [0, "mg nosuch F5 C5 I MS J5 D5\r\n"],
  [0, `mg ${KEY250} v\r\n`],
  // mg errors
  [0, "mg\r\n"],
  [0, `mg ${KEY251} v\r\n`],
  [0, `mg foo ${FLAGS17}\r\n`],
  [0, `mg foo ${FLAGS17} q\r\n`],
  [0, "mg foo v v\r\n"],
  [0, "mg foo x\r\n"],
  [0, "mg foo 5\r\n"],
  [0, "mg foo \xff\r\n"],
  [0, "mg foo Tabc\r\n"],
  [0, "mg foo N\r\n"],
  [0, "mg foo Rx\r\n"],
  [0, "mg foo Fx\r\n"],
  [0, "mg foo Cx\r\n"],
  [0, "mg foo Jx\r\n"],
  [0, "mg foo Dx\r\n"],
  [0, "mg foo M\r\n"],
  [0, "mg foo MSS\r\n"],
  [0, "mg foo Tx Jx\r\n"],
  [0, "mg foo Tx Fx\r\n"],
  [0, "mg foo Tx x\r\n"],
  [0, "mg foo Tx v v\r\n"],
  [0, "mg foo b\r\n"],
  [0, `mg foo ${O33}\r\n`],
  [0, `mg nosuch q ${O33}\r\n`],
  [0, "mg foo q x\r\n"],
  // mg T, u, h
  [0, "mg foo T500 t\r\n"],
  [0, "mg foo t T0 c\r\n"],
  [0, "mg foo t\r\n"],
  [0, "ms u1 1\r\nx\r\n"],
  [0, "mg u1 u h\r\n"],
  [0, "mg u1 h\r\n"],
  [0, "mg u1 h\r\n"],
  // ms: flags, TTL, return flags in order, q
  [0, "ms f1 2 F123 T1000 c k O77\r\nhi\r\n"],
  [0, "mg f1 f t v s\r\n"],
  [0, "ms f2 2 F4294967295 O1 k\r\nhi\r\n"],
  [0, "mg f2 f\r\n"],
  [0, "ms f3 2 F4294967296\r\nhi\r\n"],
  [0, "mg f3 f\r\n"],
  [0, "ms f4 2 q\r\nhi\r\n"],
  [0, "ms f4 2 q k c Oq\r\nhi\r\n"],
  [0, "ms f5 0\r\n\r\n"],
  [0, "mg f5 v s\r\n"],
  [0, "ms f6 2 T-1\r\nhi\r\n"],
  [0, "mg f6 v\r\n"],
  [0, "ms f7 2 N5 R5 v t s f h l u J1 D1 I P L\r\nhi\r\n"],
  [0, "ms f8 +2\r\nhi\r\n"],
  // numbers read as memcached's safe_strto* read them (64-bit strtol truncated to 32 bits,
  // anything after a white-space byte ignored)
  [0, "ms num 2 T4294967396\r\nab\r\n"],
  [0, "mg num t\r\n"],
  [0, "mg num T5\tjunk t\r\n"],
  [0, "ms num2 4294967298\r\nab\r\n"],
  [0, "mg num2 v\r\n"],
  [0, "ms num3 2 T2147483648\r\nab\r\n"],
  [0, "mg num3\r\n"],
  [0, "ms num4 2 T99999999999999999999\r\nab\r\n"],
  // ms modes
  [0, "ms m1 2 ME k c\r\nab\r\n"],
  [0, "ms m1 2 ME k c\r\nzz\r\n"],
  [0, "ms m1 2 MA c\r\nyy\r\n"],
  [0, "ms m1 2 MP c\r\nxx\r\n"],
  [0, "ms m1 2 MR c\r\nww\r\n"],
  [0, "ms m1 2 MS c\r\nvv\r\n"],
  [0, "ms m1 2 MA\r\nuu\r\n"],
  [0, "mg m1 v\r\n"],
  [0, "ms m2 2 MA k c\r\nzz\r\n"],
  [0, "ms m2 2 MP\r\nzz\r\n"],
  [0, "ms m2 2 MR q\r\nzz\r\n"],
  [0, "mg m2 v\r\n"],
  // ms CAS
  [0, "ms c1 2 c\r\nab\r\n"],
  [0, (r) => `ms c1 2 C${casOf(r)} c\r\ncd\r\n`],
  [0, "ms c1 2 C1 c\r\nef\r\n"],
  [0, "ms c1 2 C0 c\r\nef\r\n"],
  [0, "ms c1 2 q C1\r\nef\r\n"],
  [0, "mg c1 v c\r\n"],
  [0, (r) => `ms c1 2 MR C${casOf(r)} c\r\ngh\r\n`],
  [0, "ms c1 2 MR C1\r\ngh\r\n"],
  [0, "mg c1 v c\r\n"],
  [0, (r) => `ms c1 2 MA C${casOf(r)} c\r\nij\r\n`],
  [0, "ms c1 2 MA C1\r\nij\r\n"],
  [0, "ms c1 2 MP C0\r\nkl\r\n"],
  [0, "ms c1 2 ME C1\r\nop\r\n"],
  [0, "mg c1 v\r\n"],
  [0, "ms nocas 2 C5\r\nab\r\n"],
  [0, "ms nocas 2 MR C5\r\nab\r\n"],
  [0, "ms nocas 2 MA C5\r\nab\r\n"],
  [0, "ms nocas 2 MP C5\r\nab\r\n"],
  [0, "ms nocas 2 ME C5 c\r\nab\r\n"],
  // ms I: invalidation with an older CAS stores a stale value keeping the TTL
  [0, "ms st1 2 T900 c\r\nab\r\n"],
  [0, (r) => `ms st1 3 I C${casOf(r) - 1} c T50\r\nnew\r\n`],
  [0, "mg st1 v c t\r\n"],
  [0, "mg st1 v c t\r\n"],
  [0, (r) => `ms st1 3 I C${casOf(r)} c T0\r\nnwr\r\n`],
  [0, "mg st1 v c t\r\n"],
  [0, (r) => `ms st1 3 I C${casOf(r) + 100} c\r\nxxx\r\n`],
  [0, "ms st1 3 I MA C1 c\r\nxxx\r\n"],
  [0, "ms st1 3 I MR C1 c\r\nyyy\r\n"],
  [0, "mg st1 v c t\r\n"],
  [0, "ms st2 3 I C1 c\r\nyyy\r\n"],
  // ms errors: before the data length (data not swallowed) and after (swallowed)
  [0, "ms\r\n"],
  [0, "ms s1\r\n"],
  [0, `ms ${KEY251} 1\r\nx\r\n`],
  [0, "ms s1 abc\r\nxyz\r\n"],
  [0, "ms s1 -1\r\n"],
  [0, "ms s1 2147483646\r\nab\r\n"],
  [0, `ms s1 2 ${FLAGS17}\r\nab\r\n`],
  [0, "ms s1 2 x\r\nab\r\n"],
  [0, "ms s1 2 v v\r\nab\r\n"],
  [0, "ms s1 2 \xff\r\nab\r\n"],
  [0, "ms s1 2 Tx\r\nab\r\n"],
  [0, "ms s1 2 Fx\r\nab\r\n"],
  [0, "ms s1 2 F-1\r\nab\r\n"],
  [0, "ms s1 2 Cx\r\nab\r\n"],
  [0, "ms s1 2 MX\r\nab\r\n"],
  [0, "ms s1 2 Ms\r\nab\r\n"],
  [0, "ms s1 2 MI\r\nab\r\n"],
  [0, "ms s1 2 M\r\nab\r\n"],
  [0, `ms s1 2 ${O33}\r\nab\r\n`],
  [0, `ms s1 2 MX ${O33}\r\nab\r\n`],
  [0, `ms s1 2 ${O33} Tx\r\nab\r\n`],
  [0, "ms s1 2 b\r\nab\r\n"],
  [0, "ms s1 2 q b\r\nab\r\n"],
  [0, "ms s1 2 q T\r\nab\r\n"],
  [0, "ms s1 2 c k\r\nabc\r\n"],
  [0, "ms s1 2 c k q\r\nab\r\r\n"],
  [0, "mg s1 v\r\n"],
  // md
  [0, "ms d1 2\r\nab\r\n"],
  [0, "md d1 q\r\n"],
  [0, "md d1\r\n"],
  [0, "md d1 q k O1\r\n"],
  [0, "ms d1 2 c\r\nab\r\n"],
  [0, "md d1 C1 k\r\n"],
  [0, "md d1 C0\r\n"],
  [0, "mg d1 c\r\n"],
  [0, (r) => `md d1 C${casOf(r)} O9\r\n`],
  [0, "ms d2 2 T900 c\r\nab\r\n"],
  [0, "md d2 I T30 c\r\n"],
  [0, "mg d2 v c t\r\n"],
  [0, "mg d2 c\r\n"],
  [0, "md d2 I q\r\n"],
  [0, "mg d2 c t\r\n"],
  [0, "md d2 T5\r\n"],
  [0, "mg d2\r\n"],
  [0, "md\r\n"],
  [0, `md ${KEY251}\r\n`],
  [0, "md d1 x\r\n"],
  [0, "md d1 q q\r\n"],
  [0, "md d1 Tx\r\n"],
  [0, "md d1 b\r\n"],
  [0, `md d1 ${O33}\r\n`],
  [0, `md d1 ${FLAGS18}\r\n`],
  // ma
  [0, "ms n1 1\r\n5\r\n"],
  [0, "ma n1\r\n"],
  [0, "ma n1 v\r\n"],
  [0, "ma n1 MD D2 v\r\n"],
  [0, "ma n1 M- v c\r\n"],
  [0, "ma n1 M+ D10 v\r\n"],
  [0, "ma n1 MI v k O2\r\n"],
  [0, "ma n1 MD D999 v\r\n"],
  [0, "ma n1 q\r\n"],
  [0, "ma n1 q v\r\n"],
  [0, "mg n1 v\r\n"],
  [0, "ma n1 C1 v\r\n"],
  [0, "ma n1 C1 q\r\n"],
  [0, "mg n1 c\r\n"],
  [0, (r) => `ma n1 C${casOf(r)} v c\r\n`],
  [0, "ma n1 T800 t v\r\n"],
  [0, "ma n1 t\r\n"],
  [0, "ms n2 20\r\n18446744073709551615\r\n"],
  [0, "ma n2 v\r\n"],
  [0, "ma n2 D18446744073709551615 v\r\n"],
  [0, "ms n3 1\r\n9\r\n"],
  [0, "ma n3 v c\r\n"],
  [0, "mg n3 v s\r\n"],
  [0, "ma nonum\r\n"],
  [0, "ma nonum MD\r\n"],
  [0, "ma nonum q k O3\r\n"],
  [0, "ma viv N300 J10 v t c k O1\r\n"],
  [0, "ma viv N300 J10 v t\r\n"],
  [0, "ma viv2 t N0 q\r\n"],
  [0, "ma viv3 q N0 v\r\n"],
  [0, "ms text 3\r\nabc\r\n"],
  [0, "ma text\r\n"],
  [0, "ma text q\r\n"],
  [0, "ms empty 0\r\n\r\n"],
  [0, "ma empty\r\n"],
  [0, "ma\r\n"],
  [0, `ma ${KEY251}\r\n`],
  [0, "ma n1 x\r\n"],
  [0, "ma n1 v v\r\n"],
  [0, "ma n1 Dx\r\n"],
  [0, "ma n1 D-1\r\n"],
  [0, "ma n1 Jx N0\r\n"],
  [0, "ma n1 MX\r\n"],
  [0, "ma n1 MDD\r\n"],
  [0, `ma n1 ${O33}\r\n`],
  [0, `ma nonum ${O33}\r\n`],
  [0, `ma n1 ${FLAGS18}\r\n`],
  // me and mn
  [0, "ms e1 2 T900\r\nab\r\n"],
  [0, "me e1\r\n"],
  [0, "me e1 x y\r\n"],
  [0, "me nosuch\r\n"],
  [0, "me\r\n"],
  [0, `me ${KEY251}\r\n`],
  [0, "me e1 b\r\n"],
  [0, "mn foo bar\r\n"],
  [0, "mz\r\n"],
  // base64 keys holding every byte value
  [0, `ms ${LOW} 2 b k c\r\nlo\r\n`],
  [0, `ms ${HIGH} 2 b k c T900\r\nhi\r\n`],
  [0, `mg ${LOW} b k v\r\n`],
  [0, `mg ${HIGH} b k v s t\r\n`],
  [0, `me ${HIGH} b\r\n`],
  [0, `md ${LOW} b k q\r\n`],
  [0, `mg ${LOW} b k v\r\n`],
  [0, `ma ${LOW} b N0 J7 k v\r\n`],
  [0, "mg a-2V5 b k\r\nmg a=V5 b k\r\nmg YQ=a b k\r\nmg Y=== b k\r\nmg YWJjZA==YWJj b k\r\n"],
  // stampede protection over two clients
  [0, "mg hot N30 c t v\r\n"],
  [1, "mg hot N30 c t v\r\n"],
  [0, "ms hot 3 T300\r\nnew\r\n"],
  [1, "mg hot v t\r\n"],
  [0, "md hot I T30\r\n"],
  [1, "mg hot v c\r\n"],
  [0, "mg hot v\r\n"],
  [1, "ms hot 3 T300\r\nnew\r\n"],
  [0, "mg hot v\r\n"],
  [0, "ms r1 1 T100\r\n1\r\n"],
  [0, "mg r1 R200 v\r\n"],
  [1, "mg r1 R200\r\n"],
  [1, "mg r1 R50\r\n"],
  [0, "ms r1 1 T100\r\n1\r\n"],
  [1, "mg r1 R50\r\n"],
  [1, "mg r1 R0 T0 R5\r\n"],
  [1, "mg viv N100 v s f t k\r\n"],
  [1, "mg newviv N100 v s f t h l k c\r\n"],
  [1, "mg newviv2 q T10 N5 t\r\n"],
  // quiet pipeline: only errors and non-nominal codes before MN
  [
    0,
    "mg p1 q v\r\nmg p2 q v\r\nms p1 1 q\r\na\r\nmg p1 q v k\r\nmd p2 q\r\nmd p1 q\r\nma p3 q\r\n",
  ],
];

/** The counters the script moves, as `name value` lines. */
const COUNTERS = [
  "cmd_get",
  "cmd_set",
  "cmd_touch",
  "cmd_meta",
  "get_hits",
  "get_misses",
  "delete_misses",
  "delete_hits",
  "incr_misses",
  "incr_hits",
  "decr_misses",
  "decr_hits",
  "cas_misses",
  "cas_hits",
  "cas_badval",
  "touch_hits",
  "touch_misses",
  "store_too_large",
  "store_no_memory",
  "curr_items",
  // not total_items: memcached's incr makes a new item (counted there) instead of rewriting in
  // place when its LRU maintainer thread happens to hold a reference — a race, not protocol.
];

/** Mn commands in a request (each is answered `MN`; data blocks in the script hold no `mn`). */
const MN_COMMAND = /(^|\n)mn[ \r]/g;

/**
 * Sends `request` and an `mn`, and reads until every `mn` in them is answered: memcached
 * writes each `MN` out at once, so two of them may arrive in two reads.
 */
async function exchange(c: RawClient, request: string): Promise<string> {
  const expected = (request.match(MN_COMMAND)?.length ?? 0) + 1;
  let reply = await c.call(request + "mn\r\n", "MN\r\n");
  while (reply.split("MN\r\n").length - 1 < expected) reply += await c.readUntil("MN\r\n");
  return reply;
}

/** Plays the script on a server; returns one transcript entry per step, then the counters. */
async function play(server: TestServer): Promise<string[]> {
  const clients = [await RawClient.connect(server.port), await RawClient.connect(server.port)];
  try {
    const transcript: string[] = [];
    const previous = ["", ""];
    for (const [c, request] of SCRIPT) {
      const text = typeof request === "string" ? request : request(previous[c]);
      const reply = await exchange(clients[c], text);
      previous[c] = reply;
      transcript.push(`${JSON.stringify(text)} => ${JSON.stringify(reply)}`);
    }
    const stats = await clients[0].call("stats\r\n", "END\r\n");
    for (const name of COUNTERS) {
      const m = new RegExp(`^STAT ${name} (\\d+)\r$`, "m").exec(stats);
      transcript.push(`${name} ${m === null ? "missing" : m[1]}`);
    }
    return transcript;
  } finally {
    for (const c of clients) c.close();
  }
}

const TIME_TOKEN = /^(t|l|exp=|la=)(-?\d+)$/;

/**
 * memg's line with `me`'s layout fields blanked, and each time token within one second of
 * memcached's replaced by memcached's (see the module doc for why).
 */
function normalise(memg: string, memcached: string): string {
  const layout = (s: string) => s.replace(/ cls=\d+ size=\d+/g, " cls=_ size=_");
  const a = layout(memg).split(/( |\\r\\n)/);
  const b = layout(memcached).split(/( |\\r\\n)/);
  if (a.length !== b.length) return layout(memg);
  for (let i = 0; i < a.length; i++) {
    const x = TIME_TOKEN.exec(a[i]);
    const y = TIME_TOKEN.exec(b[i]);
    if (x && y && x[1] === y[1] && Math.abs(Number(x[2]) - Number(y[2])) <= 1) a[i] = b[i];
  }
  return a.join("");
}

const skip = !haveMemcached();
if (skip) console.warn("meta_differential_test: /usr/bin/memcached not found; test skipped");

Deno.test({
  name: "meta protocol: memg replies byte for byte as memcached 1.6.18",
  ignore: skip,
  fn: async () => {
    const memcached = await spawnMemcached();
    let expected: string[];
    try {
      expected = await play(memcached);
    } finally {
      await memcached.close();
    }
    const memg = startMemg();
    let actual: string[];
    try {
      actual = await play(memg);
    } finally {
      await memg.close();
    }
    const layout = (s: string) => s.replace(/ cls=\d+ size=\d+/g, " cls=_ size=_");
    assertEquals(actual.map((line, i) => normalise(line, expected[i] ?? "")), expected.map(layout));
  },
});
