/**
 * memg's command line: memcached's flags, short and long, parsed and validated into one typed
 * `Config`. A memcached command line or init script works unchanged; flags that cannot mean
 * anything here are accepted with a one-line warning.
 *
 * @module
 */
import { parseArgs as untypedParseArgs } from "@std/cli/parse-args";
import { NOTLS, tlsOptionWarning } from "./tls.ts";

/** memg's own version. */
export const MEMG_VERSION = "0.1.0";
/** The memcached version whose protocol memg speaks (the reference documents' tag). */
export const PROTOCOL_VERSION = "1.6.18";
/** What `version` answers: memcached's version, then memg's, so version-sniffing clients work. */
export const VERSION_STRING = `${PROTOCOL_VERSION}-memg-${MEMG_VERSION}`;

/** Which protocol connections may speak (`-B`). */
export type ProtocolChoice = "auto" | "ascii" | "binary";

/** How TCP connections are served (see `Config.io`). */
export type IoEngine = "epoll" | "deno";

/** Everything the server needs to know from its command line. */
export interface Config {
  port: number;
  /** Interfaces to listen on (`-l`, comma separated or repeated); each may carry `:port`. */
  listen: string[];
  unixSocket: string | null;
  unixMask: number;
  enableShutdown: boolean;
  memoryLimitMb: number;
  evictions: boolean;
  /** Item memory on transparent huge pages where the kernel offers them (`-L`). */
  largePages: boolean;
  /** The process's memory locked in RAM (`-k`). */
  lockMemory: boolean;
  connLimit: number;
  verbose: number;
  itemSizeMax: number;
  udpPort: number;
  user: string | null;
  threads: number;
  protocol: ProtocolChoice;
  cas: boolean;
  flushEnabled: boolean;
  reqsPerEvent: number;
  backlog: number;
  growthFactor: number;
  slabMinSize: number;
  sasl: boolean;
  saslPwdb: string | null;
  authFile: string | null;
  tls: boolean;
  sslChainCert: string | null;
  sslKey: string | null;
  idleTimeout: number;
  slabChunkMaxKb: number;
  single: boolean;
  /** HTTP port for /metrics, /stats.json and the live page (`--metrics-port`); null: off. */
  metricsPort: number | null;
  /** Warm-restart file (`--snapshot`): loaded at start, saved at shutdown; null: off. */
  snapshot: string | null;
  /**
   * How TCP sockets are served (`--io`): "epoll", memg's own engine over Deno's FFI (Linux, needs
   * `--allow-ffi`; falls back to "deno" where it cannot run), or "deno", Deno's own sockets.
   */
  io: IoEngine;
  /** Warnings about flags that were accepted but mean nothing here. */
  warnings: string[];
}

/** The defaults, as memcached's man page gives them except where the README says why. */
export function defaultConfig(): Config {
  return {
    port: 11211,
    listen: ["127.0.0.1"],
    unixSocket: null,
    unixMask: 0o700,
    enableShutdown: false,
    memoryLimitMb: 64,
    evictions: true,
    largePages: false,
    lockMemory: false,
    connLimit: 1024,
    verbose: 0,
    itemSizeMax: 1024 * 1024,
    udpPort: 0,
    user: null,
    threads: 4,
    protocol: "auto",
    cas: true,
    flushEnabled: true,
    reqsPerEvent: 20,
    backlog: 1024,
    growthFactor: 1.25,
    slabMinSize: 48,
    sasl: false,
    saslPwdb: null,
    authFile: null,
    tls: false,
    sslChainCert: null,
    sslKey: null,
    idleTimeout: 0,
    slabChunkMaxKb: 512,
    single: false,
    metricsPort: null,
    snapshot: null,
    io: "epoll",
    warnings: [],
  };
}

/** A command line that cannot be used; `main` prints the usage and exits 64 (EX_USAGE). */
export class UsageError extends Error {}

/** What the command line asked for besides running the server. */
export type Action = "run" | "help" | "version";

/** The result of parsing: the action, and the config to run with. */
export interface Parsed {
  action: Action;
  config: Config;
}

