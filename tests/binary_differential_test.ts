/**
 * The same binary request streams against memg and Debian's memcached 1.6.18, responses
 * compared byte for byte. Only what must differ is normalised:
 * - CAS values: both servers count CAS from 1, but memcached also spends one on every
 *   immediate flush, so they are renamed in order of first appearance (equal stays equal);
 * - the Version body: memg answers `1.6.18-memg-<its version>`;
 * - Stat rows of the general, settings and store groups: memg reports its own set of rows and
 *   its own process figures; the command counters that both keep are compared by value.
 * Scenarios memg deliberately answers differently (see the report: unknown opcodes with a body,
 * bodies longer than an opcode uses, `stats conns`) are not sent.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { latin1, RawClient } from "./helpers/client.ts";
import {
  freePort,
  haveMemcached,
  spawnMemcached,
  spawnServer,
  startMemg,
  type TestServer,
} from "./helpers/server.ts";
import { Op } from "../lib/protocol/binary.ts";
import { arithExt, type Req, req, setExt, u32s } from "./helpers/binary.ts";
import { prng } from "../bench/fuzz.ts";

const MARK = 0xfeedface;

interface Res {
  op: number;
  status: number;
  opaque: number;
  keylen: number;
  cas: bigint;
  value: Uint8Array;
  raw: Uint8Array;
}

/** A request, or one built from the responses so far (to use a CAS the server handed out). */
type Step = Req | ((seen: Res[]) => Req);
/** Requests sent in one write, then a marker Noop unless the server is expected to close. */
interface Round {
  steps: Step[];
  closes?: boolean;
}

/** Reads whole responses until the marker Noop, or until the server closes. */
async function collect(c: RawClient, closes: boolean): Promise<Res[]> {
  const out: Res[] = [];
  for (;;) {
    let h: Uint8Array;
    try {
      h = await c.readBytes(24, 3000);
    } catch (e) {
      if (closes && c.closed) return out;
      throw e;
    }
    const dv = new DataView(h.buffer);
    const body = await c.readBytes(dv.getUint32(8), 3000);
    const r: Res = {
      op: h[1],
      status: dv.getUint16(6),
      opaque: dv.getUint32(12),
      keylen: dv.getUint16(2),
      cas: dv.getBigUint64(16),
      value: body.subarray(h[4] + dv.getUint16(2)),
      raw: new Uint8Array([...h, ...body]),
    };
    if (!closes && r.op === Op.Noop && r.opaque === MARK) return out;
    out.push(r);
  }
}

/** Runs `rounds` on one connection; returns every response. */
async function run(port: number, rounds: Round[]): Promise<Res[]> {
  const c = await RawClient.connect(port);
  const seen: Res[] = [];
  try {
    for (const round of rounds) {
      const parts = round.steps.map((s) => req(typeof s === "function" ? s(seen) : s));
      if (!round.closes) parts.push(req({ op: Op.Noop, opaque: MARK }));
      const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let o = 0;
      for (const p of parts) {
        bytes.set(p, o);
        o += p.length;
      }
      try {
        await c.send(bytes);
      } catch {
        // a server that closes may reset a connection still being written
      }
      seen.push(...await collect(c, round.closes === true));
    }
    return seen;
  } finally {
    c.close();
  }
}

/** The responses as comparable text, normalised as the module comment says. */
function normalise(responses: Res[]): string[] {
  const casNames = new Map<bigint, number>();
  const out: string[] = [];
  for (const r of responses) {
    if (r.op === Op.Stat && r.keylen > 0) continue; // a stats row: values are per server
    const raw = r.raw.slice();
    const dv = new DataView(raw.buffer);
    if (r.cas !== 0n) {
      if (!casNames.has(r.cas)) casNames.set(r.cas, casNames.size + 1);
      dv.setBigUint64(16, BigInt(casNames.get(r.cas)!));
    }
    let text = Array.from(raw.subarray(0, 24), (b) => b.toString(16).padStart(2, "0")).join("");
    const body = r.op === Op.Version && r.status === 0
      ? "<version>"
      : JSON.stringify(String.fromCharCode(...raw.subarray(24)));
    if (r.op === Op.Version) text = text.slice(0, 16) + "<len>" + text.slice(24);
    out.push(`${text} ${body}`);
  }
  return out;
}

/** The latest CAS a response carried for opaque `opaque`. */
const casOf = (seen: Res[], opaque: number) => seen.findLast((r) => r.opaque === opaque)!.cas;

