/**
 * Reading `stats` over a test client.
 *
 * @module
 */
import { assert, assertEquals } from "./assert.ts";
import type { RawClient } from "./client.ts";

/** One number from `stats`. */
export async function stat(c: RawClient, name: string): Promise<number> {
  const rows = await c.call("stats\r\n", "END\r\n");
  const m = new RegExp(`^STAT ${name} (\\d+)\r$`, "m").exec(rows);
  assert(m !== null, `no STAT ${name}`);
  return Number(m[1]);
}

/** Polls `stats` (100 times at most, 20 ms apart) until `name` equals `want`. */
export async function statBecomes(c: RawClient, name: string, want: number): Promise<void> {
  let last = -1;
  for (let i = 0; i < 100; i++) {
    last = await stat(c, name);
    if (last === want) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assertEquals(last, want, `STAT ${name}`);
}
