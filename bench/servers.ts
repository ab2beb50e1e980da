/**
 * Starting and stopping the servers the benchmark compares — Debian's memcached (`-t 1`), memg
 * (the compiled `./memg` if present, else `deno run -A main.ts`) and the ceiling server (on memg's
 * engine, or, as `bare`, on a loop that never turns Deno's event loop: see bench/ceiling.ts) —
 * each as a fresh child process pinned to CPU 0, plus what the benchmark reads from /proc about
 * them (resident memory, CPU time).
 *
 * @module
 */

/** Which server a measurement ran against. */
export type ServerKind = "memcached" | "memg" | "ceiling" | "bare";

/** The CPU the servers run on; the load generator runs on the other one. */
export const SERVER_CPU = "0";

const ROOT = new URL("../", import.meta.url).pathname;
const MEMCACHED = "/usr/bin/memcached";
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;
/** Writing a CPU profile of a long run takes a while. */
const PROFILED_STOP_TIMEOUT_MS = 60_000;

/** How to start one server. */
export interface ServerOptions {
  memoryMb: number;
  /** Extra flags for memcached and memg alike (e.g. `-c 4096`). */
  extraArgs?: string[];
  /** The value size the ceiling server answers gets with. */
  valueSize?: number;
  /** memg only: run under `deno run --cpu-prof` writing profiles into this directory. */
  profileDir?: string;
  /** memg only: the compiled binary to run instead of `deno run main.ts` (not when profiling). */
  memgBinary?: string | null;
  /**
   * memg only: run the `main.ts` of this other checkout (a directory, also the working
   * directory, so its own `deno.json` applies), with this checkout's V8 flags (`bench/ab.ts`).
   */
  checkout?: string;
  /** memg only: open V8's inspector on this loopback port (`bench/alloc.ts`). */
  inspectPort?: number;
  /** memg only: V8 flags added to memg's own (`bench/alloc.ts --no-inline`). */
  extraV8Flags?: string[];
}

/** A running server child process. */
export interface RunningServer {
  readonly kind: ServerKind;
  readonly pid: number;
  readonly port: number;
  /** The command line it was started with. */
  readonly command: string[];
  /** Resident set size now (VmRSS), in KiB. */
  rssKb(): Promise<number>;
  /** User + system CPU time used so far by all its threads, in seconds. */
  cpuSeconds(): Promise<number>;
  /** Stops it (SIGTERM, then SIGKILL after a timeout) and waits for it to exit. */
  stop(): Promise<void>;
}

/** Every child this module started and has not yet reaped, for cleanup on interrupt. */
const live = new Set<Deno.ChildProcess>();

/** Kills every server still running (used when the benchmark is interrupted). */
export function killServers(): void {
  for (const p of live) {
    try {
      p.kill("SIGKILL");
    } catch {
      // exited already
    }
  }
}

function mtime(path: string): number {
  try {
    return Deno.statSync(path).mtime?.getTime() ?? 0;
  } catch {
    return -1;
  }
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of Deno.readDirSync(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) newest = Math.max(newest, newestSource(path));
    else if (e.name.endsWith(".ts")) newest = Math.max(newest, mtime(path));
  }
  return newest;
}

/**
 * The compiled memg binary (`deno task compile`), if present and newer than main.ts and every
 * source under lib/; null otherwise, so a stale binary is never benchmarked.
 */
export function compiledMemg(): string | null {
  const bin = mtime(`${ROOT}memg`);
  if (bin < 0) return null;
  return bin >= Math.max(mtime(`${ROOT}main.ts`), newestSource(`${ROOT}lib`))
    ? `${ROOT}memg`
    : null;
}

/** Whether a compiled memg binary exists at all (fresh or not). */
export function memgBinaryExists(): boolean {
  return mtime(`${ROOT}memg`) >= 0;
}

/** A free loopback TCP port (bound and released; racy only against other processes). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * The V8 flags of `deno task start` (and of the compiled binary), read from deno.json so that
 * the benchmark runs memg as users do: a larger inlining budget (README, Performance).
 */
