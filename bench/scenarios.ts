/**
 * The benchmark's seven scenarios and how each is measured: every measurement starts a fresh
 * server process (memcached first, then memg, alternating), pre-loads keys so gets hit, drives
 * traffic with the C load generator, and always stops the server, even when the run fails.
 *
 * @module
 */
import { InvalidRun, type LoadResult, type LoadSpec, runLoadgen } from "./loadgen.ts";
import { formatSummary, type ProfileSummary, summarizeFile } from "./profile.ts";
import { type RunningServer, type ServerKind, type ServerOptions, startServer } from "./servers.ts";

/** How a whole benchmark run is configured. */
export interface Settings {
  /** Measured seconds per traffic run. */
  duration: number;
  /** Unmeasured seconds before each traffic run (JIT warm-up, connection set-up). */
  warmup: number;
  quick: boolean;
  /** Where memg's CPU profiles go, or null when not profiling. */
  profileDir: string | null;
  /** Path of the built load generator. */
  loadgen: string;
  /** The compiled memg to benchmark, or null for `deno run main.ts`. */
  memgBinary: string | null;
  /** Flags given to memcached and memg alike in every scenario (`--server-args`, e.g. `-L`). */
  serverArgs: string[];
  /** Prints progress lines. */
  log: (line: string) => void;
}

/** One server's part of a scenario. */
export interface Measurement {
  server: ServerKind;
  command: string;
  /** The pre-load run (sets of every key). */
  preload?: LoadResult;
  /** The measured traffic. */
  load?: LoadResult;
  /** Server CPU use during the traffic run, % of one core. */
  serverCpuPct?: number;
  rssIdleKb?: number;
  rssLoadedKb?: number;
  items?: number;
  profile?: ProfileSummary & { file: string };
}

/** What a scenario produced: measurements by run name, notes, and why it is invalid if so. */
export interface ScenarioResult {
  id: number;
  title: string;
  /** `memcached`, `memg`, `ceiling`, or `<server>:empty` / `<server>:full` for scenario 6. */
  runs: Record<string, Measurement>;
  notes: string[];
  invalid?: string;
}

/** The traffic part of a load spec (port, pre-load, timing are filled in per run). */
export type Traffic = Pick<
  LoadSpec,
  "conns" | "depth" | "sets" | "gets" | "valueSize" | "keys" | "rate" | "binary"
>;

const SMALL: Traffic = {
  conns: 100,
  depth: 1,
  sets: 1,
  gets: 10,
  valueSize: 100,
  keys: 100_000,
  rate: 0,
  binary: false,
};
const PIPELINED: Traffic = { ...SMALL, depth: 16 };
const LARGE: Traffic = { ...SMALL, sets: 1, gets: 1, valueSize: 64 * 1024, keys: 1000 };
/** Scenario 4's "light rate": 5 requests per second per connection. */
const LIGHT: Traffic = { ...SMALL, conns: 1000, rate: 5000 };
const BINARY: Traffic = { ...SMALL, binary: true };

/** The traffic of scenario 1, 2, 3, 4 or 7 (for `bench/ab.ts`, `bench/alloc.ts`); else null. */
export function scenarioTraffic(id: number): Traffic | null {
  return ({ 1: SMALL, 2: PIPELINED, 3: LARGE, 4: LIGHT, 7: BINARY } as Record<number, Traffic>)[
    id
  ] ?? null;
}

/** The closed-loop traffic of scenarios 1, 2, 3 and 7 (for `bench/ab.ts`); null for the others. */
export function closedLoopTraffic(id: number): Traffic | null {
  return id === 4 ? null : scenarioTraffic(id);
}

const MEMORY_MB = 1024;
const BIG_MEMORY_MB = 4096;
const PRELOAD_CONNS = 50;
/** How long a server sits idle before its baseline RSS is read, and after loading. */
const SETTLE_MS = 1000;
const BINARY_PROBE_MS = 2000;

/** Items resident in scenario 5 (memory) and scenario 6 (latency with a full cache). */
export function residentItems(id: 5 | 6, quick: boolean): number {
  if (id === 5) return quick ? 200_000 : 1_000_000;
  return quick ? 500_000 : 5_000_000;
}

