/**
 * The server loop over real sockets: deep pipelines in one write, a client that writes one byte
 * at a time, clients that vanish mid-value, binary-safe values, the `-c` connection limit,
 * signals, `--single`, the start-up line for `-p 0`, unix sockets (`-s`) and `-l host:port`.
 *
 * @module
 */
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { latin1, RawClient } from "./helpers/client.ts";
import { freePort, spawnMemg, startMemg } from "./helpers/server.ts";
import { stat, statBecomes } from "./helpers/stats.ts";

const dec = new TextDecoder("latin1");

Deno.test("5,000 sets and gets pipelined in one write are all answered, in order", async () => {
  const memg = startMemg();
  const c = await RawClient.connect(memg.port);
  try {
    let request = "";
    let expected = "";
    for (let i = 0; i < 5000; i++) {
      const value = `value-${i}-${"x".repeat(i % 50)}`;
      request += `set key:${i} ${i} 0 ${value.length}\r\n${value}\r\nget key:${i}\r\n`;
      expected += `STORED\r\nVALUE key:${i} ${i} ${value.length}\r\n${value}\r\nEND\r\n`;
    }
    await c.send(request);
    const got = dec.decode(await c.readBytes(expected.length, 10000));
    assertEquals(got.length, expected.length);
    assert(got === expected, "replies differ from the expected sequence");
    assertEquals(await stat(c, "cmd_set"), 5000);
    assertEquals(await stat(c, "get_hits"), 5000);
  } finally {
    c.close();
    await memg.close();
  }
});

Deno.test("a client writing one byte at a time gets a whole session answered", async () => {
  const memg = startMemg();
  const c = await RawClient.connect(memg.port);
  try {
    const session = "set a 5 0 3\r\nabc\r\nget a\r\nincr n 1\r\nset n 0 0 1\r\n7\r\n" +
      "incr n 5\r\nappend a 0 0 2\r\nde\r\ngets a\r\ndelete a\r\nget a n\r\nversion\r\n";
    for (let i = 0; i < session.length; i++) await c.send(session[i]);
    let reply = "";
    for (let i = 0; i < 30 && !reply.includes("VERSION "); i++) {
      reply += await c.readLine() + "\r\n";
    }
    assertMatch(
      reply,
      new RegExp(
        "^STORED\r\nVALUE a 5 3\r\nabc\r\nEND\r\nNOT_FOUND\r\nSTORED\r\n12\r\nSTORED\r\n" +
          "VALUE a 5 5 \\d+\r\nabcde\r\nEND\r\nDELETED\r\nVALUE n 0 2\r\n12\r\nEND\r\n" +
          "VERSION 1\\.6\\.18\\S*\r\n$",
      ),
    );
  } finally {
    c.close();
    await memg.close();
  }
});

Deno.test("a client that disconnects in the middle of a value", async (t) => {
  const memg = startMemg();
  const other = await RawClient.connect(memg.port);
  try {
    const baseline = await stat(other, "curr_connections");
    assertEquals(baseline, 1);
    for (
      const [what, bytes] of [
        ["inside the value", "set half 0 0 100\r\n" + "v".repeat(50)],
        ["before the trailer", "set half 0 0 4\r\nvvvv"],
        ["inside the command line", "set half 0 0"],
        ["inside a value too large to store", `set half 0 0 ${2 * 1024 * 1024}\r\nvvv`],
      ] as const
    ) {
      await t.step(what, async () => {
        const gone = await RawClient.connect(memg.port);
        await gone.send(bytes);
        await statBecomes(other, "curr_connections", baseline + 1);
        gone.close();
        await statBecomes(other, "curr_connections", baseline);
        assertEquals(await other.call("get half\r\n", "END\r\n"), "END\r\n");
        assertEquals(await other.call("set ok 0 0 2\r\nok\r\n"), "STORED\r\n");
        assertEquals(await other.call("get ok\r\n", "END\r\n"), "VALUE ok 0 2\r\nok\r\nEND\r\n");
      });
    }
    assertEquals(await stat(other, "curr_items"), 1);
  } finally {
    other.close();
    await memg.close();
  }
});

Deno.test("values are binary safe: CR LF inside, and every byte value", async () => {
  const memg = startMemg();
  const c = await RawClient.connect(memg.port);
  try {
    const all = new Uint8Array(512);
    for (let i = 0; i < 512; i++) all[i] = i % 256;
    const tricky = latin1("line one\r\nEND\r\nVALUE x 0 1\r\n\r\n");
    for (const [key, value] of [["all", all], ["crlf", tricky]] as const) {
      const head = latin1(`set ${key} 0 0 ${value.length}\r\n`);
      const req = new Uint8Array(head.length + value.length + 2);
      req.set(head);
      req.set(value, head.length);
      req.set(latin1("\r\n"), head.length + value.length);
      await c.send(req);
      assertEquals(await c.readLine(), "STORED");
      await c.send(`get ${key}\r\n`);
      assertEquals(await c.readLine(), `VALUE ${key} 0 ${value.length}`);
      assertEquals(await c.readBytes(value.length), value);
      assertEquals(dec.decode(await c.readBytes(7)), "\r\nEND\r\n");
    }
  } finally {
    c.close();
    await memg.close();
  }
});