interface ParseOptions {
  string: string[];
  boolean: string[];
  collect: string[];
  alias: Record<string, string>;
  unknown: (arg: string) => boolean;
}
type ParsedArgs = Record<string, unknown> & { _: Array<string | number> };
const parseArgs = untypedParseArgs as (args: string[], opts: ParseOptions) => ParsedArgs;

const STRING_FLAGS = [
  "p",
  "l",
  "s",
  "a",
  "m",
  "c",
  "I",
  "U",
  "u",
  "t",
  "B",
  "R",
  "b",
  "f",
  "n",
  "Y",
  "o",
  "P",
  "D",
  "e",
  "N",
  "sasl-pwdb",
  "metrics-port",
  "snapshot",
  "io",
];
const BOOLEAN_FLAGS = [
  "A",
  "M",
  "v",
  "h",
  "V",
  "C",
  "F",
  "S",
  "Z",
  "d",
  "r",
  "k",
  "L",
  "i",
  "X",
  "W",
  "single",
];
const ALIASES: Record<string, string> = {
  p: "port",
  l: "listen",
  s: "unix-socket",
  a: "unix-mask",
  A: "enable-shutdown",
  m: "memory-limit",
  M: "disable-evictions",
  c: "conn-limit",
  v: "verbose",
  h: "help",
  V: "version",
  I: "max-item-size",
  U: "udp-port",
  u: "user",
  t: "threads",
  B: "protocol",
  C: "disable-cas",
  F: "disable-flush-all",
  R: "max-reqs-per-event",
  b: "listen-backlog",
  f: "slab-growth-factor",
  n: "slab-min-size",
  S: "enable-sasl",
  Y: "auth-file",
  Z: "enable-ssl",
  o: "extended",
  d: "daemon",
  r: "enable-coredumps",
  k: "lock-memory",
  L: "enable-largepages",
  i: "license",
  P: "pidfile",
  X: "disable-dumping",
  W: "disable-watch",
  e: "memory-file",
  N: "napi_ids",
};

/** `-o` sub-options memcached knows that memg accepts and ignores (with a warning). */
const IGNORED_EXTENDED = new Set([
  "maxconns_fast",
  "no_maxconns_fast",
  "hashpower",
  "tail_repair_time",
  "hash_algorithm",
  "lru_crawler",
  "no_lru_crawler",
  "lru_crawler_sleep",
  "lru_crawler_tocrawl",
  "read_buf_mem_limit",
  "lru_maintainer",
  "no_lru_maintainer",
  "hot_lru_pct",
  "warm_lru_pct",
  "hot_max_factor",
  "warm_max_factor",
  "temporary_ttl",
  "watcher_logbuf_size",
  "worker_logbuf_size",
  "track_sizes",
  "no_hashexpand",
  "modern",
  "no_modern",
  "sock_cookie_id",
  "slab_reassign",
  "no_slab_reassign",
  "slab_automove",
  "slab_automove_freeratio",
  "ssl_keyformat",
  "ssl_verify_mode",
  "ssl_ciphers",
  "ssl_ca_cert",
  "ssl_wbuf_size",
  "ssl_session_cache",
  "ssl_kernel_tls",
  "ssl_min_version",
  "ext_path",
  "ext_page_size",
  "ext_wbuf_size",
  "ext_threads",
  "ext_item_size",
  "ext_item_age",
  "ext_low_ttl",
  "ext_drop_unread",
  "ext_recache_rate",
  "ext_compact_under",
  "ext_drop_under",
  "ext_max_frag",
  "ext_max_sleep",
  "no_inline_ascii_resp",
  "inline_ascii_resp",
  "meta_response_old",
]);

function lastString(v: unknown, flag: string): string | undefined {
  if (v === undefined) return undefined;
  const last = Array.isArray(v) ? v[v.length - 1] : v;
  if (typeof last !== "string") throw new UsageError(`option -${flag} requires an argument`);
  return last;
}

function allStrings(v: unknown): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

function integer(s: string, flag: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(s)) throw new UsageError(`-${flag}: not a number: ${s}`);
  const n = Number(s);
  if (n < min || n > max) throw new UsageError(`-${flag}: ${s} is out of range ${min}..${max}`);
  return n;
}

