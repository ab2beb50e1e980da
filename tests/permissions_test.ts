/**
 * Least privilege: memg started exactly as `deno task start` starts it (the permission flags are
 * read from deno.json) drops every permission it no longer needs once it listens. Shown twice:
 * by the `permission_*` rows of `stats settings`, and directly — a probe module preloaded into
 * the same process (`deno run --preload`, test code only) tries to read a secret file, write a
 * file, read the environment, open a socket, query the system and run a program, once before
 * memg starts and again on SIGUSR1 once it serves; the test then checks the file system too.
 * Also: what memg needs after start-up still works (TLS and password files already read, the
 * metrics port, the unix socket removed at exit, the snapshot saved at exit), and a grant the
 * operator narrowed to one path stays narrow.
 */
import { filesAfterStartup } from "../lib/permissions.ts";
import { parseConfig } from "../lib/config.ts";
import { assert, assertEquals, assertMatch } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const dec = new TextDecoder();

/** The words of a deno.json task. */
async function task(name: string): Promise<string[]> {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks;
  return (tasks[name] as string).split(/\s+/);
}

/** The permission flags `deno task start` passes to `deno run`, in order (V8's left out). */
async function startFlags(): Promise<string[]> {
  const words = await task("start");
  assertEquals(words.slice(0, 2), ["deno", "run"]);
  assertEquals(words[words.length - 1], "main.ts");
  return words.slice(2, -1).filter((w) => !isV8Flags(w));
}

function isV8Flags(word: string): boolean {
  return word.startsWith("--v8-flags=");
}

const WANTED = [
  "--no-prompt",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-ffi",
  "--allow-env=MEMCACHED_SASL_PWDB",
];

/** The probe's results: each attempt's outcome, `ok` or the error's name. */
type Probe = Record<"read" | "write" | "env" | "net" | "sys" | "run" | "ffi", string>;

/** Source of the preloaded probe: tries everything at load and again on SIGUSR1. */
function probeSource(secret: string, target: string): string {
  return `
const attempts = {
  read: () => Deno.readTextFileSync(${JSON.stringify(secret)}),
  write: (phase) => Deno.writeTextFileSync(${JSON.stringify(target)} + "." + phase, phase),
  env: () => Deno.env.get("MEMCACHED_SASL_PWDB"),
  net: () => Deno.listen({ hostname: "127.0.0.1", port: 0 }).close(),
  sys: () => Deno.hostname(),
  run: () => new Deno.Command("true").outputSync(),
  ffi: () => Deno.dlopen("libc.so.6", { getpid: { parameters: [], result: "i32" } }).close(),
};
function probe(phase) {
  const out = {};
  for (const [name, attempt] of Object.entries(attempts)) {
    try {
      attempt(phase);
      out[name] = "ok";
    } catch (e) {
      out[name] = e.name;
    }
  }
  console.error("PROBE " + phase + " " + JSON.stringify(out));
}
probe("before");
Deno.addSignalListener("SIGUSR1", () => probe("after"));
`;
}

/** A memg child process whose stdout and stderr lines are collected as they arrive. */
class Child {
  readonly process: Deno.ChildProcess;
  readonly out: string[] = [];
  readonly err: string[] = [];
  readonly #pumps: Promise<void>[];
  #wake: () => void = () => {};
  #ended = false;