/** A one-line title for scenario `id`. */
export function title(id: number, quick: boolean): string {
  const n = (x: number) => x.toLocaleString("en-US");
  switch (id) {
    case 1:
      return "100 conns, depth 1, 1:10 set:get, 100 B";
    case 2:
      return "100 conns, depth 16, 1:10, 100 B";
    case 3:
      return "100 conns, depth 1, 1:1, 64 KiB";
    case 4:
      return `1000 conns, ${n(LIGHT.rate)} req/s total, 1:10`;
    case 5:
      return `RSS per 100 B item, ${n(residentItems(5, quick))} items`;
    case 6:
      return `scenario 1, empty vs ${n(residentItems(6, quick))} items`;
    case 7:
      return "scenario 1, binary protocol";
  }
  throw new Error(`no scenario ${id}`);
}

/** All scenario numbers. */
export const ALL_SCENARIOS = [1, 2, 3, 4, 5, 6, 7];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Requests a rate-limited run (scenario 4) gets as warm-up at least (8 s at 5,000 req/s): memg's
 * start-up costs come on the same core while the first 25,000 or so run, and would otherwise
 * fall in the measured window (memcached has none). Traced with `--trace-gc --trace-opt`: the
 * scavenge that promotes the 1,000 new connections' state (about 3.5 MB, 14-20 ms) 4.3-5.2 s
 * after the load starts, then TurboFan's compile of the poller's loop (27 ms); 20,000 requests
 * left both in the window. Since `77c1f18` that compile (23 ms) comes about 9 s after the load
 * starts, inside the window; 15 s of warm-up did not lower the p99 (four pairs), and rarer
 * functions' compiles still fall in a later window (README, What decides (4)).
 */
const MIN_WARMUP_REQUESTS = 40_000;

function warmupFor(s: Settings, t: Traffic): number {
  return t.rate > 0 ? Math.max(s.warmup, MIN_WARMUP_REQUESTS / t.rate) : s.warmup;
}

function loadTimeout(s: Settings, warmup: number): number {
  return Math.ceil(warmup + s.duration + 60);
}

function preloadTimeout(keys: number): number {
  return Math.ceil(60 + keys / 10_000);
}

/** Sets keys 0..keys-1 (pipelined) and returns the generator's result. */
async function preload(
  s: Settings,
  port: number,
  t: Traffic,
  keys: number,
): Promise<LoadResult> {
  return await runLoadgen(s.loadgen, {
    ...t,
    port,
    conns: Math.min(t.conns, PRELOAD_CONNS),
    depth: 1,
    keys,
    rate: 0,
    preload: true,
    duration: 0,
    warmup: 0,
    verify: "full",
    timeout: preloadTimeout(keys),
  });
}

/** Runs measured traffic against `server`, noting the server's CPU use meanwhile. */
async function traffic(
  s: Settings,
  server: RunningServer,
  t: Traffic,
  verify: "full" | "shape",
  m: Measurement,
): Promise<void> {
  const cpu0 = await server.cpuSeconds();
  const wall0 = performance.now();
  const warmup = warmupFor(s, t);
  m.load = await runLoadgen(s.loadgen, {
    ...t,
    port: server.port,
    preload: false,
    duration: s.duration,
    warmup,
    verify,
    timeout: loadTimeout(s, warmup),
  });
  const wall = (performance.now() - wall0) / 1000;
  m.serverCpuPct = (100 * (await server.cpuSeconds() - cpu0)) / wall;
}

/** Reads `stats` and returns curr_items and evictions. */
async function itemStats(port: number): Promise<{ items: number; evictions: number }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), 5000);
  try {
    await conn.write(new TextEncoder().encode("stats\r\n"));
    let text = "";
    const buf = new Uint8Array(64 * 1024);
    while (!text.endsWith("END\r\n")) {
      const n = await conn.read(buf);
      if (n === null) throw new InvalidRun("stats: connection closed");
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    const stat = (name: string) =>
      Number(new RegExp(`^STAT ${name} (\\d+)\r$`, "m").exec(text)?.[1]);
    return { items: stat("curr_items"), evictions: stat("evictions") };
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed by the timer
    }
  }
}

/** Fails the run unless the server holds exactly `keys` items and evicted none. */
async function checkResident(port: number, keys: number): Promise<void> {
  const { items, evictions } = await itemStats(port);
  if (items !== keys || evictions !== 0) {
    throw new InvalidRun(
      `expected ${keys} resident items, server has ${items} (${evictions} evicted)`,
    );
  }
}

