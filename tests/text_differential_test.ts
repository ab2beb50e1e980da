/**
 * One text-protocol script replayed against memg and against Debian's memcached 1.6.18, command
 * by command: each command is sent to both, both replies are read completely, and they must be
 * equal byte for byte before the next command goes out, so a mismatch names one command.
 *
 * Only two things are normalised, because they must differ:
 * - the `version` line: memg answers memcached's version with a `-memg-<version>` suffix (so
 *   version-sniffing clients see 1.6.18, and people can tell the servers apart);
 * - `stats` values (pid, uptime, rusage, bytes, …) describe two different processes. Command
 *   counters are compared exactly; memg prints only the rows it can give a true value for, so
 *   rows are compared by name on the rows both print, and memg's own extra rows are listed.
 *
 * Skipped, with a message, when /usr/bin/memcached is absent.
 *
 * @module
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { latin1, RawClient } from "./helpers/client.ts";
import { haveMemcached, spawnMemcached, startMemg, type TestServer } from "./helpers/server.ts";

const dec = new TextDecoder("latin1");

/** One command of the script. */
interface Step {
  /** The bytes sent (Latin-1 text), or made from the previous reply of the same server. */
  send: string | ((previous: string) => string);
  /** How many complete replies to read (a noreply command followed by a get counts 1). */
  replies?: number;
  /** The server must close the connection (the step runs on a connection of its own). */
  closes?: boolean;
  /** How to compare the reply. */
  compare?: "version" | "stats" | "settings" | "slabs";
}

/** Reads one complete reply: VALUE blocks and STAT rows up to the line that ends it. */
async function readReply(c: RawClient): Promise<string> {
  let out = "";
  for (;;) {
    const line = await c.readLine(3000);
    out += line + "\r\n";
    const value = /^VALUE \S+ \d+ (\d+)( \d+)?$/.exec(line);
    if (value !== null) {
      out += dec.decode(await c.readBytes(Number(value[1]) + 2, 3000));
      continue;
    }
    if (line.startsWith("STAT ")) continue;
    return out;
  }
}

/** The CAS unique of the first VALUE line of a `gets` reply. */
function unique(reply: string): string {
  const m = /^VALUE \S+ \d+ \d+ (\d+)\r\n/.exec(reply);
  assert(m !== null, `no unique in ${JSON.stringify(reply)}`);
  return m[1];
}

/** The bytes a step sends after `previous`. */
function bytesOf(step: Step, previous: string): string {
  return typeof step.send === "string" ? step.send : step.send(previous);
}

/** Runs one step on `port` (or on `c`), returning everything it answered. */
async function run(step: Step, c: RawClient, port: number, previous: string): Promise<string> {
  const send = bytesOf(step, previous);
  if (step.closes) {
    const own = await RawClient.connect(port);
    try {
      await own.send(latin1(send));
      const closed = await own.closedByServer(3000);
      return own.text() + (closed ? "<closed>" : "<open>");
    } finally {
      own.close();
    }
  }
  await c.send(latin1(send));
  let out = "";
  for (let i = 0; i < (step.replies ?? 1); i++) out += await readReply(c);
  return out;
}

/** Rows that only memg prints (it leaves out the rows it cannot give a true value for). */
const MEMG_ONLY = new Set([
  "rss_bytes",
  "single",
  "udp_served",
  "user_switch",
  "io_engine", // which TCP engine serves (README, Performance)
  // memg reports the Deno permissions it kept after start-up (see README, Permissions).
  ...["net", "read", "write", "env", "sys", "run", "ffi", "import"].map((p) => `permission_${p}`),
]);
/** `stats` rows whose values must be equal: what the script's commands did. */
const COUNTERS = new Set([
  "max_connections",
  "cmd_get",
  "cmd_set",
  "cmd_flush",
  "cmd_touch",
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
  "auth_cmds",
  "auth_errors",
  "limit_maxbytes",
  "accepting_conns",
  "total_items",
  "evictions",
]);
// Not compared: get_expired, get_flushed and curr_items. memcached's LRU crawler reclaims dead
// items in the background on its own schedule (memg's sweeper on another), and a reclaimed item
// is a plain miss, so these depend on timing. Their values are tested in text_protocol_test.ts.
/** `stats settings` rows that differ by nature: the port each server was given. */
const SETTINGS_DIFFER = new Set([
  "tcpport",
  // memg's TLS (rustls) always resumes sessions; memcached's default is off.
  "ssl_session_cache",
]);

