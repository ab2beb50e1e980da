/**
 * The metrics port (`--metrics-port`): /metrics in the Prometheus text format, read back with
 * a real parser (npm parse-prometheus-text-format); /stats.json; 404s; the flag's parsing; and
 * that the port is a separate listener from memcached's, started and stopped by main.ts.
 */
import parsePrometheusTextFormat from "npm:parse-prometheus-text-format@1.1.1";
import { assert, assertEquals, assertNotEquals, assertThrows } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { type ChildMemg, spawnMemg } from "./helpers/server.ts";
import { parseConfig, UsageError, VERSION_STRING } from "../lib/config.ts";

/** A metric family as the parser returns it. */
interface ParsedFamily {
  name: string;
  help: string;
  type: string;
  metrics: Array<{ value: string; labels?: Record<string, string> }>;
}
const parseExposition = parsePrometheusTextFormat as (text: string) => ParsedFamily[];

/** Fetches with a client of its own, closed afterwards, so no connection outlives the test. */
async function get(url: string, init: RequestInit = {}) {
  const client = Deno.createHttpClient({});
  try {
    const res = await fetch(url, { ...init, client });
    return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
  } finally {
    client.close();
  }
}

/** The metrics URL from the start-up line `memg metrics on http://HOST:PORT/`. */
function metricsUrl(memg: ChildMemg): URL {
  const line = memg.stdout.find((l) => l.startsWith("memg metrics on "));
  assert(line !== undefined, `no metrics line in ${JSON.stringify(memg.stdout)}`);
  return new URL(line.slice("memg metrics on ".length));
}

/** `name{labels}` → value, for every sample of every family. */
function samples(families: ParsedFamily[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of families) {
    for (const m of f.metrics) {
      const labels = Object.entries(m.labels ?? {}).map(([k, v]) => `${k}="${v}"`).join(",");
      out.set(labels === "" ? f.name : `${f.name}{${labels}}`, Number(m.value));
    }
  }
  return out;
}

async function scrape(
  base: URL,
): Promise<{ families: ParsedFamily[]; values: Map<string, number> }> {
  const res = await get(new URL("metrics", base).href);
  assertEquals(res.status, 200);
  assertEquals(res.type, "text/plain; version=0.0.4; charset=utf-8");
  const families = parseExposition(res.body);
  return { families, values: samples(families) };
}

async function statsRows(c: RawClient): Promise<Map<string, string>> {
  const text = await c.call("stats\r\n", "END\r\n");
  const rows = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    const m = /^STAT (\S+) (.*)$/.exec(line);
    if (m !== null) rows.set(m[1], m[2]);
  }
  return rows;
}

Deno.test("--metrics-port parses, defaults to off and may not be the memcached port", () => {
  assertEquals(parseConfig([]).config.metricsPort, null);
  assertEquals(parseConfig(["--metrics-port", "0"]).config.metricsPort, 0);
  assertEquals(parseConfig(["--metrics-port=9150"]).config.metricsPort, 9150);
  assertThrows(() => parseConfig(["--metrics-port", "http"]), UsageError);
  assertThrows(() => parseConfig(["--metrics-port", "70000"]), UsageError);
  assertThrows(() => parseConfig(["-p", "11311", "--metrics-port", "11311"]), UsageError);
});

Deno.test("main.ts without --metrics-port serves no metrics", async () => {
  const memg = await spawnMemg();
  const c = await RawClient.connect(memg.port);
  try {
    assertEquals(memg.stdout.filter((l) => l.includes("metrics")), []);
    // A round trip first: main.ts installs its SIGTERM handler after printing the start-up line.
    assertEquals(await c.call("version\r\n"), `VERSION ${VERSION_STRING}\r\n`);
  } finally {
    c.close();
    assertEquals((await memg.stop()).code, 0);
  }
});

