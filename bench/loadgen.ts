/**
 * Building and driving the C load generator (bench/loadgen.c): compiled with `cc -O2` into
 * bench/out/ whenever the binary is missing or older than the source, run pinned to CPU 1 with
 * a hard timeout, and its one-line JSON result checked — a run with any error, miss, overrun or
 * fatal condition is rejected with `InvalidRun`, never reported as a number.
 *
 * @module
 */

const BENCH = new URL("./", import.meta.url).pathname;
const SOURCE = `${BENCH}loadgen.c`;
/** Where build products go (git-ignored). */
export const OUT_DIR = `${BENCH}out`;
const BINARY = `${OUT_DIR}/loadgen`;
/** The CPU the load generator runs on; the server runs on the other one. */
export const LOADGEN_CPU = "1";
/** Generator CPU use (% of its core) above which it may be what limits throughput. */
export const GENERATOR_BOUND_PCT = 90;
/** Grace beyond a run's own `--timeout` before it is killed from outside. */
const KILL_GRACE_MS = 30_000;

/** What one load generator run is asked to do. */
export interface LoadSpec {
  port: number;
  conns: number;
  depth: number;
  sets: number;
  gets: number;
  valueSize: number;
  keys: number;
  /** Set every key once (pipelined) before the measured traffic. */
  preload: boolean;
  /** Measured seconds after warm-up; 0 with `preload` means load only. */
  duration: number;
  warmup: number;
  /** Open-loop total requests per second; 0 = closed loop. */
  rate: number;
  binary: boolean;
  /** "shape" skips value/flags checks (for the ceiling server's canned value). */
  verify: "full" | "shape";
  /** Seconds before the generator gives up by itself. */
  timeout: number;
}

/** The generator's JSON result line. */
export interface LoadResult {
  protocol: string;
  conns: number;
  depth: number;
  value_size: number;
  keys: number;
  preload_keys: number;
  preload_s: number;
  preload_ops_per_sec: number;
  preload_cpu_pct: number;
  rate_target: number;
  duration_s: number;
  ops: number;
  ops_per_sec: number;
  sets: number;
  gets: number;
  hits: number;
  misses: number;
  errors: number;
  overruns: number;
  /** With a rate: measured requests the generator wrote over 200 µs after their scheduled time. */
  late_sends: number;
  mean_us: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  p999_us: number;
  max_us: number;
  cpu_user_s: number;
  cpu_sys_s: number;
  /** Generator CPU use during the measured window, % of one core. */
  cpu_pct: number;
  first_error: string;
  fatal?: string;
}

/** Generator runs not yet finished, for cleanup on interrupt. */
const running = new Set<Deno.ChildProcess>();

/** Kills every generator still running (used when the benchmark is interrupted). */
export function killLoadgens(): void {
  for (const p of running) {
    try {
      p.kill("SIGKILL");
    } catch {
      // exited already
    }
  }
}

/** A run whose replies were wrong, missing or whose generator failed: not a valid benchmark. */
export class InvalidRun extends Error {}

/** Compiles loadgen.c unless an up-to-date binary exists; returns the binary's path. */
export async function buildLoadgen(): Promise<string> {
  const src = Deno.statSync(SOURCE).mtime?.getTime() ?? 0;
  let bin = -1;
  try {
    bin = Deno.statSync(BINARY).mtime?.getTime() ?? -1;
  } catch {
    // not built yet
  }
  if (bin >= src) return BINARY;
  Deno.mkdirSync(OUT_DIR, { recursive: true });
  const out = await new Deno.Command("cc", {
    args: ["-O2", "-Wall", "-Wextra", "-o", BINARY, SOURCE],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`cc failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return BINARY;
}

function argsFor(spec: LoadSpec): string[] {
  const a = [
    `--port=${spec.port}`,
    `--conns=${spec.conns}`,
    `--depth=${spec.depth}`,
    `--sets=${spec.sets}`,
    `--gets=${spec.gets}`,
    `--value-size=${spec.valueSize}`,
    `--keys=${spec.keys}`,
    `--duration=${spec.duration}`,
    `--warmup=${spec.warmup}`,
    `--rate=${spec.rate}`,
    `--verify=${spec.verify}`,
    `--timeout=${spec.timeout}`,
  ];
  if (spec.preload) a.push("--preload");
  if (spec.binary) a.push("--binary");
  return a;
}

/** Runs the generator once; resolves with its result, or throws `InvalidRun`. */
export async function runLoadgen(binary: string, spec: LoadSpec): Promise<LoadResult> {
  const child = new Deno.Command("taskset", {
    args: ["-c", LOADGEN_CPU, binary, ...argsFor(spec)],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  running.add(child);
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // exited meanwhile
    }
  }, spec.timeout * 1000 + KILL_GRACE_MS);
  let out: Deno.CommandOutput;
  try {
    out = await child.output();
  } finally {
    clearTimeout(timer);
    running.delete(child);
  }
  const text = new TextDecoder().decode(out.stdout).trim();
  const err = new TextDecoder().decode(out.stderr).trim();
  const line = text.split("\n").pop() ?? "";
  let result: LoadResult;
  try {
    result = JSON.parse(line) as LoadResult;
  } catch {
    throw new InvalidRun(`loadgen gave no result (status ${out.code}): ${err || text}`);
  }
  const what = spec.preload && spec.duration === 0 ? "preload" : "run";
  if (result.fatal !== undefined) throw new InvalidRun(`loadgen ${what}: ${result.fatal}`);
  if (!out.success) throw new InvalidRun(`loadgen exited with status ${out.code}: ${err}`);
  if (result.errors > 0) {
    throw new InvalidRun(
      `${what}: ${result.errors} wrong replies (first: ${result.first_error})`,
    );
  }
  if (result.misses > 0) throw new InvalidRun(`${what}: ${result.misses} gets missed`);
  if (result.overruns > 0) {
    throw new InvalidRun(`${what}: ${result.overruns} scheduled requests dropped (backlog full)`);
  }
  if (spec.preload && result.preload_keys !== spec.keys) {
    throw new InvalidRun(`preload stored ${result.preload_keys} of ${spec.keys} keys`);
  }
  if (spec.duration > 0 && result.ops === 0) throw new InvalidRun(`${what}: no operations`);
  return result;
}
