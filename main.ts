/**
 * memg: a memcached-compatible cache server. `deno task start [memcached flags]`.
 *
 * @module
 */
import { Cache } from "./lib/cache.ts";
import { parseConfig, USAGE, UsageError, VERSION_STRING } from "./lib/config.ts";
import { describeAddr, Server } from "./lib/server.ts";
import { MapStore } from "./lib/store/map.ts";
import { type Clock, systemClock } from "./lib/store/store.ts";
import type { Config } from "./lib/config.ts";

const EX_USAGE = 64;

function envPwdb(): string | undefined {
  try {
    return Deno.env.get("MEMCACHED_SASL_PWDB");
  } catch {
    return undefined; // no env permission: no default password file
  }
}

/** Builds the store, the command layer and the server a config describes. */
export function createServer(config: Config, clock: Clock = systemClock): Server {
  const store = new MapStore({
    limitBytes: config.memoryLimitMb * 1024 * 1024,
    itemSizeMax: config.itemSizeMax,
    evict: config.evictions,
    clock,
  });
  return new Server(new Cache(store, config));
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
  for (const w of config.warnings) console.error(`memg: warning: ${w}`);
  const server = createServer(config);
  const addrs = server.listen();
  for (const a of addrs) {
    console.log(`memg ${VERSION_STRING} listening on ${describeAddr(a)}`);
  }
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => server.shutdown(false));
  }
  server.serve();
  await server.done;
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