Deno.test("metrics port: /metrics, /stats.json and 404s from a running memg", async (t) => {
  const memg = await spawnMemg(["--metrics-port", "0"]);
  const c = await RawClient.connect(memg.port);
  try {
    const base = metricsUrl(memg);

    await t.step(
      "its own port on the cache listener's address; memcached's port is not HTTP",
      async () => {
        assertEquals(base.hostname, "127.0.0.1");
        assertNotEquals(Number(base.port), memg.port);
        const http = await RawClient.connect(memg.port);
        try {
          await http.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
          assert(await http.closedByServer(), "memcached port kept an HTTP client");
          assert(!http.text().startsWith("HTTP/"), `memcached port answered ${http.text()}`);
        } finally {
          http.close();
        }
      },
    );

    await t.step("/metrics parses; every family has HELP and a type; none untyped", async () => {
      const { families } = await scrape(base);
      assert(families.length > 30, `${families.length} families`);
      for (const f of families) {
        assert(f.name.startsWith("memg_"), f.name);
        assert(f.help.length > 0, `${f.name} has no HELP`);
        assert(f.type === "COUNTER" || f.type === "GAUGE", `${f.name} is ${f.type}`);
        if (f.type === "COUNTER") assert(f.name.endsWith("_total"), `counter ${f.name}`);
        for (const m of f.metrics) assert(Number.isFinite(Number(m.value)), `${f.name} ${m.value}`);
      }
      const names = families.map((f) => f.name);
      assertEquals(new Set(names).size, names.length, "families are unique");
    });

    await t.step("counters move with known traffic: 3 sets, 2 hits, 1 miss", async () => {
      const before = (await scrape(base)).values;
      for (const k of ["a", "b", "c"]) {
        assertEquals(await c.call(`set ${k} 0 0 5\r\nvalue\r\n`), "STORED\r\n");
      }
      assertEquals(await c.call("get a\r\n", "END\r\n"), "VALUE a 0 5\r\nvalue\r\nEND\r\n");
      assertEquals(await c.call("get b\r\n", "END\r\n"), "VALUE b 0 5\r\nvalue\r\nEND\r\n");
      assertEquals(await c.call("get nope\r\n", "END\r\n"), "END\r\n");
      const after = (await scrape(base)).values;
      const delta = (name: string) => after.get(name)! - before.get(name)!;
      assertEquals(delta('memg_commands_total{command="set"}'), 3);
      assertEquals(delta('memg_commands_total{command="get"}'), 3);
      assertEquals(delta('memg_hits_total{command="get"}'), 2);
      assertEquals(delta('memg_misses_total{command="get"}'), 1);
      assertEquals(delta('memg_commands_total{command="touch"}'), 0);
      assertEquals(after.get("memg_current_items"), 3);
      assert(after.get("memg_current_bytes")! > 0);
      assertEquals(after.get("memg_items_total"), 3);
      assertEquals(after.get("memg_current_connections"), 1);
      assertEquals(after.get("memg_limit_bytes"), 64 * 1024 * 1024);
      assert(delta("memg_read_bytes_total") > 0 && delta("memg_written_bytes_total") > 0);
      assert(after.get("memg_resident_memory_bytes")! > 1024 * 1024, "RSS");
      assert(after.get("memg_heap_used_bytes")! > 0, "heap");
      assertEquals(
        after.get(`memg_info{version="${VERSION_STRING}",runtime="deno-${Deno.version.deno}"}`),
        1,
      );
    });

    await t.step("/stats.json carries the stats rows and memory figures", async () => {
      const res = await get(new URL("stats.json", base).href);
      assertEquals(res.status, 200);
      assertEquals(res.type, "application/json");
      const json = JSON.parse(res.body);
      const rows = await statsRows(c);
      for (
        const name of [
          "cmd_get",
          "cmd_set",
          "get_hits",
          "get_misses",
          "curr_items",
          "bytes",
          "limit_maxbytes",
          "total_items",
          "evictions",
        ]
      ) {
        assertEquals(json[name], Number(rows.get(name)), name);
      }
      assertEquals(json.version, rows.get("version"));
      assertEquals(json.pid, Number(rows.get("pid")));
      for (const name of ["rss_bytes", "heap_used_bytes", "heap_total_bytes", "rusage_user"]) {
        assertEquals(typeof json[name], "number", name);
      }
    });

    await t.step("the page, then 404 for other paths and 405 for other methods", async () => {
      const page = await get(base.href);
      assertEquals(page.status, 200);
      assertEquals(page.type, "text/html; charset=utf-8");
      assert(page.body.includes("<canvas") || page.body.includes('createElement("canvas")'));
      for (const path of ["nope", "metrics/", "stats", "favicon.ico"]) {
        assertEquals((await get(new URL(path, base).href)).status, 404, path);
      }
      assertEquals((await get(new URL("metrics", base).href, { method: "POST" })).status, 405);
    });
  } finally {
    c.close();
    assertEquals((await memg.stop("SIGTERM")).code, 0, "exits 0 with the metrics port open");
  }
});
