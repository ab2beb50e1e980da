/**
 * Fuzzing memg's three wire protocols. This module is both the toolkit the fuzz tests share
 * (`tests/text_fuzz_test.ts`, `tests/meta_fuzz_test.ts`) and the long-run driver:
 *
 *     deno run -A bench/fuzz.ts --parser text|meta|binary --minutes N [--seed S]
 *
 * Inputs come from a seeded PRNG: valid commands (a corpus per parser), the same commands
 * mutated (bytes flipped, ranges cut, duplicated or spliced, numbers swapped for edge values),
 * truncated, and raw random bytes; all of it split at random byte boundaries. The long run
 * repeats four checks until the time is up and prints one JSON summary:
 * - hostile input through the codec on one long-lived cache: no exception, replies whole;
 * - a valid stream through the real `Connection` loop: identical replies however it is split;
 * - hostile connections over real sockets to an in-process server, each followed by a
 *   well-behaved connection's set/get, which must be answered correctly;
 * - memory: RSS and V8 heap after a warm-up and at the end, and no item left reserved.
 * It exits 1 when any check failed (each failure names the seed that reproduces it).
 *
 * @module
 */
import { parseArgs as untypedParseArgs } from "@std/cli/parse-args";
import { createServer } from "../main.ts";
import { OPEN } from "../lib/auth.ts";
import type { Cache } from "../lib/cache.ts";
import { parseConfig } from "../lib/config.ts";
import { Connection, type ConnectionOwner } from "../lib/connection.ts";
import { encodeBase64, encodedLength } from "../lib/protocol/base64.ts";
import { BinaryProtocol, Op, RESPONSE_MAGIC } from "../lib/protocol/binary.ts";
import { MetaProtocol } from "../lib/protocol/meta.ts";
import { type Protocol, type Session, Step } from "../lib/protocol/session.ts";
import { KEY_MAX_LENGTH, TextProtocol } from "../lib/protocol/text.ts";
import { BufferedReader } from "../lib/reader.ts";
import { ReplyBuffer } from "../lib/reply.ts";
import { startMemg } from "../tests/helpers/server.ts";

/** The parsers this module fuzzes. */
export type Parser = "text" | "meta" | "binary";
/** The parsers, in the order the CLI lists them. */
export const PARSERS: readonly Parser[] = ["text", "meta", "binary"];

/** A PRNG returning floats in [0, 1). */
export type Rng = () => number;

