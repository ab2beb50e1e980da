/**
 * Starting servers for tests: memg in this process (with an injectable clock), memg as a child
 * process (for signals, flags and exit codes), and Debian's memcached as the reference.
 *
 * @module
 */
import { createServer } from "../../main.ts";
import { parseConfig } from "../../lib/config.ts";
import type { Server } from "../../lib/server.ts";
import { type Clock, systemClock } from "../../lib/store/store.ts";

/** A server a test talks to over loopback. */
export interface TestServer {
  port: number;
  close(): Promise<void>;
}

/** A memg running inside the test process; `server` gives access to its cache and store. */
export interface InProcessMemg extends TestServer {
  server: Server;
}

/** Starts memg in this process on a free loopback port with memcached-style `args`. */
export function startMemg(args: string[] = [], clock: Clock = systemClock): InProcessMemg {
  const { config } = parseConfig(["-p", "0", ...args]);
  const server = createServer(config, clock);
  const [addr] = server.listen();
  server.serve();
  return {
    port: (addr as Deno.NetAddr).port,
    server,
    close: async () => {
      server.shutdown(false);
      await server.done;
    },
  };
}

/** A memg child process. */
export interface ChildMemg extends TestServer {
  process: Deno.ChildProcess;
  /** Lines the server printed to stdout (the start-up line first). */
  stdout: string[];
  /** What the server printed to stderr so far, in pieces as they arrived. */
  stderr: string[];
  /** Sends `signal` and resolves with the exit status. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** The permission flags `deno task start` grants (read from deno.json), for child processes. */
export const START_PERMISSIONS: string[] = (() => {
  const tasks = JSON.parse(Deno.readTextFileSync(CONFIG)).tasks as Record<string, string>;
  return tasks.start.split(/\s+/).filter((w) => w.startsWith("--allow-") || w === "--no-prompt");
})();

/** Runs `main.ts` with `args` and the start permissions to completion (flags that exit at once). */
export async function runMain(
  args: string[],
): Promise<Deno.CommandOutput & { out: string; err: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--config", CONFIG, ...START_PERMISSIONS, MAIN, ...args],
    stdin: "null",
  }).output();
  const text = new TextDecoder();
  return { ...output, out: text.decode(output.stdout), err: text.decode(output.stderr) };
}

/** Starts `deno run main.ts -p 0 ...args` and waits for its start-up line. */
export async function spawnMemg(args: string[] = [], permissions = START_PERMISSIONS) {
  return await spawnMemgUnder([], args, permissions);
}

/**
 * As `spawnMemg`, run by a wrapper command that execs it (`prefix`, such as `prlimit
 * --nofile=N:N`), so that the child's pid is memg's.
 */
export async function spawnMemgUnder(
  prefix: string[],
  args: string[] = [],
  permissions = START_PERMISSIONS,
): Promise<ChildMemg> {
  const [command, ...before] = [...prefix, Deno.execPath()];
  const process = new Deno.Command(command, {
    args: [...before, "run", "--config", CONFIG, ...permissions, MAIN, "-p", "0", ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  return await attach(process);
}

/** Waits for a memg child's start-up line and wraps it. */
export async function attach(process: Deno.ChildProcess): Promise<ChildMemg> {
  const stdout: string[] = [];
  const lines = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  let port = -1;
  while (port < 0) {
    const { value, done } = await lines.read();
    if (done) {
      const err = await new Response(process.stderr).text();
      await process.status;
      throw new Error(`memg exited before listening: ${err}`);
    }
    pending += value;
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      stdout.push(line);
      const m = /listening on tcp:[^ ]*:(\d+)$/.exec(line) ?? /listening on unix:/.exec(line);
      if (m !== null) port = m[1] ? Number(m[1]) : 0;
    }
  }
  const drain = (async () => {
    for (;;) {
      const { value, done } = await lines.read();
      if (done) return;
      stdout.push(...value.split("\n").filter((l) => l !== ""));
    }
  })();
  const errors: string[] = [];
  const stderr = process.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void errors.push(chunk) }),
  );
  return {
    port,
    process,
    stdout,
    stderr: errors,
    stop: async (signal: Deno.Signal = "SIGTERM") => {
      try {
        process.kill(signal);
      } catch {
        // exited already
      }
      const status = await process.status;
      await drain;
      await stderr;
      return status;
    },
    close: async () => {
      try {
        process.kill("SIGKILL");
      } catch {
        // exited already
      }
      await process.status;
      await drain;
      await stderr;
    },
  };
}

/** A free loopback TCP port (bound and released; racy only against other processes). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Whether Debian's memcached is installed. */
export function haveMemcached(): boolean {
  try {
    return Deno.statSync("/usr/bin/memcached").isFile;
  } catch {
    return false;
  }
}

/**
 * Runs `command` with `args` as a server on loopback `port`, and resolves once the port takes a
 * connection (or after about 2 s, when the first request will fail). `close` kills it.
 */
export async function spawnServer(
  command: string,
  args: string[],
  port: number,
  env?: Record<string, string>,
): Promise<TestServer> {
  const process = new Deno.Command(command, {
    args,
    env,
    stdout: "null",
    stderr: "null",
    stdin: "null",
  }).spawn();
  for (let i = 0; i < 100; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return {
    port,
    close: async () => {
      process.kill("SIGKILL");
      await process.status;
    },
  };
}

/** Starts Debian's memcached on a free loopback port, with `args`. */
export function spawnMemcached(args: string[] = []): Promise<TestServer> {
  const port = freePort();
  const common = ["-l", "127.0.0.1", "-p", String(port), "-U", "0", "-u", "root"];
  return spawnServer("/usr/bin/memcached", [...common, ...args], port);
}
