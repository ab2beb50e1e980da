/**
 * Micro-benchmark of the stores: first the slab store's resident memory at `-m 64` under mixed
 * sizes (measured first, while the process is fresh); then 1M sets and 1M gets of 100-byte
 * values on `SlabStore` and `MapStore`; then the slowest single set while the slab store's hash
 * index grows to N items (`--items=N`, default 2M).
 *
 *     deno run --allow-all --v8-flags=--expose-gc bench/store_micro.ts [--items=5000000]
 *
 * @module
 */
import { Mode, NONE, type Store, systemClock } from "../lib/store/store.ts";
import { SlabStore } from "../lib/store/slab.ts";
import { MapStore } from "../lib/store/map.ts";

const N = 1_000_000;
const MiB = 1 << 20;
const enc = new TextEncoder();

function fmt(n: number): string {
  return `${(n / 1e6).toFixed(2)} M ops/s`;
}

function heapMiB(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return Deno.memoryUsage().heapUsed / MiB;
}

// Resident memory at -m 64 under 200 MiB of mixed sizes (100 B .. 100 KB).
{
  const rss0 = Deno.memoryUsage().rss / MiB;
  const s = new SlabStore({
    limitBytes: 64 * MiB,
    itemSizeMax: MiB,
    evict: true,
    clock: systemClock,
  });
  const big = new Uint8Array(100_000);
  let x = 1;
  let written = 0;
  for (let i = 0; written < 200 * MiB; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const size = Math.floor(100 * 1000 ** (x / 2 ** 32));
    const key = enc.encode(`key:${i}`);
    const ref = s.alloc(key, 0, key.length, size, 0, 0);
    s.writeValue(ref, 0, big, 0, size);
    s.link(ref, Mode.Set, 0);
    written += size;
  }
  const rss = Deno.memoryUsage().rss / MiB;
  console.log(
    `-m 64, 200 MiB of mixed sizes: RSS ${rss0.toFixed(0)} -> ${rss.toFixed(0)} MiB ` +
      `(+${(rss - rss0).toFixed(0)} MiB; 64 x 1.25 = 80), ${s.size} items`,
  );
}

/** All keys `key:<i>` back to back in one buffer, so the timed loops allocate nothing. */
function makeKeys(n: number): { buf: Uint8Array; off: Int32Array } {
  const off = new Int32Array(n + 1);
  const parts: Uint8Array[] = [];
  for (let i = 0, at = 0; i < n; i++) {
    const k = enc.encode(`key:${i}`);
    parts.push(k);
    off[i] = at;
    at += k.length;
    off[i + 1] = at;
  }
  const buf = new Uint8Array(off[n]);
  parts.forEach((k, i) => buf.set(k, off[i]));
  return { buf, off };
}

const keys = makeKeys(N);
const value = new Uint8Array(100).fill(120);
const out = new Uint8Array(100);

function sets(s: Store): number {
  const { buf, off } = keys;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const ref = s.alloc(buf, off[i], off[i + 1] - off[i], 100, 0, 0);
    if (ref === NONE) throw new Error("alloc failed");
    s.writeValue(ref, 0, value, 0, 100);
    s.link(ref, Mode.Set, 0);
  }
  return N / ((performance.now() - t0) / 1000);
}

function gets(s: Store): number {
  const { buf, off } = keys;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const ref = s.find(buf, off[i], off[i + 1] - off[i]);
    if (ref === NONE) throw new Error("miss");
    s.readValue(ref, out, 0);
    s.bump(ref);
  }
  return N / ((performance.now() - t0) / 1000);
}

const opts = { limitBytes: 512 * MiB, itemSizeMax: MiB, evict: true, clock: systemClock };
const makers: Array<[string, () => Store]> = [
  ["SlabStore", () => new SlabStore(opts)],
  ["MapStore", () => new MapStore(opts)],
];
for (const [name, make] of makers) {
  for (let round = 1; round <= 3; round++) {
    const s = make();
    const set = sets(s);
    const get = gets(s);
    console.log(
      `${name} round ${round}: set ${fmt(set)}, get ${fmt(get)}, ` +
        `JS heap ${heapMiB().toFixed(0)} MiB holding ${s.size} items`,
    );
  }
}

// The slowest set while the hash index doubles.
{
  const arg = Deno.args.find((a) => a.startsWith("--items="));
  const n = arg === undefined ? 2 * N : Number(arg.slice(8));
  const s = new SlabStore({ ...opts, limitBytes: Math.ceil((n * 100) / MiB + 64) * MiB });
  const kb = new Uint8Array(16);
  let slowest = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    let len = 0;
    for (let v = i; len === 0 || v > 0; v = Math.floor(v / 10)) kb[len++] = 48 + (v % 10);
    const start = performance.now();
    const ref = s.alloc(kb, 0, len, 8, 0, 0);
    s.writeValue(ref, 0, value, 0, 8);
    s.link(ref, Mode.Set, 0);
    slowest = Math.max(slowest, performance.now() - start);
  }
  const stats = Object.fromEntries(s.extraStats());
  console.log(
    `${n} small sets: ${fmt(n / ((performance.now() - t0) / 1000))}, slowest single set ` +
      `${slowest.toFixed(2)} ms, hash_power_level ${stats.hash_power_level}`,
  );
}