const key250 = "k".repeat(250);

/** Scenarios for a server without -S. */
const SCENARIOS: Record<string, Round[]> = {
  "get family": [{
    steps: [
      { op: Op.Set, key: "k", extras: setExt(0xdeadbeef), value: "hello", opaque: 1 },
      { op: Op.Get, key: "k", opaque: 2 },
      { op: Op.GetK, key: "k", opaque: 3 },
      { op: Op.GetQ, key: "k", opaque: 4 },
      { op: Op.GetKQ, key: "k", opaque: 5 },
      { op: Op.Get, key: "nokey", opaque: 6 },
      { op: Op.GetK, key: "nokey", opaque: 7 },
      { op: Op.GetQ, key: "nokey", opaque: 8 },
      { op: Op.GetKQ, key: "nokey", opaque: 9 },
      { op: Op.Set, key: key250, extras: setExt(), value: "long key" },
      { op: Op.GetK, key: key250 },
    ],
  }],
  "set, add, replace and CAS": [
    {
      steps: [
        { op: Op.Set, key: "a", extras: setExt(1, 0), value: "1", opaque: 1 },
        { op: Op.Add, key: "a", extras: setExt(), value: "x" },
        { op: Op.AddQ, key: "a", extras: setExt(), value: "x" },
        { op: Op.Replace, key: "b", extras: setExt(), value: "x" },
        { op: Op.ReplaceQ, key: "b", extras: setExt(), value: "x" },
        { op: Op.AddQ, key: "b", extras: setExt(), value: "added" },
        { op: Op.SetQ, key: "c", extras: setExt(), value: "" },
        { op: Op.Get, key: "c" },
        { op: Op.Set, key: "a", extras: setExt(), value: "bad", cas: 987654321n },
        { op: Op.Set, key: "zz", extras: setExt(), value: "bad", cas: 987654321n },
        { op: Op.Add, key: "a", extras: setExt(), value: "bad", cas: 987654321n },
      ],
    },
    {
      steps: [
        (seen) => ({ op: Op.Set, key: "a", extras: setExt(), value: "2", cas: casOf(seen, 1) }),
        (seen) => ({ op: Op.Replace, key: "a", extras: setExt(), value: "3", cas: casOf(seen, 1) }),
        { op: Op.Get, key: "a", opaque: 2 },
      ],
    },
    {
      steps: [
        (seen) => ({ op: Op.AddQ, key: "a", extras: setExt(), value: "4", cas: casOf(seen, 2) }),
        { op: Op.Get, key: "a" },
      ],
    },
  ],
  "append and prepend": [
    {
      steps: [
        { op: Op.Set, key: "k", extras: setExt(9), value: "mid", opaque: 1 },
        { op: Op.Append, key: "k", value: ">" },
        { op: Op.Prepend, key: "k", value: "<" },
        { op: Op.AppendQ, key: "k", value: "]" },
        { op: Op.PrependQ, key: "k", value: "[" },
        { op: Op.Append, key: "none", value: "x" },
        { op: Op.AppendQ, key: "none", value: "x" },
        { op: Op.Append, key: "k", value: "x", cas: 987654321n },
        { op: Op.Prepend, key: "none", value: "x", cas: 5n },
        { op: Op.Get, key: "k", opaque: 2 },
      ],
    },
    {
      steps: [
        (seen) => ({ op: Op.Append, key: "k", value: "!", cas: casOf(seen, 2) }),
        { op: Op.Get, key: "k" },
      ],
    },
  ],
  "delete": [
    { steps: [{ op: Op.Set, key: "a", extras: setExt(), value: "1", opaque: 1 }] },
    {
      steps: [
        { op: Op.Delete, key: "a", cas: 987654321n },
        (seen) => ({ op: Op.Delete, key: "a", cas: casOf(seen, 1) }),
        { op: Op.Delete, key: "a" },
        { op: Op.DeleteQ, key: "a" },
        { op: Op.Set, key: "b", extras: setExt(), value: "1" },
        { op: Op.DeleteQ, key: "b" },
        { op: Op.Get, key: "b" },
      ],
    },
  ],
  "incr and decr": [
    {
      steps: [
        { op: Op.Increment, key: "n", extras: arithExt(5n, 10n, 0), opaque: 1 },
        { op: Op.Increment, key: "n", extras: arithExt(5n, 10n, 0) },
        { op: Op.Decrement, key: "n", extras: arithExt(100n, 0n, 0) },
        { op: Op.Increment, key: "m", extras: arithExt(1n, 1n, 0xffffffff) },
        { op: Op.DecrementQ, key: "m", extras: arithExt(1n, 1n, 0xffffffff) },
        { op: Op.IncrementQ, key: "n", extras: arithExt(7n, 0n, 0) },
        { op: Op.Get, key: "n" },
        { op: Op.Set, key: "w", extras: setExt(), value: "18446744073709551615" },
        { op: Op.Increment, key: "w", extras: arithExt(2n, 0n, 0) },
        { op: Op.Get, key: "w" },
        { op: Op.Set, key: "g", extras: setExt(), value: "99" },
        { op: Op.Increment, key: "g", extras: arithExt(1n, 0n, 0) },
        { op: Op.Get, key: "g" },
        { op: Op.Set, key: "s", extras: setExt(), value: "abc" },
        { op: Op.Increment, key: "s", extras: arithExt(1n, 0n, 0) },
        { op: Op.DecrementQ, key: "s", extras: arithExt(1n, 0n, 0) },
        { op: Op.Increment, key: "n", extras: arithExt(1n, 0n, 0), cas: 987654321n },
        { op: Op.Increment, key: "i", extras: arithExt(1n, 18446744073709551615n, 0) },
        { op: Op.Get, key: "i", opaque: 2 },
      ],
    },
    {
      steps: [
        (seen) => ({
          op: Op.Decrement,
          key: "i",
          extras: arithExt(3n, 0n, 0),
          cas: casOf(seen, 2),
        }),
        { op: Op.Get, key: "i" },
      ],
    },
  ],
  "touch and gat": [{
    steps: [
      { op: Op.Set, key: "k", extras: setExt(4), value: "val" },
      { op: Op.Touch, key: "k", extras: u32s(1000) },
      { op: Op.Gat, key: "k", extras: u32s(1000) },
      { op: Op.GatK, key: "k", extras: u32s(0) },
      { op: Op.GatQ, key: "k", extras: u32s(1000) },
      { op: Op.GatKQ, key: "k", extras: u32s(1000) },
      { op: Op.Touch, key: "nokey", extras: u32s(0) },
      { op: Op.Gat, key: "nokey", extras: u32s(0) },
      { op: Op.GatK, key: "nokey", extras: u32s(0) },
      { op: Op.GatQ, key: "nokey", extras: u32s(0) },
      { op: Op.GatKQ, key: "nokey", extras: u32s(0) },
    ],
  }],
  "flush": [{
    steps: [
      { op: Op.Set, key: "a", extras: setExt(), value: "1" },
      { op: Op.Flush, extras: u32s(1000), opaque: 1 },
      { op: Op.Get, key: "a" },
      { op: Op.Flush, opaque: 2 },
      { op: Op.Get, key: "a" },
      { op: Op.Set, key: "b", extras: setExt(), value: "2" },
      { op: Op.FlushQ },
      { op: Op.Get, key: "b" },
    ],
  }],
  "noop, version and unknown opcodes": [{
    steps: [
      { op: Op.Noop, opaque: 1 },
      { op: Op.Version, opaque: 2 },
      { op: 0x1b, opaque: 3 },
      { op: 0x37 },
      { op: 0xff },
      { op: Op.SaslListMechs, opaque: 4 },
      { op: Op.SaslAuth, key: "PLAIN", value: "\0u\0p" },
    ],
  }],
  "stat groups": [
    { steps: [{ op: Op.Get, key: "x" }, { op: Op.Set, key: "x", extras: setExt(), value: "1" }] },
    {
      steps: [
        { op: Op.Stat, opaque: 1 },
        { op: Op.Stat, key: "settings", opaque: 2 },
        { op: Op.Stat, key: "detail on", opaque: 3 },
        { op: Op.Stat, key: "detail off", opaque: 4 },
        { op: Op.Stat, key: "detail dump", opaque: 5 },
        { op: Op.Stat, key: "detail", opaque: 6 },
        { op: Op.Stat, key: "bogus", opaque: 7 },
        { op: Op.Stat, key: "reset", opaque: 8 },
      ],
    },
  ],
  "quit": [{
    steps: [{ op: Op.Get, key: "a", opaque: 1 }, { op: Op.Quit, opaque: 2 }],
    closes: true,
  }],
  "quitq": [{ steps: [{ op: Op.Version }, { op: Op.QuitQ }, { op: Op.Noop }], closes: true }],
  "bad magic after an error: the error was flushed": [{
    steps: [
      { op: Op.Set, key: "k", extras: setExt(), value: "v", opaque: 1 },
      { op: Op.Get, key: "missing", opaque: 2 },
      { op: Op.Get, key: "k", opaque: 3 },
      { op: Op.Noop, magic: 0x81 },
    ],
    closes: true,
  }],
  "bad magic after Noop": [{
    steps: [
      { op: Op.Set, key: "k", extras: setExt(), value: "v", opaque: 1 },
      { op: Op.Noop, opaque: 2 },
      { op: Op.GetK, key: "k", opaque: 3 },
      { op: Op.GetK, key: "missing", opaque: 4 },
      { op: Op.Noop, magic: 0x00 },
    ],
    closes: true,
  }],
  "lengths that do not add up": [{
    steps: [{ op: Op.Version, opaque: 1 }, { op: Op.Get, key: "abc", bodylen: 2, opaque: 2 }],
    closes: true,
  }],
  "get with extras": [{ steps: [{ op: Op.Get, key: "k", extras: u32s(0) }], closes: true }],
  "get without key": [{ steps: [{ op: Op.Get }], closes: true }],
  "set without extras": [{ steps: [{ op: Op.Set, key: "k", value: "v" }], closes: true }],
  "incr with short extras": [{
    steps: [{ op: Op.Increment, key: "k", extras: u32s(1) }],
    closes: true,
  }],
  "touch without extras": [{ steps: [{ op: Op.Touch, key: "k" }], closes: true }],
  "noop with a body": [{ steps: [{ op: Op.Noop, value: "x" }], closes: true }],
  "flush with 8 bytes of extras": [{ steps: [{ op: Op.Flush, extras: u32s(1, 2) }], closes: true }],
  "sasl auth without a mechanism": [{ steps: [{ op: Op.SaslAuth, value: "x" }], closes: true }],
  "key over 250 bytes": [{ steps: [{ op: Op.Get, key: "x".repeat(251) }], closes: true }],
  "value over -I, then more requests": [{
    steps: [
      { op: Op.Set, key: "big", extras: setExt(), value: "old" },
      { op: Op.SetQ, key: "big", extras: setExt(), value: new Uint8Array(1_100_000), opaque: 1 },
      { op: Op.Get, key: "big", opaque: 2 },
      { op: Op.AppendQ, key: "x", value: new Uint8Array(1_100_000), opaque: 3 },
      { op: Op.Version, opaque: 4 },
    ],
  }],
};

