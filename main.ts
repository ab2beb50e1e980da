/**
 * memg: a memcached-compatible cache server. `deno task start [memcached flags]`.
 *
 * @module
 */
import { AuthFileError, loadAuthentication } from "./lib/auth.ts";
import { Cache } from "./lib/cache.ts";
import { parseConfig, USAGE, UsageError, VERSION_STRING } from "./lib/config.ts";
import { startMetrics } from "./lib/metrics.ts";
import { dropPrivileges } from "./lib/permissions.ts";
import { Server } from "./lib/server.ts";
import { loadSnapshot, saveSnapshot } from "./lib/snapshot.ts";
import { lockMemory } from "./lib/lock_memory.ts";
import { largePagesUnavailable } from "./lib/store/large_pages.ts";
import { SlabStore } from "./lib/store/slab.ts";
import { type Clock, TickingClock } from "./lib/store/store.ts";
import { loadTls, TlsFileError } from "./lib/tls.ts";
import type { Config } from "./lib/config.ts";

const EX_USAGE = 64;

function envPwdb(): string | undefined {
  try {
    return Deno.env.get("MEMCACHED_SASL_PWDB");
  } catch {
    return undefined; // no env permission: no default password file
  }
}

/**
 * Builds the store, the command layer and the server a config describes, reading the password
 * files (throws `AuthFileError` when one is unusable) and the TLS certificate and key it names
 * (throws `TlsFileError`).
 */
export function createServer(config: Config, clock: Clock = new TickingClock()): Server {
  const store = new SlabStore({
    limitBytes: config.memoryLimitMb * 1024 * 1024,
    itemSizeMax: config.itemSizeMax,
    evict: config.evictions,
    clock,
    growthFactor: config.growthFactor,
    minChunk: 48 + config.slabMinSize,
    chunkMax: config.slabChunkMaxKb * 1024,
    largePages: config.largePages,
  });
  return new Server(new Cache(store, config), loadAuthentication(config), loadTls(config));
}

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseConfig(args, { saslPwdb: envPwdb() });
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`memg: ${e.message}\n\n${USAGE}`);
    return EX_USAGE;
  }
  if (parsed.action === "help") {
    console.log(USAGE);
    return 0;
  }
  if (parsed.action === "version") {
    console.log(`memcached ${VERSION_STRING}`);
    return 0;
  }
  const config = parsed.config;
  const noLargePages = config.largePages ? largePagesUnavailable() : null;
  if (noLargePages !== null) {
    config.warnings.push(`-L: ${noLargePages}; item memory is on ordinary pages`);
  }
  const notLocked = config.lockMemory ? lockMemory() : null;
  if (notLocked !== null) config.warnings.push(`-k: ${notLocked}; memory is not locked`);
  for (const w of config.warnings) console.error(`memg: warning: ${w}`);
  let server: Server;
  try {
    server = createServer(config);
  } catch (e) {
    if (e instanceof TlsFileError) {
      console.error(`memg: ${e.message}`);
      return EX_USAGE; // as memcached, for a certificate or key it cannot load
    }
    if (!(e instanceof AuthFileError)) throw e;
    console.error(`memg: ${e.message}`);
    return 1;
  }
  if (config.snapshot !== null) loadSnapshot(server.cache.store, config.snapshot);
  try {
    server.listen();
  } catch (e) {
    if (!(e instanceof TlsFileError)) throw e;
    console.error(`memg: ${e.message}`);
    return EX_USAGE;
  }
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => server.shutdown(false));
  }
  const metrics = startMetrics(server.cache);
  const dropped = dropPrivileges(config);
  if (config.verbose > 0) {
    console.error(`memg: permissions revoked after start-up: ${dropped.revoked.join(", ")}`);
  }
  for (const kept of dropped.kept) {
    if (!kept.global) continue;
    console.error(
      `memg: warning: ${kept.name} permission stays granted for every path, not just ` +
        `${kept.paths.join(", ")} (Deno cannot narrow a grant once given)`,
    );
  }
  if (metrics !== null) console.log(`memg metrics on ${metrics.url}`);
  for (const name of server.listenerNames()) {
    console.log(`memg ${VERSION_STRING} listening on ${name}`);
  }
  server.serve();
  await server.done;
  await metrics?.shutdown();
  if (config.snapshot !== null && saveSnapshot(server.cache.store, config.snapshot) === null) {
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
