/**
 * memg's HTTP side door (`--metrics-port`), never on the memcached port: `/metrics` in the
 * Prometheus text exposition format (0.0.4), `/stats.json` with the same figures as JSON, and
 * `/` a self-contained page that plots them live. Every figure comes from the general `stats`
 * rows (lib/report.ts), so the three views and `stats` always agree.
 *
 * @module
 */
import type { Cache } from "./cache.ts";
import { METRICS_PAGE } from "./metrics_page.ts";
import { generalStats, type Row } from "./report.ts";
import { splitHostPort } from "./server.ts";

/** A Prometheus metric type as memg uses them. */
type MetricType = "counter" | "gauge" | "untyped";

/** One metric family: its samples are `stats` rows, each with its label set (or none). */
interface Family {
  name: string;
  type: MetricType;
  help: string;
  samples: Array<[labels: string, row: string]>;
}

function one(name: string, type: MetricType, help: string, row: string): Family {
  return { name, type, help, samples: [["", row]] };
}

function perCommand(
  name: string,
  help: string,
  rows: Array<[command: string, row: string]>,
): Family {
  return {
    name,
    type: "counter",
    help,
    samples: rows.map(([command, row]) => [`command="${command}"`, row]),
  };
}

/** The `stats` rows with their metric names, types and help, in `stats` order. */
const FAMILIES: Family[] = [
  one("memg_uptime_seconds", "gauge", "Seconds since the server started.", "uptime"),
  one(
    "memg_cpu_user_seconds_total",
    "counter",
    "User CPU time of the process (rusage_user).",
    "rusage_user",
  ),
  one(
    "memg_cpu_system_seconds_total",
    "counter",
    "System CPU time of the process (rusage_system).",
    "rusage_system",
  ),
  one("memg_max_connections", "gauge", "Connection limit (-c).", "max_connections"),
  one("memg_current_connections", "gauge", "Open client connections.", "curr_connections"),
  one("memg_connections_total", "counter", "Connections accepted.", "total_connections"),
  one(
    "memg_rejected_connections_total",
    "counter",
    "Connections refused at the connection limit.",
    "rejected_connections",
  ),
  one(
    "memg_connection_structures",
    "gauge",
    "Most connections open at once (connection_structures).",
    "connection_structures",
  ),
  perCommand("memg_commands_total", "Commands received, by command (the cmd_* stats).", [
    ["get", "cmd_get"],
    ["set", "cmd_set"],
    ["flush", "cmd_flush"],
    ["touch", "cmd_touch"],
    ["meta", "cmd_meta"],
  ]),
  perCommand("memg_hits_total", "Commands that found their item, by command.", [
    ["get", "get_hits"],
    ["delete", "delete_hits"],
    ["incr", "incr_hits"],
    ["decr", "decr_hits"],
    ["cas", "cas_hits"],
    ["touch", "touch_hits"],
  ]),
  perCommand("memg_misses_total", "Commands that did not find their item, by command.", [
    ["get", "get_misses"],
    ["delete", "delete_misses"],
    ["incr", "incr_misses"],
    ["decr", "decr_misses"],
    ["cas", "cas_misses"],
    ["touch", "touch_misses"],
  ]),
  one(
    "memg_get_expired_total",
    "counter",
    "Gets that found only an expired item (counted in the get misses).",
    "get_expired",
  ),
  one(
    "memg_get_flushed_total",
    "counter",
    "Gets that found only a flushed item (counted in the get misses).",
    "get_flushed",
  ),
  one(
    "memg_cas_badval_total",
    "counter",
    "CAS commands whose CAS value did not match.",
    "cas_badval",
  ),
  one(
    "memg_store_too_large_total",
    "counter",
    "Stores refused because the item was too large.",
    "store_too_large",
  ),
  one(
    "memg_store_no_memory_total",
    "counter",
    "Stores refused for want of memory.",
    "store_no_memory",
  ),
  one("memg_auth_commands_total", "counter", "Authentication attempts.", "auth_cmds"),
  one("memg_auth_errors_total", "counter", "Failed authentication attempts.", "auth_errors"),
  one("memg_read_bytes_total", "counter", "Bytes read from clients.", "bytes_read"),
  one("memg_written_bytes_total", "counter", "Bytes written to clients.", "bytes_written"),
  one("memg_limit_bytes", "gauge", "Item memory limit (-m).", "limit_maxbytes"),
  one(
    "memg_accepting_connections",
    "gauge",
    "1 while the server accepts connections.",
    "accepting_conns",
  ),
  one("memg_threads", "gauge", "Worker threads (memg runs one event loop).", "threads"),
  one(
    "memg_connection_yields_total",
    "counter",
    "Times a connection yielded to others (conn_yields).",
    "conn_yields",
  ),
  one(
    "memg_hash_power_level",
    "gauge",
    "log2 of the hash index's bucket count.",
    "hash_power_level",
  ),
  one("memg_hash_bytes", "gauge", "Bytes of the hash index's bucket arrays.", "hash_bytes"),
  one(
    "memg_hash_is_expanding",
    "gauge",
    "1 while the hash index doubles, else 0.",
    "hash_is_expanding",
  ),
  one("memg_slabs_moved_total", "counter", "Slab pages moved to another class.", "slabs_moved"),
  one("memg_current_bytes", "gauge", "Bytes used by live items.", "bytes"),
  one("memg_current_items", "gauge", "Live items.", "curr_items"),
  one("memg_items_total", "counter", "Items ever stored.", "total_items"),
  one(
    "memg_expired_unfetched_total",
    "counter",
    "Items expired without ever being fetched.",
    "expired_unfetched",
  ),
  one(
    "memg_evicted_unfetched_total",
    "counter",
    "Items evicted without ever being fetched.",
    "evicted_unfetched",
  ),
  one("memg_evictions_total", "counter", "Live items evicted to make room.", "evictions"),
  one(
    "memg_reclaimed_total",
    "counter",
    "Stores that reused the memory of an expired item.",
    "reclaimed",
  ),
  one("memg_resident_memory_bytes", "gauge", "Resident set size of the process.", "rss_bytes"),
];