/** Whether the server answers a binary NOOP with a binary success reply. */
async function speaksBinary(port: number): Promise<boolean> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), BINARY_PROBE_MS);
  try {
    const noop = new Uint8Array(24);
    noop[0] = 0x80;
    noop[1] = 0x0a;
    await conn.write(noop);
    const reply = new Uint8Array(24);
    let got = 0;
    while (got < 24) {
      const n = await conn.read(reply.subarray(got));
      if (n === null) return false;
      got += n;
    }
    return reply[0] === 0x81 && reply[1] === 0x0a && reply[6] === 0 && reply[7] === 0;
  } catch {
    return false; // timed out or reset
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed by the timer
    }
  }
}

/** The newest `.cpuprofile` in `dir` written at or after `since` (ms since the epoch). */
function newestProfile(dir: string, since: number): string {
  let best: { path: string; mtime: number } | null = null;
  for (const e of Deno.readDirSync(dir)) {
    if (!e.name.endsWith(".cpuprofile")) continue;
    const path = `${dir}/${e.name}`;
    const mtime = Deno.statSync(path).mtime?.getTime() ?? 0;
    if (mtime >= since && (best === null || mtime > best.mtime)) best = { path, mtime };
  }
  if (best === null) throw new Error(`memg wrote no CPU profile into ${dir}`);
  return best.path;
}

/** Starts `kind`, runs `body`, and stops the server whatever happens; adds the profile. */
async function withServer(
  s: Settings,
  kind: ServerKind,
  opts: ServerOptions,
  label: string,
  body: (server: RunningServer, m: Measurement) => Promise<void>,
): Promise<Measurement> {
  const profileDir = kind === "memg" && s.profileDir !== null
    ? `${s.profileDir}/${label}`
    : undefined;
  const started = Date.now();
  const extraArgs = [...s.serverArgs, ...opts.extraArgs ?? []];
  const server = await startServer(kind, {
    ...opts,
    extraArgs,
    profileDir,
    memgBinary: s.memgBinary,
  });
  const m: Measurement = { server: kind, command: server.command.join(" ") };
  try {
    await body(server, m);
  } finally {
    await server.stop();
  }
  if (profileDir !== undefined) {
    const file = newestProfile(profileDir, started);
    m.profile = { file, ...(await summarizeFile(file, 15)) };
    s.log(`  memg CPU profile ${file}:\n${formatSummary(m.profile)}`);
  }
  return m;
}

function describe(m: Measurement): string {
  const l = m.load;
  if (l === undefined) return "";
  return `${Math.round(l.ops_per_sec)} ops/s, p99 ${l.p99_us} µs, p99.9 ${l.p999_us} µs, ` +
    `gen CPU ${l.cpu_pct}%, server CPU ${m.serverCpuPct?.toFixed(0)}%` +
    (l.rate_target > 0 ? `, ${l.late_sends} sent late` : "");
}

/** A fresh server, pre-loaded with the traffic's keys (or `resident` keys), then traffic. */
async function trafficRun(
  s: Settings,
  kind: ServerKind,
  label: string,
  t: Traffic,
  opts: ServerOptions,
  resident = t.keys,
): Promise<Measurement> {
  s.log(`  ${label}: starting ${kind}`);
  const m = await withServer(s, kind, opts, label, async (server, m) => {
    if (kind === "ceiling" || kind === "bare") {
      await traffic(s, server, t, "shape", m);
      return;
    }
    m.preload = await preload(s, server.port, t, resident);
    await checkResident(server.port, resident);
    await traffic(s, server, t, "full", m);
  });
  s.log(`  ${label}: ${kind}: ${describe(m)}`);
  return m;
}

/**
 * Both servers up, pre-loaded and driven at once (each by its own generator), so that the
 * host's stalls of the shared core hit both alike: memcached's and memg's measurements.
 */
async function pairedRun(
  s: Settings,
  t: Traffic,
  opts: ServerOptions,
): Promise<[Measurement, Measurement]> {
  s.log("  s4-paired: memcached and memg at once, both on core 0");
  let mg!: Measurement;
  const mc = await withServer(s, "memcached", opts, "s4-paired", async (mcServer, mcM) => {
    mg = await withServer(s, "memg", opts, "s4-paired", async (mgServer, mgM) => {
      for (const [server, m] of [[mcServer, mcM], [mgServer, mgM]] as const) {
        m.preload = await preload(s, server.port, t, t.keys);
        await checkResident(server.port, t.keys);
      }
      await Promise.all([
        traffic(s, mcServer, t, "full", mcM),
        traffic(s, mgServer, t, "full", mgM),
      ]);
    });
  });
  s.log(`  s4-paired: memcached: ${describe(mc)}`);
  s.log(`  s4-paired: memg: ${describe(mg)}`);
  return [mc, mg];
}