/** Parses a size as memcached's `-I` does: bytes, or a number with a k/m/g suffix. */
export function parseSize(s: string, flag: string): number {
  const m = /^(\d+)([kKmMgG]?)$/.exec(s);
  if (m === null) throw new UsageError(`-${flag}: not a size: ${s}`);
  const unit = m[2].toLowerCase();
  const mult = unit === "k" ? 1024 : unit === "m" ? 1024 * 1024 : unit === "g" ? 1024 ** 3 : 1;
  return Number(m[1]) * mult;
}

function applyExtended(config: Config, spec: string): void {
  for (const opt of spec.split(",")) {
    if (opt === "") continue;
    const eq = opt.indexOf("=");
    const name = eq < 0 ? opt : opt.slice(0, eq);
    const value = eq < 0 ? "" : opt.slice(eq + 1);
    switch (name) {
      case "idle_timeout":
        config.idleTimeout = integer(value, "o idle_timeout", 0, 2 ** 31 - 1);
        break;
      case "slab_chunk_max":
        config.slabChunkMaxKb = integer(value, "o slab_chunk_max", 1, 1024 * 1024);
        break;
      case "ssl_chain_cert":
        config.sslChainCert = value;
        break;
      case "ssl_key":
        config.sslKey = value;
        break;
      default:
        if (!IGNORED_EXTENDED.has(name)) throw new UsageError(`Illegal suboption "${opt}"`);
        if (name.startsWith("ssl_")) {
          const warning = tlsOptionWarning(name, value);
          if (warning !== null) config.warnings.push(warning);
        } else {
          config.warnings.push(
            `-o ${name} is accepted for compatibility and has no effect in memg`,
          );
        }
    }
  }
}

/**
 * Parses a memcached-style command line. Throws `UsageError` for unknown flags and bad values;
 * otherwise the returned config is valid (limits checked as memcached checks them).
 */
