/**
 * Interoperability with memjs, a pure JavaScript client that speaks only the binary protocol
 * (and authenticates with SASL PLAIN), against memg over real sockets.
 */
import memjs from "npm:memjs@1";
import { assert, assertEquals, assertRejects } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { type InProcessMemg, startMemg } from "./helpers/server.ts";

/** The parts of memjs's client these tests use (memjs ships no types). */
interface MemjsClient {
  set(key: string, value: string, options: { expires?: number }): Promise<boolean>;
  get(key: string): Promise<{ value: Uint8Array | null; flags: Uint8Array | null }>;
  add(key: string, value: string, options: { expires?: number }): Promise<boolean>;
  replace(key: string, value: string, options: { expires?: number }): Promise<boolean>;
  delete(key: string): Promise<boolean>;
  increment(
    key: string,
    amount: number,
    options: { initial?: number; expires?: number },
  ): Promise<{ success: boolean; value: number | null }>;
  decrement(
    key: string,
    amount: number,
    options: { initial?: number; expires?: number },
  ): Promise<{ success: boolean; value: number | null }>;
  append(key: string, value: string): Promise<boolean>;
  prepend(key: string, value: string): Promise<boolean>;
  touch(key: string, expires: number): Promise<boolean>;
  flush(): Promise<Record<string, boolean>>;
  stats(callback: (err: Error | null, server: string, stats: Record<string, string>) => void): void;
  close(): void;
}

function client(port: number, auth: { username?: string; password?: string } = {}): MemjsClient {
  return memjs.Client.create(`127.0.0.1:${port}`, {
    retries: 0,
    timeout: 2,
    logger: { log: () => {} },
    ...auth,
  }) as MemjsClient;
}

const text = (b: Uint8Array | null) => b === null ? null : new TextDecoder().decode(b);

async function withMemjs(
  args: string[],
  fn: (c: MemjsClient, memg: InProcessMemg, clock: { t: number }) => Promise<void>,
  auth: { username?: string; password?: string } = {},
): Promise<void> {
  const clock = { t: 1_700_000_000 };
  const memg = startMemg(args, { now: () => clock.t });
  const c = client(memg.port, auth);
  try {
    await fn(c, memg, clock);
  } finally {
    c.close();
    await memg.close();
  }
}

Deno.test("memjs: every command it has, against memg", async (t) => {
  await withMemjs([], async (c, memg, clock) => {
    await t.step("set, get, add, replace, delete", async () => {
      assertEquals(await c.set("k", "hello", {}), true);
      const got = await c.get("k");
      assertEquals([text(got.value), Array.from(got.flags!)], ["hello", [0, 0, 0, 0]]);
      assertEquals((await c.get("missing")).value, null);
      assertEquals(await c.add("k", "x", {}), false);
      assertEquals(await c.add("new", "x", {}), true);
      assertEquals(await c.replace("absent", "x", {}), false);
      assertEquals(await c.replace("k", "world", {}), true);
      assertEquals(text((await c.get("k")).value), "world");
      assertEquals(await c.delete("k"), true);
      assertEquals(await c.delete("k"), false);
    });
    await t.step("increment and decrement, with an initial value", async () => {
      assertEquals(await c.increment("n", 5, { initial: 10 }), { success: true, value: 10 });
      assertEquals(await c.increment("n", 5, {}), { success: true, value: 15 });
      assertEquals(await c.decrement("n", 100, {}), { success: true, value: 0 });
      assertEquals(text((await c.get("n")).value), "0 ");
    });
    await t.step("append, touch and expiry", async () => {
      await c.set("s", "mid", { expires: 10 });
      assertEquals(await c.append("s", ">"), true);
      // memjs 1.3.2's prepend sends the append opcode (0x0e), so it appends too
      assertEquals(await c.prepend("s", "!"), true);
      await assertRejects(() => c.append("absent", "x"), Error, "Item not stored");
      assertEquals(text((await c.get("s")).value), "mid>!");
      assertEquals(await c.touch("s", 100), true);
      assertEquals(await c.touch("absent", 100), false);
      clock.t += 50;
      assertEquals(text((await c.get("s")).value), "mid>!");
      clock.t += 51;
      assertEquals((await c.get("s")).value, null);
    });
    await t.step("stats and flush", async () => {
      const stats = await new Promise<Record<string, string>>((resolve, reject) =>
        c.stats((err, _server, s) => err === null ? resolve(s) : reject(err))
      );
      assert(Number(stats.cmd_get) > 0, JSON.stringify(stats));
      await c.set("f", "1", {});
      assertEquals(Object.values(await c.flush()), [true]);
      assertEquals((await c.get("f")).value, null);
    });
    await t.step("what memjs stores, the text protocol reads", async () => {
      await c.set("shared", "from memjs", {});
      const raw = await RawClient.connect(memg.port);
      try {
        assertEquals(
          await raw.call("get shared\r\n", "END\r\n"),
          "VALUE shared 0 10\r\nfrom memjs\r\nEND\r\n",
        );
      } finally {
        raw.close();
      }
    });
  });
});

Deno.test("memjs: SASL PLAIN against memg -S", async (t) => {
  const pwdb = Deno.makeTempFileSync({ prefix: "memg-memjs-" });
  Deno.writeTextFileSync(pwdb, "alice:wonder\n");
  try {
    await t.step("the right password: memjs authenticates and works", async () => {
      await withMemjs(["-S", "--sasl-pwdb", pwdb], async (c, memg) => {
        assertEquals(await c.set("k", "v", {}), true);
        assertEquals(text((await c.get("k")).value), "v");
        assertEquals(memg.server.cache.counters.auth_cmds, 1);
      }, { username: "alice", password: "wonder" });
    });
    await t.step("a wrong password: memjs reports the authentication failure", async () => {
      await withMemjs(["-S", "--sasl-pwdb", pwdb], async (c, memg) => {
        // memjs rejects with its message as a plain string
        const failure = await c.set("k", "v", {}).then(() => "stored", (e) => String(e));
        assertEquals(failure, "Memcached server authentication failed!");
        assertEquals(memg.server.cache.counters.auth_errors, 1);
      }, { username: "alice", password: "nope" });
    });
  } finally {
    Deno.removeSync(pwdb);
  }
});
