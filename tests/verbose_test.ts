/** `-v` / `-vv`: what memg prints to stderr at each level. */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { spawnMemg } from "./helpers/server.ts";

/** Runs one set and one get against memg started with `flags`; returns its stderr. */
async function traced(flags: string[]): Promise<string> {
  const memg = await spawnMemg(flags);
  const c = await RawClient.connect(memg.port);
  assertEquals(
    await c.call("set a 0 0 1\r\nx\r\nget a\r\n", "END\r\n"),
    "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
  );
  c.close();
  await new Promise((r) => setTimeout(r, 100));
  assertEquals((await memg.stop("SIGTERM")).code, 0);
  return memg.stderr.join("");
}

Deno.test("-vv traces each request and reply batch, escaped, and connection closes", async () => {
  const err = await traced(["-vv"]);
  assertStringIncludes(err, "<0 set a 0 0 1\\r\\nx\\r\\nget a\\r\\n");
  assertStringIncludes(err, ">0 STORED\\r\\nVALUE a 0 1\\r\\nx\\r\\nEND\\r\\n");
  assertStringIncludes(err, "<0 connection closed.");
});

Deno.test("without -v nothing is traced", async () => {
  const err = await traced([]);
  assert(!err.includes("<0 "), err);
});
