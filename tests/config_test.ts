/**
 * memg's command line: every memcached flag in its short and long form through `parseConfig`,
 * `-o` sub-options (idle_timeout honoured, memcached's others accepted with a warning, unknown
 * ones refused), and the real program: usage and exit 64 on a bad flag, `-h`, `-V`, warnings
 * for flags that mean nothing here, and `stats settings` showing what was given.
 *
 * @module
 */
import {
  assert,
  assertEquals,
  assertMatch,
  assertStringIncludes,
  assertThrows,
} from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { runMain, START_PERMISSIONS, startMemg } from "./helpers/server.ts";
import { type Config, parseConfig, UsageError } from "../lib/config.ts";

/** The config `args` give (the action must be "run"). */
function config(...args: string[]): Config {
  const parsed = parseConfig(args);
  assertEquals(parsed.action, "run");
  return parsed.config;
}

Deno.test("parseConfig: memcached's defaults", () => {
  const c = config();
  assertEquals(c.port, 11211);
  assertEquals(c.unixSocket, null);
  assertEquals(c.unixMask, 0o700);
  assertEquals(c.enableShutdown, false);
  assertEquals(c.memoryLimitMb, 64);
  assertEquals(c.evictions, true);
  assertEquals(c.connLimit, 1024);
  assertEquals(c.verbose, 0);
  assertEquals(c.itemSizeMax, 1024 * 1024);
  assertEquals(c.udpPort, 0);
  assertEquals(c.threads, 4);
  assertEquals(c.protocol, "auto");
  assertEquals(c.cas, true);
  assertEquals(c.flushEnabled, true);
  assertEquals(c.reqsPerEvent, 20);
  assertEquals(c.backlog, 1024);
  assertEquals(c.idleTimeout, 0);
  assertEquals(c.single, false);
  assertEquals(c.warnings, []);
});

Deno.test("parseConfig: every memcached flag, short and long", async (t) => {
  const cases: Array<[string, string[], string[], (c: Config) => void]> = [
    ["-p", ["-p", "11999"], ["--port=11999"], (c) => assertEquals(c.port, 11999)],
    ["-p 0", ["-p", "0"], ["--port", "0"], (c) => assertEquals(c.port, 0)],
    [
      "-l",
      ["-l", "127.0.0.2:5000,127.0.0.3", "-l", "::1"],
      ["--listen=127.0.0.2:5000,127.0.0.3", "--listen", "::1"],
      (c) => assertEquals(c.listen, ["127.0.0.2:5000", "127.0.0.3", "::1"]),
    ],
    ["-s", ["-s", "/tmp/m.sock"], ["--unix-socket=/tmp/m.sock"], (c) => {
      assertEquals(c.unixSocket, "/tmp/m.sock");
    }],
    ["-a", ["-a", "0666"], ["--unix-mask=666"], (c) => assertEquals(c.unixMask, 0o666)],
    ["-A", ["-A"], ["--enable-shutdown"], (c) => assertEquals(c.enableShutdown, true)],
    ["-m", ["-m", "128"], ["--memory-limit=128"], (c) => assertEquals(c.memoryLimitMb, 128)],
    ["-M", ["-M"], ["--disable-evictions"], (c) => assertEquals(c.evictions, false)],
    ["-c", ["-c", "50"], ["--conn-limit=50"], (c) => assertEquals(c.connLimit, 50)],
    ["-v", ["-v"], ["--verbose"], (c) => assertEquals(c.verbose, 1)],
    ["-vv", ["-vv"], ["-v", "-v"], (c) => assertEquals(c.verbose, 2)],
    ["-I 512k", ["-I", "512k"], ["--max-item-size=512k"], (c) => {
      assertEquals(c.itemSizeMax, 512 * 1024);
    }],
    ["-I 2m", ["-I", "2m"], ["--max-item-size=2m"], (c) => {
      assertEquals(c.itemSizeMax, 2 * 1024 * 1024);
    }],
    ["-I 1m", ["-I", "1m"], ["--max-item-size", "1048576"], (c) => {
      assertEquals(c.itemSizeMax, 1024 * 1024);
    }],
    ["-U", ["-U", "5"], ["--udp-port=5"], (c) => assertEquals(c.udpPort, 5)],
    ["-u", ["-u", "nobody"], ["--user=nobody"], (c) => assertEquals(c.user, "nobody")],
    ["-t", ["-t", "8"], ["--threads=8"], (c) => assertEquals(c.threads, 8)],
    ["-B", ["-B", "ascii"], ["--protocol=ascii"], (c) => assertEquals(c.protocol, "ascii")],
    ["-B binary", ["-B", "binary"], ["--protocol", "binary"], (c) => {
      assertEquals(c.protocol, "binary");
    }],
    ["-C", ["-C"], ["--disable-cas"], (c) => assertEquals(c.cas, false)],
    ["-F", ["-F"], ["--disable-flush-all"], (c) => assertEquals(c.flushEnabled, false)],
    ["-R", ["-R", "5"], ["--max-reqs-per-event=5"], (c) => assertEquals(c.reqsPerEvent, 5)],
    ["-b", ["-b", "64"], ["--listen-backlog=64"], (c) => assertEquals(c.backlog, 64)],
    ["--single", ["--single"], ["--single"], (c) => assertEquals(c.single, true)],
    [
      "-o idle_timeout",
      ["-o", "idle_timeout=7"],
      ["--extended=idle_timeout=7"],
      (c) => assertEquals(c.idleTimeout, 7),
    ],
  ];
  for (const [name, short, long, check] of cases) {
    await t.step(name, () => {
      check(config(...short));
      check(config(...long));
    });
  }
  await t.step("-h and -V, short and long", () => {
    assertEquals(parseConfig(["-h"]).action, "help");
    assertEquals(parseConfig(["--help"]).action, "help");
    assertEquals(parseConfig(["-V"]).action, "version");
    assertEquals(parseConfig(["--version"]).action, "version");
  });
  await t.step("flags combine as in an init script", () => {
    const c = config("-p", "11300", "-U", "0", "-m", "256", "-c", "4096", "-t", "2", "-v");
    assertEquals([c.port, c.udpPort, c.memoryLimitMb, c.connLimit, c.threads, c.verbose], [
      11300,
      0,
      256,
      4096,
      2,
      1,
    ]);
  });
});