/** mulberry32: a small, fast PRNG; the same seed always gives the same sequence. */
export function prng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A uniform integer in [0, n). */
export const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
/** A uniform element of `xs`. */
export const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[int(rng, xs.length)];

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A string as bytes, one byte per char code (so `\xff` stays one byte). */
export function latin1(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

/** Bytes as a string, one char per byte. */
export function text(b: Uint8Array, from = 0, to = b.length): string {
  let s = "";
  for (let i = from; i < to; i += 8192) {
    s += String.fromCharCode(...b.subarray(i, Math.min(to, i + 8192)));
  }
  return s;
}

/** 2 MiB of fixed pseudo-random bytes that values are cut from (cheap to take, CR/LF included). */
const POOL = (() => {
  const rng = prng(0xb17e5);
  const b = new Uint8Array(2 * 1024 * 1024);
  for (let i = 0; i < b.length; i += 4) {
    const w = (rng() * 4294967296) >>> 0;
    b[i] = w;
    b[i + 1] = w >>> 8;
    b[i + 2] = w >>> 16;
    b[i + 3] = w >>> 24;
  }
  return b;
})();

/** `n` pseudo-random bytes (a view into a shared pool: do not write to it). */
export function randomBytes(rng: Rng, n: number): Uint8Array {
  const off = int(rng, POOL.length - n + 1);
  return POOL.subarray(off, off + n);
}

/** A value length: mostly small, sometimes large, rarely over the `-I 1m` item limit. */
function valueLength(rng: Rng): number {
  const r = rng();
  if (r < 0.985) return pick(rng, [0, 1, 2, 5, 10, 100, 1000, 3000, 20000]);
  if (r < 0.995) return 200_000 + int(rng, 800_000);
  return 1_048_576 + int(rng, 100_000);
}

/** The server flags every fuzz run uses: 8 MB of memory (so evictions), 1 MB items. */
export const FUZZ_ARGS = ["-m", "8", "-I", "1m"];

// ---------------------------------------------------------------------------------------------
// Valid commands

const KEYS = ["a", "b", "n", "\xffkey\x80", "k".repeat(250)];
const EXPTIMES = ["0", "0", "0", "100", "-1", "2592000", "2592001", "4000000000"];
const FLAGS = ["0", "0", "1", "65535", "4294967295"];

/** A valid text-protocol command (memcached answers it without closing the connection). */
export function textCommand(rng: Rng): Uint8Array {
  const key = pick(rng, KEYS);
  const noreply = () => rng() < 0.15 ? " noreply" : "";
  switch (int(rng, 13)) {
    case 0:
    case 1:
    case 2: {
      const verb = pick(rng, ["set", "set", "add", "replace", "append", "prepend"]);
      const v = randomBytes(rng, valueLength(rng));
      const line = `${verb} ${key} ${pick(rng, FLAGS)} ${pick(rng, EXPTIMES)} ${v.length}`;
      return concat([latin1(`${line}${noreply()}\r\n`), v, latin1("\r\n")]);
    }
    case 3: {
      const v = randomBytes(rng, valueLength(rng));
      const cas = pick(rng, ["0", "1", "2", "3", "5", "10", "99"]);
      const line = `cas ${key} ${pick(rng, FLAGS)} 0 ${v.length} ${cas}${noreply()}\r\n`;
      return concat([latin1(line), v, latin1("\r\n")]);
    }
    case 4: {
      const verb = pick(rng, ["get", "gets", "bget"]);
      const keys = Array.from({ length: 1 + int(rng, 5) }, () => pick(rng, [...KEYS, "miss"]));
      return latin1(`${verb} ${keys.join(" ")}\r\n`);
    }
    case 5: {
      const verb = pick(rng, ["gat", "gats"]);
      const keys = Array.from({ length: 1 + int(rng, 3) }, () => pick(rng, KEYS));
      return latin1(`${verb} ${pick(rng, EXPTIMES)} ${keys.join(" ")}\r\n`);
    }
    case 6:
      return latin1(
        `delete ${key}${pick(rng, ["", " 0", " noreply", " 0 noreply", " 5", " x y"])}\r\n`,
      );
    case 7: {
      if (rng() < 0.3) return latin1(`set n 0 0 2${noreply()}\r\n10\r\n`);
      const delta = pick(rng, ["1", "5", "0", "18446744073709551615", "-1", "x", "20000"]);
      return latin1(`${pick(rng, ["incr", "decr"])} ${pick(rng, ["n", key])} ${delta}\r\n`);
    }
    case 8:
      return latin1(`touch ${key} ${pick(rng, EXPTIMES)}${noreply()}\r\n`);
    case 9:
      return latin1(
        pick(rng, [
          "flush_all\r\n",
          "flush_all 0\r\n",
          "flush_all 10 noreply\r\n",
          "flush_all x\r\n",
        ]),
      );
    case 10:
      return latin1(
        pick(rng, ["version\r\n", "verbosity 1\r\n", "verbosity\r\n", "verbosity 0 noreply\r\n"]),
      );
    case 11:
      return latin1(
        pick(rng, [
          "bogus\r\n",
          "\r\n",
          "get\r\n",
          `get ${"k".repeat(251)}\r\n`,
          `delete ${"k".repeat(251)}\r\n`,
          "shutdown\r\n",
          "x\n",
          "touch a\r\n",
          "incr a\r\n",
        ]),
      );
    default: {
      const keys = Array.from({ length: 30 + int(rng, 300) }, () => pick(rng, ["a", "b", "n"]));
      return latin1(`get ${keys.join(" ")}\r\n`);
    }
  }
}

const BASE64_KEYS = KEYS.map((k) => {
  const raw = latin1(k);
  const out = new Uint8Array(encodedLength(raw.length));
  encodeBase64(raw, 0, raw.length, out, 0);
  return text(out);
});

/** Picks `n` distinct flag tokens from `choices`. */
function flagTokens(rng: Rng, choices: ReadonlyArray<() => string>, n: number): string {
  const pool = [...choices];
  const out: string[] = [];
  for (let i = 0; i < n && pool.length > 0; i++) {
    out.push(pool.splice(int(rng, pool.length), 1)[0]());
  }
  return out.length === 0 ? "" : " " + out.join(" ");
}

/** A valid meta command (`mg ms md ma mn me`), flags included; some are refused, none close. */
export function metaCommand(rng: Rng): Uint8Array {
  const k = int(rng, KEYS.length);
  // base64 of the 250-byte key is longer than a key may be: `ms` would refuse it without
  // swallowing its data, which memcached then reads as commands (not a valid stream)
  const binary = rng() < 0.1 && BASE64_KEYS[k].length <= KEY_MAX_LENGTH;
  const key = binary ? BASE64_KEYS[k] : KEYS[k];
  const b = binary ? [() => "b"] : [];
  const opaque = () => "O" + pick(rng, ["1", "abc", "x".repeat(31)]);
  const num = () => pick(rng, ["0", "1", "30", "-1", "2592001"]);
  const count = (max: number) => int(rng, max + 1);
  switch (int(rng, 8)) {
    case 0:
    case 1: {
      const flags = [
        ...b,
        () => "v",
        () => "k",
        () => "c",
        () => "f",
        () => "s",
        () => "t",
        () => "h",
        () => "l",
        () => "q",
        () => "u",
        opaque,
        () => "T" + num(),
        () => "N" + num(),
        () => "R" + num(),
      ];
      return latin1(`mg ${pick(rng, [key, key, "miss"])}${flagTokens(rng, flags, count(6))}\r\n`);
    }
    case 2:
    case 3: {
      const v = randomBytes(rng, valueLength(rng));
      const flags = [
        ...b,
        () => "T" + num(),
        () => "F" + pick(rng, FLAGS),
        () => "I",
        () => "q",
        opaque,
        () => "k",
        () => "c",
        () => "C" + pick(rng, ["0", "1", "2", "5", "99"]),
        () => "M" + pick(rng, ["S", "E", "A", "P", "R", "s", "a", "X"]),
        () => "N" + num(),
      ];
      const line = `ms ${key} ${v.length}${flagTokens(rng, flags, count(4))}\r\n`;
      return concat([latin1(line), v, latin1("\r\n")]);
    }
    case 4: {
      const flags = [
        ...b,
        () => "q",
        () => "I",
        () => "T" + num(),
        () => "C" + pick(rng, ["0", "1", "2", "99"]),
        opaque,
        () => "k",
      ];
      return latin1(`md ${key}${flagTokens(rng, flags, count(3))}\r\n`);
    }
    case 5: {
      const flags = [
        ...b,
        () => "N" + num(),
        () => "J" + pick(rng, ["0", "13", "18446744073709551615"]),
        () => "D" + pick(rng, ["1", "7", "18446744073709551615"]),
        () => "T" + num(),
        () => "M" + pick(rng, ["I", "+", "D", "-", "i", "d", "x"]),
        () => "q",
        opaque,
        () => "k",
        () => "c",
        () => "t",
        () => "v",
      ];
      if (rng() < 0.3) return latin1(`ms n 1 T0\r\n${int(rng, 10)}\r\n`);
      return latin1(`ma ${pick(rng, [key, "n", "n"])}${flagTokens(rng, flags, count(4))}\r\n`);
    }
    case 6:
      return latin1(pick(rng, ["mn\r\n", `me ${KEYS[k]}\r\n`, "me miss\r\n"]));
    default:
      // refused, with the data block swallowed or no data at all
      return latin1(
        pick(rng, [
          "mg\r\n",
          `mg ${key} v v\r\n`,
          `mg ${key} !\r\n`,
          `mg ${key} ${"O" + "x".repeat(40)}\r\n`,
          `ms ${key} 3 MZ\r\nabc\r\n`,
          `ms ${key} 2 ${"O" + "x".repeat(40)}\r\nab\r\n`,
          `md ${key} q q\r\n`,
          `ma ${key} Mx\r\n`,
          "mz\r\n",
          `mg ${key} ${Array.from({ length: 24 }, (_, i) => "O" + i).join(" ")}\r\n`,
        ]),
      );
  }
}

/** A binary request with exact field values. */
export function packet(
  op: number,
  key: Uint8Array,
  extras: Uint8Array,
  value: Uint8Array,
  opaque: number,
  cas = 0n,
): Uint8Array {
  const b = new Uint8Array(24 + extras.length + key.length + value.length);
  const dv = new DataView(b.buffer);
  b[0] = 0x80;
  b[1] = op;
  dv.setUint16(2, key.length);
  b[4] = extras.length;
  dv.setUint32(8, extras.length + key.length + value.length);
  dv.setUint32(12, opaque);
  dv.setBigUint64(16, cas);
  b.set(extras, 24);
  b.set(key, 24 + extras.length);
  b.set(value, 24 + extras.length + key.length);
  return b;
}

function u32s(...values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 4);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => dv.setUint32(i * 4, v >>> 0));
  return b;
}

