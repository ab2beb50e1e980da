/**
 * Turning scenario results into the benchmark's output: one table row per scenario (memcached
 * and memg side by side, with memg/memcached ratios), the scenario-specific lines (ceiling,
 * bytes per item, resident-items latency), the generator-bottleneck warnings, and PASS/FAIL
 * for every target in memg issue 6.
 *
 * @module
 */
import { GENERATOR_BOUND_PCT } from "./loadgen.ts";
import type { Measurement, ScenarioResult } from "./scenarios.ts";

/** One target from the issue, evaluated. */
export interface TargetResult {
  scenario: number;
  what: string;
  /** The measured value (a ratio), or null when it could not be measured. */
  value: number | null;
  limit: number;
  atLeast: boolean;
  status: "PASS" | "FAIL" | "SKIP" | "INVALID";
  note?: string;
}

const CEILING_GAP_MAX = 0.4;

function ratio(a: number | undefined, b: number | undefined): number | null {
  if (a === undefined || b === undefined || b === 0) return null;
  return a / b;
}

/** Net bytes per item: loaded RSS minus idle RSS, divided by the items loaded. */
export function netBytesPerItem(m: Measurement | undefined): number | undefined {
  if (m?.rssLoadedKb === undefined || m.rssIdleKb === undefined || !m.items) return undefined;
  return ((m.rssLoadedKb - m.rssIdleKb) * 1024) / m.items;
}

/** Raw bytes per item: loaded RSS divided by the items loaded. */
export function rawBytesPerItem(m: Measurement | undefined): number | undefined {
  if (m?.rssLoadedKb === undefined || !m.items) return undefined;
  return (m.rssLoadedKb * 1024) / m.items;
}

function target(
  r: ScenarioResult,
  what: string,
  value: number | null,
  limit: number,
  atLeast: boolean,
): TargetResult {
  if (r.invalid !== undefined) {
    return { scenario: r.id, what, value: null, limit, atLeast, status: "INVALID" };
  }
  if (value === null) {
    return {
      scenario: r.id,
      what,
      value,
      limit,
      atLeast,
      status: "SKIP",
      note: r.notes.join("; "),
    };
  }
  const ok = atLeast ? value >= limit : value <= limit;
  return { scenario: r.id, what, value, limit, atLeast, status: ok ? "PASS" : "FAIL" };
}

/** Every target of the issue that the given results can answer. */
export function evaluate(results: ScenarioResult[]): TargetResult[] {
  const out: TargetResult[] = [];
  for (const r of results) {
    const mc = r.runs.memcached?.load;
    const mg = r.runs.memg?.load;
    const ops = ratio(mg?.ops_per_sec, mc?.ops_per_sec);
    switch (r.id) {
      case 1:
        out.push(target(r, "ops/s memg/memcached", ops, 0.9, true));
        out.push(target(r, "p99 memg/memcached", ratio(mg?.p99_us, mc?.p99_us), 1.5, false));
        break;
      case 2: {
        out.push(target(r, "ops/s memg/memcached", ops, 2, true));
        const ceil = r.runs.ceiling?.load?.ops_per_sec;
        const gap = ceil === undefined || mg === undefined ? null : 1 - mg.ops_per_sec / ceil;
        out.push(target(r, "gap of memg to ceiling ops/s", gap, CEILING_GAP_MAX, false));
        break;
      }
      case 3:
        out.push(target(r, "ops/s memg/memcached", ops, 0.8, true));
        break;
      case 4: {
        out.push(target(r, "p99 memg/memcached", ratio(mg?.p99_us, mc?.p99_us), 1.5, false));
        const both = ratio(
          r.runs["memg:paired"]?.load?.p99_us,
          r.runs["memcached:paired"]?.load?.p99_us,
        );
        out.push(target(r, "p99 memg/memcached, at once", both, 1.5, false));
        break;
      }
      case 5: {
        const net = ratio(netBytesPerItem(r.runs.memg), netBytesPerItem(r.runs.memcached));
        out.push(target(r, "net bytes/item memg/memcached", net, 1.3, false));
        break;
      }
      case 6: {
        const full = r.runs["memg:full"]?.load?.p999_us;
        const empty = r.runs["memg:empty"]?.load?.p999_us;
        out.push(target(r, "memg p99.9 full/empty cache", ratio(full, empty), 2, false));
        break;
      }
      case 7:
        out.push(target(r, "ops/s memg/memcached", ops, 0.9, true));
        break;
    }
  }
  return out;
}

const int = (n: number | undefined) =>
  n === undefined ? "-" : Math.round(n).toLocaleString("en-US");
const fix = (n: number | null | undefined, d = 2) =>
  n === null || n === undefined ? "-" : n.toFixed(d);
const pct = (n: number | undefined) => (n === undefined ? "-" : `${Math.round(n)}`);

function row(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" ");
}

const HEAD = [
  "#",
  "scenario",
  "mc ops/s",
  "memg ops/s",
  "ratio",
  "mc p99",
  "memg p99",
  "ratio",
  "mc p99.9",
  "memg p99.9",
  "gen% mc/memg",
  "srv% mc/memg",
];
const WIDTHS = [2, 40, 11, 11, 6, 8, 9, 6, 9, 10, 12, 12];

