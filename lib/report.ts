/**
 * The rows of every `stats` group, with memcached's names and honest values; the text and
 * binary protocols only encode them.
 *
 * @module
 */
import { cpuUsage } from "node:process";
import type { Cache } from "./cache.ts";
import { VERSION_STRING } from "./config.ts";
import { permissionRows } from "./permissions.ts";
import { CLASS_COUNTERS, type ClassCounter } from "./stats.ts";
import { tlsSettingsRows } from "./tls.ts";

/** One `STAT name value` row. */
export type Row = [string, string | number];

function seconds(micros: number): string {
  return (micros / 1e6).toFixed(6);
}

/** The general `stats` list, in memcached 1.6's order (rows memg cannot mean are left out). */
export function generalStats(cache: Cache): Row[] {
  const c = cache.counters;
  const s = cache.store.stats;
  const now = cache.now();
  const cpu = cpuUsage();
  return [
    ["pid", Deno.pid],
    ["uptime", now - cache.startedAt],
    ["time", now],
    ["version", VERSION_STRING],
    ["libevent", `deno-${Deno.version.deno}`],
    ["pointer_size", 64],
    ["rusage_user", seconds(cpu.user)],
    ["rusage_system", seconds(cpu.system)],
    ["max_connections", cache.config.connLimit],
    ["curr_connections", cache.connections.curr],
    ["total_connections", c.total_connections],
    ["rejected_connections", c.rejected_connections],
    ["connection_structures", cache.connections.structures],
    ["cmd_get", c.cmd_get],
    ["cmd_set", c.cmd_set],
    ["cmd_flush", c.cmd_flush],
    ["cmd_touch", c.cmd_touch],
    ["cmd_meta", c.cmd_meta],
    ["get_hits", c.get_hits],
    ["get_misses", c.get_misses],
    ["get_expired", cache.storeCounter("get_expired")],
    ["get_flushed", cache.storeCounter("get_flushed")],
    ["delete_misses", c.delete_misses],
    ["delete_hits", c.delete_hits],
    ["incr_misses", c.incr_misses],
    ["incr_hits", c.incr_hits],
    ["decr_misses", c.decr_misses],
    ["decr_hits", c.decr_hits],
    ["cas_misses", c.cas_misses],
    ["cas_hits", c.cas_hits],
    ["cas_badval", c.cas_badval],
    ["touch_hits", c.touch_hits],
    ["touch_misses", c.touch_misses],
    ["store_too_large", c.store_too_large],
    ["store_no_memory", c.store_no_memory],
    ["auth_cmds", c.auth_cmds],
    ["auth_errors", c.auth_errors],
    ["bytes_read", c.bytes_read],
    ["bytes_written", c.bytes_written],
    ["limit_maxbytes", cache.store.limitBytes],
    ["accepting_conns", cache.connections.accepting ? 1 : 0],
    ["threads", 1],
    ["conn_yields", c.conn_yields],
    ...cache.store.extraStats(),
    ["bytes", s.bytes],
    ["curr_items", s.curr_items],
    ["total_items", cache.storeCounter("total_items")],
    ["expired_unfetched", cache.storeCounter("expired_unfetched")],
    ["evicted_unfetched", cache.storeCounter("evicted_unfetched")],
    ["evictions", cache.storeCounter("evictions")],
    ["reclaimed", cache.storeCounter("reclaimed")],
    ["rss_bytes", Deno.memoryUsage().rss],
  ];
}

function yesNo(b: boolean): string {
  return b ? "yes" : "no";
}

/** `stats settings`, with memcached's names; flags memg ignores show what was given. */
export function settingsStats(cache: Cache): Row[] {
  const cfg = cache.config;
  return [
    ["maxbytes", cache.store.limitBytes],
    ["maxconns", cfg.connLimit],
    ["tcpport", cfg.port],
    ["udpport", cfg.udpPort],
    ["inter", cfg.listen.join(",")],
    ["verbosity", cfg.verbose],
    ["oldest", 0],
    ["evictions", cfg.evictions ? "on" : "off"],
    ["domain_socket", cfg.unixSocket ?? "NULL"],
    ["umask", cfg.unixMask.toString(8)],
    ["shutdown_command", yesNo(cfg.enableShutdown)],
    ["growth_factor", cfg.growthFactor.toFixed(2)],
    ["chunk_size", cfg.slabMinSize],
    ["num_threads", cfg.threads],
    ["reqs_per_event", cfg.reqsPerEvent],
    ["cas_enabled", "yes"], // -C is accepted with a warning; CAS values are always kept
    ["tcp_backlog", cfg.backlog],
    [
      "binding_protocol",
      cfg.protocol === "auto" ? "auto-negotiate" : cfg.protocol,
    ],
    ["auth_enabled_sasl", yesNo(cfg.sasl)],
    ["auth_enabled_ascii", yesNo(cfg.authFile !== null)],
    ["item_size_max", cfg.itemSizeMax],
    ["slab_chunk_max", cfg.slabChunkMaxKb * 1024],
    ["flush_enabled", yesNo(cfg.flushEnabled)],
    ["idle_timeout", cfg.idleTimeout],
    ...tlsSettingsRows(cfg),
    ["single", yesNo(cfg.single)],
    ["udp_served", "no"],
    ["io_engine", cache.connections.io],
    ["user_switch", cfg.user === null ? "no" : `ignored:${cfg.user}`],
    ...permissionRows(cfg),
  ];
}

/** `stats slabs`: the store's per-class rows with the per-class command counters after them. */
export function slabStats(cache: Cache): Row[] {
  const rows = cache.store.groupStats("slabs") ?? [];
  const out: Row[] = [];
  const cc = cache.classCounters;
  for (const row of rows) {
    out.push(row);
    const m = /^(\d+):free_chunks_end$/.exec(row[0]);
    if (m === null) continue;
    const cls = Number(m[1]);
    for (const [i, name] of CLASS_COUNTERS.entries()) {
      out.push([`${cls}:${name}`, cc.value(i as ClassCounter, cls)]);
    }
  }
  return out;
}

/** The rows of `stats <group>`, or null for a group memg does not know. */
export function statsGroup(cache: Cache, group: string): Row[] | null {
  switch (group) {
    case "":
      return generalStats(cache);
    case "settings":
      return settingsStats(cache);
    case "slabs":
      return slabStats(cache);
    case "items":
    case "sizes":
      return cache.store.groupStats(group);
    default:
      return null;
  }
}