export function parseConfig(args: string[], env: { saslPwdb?: string } = {}): Parsed {
  const unknown: string[] = [];
  const a = parseArgs(args, {
    string: STRING_FLAGS,
    boolean: BOOLEAN_FLAGS,
    collect: ["l", "o", "v"],
    alias: ALIASES,
    unknown: (arg: string) => {
      unknown.push(arg);
      return false;
    },
  });
  if (unknown.length > 0) throw new UsageError(`unknown option: ${unknown[0]}`);
  if (a._.length > 0) throw new UsageError(`unexpected argument: ${a._[0]}`);

  const config = defaultConfig();
  if (a.h) return { action: "help", config };
  if (a.V) return { action: "version", config };
  const str = (flag: string) => lastString(a[flag], flag);

  const p = str("p");
  if (p !== undefined) config.port = integer(p, "p", 0, 65535);
  const listen = allStrings(a.l).flatMap((s) => s.split(",")).filter((s) => s !== "");
  if (listen.length > 0) config.listen = listen;
  config.unixSocket = str("s") ?? null;
  const mask = str("a");
  if (mask !== undefined) {
    if (!/^[0-7]{1,4}$/.test(mask)) throw new UsageError(`-a: not an octal mask: ${mask}`);
    config.unixMask = parseInt(mask, 8);
  }
  config.enableShutdown = a.A === true;
  const m = str("m");
  if (m !== undefined) {
    const mb = /^\d+$/.test(m) ? Number(m) : parseSize(m, "m") / (1024 * 1024);
    if (!(mb > 0)) throw new UsageError(`-m: must be at least 1 megabyte`);
    config.memoryLimitMb = Math.floor(mb);
  }
  config.evictions = a.M !== true;
  config.largePages = a.L === true;
  config.lockMemory = a.k === true;
  const c = str("c");
  if (c !== undefined) config.connLimit = integer(c, "c", 1, 1_000_000);
  const v = a.v;
  config.verbose = Array.isArray(v) ? v.filter((x) => x === true).length : v === true ? 1 : 0;
  for (const arg of args) if (/^-v{2,}$/.test(arg)) config.verbose = arg.length - 1;
  const item = str("I");
  if (item !== undefined) {
    const size = parseSize(item, "I");
    if (size < 1024) throw new UsageError("Item max size cannot be less than 1024 bytes.");
    if (size > 1024 ** 3) throw new UsageError("Cannot set item size limit higher than 1 GB.");
    config.itemSizeMax = size;
  }
  if (config.itemSizeMax > (config.memoryLimitMb * 1024 * 1024) / 2) {
    throw new UsageError("Cannot set item size limit higher than 1/2 of memory max.");
  }
  const udp = str("U");
  if (udp !== undefined) {
    config.udpPort = integer(udp, "U", 0, 65535);
    if (config.udpPort !== 0) {
      config.warnings.push("-U: UDP is not served by memg (memcached turned it off by default)");
    }
  }
  config.user = str("u") ?? null;
  if (config.user !== null) config.warnings.push("-u: memg does not switch users");
  const t = str("t");
  if (t !== undefined) {
    config.threads = integer(t, "t", 1, 1024);
    config.warnings.push("-t: memg runs one event loop; the thread count has no effect");
  }
  const proto = str("B");
  if (proto !== undefined) {
    if (proto !== "auto" && proto !== "ascii" && proto !== "binary") {
      throw new UsageError(`-B: protocol must be auto, ascii or binary, not ${proto}`);
    }
    config.protocol = proto;
  }
  config.cas = a.C !== true;
  if (!config.cas) {
    config.warnings.push("-C: memg always keeps CAS values; gets still returns them");
  }
  config.flushEnabled = a.F !== true;
  const r = str("R");
  if (r !== undefined) config.reqsPerEvent = integer(r, "R", 1, 2 ** 31 - 1);
  const b = str("b");
  if (b !== undefined) config.backlog = integer(b, "b", 1, 2 ** 31 - 1);
  const f = str("f");
  if (f !== undefined) {
    const factor = Number(f);
    if (!(factor > 1)) throw new UsageError("Factor must be greater than 1");
    config.growthFactor = factor;
  }
  const n = str("n");
  if (n !== undefined) config.slabMinSize = integer(n, "n", 1, 1024 * 1024);
  config.sasl = a.S === true;
  config.saslPwdb = str("sasl-pwdb") ?? env.saslPwdb ?? null;
  config.authFile = str("Y") ?? null;
  // As memcached: -S implies the binary protocol and -Y the ascii one (-Y wins when both).
  if (config.sasl) {
    if (proto === undefined) config.protocol = "binary";
    else if (proto !== "binary") {
      throw new UsageError("You cannot allow the ASCII protocol while using SASL.");
    }
    if (config.udpPort !== 0) {
      throw new UsageError("Cannot enable UDP while using binary SASL authentication.");
    }
  }
  if (config.authFile !== null) {
    if (proto === undefined) config.protocol = "ascii";
    else if (proto !== "ascii") {
      throw new UsageError(
        "You cannot allow the BINARY protocol while using ascii authentication tokens.",
      );
    }
  }
  config.tls = a.Z === true;
  for (const spec of allStrings(a.o)) applyExtended(config, spec);
  config.single = a.single === true;
  const metrics = str("metrics-port");
  if (metrics !== undefined) {
    config.metricsPort = integer(metrics, "-metrics-port", 0, 65535);
    if (config.metricsPort !== 0 && config.metricsPort === config.port) {
      throw new UsageError("--metrics-port must differ from the memcached port (-p)");
    }
  }

  const io = str("io");
  if (io !== undefined) {
    if (io !== "epoll" && io !== "deno") throw new UsageError("--io must be epoll or deno");
    config.io = io;
  }

  const snapshot = str("snapshot");
  if (snapshot !== undefined) {
    if (snapshot === "") throw new UsageError("--snapshot needs a file name");
    config.snapshot = snapshot;
  }

  for (
    const [flag, what] of [
      ["d", "-d: memg does not daemonize; use your service manager"],
      [
        "r",
        "-r: core dump limits are not changed by memg",
      ],
      [
        "X",
        "-X: memg has no cachedump to disable",
      ],
      ["W", "-W: memg has no watch command to disable"],
    ] as const
  ) {
    if (a[flag] === true) config.warnings.push(what);
  }
  for (
    const [flag, what] of [
      ["P", "-P: no pidfile is written"],
      [
        "D",
        "-D: per-prefix stats are not kept",
      ],
      ["e", "-e: memory files are not supported"],
      ["N", "-N: napi ids are not used"],
    ] as const
  ) {
    if (str(flag) !== undefined) config.warnings.push(what);
  }
  if (config.tls && config.sslChainCert === null) {
    throw new UsageError("-Z needs -o ssl_chain_cert=FILE (and ssl_key=FILE)");
  }
  if (!config.tls && config.listen.some((spec) => spec.startsWith(NOTLS))) {
    throw new UsageError("'notls' option is valid only when SSL is enabled");
  }
  return { action: "run", config };
}