export const MEMG_V8_FLAGS: string[] = (() => {
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks as Record<
    string,
    string
  >;
  return tasks.start.split(" ").filter((a) => a.startsWith("--v8-flags="));
})();

function commandFor(kind: ServerKind, port: number, opts: ServerOptions): string[] {
  const extra = opts.extraArgs ?? [];
  const common = ["-l", "127.0.0.1", "-p", String(port), "-m", String(opts.memoryMb), ...extra];
  switch (kind) {
    case "memcached":
      return [MEMCACHED, "-t", "1", "-U", "0", "-u", "root", ...common];
    case "memg": {
      const bin = opts.profileDir === undefined && opts.inspectPort === undefined
        ? opts.memgBinary ?? null
        : null;
      if (bin !== null) return [bin, ...common];
      const prof = opts.profileDir === undefined
        ? []
        : ["--cpu-prof", `--cpu-prof-dir=${opts.profileDir}`];
      if (opts.inspectPort !== undefined) prof.push(`--inspect=127.0.0.1:${opts.inspectPort}`);
      const main = opts.checkout === undefined ? `${ROOT}main.ts` : `${opts.checkout}/main.ts`;
      const more = opts.extraV8Flags ?? [];
      const v8 = more.length === 0 ? MEMG_V8_FLAGS : MEMG_V8_FLAGS.map((f) => [f, ...more].join());
      return [Deno.execPath(), "run", "-A", ...v8, ...prof, main, ...common];
    }
    case "ceiling":
    case "bare":
      return [
        Deno.execPath(),
        "run",
        "-A",
        ...MEMG_V8_FLAGS, // as memg: the ceiling's distance to memg is then the code alone
        `${ROOT}bench/ceiling.ts`,
        String(port),
        String(opts.valueSize ?? 100),
        kind === "bare" ? "bare" : "epoll",
      ];
  }
}

async function tryConnect(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.close();
    return true;
  } catch {
    return false;
  }
}

/** Reads a /proc/<pid> file, or throws naming the server. */
async function procFile(pid: number, name: string): Promise<string> {
  return await Deno.readTextFile(`/proc/${pid}/${name}`);
}

/** Starts `kind` pinned to the server CPU on a free port and waits until it accepts. */
export async function startServer(kind: ServerKind, opts: ServerOptions): Promise<RunningServer> {
  const port = freePort();
  const command = commandFor(kind, port, opts);
  const child = new Deno.Command("taskset", {
    args: ["-c", SERVER_CPU, ...command],
    cwd: kind === "memg" ? opts.checkout ?? ROOT : ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  live.add(child);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    live.delete(child);
    return s;
  });
  const stderr = new Response(child.stderr).text();
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await tryConnect(port))) {
    if (exited || Date.now() > deadline) {
      if (!exited) child.kill("SIGKILL");
      await status;
      throw new Error(
        `${kind} did not start (${command.join(" ")}): ${(await stderr).trim() || "timeout"}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const stopTimeout = opts.profileDir === undefined ? STOP_TIMEOUT_MS : PROFILED_STOP_TIMEOUT_MS;
  return {
    kind,
    pid: child.pid,
    port,
    command,
    rssKb: async () => {
      const m = /^VmRSS:\s+(\d+) kB$/m.exec(await procFile(child.pid, "status"));
      if (m === null) throw new Error(`no VmRSS for ${kind} (pid ${child.pid})`);
      return Number(m[1]);
    },
    cpuSeconds: async () => {
      const stat = await procFile(child.pid, "stat");
      // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(rest[11]) + Number(rest[12])) / clockTicks();
    },
    stop: async () => {
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch {
          // exited meanwhile
        }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch {
            // exited meanwhile
          }
        }, stopTimeout);
        await status;
        clearTimeout(timer);
      }
      await stderr;
    },
  };
}

let ticks = 0;
/** The kernel's clock ticks per second (getconf CLK_TCK), for /proc/<pid>/stat times. */
function clockTicks(): number {
  if (ticks === 0) {
    const out = new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).outputSync();
    ticks = Number(new TextDecoder().decode(out.stdout).trim()) || 100;
  }
  return ticks;
}
