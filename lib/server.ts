/**
 * The listener side of memg: accepts on every configured address, enforces the connection
 * limit as memcached does, runs each connection's loop, sweeps expired items in the
 * background, cuts idle connections, and shuts down cleanly (stop accepting, finish what was
 * read, close, resolve `done`).
 *
 * @module
 */
import type { Authentication } from "./auth.ts";
import type { Cache } from "./cache.ts";
import { Connection, type ConnectionOwner, type Transport } from "./connection.ts";
import { epollStopped, listenEpoll } from "./net/epoll.ts";
import { bytes } from "./reply.ts";
import { listenTls, NOTLS, type TlsCredentials } from "./tls.ts";

const TOO_MANY = bytes("ERROR Too many open connections\r\n");
/**
 * How often the clock ticks and the background sweeper runs, and for how long at most: short
 * slices, since requests that arrive meanwhile wait (1 ms every 200 ms gave 1000 clients at
 * 5,000 req/s a p99 of 0.96-1.07 ms; 0.25 ms every 50 ms, 0.46-0.74 ms).
 */
const SWEEP_EVERY_MS = 50;
const SWEEP_BUDGET_MS = 0.25;
/**
 * Slices that reclaim nothing space the next ones out (1, 3, 7, … ticks skipped, up to this),
 * as memcached's crawler sleeps while it finds nothing: a cache of items without expiry times
 * is walked every 1.6 s at most, not every 50 ms. A slice that reclaims something resets it,
 * and none is skipped while the hash index doubles (`Store.sweepPending`). Expired items are
 * also reclaimed when read and when their class needs memory.
 */
const SWEEP_MAX_SKIP = 31;

/** Something that accepts connections: a `Deno.Listener` or the epoll engine's. */
export interface Listener {
  readonly addr: Deno.Addr;
  accept(): Promise<Transport>;
  close(): void;
}

/** A running memg server. */
export class Server implements ConnectionOwner {
  readonly cache: Cache;
  readonly auth: Authentication;
  /** The certificate and key TLS listeners serve with (`-Z`); null: TLS off. */
  readonly tls: TlsCredentials | null;
  closing = false;
  /** Resolves when the server has shut down. */
  readonly done: Promise<void>;
  readonly #listeners: Listener[] = [];
  readonly #tlsListeners = new Set<Listener>();
  readonly #conns = new Map<number, Connection>();
  readonly #running = new Set<Promise<void>>();
  #nextId = 0;
  #served = 0;
  #resolveDone!: () => void;
  #timers: ReturnType<typeof setInterval>[] = [];

  /** `auth` holds the password files, `tls` the certificate and key, already read. */
  constructor(cache: Cache, auth: Authentication, tls: TlsCredentials | null = null) {
    this.cache = cache;
    this.auth = auth;
    this.tls = tls;
    this.done = new Promise((resolve) => this.#resolveDone = resolve);
  }

  /**
   * Opens the listeners the config asks for; returns their addresses. With TLS on, every `-l`
   * listener is TLS except those marked `notls:`; a unix socket is never TLS (as memcached).
   */
  listen(): Deno.Addr[] {
    const cfg = this.cache.config;
    if (cfg.unixSocket !== null) {
      try {
        Deno.removeSync(cfg.unixSocket);
      } catch {
        // no stale socket file
      }
      this.#listeners.push(Deno.listen({ transport: "unix", path: cfg.unixSocket }));
      Deno.chmodSync(cfg.unixSocket, cfg.unixMask & 0o777);
    } else {
      for (const spec of cfg.listen) {
        const { hostname, port } = splitHostPort(spec, cfg.port);
        if (this.tls !== null && !spec.startsWith(NOTLS)) {
          const listener = listenTls(this.tls, hostname, port);
          this.#tlsListeners.add(listener);
          this.#listeners.push(listener);
        } else this.#listeners.push(this.#listenTcp(hostname, port));
      }
    }
    return this.#listeners.map((l) => l.addr);
  }

  /** A plain TCP listener: memg's epoll engine if the config asks for it and it can run. */
  #listenTcp(hostname: string, port: number): Listener {
    const cfg = this.cache.config;
    const epoll = cfg.io === "epoll" ? listenEpoll(hostname, port, cfg.backlog) : null;
    if (epoll !== null) {
      this.cache.connections.io = "epoll"; // once any TCP listener uses it
      return epoll;
    }
    return Deno.listen({ hostname, port });
  }

