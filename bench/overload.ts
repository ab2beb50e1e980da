/**
 * Overload: memg under a sustained write load many times its memory limit while readers keep
 * reading. Measures the reader latency without and with the write load, and memg's RSS.
 *
 *     deno run -A bench/overload.ts [--memory MB] [--factor N] [--writers N] [--readers N]
 *                                   [--unloaded S] [--seed S]
 *
 * memg runs as a child process (`-m MB`); the writers run in another child process (this
 * script with `--write-to PORT`), so the readers' clock is not held up by the writers' work.
 * Each writer stores values of 100 B to 500 KB (log-uniform) under fresh keys, one request in
 * flight, until the writers together have sent `factor × MB` megabytes. Each reader gets one of
 * 1,000 small preloaded keys at a time (hits and, once evicted, misses). Prints a JSON
 * `OverloadReport`; the RSS bound it states is memcached's rule of thumb, `-m × 1.25`, plus the
 * runtime baseline: memg's RSS after the unloaded phase less the item pages it holds then.
 *
 * @module
 */
import { parseArgs as untypedParseArgs } from "@std/cli/parse-args";
import { spawnMemg } from "../tests/helpers/server.ts";
import { prng } from "./fuzz.ts";

/** What a run measured. */
export interface OverloadReport {
  memoryMb: number;
  writtenMb: number;
  writeSeconds: number;
  writeMbPerSecond: number;
  /** RSS of memg after start-up, before any item. */
  startRssMb: number;
  /**
   * The runtime baseline: memg's RSS once warmed up by the unloaded phase (code compiled,
   * connections open), less the item pages it holds then.
   */
  baselineRssMb: number;
  /** Highest RSS seen while loaded (sampled every 50 ms). */
  maxRssMb: number;
  /** `memoryMb × 1.25 + baselineRssMb`. */
  rssBoundMb: number;
  /** Item memory the store holds at the end (`stats slabs` total_malloced). */
  itemPagesMb: number;
  unloaded: Latency;
  loaded: Latency;
  /** `loaded.p99 / unloaded.p99`. */
  p99Factor: number;
  evictions: number;
  readerHits: number;
  readerMisses: number;
  readerErrors: number;
}

/** Reader round-trip times in milliseconds. */
export interface Latency {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** Settings of a run. */
export interface OverloadSettings {
  memoryMb: number;
  factor: number;
  writers: number;
  readers: number;
  /** Seconds of reads without the write load. */
  unloadedSeconds: number;
  seed: number;
}

const enc = new TextEncoder();
const MB = 1024 * 1024;
const READ_KEYS = 1000;
const VALUE_MIN = 100;
const VALUE_MAX = 500 * 1024;

async function writeAll(conn: Deno.Conn, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += await conn.write(b.subarray(off));
}

/** A connection that reads replies ending in a known suffix. */
class Client {
  readonly conn: Deno.Conn;
  #buf = new Uint8Array(64 * 1024);
  #have = 0;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  static async open(port: number): Promise<Client> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new Client(conn);
  }

  /** Sends `request` and reads until the reply ends with `suffix`; returns the reply. */
  async call(request: Uint8Array, suffix: string): Promise<string> {
    await writeAll(this.conn, request);
    this.#have = 0;
    for (;;) {
      if (this.#have === this.#buf.length) {
        const bigger = new Uint8Array(this.#buf.length * 2);
        bigger.set(this.#buf);
        this.#buf = bigger;
      }
      const n = await this.conn.read(this.#buf.subarray(this.#have));
      if (n === null) throw new Error("memg closed the connection");
      this.#have += n;
      const text = new TextDecoder("latin1").decode(this.#buf.subarray(0, this.#have));
      if (text.endsWith(suffix)) return text;
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // closed already
    }
  }
}

/** The write load: `writers` connections storing fresh keys until `totalBytes` are sent. */
async function writeLoad(port: number, totalBytes: number, writers: number, seed: number) {
  const rng = prng(seed);
  const payload = new Uint8Array(VALUE_MAX).fill(120);
  let sent = 0;
  let n = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: writers }, async (_, w) => {
    const c = await Client.open(port);
    try {
      while (sent < totalBytes) {
        const size = Math.round(VALUE_MIN * Math.pow(VALUE_MAX / VALUE_MIN, rng()));
        sent += size;
        const head = enc.encode(`set w${w}-${n++} 0 0 ${size}\r\n`);
        const request = new Uint8Array(head.length + size + 2);
        request.set(head);
        request.set(payload.subarray(0, size), head.length);
        request.set([13, 10], head.length + size);
        const reply = await c.call(request, "\r\n");
        if (reply !== "STORED\r\n") throw new Error(`set answered ${reply}`);
      }
    } finally {
      c.close();
    }
  }));
  return { sent, seconds: (performance.now() - started) / 1000 };
}

function latency(samples: number[]): Latency {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return { count: s.length, p50: r(at(0.5)), p99: r(at(0.99)), max: r(s[s.length - 1] ?? NaN) };
}

/** `total_malloced` of a `stats slabs` reply, in MiB. */
function pagesMb(slabs: string): number {
  return Number(/STAT total_malloced (\d+)/.exec(slabs)?.[1] ?? NaN) / MB;
}

function rssMb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) / 1024;
}

/**
 * Runs the readers on `port` until `stop()` is true; returns their round-trip times (ms), with
 * hit, miss and error counts.
 */