/** A per-class counter row of `stats slabs`. */
const CLASS_COUNTER_ROW =
  /^\d+:(get_hits|cmd_set|delete_hits|incr_hits|decr_hits|cas_hits|cas_badval|touch_hits)$/;

function rows(reply: string): Array<[string, string]> {
  return reply.split("\r\n").filter((l) => l.startsWith("STAT ")).map((l) => {
    const [, name, ...value] = l.split(" ");
    return [name, value.join(" ")];
  });
}

/**
 * Both `stats` replies reduced to the rows both print (memg's extra rows must be MEMG_ONLY),
 * with values kept only where they must agree.
 */
function normaliseStats(mc: string, mg: string, keep: (name: string) => boolean): [string, string] {
  const a = rows(mc);
  const b = rows(mg);
  const inA = new Set(a.map(([n]) => n));
  const inB = new Set(b.map(([n]) => n));
  for (const [n] of b) assert(inA.has(n) || MEMG_ONLY.has(n), `memg prints an unknown STAT ${n}`);
  for (const n of COUNTERS) {
    if (inA.has(n)) assert(inB.has(n), `memg does not print STAT ${n}`);
  }
  const show = (list: Array<[string, string]>, other: Set<string>) =>
    list.filter(([n]) => other.has(n)).map(([n, v]) => `${n} ${keep(n) ? v : "*"}`).join("\n");
  assertEquals(mc.endsWith("END\r\n") && mg.endsWith("END\r\n"), true);
  return [show(a, inB), show(b, inA)];
}

function compare(step: Step, mc: string, mg: string, where: string): void {
  if (step.compare === "version") {
    assert(/^VERSION 1\.6\.18-memg-\S+\r\n$/.test(mg), `${where}: memg says ${mg}`);
    assertEquals(mc, "VERSION 1.6.18\r\n", where);
    return;
  }
  if (step.compare === "slabs") {
    // the per-class command counters (`<class>:get_hits` …), every one either server prints
    const counters = (reply: string) =>
      rows(reply).filter(([n]) => CLASS_COUNTER_ROW.test(n)).map(([n, v]) => `${n} ${v}`).sort()
        .join("\n");
    assertEquals(counters(mg), counters(mc), where);
    return;
  }
  if (step.compare === "stats" || step.compare === "settings") {
    const keep = step.compare === "stats"
      ? (n: string) => COUNTERS.has(n)
      : (n: string) => !SETTINGS_DIFFER.has(n);
    const [a, b] = normaliseStats(mc, mg, keep);
    assertEquals(b, a, where);
    return;
  }
  assertEquals(mg, mc, where);
}

const K250 = "k".repeat(250);
const K251 = "k".repeat(251);
const LONG_KEYS = Array.from({ length: 500 }, (_, i) => String(i).padStart(200, "x"));

/** Builds a value `n` bytes long. */
function value(n: number, fill = "v"): string {
  return fill.repeat(n);
}

