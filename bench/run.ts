/**
 * `deno task bench`: memg side by side with Debian's memcached (`-t 1`) on loopback, one
 * fresh server process per measurement (memcached, then memg), the server pinned to CPU 0 and
 * the C load generator (bench/loadgen.c, built on demand) to CPU 1. Prints a table of ops/s,
 * p99/p99.9 latencies and memg/memcached ratios, then PASS/FAIL for each target of memg
 * issue 6. Exits 1 if any measurement was invalid (a wrong reply, a miss, a crash, a timeout);
 * missed targets are reported, not treated as errors.
 *
 * Flags: --scenario N (repeatable or comma list; default all), --duration S (default 10),
 * --warmup S, --rounds N (repeat each scenario N times, alternating which server goes first,
 * and report medians), --quick (2 s runs, smaller item counts), --json FILE, --profile (memg
 * under `deno run --cpu-prof`, top self-time frames printed per memg run), --server-args
 * ="FLAGS" (given to memcached and memg alike, e.g. `-L` for large pages).
 *
 * @module
 */
import { parseArgs as untypedParseArgs } from "@std/cli/parse-args";
import { buildLoadgen, killLoadgens, OUT_DIR } from "./loadgen.ts";
import { evaluate, formatTable, formatTargets } from "./report.ts";
import { combineRounds } from "./rounds.ts";
import {
  ALL_SCENARIOS,
  runScenario,
  type ScenarioResult,
  type Settings,
  title,
} from "./scenarios.ts";
import { compiledMemg, killServers, MEMG_V8_FLAGS, memgBinaryExists } from "./servers.ts";

const USAGE = `usage: deno task bench [--scenario N[,N...]]... [--duration S] [--warmup S]
                       [--rounds N] [--quick] [--json FILE] [--profile]
                       [--server-args="FLAGS"]
scenarios: 1 small values, 2 pipelined (+ ceiling), 3 64 KiB values, 4 1000 light connections,
           5 RSS per item, 6 latency with many resident items, 7 binary protocol`;

type Flags = {
  scenario: string[];
  duration?: string;
  warmup?: string;
  json?: string;
  rounds?: string;
  "server-args"?: string;
  quick: boolean;
  profile: boolean;
  help: boolean;
  _: Array<string | number>;
};
const parseArgs = untypedParseArgs as (args: string[], opts: {
  string: string[];
  boolean: string[];
  collect: string[];
  unknown: (arg: string) => boolean;
}) => Flags;

function fail(message: string): never {
  console.error(`bench: ${message}\n${USAGE}`);
  Deno.exit(64);
}

function positive(text: string | undefined, name: string, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) fail(`--${name} wants a non-negative number, not ${text}`);
  return n;
}

function scenarioList(specs: string[]): number[] {
  if (specs.length === 0) return ALL_SCENARIOS;
  const ids = specs.flatMap((s) => s.split(",")).map((s) => Number(s.trim()));
  for (const id of ids) if (!ALL_SCENARIOS.includes(id)) fail(`no scenario ${id}`);
  return [...new Set(ids)];
}

function loadavg(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}

/**
 * The guest's DAMON monitors (`/sys/kernel/mm/damon`), which sample page access bits every
 * interval and may page out memory they find cold; on the VM of 2026-12-08 they set scenario
 * 4's tail (README, What decides (4)). Empty when there are none.
 */
function damonState(): string {
  const root = "/sys/kernel/mm/damon/admin/kdamonds";
  try {
    const states: string[] = [];
    for (const d of Deno.readDirSync(root)) {
      if (!/^\d+$/.test(d.name)) continue;
      const state = Deno.readTextFileSync(`${root}/${d.name}/state`).trim();
      let actions = "";
      try {
        const schemes = `${root}/${d.name}/contexts/0/schemes`;
        actions = [...Deno.readDirSync(schemes)].filter((e) => /^\d+$/.test(e.name))
          .map((e) => Deno.readTextFileSync(`${schemes}/${e.name}/action`).trim()).join(",");
      } catch {
        // no schemes: monitoring only
      }
      states.push(`kdamond ${d.name} ${state}${actions ? ` (${actions})` : ""}`);
    }
    return states.length > 0 ? `; guest DAMON: ${states.join(", ")}` : "";
  } catch {
    return "";
  }
}