const NOTHING = new Uint8Array(0);
const BINARY_KEYS = KEYS.map(latin1);

/** A valid binary request (memcached answers it without closing the connection). */
export function binaryCommand(rng: Rng, opaque = int(rng, 2 ** 32)): Uint8Array {
  const key = pick(rng, BINARY_KEYS);
  const cas = () => pick(rng, [0n, 0n, 1n, 2n, 5n, 99n]);
  const exptime = () => pick(rng, [0, 0, 100, 2592001, 0xffffffff]);
  switch (int(rng, 11)) {
    case 0:
    case 1:
      return packet(pick(rng, [Op.Get, Op.GetQ, Op.GetK, Op.GetKQ]), key, NOTHING, NOTHING, opaque);
    case 2:
    case 3: {
      const op = pick(rng, [Op.Set, Op.SetQ, Op.Add, Op.AddQ, Op.Replace, Op.ReplaceQ]);
      const v = rng() < 0.3 ? latin1(String(int(rng, 1000))) : randomBytes(rng, valueLength(rng));
      return packet(op, key, u32s(int(rng, 2 ** 32), exptime()), v, opaque, cas());
    }
    case 4: {
      const op = pick(rng, [Op.Append, Op.AppendQ, Op.Prepend, Op.PrependQ]);
      return packet(op, key, NOTHING, randomBytes(rng, valueLength(rng)), opaque, cas());
    }
    case 5:
      return packet(pick(rng, [Op.Delete, Op.DeleteQ]), key, NOTHING, NOTHING, opaque, cas());
    case 6: {
      const op = pick(rng, [Op.Increment, Op.IncrementQ, Op.Decrement, Op.DecrementQ]);
      const ext = new Uint8Array(20);
      const dv = new DataView(ext.buffer);
      dv.setBigUint64(0, BigInt(int(rng, 1000)));
      dv.setBigUint64(8, BigInt(int(rng, 1000)));
      dv.setUint32(16, pick(rng, [0, 0xffffffff]));
      return packet(op, key, ext, NOTHING, opaque, cas());
    }
    case 7: {
      const op = pick(rng, [Op.Touch, Op.Gat, Op.GatQ, Op.GatK, Op.GatKQ]);
      return packet(op, key, u32s(exptime()), NOTHING, opaque);
    }
    case 8:
      return packet(pick(rng, [Op.Noop, Op.Version]), NOTHING, NOTHING, NOTHING, opaque);
    case 9:
      return rng() < 0.5
        ? packet(pick(rng, [Op.Flush, Op.FlushQ]), NOTHING, NOTHING, NOTHING, opaque)
        : packet(Op.Stat, latin1(pick(rng, ["reset", "nope"])), NOTHING, NOTHING, opaque);
    default: // unknown opcodes, with a body to skip
      return packet(
        pick(rng, [0x1b, 0x30, 0x99, Op.SaslAuth]),
        key,
        NOTHING,
        randomBytes(rng, 10),
        opaque,
      );
  }
}