async function memoryRun(s: Settings, kind: ServerKind, items: number): Promise<Measurement> {
  s.log(`  s5: loading ${items} items into ${kind}`);
  const m = await withServer(s, kind, { memoryMb: MEMORY_MB }, "s5", async (server, m) => {
    await sleep(SETTLE_MS);
    m.rssIdleKb = await server.rssKb();
    m.preload = await preload(s, server.port, SMALL, items);
    await checkResident(server.port, items);
    await sleep(SETTLE_MS);
    m.rssLoadedKb = await server.rssKb();
    m.items = items;
  });
  s.log(
    `  s5: ${kind}: idle ${m.rssIdleKb} KiB, loaded ${m.rssLoadedKb} KiB, ` +
      `${m.preload?.preload_ops_per_sec} sets/s`,
  );
  return m;
}

type Pair = readonly ["memcached", "memg"] | readonly ["memg", "memcached"];

/** Scenario 7's memg part: skipped with a note unless memg answers a binary NOOP. */
async function binaryMemg(s: Settings, result: ScenarioResult): Promise<void> {
  const opts: ServerOptions = { memoryMb: MEMORY_MB, memgBinary: s.memgBinary };
  const probe = await startServer("memg", opts);
  let binary: boolean;
  try {
    binary = await speaksBinary(probe.port);
  } finally {
    await probe.stop();
  }
  if (binary) {
    result.runs.memg = await trafficRun(s, "memg", "s7", BINARY, opts);
  } else {
    result.notes.push("memg skipped: it does not answer a binary NOOP (no binary codec yet)");
    s.log(`  s7: ${result.notes[0]}`);
  }
}

async function measureAll(s: Settings, id: number, pair: Pair, result: ScenarioResult) {
  const runs = result.runs;
  const opts: ServerOptions = { memoryMb: MEMORY_MB };
  switch (id) {
    case 1:
      // The ceiling shows what one Deno event loop can do unpipelined, with no store at all.
      for (const k of [...pair, "ceiling"] as const) {
        runs[k] = await trafficRun(s, k, "s1", SMALL, { ...opts, valueSize: 100 });
      }
      return;
    case 2:
      for (const k of [...pair, "ceiling"] as const) {
        runs[k] = await trafficRun(s, k, "s2", PIPELINED, { ...opts, valueSize: 100 });
      }
      return;
    case 3:
      for (const k of pair) runs[k] = await trafficRun(s, k, "s3", LARGE, opts);
      return;
    case 4: {
      const light = { ...opts, extraArgs: ["-c", "4096"] };
      for (const k of pair) runs[k] = await trafficRun(s, k, "s4", LIGHT, light);
      // Where the latency goes: memg's engine with no store, and a Deno loop with no event loop.
      for (const k of ["ceiling", "bare"] as const) {
        runs[k] = await trafficRun(s, k, "s4", LIGHT, { ...opts, valueSize: LIGHT.valueSize });
      }
      [runs["memcached:paired"], runs["memg:paired"]] = await pairedRun(s, LIGHT, light);
      return;
    }
    case 5:
      for (const k of pair) runs[k] = await memoryRun(s, k, residentItems(5, s.quick));
      return;
    case 6: {
      const big = { memoryMb: BIG_MEMORY_MB };
      for (const fill of ["empty", "full"] as const) {
        const resident = fill === "full" ? residentItems(6, s.quick) : SMALL.keys;
        for (const k of pair) {
          runs[`${k}:${fill}`] = await trafficRun(s, k, `s6-${fill}`, SMALL, big, resident);
        }
      }
      return;
    }
    case 7:
      for (const k of pair) {
        if (k === "memg") await binaryMemg(s, result);
        else runs[k] = await trafficRun(s, k, "s7", BINARY, opts);
      }
      return;
  }
  throw new Error(`no scenario ${id}`);
}

/**
 * Runs scenario `id` once; `round` alternates which server goes first (memcached on even
 * rounds). Never throws for a failed measurement: the result is marked invalid instead.
 */
export async function runScenario(s: Settings, id: number, round = 0): Promise<ScenarioResult> {
  const result: ScenarioResult = { id, title: title(id, s.quick), runs: {}, notes: [] };
  const pair: Pair = round % 2 === 0 ? ["memcached", "memg"] : ["memg", "memcached"];
  try {
    await measureAll(s, id, pair, result);
  } catch (e) {
    result.invalid = e instanceof Error ? e.message : String(e);
    s.log(`  s${id}: INVALID: ${result.invalid}`);
  }
  return result;
}