Deno.test("hundreds of keys in one get: hits in order, misses skipped", async () => {
  const memg = startMemg();
  const c = await RawClient.connect(memg.port);
  try {
    let sets = "";
    for (let i = 0; i < 400; i += 2) sets += `set key${i} ${i} 0 ${String(i).length}\r\n${i}\r\n`;
    await c.send(sets);
    for (let i = 0; i < 200; i++) assertEquals(await c.readLine(), "STORED");
    const keys = Array.from({ length: 400 }, (_, i) => `key${i}`);
    let expected = "";
    for (let i = 0; i < 400; i += 2) {
      expected += `VALUE key${i} ${i} ${String(i).length}\r\n${i}\r\n`;
    }
    assertEquals(await c.call(`get ${keys.join(" ")}\r\n`, "END\r\n"), expected + "END\r\n");
    assertEquals(await stat(c, "get_misses"), 200);
  } finally {
    c.close();
    await memg.close();
  }
});

Deno.test("-c: a connection over the limit gets memcached's error and is closed", async () => {
  const memg = startMemg(["-c", "2"]);
  const a = await RawClient.connect(memg.port);
  const b = await RawClient.connect(memg.port);
  try {
    assertMatch(await a.call("version\r\n"), /^VERSION /);
    assertMatch(await b.call("version\r\n"), /^VERSION /);
    const over = await RawClient.connect(memg.port);
    try {
      assertEquals(await over.readLine(), "ERROR Too many open connections");
      assert(await over.closedByServer(), "the refused connection stayed open");
    } finally {
      over.close();
    }
    assertEquals(await a.call("set k 0 0 1\r\nx\r\n"), "STORED\r\n");
    assertEquals(await stat(a, "rejected_connections"), 1);
    assertEquals(await stat(a, "max_connections"), 2);
    b.close();
    await statBecomes(a, "curr_connections", 1);
    const again = await RawClient.connect(memg.port);
    try {
      assertEquals(await again.call("get k\r\n", "END\r\n"), "VALUE k 0 1\r\nx\r\nEND\r\n");
    } finally {
      again.close();
    }
  } finally {
    a.close();
    b.close();
    await memg.close();
  }
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.test(`${signal}: stop accepting, finish what was read, exit 0`, async () => {
    const memg = await spawnMemg();
    const c = await RawClient.connect(memg.port);
    try {
      assertEquals(await c.call("set k 0 0 1\r\nx\r\n"), "STORED\r\n");
      // a deep pipeline, then the signal: every reply sent is whole, in order
      let request = "";
      let expected = "";
      for (let i = 0; i < 2000; i++) {
        request += `set p${i} 0 0 1\r\n${i % 10}\r\nget p${i}\r\n`;
        expected += `STORED\r\nVALUE p${i} 0 1\r\n${i % 10}\r\nEND\r\n`;
      }
      await c.send(request);
      assertEquals(await c.readLine(), "STORED"); // the server is working on the pipeline
      const status = await memg.stop(signal);
      assertEquals(status.code, 0);
      await c.closedByServer(3000);
      const got = "STORED\r\n" + c.text();
      assert(expected.startsWith(got), "a reply was cut or reordered");
      assert(got.endsWith("END\r\n") || got.endsWith("STORED\r\n"), "the last reply is partial");
      let refused = false;
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: memg.port })).close();
      } catch {
        refused = true;
      }
      assert(refused, "still accepting after exit");
    } finally {
      c.close();
      await memg.close();
    }
  });
}

Deno.test("--single: the server exits 0 after its first connection closes", async () => {
  const memg = await spawnMemg(["--single"]);
  try {
    const c = await RawClient.connect(memg.port);
    assertEquals(await c.call("set greeting 0 0 11\r\nHello World\r\n"), "STORED\r\n");
    assertEquals(
      await c.call("get greeting\r\n", "END\r\n"),
      "VALUE greeting 0 11\r\nHello World\r\nEND\r\n",
    );
    c.close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((r) => timer = setTimeout(() => r(null), 5000));
    const status = await Promise.race([memg.process.status, timeout]);
    clearTimeout(timer);
    assert(status !== null, "still running 5 s after the connection closed");
    assertEquals(status.code, 0);
  } finally {
    await memg.close();
  }
});

Deno.test("-p 0: the start-up line gives the port that was picked", async () => {
  const memg = await spawnMemg(["-l", "127.0.0.1"]);
  try {
    const m = /^memg \S+ listening on tcp:127\.0\.0\.1:(\d+)$/.exec(
      memg.stdout.find((l) => l.includes("listening on")) ?? "",
    );
    assert(m !== null, `no start-up line in ${JSON.stringify(memg.stdout)}`);
    const port = Number(m[1]);
    assert(port > 0 && port !== 11211, `port ${port}`);
    const c = await RawClient.connect(port);
    assertMatch(await c.call("version\r\n"), /^VERSION 1\.6\.18/);
    c.close();
    assertEquals((await memg.stop()).code, 0);
  } finally {
    await memg.close();
  }
});