function trafficRow(id: string, title: string, mc?: Measurement, mg?: Measurement): string {
  const a = mc?.load;
  const b = mg?.load;
  return row([
    id,
    title,
    int(a?.ops_per_sec),
    int(b?.ops_per_sec),
    fix(ratio(b?.ops_per_sec, a?.ops_per_sec)),
    int(a?.p99_us),
    int(b?.p99_us),
    fix(ratio(b?.p99_us, a?.p99_us)),
    int(a?.p999_us),
    int(b?.p999_us),
    `${pct(a?.cpu_pct)}/${pct(b?.cpu_pct)}`,
    `${pct(mc?.serverCpuPct)}/${pct(mg?.serverCpuPct)}`,
  ], WIDTHS);
}

/** The results table, scenario-specific lines and generator warnings, as text. */
export function formatTable(results: ScenarioResult[]): string {
  const lines = [
    "latencies in µs; ratio = memg/memcached; gen% = load generator CPU (% of its core) in the " +
    "measured window; srv% = server CPU during the run",
    row(HEAD, WIDTHS),
  ];
  const warnings: string[] = [];
  for (const r of results) {
    const id = String(r.id);
    if (r.id === 5) {
      const mc = r.runs.memcached;
      const mg = r.runs.memg;
      lines.push(row([id, r.title], WIDTHS));
      lines.push(
        `     ${int(mc?.items)} items; bytes/item raw: memcached ${int(rawBytesPerItem(mc))}, ` +
          `memg ${int(rawBytesPerItem(mg))} (ratio ${
            fix(ratio(rawBytesPerItem(mg), rawBytesPerItem(mc)))
          }); net of idle RSS: memcached ${int(netBytesPerItem(mc))}, memg ${
            int(netBytesPerItem(mg))
          } (ratio ${fix(ratio(netBytesPerItem(mg), netBytesPerItem(mc)))}); idle RSS KiB: ` +
          `memcached ${int(mc?.rssIdleKb)}, memg ${int(mg?.rssIdleKb)}`,
      );
    } else if (r.id === 6) {
      const mc = r.runs["memcached:empty"]?.load;
      lines.push(row([id, r.title], WIDTHS));
      lines.push(
        trafficRow(
          "",
          `  empty: ${int(mc?.keys)} items`,
          r.runs["memcached:empty"],
          r.runs["memg:empty"],
        ),
      );
      lines.push(
        trafficRow(
          "",
          `  full: ${int(r.runs["memcached:full"]?.preload?.preload_keys)} items`,
          r.runs["memcached:full"],
          r.runs["memg:full"],
        ),
      );
      for (const k of ["memcached", "memg"]) {
        const e = r.runs[`${k}:empty`]?.load?.p999_us;
        const f = r.runs[`${k}:full`]?.load?.p999_us;
        lines.push(`     ${k} p99.9 empty ${int(e)} → full ${int(f)} µs (×${fix(ratio(f, e))})`);
      }
    } else {
      lines.push(trafficRow(id, r.title, r.runs.memcached, r.runs.memg));
    }
    if ((r.id === 1 || r.id === 2) && r.runs.ceiling?.load !== undefined) {
      const c = r.runs.ceiling.load;
      const m = r.runs.memg?.load;
      lines.push(
        `     ceiling (Deno, no store): ${int(c.ops_per_sec)} ops/s, p99 ${int(c.p99_us)} µs; ` +
          `memg = ${fix(ratio(m?.ops_per_sec, c.ops_per_sec))} × ceiling`,
      );
    }
    if (r.id === 4) {
      const mc = r.runs.memcached?.load?.p99_us;
      for (
        const [k, title] of [["ceiling", "memg's engine"], ["bare", "bare Deno loop"]] as const
      ) {
        const l = r.runs[k]?.load;
        if (l === undefined) continue;
        lines.push(
          `     ${k} (${title}, no store): p99 ${int(l.p99_us)} µs, ` +
            `${fix(ratio(l.p99_us, mc))} × memcached's`,
        );
      }
    }
    if (r.id === 4 && r.runs.memg?.load !== undefined) {
      const late = (k: string) => int(r.runs[k]?.load?.late_sends);
      lines.push(
        `     requests the generator sent over 200 µs late: memcached ${late("memcached")}, ` +
          `memg ${late("memg")} (of about ${int(r.runs.memg.load.ops)})`,
      );
    }
    if (r.id === 4 && r.runs["memg:paired"]?.load !== undefined) {
      lines.push(
        trafficRow(
          "",
          "  both at once on core 0",
          r.runs["memcached:paired"],
          r.runs["memg:paired"],
        ),
      );
    }
    for (const note of r.notes) lines.push(`     note: ${note}`);
    if (r.invalid !== undefined) lines.push(`     INVALID: ${r.invalid}`);
    for (const [name, m] of Object.entries(r.runs)) {
      if (m.load !== undefined && m.load.cpu_pct >= GENERATOR_BOUND_PCT) {
        warnings.push(
          `scenario ${r.id} ${name}: load generator at ${m.load.cpu_pct}% CPU — it may be the ` +
            `bottleneck`,
        );
      }
    }
  }
  if (warnings.length > 0) lines.push("", ...warnings.map((w) => `WARNING: ${w}`));
  else lines.push("", "load generator below " + GENERATOR_BOUND_PCT + "% CPU in every run");
  return lines.join("\n");
}

/** The targets as text, one per line. */
export function formatTargets(targets: TargetResult[]): string {
  const lines = ["targets (memg issue 6)"];
  for (const t of targets) {
    const want = `${t.atLeast ? "≥" : "≤"} ${t.limit}`;
    const note = t.note ? `  (${t.note})` : "";
    lines.push(
      `  (${t.scenario}) ${t.what.padEnd(32)} ${fix(t.value).padStart(7)}  want ${
        want.padEnd(6)
      } ${t.status}${note}`,
    );
  }
  return lines.join("\n");
}