  constructor(args: string[]) {
    this.process = new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#pumps = [
      this.#pump(this.process.stdout, this.out),
      this.#pump(this.process.stderr, this.err),
    ];
    Promise.all(this.#pumps).then(() => {
      this.#ended = true;
      this.#wake();
    });
  }

  async #pump(stream: ReadableStream<Uint8Array>, lines: string[]): Promise<void> {
    let pending = "";
    for await (const chunk of stream) {
      pending += dec.decode(chunk, { stream: true });
      let nl;
      while ((nl = pending.indexOf("\n")) >= 0) {
        lines.push(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
      this.#wake();
    }
    if (pending !== "") lines.push(pending);
  }

  /** Waits (at most 10 s) for a line of `which` matching `re`; rejects if memg ends first. */
  async waitFor(which: "out" | "err", re: RegExp): Promise<RegExpExecArray> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      for (const line of this[which]) {
        const m = re.exec(line);
        if (m !== null) return m;
      }
      if (this.#ended) throw new Error(`memg ended without ${re}; stderr: ${this.err.join("\n")}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${re} in 10 s; stderr: ${this.err.join("\n")}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** The port of the listener the start-up line names `kind` (`tcp` or `tls`). */
  async port(kind: "tcp" | "tls"): Promise<number> {
    return Number((await this.waitFor("out", new RegExp(`listening on ${kind}:[^ ]*:(\\d+)$`)))[1]);
  }

  /** Sends SIGUSR1 and returns what the probe found (once per child). */
  async probe(): Promise<Probe> {
    this.process.kill("SIGUSR1");
    return JSON.parse((await this.waitFor("err", /^PROBE after (.*)$/))[1]);
  }

  /** What the probe found before memg started. */
  async before(): Promise<Probe> {
    const m = await this.waitFor("err", /^PROBE before (.*)$/);
    return JSON.parse(m[1]);
  }

  /** Sends `signal`, waits for the exit status and the end of the output. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      this.process.kill(signal);
    } catch {
      // exited already
    }
    const status = await this.process.status;
    await Promise.all(this.#pumps);
    return status;
  }
}

function statRows(reply: string): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of reply.split("\r\n")) {
    const m = /^STAT (\S+) (.*)$/.exec(line);
    if (m !== null) rows.set(m[1], m[2]);
  }
  return rows;
}

/** Anything that sends a request and reads the reply up to `suffix`. */
interface Caller {
  call(request: string, suffix?: string): Promise<string>;
}

/** The `permission_*` rows of `stats settings`, name → value. */
async function permissionRows(c: Caller): Promise<Record<string, string>> {
  const rows = statRows(await c.call("stats settings\r\n", "END\r\n"));
  const out: Record<string, string> = {};
  for (const [k, v] of rows) if (k.startsWith("permission_")) out[k.slice(11)] = v;
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Fetches `url` with a client of its own, closed afterwards. */
async function fetchStatus(url: URL): Promise<number> {
  const client = Deno.createHttpClient({});
  try {
    const res = await fetch(url, { client });
    await res.body?.cancel();
    return res.status;
  } finally {
    client.close();
  }
}

const ALL_DENIED = {
  net: "denied",
  read: "denied",
  write: "denied",
  env: "denied",
  sys: "denied",
  run: "denied",
  ffi: "denied",
  import: "denied",
};
const PROBE_DENIED: Probe = {
  read: "NotCapable",
  write: "NotCapable",
  env: "NotCapable",
  net: "NotCapable",
  sys: "NotCapable",
  run: "NotCapable",
  ffi: "NotCapable",
};

Deno.test("deno.json: start and compile grant only what memg's flags can need", async () => {
  assertEquals(await startFlags(), WANTED);
  const compile = await task("compile");
  assertEquals(compile.slice(0, 2), ["deno", "compile"]);
  const o = compile.indexOf("-o");
  assertEquals(
    compile.slice(2, o).filter((w) => !isV8Flags(w)),
    WANTED,
    "deno task compile must grant what start grants",
  );
  // the binary runs with the V8 flags `deno task start` runs with (README, Performance)
  assertEquals(compile.filter(isV8Flags), (await task("start")).filter(isV8Flags));
  assertEquals(compile[compile.length - 1], "main.ts");
});

Deno.test("filesAfterStartup: only the unix socket and the snapshot are touched after start-up", () => {
  const files = (...args: string[]) => filesAfterStartup(parseConfig(args).config);
  assertEquals(files(), { read: [], write: [] });
  assertEquals(files("-Z", "-o", "ssl_chain_cert=c.pem,ssl_key=k.pem", "-Y", "auth"), {
    read: [],
    write: [],
  });
  assertEquals(files("-s", "/run/memg.sock"), { read: [], write: ["/run/memg.sock"] });
  assertEquals(files("--snapshot", "/var/lib/memg/snap"), {
    read: ["/var/lib/memg/snap", "/var/lib/memg/snap.tmp", "/var/lib/memg"],
    write: ["/var/lib/memg/snap", "/var/lib/memg/snap.tmp"],
  });
  assertEquals(files("--snapshot", "snap").read, ["snap", "snap.tmp", "."]);
});

Deno.test("after start-up memg can read, write, reach and run nothing else", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "memg-perm-" });
  const secret = `${dir}/secret`;
  const target = `${dir}/written`;
  const auth = `${dir}/auth`;
  const cert = `${dir}/cert.pem`;
  const key = `${dir}/key.pem`;
  await Deno.writeTextFile(secret, "do not read me");
  await Deno.writeTextFile(auth, "memg:s3cret\n");
  const made = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-days",
      "1",
      "-keyout",
      key,
      "-out",
      cert,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert(made.success, dec.decode(made.stderr));
  await Deno.writeTextFile(`${dir}/probe.ts`, probeSource(secret, target));
  const flags = await startFlags();
  const memg = new Child([
    "run",
    ...flags,
    "--preload",
    `${dir}/probe.ts`,
    "main.ts",
    "-l",
    "127.0.0.1:0",
    "-Z",
    "-o",
    `ssl_chain_cert=${cert},ssl_key=${key}`,
    "-l",
    "notls:127.0.0.1:0",
    "-Y",
    auth,
    "--metrics-port",
    "0",
    "-v",
  ]);
  try {
    await t.step("before start-up the task's flags grant read, write, env, net, ffi", async () => {
      assertEquals(await memg.before(), {
        read: "ok",
        write: "ok",
        env: "ok",
        net: "ok",
        sys: "NotCapable",
        run: "NotCapable",
        ffi: "ok",
      });
      assert(await exists(`${target}.before`), "the probe could not write before start-up");
    });

    const plainPort = await memg.port("tcp");
    const tlsPort = await memg.port("tls");
    const c = await RawClient.connect(plainPort);
    try {
      await t.step("stats settings: every permission denied once memg serves", async () => {
        await memg.waitFor(
          "err",
          /^memg: permissions revoked after start-up: net, read, write, env, sys, run, ffi, import$/,
        );
        assertEquals(await c.call("set x 0 0 11\r\nmemg s3cret\r\n"), "STORED\r\n");
        assertEquals(await permissionRows(c), ALL_DENIED);
        // the epoll engine, loaded through FFI before `ffi` was revoked, serves this client
        assertMatch(await c.call("stats settings\r\n", "END\r\n"), /\r\nSTAT io_engine epoll\r\n/);
      });

      await t.step("directly: the probe in memg's process is refused everything", async () => {
        assertEquals(await memg.probe(), PROBE_DENIED);
        assert(!(await exists(`${target}.after`)), "a file was written after start-up");
      });

      await t.step("what was read at start-up still serves: auth, TLS, metrics", async () => {
        assertEquals(await c.call("set k 0 0 2\r\nok\r\n"), "STORED\r\n");
        const tls = await sClient(
          tlsPort,
          cert,
          "set a 0 0 11\r\nmemg s3cret\r\nget k\r\nquit\r\n",
        );
        assertEquals(tls, "STORED\r\nVALUE k 0 2\r\nok\r\nEND\r\n");
        const m = await memg.waitFor("out", /^memg metrics on (\S+)$/);
        assertEquals(await fetchStatus(new URL("metrics", m[1])), 200);
      });
    } finally {
      c.close();
    }
    assertEquals((await memg.stop()).code, 0);
    assert(!memg.err.some((l) => l.startsWith("memg: warning:")), memg.err.join("\n"));
  } finally {
    await memg.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("files memg needs after start-up keep their permission, and say so", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "memg-perm-" });
  const secret = `${dir}/secret`;
  await Deno.writeTextFile(secret, "do not read me");
  await Deno.writeTextFile(`${dir}/probe.ts`, probeSource(secret, `${dir}/written`));
  const flags = await startFlags();
  const start = (permissionFlags: string[], args: string[]) =>
    new Child(["run", ...permissionFlags, "--preload", `${dir}/probe.ts`, "main.ts", ...args]);
  try {
    await t.step(
      "-s: write stays granted (for every path) to remove the socket at exit",
      async () => {
        const sock = `${dir}/memg.sock`;
        const memg = start(flags, ["-s", sock, "-v"]);
        try {
          await memg.waitFor("out", /listening on unix:/);
          await memg.waitFor(
            "err",
            /^memg: permissions revoked after start-up: net, read, env, sys, run, ffi, import$/,
          );
          await memg.waitFor(
            "err",
            /^memg: warning: write permission stays granted for every path/,
          );
          const c = await unixClient(sock);
          try {
            assertEquals(await permissionRows(c), { ...ALL_DENIED, write: "granted" });
          } finally {
            c.close();
          }
          assertEquals(await memg.probe(), { ...PROBE_DENIED, write: "ok" });
          assertEquals((await memg.stop()).code, 0);
          assert(!(await exists(sock)), "the socket file was left behind");
        } finally {
          await memg.stop("SIGKILL");
        }
      },
    );

    await t.step(
      "-s with --allow-write narrowed to the socket's directory: stays narrow",
      async () => {
        const sub = `${dir}/run`;
        await Deno.mkdir(sub);
        const sock = `${sub}/memg.sock`;
        const narrow = flags.map((f) => f === "--allow-write" ? `--allow-write=${sub}` : f);
        const memg = start(narrow, ["-s", sock]);
        try {
          await memg.waitFor("out", /listening on unix:/);
          const c = await unixClient(sock);
          try {
            assertEquals(await permissionRows(c), { ...ALL_DENIED, write: "partial" });
          } finally {
            c.close();
          }
          const found = await memg.probe();
          assertEquals(found, { ...PROBE_DENIED, write: "NotCapable" }); // the probe writes in dir
          assertEquals((await memg.stop()).code, 0);
          assert(!(await exists(sock)), "the socket file was left behind");
          assert(!memg.err.some((l) => l.startsWith("memg: warning:")), memg.err.join("\n"));
        } finally {
          await memg.stop("SIGKILL");
        }
      },
    );

    await t.step("--snapshot: read and write stay granted, and the snapshot is saved", async () => {
      const snap = `${dir}/cache.snap`;
      const memg = start(flags, ["-p", "0", "--snapshot", snap]);
      try {
        const port = Number((await memg.waitFor("out", /listening on tcp:[^ ]*:(\d+)$/))[1]);
        await memg.waitFor("err", /^memg: warning: read permission stays granted for every path/);
        await memg.waitFor("err", /^memg: warning: write permission stays granted for every path/);
        const c = await RawClient.connect(port);
        try {
          assertEquals(await c.call("set kept 0 0 4\r\nwarm\r\n"), "STORED\r\n");
          assertEquals(await permissionRows(c), {
            ...ALL_DENIED,
            read: "granted",
            write: "granted",
          });
        } finally {
          c.close();
        }
        assertEquals((await memg.stop()).code, 0);
        assert(await exists(snap), `no snapshot written: ${memg.err.join("\n")}`);
      } finally {
        await memg.stop("SIGKILL");
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A client over a unix socket: sends a request, reads up to `suffix`. */
async function unixClient(path: string): Promise<Caller & { close(): void }> {
  const conn = await Deno.connect({ transport: "unix", path });
  const buf = new Uint8Array(64 * 1024);
  return {
    call: async (request: string, suffix = "\r\n") => {
      const b = new TextEncoder().encode(request);
      let off = 0;
      while (off < b.length) off += await conn.write(b.subarray(off));
      let got = "";
      while (!got.endsWith(suffix)) {
        const n = await conn.read(buf);
        if (n === null) throw new Error(`closed; have ${got}`);
        got += dec.decode(buf.subarray(0, n));
      }
      return got;
    },
    close: () => conn.close(),
  };
}

/** What `openssl s_client` (verifying memg's certificate) received for `input`. */
async function sClient(port: number, ca: string, input: string): Promise<string> {
  const child = new Deno.Command("openssl", {
    args: ["s_client", "-connect", `127.0.0.1:${port}`, "-CAfile", ca, "-verify_return_error"]
      .concat(["-quiet"]),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  try {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
    const out = await child.output();
    assert(out.signal === null, "openssl s_client timed out");
    return dec.decode(out.stdout);
  } finally {
    clearTimeout(timer);
  }
}