/** The script, in sections. Every command appears with its success and its error paths. */
const SCRIPT: Record<string, Step[]> = {
  "set and flags": [
    { send: "set k 0 0 5\r\nhello\r\n" },
    { send: "get k\r\n" },
    { send: "set k 4294967295 0 1\r\nx\r\n" },
    { send: "gets k\r\n" },
    { send: "set k 4294967296 0 1\r\nx\r\n" },
    { send: "get k\r\n" },
    { send: "set k 18446744073709551615 0 1\r\nx\r\n" },
    { send: "get k\r\n" },
    { send: "set k 18446744073709551616 0 1\r\nx\r\n", replies: 2 },
    { send: "set k -1 0 1\r\nx\r\n", replies: 2 },
    { send: "set k -0 0 1\r\nx\r\n" },
    { send: "set k +5 0 1\r\nx\r\n" },
    { send: "set k 0x1 0 1\r\nx\r\n", replies: 2 },
    { send: "set k 7\v 0 1\t\r\nx\r\n" },
    { send: "get k\r\n" },
    { send: "set k 0 0 -1\r\n" },
    { send: "set k 0 0 abc\r\n" },
    { send: "set k 0 abc 1\r\n" },
    { send: "set k 0 0 2147483646\r\n" },
    { send: "set k 0 0 2147483648\r\n" },
    { send: "set k 0 0 4294967297\r\ny\r\n" },
    { send: "get k\r\n" },
    { send: "set k 0 0\r\n" },
    { send: "set k 0 0 1 noreply extra\r\n" },
    { send: "set k\t0 0 1\r\nx\r\n", replies: 2 },
    { send: "SET k 0 0 1\r\nx\r\n", replies: 2 },
    { send: "set e 0 0 0\r\n\r\n" },
    { send: "set z 0 0 1\x00 ignored after the NUL\r\nz\r\n" },
    { send: "get z\x00 k\r\n" },
    { send: "get e\r\n" },
    { send: "set q 3 0 2 noreply\r\nqq\r\nget q\r\n" },
    { send: "set  k  0  0  1  \r\nz\r\n" },
    { send: "set k 0 0 1\nx\nget k\n", replies: 2 },
  ],
  "add replace append prepend": [
    { send: "set a 1 0 1\r\nA\r\n" },
    { send: "append a 2 0 1\r\nB\r\n" },
    { send: "prepend a 3 0 1\r\nC\r\n" },
    { send: "gets a\r\n" },
    { send: "append nope 0 0 1\r\nx\r\n" },
    { send: `set big 0 0 1048000\r\n${"b".repeat(1048000)}\r\n` },
    { send: `append big 0 0 1000\r\n${"c".repeat(1000)}\r\n` }, // past -I: NOT_STORED
    { send: `prepend big 0 0 400\r\n${"c".repeat(400)}\r\n` },
    { send: "delete big\r\n" },
    { send: "prepend nope 0 0 1\r\nx\r\n" },
    { send: "add a 0 0 1\r\nx\r\n" },
    { send: "add b 0 0 1\r\nb\r\n" },
    { send: "replace nope 0 0 1\r\nx\r\n" },
    { send: "replace b 7 0 2\r\nbb\r\n" },
    { send: "gets b\r\n" },
    { send: "append a 0 0 1 noreply\r\nD\r\nget a\r\n" },
    { send: "add a 0 0 1 noreply\r\nx\r\nget a\r\n" },
    { send: "replace a 0 0 1 noreply\r\nR\r\nget a\r\n" },
    { send: "add k\r\n" },
    { send: "replace k 0 0 1 2 3\r\n" },
  ],
  "cas": [
    { send: "cas b 0 0 1 999\r\nx\r\n" },
    { send: "cas nope 0 0 1 1\r\nx\r\n" },
    { send: "gets b\r\n" },
    { send: (gets) => `cas b 0 0 1 ${unique(gets)}\r\nz\r\n` },
    { send: "get b\r\n" },
    { send: "cas b 0 0 1\r\nx\r\n", replies: 2 },
    { send: "cas b 0 0 1 abc\r\nx\r\n", replies: 2 },
    { send: "cas b 0 0 1 -1\r\nx\r\n", replies: 2 },
    { send: "cas b 0 0 1 0\r\nx\r\n" },
    { send: "cas nope 0 0 1 0\r\nx\r\n" },
    { send: "gets b\r\n" },
    { send: (gets) => `cas b 0 0 1 ${unique(gets)} noreply\r\ny\r\nget b\r\n` },
    { send: "cas b 0 0 1 1 2 3\r\nx\r\n", replies: 2 },
    { send: "gets b\r\n" },
  ],
  "get gets gat gats": [
    { send: "get b nope a b\r\n" },
    { send: "gets a b\r\n" },
    { send: "get\r\n" },
    { send: "get \r\n" },
    { send: "gets\r\n" },
    { send: "   get  a  \r\n" },
    { send: "gat\r\n" },
    { send: "gat 0\r\n" },
    { send: "gat 100 a nope\r\n" },
    { send: "gats 100 a b\r\n" },
    { send: "gat x a\r\n" },
    { send: "gats 1.5 a\r\n" },
    { send: "set g 0 0 1\r\ng\r\n" },
    { send: "gat -1 g\r\n" },
    { send: "get g\r\n" },
    { send: `get ${Array.from({ length: 40 }, (_, i) => `k${i}`).join(" ")} a\r\n` },
    // single-key gets, which memg answers on a path of their own: its edges
    { send: `set ${"L".repeat(250)} 0 0 1\r\nL\r\n` },
    { send: `get ${"L".repeat(250)}\r\n` },
    { send: `get ${"L".repeat(251)}\r\n` },
    { send: "get a\rX\r\n" },
    { send: "get a\r\r\n" },
    { send: "get a \r\n" },
    { send: "get a\tb\r\n" },
    { send: "set \x7fa\xff 0 0 1\r\nh\r\n" },
    { send: "get \x7fa\xff\r\n" },
    { send: "get a\nget g\r\nget nope\r\nget a", replies: 3 },
    { send: "\r\n" },
    // one read: a two-key get, a set, then one single-key get (each read's get keys are hashed
    // ahead in batches; the single key must not take the hash of the earlier batch's key)
    { send: "set w1 0 0 1\r\n1\r\nset w2 0 0 1\r\n2\r\n", replies: 2 },
    { send: "get w1 w2\r\nset w3 0 0 1\r\n3\r\nget w2\r\nset w4 0 0 1\r\n4\r\n", replies: 4 },
    { send: "get w3\r\nget w1\r\nget w2 w3\r\nget w3\r\nget w4\r\n", replies: 5 },
    // one read: sets among the gets (their keys are hashed ahead too, their data blocks
    // skipped), with noreply, a data block that looks like commands, a malformed set line, and
    // a set whose data has not all arrived
    {
      send: "get w1 w2\r\nset w1 0 0 14 noreply\r\nget w2\r\nget w3\r\nget w2\r\nget w1\r\n" +
        "set w5 1 -1 2\r\nxy\r\nget w2\r\nset w2 0 0 zz\r\nget w2 w1\r\nset w6 0 0 4\r\n12",
      replies: 7,
    },
    { send: "34\r\nget w6 w5\r\n", replies: 2 },
  ],
  "delete": [
    { send: "set d 0 0 1\r\nd\r\n" },
    { send: "delete d\r\n" },
    { send: "delete d\r\n" },
    { send: "set d 0 0 1\r\nd\r\n" },
    { send: "delete d 1\r\n" },
    { send: "delete d 0 1\r\n" },
    { send: "delete d 0\r\n" },
    { send: "set d 0 0 1\r\nd\r\n" },
    { send: "delete d noreply\r\nget d\r\n" },
    { send: "set d 0 0 1\r\nd\r\n" },
    { send: "delete d 0 noreply\r\nget d\r\n" },
    { send: "set d 0 0 1\r\nd\r\n" },
    { send: "delete d 5 noreply\r\nget d\r\n" },
    { send: "delete d x noreply\r\nget d\r\n" },
    { send: "delete\r\n" },
    { send: "delete d 0 noreply x\r\n" },
  ],
  "incr decr": [
    { send: "set n 5 0 2\r\n10\r\n" },
    { send: "decr n 1\r\n" },
    { send: "get n\r\n" },
    { send: "incr n 5\r\n" },
    { send: "incr n 18446744073709551615\r\n" },
    { send: "get n\r\n" },
    { send: "set n 5 0 2\r\n99\r\n" },
    { send: "incr n 1\r\n" },
    { send: "gets n\r\n" },
    { send: "set n 0 0 20\r\n18446744073709551615\r\n" },
    { send: "incr n 1\r\n" },
    { send: "get n\r\n" },
    { send: "incr n 2\r\n" },
    { send: "decr n 5\r\n" },
    { send: "decr n 18446744073709551615\r\n" },
    { send: "incr n 18446744073709551616\r\n" },
    { send: "incr n -1\r\n" },
    { send: "incr n abc\r\n" },
    { send: "incr n 0x1\r\n" },
    { send: "incr n 01\r\n" },
    { send: "incr n\r\n" },
    { send: "incr n 1 2 3\r\n" },
    { send: "incr n 1 noreply\r\nget n\r\n" },
    { send: "incr n x noreply\r\nget n\r\n" },
    { send: "incr nope 1\r\n" },
    { send: "decr nope 1\r\n" },
    { send: "incr nope 1 noreply\r\nget nope\r\n" },
    ...[
      "abc",
      "12a",
      " 12",
      "12 ",
      "+12",
      "-0",
      "-1",
      "",
      "1 2",
      "1\x002",
      "\t\t7\t\t",
      "000000000000000000001",
      "18446744073709551616",
      `1${" ".repeat(2000)}x`,
    ].flatMap((v) => [
      { send: `set t 0 0 ${v.length}\r\n${v}\r\n` },
      { send: "incr t 1\r\n" },
      { send: "get t\r\n" },
      { send: "decr t 3\r\n" },
      { send: "get t\r\n" },
    ]),
    { send: `incr ${K251} 1\r\n` },
  ],
  "touch": [
    { send: "touch b 10\r\n" },
    { send: "touch nope 10\r\n" },
    { send: "touch b x\r\n" },
    { send: "touch b\r\n" },
    { send: "touch b 10 noreply\r\nget b\r\n" },
    { send: "touch b 1 2 3\r\n" },
    { send: "touch b -1\r\n" },
    { send: "get b\r\n" },
    { send: `touch ${K251} 0\r\n` },
  ],
  "expiry that needs no clock": [
    { send: "set x1 0 -1 1\r\nx\r\n" },
    { send: "set x2 0 2592001 1\r\nx\r\n" },
    { send: "set x3 0 2147483648 1\r\nx\r\n" },
    { send: "set x4 0 -2147483649 1\r\nx\r\n" },
    { send: "set x5 0 9223372036854775807 1\r\nx\r\n" },
    { send: "set x6 0 9223372036854775808 1\r\nx\r\n", replies: 2 },
    { send: "set x7 0 4294967296 1\r\nx\r\n" },
    { send: "set x8 0 100 1\r\nx\r\n" },
    { send: "set x9 0 4102444800 1\r\nx\r\n" },
    { send: "get x1 x2 x3 x4 x5 x6 x7 x8 x9\r\n" },
  ],
  "version verbosity shutdown cache_memlimit": [
    { send: "version\r\n", compare: "version" },
    { send: "version x\r\n", compare: "version" },
    { send: "verbosity\r\n" },
    { send: "verbosity 1\r\n" },
    { send: "verbosity x\r\n" },
    { send: "verbosity -1\r\n" },
    { send: "verbosity 1 noreply\r\nget nope\r\n" },
    { send: "verbosity x noreply\r\nget nope\r\n" },
    { send: "verbosity 1 2\r\n" },
    { send: "verbosity 1 2 3\r\n" },
    { send: "verbosity 0\r\n" },
    { send: "shutdown\r\n" },
    { send: "shutdown graceful\r\n" },
    { send: "shutdown x\r\n" },
    { send: "cache_memlimit\r\n" },
    { send: "cache_memlimit x\r\n" },
    { send: "cache_memlimit -1\r\n" },
    { send: "cache_memlimit 7\r\n" },
    { send: "cache_memlimit 1000000001\r\n" },
    { send: "cache_memlimit 2 noreply\r\nget nope\r\n" },
    { send: "cache_memlimit 1 2 3\r\n" },
    { send: "cache_memlimit 100\r\n" },
    { send: "cache_memlimit 64 x\r\n" },
  ],
  "limits": [
    { send: `set ${K250} 0 0 1\r\nx\r\n` },
    { send: `get ${K250}\r\n` },
    { send: `set ${K251} 0 0 1\r\nx\r\n`, replies: 2 },
    { send: `set ${K251} 0 0 1 noreply\r\nx\r\n` },
    { send: `get ${K251}\r\n` },
    { send: `get ${K250} ${K251}\r\n` },
    { send: `get a b c d e f g h i j k l m n o p q r s t u v w x y z aa bb ${K251} end\r\n` },
    { send: `gat 0 ${K251}\r\n` },
    { send: `delete ${K251}\r\n` },
    { send: `delete ${K251} 0\r\n` },
    { send: "set k 0 0 3\r\nabc\r\n" },
    { send: "set k 0 0 3\r\nabcde\r\n", replies: 2 },
    { send: "set k 0 0 3\r\nabc\r\r\n", replies: 2 },
    { send: "set k 0 0 3\r\nabc\nget k\r\n", replies: 2 },
    { send: "set k 0 0 1 noreply\r\nxyz\r\n" },
    { send: "get k\r\n" },
    { send: `set big 0 0 ${1024 * 1024 + 1}\r\n${value(1024 * 1024 + 1)}\r\n` },
    { send: `set big 0 0 ${1000 * 1000}\r\n${value(1000 * 1000)}\r\n` },
    {
      send: `add big 0 0 ${2 * 1024 * 1024}\r\n${value(2 * 1024 * 1024)}\r\nget nope\r\n`,
      replies: 2,
    },
    { send: "get big\r\n" },
    {
      send: `set big 0 0 ${2 * 1024 * 1024}\r\n${value(2 * 1024 * 1024)}\r\nget big\r\n`,
      replies: 2,
    },
    { send: `set big 0 0 ${1024 * 1024 + 1} noreply\r\n${value(1024 * 1024 + 1)}\r\nget big\r\n` },
    { send: `set n 0 0 600000\r\n1${" ".repeat(599999)}\r\n` },
    { send: "incr n 1\r\n" },
    { send: "bogus\r\n" },
    { send: "g\r\n" },
    { send: "\r\n" },
    { send: " \r\n" },
    { send: "gz\r\n" },
    { send: "x HTTP/1.1x\r\n" },
    { send: "x y HTTP/1.1\r\n" },
    { send: "get k HTTP/1.1\r\n" },
    { send: "stats HTTP/1.1\r\n" },
    ...["az", "cz", "dz", "gz", "iz", "sz", "tz"].map((c) => ({ send: `${c} HTTP/1.1\r\n` })),
    { send: "GET / HTTP/1.1\r\n", closes: true },
    { send: "POST /x HTTP/1.0\r\n", closes: true },
    ...["bz", "ez", "pz", "qz", "rz", "vz", "zz", "Az", "0z"].map((c) => ({
      send: `${c} HTTP/1.1\r\n`,
      closes: true,
    })),
    { send: "xx HTTP/\r\n", closes: true },
    { send: "quit\r\nversion\r\n", closes: true },
    { send: "quit x\r\n", closes: true },
    { send: `set ${"k".repeat(3000)}`, closes: true },
    { send: `get ${"k".repeat(2000)}`, replies: 0 }, // shorter than 2048: waits for the rest
    { send: " x\r\n" },
    {
      send: LONG_KEYS.map((k, i) => `set ${k} ${i} 0 3\r\nv${k.slice(-2)}\r\n`).join(""),
      replies: 500,
    },
    { send: `get ${LONG_KEYS.join(" ")}\r\n` },
    { send: `gets ${LONG_KEYS.join(" ")}\r\n` },
  ],
  "stats": [
    { send: "stats\r\n", compare: "stats" },
    { send: "stats settings\r\n", compare: "settings" },
    { send: "stats reset\r\n" },
    { send: "stats reset x\r\n" },
    { send: "stats\r\n", compare: "stats" },
    { send: "stats nonsense\r\n" },
  ],
  // last: memcached's flush_all also advances its CAS counter (see the test below)
  "flush_all": [
    { send: "flush_all x\r\n" },
    { send: "flush_all 1 2 3\r\n" },
    { send: "flush_all 100\r\n" },
    { send: "get a\r\n" },
    { send: "flush_all -1\r\n" },
    { send: "get a b n\r\n" },
    { send: "set a 0 0 1\r\na\r\n" },
    { send: "get a\r\n" },
    { send: "flush_all\r\n" },
    { send: "get a\r\n" },
    { send: "set a 0 0 1\r\na\r\n" },
    { send: "flush_all noreply\r\nget a\r\n" },
    { send: "set a 0 0 1\r\na\r\n" },
    { send: "flush_all 0 noreply\r\nget a\r\n" },
    { send: "flush_all 0 0\r\n" },
    { send: "set a 0 0 1\r\na\r\n" },
    { send: "get a\r\n" },
    { send: "stats\r\n", compare: "stats" },
  ],
};