/** A valid command for `parser`. */
export function validCommand(parser: Parser, rng: Rng): Uint8Array {
  if (parser === "binary") return binaryCommand(rng);
  if (parser === "meta") return rng() < 0.85 ? metaCommand(rng) : textCommand(rng);
  return textCommand(rng);
}

/** `count` valid commands for `parser`, then one whose reply marks the end of the stream. */
export function validStream(parser: Parser, rng: Rng, count: number): Uint8Array {
  const parts = Array.from({ length: count }, () => validCommand(parser, rng));
  parts.push(
    parser === "binary"
      ? packet(Op.Noop, NOTHING, NOTHING, NOTHING, 0xffff)
      : latin1(parser === "meta" ? "mn\r\n" : "version\r\n"),
  );
  return concat(parts);
}

// ---------------------------------------------------------------------------------------------
// Hostile input

const EDGE_NUMBERS = [
  "0",
  "-0",
  "-1",
  "+1",
  "2147483647",
  "2147483648",
  "-2147483649",
  "4294967295",
  "4294967296",
  "18446744073709551615",
  "18446744073709551616",
  "99999999999999999999999999",
  "0x10",
  "1e3",
  " ",
  "",
];
const EDGE_BYTES = [0, 10, 13, 32, 0x7f, 0x80, 0xff, 48, 57];
const WORDS = [
  "get",
  "gets",
  "gat",
  "set",
  "add",
  "cas",
  "append",
  "incr",
  "decr",
  "delete",
  "touch",
  "stats",
  "stats slabs",
  "stats items",
  "stats sizes",
  "stats conns",
  "stats settings",
  "stats reset",
  "stats detail on",
  "flush_all",
  "version",
  "quit",
  "verbosity",
  "cache_memlimit",
  "shutdown",
  "shutdown graceful",
  "mg",
  "ms",
  "md",
  "ma",
  "mn",
  "me",
  "noreply",
  "a",
  "k".repeat(250),
  "k".repeat(251),
  "GET / HTTP/1.1",
  "v",
  "k",
  "q",
  "b",
  "O1",
  "T1",
  "MS",
  "Ma",
  "C1",
  "I",
];

/** Replaces the digits of one number in `b` by an edge value (text) or one field (binary). */
function swapNumber(rng: Rng, b: Uint8Array): Uint8Array {
  const s = text(b);
  const numbers = [...s.matchAll(/\d+/g)];
  if (numbers.length === 0) return b;
  const m = pick(rng, numbers);
  const at = m.index ?? 0;
  return latin1(s.slice(0, at) + pick(rng, EDGE_NUMBERS) + s.slice(at + m[0].length));
}

/** One random edit of `b`. */
function mutateOnce(rng: Rng, b: Uint8Array, parser: Parser): Uint8Array {
  if (b.length === 0) return randomBytes(rng, int(rng, 16)).slice();
  const at = int(rng, b.length);
  const len = 1 + int(rng, Math.min(64, b.length - at));
  switch (int(rng, 9)) {
    case 0: { // flip bits of a byte
      const c = b.slice();
      c[at] ^= 1 << int(rng, 8);
      return c;
    }
    case 1: { // set a byte to an edge value
      const c = b.slice();
      c[at] = pick(rng, EDGE_BYTES);
      return c;
    }
    case 2: // delete a range
      return concat([b.subarray(0, at), b.subarray(at + len)]);
    case 3: // duplicate a range
      return concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]);
    case 4: // insert random bytes
      return concat([b.subarray(0, at), randomBytes(rng, 1 + int(rng, 32)), b.subarray(at)]);
    case 5: // insert a protocol word
      return concat([b.subarray(0, at), latin1(pick(rng, WORDS) + " "), b.subarray(at)]);
    case 6: // a number becomes an edge value (binary: a 32-bit field becomes extreme)
      if (parser !== "binary") return swapNumber(rng, b);
      if (b.length >= 12) {
        const c = b.slice();
        new DataView(c.buffer).setUint32(
          4 * int(rng, Math.min(6, c.length >> 2)),
          pick(rng, [0, 1, 0xff, 0xffff, 0x7fffffff, 0xffffffff]),
        );
        return c;
      }
      return b;
    case 7: // splice in another command at a random point
      return concat([b.subarray(0, at), validCommand(parser, rng), b.subarray(at)]);
    default: // truncate
      return b.subarray(0, at);
  }
}

/** Valid commands with one to four random edits. */
export function mutated(rng: Rng, parser: Parser): Uint8Array {
  let b = concat(Array.from({ length: 1 + int(rng, 4) }, () => validCommand(parser, rng)));
  for (let i = 1 + int(rng, 4); i > 0; i--) b = mutateOnce(rng, b, parser);
  return b;
}

/** Protocol words and edge numbers joined by spaces and line ends. */
function tokenSoup(rng: Rng): Uint8Array {
  let s = "";
  for (let i = 3 + int(rng, 40); i > 0; i--) {
    s += rng() < 0.5 ? pick(rng, WORDS) : pick(rng, EDGE_NUMBERS);
    s += pick(rng, [" ", " ", " ", "  ", "\r\n", "\n", "\r", "\0"]);
  }
  return latin1(s);
}

