/**
 * What memg allocates per request under a benchmark scenario's traffic: memg (`deno run
 * main.ts`, on core 0) with V8's inspector on a loopback port, keys pre-loaded, the scenario's
 * traffic from the C load generator (core 1), and in the middle of the measured window V8's
 * sampling heap profiler (`HeapProfiler.startSampling`, objects a scavenge or a full
 * collection freed included). Prints the bytes allocated per request and the allocation
 * sites that allocated most (function, and the file and line where that function starts;
 * inlined callees count in their caller: `--no-inline` charges each function its own).
 *
 *     deno run -A bench/alloc.ts [--scenario 4] [--seconds 4] [--top 12] [--no-inline]
 *                                [--checkout DIR]
 *
 * (`--checkout`: the memg of another checkout, e.g. `git worktree add /tmp/base <commit>`.)
 *
 * Scenario 4 (1,000 connections at 5,000 req/s) shows what a round of the poller costs when a
 * round is about one request; scenario 1 or 2 what a request costs in a busy round.
 *
 * @module
 */
import { parseArgs } from "@std/cli/parse-args";
import { buildLoadgen, type LoadSpec, runLoadgen } from "./loadgen.ts";
import { scenarioTraffic, type Traffic } from "./scenarios.ts";
import { startServer } from "./servers.ts";

const INSPECT_PORT = 9329;
/** Mean bytes between samples: small enough for sites of a few bytes per request. */
const SAMPLING_INTERVAL = 256;
const WARMUP_S = 4;

/** A node of V8's sampling heap profile (`HeapProfiler.SamplingHeapProfileNode`). */
interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

/** The smallest client of the inspector protocol: one call at a time over its WebSocket. */
async function inspector(port: number) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as Array<
    { webSocketDebuggerUrl: string }
  >;
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const waiting = new Map<number, (result: unknown) => void>();
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data as string);
    waiting.get(m.id)?.(m.result);
    waiting.delete(m.id);
  };
  let next = 0;
  return {
    call: (method: string, params: Record<string, unknown> = {}): Promise<unknown> =>
      new Promise((resolve) => {
        const id = ++next;
        waiting.set(id, resolve);
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

function site(n: ProfileNode): string {
  const f = n.callFrame;
  const file = f.url === "" ? "(native)" : f.url.split("/").slice(-2).join("/");
  return `${f.functionName || "(anonymous)"} ${file}:${f.lineNumber + 1}`;
}

/** Bytes by allocation site, each with the two frames that called it. */
function bySite(root: ProfileNode): Map<string, number> {
  const sizes = new Map<string, number>();
  const walk = (n: ProfileNode, callers: string[]) => {
    const path = [site(n), ...callers].slice(0, 3).join(" ← ");
    if (n.selfSize > 0) sizes.set(path, (sizes.get(path) ?? 0) + n.selfSize);
    for (const c of n.children) walk(c, [site(n), ...callers]);
  };
  walk(root, []);
  return sizes;
}

function spec(port: number, t: Traffic, preload: boolean, duration: number): LoadSpec {
  return {
    ...t,
    port,
    conns: preload ? Math.min(50, t.conns) : t.conns,
    depth: preload ? 1 : t.depth,
    rate: preload ? 0 : t.rate,
    preload,
    duration: preload ? 0 : duration,
    warmup: preload ? 0 : WARMUP_S,
    verify: "full",
    timeout: preload ? 60 : WARMUP_S + duration + 30,
  };
}

if (import.meta.main) {
  const args = parseArgs(Deno.args, {
    string: ["scenario", "seconds", "top", "checkout"],
    boolean: ["no-inline"],
  });
  const id = Number(args.scenario ?? "4");
  const traffic = scenarioTraffic(id);
  const seconds = Number(args.seconds ?? "4");
  const top = Number(args.top ?? "12");
  if (traffic === null || !(seconds > 0) || !(top > 0)) {
    console.error(
      "usage: deno run -A bench/alloc.ts [--scenario 1|2|3|4|7] [--seconds S] [--top N] " +
        "[--no-inline] [--checkout DIR]",
    );
    Deno.exit(64);
  }
  const loadgen = await buildLoadgen();
  const server = await startServer("memg", {
    memoryMb: 1024,
    extraArgs: ["-c", "4096"],
    inspectPort: INSPECT_PORT,
    checkout: args.checkout === undefined ? undefined : Deno.realPathSync(args.checkout),
    extraV8Flags: args["no-inline"] ? ["--no-turbo-inlining", "--no-maglev-inlining"] : [],
  });
  try {
    await runLoadgen(loadgen, spec(server.port, traffic, true, 0));
    // The window: the generator measures seconds + 2, the profiler samples the middle seconds.
    const load = runLoadgen(loadgen, spec(server.port, traffic, false, seconds + 2));
    await new Promise((r) => setTimeout(r, (WARMUP_S + 1) * 1000));
    const v8 = await inspector(INSPECT_PORT);
    await v8.call("HeapProfiler.enable");
    await v8.call("HeapProfiler.startSampling", {
      samplingInterval: SAMPLING_INTERVAL,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const { profile } = await v8.call("HeapProfiler.stopSampling") as {
      profile: { head: ProfileNode };
    };
    v8.close();
    const result = await load;
    const sizes = bySite(profile.head);
    const total = [...sizes.values()].reduce((a, b) => a + b, 0);
    const requests = result.ops_per_sec * seconds;
    console.log(
      `scenario ${id}: ${Math.round(result.ops_per_sec)} req/s; sampled ${seconds} s: ` +
        `${(total / 1e6).toFixed(2)} MB allocated, ${(total / requests).toFixed(0)} bytes ` +
        `per request`,
    );
    for (const [path, bytes] of [...sizes].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${(bytes / requests).toFixed(1).padStart(7)} B/req  ${path}`);
    }
  } finally {
    await server.stop();
  }
}
