/**
 * Folding repeated rounds of one scenario into one result: every reported number (ops/s, each
 * latency percentile, CPU use, RSS) becomes its median over the rounds, taken separately per
 * number. If any round is invalid the combined result is invalid too.
 *
 * @module
 */
import type { LoadResult } from "./loadgen.ts";
import type { Measurement, ScenarioResult } from "./scenarios.ts";

const LOAD_FIELDS = [
  "ops_per_sec",
  "mean_us",
  "p50_us",
  "p90_us",
  "p99_us",
  "p999_us",
  "max_us",
  "cpu_pct",
  "late_sends",
] as const satisfies ReadonlyArray<keyof LoadResult>;

const MEASUREMENT_FIELDS = ["serverCpuPct", "rssIdleKb", "rssLoadedKb"] as const;

/** The median of `xs` (the mean of the middle two for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function combineMeasurements(ms: Measurement[]): Measurement {
  const out: Measurement = { ...ms[0] };
  const loads = ms.map((m) => m.load).filter((l): l is LoadResult => l !== undefined);
  if (loads.length === ms.length && loads.length > 0) {
    const load = { ...loads[0] };
    for (const f of LOAD_FIELDS) load[f] = median(loads.map((l) => l[f]));
    out.load = load;
  }
  for (const f of MEASUREMENT_FIELDS) {
    const xs = ms.map((m) => m[f]).filter((x): x is number => x !== undefined);
    if (xs.length === ms.length && xs.length > 0) out[f] = median(xs);
  }
  return out;
}

/** One result whose numbers are the medians of `rounds` (all of the same scenario). */
export function combineRounds(rounds: ScenarioResult[]): ScenarioResult {
  if (rounds.length === 1) return rounds[0];
  const first = rounds[0];
  const invalid = rounds.find((r) => r.invalid !== undefined);
  const notes = [...new Set(rounds.flatMap((r) => r.notes))];
  notes.push(`median of ${rounds.length} rounds`);
  const combined: ScenarioResult = { id: first.id, title: first.title, runs: {}, notes };
  if (invalid !== undefined) {
    combined.invalid = invalid.invalid;
    return combined;
  }
  for (const name of Object.keys(first.runs)) {
    const ms = rounds.map((r) => r.runs[name]).filter((m): m is Measurement => m !== undefined);
    if (ms.length === rounds.length) combined.runs[name] = combineMeasurements(ms);
  }
  return combined;
}
