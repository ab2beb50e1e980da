/**
 * Shutting down under load: SIGTERM, SIGINT, the `shutdown` command and `shutdown graceful`
 * (both with `-A`) each end memg with exit code 0 within a bounded time, and every client
 * reading its replies receives only whole replies: whatever memg started to send (a 200 KB
 * `VALUE` block, say) arrives in full before the connection closes.
 */
import { assert, assertEquals, assertGreater, assertLess } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { type ChildMemg, spawnMemg } from "./helpers/server.ts";
import { concat, textRepliesProblem } from "../bench/fuzz.ts";

const CLIENTS = 8;
const BIG = 200 * 1024;
/**
 * memg aborts what is left 5 s after shutdown begins, and gives a client up to 3 s after its
 * last reply to close. Runs take 1–3 s; on a loaded machine (tests in parallel with a fuzzer on the
 * other core) one `shutdown graceful` run took 10.5 s, so the bound is generous: it still
 * catches a shutdown that hangs.
 */
const EXIT_WITHIN_MS = 20000;
const enc = new TextEncoder();

async function writeAll(conn: Deno.Conn, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += await conn.write(b.subarray(off));
}

/** What one loaded client received until memg closed its connection. */
interface Received {
  bytes: Uint8Array;
  /** Complete `VALUE` blocks among them. */
  values: number;
}

/**
 * A client that pipelines gets of two large values and sets of a large value as fast as memg
 * answers, reading everything, until memg closes the connection (or 2,000 batches).
 * `started` resolves once it has received its first reply.
 */
function loadClient(port: number, id: number, started: () => void): Promise<Received> {
  const value = "v".repeat(BIG);
  const batch = enc.encode(
    `get big0 big1\r\nset mine${id} 0 0 ${BIG}\r\n${value}\r\nget mine${id}\r\n`.repeat(4),
  );
  return (async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const chunks: Uint8Array[] = [];
    let done = false;
    const writer = (async () => {
      try {
        for (let i = 0; i < 2000 && !done; i++) await writeAll(conn, batch);
      } catch {
        // memg closed the connection while we were writing
      }
    })();
    const buf = new Uint8Array(256 * 1024);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      if (chunks.length === 0) started();
      chunks.push(buf.slice(0, n));
    }
    done = true;
    conn.close();
    await writer;
    const bytes = concat(chunks);
    const text = new TextDecoder("latin1").decode(bytes);
    return { bytes, values: text.split("VALUE ").length - 1 };
  })();
}

/**
 * Loads a fresh memg (`-A`) with `CLIENTS` clients, calls `stop` once each has received a
 * reply, and checks the exit code, the time to exit and that every client got whole replies.
 */
async function shutdownUnderLoad(stop: (memg: ChildMemg) => Promise<void>): Promise<void> {
  const memg = await spawnMemg(["-A", "-m", "64"]);
  try {
    const setup = await RawClient.connect(memg.port);
    const value = "b".repeat(BIG);
    for (const key of ["big0", "big1"]) {
      assertEquals(await setup.call(`set ${key} 0 0 ${BIG}\r\n${value}\r\n`), "STORED\r\n");
    }
    setup.close();
    let running = 0;
    let allStarted!: () => void;
    const started = new Promise<void>((resolve) => allStarted = resolve);
    const clients = Array.from({ length: CLIENTS }, (_, id) =>
      loadClient(memg.port, id, () => {
        if (++running === CLIENTS) allStarted();
      }));
    await started;
    const t0 = Date.now();
    await stop(memg);
    const status = await memg.process.status;
    const elapsed = Date.now() - t0;
    assertEquals(status.code, 0);
    assertLess(elapsed, EXIT_WITHIN_MS, `memg took ${elapsed} ms to exit`);
    for (const [id, got] of (await Promise.all(clients)).entries()) {
      assertEquals(textRepliesProblem(got.bytes), null, `client ${id} got a cut reply`);
      assertGreater(got.values, 0, `client ${id} got no value before the shutdown`);
    }
    let refused = false;
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port: memg.port })).close();
    } catch {
      refused = true;
    }
    assert(refused, "still accepting after exit");
  } finally {
    await memg.close();
  }
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`${signal} under load: whole replies only, then exit 0`, async () => {
    await shutdownUnderLoad((memg) => {
      memg.process.kill(signal);
      return Promise.resolve();
    });
  });
}

for (const command of ["shutdown", "shutdown graceful"]) {
  Deno.test(`\`${command}\` under load: whole replies only, then exit 0`, async () => {
    await shutdownUnderLoad(async (memg) => {
      const admin = await RawClient.connect(memg.port);
      try {
        await admin.send(`${command}\r\n`);
        // as memcached, the connection that asked is closed without a reply
        assert(await admin.closedByServer(EXIT_WITHIN_MS), "the admin connection stayed open");
        assertEquals(admin.text(), "");
      } finally {
        admin.close();
      }
    });
  });
}
