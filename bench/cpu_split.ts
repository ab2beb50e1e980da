/**
 * User and kernel CPU time per request of one server alone on the server core, under the traffic
 * of a closed-loop benchmark scenario (keys pre-loaded, one warm-up run first): the figures the
 * README's "What this VM shows" gives. Reads utime and stime from `/proc/<pid>/stat` before and
 * after the measured run and divides them by the requests the generator completed in it.
 *
 *     deno run -A bench/cpu_split.ts [--server memg|ceiling|memcached] [--scenario 2]
 *                                    [--rounds 3] [--duration 5] [--checkout DIR]
 *
 * The ceiling's canned replies are checked for their shape only, as `deno task bench` checks them.
 *
 * @module
 */
import { parseArgs } from "@std/cli/parse-args";
import { buildLoadgen, type LoadSpec, runLoadgen } from "./loadgen.ts";
import { closedLoopTraffic, type Traffic } from "./scenarios.ts";
import { type ServerKind, startServer } from "./servers.ts";

/** Clock ticks per second of `/proc/<pid>/stat`'s times (`getconf CLK_TCK`; 100 on Linux). */
const TICKS = 100;

/** utime and stime of `pid` so far, in seconds. */
async function cpuTimes(pid: number): Promise<{ user: number; kernel: number }> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // fields after the command name, which is in parentheses and may hold spaces
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(f[11]) / TICKS, kernel: Number(f[12]) / TICKS };
}

function spec(port: number, t: Traffic, seconds: number, verify: LoadSpec["verify"]): LoadSpec {
  return {
    ...t,
    port,
    preload: false,
    duration: seconds,
    warmup: 0,
    verify,
    timeout: seconds + 30,
  };
}

if (import.meta.main) {
  const args = parseArgs(Deno.args, {
    string: ["server", "scenario", "rounds", "duration", "checkout"],
  });
  const kind = (args.server ?? "memg") as ServerKind;
  const scenario = Number(args.scenario ?? "2");
  const traffic = closedLoopTraffic(scenario);
  const rounds = Number(args.rounds ?? "3");
  const duration = Number(args.duration ?? "5");
  if (
    !["memg", "ceiling", "memcached"].includes(kind) || traffic === null ||
    ![rounds, duration].every((n) => Number.isInteger(n) && n > 0)
  ) {
    console.error(
      "usage: deno run -A bench/cpu_split.ts [--server memg|ceiling|memcached] " +
        "[--scenario 1|2|3|7] [--rounds N] [--duration S] [--checkout DIR]",
    );
    Deno.exit(64);
  }
  const loadgen = await buildLoadgen();
  const verify = kind === "ceiling" ? "shape" : "full";
  console.log(`${kind}, scenario ${scenario}, ${duration} s per round`);
  for (let r = 0; r < rounds; r++) {
    const server = await startServer(kind, {
      memoryMb: 1024,
      valueSize: traffic.valueSize,
      checkout: args.checkout === undefined ? undefined : Deno.realPathSync(args.checkout),
    });
    try {
      if (kind !== "ceiling") {
        await runLoadgen(loadgen, {
          ...spec(server.port, traffic, 0, "full"),
          conns: Math.min(50, traffic.conns),
          depth: 1,
          preload: true,
          timeout: 60,
        });
      }
      await runLoadgen(loadgen, spec(server.port, traffic, 2, verify)); // the JIT's warm-up
      const before = await cpuTimes(server.pid);
      const load = await runLoadgen(loadgen, spec(server.port, traffic, duration, verify));
      const after = await cpuTimes(server.pid);
      const ns = (s: number) => (s * 1e9 / load.ops).toFixed(0);
      console.log(
        `round ${r + 1}: ${Math.round(load.ops_per_sec)} requests/s; per request ` +
          `${ns(after.user - before.user)} ns user, ${ns(after.kernel - before.kernel)} ns kernel` +
          `; generator ${load.cpu_pct.toFixed(0)} % of its core`,
      );
    } finally {
      await server.stop();
    }
  }
}