/** A long line: over memcached's 2048-byte limit without a line end, or a huge key list. */
function longLine(rng: Rng): Uint8Array {
  const body = "k ".repeat(1000 + int(rng, 3000));
  return latin1(pick(rng, ["get ", "gets ", "set ", "mg ", "   get ", ""]) + body);
}

/** A binary header whose lengths and fields are random, with a body of random length. */
function binaryNoise(rng: Rng): Uint8Array {
  const h = randomBytes(rng, 24).slice();
  const dv = new DataView(h.buffer);
  h[0] = rng() < 0.9 ? 0x80 : h[0];
  h[1] = rng() < 0.8 ? int(rng, 0x26) : h[1];
  const keylen = pick(rng, [0, 1, 5, 250, 251, 65535, int(rng, 300)]);
  const extlen = pick(rng, [0, 4, 8, 20, 255, int(rng, 30)]);
  const body = Math.min(keylen + extlen + pick(rng, [0, 0, 3, int(rng, 100)]), 70000);
  dv.setUint16(2, keylen);
  h[4] = extlen;
  const lie = rng();
  dv.setUint32(8, lie < 0.1 ? int(rng, 2 ** 32) : lie < 0.3 ? int(rng, body + 1) : body);
  return concat([h, randomBytes(rng, body)]);
}

/** One hostile input for `parser`: random, mutated, truncated, a long line, or noise. */
export function hostileInput(rng: Rng, parser: Parser): Uint8Array {
  switch (int(rng, 8)) {
    case 0:
      return randomBytes(rng, int(rng, 300));
    case 1:
    case 2:
    case 3:
      return mutated(rng, parser);
    case 4: { // valid commands, cut anywhere (the client then vanishes)
      const b = concat(Array.from({ length: 1 + int(rng, 3) }, () => validCommand(parser, rng)));
      return b.subarray(0, int(rng, b.length + 1));
    }
    case 5:
      return parser === "binary" ? binaryNoise(rng) : tokenSoup(rng);
    case 6:
      return parser === "binary" ? binaryNoise(rng) : longLine(rng);
    default: // valid commands around a hostile one
      return concat([validCommand(parser, rng), mutated(rng, parser), validCommand(parser, rng)]);
  }
}