/** A seeded random stream of valid requests (no flush, no time, no CAS that could match). */
function randomRounds(seed: number): Round[] {
  const rng = prng(seed);
  const int = (n: number) => Math.floor(rng() * n);
  const keys = ["a", "b", "n", "long".repeat(60)];
  const steps: Step[] = [];
  for (let i = 0; i < 60; i++) {
    const key = keys[int(keys.length)];
    const value = rng() < 0.5 ? String(int(100000)) : "v".repeat(int(3000));
    const cas = rng() < 0.8 ? 0n : 987654321n;
    const opaque = i;
    const pickOp = (ops: number[]) => ops[int(ops.length)];
    switch (int(7)) {
      case 0:
        steps.push({ op: pickOp([Op.Get, Op.GetQ, Op.GetK, Op.GetKQ]), key, opaque });
        break;
      case 1: {
        const op = pickOp([Op.Set, Op.SetQ, Op.Add, Op.AddQ, Op.Replace, Op.ReplaceQ]);
        steps.push({ op, key, extras: setExt(int(1000)), value, cas, opaque });
        break;
      }
      case 2: {
        const op = pickOp([Op.Append, Op.AppendQ, Op.Prepend, Op.PrependQ]);
        steps.push({ op, key, value: String(int(10)), cas, opaque });
        break;
      }
      case 3:
        steps.push({ op: pickOp([Op.Delete, Op.DeleteQ]), key, cas, opaque });
        break;
      case 4: {
        const op = pickOp([Op.Increment, Op.IncrementQ, Op.Decrement, Op.DecrementQ]);
        const exp = rng() < 0.3 ? 0xffffffff : 0;
        steps.push({
          op,
          key,
          extras: arithExt(BigInt(int(50)), BigInt(int(50)), exp),
          cas,
          opaque,
        });
        break;
      }
      case 5: {
        const op = pickOp([Op.Touch, Op.Gat, Op.GatQ, Op.GatK, Op.GatKQ]);
        steps.push({ op, key, extras: u32s(0), opaque });
        break;
      }
      default:
        steps.push({ op: pickOp([Op.Noop, Op.Version, 0x1b]), opaque });
    }
  }
  return [{ steps }];
}