Deno.test("-s PATH: serves a unix socket and removes it on exit", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/memg.sock`;
  const memg = await spawnMemg(["-s", path, "-a", "600"]);
  try {
    assert(memg.stdout.some((l) => l.endsWith(`listening on unix:${path}`)), memg.stdout.join());
    assertEquals((await Deno.stat(path)).mode! & 0o777, 0o600);
    const conn = await Deno.connect({ transport: "unix", path });
    try {
      const ask = async (s: string, end: string) => {
        let off = 0;
        const b = latin1(s);
        while (off < b.length) off += await conn.write(b.subarray(off));
        let got = "";
        const buf = new Uint8Array(4096);
        while (!got.endsWith(end)) {
          const n = await conn.read(buf);
          if (n === null) break;
          got += dec.decode(buf.subarray(0, n));
        }
        return got;
      };
      assertEquals(await ask("set u 0 0 4\r\nunix\r\n", "\r\n"), "STORED\r\n");
      assertEquals(await ask("get u\r\n", "END\r\n"), "VALUE u 0 4\r\nunix\r\nEND\r\n");
    } finally {
      conn.close();
    }
    assertEquals((await memg.stop()).code, 0);
    let exists = true;
    try {
      await Deno.stat(path);
    } catch {
      exists = false;
    }
    assert(!exists, "the socket file was left behind");
  } finally {
    await memg.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("-l host:port listens on each given address and port", async () => {
  const p1 = freePort();
  const p2 = freePort();
  const memg = startMemg(["-l", `127.0.0.1:${p1}`, "-l", `127.0.0.1:${p2}`]);
  try {
    assertEquals(memg.port, p1);
    for (const port of [p1, p2]) {
      const c = await RawClient.connect(port);
      assertEquals(await c.call(`set p${port} 0 0 1\r\nx\r\n`), "STORED\r\n");
      c.close();
    }
    const c = await RawClient.connect(p2);
    assertEquals(
      await c.call(`get p${p1} p${p2}\r\n`, "END\r\n"),
      `VALUE p${p1} 0 1\r\nx\r\nVALUE p${p2} 0 1\r\nx\r\nEND\r\n`,
    );
    c.close();
  } finally {
    await memg.close();
  }
});

Deno.test("an idle server finishes doubling its hash index in seconds, not backing off", async () => {
  const memg = startMemg();
  const c = await RawClient.connect(memg.port);
  try {
    // Idle first, so that sweeps have spaced themselves out (1.6 s apart) when the doubling
    // starts: 49,153 items are one past 0.75 of 65,536 buckets, and no later set moves any.
    await new Promise((r) => setTimeout(r, 2000));
    let request = "";
    for (let i = 0; i <= 49_152; i++) request += `set k:${i} 0 0 1 noreply\r\nx\r\n`;
    await c.send(request);
    assertEquals(await stat(c, "curr_items"), 49_153);
    assertEquals(await stat(c, "hash_is_expanding"), 1);
    const start = performance.now();
    let expanding = 1;
    while (expanding === 1 && performance.now() - start < 12_000) {
      await new Promise((r) => setTimeout(r, 100));
      expanding = await stat(c, "hash_is_expanding");
    }
    // Spaced-out sweeps of 4,096 buckets each took 25 s; sweeps on every tick, a few.
    assertEquals(expanding, 0, "still doubling after 12 s");
    assertEquals(await stat(c, "hash_power_level"), 17);
    assertEquals(
      await c.call("get k:0 k:49152\r\n", "END\r\n"),
      "VALUE k:0 0 1\r\nx\r\nVALUE k:49152 0 1\r\nx\r\nEND\r\n",
    );
  } finally {
    c.close();
    await memg.close();
  }
});

Deno.test("expired items are reclaimed in the background, never read, after idle sweeps", async () => {
  const memg = startMemg();
  const c = await RawClient.connect(memg.port);
  try {
    // Idle first: sweeps that find nothing space themselves out (up to 1.6 s apart).
    await new Promise((r) => setTimeout(r, 2000));
    let request = "";
    for (let i = 0; i < 50; i++) request += `set mortal:${i} 0 1 1 noreply\r\nx\r\n`;
    for (let i = 0; i < 50; i++) request += `set forever:${i} 0 0 1 noreply\r\nx\r\n`;
    await c.send(request);
    assertEquals(await stat(c, "curr_items"), 100);
    let items = 100;
    for (let i = 0; i < 80 && items !== 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      items = await stat(c, "curr_items");
    }
    assertEquals(items, 50, "the 50 items with a 1 s exptime were not swept within 8 s");
    const rows = await c.call("stats items\r\n", "END\r\n");
    const reclaimed = [...rows.matchAll(/^STAT items:\d+:crawler_reclaimed (\d+)\r$/gm)]
      .reduce((sum, m) => sum + Number(m[1]), 0);
    assertEquals(reclaimed, 50);
    assertEquals(await stat(c, "get_expired"), 0);
  } finally {
    c.close();
    await memg.close();
  }
});