/** Cuts `bytes` at random places: sometimes one to three bytes at a time, else up to 4 KiB. */
export function split(rng: Rng, bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const tiny = rng() < 0.2;
  const max = pick(rng, [16, 200, 4096]);
  for (let i = 0; i < bytes.length;) {
    const n = tiny ? 1 + int(rng, 3) : 1 + int(rng, max);
    out.push(bytes.subarray(i, i + n));
    i += n;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Harnesses

/** A `Deno.Conn` stand-in that yields `chunks` one read at a time and records what is written. */
export class ScriptedConn {
  readonly #chunks: Uint8Array[];
  readonly written: Uint8Array[] = [];
  closed = false;

  constructor(chunks: readonly Uint8Array[]) {
    this.#chunks = [...chunks].reverse();
  }

  read(p: Uint8Array): Promise<number | null> {
    const next = this.#chunks.pop();
    if (next === undefined) return Promise.resolve(null);
    const n = Math.min(p.length, next.length);
    p.set(next.subarray(0, n));
    if (n < next.length) this.#chunks.push(next.subarray(n));
    return Promise.resolve(n);
  }

  write(p: Uint8Array): Promise<number> {
    this.written.push(p.slice());
    return Promise.resolve(p.length);
  }

  close(): void {
    this.closed = true;
  }
}

/** The clock fuzz caches run on: it stands still, so replies are the same on every run. */
export const FROZEN_CLOCK = { now: () => 1_700_000_000 };

/** A cache on the store `main.ts` builds, with `FUZZ_ARGS` and a clock that stands still. */
export function freshCache(args: string[] = FUZZ_ARGS): Cache {
  return createServer(parseConfig(args).config, FROZEN_CLOCK).cache;
}

/** Runs `chunks` through a real `Connection` on a fresh cache; returns everything it wrote. */
export async function serveConnection(chunks: readonly Uint8Array[]): Promise<Uint8Array> {
  const owner: ConnectionOwner = {
    cache: freshCache(),
    auth: OPEN,
    closing: false,
    shutdown: () => {},
    connectionRows: () => [],
  };
  const conn = new ScriptedConn(chunks);
  await new Connection(conn as unknown as Deno.Conn, 0, owner).run();
  return concat(conn.written);
}

/** How a codec run ended. */
export type Ending = "eof" | "close" | "abort";

/** What a codec run sent and how it ended. */
export interface CodecRun {
  sent: Uint8Array;
  ending: Ending;
}

/**
 * Feeds `chunks` to a fresh codec for `parser` on `cache` with the connection loop's own steps
 * (read, process, send; Flush, Close and Abort as `Connection.run` treats them) but without its
 * catch-all, so an exception thrown by the codec reaches the caller. Frees the codec at the end.
 */
export async function runCodec(
  parser: Parser,
  chunks: readonly Uint8Array[],
  cache: Cache,
): Promise<CodecRun> {
  const conn = new ScriptedConn(chunks);
  const session: Session = {
    reader: new BufferedReader(conn),
    out: new ReplyBuffer(),
    cache,
    shutdown: () => {},
    connectionRows: () => [],
  };
  const codec: Protocol = parser === "binary"
    ? new BinaryProtocol(session, null)
    : new TextProtocol(session, new MetaProtocol());
  let ending: Ending = "eof";
  try {
    read: while (await session.reader.fill()) {
      let step: Step;
      do {
        step = codec.process();
        if (step === Step.Abort) {
          ending = "abort";
          break read;
        }
        if (session.out.pos > 0) await session.out.send(conn);
      } while (step === Step.Flush);
      if (step === Step.Close) {
        ending = "close";
        break;
      }
    }
  } finally {
    codec.close();
  }
  await session.out.drain();
  return { sent: concat(conn.written), ending };
}

/** First words of every reply line memcached's text and meta protocols send. */
const REPLY_WORDS = new Set([
  "STORED",
  "NOT_STORED",
  "EXISTS",
  "NOT_FOUND",
  "DELETED",
  "TOUCHED",
  "END",
  "OK",
  "RESET",
  "ERROR",
  "ERROR:",
  "CLIENT_ERROR",
  "SERVER_ERROR",
  "VERSION",
  "STAT",
  "MEMLIMIT_TOO_SMALL",
  "MEMLIMIT_ADJUST_FAILED",
  "HD",
  "EN",
  "EX",
  "NF",
  "NS",
  "MN",
  "ME",
]);

/**
 * Why `bytes` is not a sequence of whole text/meta replies (every line a known reply, every
 * `VALUE`/`VA` data block complete and `\r\n`-terminated), or null when it is.
 */
export function textRepliesProblem(bytes: Uint8Array): string | null {
  let p = 0;
  while (p < bytes.length) {
    let eol = p;
    while (eol + 1 < bytes.length && !(bytes[eol] === 13 && bytes[eol + 1] === 10)) eol++;
    if (eol + 1 >= bytes.length) return `unterminated reply at byte ${p}`;
    const line = text(bytes, p, eol);
    p = eol + 2;
    const words = line.split(" ");
    const dataAt = words[0] === "VALUE" ? 3 : words[0] === "VA" ? 1 : -1;
    if (dataAt < 0) {
      if (!REPLY_WORDS.has(words[0]) && !/^\d+$/.test(words[0])) {
        return `unknown reply ${JSON.stringify(line.slice(0, 80))}`;
      }
      continue;
    }
    const n = Number(words[dataAt]);
    if (!Number.isInteger(n) || n < 0) return `bad length in ${JSON.stringify(line.slice(0, 80))}`;
    if (p + n + 2 > bytes.length) return `data block cut at byte ${bytes.length} of ${p + n + 2}`;
    if (bytes[p + n] !== 13 || bytes[p + n + 1] !== 10) return `data block without \\r\\n`;
    p += n + 2;
  }
  return null;
}

/** Why `bytes` is not a sequence of whole binary response packets, or null when it is. */
export function binaryRepliesProblem(bytes: Uint8Array): string | null {
  let p = 0;
  while (p < bytes.length) {
    if (bytes[p] !== RESPONSE_MAGIC) return `no response magic at byte ${p}`;
    if (bytes.length - p < 24) return `header cut at byte ${p}`;
    p += 24 + new DataView(bytes.buffer, bytes.byteOffset + p).getUint32(8);
  }
  return p === bytes.length ? null : `body cut: ${p - bytes.length} bytes missing`;
}

/** Why a `parser` reply stream is not whole, or null. */
export function repliesProblem(parser: Parser, bytes: Uint8Array): string | null {
  return parser === "binary" ? binaryRepliesProblem(bytes) : textRepliesProblem(bytes);
}

/**
 * Chunks of the store still in use once every item is flushed and reclaimed: 0 unless a codec
 * left an item allocated and never linked or released.
 */
export function leakedChunks(cache: Cache): number {
  cache.store.flush(0);
  cache.store.sweep(60_000);
  let used = 0;
  for (const [name, value] of cache.store.groupStats("slabs") ?? []) {
    if (name.endsWith(":used_chunks")) used += Number(value);
  }
  return used;
}

// ---------------------------------------------------------------------------------------------
// Over sockets

/** Writes all of `b`, in the random pieces `split` cuts. */
async function writePieces(conn: Deno.Conn, rng: Rng, b: Uint8Array): Promise<void> {
  for (const piece of split(rng, b)) {
    let off = 0;
    while (off < piece.length) off += await conn.write(piece.subarray(off));
  }
}

/** Reads from `conn` until `want` bytes have arrived; rejects after `timeoutMs`. */
export async function readExactly(
  conn: Deno.Conn,
  want: number,
  timeoutMs = 5000,
): Promise<Uint8Array> {
  const out = new Uint8Array(want);
  let have = 0;
  const deadline = Date.now() + timeoutMs;
  while (have < want) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), Math.max(1, deadline - Date.now()));
    });
    const n = await Promise.race([conn.read(out.subarray(have)), timeout]);
    clearTimeout(timer);
    if (n === null) throw new Error(`no reply: ${have} of ${want} bytes in ${timeoutMs} ms`);
    have += n;
  }
  return out;
}