/** The counters both servers keep, from a general Stat. */
const COUNTERS = [
  "cmd_get",
  "cmd_set",
  "cmd_touch",
  "get_hits",
  "get_misses",
  "delete_hits",
  "delete_misses",
  "incr_hits",
  "incr_misses",
  "decr_hits",
  "decr_misses",
  "cas_hits",
  "cas_misses",
  "cas_badval",
  "touch_hits",
  "touch_misses",
  "auth_cmds",
  "auth_errors",
]; // not curr_items: both reclaim flushed items in the background, on their own schedules

async function counters(port: number): Promise<Record<string, string>> {
  const rows = await run(port, [{ steps: [{ op: Op.Stat }] }]);
  const text = (b: Uint8Array) => String.fromCharCode(...b);
  const out: Record<string, string> = {};
  for (const r of rows) {
    const name = text(r.raw.subarray(24, 24 + r.keylen));
    if (COUNTERS.includes(name)) out[name] = text(r.value);
  }
  return out;
}

/** Runs every scenario on both servers (started by the callers), comparing as it goes. */
async function compare(
  t: Deno.TestContext,
  memg: TestServer,
  memcached: TestServer,
  scenarios: Record<string, Round[]>,
): Promise<void> {
  for (const [name, rounds] of Object.entries(scenarios)) {
    await t.step(name, async () => {
      const flush = [{ steps: [{ op: Op.Flush }] }];
      await run(memg.port, flush);
      await run(memcached.port, flush);
      const ours = normalise(await run(memg.port, rounds));
      const theirs = normalise(await run(memcached.port, rounds));
      assertEquals(ours, theirs);
      assert(theirs.length > 0, "memcached answered nothing: the scenario compares nothing");
    });
  }
}