/** The usage text, printed for `-h` and after a bad command line. */
export const USAGE = `memg ${MEMG_VERSION} (memcached ${PROTOCOL_VERSION} protocol)
-p, --port=<num>          TCP port to listen on (default: 11211; 0 picks a free port)
-l, --listen=<addr>       interface to listen on (default: 127.0.0.1); addr or addr:port,
                          comma separated or repeated; with -Z, notls:<addr> is plaintext
-s, --unix-socket=<file>  UNIX socket to listen on (disables network support)
-a, --unix-mask=<mask>    access mask for UNIX socket, in octal (default: 700)
-A, --enable-shutdown     enable ascii "shutdown" command
-m, --memory-limit=<num>  item memory in megabytes (default: 64)
-M, --disable-evictions   return error on memory exhausted instead of evicting
-L, --enable-largepages   put item memory on transparent huge pages (Linux; fewer TLB misses)
-k, --lock-memory         lock down all paged memory (Linux; pages locked as first touched)
-c, --conn-limit=<num>    max simultaneous connections (default: 1024)
-v, --verbose             verbose (print errors/warnings); -vv also prints commands
-h, --help                print this help and exit
-V, --version             print version and exit
-I, --max-item-size=<num> max item size (default: 1m, min: 1k, max: 1024m)
-B, --protocol=<name>     ascii, binary, or auto (default: auto)
-C, --disable-cas         accepted with a warning; memg always keeps CAS values
-F, --disable-flush-all   disable flush_all command
-R, --max-reqs-per-event  accepted; memg answers every command of a read in one write
-b, --listen-backlog=<n>  listen backlog of the epoll engine (default: 1024)
-f, --slab-growth-factor  chunk size growth factor (default: 1.25)
-n, --slab-min-size=<n>   min space used for key+value+flags (default: 48)
-S, --enable-sasl         require SASL PLAIN authentication (binary protocol)
    --sasl-pwdb=<file>    SASL password file (default: $MEMCACHED_SASL_PWDB)
-Y, --auth-file=<file>    enable ASCII protocol authentication (user:pass lines)
-Z, --enable-ssl          enable TLS (needs -o ssl_chain_cert=...,ssl_key=...)
-o, --extended            idle_timeout=<s>, slab_chunk_max=<kb>, ssl_chain_cert=<file>,
                          ssl_key=<file>; other memcached options are accepted and ignored
                          with a warning (for ssl_* ones, saying what Deno cannot do)
-U, -u, -t, -d, -r, -P, -D, -X, -W, -e, -N
                          accepted for compatibility with a warning; no effect in memg
    --single              exit after the first connection closes (for profiling)
    --metrics-port=<num>  serve /metrics (Prometheus), /stats.json and a live page over
                          HTTP on the first -l address (default: off; 0 picks a free port)
    --snapshot=<file>     warm restart: save every item to <file> at shutdown (SIGTERM, SIGINT,
                          "shutdown") and load it at start (default: off)
    --io=<engine>         epoll: memg's own TCP engine (Linux, needs --allow-ffi; Deno's
                          sockets where it cannot run); deno: Deno's sockets (default: epoll)
`;
