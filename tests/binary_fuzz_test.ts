/**
 * Fuzzing the binary protocol with a seeded PRNG and bounded counts:
 * - a valid request stream split at random byte boundaries, fed through the real `Connection`
 *   loop, gets byte-identical replies however it is split;
 * - random, truncated and malformed headers and random bodies never make the codec throw, and
 *   whatever it answers is whole response packets;
 * - over real sockets, connections sending garbage never disturb a well-behaved connection, and
 *   the server keeps serving.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { startMemg } from "./helpers/server.ts";
import {
  concat,
  freshCache,
  int,
  packet,
  pick,
  prng,
  type Rng,
  ScriptedConn,
  split,
} from "../bench/fuzz.ts";
import { OPEN, parseSaslPwdb } from "../lib/auth.ts";
import { Connection, type ConnectionOwner } from "../lib/connection.ts";
import { BinaryProtocol, Op } from "../lib/protocol/binary.ts";
import { Step } from "../lib/protocol/session.ts";
import { BufferedReader } from "../lib/reader.ts";
import { ReplyBuffer } from "../lib/reply.ts";

const SEED = 0x5eed1234;

/** `n` fresh random bytes (the caller may write to them). */
function randomBytes(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = int(rng, 256);
  return b;
}

function fields(...values: Array<[number, number | bigint]>): Uint8Array {
  const size = values.reduce((n, [bits]) => n + bits / 8, 0);
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  let o = 0;
  for (const [bits, v] of values) {
    if (bits === 32) dv.setUint32(o, Number(v));
    else dv.setBigUint64(o, BigInt(v));
    o += bits / 8;
  }
  return b;
}

const KEYS = ["a", "b", "counter", "k".repeat(250)].map((k) => new TextEncoder().encode(k));
const NONE = new Uint8Array(0);

/**
 * A random request memcached answers without closing the connection (values up to 3000 bytes
 * against -I 2k, so some are E2BIG; unknown opcodes; misses; quiet variants).
 */
function validRequest(rng: Rng, opaque: number): Uint8Array {
  const key = pick(rng, KEYS);
  const value = () => randomBytes(rng, pick(rng, [0, 1, 5, 100, 1500, 3000]));
  const digits = () => new TextEncoder().encode(String(int(rng, 1000)));
  const exptime = () => pick(rng, [0, 5, 100, 0xffffffff]);
  const cas = () => pick(rng, [0n, 0n, 1n, 2n, 3n, 99n]);
  switch (int(rng, 12)) {
    case 0:
      return packet(pick(rng, [Op.Get, Op.GetQ, Op.GetK, Op.GetKQ]), key, NONE, NONE, opaque);
    case 1:
    case 2: {
      const op = pick(rng, [Op.Set, Op.SetQ, Op.Add, Op.AddQ, Op.Replace, Op.ReplaceQ]);
      const v = rng() < 0.5 ? digits() : value();
      return packet(op, key, fields([32, int(rng, 1 << 30)], [32, exptime()]), v, opaque, cas());
    }
    case 3: {
      const op = pick(rng, [Op.Append, Op.AppendQ, Op.Prepend, Op.PrependQ]);
      return packet(op, key, NONE, rng() < 0.5 ? digits() : value(), opaque, cas());
    }
    case 4:
      return packet(pick(rng, [Op.Delete, Op.DeleteQ]), key, NONE, NONE, opaque, cas());
    case 5: {
      const op = pick(rng, [Op.Increment, Op.IncrementQ, Op.Decrement, Op.DecrementQ]);
      const ext = fields([64, BigInt(int(rng, 1000))], [64, BigInt(int(rng, 1000))], [
        32,
        exptime(),
      ]);
      return packet(op, key, ext, NONE, opaque, cas());
    }
    case 6: {
      const op = pick(rng, [Op.Touch, Op.Gat, Op.GatQ, Op.GatK, Op.GatKQ]);
      return packet(op, key, fields([32, exptime()]), NONE, opaque);
    }
    case 7:
      return packet(pick(rng, [Op.Noop, Op.Version]), NONE, NONE, NONE, opaque);
    case 8:
      return packet(Op.Flush, NONE, rng() < 0.5 ? NONE : fields([32, 3]), NONE, opaque);
    case 9:
      return packet(
        Op.Stat,
        new TextEncoder().encode(pick(rng, ["reset", "nope"])),
        NONE,
        NONE,
        opaque,
      );
    case 10: // unknown opcodes, with and without a body to skip
      return packet(pick(rng, [0x1b, 0x30, 0x99]), key, NONE, value(), opaque);
    default: // SASL opcodes without -S are unknown commands too
      return packet(Op.SaslAuth, new TextEncoder().encode("PLAIN"), NONE, value(), opaque);
  }
}

/** A request memcached may answer by closing, or an incomplete or garbled one. */
function hostileRequest(rng: Rng): Uint8Array {
  switch (int(rng, 6)) {
    case 0:
      return randomBytes(rng, int(rng, 64));
    case 1: { // random opcode, lengths and fields, with a random body
      const h = randomBytes(rng, 24);
      const dv = new DataView(h.buffer);
      h[0] = 0x80;
      h[1] = rng() < 0.8 ? int(rng, 0x26) : int(rng, 256);
      const keylen = pick(rng, [0, 1, 5, 250, 251, int(rng, 300)]);
      const extlen = pick(rng, [0, 4, 8, 20, int(rng, 30)]);
      const body = keylen + extlen + pick(rng, [0, 0, 3, int(rng, 100)]);
      dv.setUint16(2, keylen);
      h[4] = extlen;
      const lie = rng();
      dv.setUint32(8, lie < 0.1 ? int(rng, 2 ** 32) : lie < 0.3 ? int(rng, body + 1) : body);
      return concat([h, randomBytes(rng, body)]);
    }
    case 2: // truncated valid request
    {
      const r = validRequest(rng, 1);
      return r.subarray(0, int(rng, r.length));
    }
    case 3: { // a valid header whose lengths lie
      const r = validRequest(rng, 2);
      const dv = new DataView(r.buffer);
      dv.setUint16(2, int(rng, 300));
      r[4] = int(rng, 30);
      return r;
    }
    case 4: // bad magic
      return packet(pick(rng, [0x00, 0x81, 0x7f, 0xff]), NONE, NONE, NONE, 3);
    default:
      return validRequest(rng, 4);
  }
}