Deno.test({
  name: "binary differential: memg answers as memcached 1.6.18 does",
  ignore: !haveMemcached(),
  fn: async (t) => {
    const memg = startMemg([]);
    const memcached = await spawnMemcached([]);
    try {
      await compare(t, memg, memcached, SCENARIOS);
      const random: Record<string, Round[]> = {};
      for (let seed = 1; seed <= 12; seed++) random[`random stream ${seed}`] = randomRounds(seed);
      await compare(t, memg, memcached, random);
      await t.step("the command counters agree", async () => {
        assertEquals(await counters(memg.port), await counters(memcached.port));
      });
    } finally {
      await memg.close();
      await memcached.close();
    }
  },
});

Deno.test({
  name: "binary differential: flush under -F",
  ignore: !haveMemcached(),
  fn: async (t) => {
    const memg = startMemg(["-F"]);
    const memcached = await spawnMemcached(["-F"]);
    try {
      await compare(t, memg, memcached, {
        "flush is refused with AUTH_ERROR": [{ steps: [{ op: Op.Flush }, { op: Op.FlushQ }] }],
      });
    } finally {
      await memg.close();
      await memcached.close();
    }
  },
});

/**
 * Debian's memcached checks SASL passwords with Cyrus SASL's sasldb (it is built without
 * MEMCACHED_SASL_PWDB support). Perl's DB_File writes that Berkeley DB file; the realm is the
 * host name memcached passes to Cyrus.
 */
