/**
 * Micro-benchmark of the text codec with the slab store behind it and no sockets: scenario 2's
 * traffic (16-request batches, 1:10 set:get, 100-byte values, keys drawn at random) fed straight
 * into `TextProtocol.process`, replies built and thrown away. Prints nanoseconds per request, so
 * that a change to parsing, lookup or reply building can be measured without the noise of the
 * network and the load generator.
 *
 *     taskset -c 0 deno run --allow-all bench/codec_micro.ts [--keys=100000] [--gets-only | --sets-only] [-L] [--syscall]
 *
 * `-L` puts the store on transparent huge pages, as memg's `-L` does. `--syscall` makes one
 * system call (a failing `read`) before each batch, as a server reads each batch: on this VM
 * every kernel entry empties the TLB, so a batch then starts cold, as it does in memg (here
 * 440 against 300 ns per request, of which the call itself is about 70).
 *
 * @module
 */
import { parseArgs } from "@std/cli/parse-args";
import { Cache } from "../lib/cache.ts";
import { defaultConfig } from "../lib/config.ts";
import { libc } from "../lib/net/libc.ts";
import { MetaProtocol } from "../lib/protocol/meta.ts";
import type { Session } from "../lib/protocol/session.ts";
import { TextProtocol } from "../lib/protocol/text.ts";
import { BufferedReader } from "../lib/reader.ts";
import { ReplyBuffer } from "../lib/reply.ts";
import { SlabStore } from "../lib/store/slab.ts";
import { TickingClock } from "../lib/store/store.ts";

const BATCHES = 20_000;
const ROUNDS = 6;
const PASSES = 5;

const args = parseArgs(Deno.args, {
  string: ["keys"],
  boolean: ["gets-only", "sets-only", "L", "syscall"],
});
const keys = Number(args.keys ?? "100000");
const store = new SlabStore({
  limitBytes: 1024 * 1024 * 1024,
  itemSizeMax: 1024 * 1024,
  evict: true,
  clock: new TickingClock(),
  largePages: args.L,
});
const cache = new Cache(store, defaultConfig());
const session: Session = {
  reader: new BufferedReader({ read: () => Promise.resolve(null) }),
  out: new ReplyBuffer(),
  cache,
  shutdown() {},
  connectionRows: () => [],
};
const codec = new TextProtocol(session, new MetaProtocol());
const enc = new TextEncoder();
const value = "v".repeat(100);

const c = args.syscall ? libc() : null;
const none = new Uint8Array(1);
/** Hands `bytes` to the codec as one read (after a system call, with `--syscall`) and discards the replies. */
function feed(bytes: Uint8Array): void {
  if (c !== null) c.read(-1, none, 0);
  const r = session.reader;
  if (r.buf.length < bytes.length) throw new Error("batch larger than the reader's buffer");
  r.buf.set(bytes, 0);
  r.start = 0;
  r.end = bytes.length;
  codec.process();
  session.out.pos = 0;
}

for (let i = 0; i < keys; i += 100) {
  let batch = "";
  for (let j = i; j < Math.min(keys, i + 100); j++) batch += `set key:${j} 0 0 100\r\n${value}\r\n`;
  feed(enc.encode(batch));
}
while (Object.fromEntries(store.extraStats()).hash_is_expanding) store.sweep(100);

const batches: Uint8Array[] = [];
let x = 7;
for (let b = 0; b < BATCHES; b++) {
  let batch = "";
  for (let j = 0; j < 16; j++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const key = `key:${x % keys}`;
    const set = args["sets-only"] || (!args["gets-only"] && (x >>> 8) % 11 === 0);
    batch += set ? `set ${key} 0 0 100\r\n${value}\r\n` : `get ${key}\r\n`;
  }
  batches.push(enc.encode(batch));
}

const hitsBefore = cache.counters.get_hits;
for (let round = 0; round < ROUNDS; round++) {
  const t0 = performance.now();
  for (let pass = 0; pass < PASSES; pass++) for (const b of batches) feed(b);
  const ns = (performance.now() - t0) * 1e6 / (PASSES * BATCHES * 16);
  console.log(`round ${round + 1}: ${ns.toFixed(0)} ns/request`);
}
const misses = cache.counters.get_misses;
console.log(`${keys} keys; gets hit ${cache.counters.get_hits - hitsBefore}, missed ${misses}`);
if (misses > 0) throw new Error("every get should hit: the benchmark measured something else");
if (args.L) {
  const huge = Deno.readTextFileSync("/proc/self/smaps_rollup").match(/AnonHugePages:\s+(\d+)/);
  console.log(`-L: ${huge ? Number(huge[1]) >> 10 : 0} MiB on huge pages`);
}
