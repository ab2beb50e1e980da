/**
 * Warm-restart benchmark: `deno run -A bench/snapshot.ts [items]` (default 1,000,000) fills a
 * memg child started with `--snapshot` with ~100-byte items, reads back every item's CAS, stops
 * it with SIGTERM, starts it again, and checks that every item came back byte for byte with its
 * flags and CAS (a pipelined `gets` over all keys) and its exptime (`mg k t` on a sample).
 * Prints the save and load times the server reported and the wall times around them.
 *
 * The bulk client (`fillItems`, `checkAll`, `checkTtls`) is shared with `tests/snapshot_test.ts`.
 *
 * @module
 */
import { type ChildMemg, spawnMemg } from "../tests/helpers/server.ts";

/** Connections the bulk client uses in parallel. */
const CONNECTIONS = 4;
/** Keys per `gets` command, commands per round trip. */
const KEYS_PER_GET = 100;
const GETS_PER_TRIP = 10;
/** Items per write when filling. */
const SETS_PER_WRITE = 1000;
/** An absolute exptime base (2033-05-18): past 30 days, so read as absolute; below 2^31. */
export const FAR_EXPTIME = 2_000_000_000;

/** Item `i`'s key: `k:<i>` (ASCII). */
export function keyOf(i: number): string {
  return `k:${i}`;
}

/** Item `i`'s value length: 90..110 bytes. */
export function valueLength(i: number): number {
  return 90 + (i % 21);
}

/** Item `i`'s value byte `j`: every byte value occurs, `\r` and `\n` included. */
export function valueByte(i: number, j: number): number {
  return (i * 131 + j * 7 + (i >>> 8)) & 0xff;
}

/** Item `i`'s client flags. */
export function flagsOf(i: number): number {
  return (i * 2654435761) >>> 0;
}

/** Item `i`'s absolute exptime: 0 (never) for one item in three, else a distinct second. */
export function exptimeOf(i: number): number {
  return i % 3 === 0 ? 0 : FAR_EXPTIME + (i % 100_000);
}

/** Stores items `0..n-1` with `set ... noreply` over parallel pipelined connections. */
export async function fillItems(port: number, n: number): Promise<void> {
  await Promise.all(
    slices(n).map(async ([from, to]) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        const buf = new Uint8Array(SETS_PER_WRITE * 200);
        for (let i = from; i < to;) {
          let p = 0;
          for (const end = Math.min(to, i + SETS_PER_WRITE); i < end; i++) {
            const len = valueLength(i);
            p = ascii(buf, p, `set ${keyOf(i)} ${flagsOf(i)} ${exptimeOf(i)} ${len} noreply\r\n`);
            for (let j = 0; j < len; j++) buf[p++] = valueByte(i, j);
            buf[p++] = 13;
            buf[p++] = 10;
          }
          await writeAll(conn, buf.subarray(0, p));
        }
        await writeAll(conn, MN);
        const r = new LineReader(conn);
        const line = await r.line();
        if (line !== "MN") throw new Error(`fill: unexpected reply ${JSON.stringify(line)}`);
      } finally {
        conn.close();
      }
    }),
  );
}

const MN = new TextEncoder().encode("mn\r\n");

/**
 * Fetches items `0..n-1` with pipelined multi-key `gets` and checks each one's key order, flags
 * and value byte for byte; with `expectCas`, also its CAS. Returns every item's CAS. Throws on
 * the first difference or missing item.
 */