/**
 * `stats` rows that are not metrics of their own: identity and clock rows, and the two
 * strings `memg_info` carries as labels.
 */
const NOT_METRICS = new Set(["pid", "time", "pointer_size", "version", "libevent"]);
const MAPPED = new Set(FAMILIES.flatMap((f) => f.samples.map(([, row]) => row)));

/** The V8 heap figures, which `stats` does not show. */
function heapRows(): Row[] {
  const m = Deno.memoryUsage();
  return [
    ["heap_used_bytes", m.heapUsed],
    ["heap_total_bytes", m.heapTotal],
    ["external_memory_bytes", m.external],
  ];
}

const HEAP_FAMILIES: Family[] = [
  one("memg_heap_used_bytes", "gauge", "V8 heap in use.", "heap_used_bytes"),
  one("memg_heap_total_bytes", "gauge", "V8 heap reserved.", "heap_total_bytes"),
  one(
    "memg_external_memory_bytes",
    "gauge",
    "Memory held outside the V8 heap (buffers).",
    "external_memory_bytes",
  ),
];

function numeric(v: string | number): number | null {
  if (typeof v === "number") return v;
  return /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : null;
}

function labelValue(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function family(out: string[], f: Family, values: Map<string, string | number>): void {
  out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
  for (const [labels, row] of f.samples) {
    const raw = values.get(row);
    const v = raw === undefined ? null : numeric(raw);
    out.push(`${f.name}${labels === "" ? "" : `{${labels}}`} ${v ?? NaN}`);
  }
}

/**
 * The Prometheus text exposition (format 0.0.4) of `cache`'s general stats plus the heap. A
 * numeric `stats` row without a description yet is still exported, as `untyped`.
 */
function exposition(cache: Cache): string {
  const rows = generalStats(cache);
  const values = new Map<string, string | number>([...rows, ...heapRows()]);
  const out: string[] = [];
  out.push(
    "# HELP memg_info memg's version; the value is always 1.",
    "# TYPE memg_info gauge",
    `memg_info{version="${labelValue(String(values.get("version")))}",runtime="${
      labelValue(String(values.get("libevent")))
    }"} 1`,
  );
  for (const f of FAMILIES) family(out, f, values);
  for (const f of HEAP_FAMILIES) family(out, f, values);
  for (const [name, v] of rows) {
    if (MAPPED.has(name) || NOT_METRICS.has(name) || numeric(v) === null) continue;
    const metric = `memg_${name.replace(/[^a-zA-Z0-9_]/g, "_")}`;
    family(
      out,
      { name: metric, type: "untyped", help: `stats ${name}.`, samples: [["", name]] },
      values,
    );
  }
  return out.join("\n") + "\n";
}

/** The general stats and the heap figures as one JSON object; numeric rows as numbers. */
function statsJson(cache: Cache): Record<string, string | number> {
  const obj: Record<string, string | number> = {};
  for (const [name, v] of [...generalStats(cache), ...heapRows()]) obj[name] = numeric(v) ?? v;
  return obj;
}

const EXPOSITION_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Answers one request to the metrics port. */
function handle(cache: Cache, req: Request): Response {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
  }
  const headers = { "cache-control": "no-store" };
  switch (new URL(req.url).pathname) {
    case "/metrics":
      return new Response(exposition(cache), {
        headers: { ...headers, "content-type": EXPOSITION_TYPE },
      });
    case "/stats.json":
      return Response.json(statsJson(cache), { headers });
    case "/":
      return new Response(METRICS_PAGE, {
        headers: { ...headers, "content-type": "text/html; charset=utf-8" },
      });
    default:
      return new Response("not found\n", { status: 404 });
  }
}

/** A running metrics listener. */
export interface MetricsServer {
  readonly addr: Deno.NetAddr;
  /** The page's address, `http://host:port/` (IPv6 hosts in brackets). */
  readonly url: string;
  /** Stops listening and closes idle connections; resolves when the listener is gone. */
  shutdown(): Promise<void>;
}

/**
 * Serves `cache`'s metrics when the config asks for them (`--metrics-port`), on the first
 * `-l` address as the cache listener; null when off. Throws when the port cannot be bound.
 */
export function startMetrics(cache: Cache): MetricsServer | null {
  const cfg = cache.config;
  if (cfg.metricsPort === null) return null;
  const { hostname } = splitHostPort(cfg.listen[0], cfg.port);
  const server = Deno.serve(
    { hostname, port: cfg.metricsPort, onListen: () => {} },
    (req) => handle(cache, req),
  );
  const addr = server.addr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return {
    addr,
    url: `http://${host}:${addr.port}/`,
    shutdown: () => server.shutdown(),
  };
}
