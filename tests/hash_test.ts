/**
 * The slab store's key hash: murmur3's 32-bit hash, checked against its published values, at
 * any offset of a buffer and for every tail length.
 */
import { assertEquals, assertNotEquals } from "./helpers/assert.ts";
import { hashBytes } from "../lib/store/hash.ts";

const enc = new TextEncoder();

Deno.test("hashBytes is murmur3_32 with seed 0, wherever the key lies in the buffer", () => {
  const vectors: Array<[string, number]> = [
    ["", 0],
    ["a", 0x3c2569b2],
    ["abc", 0xb3dd93fa],
    ["hello", 0x248bfa47],
    ["Hello, world!", 0xc0363e43],
    ["The quick brown fox jumps over the lazy dog", 0x2e4ff723],
  ];
  for (const [key, want] of vectors) {
    for (let pad = 0; pad < 4; pad++) {
      const buf = enc.encode(`${"#".repeat(pad)}${key}!!!`);
      assertEquals(hashBytes(buf, pad, key.length) >>> 0, want, `${JSON.stringify(key)} at ${pad}`);
    }
  }
});

Deno.test("hashBytes reads only the key's bytes and tells apart keys one byte apart", () => {
  for (let len = 1; len <= 12; len++) {
    const key = enc.encode("k".repeat(len));
    const a = new Uint8Array(len + 8).fill(1);
    const b = new Uint8Array(len + 8).fill(2);
    a.set(key, 4);
    b.set(key, 4);
    assertEquals(hashBytes(a, 4, len), hashBytes(b, 4, len), `bytes around a ${len}-byte key`);
    for (let i = 0; i < len; i++) {
      const c = a.slice();
      c[4 + i] ^= 1;
      assertNotEquals(hashBytes(c, 4, len), hashBytes(a, 4, len), `byte ${i} of ${len}`);
    }
  }
});