export async function checkAll(
  port: number,
  n: number,
  expectCas: Float64Array | null = null,
): Promise<Float64Array> {
  const cas = new Float64Array(n);
  await Promise.all(
    slices(n).map(async ([from, to]) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const r = new LineReader(conn);
      try {
        for (let i = from; i < to;) {
          const tripEnd = Math.min(to, i + KEYS_PER_GET * GETS_PER_TRIP);
          let req = "";
          for (let k = i; k < tripEnd; k += KEYS_PER_GET) {
            req += "gets";
            for (let j = k; j < Math.min(tripEnd, k + KEYS_PER_GET); j++) req += ` ${keyOf(j)}`;
            req += "\r\n";
          }
          await writeAll(conn, new TextEncoder().encode(req));
          for (let k = i; k < tripEnd; k += KEYS_PER_GET) {
            for (let j = k; j < Math.min(tripEnd, k + KEYS_PER_GET); j++) {
              const head = await r.line();
              const f = head.split(" ");
              if (f[0] !== "VALUE" || f[1] !== keyOf(j)) {
                throw new Error(`item ${j}: expected VALUE ${keyOf(j)}, got ${head}`);
              }
              if (Number(f[2]) !== flagsOf(j)) throw new Error(`item ${j}: flags ${f[2]}`);
              const len = valueLength(j);
              if (Number(f[3]) !== len) throw new Error(`item ${j}: length ${f[3]}`);
              cas[j] = Number(f[4]);
              if (expectCas !== null && cas[j] !== expectCas[j]) {
                throw new Error(`item ${j}: cas ${cas[j]}, expected ${expectCas[j]}`);
              }
              const at = await r.bytes(len + 2);
              for (let b = 0; b < len; b++) {
                if (r.buf[at + b] !== valueByte(j, b)) {
                  throw new Error(`item ${j}: byte ${b} differs`);
                }
              }
            }
            const end = await r.line();
            if (end !== "END") throw new Error(`expected END, got ${end}`);
          }
          i = tripEnd;
        }
      } finally {
        conn.close();
      }
    }),
  );
  return cas;
}

/**
 * Checks with `mg <key> t` that `count` items spread over `0..n-1` expire at exactly
 * `exptimeOf(i)` (`t-1` for never), allowing only the second the server's clock may lag.
 */
export async function checkTtls(port: number, n: number, count: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const r = new LineReader(conn);
  try {
    const step = Math.max(1, Math.floor(n / count));
    const keys: number[] = [];
    for (let i = 0; i < n && keys.length < count; i += step) keys.push(i);
    const before = Math.floor(Date.now() / 1000);
    await writeAll(
      conn,
      new TextEncoder().encode(keys.map((i) => `mg ${keyOf(i)} t\r\n`).join("")),
    );
    const lines: string[] = [];
    for (let k = 0; k < keys.length; k++) lines.push(await r.line());
    const after = Math.floor(Date.now() / 1000);
    keys.forEach((i, k) => {
      const m = /^HD t(-?\d+)$/.exec(lines[k]);
      if (m === null) throw new Error(`item ${i}: mg t answered ${lines[k]}`);
      const t = Number(m[1]);
      const e = exptimeOf(i);
      if (e === 0 ? t !== -1 : e - t < before - 1 || e - t > after) {
        throw new Error(`item ${i}: t${t} does not match exptime ${e} (now ${before}..${after})`);
      }
    });
  } finally {
    conn.close();
  }
}

/** The `ms` a server line `... in <ms> ms` reports, or NaN. */
export function reportedMs(lines: string[], word: string): number {
  const line = lines.find((l) => l.includes(`snapshot`) && l.includes(word));
  const m = line === undefined ? null : / in (\d+) ms$/.exec(line);
  return m === null ? NaN : Number(m[1]);
}

/** `curr_items` from `stats`. */
export async function currItems(port: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const r = new LineReader(conn);
  try {
    await writeAll(conn, new TextEncoder().encode("stats\r\n"));
    for (;;) {
      const line = await r.line();
      if (line === "END") throw new Error("stats without curr_items");
      const m = /^STAT curr_items (\d+)$/.exec(line);
      if (m !== null) return Number(m[1]);
    }
  } finally {
    conn.close();
  }
}

/** A reader of `\r\n` lines and exact byte counts, over one growing buffer. */
class LineReader {
  buf = new Uint8Array(1 << 20);
  private pos = 0;
  private end = 0;
  private readonly dec = new TextDecoder("latin1");