function gitCommit(): string {
  try {
    const out = new Deno.Command("git", {
      args: ["rev-parse", "--short", "HEAD"],
      cwd: new URL("../", import.meta.url).pathname,
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    return new TextDecoder().decode(out.stdout).trim() || "?";
  } catch {
    return "?";
  }
}

async function main(): Promise<number> {
  const flags = parseArgs(Deno.args, {
    string: ["scenario", "duration", "warmup", "json", "rounds", "server-args"],
    boolean: ["quick", "profile", "help"],
    collect: ["scenario"],
    unknown: (arg) => fail(`unknown argument ${arg}`),
  });
  if (flags.help) {
    console.log(USAGE);
    return 0;
  }
  const ids = scenarioList(flags.scenario);
  const quick = flags.quick;
  const profileDir = flags.profile ? `${OUT_DIR}/prof` : null;
  const settings: Settings = {
    duration: positive(flags.duration, "duration", quick ? 2 : 10),
    warmup: positive(flags.warmup, "warmup", quick ? 0.5 : 1),
    quick,
    profileDir,
    loadgen: await buildLoadgen(),
    memgBinary: profileDir === null ? compiledMemg() : null,
    serverArgs: (flags["server-args"] ?? "").split(/\s+/).filter((a) => a !== ""),
    log: (line) => console.log(line),
  };
  if (settings.duration === 0) fail("--duration must be above 0");
  const roundCount = positive(flags.rounds, "rounds", 1);
  if (!Number.isInteger(roundCount) || roundCount < 1) fail("--rounds wants a whole number ≥ 1");

  const run = `deno run -A ${MEMG_V8_FLAGS.join(" ")}`;
  const memg = profileDir !== null
    ? `${run} --cpu-prof main.ts (profiling)`
    : settings.memgBinary ?? (memgBinaryExists()
      ? `${run} main.ts (./memg is older than the sources: not used)`
      : `${run} main.ts`);
  console.log(
    `memg benchmark, commit ${gitCommit()}, ${new Date().toISOString()}\n` +
      `memg: ${memg}; memcached: /usr/bin/memcached -t 1\n` +
      (settings.serverArgs.length > 0 ? `both with ${settings.serverArgs.join(" ")}\n` : "") +
      `${settings.duration} s measured after ${settings.warmup} s warm-up per run` +
      `${quick ? " (--quick)" : ""}; server on CPU 0, load generator on CPU 1; ` +
      `load average ${loadavg()}${damonState()}`,
  );

  Deno.addSignalListener("SIGINT", () => {
    killLoadgens();
    killServers();
    Deno.exit(130);
  });
  const results: ScenarioResult[] = [];
  const allRounds: ScenarioResult[][] = [];
  for (const id of ids) {
    const rounds: ScenarioResult[] = [];
    for (let r = 0; r < roundCount; r++) {
      console.log(`scenario ${id}: ${title(id, quick)}${roundCount > 1 ? `, round ${r + 1}` : ""}`);
      rounds.push(await runScenario(settings, id, r));
    }
    allRounds.push(rounds);
    results.push(combineRounds(rounds));
  }

  const targets = evaluate(results);
  console.log(`\nload average at the end ${loadavg()}\n`);
  console.log(formatTable(results));
  console.log("");
  console.log(formatTargets(targets));
  if (flags.json !== undefined) {
    const report = {
      date: new Date().toISOString(),
      commit: gitCommit(),
      memg,
      settings: { ...settings, log: undefined },
      results,
      rounds: allRounds,
      targets,
    };
    await Deno.writeTextFile(flags.json, JSON.stringify(report, null, 2) + "\n");
    console.log(`\nwrote ${flags.json}`);
  }
  const invalid = results.filter((r) => r.invalid !== undefined);
  if (invalid.length > 0) {
    console.error(`\nbench: ${invalid.length} scenario(s) INVALID: ${invalid.map((r) => r.id)}`);
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
