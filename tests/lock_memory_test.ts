/** `-k`: the server's memory locked in RAM, checked in the server's own `/proc` status. */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { type ChildMemg, spawnMemg, spawnMemgUnder } from "./helpers/server.ts";

const VALUE = "v".repeat(100);
const linux = Deno.build.os === "linux";

/**
 * A memory figure of the process in KiB, from `/proc/<pid>/smaps_rollup`: `Locked` is what is
 * resident of its locked mappings (`VmLck` in `status` counts their whole address space).
 */
function memoryKb(memg: ChildMemg, field: "Locked" | "Rss"): number {
  const rollup = Deno.readTextFileSync(`/proc/${memg.process.pid}/smaps_rollup`);
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(rollup);
  assert(m !== null, rollup);
  return Number(m[1]);
}

/**
 * Whether a process started from this one may lock past its locked-memory limit, or has none:
 * what memg needs to honour `-k`.
 */
function mayLock(): boolean {
  const limits = Deno.readTextFileSync("/proc/self/limits");
  if (/^Max locked memory\s+unlimited/m.test(limits)) return true;
  const cap = /^CapEff:\s*([0-9a-f]+)$/m.exec(Deno.readTextFileSync("/proc/self/status"));
  return cap !== null && ((BigInt(`0x${cap[1]}`) >> 14n) & 1n) === 1n;
}

/** Stores `n` keys and reads a spread of them back whole. */
async function fillAndCheck(c: RawClient, n: number): Promise<void> {
  for (let i = 0; i < n;) {
    let batch = "";
    for (const end = Math.min(n, i + 5000); i < end; i++) {
      batch += `set k${i} ${i} 0 100 noreply\r\n${VALUE}\r\n`;
    }
    await c.send(batch);
  }
  for (let i = 0; i < n; i += Math.floor(n / 200)) {
    assertEquals(
      await c.call(`get k${i}\r\n`, "END\r\n"),
      `VALUE k${i} ${i} 100\r\n${VALUE}\r\nEND\r\n`,
    );
  }
}

/** Whether `name` runs here (util-linux's `prlimit` and `setpriv`). */
function have(name: string): boolean {
  try {
    return new Deno.Command(name, { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "-k locks memory as the cache touches it, and serves as without it",
  ignore: !linux,
  async fn() {
    const canLock = mayLock();
    if (!canLock) console.log("lock_memory_test: this process may not lock memory: -k must warn");
    const resident: number[] = [];
    for (const flags of [["-k"], []]) {
      const memg = await spawnMemg([...flags, "-m", "64"]);
      try {
        const atStart = memoryKb(memg, "Locked");
        const rssAtStart = memoryKb(memg, "Rss");
        const c = await RawClient.connect(memg.port);
        await fillAndCheck(c, 100_000); // about 19 MiB of 192-byte chunks
        const filled = memoryKb(memg, "Locked");
        c.close();
        const stderr = memg.stderr.join("");
        if (flags.length > 0 && canLock) {
          assert(!stderr.includes("-k"), stderr);
          // locked as touched: the items' pages join the locked set as they are written
          assert(filled >= atStart + 16 * 1024, `locked ${atStart} KiB at start, ${filled} after`);
          // what became resident meanwhile is locked, and nothing reserved but never touched
          // (`Locked` is a proportional share: pages shared with other processes, such as
          // Deno's code with this test's own Deno, count in part)
          const rss = memoryKb(memg, "Rss");
          assert(filled <= rss, `locked ${filled} KiB of ${rss} resident`);
          const grew = rss - rssAtStart;
          assert(
            filled - atStart >= grew * 0.9,
            `resident +${grew} KiB, locked +${filled - atStart}`,
          );
        } else if (flags.length > 0) {
          assertStringIncludes(stderr, "memg: warning: -k: ");
          assertEquals(filled, 0);
        } else {
          assertEquals(filled, 0);
        }
        resident.push(memoryKb(memg, "Rss"));
      } finally {
        await memg.stop();
      }
    }
    // Locking as pages are touched (MCL_ONFAULT) keeps the resident size what it is without -k:
    // locking every mapping at once made 57 MiB at start 651 MiB (Deno's whole binary, all
    // that V8 maps ahead).
    const [withK, without] = resident;
    assert(withK <= without * 1.25 + 8192, `resident with -k ${withK} KiB, without ${without}`);
  },
});

Deno.test({
  name: "-k under a finite locked-memory limit without CAP_IPC_LOCK warns, locks nothing, serves",
  ignore: !linux || !have("prlimit") || !have("setpriv"),
  async fn() {
    // The limit as a user's default; for root the capability is taken from the bounding set
    // (which its effective set then leaves) and from the inheritable one. Others lack it.
    const dropCap = Deno.uid() === 0
      ? ["setpriv", "--bounding-set=-ipc_lock", "--inh-caps=-ipc_lock"]
      : [];
    const memg = await spawnMemgUnder(["prlimit", "--memlock=65536:65536", ...dropCap], ["-k"]);
    try {
      const c = await RawClient.connect(memg.port);
      await fillAndCheck(c, 10_000);
      c.close();
      assertEquals(memoryKb(memg, "Locked"), 0);
      assertStringIncludes(
        memg.stderr.join(""),
        "memg: warning: -k: the locked-memory limit is 64 KiB (ulimit -l) and memg lacks " +
          "CAP_IPC_LOCK; allocations past it would fail while serving; memory is not locked",
      );
    } finally {
      await memg.stop();
    }
  },
});