Deno.test("parseConfig: flags that mean nothing here are accepted with a warning", () => {
  const c = config("-U", "5", "-u", "x", "-t", "8");
  assertEquals(c.warnings.length, 3);
  assertMatch(c.warnings.join("\n"), /-U/);
  assertMatch(c.warnings.join("\n"), /-u/);
  assertMatch(c.warnings.join("\n"), /-t/);
  assertEquals(config("-U", "0").warnings, []); // UDP off is what memg does anyway
});

Deno.test("parseConfig: -o sub-options", async (t) => {
  await t.step("memcached's other sub-options are accepted, each with a warning", () => {
    const opts = [
      "maxconns_fast",
      "hashpower=20",
      "no_lru_crawler",
      "lru_crawler_sleep=100",
      "tail_repair_time=0",
      "hash_algorithm=murmur3",
      "slab_reassign",
      "slab_automove=1",
      "modern",
      "track_sizes",
      "temporary_ttl=61",
    ];
    const c = config("-o", opts.join(","));
    assertEquals(c.warnings.length, opts.length);
    const repeated = config("-o", "hashpower=20", "-o", "idle_timeout=3");
    assertEquals(repeated.idleTimeout, 3);
    assertEquals(repeated.warnings.length, 1);
  });
  await t.step("an unknown sub-option is an error naming it, as memcached's", () => {
    assertThrows(() => parseConfig(["-o", "bogus=1"]), UsageError, 'Illegal suboption "bogus=1"');
    assertThrows(() => parseConfig(["-o", "idle_timeout=x"]), UsageError);
  });
});