/**
 * Sends `bytes` on a fresh connection in random pieces and closes it, ignoring the server
 * closing first (memcached closes on some garbage) and any reply.
 */
export async function hostileConnection(port: number, rng: Rng, bytes: Uint8Array): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writePieces(conn, rng, bytes);
  } catch {
    // the server closed the connection while we were still writing
  } finally {
    conn.close();
  }
}

/**
 * A well-behaved round trip on `conn`: stores a random value under `key` and reads it back
 * (text `set`/`get`, meta `ms`/`mg`, or binary SetQ/Get). Throws unless the reply is exact.
 * A miss is retried once, a second later: another client may legitimately have sent
 * `flush_all 1` (or `flush_all` with a delay that has just run out), which hides whatever is
 * stored until the clock's second is over; memcached answers the same.
 */
export async function checkRoundTrip(
  conn: Deno.Conn,
  parser: Parser,
  rng: Rng,
  round: number,
): Promise<void> {
  const value = randomBytes(rng, int(rng, 5000));
  const key = `good-${round}`;
  let request: Uint8Array;
  let hit: Uint8Array;
  let miss: Uint8Array;
  if (parser === "binary") {
    const k = latin1(key);
    request = concat([
      packet(Op.SetQ, k, u32s(round, 0), value, 1),
      packet(Op.Get, k, NOTHING, NOTHING, 2),
    ]);
    hit = concat([response(Op.Get, 0, 4, 4 + value.length, 2), u32s(round), value]);
    miss = concat([response(Op.Get, 1, 0, 9, 2), latin1("Not found")]);
  } else if (parser === "meta") {
    request = concat([
      latin1(`ms ${key} ${value.length} F${round} q\r\n`),
      value,
      latin1(`\r\nmg ${key} v f k\r\n`),
    ]);
    hit = concat([latin1(`VA ${value.length} f${round} k${key}\r\n`), value, latin1("\r\n")]);
    miss = latin1(`EN k${key}\r\n`); // memcached echoes the key on a miss too
  } else {
    request = concat([
      latin1(`set ${key} ${round} 0 ${value.length} noreply\r\n`),
      value,
      latin1(`\r\nget ${key}\r\n`),
    ]);
    hit = concat([
      latin1(`VALUE ${key} ${round} ${value.length}\r\n`),
      value,
      latin1("\r\nEND\r\n"),
    ]);
    miss = latin1("END\r\n");
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 1100));
    const got = await readAfter(conn, request, hit, miss);
    if (parser === "binary" && got.length === hit.length) got.fill(0, 16, 24); // any CAS
    if (equal(got, hit)) return;
    if (!equal(got, miss)) {
      throw new Error(`round ${round}: wrong ${parser} reply ${JSON.stringify(text(got, 0, 80))}`);
    }
  }
  throw new Error(`round ${round}: the value just stored is missing`);
}

/** A binary response header for the request with `opaque` (CAS 0). */
function response(op: number, status: number, extlen: number, bodylen: number, opaque: number) {
  const h = new Uint8Array(24);
  const dv = new DataView(h.buffer);
  h[0] = RESPONSE_MAGIC;
  h[1] = op;
  h[4] = extlen;
  dv.setUint16(6, status);
  dv.setUint32(8, bodylen);
  dv.setUint32(12, opaque);
  return h;
}

/**
 * Polls `stats` on a fresh connection to 127.0.0.1:`port` until stat `name` reads `want` (at most
 * 50 times, 20 ms apart); returns the last value read. The probe connection counts itself.
 */
export async function statBecomes(port: number, name: string, want: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const chunk = new Uint8Array(64 * 1024);
  let value = "";
  try {
    for (let tries = 0; tries < 50 && value !== want; tries++) {
      if (tries > 0) await new Promise((r) => setTimeout(r, 20));
      await conn.write(latin1("stats\r\n"));
      let reply = "";
      while (!reply.endsWith("END\r\n")) {
        const n = await conn.read(chunk);
        if (n === null) throw new Error("the server closed the stats connection");
        reply += text(chunk, 0, n);
      }
      value = reply.match(new RegExp(`STAT ${name} (\\S+)\r\n`))?.[1] ?? "";
    }
  } finally {
    conn.close();
  }
  return value;
}

/**
 * Sends `request`, then reads as many bytes as `miss` has if the reply starts as `miss` does,
 * else as many as `hit` has (rejects after 5 s); returns what arrived.
 */
async function readAfter(
  conn: Deno.Conn,
  request: Uint8Array,
  hit: Uint8Array,
  miss: Uint8Array,
): Promise<Uint8Array> {
  let off = 0;
  while (off < request.length) off += await conn.write(request.subarray(off));
  const got = await readExactly(conn, Math.min(hit.length, miss.length));
  // what is not the start of a miss is read as a hit (whose CAS the caller cannot know)
  const want = equal(got, miss.subarray(0, got.length)) ? miss : hit;
  return want.length === got.length
    ? got
    : concat([got, await readExactly(conn, want.length - got.length)]);
}

/** Byte-wise equality. */
export function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// The long run

/** Totals of a long run. */
export interface FuzzReport {
  parser: Parser;
  seed: number;
  minutes: number;
  iterations: number;
  bytes: number;
  splitChecks: number;
  socketRounds: number;
  failures: string[];
  leakedChunks: number;
  rssAfterWarmupMb: number;
  rssEndMb: number;
  rssMaxMb: number;
  heapAfterWarmupMb: number;
  heapEndMb: number;
}

