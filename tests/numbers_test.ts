import { assertEquals } from "@std/assert";
import { parseI32 } from "../lib/protocol/numbers.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

/** What memcached 1.6.18 stores: strtol's 64-bit long, truncated to an int32 (null: ERANGE). */
function strtolInt32(digits: string, negative: boolean): number | null {
  const v = BigInt(digits) * (negative ? -1n : 1n);
  if (v < -(1n << 63n) || v > (1n << 63n) - 1n) return null;
  return Number(BigInt.asIntN(32, v));
}

Deno.test("parseI32 reads plain digits as strtol does, truncated to 32 bits, up to 2^63 - 1", () => {
  const samples = [
    "0",
    "007",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967297",
    "999999999999999", // 15 digits: the fast path's last length
    "1000000000000000", // 16 digits: the general path
    "9223372036854775807",
    "9223372036854775808", // beyond a long: refused
  ];
  for (const s of samples) {
    for (const sign of ["", "-", " ", "+"]) {
      const b = bytes(sign + s);
      assertEquals(parseI32(b, 0, b.length), strtolInt32(s, sign === "-"), sign + s);
    }
  }
  const bad = bytes("12x");
  assertEquals(parseI32(bad, 0, bad.length), null);
});