/** Replays `script` against memcached and memg started with `args`, comparing every reply. */
async function replay(t: Deno.TestContext, script: Record<string, Step[]>, args: string[] = []) {
  const mc: TestServer = await spawnMemcached(args);
  const mg = startMemg(args);
  const a = await RawClient.connect(mc.port);
  const b = await RawClient.connect(mg.port);
  try {
    for (const [section, steps] of Object.entries(script)) {
      await t.step(section, async () => {
        let lastMc = "";
        let lastMg = "";
        for (let i = 0; i < steps.length; i++) {
          const step = steps[i];
          const where = `${section} #${i}: ${JSON.stringify(bytesOf(step, lastMc).slice(0, 80))}`;
          const fromMc = await run(step, a, mc.port, lastMc);
          const fromMg = await run(step, b, mg.port, lastMg).catch((e) => {
            throw new Error(`${where}: ${e instanceof Error ? e.message : e}`);
          });
          compare(step, fromMc, fromMg, where);
          lastMc = fromMc;
          lastMg = fromMg;
        }
      });
    }
  } finally {
    a.close();
    b.close();
    await mg.close();
    await mc.close();
  }
}

Deno.test({
  name: "text protocol: memg answers the script byte for byte as Debian's memcached",
  ignore: !haveMemcached(),
  fn: (t) => replay(t, SCRIPT),
});

