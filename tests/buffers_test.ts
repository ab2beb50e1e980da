/** Unit tests of the connection's two buffers: the reader and the reply buffer. */
import { assert, assertEquals } from "./helpers/assert.ts";
import { BufferedReader, type ByteSource } from "../lib/reader.ts";
import { type ByteSink, ReplyBuffer, writeU32 } from "../lib/reply.ts";

const dec = new TextDecoder();

/** A source that hands out `data` in pieces of the given sizes, then ends. */
function pieces(data: Uint8Array, sizes: number[]): ByteSource {
  let off = 0;
  let i = 0;
  return {
    read(p: Uint8Array): Promise<number | null> {
      if (off >= data.length) return Promise.resolve(null);
      const n = Math.min(sizes[i++ % sizes.length], p.length, data.length - off);
      p.set(data.subarray(off, off + n));
      off += n;
      return Promise.resolve(n);
    },
  };
}

/** A sink that accepts at most `max` bytes per write, after a turn of the event loop. */
function slowSink(max: number): ByteSink & { got: number[] } {
  const got: number[] = [];
  return {
    got,
    async write(p: Uint8Array): Promise<number> {
      await new Promise((r) => setTimeout(r, 0));
      const n = Math.min(max, p.length);
      for (let i = 0; i < n; i++) got.push(p[i]);
      return n;
    },
  };
}

Deno.test("reader: lines and values split at every boundary come out whole", async () => {
  const text = "set k 0 0 10\r\n0123456789\r\nget k\r\n" + "x".repeat(40000) + "\n";
  const data = new TextEncoder().encode(text);
  for (const sizes of [[1], [2, 3], [7], [4096], [65536]]) {
    const r = new BufferedReader(pieces(data, sizes), 16);
    const lines: string[] = [];
    while (lines.length < 4) {
      const lf = r.line();
      if (lf >= 0) {
        lines.push(dec.decode(r.buf.subarray(r.start, lf)));
        r.consume(lf + 1 - r.start);
        if (lines.length === 1) {
          while (!r.full(12)) assert(await r.fill());
          lines.push(dec.decode(r.buf.subarray(r.start, r.start + 10)));
          r.consume(12);
        }
        continue;
      }
      assert(await r.fill(), `ended early with pieces ${sizes}`);
    }
    assertEquals(lines, ["set k 0 0 10\r", "0123456789", "get k\r", "x".repeat(40000)]);
    assertEquals(await r.fill(), false);
    assertEquals(r.bytesRead, data.length);
  }
});

Deno.test("reply buffer: putUint writes every magnitude in decimal", () => {
  const out = new ReplyBuffer(8);
  const samples = [0, 9, 10, 99, 100, 65535, 2147483647, 2147483648, 4294967295, 2 ** 53 - 1];
  for (let i = 0; i < 2000; i++) samples.push(Math.floor(Math.random() * 2 ** (1 + (i % 53))));
  for (const n of samples) {
    out.pos = 0;
    out.putUint(n);
    assertEquals(dec.decode(out.buf.subarray(0, out.pos)), String(n));
  }
});

Deno.test("writeU32 writes 0–100,000 and the 32-bit boundaries in decimal, at an offset, nothing after", () => {
  const buf = new Uint8Array(16);
  const samples = [999_999, 2 ** 31 - 1, 2 ** 31, 4294967295];
  for (let n = 0; n <= 100_000; n++) samples.push(n);
  for (const n of samples) {
    buf.fill(0x2e);
    const end = writeU32(buf, 3, n);
    assertEquals(dec.decode(buf.subarray(3, end)), String(n));
    assertEquals(buf[end], 0x2e);
  }
});

Deno.test("reply buffer: sends keep their order through partial writes while the next fills", async () => {
  const out = new ReplyBuffer(16);
  const sink = slowSink(5);
  const expected: number[] = [];
  for (let batch = 0; batch < 50; batch++) {
    const bytes = Array.from({ length: 1 + (batch * 7) % 40 }, (_, i) => (batch + i) & 0xff);
    for (const b of bytes) out.putByte(b);
    expected.push(...bytes);
    await out.send(sink);
  }
  await out.drain();
  assertEquals(sink.got, expected);
  assertEquals(out.bytesWritten, expected.length);
});

