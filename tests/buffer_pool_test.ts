/**
 * The shared pool of connection buffers (`lib/buffer_pool.ts`): idle connections give their
 * read and reply buffers back, and a connection in the middle of a command or of a reply keeps
 * its own while the others take and return buffers around it.
 */
import { assert, assertEquals, assertGreaterOrEqual } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { startMemg } from "./helpers/server.ts";
import { pooledBuffers } from "../lib/buffer_pool.ts";

/** `n` rounds of set and get of values unique to `tag` on `c`, each reply checked. */
async function churn(c: RawClient, tag: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const value = `${tag}-${i}-${"v".repeat(i % 40)}`;
    assertEquals(await c.call(`set ${tag} 0 0 ${value.length}\r\n${value}\r\n`), "STORED\r\n");
    assertEquals(
      await c.call(`get ${tag}\r\n`, "END\r\n"),
      `VALUE ${tag} 0 ${value.length}\r\n${value}\r\nEND\r\n`,
    );
  }
}

Deno.test("buffer pool: idle connections give their buffers back", async () => {
  const memg = startMemg();
  const clients: RawClient[] = [];
  try {
    if (memg.server.cache.connections.io !== "epoll") {
      console.log("buffer pool: SKIPPED — the epoll engine is not in use here");
      return;
    }
    for (let i = 0; i < 60; i++) clients.push(await RawClient.connect(memg.port));
    for (const [i, c] of clients.entries()) await churn(c, `idle${i}`, 2);
    // 60 idle connections, each having given back its read and its reply buffer
    assertGreaterOrEqual(pooledBuffers(), 120);
  } finally {
    for (const c of clients) c.close();
    await memg.close();
  }
});

Deno.test("buffer pool: a half-received command keeps its bytes while others churn", async () => {
  const memg = startMemg();
  const others: RawClient[] = [];
  const value = await RawClient.connect(memg.port);
  const line = await RawClient.connect(memg.port);
  try {
    assertEquals(await line.call("set partial 0 0 3\r\nabc\r\n"), "STORED\r\n");
    await value.send("set half 0 0 10\r\nhello"); // the value's first half
    await line.send("get par"); // half a line
    for (let i = 0; i < 20; i++) others.push(await RawClient.connect(memg.port));
    await Promise.all(others.map((c, i) => churn(c, `churn${i}`, 30)));
    assertEquals(await value.call("world\r\n"), "STORED\r\n");
    assertEquals(await line.call("tial\r\n", "END\r\n"), "VALUE partial 0 3\r\nabc\r\nEND\r\n");
    assertEquals(
      await value.call("get half\r\n", "END\r\n"),
      "VALUE half 0 10\r\nhelloworld\r\nEND\r\n",
    );
  } finally {
    for (const c of [...others, value, line]) c.close();
    await memg.close();
  }
});

Deno.test("buffer pool: replies held back by a full socket survive others' churn", async () => {
  const memg = startMemg();
  const others: RawClient[] = [];
  const slow = await RawClient.connect(memg.port);
  try {
    const value = "x".repeat(1000);
    assertEquals(await slow.call(`set big 0 0 ${value.length}\r\n${value}\r\n`), "STORED\r\n");
    // 4,000 replies of 1 KiB (4 MB) asked for at once and not read yet: the socket fills and
    // memg keeps the rest in the connection's reply buffer
    const gets = 4000;
    await slow.send("get big\r\n".repeat(gets));
    for (let i = 0; i < 10; i++) others.push(await RawClient.connect(memg.port));
    await Promise.all(others.map((c, i) => churn(c, `other${i}`, 30)));
    const one = `VALUE big 0 ${value.length}\r\n${value}\r\nEND\r\n`;
    const got = await slow.readBytes(one.length * gets, 20_000);
    const text = new TextDecoder().decode(got);
    assert(text === one.repeat(gets), "the held-back replies came back whole and in order");
  } finally {
    for (const c of [...others, slow]) c.close();
    await memg.close();
  }
});