Deno.test({
  name: "stats slabs counts each command's hits in the item's slab class as memcached does",
  ignore: !haveMemcached(),
  fn: (t) =>
    replay(t, {
      "per-class counters": [
        { send: "set a 0 0 1\r\nx\r\n" },
        { send: "set n 0 0 1\r\n5\r\n" },
        { send: `set big 0 0 5000\r\n${value(5000)}\r\n` },
        { send: "get a\r\n" },
        { send: "get a big nope\r\n" },
        { send: "touch a 0\r\n" },
        { send: "gat 0 big\r\n" },
        { send: "incr n 1\r\n" },
        { send: "decr n 1\r\n" },
        { send: "gets a\r\n" },
        { send: (gets) => `cas a 0 0 1 ${unique(gets)}\r\ny\r\n` },
        { send: "cas a 0 0 1 999\r\nz\r\n" },
        { send: `cas big 0 0 1 999\r\nz\r\n` },
        { send: "mg a\r\n" },
        { send: "md n\r\n" },
        { send: "delete big\r\n" },
        { send: "set bad 0 0 3\r\nabcde\r\n", replies: 2 },
        { send: "add a 0 0 1\r\nq\r\n" },
        { send: "append a 0 0 1\r\nq\r\n" },
        { send: "ms a 1\r\nq\r\n" },
        { send: "ms a 1\r\nqqq\r\n", replies: 2 },
        { send: "stats slabs\r\n", compare: "slabs" },
      ],
    }),
});

