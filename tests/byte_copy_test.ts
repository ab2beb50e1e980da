/**
 * Copying values and keys into and out of the slab pages (`lib/store/byte_copy.ts`): every
 * length on both sides of the switch from `DataView` words to `set`, at every alignment, and
 * over sockets, two connections interleaved so that the copies' read and reply buffers change
 * from one command to the next.
 */
import { assertEquals, assertThrows } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { startMemg } from "./helpers/server.ts";
import { copyBytes, ViewCache, viewOf } from "../lib/store/byte_copy.ts";

Deno.test("copyBytes copies every length 0–300 at every alignment, touching nothing else", () => {
  const src = new Uint8Array(400).map((_, i) => (i * 7 + 3) & 255);
  const dst = new Uint8Array(400);
  const sv = viewOf(src);
  const dv = viewOf(dst);
  for (let n = 0; n <= 300; n++) {
    for (let sOff = 0; sOff < 9; sOff++) {
      const dOff = (n + sOff) % 11;
      dst.fill(0xee);
      copyBytes(dst, dv, dOff, src, sv, sOff, n);
      for (let i = 0; i < dst.length; i++) {
        const want = i >= dOff && i < dOff + n ? src[sOff + i - dOff] : 0xee;
        if (dst[i] !== want) throw new Error(`n ${n} sOff ${sOff} dOff ${dOff}: byte ${i}`);
      }
    }
  }
});

Deno.test("copyBytes copies views over part of a buffer, relative to the view", () => {
  const buf = new ArrayBuffer(64);
  const src = new Uint8Array(buf, 5, 20).map((_, i) => i + 1);
  const dst = new Uint8Array(buf, 33, 30);
  copyBytes(dst, viewOf(dst), 2, src, viewOf(src), 3, 17);
  assertEquals([...dst.subarray(2, 19)], [...src.subarray(3, 20)]);
  assertEquals(new Uint8Array(buf)[34], 0); // dst[1], before the copy
});

Deno.test("copyBytes refuses a short copy out of bounds before writing a byte", () => {
  const src = new Uint8Array(100).fill(1);
  const dst = new Uint8Array(50);
  for (const [dOff, sOff, n] of [[45, 0, 10], [0, 95, 10], [-1, 0, 4], [0, -1, 4]]) {
    assertThrows(() => copyBytes(dst, viewOf(dst), dOff, src, viewOf(src), sOff, n), RangeError);
    assertEquals(dst.every((b) => b === 0), true);
  }
});

Deno.test("ViewCache gives an array back the view it made for it, after other arrays", () => {
  const a = new Uint8Array(new ArrayBuffer(32), 8, 16);
  const b = new Uint8Array(16);
  const views = new ViewCache();
  const first = views.of(a);
  assertEquals([first.byteOffset, first.byteLength], [8, 16]);
  assertEquals(first.buffer === a.buffer, true);
  const other = views.of(b);
  assertEquals(other.buffer === b.buffer, true);
  // a poller round switches between connections' buffers: each keeps its one view
  assertEquals(views.of(a) === first, true);
  assertEquals(new ViewCache().of(b) === other, true);
});

Deno.test("values of every length 0–400 round-trip, two connections interleaved", async () => {
  const memg = startMemg();
  const a = await RawClient.connect(memg.port);
  const b = await RawClient.connect(memg.port);
  try {
    for (let n = 0; n <= 400; n++) {
      const [c, other] = n % 2 === 0 ? [a, b] : [b, a];
      let value = "";
      for (let i = 0; i < n; i++) value += String.fromCharCode(33 + ((i * 13 + n) % 90));
      const key = `k${"x".repeat(n % 240)}${n}`;
      assertEquals(await c.call(`set ${key} ${n} 0 ${n}\r\n${value}\r\n`), "STORED\r\n");
      assertEquals(
        await other.call(`get ${key}\r\n`, "END\r\n"),
        `VALUE ${key} ${n} ${n}\r\n${value}\r\nEND\r\n`,
      );
    }
  } finally {
    a.close();
    b.close();
    await memg.close();
  }
});