Deno.test("parseConfig: bad command lines are UsageErrors", async (t) => {
  const bad: Array<[string[], string]> = [
    [["-z"], "-z"],
    [["--bogus"], "--bogus"],
    [["stray"], "stray"],
    [["-p", "abc"], "-p"],
    [["-p", "70000"], "-p"],
    [["-c", "0"], "-c"],
    [["-a", "999"], "-a"],
    [["-B", "udp"], "-B"],
    [["-I", "100"], "Item max size cannot be less than 1024 bytes."],
    [["-I", "2g"], "Cannot set item size limit higher than 1 GB."],
    [["-I", "64m"], "Cannot set item size limit higher than 1/2 of memory max."],
    [["-I", "1x"], "-I"],
    [["-m", "0"], "-m"],
  ];
  for (const [args, message] of bad) {
    await t.step(args.join(" "), () => {
      assertThrows(() => parseConfig(args), UsageError, message);
    });
  }
});

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const DENO_CONFIG = new URL("../deno.json", import.meta.url).pathname;

Deno.test("the program: a bad flag prints the usage to stderr and exits 64", async () => {
  for (const args of [["-z"], ["--no-such-flag"], ["-I", "100"], ["-o", "bogus=1"]]) {
    const r = await runMain(args);
    assertEquals(r.code, 64, `${args.join(" ")}: ${r.err}`);
    assertStringIncludes(r.err, "-p, --port=<num>");
    assertStringIncludes(r.err, "--single");
    assertEquals(r.out, "");
  }
});

Deno.test("the program: -h prints the usage, -V the version, both exit 0", async () => {
  const help = await runMain(["-h"]);
  assertEquals(help.code, 0);
  assertStringIncludes(help.out, "-I, --max-item-size=<num>");
  const version = await runMain(["-V"]);
  assertEquals(version.code, 0);
  assertMatch(version.out, /^memcached 1\.6\.18\S*\n$/);
});

Deno.test("the program: -U 5 -u x -t 8 warn on stderr and show in stats settings", async () => {
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      DENO_CONFIG,
      ...START_PERMISSIONS,
      MAIN,
      "-p",
      "0",
      "-U",
      "5",
      "-u",
      "x",
      "-t",
      "8",
      "-o",
      "hashpower=20",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(process.stderr).text();
  const lines = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let out = "";
    let m: RegExpExecArray | null = null;
    while (m === null) {
      const { value, done } = await lines.read();
      assert(!done, `memg exited before listening: ${out}`);
      out += value;
      m = /listening on tcp:[^ ]*:(\d+)\n/.exec(out);
    }
    const c = await RawClient.connect(Number(m[1]));
    const settings = await c.call("stats settings\r\n", "END\r\n");
    c.close();
    assertStringIncludes(settings, "STAT udpport 5\r\n");
    assertStringIncludes(settings, "STAT num_threads 8\r\n");
    assertStringIncludes(settings, "STAT user_switch ignored:x\r\n");
    assertStringIncludes(settings, "STAT udp_served no\r\n");
  } finally {
    process.kill("SIGTERM");
    await lines.cancel();
  }
  const status = await process.status;
  assertEquals(status.code, 0);
  const err = await stderr;
  const warnings = err.split("\n").filter((l) => l.startsWith("memg: warning: "));
  assertEquals(warnings.length, 4, err);
  for (const flag of ["-U", "-u", "-t", "-o hashpower"]) {
    assert(warnings.some((w) => w.includes(flag)), `no warning for ${flag}: ${err}`);
  }
});

Deno.test("-o idle_timeout=1 cuts an idle connection, not an active one", async () => {
  const memg = startMemg(["-o", "idle_timeout=1"]);
  const idle = await RawClient.connect(memg.port);
  const busy = await RawClient.connect(memg.port);
  try {
    assertMatch(await idle.call("version\r\n"), /^VERSION /);
    const started = Date.now();
    let cut = false;
    // the busy client talks every 200 ms while the idle one waits to be cut
    while (!cut && Date.now() - started < 3500) {
      assertMatch(await busy.call("version\r\n"), /^VERSION /);
      cut = await idle.closedByServer(200);
    }
    const elapsed = Date.now() - started;
    assert(cut, "the idle connection was not cut within 3.5 s");
    assert(elapsed >= 900, `cut after ${elapsed} ms, before the timeout`);
    assertMatch(await busy.call("version\r\n"), /^VERSION /);
    assertEquals(memg.server.cache.config.idleTimeout, 1);
  } finally {
    idle.close();
    busy.close();
    await memg.close();
  }
});