const ARGS = ["-I", "2k", "-m", "8"];

/** Runs `chunks` through a real `Connection` on a fresh cache; returns everything it wrote. */
async function serve(chunks: Uint8Array[]): Promise<Uint8Array> {
  const cache = freshCache(ARGS);
  const owner: ConnectionOwner = {
    cache,
    auth: OPEN,
    closing: false,
    shutdown: () => {},
    connectionRows: () => [],
  };
  const conn = new ScriptedConn(chunks);
  await new Connection(conn as unknown as Deno.Conn, 0, owner).run();
  return concat(conn.written);
}

/** Whether `bytes` is a sequence of whole response packets. */
function wholePackets(bytes: Uint8Array): boolean {
  let p = 0;
  while (p < bytes.length) {
    if (bytes[p] !== 0x81 || bytes.length - p < 24) return false;
    const dv = new DataView(bytes.buffer, bytes.byteOffset + p);
    p += 24 + dv.getUint32(8);
  }
  return p === bytes.length;
}

Deno.test("binary fuzz: a valid stream split anywhere gets identical replies", async () => {
  const rng = prng(SEED);
  for (let stream = 0; stream < 40; stream++) {
    const requests: Uint8Array[] = [];
    const count = 5 + int(rng, 40);
    for (let i = 0; i < count; i++) requests.push(validRequest(rng, i));
    requests.push(packet(Op.Noop, NONE, NONE, NONE, 0xffff));
    const bytes = concat(requests);
    const whole = await serve([bytes]);
    assert(wholePackets(whole), `stream ${stream}: garbled replies`);
    assertEquals(whole.subarray(whole.length - 24)[1], Op.Noop, `stream ${stream}: no final Noop`);
    for (let cut = 0; cut < 6; cut++) {
      const parts = split(rng, bytes);
      assertEquals(await serve(parts), whole, `stream ${stream}, split ${cut}`);
    }
  }
});

Deno.test("binary fuzz: garbage never makes the codec throw; replies stay whole packets", () => {
  const rng = prng(SEED ^ 0xabcdef);
  for (let round = 0; round < 3000; round++) {
    const parts: Uint8Array[] = [];
    const before = int(rng, 3);
    for (let i = 0; i < before; i++) parts.push(validRequest(rng, i));
    parts.push(hostileRequest(rng));
    const after = int(rng, 3);
    for (let i = 0; i < after; i++) parts.push(validRequest(rng, i));
    const chunks = split(rng, concat(parts));
    const reader = new BufferedReader({ read: () => Promise.resolve(null) });
    const out = new ReplyBuffer();
    const session = {
      reader,
      out,
      cache: freshCache(ARGS),
      shutdown: () => {},
      connectionRows: () => [],
    };
    const sasl = round % 2 === 0 ? null : parseSaslPwdb(new TextEncoder().encode("u:p\n"));
    const codec = new BinaryProtocol(session, sasl);
    const sent: Uint8Array[] = [];
    let step: Step = Step.More;
    for (const chunk of chunks) {
      reader.full(reader.buffered + chunk.length);
      reader.buf.set(chunk, reader.end);
      reader.end += chunk.length;
      do {
        step = codec.process();
        if (step !== Step.Abort) sent.push(out.buf.slice(0, out.pos));
        out.pos = 0;
      } while (step === Step.Flush);
      if (step === Step.Close || step === Step.Abort) break;
    }
    codec.close();
    assert(wholePackets(concat(sent)), `round ${round}: replies are not whole packets`);
  }
});

Deno.test("binary fuzz: garbage connections never disturb a well-behaved one", async () => {
  const rng = prng(SEED ^ 0x777);
  const memg = startMemg(ARGS);
  const good = await RawClient.connect(memg.port);
  try {
    for (let round = 0; round < 60; round++) {
      const bad = await RawClient.connect(memg.port);
      try {
        const bytes = concat(Array.from({ length: 1 + int(rng, 6) }, () => hostileRequest(rng)));
        for (const part of split(rng, bytes)) await bad.send(part);
      } catch {
        // the server may close a hostile connection while we are still writing
      } finally {
        bad.close();
      }
      const value = randomBytes(rng, int(rng, 1500));
      const key = new TextEncoder().encode(`good-${round}`);
      await good.send(concat([
        packet(Op.SetQ, key, fields([32, round], [32, 0]), value, 1),
        packet(Op.Get, key, NONE, NONE, 2),
      ]));
      const h = await good.readBytes(24);
      const dv = new DataView(h.buffer);
      assertEquals([h[0], h[1], dv.getUint16(6), dv.getUint32(12)], [0x81, Op.Get, 0, 2]);
      const body = await good.readBytes(dv.getUint32(8));
      assertEquals(new DataView(body.buffer).getUint32(0), round);
      assertEquals(body.subarray(4), value);
    }
    const fresh = await RawClient.connect(memg.port);
    try {
      await fresh.send(packet(Op.Version, NONE, NONE, NONE, 9));
      assertEquals((await fresh.readBytes(24))[0], 0x81);
    } finally {
      fresh.close();
    }
  } finally {
    good.close();
    await memg.close();
  }
});