  constructor(private readonly conn: Deno.Conn) {}

  /** The next line, without its `\r\n`. */
  async line(): Promise<string> {
    for (let from = this.pos;;) {
      const nl = this.buf.subarray(from, this.end).indexOf(10);
      if (nl >= 0) {
        const stop = from + nl;
        const text = this.dec.decode(this.buf.subarray(this.pos, stop - 1));
        this.pos = stop + 1;
        return text;
      }
      from = this.end - this.pos;
      await this.more();
      from += this.pos;
    }
  }

  /** Consumes exactly `n` bytes; returns their offset in `buf` (valid until the next call). */
  async bytes(n: number): Promise<number> {
    while (this.end - this.pos < n) await this.more();
    const at = this.pos;
    this.pos += n;
    return at;
  }

  private async more(): Promise<void> {
    if (this.pos > 0) {
      this.buf.copyWithin(0, this.pos, this.end);
      this.end -= this.pos;
      this.pos = 0;
    }
    if (this.end === this.buf.length) {
      const bigger = new Uint8Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    const n = await this.conn.read(this.buf.subarray(this.end));
    if (n === null) throw new Error("connection closed by the server");
    this.end += n;
  }
}

function slices(n: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  const per = Math.ceil(n / CONNECTIONS);
  for (let from = 0; from < n; from += per) out.push([from, Math.min(n, from + per)]);
  return out;
}

function ascii(buf: Uint8Array, p: number, s: string): number {
  for (let i = 0; i < s.length; i++) buf[p++] = s.charCodeAt(i);
  return p;
}

async function writeAll(conn: Deno.Conn, b: Uint8Array): Promise<void> {
  for (let off = 0; off < b.length;) off += await conn.write(b.subarray(off));
}

async function main(n: number): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "memg-snapshot-bench-" });
  const path = `${dir}/cache.snap`;
  const args = ["-m", "1024", "--snapshot", path];
  let server: ChildMemg | null = null;
  try {
    server = await spawnMemg(args);
    let t = performance.now();
    await fillItems(server.port, n);
    console.log(`filled ${n} items in ${ms(t)}`);
    const cas = await checkAll(server.port, n);
    t = performance.now();
    const stopped = await server.stop();
    const saveWall = ms(t);
    const saveLines = server.stdout;
    server = null;
    if (!stopped.success) throw new Error(`first server exited with ${stopped.code}`);
    const size = Deno.statSync(path).size;
    t = performance.now();
    server = await spawnMemg(args);
    const startWall = ms(t);
    for (const l of server.stdout) if (l.includes("snapshot")) console.log(`  | ${l}`);
    const items = await currItems(server.port);
    if (items !== n) throw new Error(`curr_items ${items} after restart, expected ${n}`);
    t = performance.now();
    await checkAll(server.port, n, cas);
    await checkTtls(server.port, n, 10_000);
    console.log(`every item back: values, flags, CAS (all ${n}), TTL (10000) in ${ms(t)}`);
    console.log(
      `save: ${reportedMs(saveLines, "saved")} ms reported by the server (SIGTERM to exit: ` +
        `${saveWall}), file ${(size / 1024 / 1024).toFixed(1)} MiB`,
    );
    console.log(
      `load: ${reportedMs(server.stdout, "restored")} ms reported by the server ` +
        `(spawn to listening: ${startWall})`,
    );
  } finally {
    await server?.close();
    Deno.removeSync(dir, { recursive: true });
  }
}

function ms(start: number): string {
  return `${Math.round(performance.now() - start)} ms`;
}

if (import.meta.main) {
  const n = Deno.args[0] === undefined ? 1_000_000 : Number(Deno.args[0]);
  if (!Number.isInteger(n) || n <= 0) {
    console.error("usage: deno run -A bench/snapshot.ts [items]");
    Deno.exit(64);
  }
  await main(n);
}
