/** Unit tests of the connection's two buffers: the reader and the reply buffer. */
import { assert, assertEquals } from "./helpers/assert.ts";
import { BufferedReader, type ByteSource } from "../lib/reader.ts";
import { type ByteSink, ReplyBuffer } from "../lib/reply.ts";

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
