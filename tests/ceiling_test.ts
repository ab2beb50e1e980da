/**
 * The benchmark's ceiling (`bench/ceiling.ts`), in each of its three I/O modes, answers what it
 * reads and nothing else: (2)'s gap and (4)'s bare row are only as good as this baseline.
 * - a pipeline of 3,000 gets and sets in one write gets every reply, in order;
 * - the same commands a byte per write get the same replies (lines and data blocks split
 *   anywhere, short reads of the bare loop followed by more input);
 * - a short line sent after a longer one, in two writes, is answered for its own key: the bytes
 *   the longer one left beyond the data (with their LF) are not read as part of it.
 *
 * @module
 */
import { assertEquals } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { freePort, spawnServer, type TestServer } from "./helpers/server.ts";

const VALUE_SIZE = 10;
const MODES = ["epoll", "deno", "bare"] as const;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function hit(key: string): string {
  return `VALUE ${key} 0 ${VALUE_SIZE}\r\n${"x".repeat(VALUE_SIZE)}\r\nEND\r\n`;
}

/** The i-th command of a test stream and the ceiling's reply to it. */
function exchange(i: number): [string, string] {
  if (i % 11 === 0) {
    const data = `v${i}`.padEnd(7 + (i % 5), "d");
    return [`set k:${i} 0 0 ${data.length}\r\n${data}\r\n`, "STORED\r\n"];
  }
  return [`get k:${i}\r\n`, hit(`k:${i}`)];
}

function startCeiling(mode: string): Promise<TestServer> {
  const port = freePort();
  const args = ["run", "-A", "bench/ceiling.ts", String(port), String(VALUE_SIZE), mode];
  return spawnServer(Deno.execPath(), args, port);
}

for (const mode of MODES) {
  Deno.test(`the ceiling (${mode}) answers what it reads and nothing else`, async (t) => {
    const ceiling = await startCeiling(mode);
    try {
      await t.step("3,000 pipelined commands in one write, every reply in order", async () => {
        const c = await RawClient.connect(ceiling.port);
        const pairs = Array.from({ length: 3000 }, (_, i) => exchange(i));
        await c.send(pairs.map(([req]) => req).join(""));
        const want = pairs.map(([, rep]) => rep).join("");
        assertEquals(new TextDecoder().decode(await c.readBytes(want.length)), want);
        c.close();
      });

      await t.step("the same commands a byte per write", async () => {
        const c = await RawClient.connect(ceiling.port);
        const pairs = Array.from({ length: 23 }, (_, i) => exchange(i));
        for (const byte of new TextEncoder().encode(pairs.map(([req]) => req).join(""))) {
          await c.send(new Uint8Array([byte]));
        }
        const want = pairs.map(([, rep]) => rep).join("");
        assertEquals(new TextDecoder().decode(await c.readBytes(want.length)), want);
        c.close();
      });

      await t.step("a short line after a longer one is read up to its own end", async () => {
        const c = await RawClient.connect(ceiling.port);
        const long = `get ${"l".repeat(200)}\r\n`;
        assertEquals(await c.call(long, "END\r\n"), hit("l".repeat(200)));
        await c.send("get ab");
        await sleep(30); // the first part is read alone; its buffer still holds the long line
        assertEquals(await c.call("c\r\n", "END\r\n"), hit("abc"));
        c.close();
      });
    } finally {
      await ceiling.close();
    }
  });
}
