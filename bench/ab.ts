/**
 * Same-core A/B of two memg checkouts: both servers pinned to core 0 at the same time, each
 * driven by its own load generator on core 1. This VM's slow spells move a lone run by up to
 * ±30 % within minutes; sharing one core, both servers live through the same spells, so the
 * ratio of their throughputs is the ratio of their costs per request. Each round swaps which
 * checkout starts first and which port it gets. The traffic is that of benchmark scenario 1, 2,
 * 3 or 7 (closed loop, keys pre-loaded).
 *
 *     deno run -A bench/ab.ts <checkout-a> <checkout-b> [--scenario 2] [--rounds 4] [--duration 5]
 *
 * (Another checkout: `git worktree add /tmp/base <commit>`.) Prints each round's ops/s and
 * B/A, then the median B/A. An A/A run (the same checkout twice) shows the method's own
 * spread: rounds of 0.96–1.02 here, median 1.000 over four.
 *
 * @module
 */
import { parseArgs } from "@std/cli/parse-args";
import { buildLoadgen, type LoadResult, type LoadSpec, runLoadgen } from "./loadgen.ts";
import { closedLoopTraffic, type Traffic } from "./scenarios.ts";
import { type RunningServer, startServer } from "./servers.ts";

function spec(port: number, t: Traffic, duration: number, preload: boolean): LoadSpec {
  return {
    ...t,
    port,
    depth: preload ? 1 : t.depth,
    conns: preload ? Math.min(50, t.conns) : t.conns,
    preload,
    duration: preload ? 0 : duration,
    warmup: preload ? 0 : 2,
    verify: "full",
    timeout: preload ? 60 : duration + 30,
  };
}

/** One round: both servers up, both pre-loaded, both generators at once. [A, B] results. */
async function round(
  loadgen: string,
  dirs: [string, string],
  t: Traffic,
  duration: number,
  swap: boolean,
): Promise<[LoadResult, LoadResult]> {
  const order = swap ? [1, 0] : [0, 1];
  const servers: RunningServer[] = [];
  try {
    for (const i of order) {
      servers[i] = await startServer("memg", {
        memoryMb: 1024,
        checkout: Deno.realPathSync(dirs[i]),
      });
    }
    for (const s of servers) await runLoadgen(loadgen, spec(s.port, t, duration, true));
    const [a, b] = await Promise.all(
      servers.map((s) => runLoadgen(loadgen, spec(s.port, t, duration, false))),
    );
    return [a, b];
  } finally {
    for (const s of servers) if (s !== undefined) await s.stop();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

if (import.meta.main) {
  const args = parseArgs(Deno.args, { string: ["scenario", "rounds", "duration"] });
  const dirs = args._.map(String);
  const scenario = Number(args.scenario ?? "2");
  const traffic = closedLoopTraffic(scenario);
  const rounds = Number(args.rounds ?? "4");
  const duration = Number(args.duration ?? "5");
  if (
    dirs.length !== 2 || traffic === null ||
    ![rounds, duration].every((n) => Number.isInteger(n) && n > 0)
  ) {
    console.error(
      "usage: deno run -A bench/ab.ts <checkout-a> <checkout-b> [--scenario 1|2|3|7] " +
        "[--rounds N] [--duration S]",
    );
    Deno.exit(64);
  }
  const loadgen = await buildLoadgen();
  console.log(`A = ${dirs[0]}, B = ${dirs[1]}; scenario ${scenario}, ${duration} s per round`);
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const [a, b] = await round(loadgen, [dirs[0], dirs[1]], traffic, duration, r % 2 === 1);
    const ratio = b.ops_per_sec / a.ops_per_sec;
    ratios.push(ratio);
    const genPct = a.cpu_pct + b.cpu_pct;
    console.log(
      `round ${r + 1}: A ${Math.round(a.ops_per_sec)} ops/s, B ${Math.round(b.ops_per_sec)} ` +
        `ops/s, B/A ${ratio.toFixed(3)}; generators ${genPct.toFixed(0)} % of their core` +
        (genPct > 90 ? " (near saturation: the ratio may understate the difference)" : ""),
    );
  }
  console.log(`median B/A ${median(ratios).toFixed(3)} over ${rounds} rounds`);
}