Deno.test({
  name: "flush_all advances the CAS counter as memcached's does (uniques after a flush)",
  ignore: !haveMemcached(),
  fn: (t) =>
    replay(t, {
      "gets around flush_all": [
        { send: "set a 0 0 1\r\na\r\n" },
        { send: "gets a\r\n" },
        { send: "flush_all\r\n" },
        { send: "set a 0 0 1\r\na\r\n" },
        { send: "gets a\r\n" },
        { send: "flush_all 100\r\n" },
        { send: "set a 0 0 1\r\na\r\n" },
        { send: "gets a\r\n" },
      ],
    }),
});

/**
 * One write of many commands: runs of one-key gets (hits, misses, an expired item, a flushed
 * one, a 20 KB value, a chained 600 KB one, 250-byte and 251-byte keys) between the updates
 * that change what they find, as memg answers such runs in one loop of its own.
 */
function pipelined(): Step[] {
  let batch = "";
  let replies = 0;
  const send = (command: string) => {
    batch += command;
    replies++;
  };
  for (let i = 0; i < 40; i++) send(`set p${i} ${i} 0 ${i * 7}\r\n${value(i * 7)}\r\n`);
  send("set gone 0 -1 1\r\nx\r\n");
  send(`set big 0 0 20000\r\n${value(20000)}\r\n`);
  send(`set huge 0 0 600000\r\n${value(600000)}\r\n`);
  send(`set ${"k".repeat(250)} 0 0 1\r\nk\r\n`);
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 60; i++) send(`get p${(i * 13 + round) % 50}\r\n`);
    send("get gone\r\nget big\nget huge\r\n");
    replies += 2;
    send(`get ${"k".repeat(250)}\r\nget ${"k".repeat(251)}\r\n`);
    replies++;
    send(`set p${round} 1 0 3\r\nnew\r\n`);
    send(`delete p${round + 10}\r\n`);
    for (let i = 0; i < 20; i++) send(`get p${i}\r\n`);
  }
  send("flush_all\r\n");
  for (let i = 0; i < 20; i++) send(`get p${i}\r\n`);
  send("set p1 0 0 1\r\n1\r\nget p1\r\nget p2\r\n");
  replies += 2;
  return [{ send: batch, replies }, { send: "stats\r\n", compare: "stats" }];
}