async function readLoad(port: number, readers: number, seed: number, stop: () => boolean) {
  const samples: number[] = [];
  let hits = 0;
  let misses = 0;
  let errors = 0;
  await Promise.all(Array.from({ length: readers }, async (_, r) => {
    const rng = prng(seed + r);
    const c = await Client.open(port);
    try {
      while (!stop()) {
        const key = `r${Math.floor(rng() * READ_KEYS)}`;
        const t0 = performance.now();
        const reply = await c.call(enc.encode(`get ${key}\r\n`), "END\r\n");
        samples.push(performance.now() - t0);
        if (reply.startsWith("VALUE ")) hits++;
        else if (reply === "END\r\n") misses++;
        else errors++;
      }
    } finally {
      c.close();
    }
  }));
  return { samples, hits, misses, errors };
}

/** Runs the whole measurement: a fresh memg, preload, unloaded reads, loaded reads. */
export async function measureOverload(s: OverloadSettings): Promise<OverloadReport> {
  const memg = await spawnMemg(["-m", String(s.memoryMb)]);
  const pid = memg.process.pid;
  try {
    await new Promise((r) => setTimeout(r, 300)); // let start-up garbage settle
    const startRssMb = rssMb(pid);
    const setup = await Client.open(memg.port);
    for (let i = 0; i < READ_KEYS; i++) {
      const value = "r".repeat(100 + (i % 1900));
      await setup.call(enc.encode(`set r${i} 0 0 ${value.length}\r\n${value}\r\n`), "\r\n");
    }

    let phase: "unloaded" | "loaded" | "done" = "unloaded";
    const unloaded = readLoad(memg.port, s.readers, s.seed, () => phase !== "unloaded");
    await new Promise((r) => setTimeout(r, s.unloadedSeconds * 1000));
    phase = "loaded";
    const before = await unloaded;
    const warmSlabs = await setup.call(enc.encode("stats slabs\r\n"), "END\r\n");
    const baselineRssMb = rssMb(pid) - pagesMb(warmSlabs);

    let maxRss = rssMb(pid);
    const sampler = setInterval(() => maxRss = Math.max(maxRss, rssMb(pid)), 50);
    const loaded = readLoad(memg.port, s.readers, s.seed + 100, () => phase === "done");
    const writer = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL(import.meta.url).pathname,
        "--write-to",
        String(memg.port),
        "--bytes",
        String(s.factor * s.memoryMb * MB),
        "--writers",
        String(s.writers),
        "--seed",
        String(s.seed),
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    let written: { sent: number; seconds: number };
    try {
      const out = await writer;
      if (!out.success) throw new Error("the write load failed");
      written = JSON.parse(new TextDecoder().decode(out.stdout));
    } finally {
      phase = "done";
      clearInterval(sampler);
    }
    const after = await loaded;
    maxRss = Math.max(maxRss, rssMb(pid));
    const stats = await setup.call(enc.encode("stats\r\n"), "END\r\n");
    const slabs = await setup.call(enc.encode("stats slabs\r\n"), "END\r\n");
    setup.close();
    const unloadedLatency = latency(before.samples);
    const loadedLatency = latency(after.samples);
    const round = (x: number) => Math.round(x * 10) / 10;
    return {
      memoryMb: s.memoryMb,
      writtenMb: round(written.sent / MB),
      writeSeconds: round(written.seconds),
      writeMbPerSecond: round(written.sent / MB / written.seconds),
      startRssMb: round(startRssMb),
      baselineRssMb: round(baselineRssMb),
      maxRssMb: round(maxRss),
      rssBoundMb: round(s.memoryMb * 1.25 + baselineRssMb),
      itemPagesMb: round(pagesMb(slabs)),
      unloaded: unloadedLatency,
      loaded: loadedLatency,
      p99Factor: round(loadedLatency.p99 / unloadedLatency.p99),
      evictions: Number(/STAT evictions (\d+)/.exec(stats)?.[1] ?? NaN),
      readerHits: before.hits + after.hits,
      readerMisses: before.misses + after.misses,
      readerErrors: before.errors + after.errors,
    };
  } finally {
    await memg.close();
  }
}

type Flags = Record<string, string | undefined> & { help?: boolean };
const parseArgs = untypedParseArgs as (args: string[], opts: {
  string: string[];
  boolean: string[];
  unknown: (arg: string) => boolean;
}) => Flags;

const USAGE = "usage: deno run -A bench/overload.ts [--memory MB] [--factor N] [--writers N] " +
  "[--readers N] [--unloaded S] [--seed S]";

async function main(): Promise<number> {
  const flags = parseArgs(Deno.args, {
    string: [
      "memory",
      "factor",
      "writers",
      "readers",
      "unloaded",
      "seed",
      "write-to",
      "bytes",
    ],
    boolean: ["help"],
    unknown: (arg) => {
      console.error(`overload: unknown argument ${arg}\n${USAGE}`);
      Deno.exit(64);
    },
  });
  if (flags.help) {
    console.log(USAGE);
    return 0;
  }
  const num = (name: string, fallback: number) => {
    const n = Number(flags[name] ?? fallback);
    if (!(n > 0)) {
      console.error(`overload: --${name} wants a positive number\n${USAGE}`);
      Deno.exit(64);
    }
    return n;
  };
  if (flags["write-to"] !== undefined) {
    const result = await writeLoad(
      num("write-to", 0),
      num("bytes", 0),
      num("writers", 4),
      num("seed", 1),
    );
    console.log(JSON.stringify(result));
    return 0;
  }
  const report = await measureOverload({
    memoryMb: num("memory", 64),
    factor: num("factor", 30),
    writers: num("writers", 4),
    readers: num("readers", 4),
    unloadedSeconds: num("unloaded", 5),
    seed: num("seed", 1),
  });
  console.log(JSON.stringify(report, null, 2));
  return 0;
}

if (import.meta.main) Deno.exit(await main());