  /** The open listeners as the start-up lines name them: `tls:host:port`, else `describeAddr`. */
  listenerNames(): string[] {
    return this.#listeners.map((l) => {
      const name = describeAddr(l.addr);
      return this.#tlsListeners.has(l) ? name.replace(/^tcp:/, "tls:") : name;
    });
  }

  /** Accepts and serves connections until `shutdown`. */
  serve(): void {
    for (const l of this.#listeners) this.#acceptLoop(l);
    const store = this.cache.store;
    let skip = 0;
    let skipped = 0;
    this.#timers.push(setInterval(() => {
      store.clock.tick?.();
      if (skipped < skip && !store.sweepPending) {
        skipped++;
        return;
      }
      skipped = 0;
      skip = store.sweep(SWEEP_BUDGET_MS) > 0 ? 0 : Math.min(2 * skip + 1, SWEEP_MAX_SKIP);
    }, SWEEP_EVERY_MS));
    if (this.cache.config.idleTimeout > 0) {
      this.#timers.push(setInterval(() => this.#cutIdle(), 1000));
    }
  }

  async #acceptLoop(listener: Listener): Promise<void> {
    const info = this.cache.connections;
    const counters = this.cache.counters;
    for (;;) {
      let conn: Transport;
      try {
        conn = await listener.accept();
      } catch {
        return; // listener closed
      }
      if (this.closing) {
        conn.close();
        continue;
      }
      counters.total_connections++;
      if (this.#conns.size >= this.cache.config.connLimit) {
        counters.rejected_connections++;
        this.#refuse(conn);
        continue;
      }
      conn.setNoDelay?.(true); // not on a TlsConn; the epoll engine sets it at accept
      const c = new Connection(conn, this.#nextId++, this);
      this.#conns.set(c.id, c);
      info.curr = this.#conns.size;
      info.structures = Math.max(info.structures, this.#conns.size);
      const run = c.run().finally(() => {
        this.#conns.delete(c.id);
        this.#running.delete(run);
        info.curr = this.#conns.size;
        this.#served++;
        if (this.cache.config.single && this.#served === 1) this.shutdown(false);
      });
      this.#running.add(run);
    }
  }

  async #refuse(conn: Transport): Promise<void> {
    try {
      await conn.write(TOO_MANY);
    } catch {
      // the client is gone already
    } finally {
      try {
        conn.close();
      } catch {
        // closed by the peer
      }
    }
  }

  /** As memcached: cut once idle for more than idle_timeout whole seconds (never sooner). */
  #cutIdle(): void {
    const limit = this.cache.now() - this.cache.config.idleTimeout;
    for (const c of this.#conns.values()) if (c.awaitingCommand && c.lastActive < limit) c.abort();
  }

  connectionRows(): Array<[string, string | number]> {
    const now = this.cache.now();
    const rows: Array<[string, string | number]> = [];
    for (const c of this.#conns.values()) {
      rows.push([`${c.id}:addr`, describeAddr(c.transport.remoteAddr)]);
      rows.push([`${c.id}:state`, c.idle ? "conn_waiting" : "conn_parse_cmd"]);
      rows.push([`${c.id}:secs_since_last_cmd`, now - c.lastActive]);
    }
    return rows;
  }

  /**
   * Stops accepting, lets every connection finish the commands it has read and send their
   * replies, closes idle ones, and resolves `done`. Safe to call more than once.
   */
  shutdown(_graceful: boolean): void {
    if (this.closing) return;
    this.closing = true;
    this.cache.connections.accepting = false;
    for (const t of this.#timers) clearInterval(t);
    for (const l of this.#listeners) {
      try {
        l.close();
      } catch {
        // already closed
      }
    }
    for (const c of this.#conns.values()) if (c.idle) void c.finish();
    const deadline = setTimeout(() => {
      for (const c of this.#conns.values()) c.abort();
    }, 5000);
    Promise.all([...this.#running]).finally(async () => {
      clearTimeout(deadline);
      await epollStopped();
      if (this.cache.config.unixSocket !== null) {
        try {
          Deno.removeSync(this.cache.config.unixSocket);
        } catch {
          // removed already
        }
      }
      this.#resolveDone();
    });
  }
}

/**
 * Splits `host`, `host:port`, `[v6]:port` or a bare IPv6 address, each optionally after
 * `notls:`; `port` is the default.
 */
export function splitHostPort(spec: string, port: number): { hostname: string; port: number } {
  if (spec.startsWith(NOTLS)) spec = spec.slice(NOTLS.length);
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(spec);
  if (v6 !== null) return { hostname: v6[1], port: v6[2] ? Number(v6[2]) : port };
  const colons = spec.split(":").length - 1;
  if (colons === 1) {
    const [host, p] = spec.split(":");
    return { hostname: host, port: Number(p) };
  }
  return { hostname: spec, port };
}

/** `tcp:host:port` or `unix:path`, as `stats conns` and the start-up line show addresses. */
export function describeAddr(a: Deno.Addr): string {
  if ("path" in a) return `unix:${a.path}`;
  if ("hostname" in a) return `${a.transport}:${a.hostname}:${a.port}`;
  return a.transport;
}