function saslDbTool(): boolean {
  try {
    return new Deno.Command("perl", { args: ["-MDB_File", "-e", "1"], stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

async function spawnSaslMemcached(dir: string, users: Record<string, string>): Promise<TestServer> {
  const db = `${dir}/sasldb2`;
  const entries = Object.entries(users).map(([u, p]) => `${u}\t${p}`).join("\n");
  const perl = new Deno.Command("perl", {
    args: [
      "-MDB_File",
      "-MFcntl",
      "-e",
      `my ($db, $realm) = @ARGV; my %h; tie %h, "DB_File", $db, O_RDWR|O_CREAT, 0600, $DB_HASH or die $!;` +
      ` while (<STDIN>) { chomp; my ($u, $p) = split /\\t/; $h{"$u\\0$realm\\0userPassword"} = $p; } untie %h;`,
      db,
      Deno.hostname(),
    ],
    stdin: "piped",
  }).spawn();
  const w = perl.stdin.getWriter();
  await w.write(latin1(entries + "\n"));
  await w.close();
  assertEquals((await perl.status).success, true);
  Deno.writeTextFileSync(`${dir}/memcached.conf`, `mech_list: plain\nsasldb_path: ${db}\n`);
  const port = freePort();
  const args = ["-l", "127.0.0.1", "-p", String(port), "-U", "0", "-u", "root", "-S"];
  return await spawnServer("/usr/bin/memcached", args, port, { SASL_CONF_PATH: dir });
}

const plain = (authz: string, user: string, pass: string) => `${authz}\0${user}\0${pass}`;

const SASL_SCENARIOS: Record<string, Round[]> = {
  "list-mechs and version without authentication": [{
    steps: [{ op: Op.SaslListMechs, opaque: 1 }, { op: Op.Version, opaque: 2 }, {
      op: Op.SaslAuth,
      key: "PLAIN",
      value: plain("", "alice", "wonder"),
    }],
  }],
  "an unauthenticated command is refused and the connection closed": [{
    steps: [{ op: Op.Get, key: "k", opaque: 1 }, { op: Op.Noop }],
    closes: true,
  }],
  "failures keep the connection; success opens it": [{
    steps: [
      { op: Op.SaslAuth, key: "PLAIN", value: plain("", "alice", "nope") },
      { op: Op.SaslAuth, key: "PLAIN", value: plain("x", "alice", "wonder") },
      { op: Op.SaslAuth, key: "PLAIN", value: plain("", "alice", "wonder") + "\0" },
      { op: Op.SaslAuth, key: "PLAIN", value: plain("", "ALICE", "wonder") },
      { op: Op.SaslAuth, key: "PLAIN", value: "\0alice" },
      { op: Op.SaslAuth, key: "CRAM-MD5", value: plain("", "alice", "wonder") },
      { op: Op.SaslAuth, key: "M".repeat(33), value: plain("", "alice", "wonder") },
      { op: Op.SaslStep, key: "PLAIN", value: plain("", "alice", "wonder") },
      { op: Op.SaslAuth, key: "plain", value: plain("alice", "alice", "wonder") },
      { op: Op.Set, key: "k", extras: setExt(), value: "v" },
      { op: Op.Get, key: "k" },
    ],
  }],
  "an empty first message continues and the step completes": [{
    steps: [
      { op: Op.SaslAuth, key: "PLAIN", value: "" },
      { op: Op.SaslStep, key: "PLAIN", value: "" },
      { op: Op.SaslStep, key: "XX", value: plain("", "bob", "builder") },
      { op: Op.Noop },
      { op: Op.SaslStep, key: "PLAIN", value: plain("", "bob", "builder") }, // already done
      { op: Op.Noop },
    ],
    closes: true,
  }],
  "listing mechanisms forgets the authentication": [{
    steps: [
      { op: Op.SaslAuth, key: "PLAIN", value: plain("", "bob", "builder") },
      { op: Op.SaslListMechs },
      { op: Op.Noop },
    ],
    closes: true,
  }],
  "a failed re-authentication forgets the first": [{
    steps: [
      { op: Op.SaslAuth, key: "PLAIN", value: plain("", "bob", "builder") },
      { op: Op.SaslAuth, key: "PLAIN", value: plain("", "bob", "wrong") },
      { op: Op.Noop },
    ],
    closes: true,
  }],
  "a text client is closed": [{
    steps: [{ op: 0x65, magic: 0x67, key: "x".repeat(30) }],
    closes: true,
  }],
};

Deno.test({
  name: "binary differential: SASL PLAIN under -S",
  ignore: !haveMemcached() || !saslDbTool(),
  fn: async (t) => {
    const dir = Deno.makeTempDirSync({ prefix: "memg-sasl-" });
    const users = { alice: "wonder", bob: "builder" };
    Deno.writeTextFileSync(
      `${dir}/pwdb`,
      Object.entries(users).map(([u, p]) => `${u}:${p}\n`).join(""),
    );
    const memg = startMemg(["-S", "--sasl-pwdb", `${dir}/pwdb`]);
    const memcached = await spawnSaslMemcached(dir, users);
    try {
      // each scenario starts unauthenticated, so the flush between them is refused alike
      for (const [name, rounds] of Object.entries(SASL_SCENARIOS)) {
        await t.step(name, async () => {
          const theirs = normalise(await run(memcached.port, rounds));
          assertEquals(normalise(await run(memg.port, rounds)), theirs);
          // a text client gets no answer at all: the comparison is that both close
          if (rounds[0].steps.length > 1) assert(theirs.length > 0, "memcached answered nothing");
        });
      }
    } finally {
      await memg.close();
      await memcached.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