Deno.test({
  name: "a pipeline of get runs among updates answers as memcached's, counters too",
  ignore: !haveMemcached(),
  fn: (t) => replay(t, { "one write": pipelined() }),
});

/** The largest value memcached 1.6.18 stores under a 1-byte key: -I minus its 60-byte header. */
function boundary(limit: number): Step[] {
  const fits = limit - 60;
  return [
    { send: `set k 0 0 ${fits}\r\n${value(fits)}\r\n` },
    { send: `set k 0 0 ${fits + 1}\r\n${value(fits + 1)}\r\nget k\r\n`, replies: 2 },
    { send: `set ${"k".repeat(250)} 0 0 ${fits - 249}\r\n${value(fits - 249)}\r\n` },
    { send: `set ${"k".repeat(250)} 0 0 ${fits - 248}\r\n${value(fits - 248)}\r\n` },
  ];
}

Deno.test({
  name: "the item size limit counts the item header as memcached's does (exact boundary)",
  ignore: !haveMemcached(),
  async fn(t) {
    await replay(t, { "-I 1m": boundary(1024 * 1024) });
    await replay(t, { "-I 512k": boundary(512 * 1024) }, ["-I", "512k"]);
  },
});

if (!haveMemcached()) {
  console.warn(
    "text_differential_test: /usr/bin/memcached is absent (apt-get install memcached); skipped",
  );
}