/** A value source over one array: value `ref` is `vals[ref]`, viewed in pieces of `chunk`. */
function values(vals: Uint8Array[], chunk: number) {
  return {
    readValue(ref: number, dst: Uint8Array, dstOff: number): number {
      dst.set(vals[ref], dstOff);
      return vals[ref].length;
    },
    valueView(ref: number, valueOff: number, maxLen: number): Uint8Array {
      return vals[ref].subarray(valueOff, valueOff + Math.min(maxLen, chunk));
    },
  };
}

Deno.test("reply buffer: held values leave in their places in one gathered send, or are copied", async (t) => {
  const big = (n: number, seed: number) =>
    Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
  // a value in 3 views (a chained item), between replies
  const vals = [big(40_000, 1), big(20_000, 2)];
  const want = [..."head", ...vals[0], ..."mid", ...vals[1], ..."tail"].map((c) =>
    typeof c === "string" ? c.charCodeAt(0) : c
  );
  for (const take of [Infinity, 0, 3, 4, 10_000, 40_004, 40_006, 60_009, 60_010]) {
    await t.step(`the socket takes ${take} bytes`, () => {
      const out = new ReplyBuffer(64);
      const got: number[] = [];
      const calls: number[] = [];
      out.sender = {
        sendNow: () => 0,
        sendGathered: (parts, count) => {
          calls.push(count);
          let n = 0;
          for (let i = 0; i < count; i++) {
            for (const b of parts[i]) {
              if (n === take) return n;
              got.push(b);
              n++;
            }
          }
          return n;
        },
      };
      const src = values(vals, 16_384);
      out.putAscii("head");
      out.putValue(src, 0, vals[0].length, true);
      out.putAscii("mid");
      out.putValue(src, 1, vals[1].length, true);
      out.putAscii("tail");
      assert(out.holding);
      out.release();
      assert(!out.holding);
      // one gathered send of 4 + 3 views + 3 + 2 views + 4 bytes; nothing held any more
      assertEquals(calls, [8]);
      for (const v of vals) v.fill(0); // the store changes: what is pending must not
      const rest = Array.from(out.buf.subarray(0, out.pos));
      assertEquals(got.length, Math.min(take, want.length));
      assertEquals([...got, ...rest], want);
      assertEquals(out.bytesWritten, got.length);
      vals[0] = big(40_000, 1);
      vals[1] = big(20_000, 2);
    });
  }
  await t.step("small values, no gathered send, or `direct` false are copied", () => {
    const out = new ReplyBuffer(64);
    const src = values([big(16_383, 3), big(20_000, 4)], 16_384);
    out.putValue(src, 0, 16_383, true);
    assert(!out.holding);
    out.putValue(src, 1, 20_000, true); // no sender: Deno's sockets
    out.sender = { sendNow: () => 0, sendGathered: () => 0 };
    out.putValue(src, 1, 20_000, false);
    assert(!out.holding);
    assertEquals(out.pos, 16_383 + 2 * 20_000);
  });
});

Deno.test("reader: a direct read fills the view, then the buffer with what follows, in one read", () => {
  const data = Uint8Array.from({ length: 30_000 }, (_, i) => i & 0xff);
  let reads = 0;
  let off = 0;
  const src = {
    read: () => Promise.resolve(null),
    readNow(p: Uint8Array, at: number, len: number): number {
      reads++;
      const n = Math.min(len, data.length - off);
      p.set(data.subarray(off, off + n), at);
      off += n;
      return n;
    },
    readScattered(first: Uint8Array, second: Uint8Array, at: number, len: number): number {
      reads++;
      const a = Math.min(first.length, data.length - off);
      first.set(data.subarray(off, off + a));
      off += a;
      const b = Math.min(len, data.length - off);
      second.set(data.subarray(off, off + b), at);
      off += b;
      return a + b;
    },
  };
  const r = new BufferedReader(src, 4096);
  assertEquals(r.fillNow(src), 4096);
  r.consume(4096);
  const view = new Uint8Array(20_000);
  r.readDirect(view);
  assertEquals(r.fillNow(src), 20_000 + 4096);
  assertEquals(reads, 2);
  assertEquals(r.directRead, 20_000);
  assertEquals(Array.from(view), Array.from(data.subarray(4096, 24_096)));
  assertEquals(
    Array.from(r.buf.subarray(r.start, r.end)),
    Array.from(data.subarray(24_096, 28_192)),
  );
  assertEquals(r.bytesRead, 28_192);
});