const MB = 1024 * 1024;
const round1 = (n: number) => Math.round(n * 10) / 10;

/**
 * Fuzzes `parser` for `minutes`, iteration `i` seeded with `seed + i`. The in-process server it
 * uses is started and shut down here.
 */
export async function longRun(parser: Parser, minutes: number, seed: number): Promise<FuzzReport> {
  const memg = startMemg(FUZZ_ARGS);
  let good = await Deno.connect({ hostname: "127.0.0.1", port: memg.port });
  const cache = freshCache();
  const failures: string[] = [];
  const fail = (what: string) => {
    if (failures.length < 50) failures.push(what);
  };
  const end = Date.now() + minutes * 60_000;
  const warmupEnds = Date.now() + Math.min(60_000, minutes * 6_000);
  let warm: Deno.MemoryUsage | null = null;
  let nextProgress = Date.now() + 30_000;
  let rssMax = 0;
  let iterations = 0;
  let bytes = 0;
  let splitChecks = 0;
  let socketRounds = 0;
  try {
    for (let i = 0; Date.now() < end; i++) {
      const iterSeed = (seed + i) >>> 0;
      const rng = prng(iterSeed);
      const input = hostileInput(rng, parser);
      bytes += input.length;
      try {
        const run = await runCodec(parser, split(rng, input), cache);
        const problem = repliesProblem(parser, run.sent);
        if (problem !== null) fail(`seed ${iterSeed}: ${problem}`);
      } catch (e) {
        fail(`seed ${iterSeed}: codec threw ${e instanceof Error ? e.stack : e}`);
      }
      if (i % 25 === 0) {
        const stream = validStream(parser, rng, 5 + int(rng, 30));
        bytes += stream.length * 3;
        const whole = await serveConnection([stream]);
        for (let cut = 0; cut < 2; cut++) {
          if (!equal(await serveConnection(split(rng, stream)), whole)) {
            fail(`seed ${iterSeed}: replies differ when the valid stream is split`);
          }
        }
        splitChecks++;
      }
      if (i % 10 === 0) {
        try {
          await hostileConnection(memg.port, rng, input);
          memg.server.cache.config.verbose = 0; // a fuzzed `verbosity` must not flood stderr
          await checkRoundTrip(good, parser, rng, i);
        } catch (e) {
          fail(`seed ${iterSeed}: well-behaved connection: ${e instanceof Error ? e.message : e}`);
          good.close(); // a reply may still be on its way: go on with a fresh connection
          good = await Deno.connect({ hostname: "127.0.0.1", port: memg.port });
        }
        socketRounds++;
      }
      iterations++;
      if ((i & 255) === 0) {
        const m = Deno.memoryUsage();
        rssMax = Math.max(rssMax, m.rss);
        if (warm === null && Date.now() >= warmupEnds) warm = m;
        if (Date.now() >= nextProgress) {
          nextProgress += 30_000;
          console.error(
            `fuzz ${parser}: ${iterations} iterations, ${failures.length} failures, ` +
              `rss ${round1(m.rss / MB)} MB, heap ${round1(m.heapUsed / MB)} MB, ` +
              `external ${round1(m.external / MB)} MB`,
          );
        }
      }
    }
    const conns = await statBecomes(memg.port, "curr_connections", "2");
    if (conns !== "2") fail(`curr_connections ended at ${conns}, not 2 (probe and good one)`);
  } finally {
    good.close();
    await memg.close();
  }
  const last = Deno.memoryUsage();
  warm ??= last;
  const leaked = leakedChunks(cache);
  if (leaked !== 0) fail(`${leaked} store chunks left allocated after the run`);
  return {
    parser,
    seed,
    minutes,
    iterations,
    bytes,
    splitChecks,
    socketRounds,
    failures,
    leakedChunks: leaked,
    rssAfterWarmupMb: round1(warm.rss / MB),
    rssEndMb: round1(last.rss / MB),
    rssMaxMb: round1(Math.max(rssMax, last.rss) / MB),
    heapAfterWarmupMb: round1(warm.heapUsed / MB),
    heapEndMb: round1(last.heapUsed / MB),
  };
}

type Flags = { parser?: string; minutes?: string; seed?: string; help: boolean };
const parseArgs = untypedParseArgs as (args: string[], opts: {
  string: string[];
  boolean: string[];
  unknown: (arg: string) => boolean;
}) => Flags;

const USAGE = "usage: deno run -A bench/fuzz.ts --parser text|meta|binary --minutes N [--seed S]";

async function main(): Promise<number> {
  const flags = parseArgs(Deno.args, {
    string: ["parser", "minutes", "seed"],
    boolean: ["help"],
    unknown: (arg) => {
      console.error(`fuzz: unknown argument ${arg}\n${USAGE}`);
      Deno.exit(64);
    },
  });
  const parser = flags.parser as Parser;
  const minutes = Number(flags.minutes ?? "1");
  const seed = Number(flags.seed ?? "1");
  if (flags.help || !PARSERS.includes(parser) || !(minutes > 0) || !Number.isInteger(seed)) {
    console.error(USAGE);
    return flags.help ? 0 : 64;
  }
  const report = await longRun(parser, minutes, seed);
  console.log(JSON.stringify(report, null, 2));
  return report.failures.length === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
