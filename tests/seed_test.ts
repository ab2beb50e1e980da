/** The seed's telnet transcript, against a real memg over a real socket. */
import { assertEquals } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { spawnMemg, startMemg } from "./helpers/server.ts";

Deno.test("seed transcript: set greeting then get it back", async () => {
  const memg = startMemg();
  const c = await RawClient.connect(memg.port);
  try {
    assertEquals(await c.call("set greeting 0 0 11\r\nHello World\r\n"), "STORED\r\n");
    assertEquals(
      await c.call("get greeting\r\n", "END\r\n"),
      "VALUE greeting 0 11\r\nHello World\r\nEND\r\n",
    );
  } finally {
    c.close();
    await memg.close();
  }
});

Deno.test("deno task start's main.ts prints the port it picked for -p 0 and exits 0 on SIGTERM", async () => {
  const memg = await spawnMemg();
  const c = await RawClient.connect(memg.port);
  assertEquals(await c.call("version\r\n"), "VERSION 1.6.18-memg-0.1.0\r\n");
  c.close();
  const status = await memg.stop("SIGTERM");
  assertEquals(status.code, 0);
});
