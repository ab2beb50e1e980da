/**
 * Overload, CI-sized (`bench/overload.ts` runs the full-sized measurement): two writers store
 * 30 × `-m 16` (480 MB) of 100 B–500 KB values while two readers keep reading small keys.
 * - the store keeps to `-m` and RSS stays within memcached's rule of thumb, `-m × 1.25` plus
 *   the runtime baseline (memg's RSS when warmed up, less its item pages), plus 16 MB: under
 *   this load V8's heap grows by 4–10 MB whatever `-m` is (measured at -m 16, 32 and 64), which
 *   a quarter of 16 MB does not cover; at -m 64 the bare rule holds (see the bench);
 * - the readers are never refused nor disconnected, and their p99 latency under the write load
 *   stays within 20× the unloaded p99, or 100 ms, whichever is larger. The unloaded p99 on
 *   loopback is a fraction of a millisecond, so a bare factor would be at the mercy of the
 *   scheduler on a shared 2-core machine; the absolute floor keeps the check about starvation
 *   (a reader waiting behind a writer's whole stream took about a second before memg yielded
 *   between turns), not about noise. Observed: ×1.7–7.8, loaded p99 0.4–3.5 ms.
 */
import { assertEquals, assertGreater, assertLessOrEqual } from "./helpers/assert.ts";
import { measureOverload } from "../bench/overload.ts";

const MEMORY_MB = 16;
const FACTOR = 30;
const P99_FACTOR_MAX = 20;
const P99_FLOOR_MS = 100;
const HEAP_GROWTH_MB = 16;

Deno.test("30× -m of writes with readers running: RSS bounded, readers served", async () => {
  const r = await measureOverload({
    memoryMb: MEMORY_MB,
    factor: FACTOR,
    writers: 2,
    readers: 2,
    unloadedSeconds: 1,
    seed: 7,
  });
  console.log(
    `overload: ${r.writtenMb} MB in ${r.writeSeconds} s; RSS ${r.baselineRssMb} -> ` +
      `${r.maxRssMb} MB (bound ${r.rssBoundMb}); reader p99 ${r.unloaded.p99} -> ` +
      `${r.loaded.p99} ms (×${r.p99Factor}); ${r.evictions} evictions`,
  );
  assertGreater(r.writtenMb, FACTOR * MEMORY_MB - 1);
  assertGreater(r.evictions, 0, "the writes never filled memory");
  assertEquals(r.readerErrors, 0);
  assertGreater(r.loaded.count, 100, "the readers were starved");
  assertLessOrEqual(r.itemPagesMb, MEMORY_MB, "the store went past -m");
  assertLessOrEqual(r.maxRssMb, r.rssBoundMb + HEAP_GROWTH_MB, "RSS went past the bound");
  assertLessOrEqual(r.loaded.p99, Math.max(P99_FACTOR_MAX * r.unloaded.p99, P99_FLOOR_MS));
});
