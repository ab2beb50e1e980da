/** `-L`: item memory on transparent huge pages, checked in the server's own memory map. */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { type ChildMemg, spawnMemg, START_PERMISSIONS } from "./helpers/server.ts";
import { largePagesUnavailable } from "../lib/store/large_pages.ts";

const unavailable = largePagesUnavailable();
if (unavailable !== null) console.log(`large_pages_test: -L cannot work here: ${unavailable}`);

const VALUE = "v".repeat(100);

/** A memory figure of the process, in KiB, from `/proc/<pid>/smaps_rollup`. */
function memoryKb(memg: ChildMemg, field: "Rss" | "AnonHugePages"): number {
  const rollup = Deno.readTextFileSync(`/proc/${memg.process.pid}/smaps_rollup`);
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(rollup);
  assert(m !== null, rollup);
  return Number(m[1]);
}

/** Stores keys `from..to-1` (100-byte values), pipelined with noreply. */
async function fill(c: RawClient, from: number, to: number): Promise<void> {
  for (let i = from; i < to;) {
    let batch = "";
    for (const end = Math.min(to, i + 5000); i < end; i++) {
      batch += `set k${i} ${i} 0 100 noreply\r\n${VALUE}\r\n`;
    }
    await c.send(batch);
  }
  assertStringIncludes(await c.call("version\r\n"), "VERSION");
}

/** Checks a spread of keys in `from..to-1` read back whole. */
async function check(c: RawClient, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i += Math.max(1, Math.floor((to - from) / 500))) {
    assertEquals(
      await c.call(`get k${i}\r\n`, "END\r\n"),
      `VALUE k${i} ${i} 100\r\n${VALUE}\r\nEND\r\n`,
    );
  }
}

Deno.test({
  name: "-L puts the items on huge pages and serves them as without it",
  ignore: unavailable !== null,
  async fn() {
    const huge: number[] = [];
    for (const flags of [["-L"], []]) {
      const memg = await spawnMemg([...flags, "-m", "256"]);
      try {
        const c = await RawClient.connect(memg.port);
        await fill(c, 0, 400_000); // about 75 MiB of 192-byte chunks
        await check(c, 0, 400_000);
        assertEquals(
          await c.call("stats\r\n", "END\r\n").then((s) => /curr_items (\d+)/.exec(s)?.[1]),
          "400000",
        );
        huge.push(memoryKb(memg, "AnonHugePages"));
        c.close();
      } finally {
        await memg.stop();
      }
      assert(!memg.stderr.join("").includes("-L"), memg.stderr.join(""));
    }
    const [withL, without] = huge;
    assert(withL >= 32 * 1024, `-L: only ${withL} KiB on huge pages`);
    assert(without < withL / 4, `without -L ${without} KiB, with ${withL} KiB`);
  },
});

Deno.test({
  name: "-L gives a released page's memory back to the kernel and reuses its place",
  ignore: unavailable !== null,
  async fn() {
    const memg = await spawnMemg(["-L", "-m", "128"]);
    try {
      const c = await RawClient.connect(memg.port);
      await fill(c, 0, 500_000); // fills the 128 MiB: the oldest are evicted
      const full = memoryKb(memg, "Rss");
      assertEquals(await c.call("cache_memlimit 8\r\n"), "OK\r\n");
      await fill(c, 500_000, 510_000); // stores go on while the limit shrinks the pages
      const shrunk = memoryKb(memg, "Rss");
      assert(full - shrunk >= 64 * 1024, `RSS ${full} KiB full, ${shrunk} KiB at -m 8`);
      await check(c, 505_000, 510_000);
      assertEquals(await c.call("cache_memlimit 128\r\n"), "OK\r\n");
      await fill(c, 600_000, 1_000_000); // the released places are taken again
      await check(c, 700_000, 1_000_000);
      c.close();
    } finally {
      await memg.stop();
    }
  },
});

Deno.test("-L without the ffi permission warns, says why, and serves on ordinary pages", async () => {
  const memg = await spawnMemg(["-L"], START_PERMISSIONS.filter((p) => p !== "--allow-ffi"));
  try {
    const c = await RawClient.connect(memg.port);
    await fill(c, 0, 100);
    await check(c, 0, 100);
    c.close();
  } finally {
    await memg.stop();
  }
  const err = memg.stderr.join("");
  assertStringIncludes(err, "memg: warning: -L: ");
  assertStringIncludes(err, "item memory is on ordinary pages");
});
