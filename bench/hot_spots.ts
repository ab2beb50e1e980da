/**
 * Instruction-level hot spots of V8-optimised functions, from a Linux `perf record` of a Deno
 * process run with `--v8-flags=--perf-prof,--perf-basic-prof`. V8's own profiler stops at
 * functions; this shows which instruction in an optimised function the samples land on (a load
 * that misses the caches collects the samples of its wait on itself or the next instruction).
 *
 * The machine code comes from V8's jitdump file (`jit-<pid>.dump`, written into the working
 * directory), the function addresses from `/tmp/perf-<pid>.map`, the samples from
 * `perf script`, the disassembly from `objdump`. The jitdump records are found by scanning for
 * code-load headers rather than by walking the record chain, whose sizes V8 sometimes gets wrong
 * (`perf inject --jit` stops at the first such record).
 *
 * Usage: `deno run -A bench/hot_spots.ts <perf.data> <jit-PID.dump> <perf-PID.map> <name part>
 * [instructions]` — see bench/README.md for the recording commands.
 *
 * @module
 */

/** A function's code range as `/tmp/perf-<pid>.map` lists it (later lines are newer code). */
interface Range {
  start: bigint;
  end: bigint;
  name: string;
}

function ranges(map: string): Range[] {
  const out: Range[] = [];
  for (const line of map.split("\n")) {
    const [addr, size, ...rest] = line.split(" ");
    if (rest.length === 0) continue;
    const start = BigInt(`0x${addr}`);
    out.push({ start, end: start + BigInt(`0x${size}`), name: rest.join(" ") });
  }
  return out;
}

/**
 * The newest code at each of `starts`: V8 reuses code space, so one address may have held
 * several functions; a steady-state profile belongs to the last.
 */
function codeAt(dump: Uint8Array, starts: Set<bigint>): Map<bigint, Uint8Array> {
  const v = new DataView(dump.buffer, dump.byteOffset, dump.byteLength);
  const pid = v.getUint32(20, true);
  const found = new Map<bigint, Uint8Array>();
  // A code-load record: id 0, size, timestamp, then pid, tid, vma, code address, size, index,
  // the NUL-terminated name and the code; records are not aligned.
  for (let at = 40; at + 56 <= dump.length; at++) {
    if (v.getUint32(at + 16, true) !== pid || v.getUint32(at, true) !== 0) continue;
    const addr = v.getBigUint64(at + 32, true);
    if (!starts.has(addr)) continue;
    const size = Number(v.getBigUint64(at + 40, true));
    const nul = dump.indexOf(0, at + 56);
    if (nul < 0 || nul + 1 + size > dump.length) continue;
    found.set(addr, dump.slice(nul + 1, nul + 1 + size));
  }
  return found;
}

async function output(cmd: string, args: string[]): Promise<string> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
  if (!r.success) throw new Error(`${cmd} ${args.join(" ")} failed`);
  return new TextDecoder().decode(r.stdout);
}

/** `objdump`'s lines of `bytes`, with their offsets. */
async function disassemble(bytes: Uint8Array): Promise<Array<[number, string]>> {
  const file = await Deno.makeTempFile({ suffix: ".bin" });
  try {
    await Deno.writeFile(file, bytes);
    const text = await output("objdump", ["-D", "-b", "binary", "-m", "i386:x86-64", file]);
    const lines: Array<[number, string]> = [];
    for (const line of text.split("\n")) {
      const m = /^\s+([0-9a-f]+):\t(.*)$/.exec(line);
      if (m !== null) lines.push([parseInt(m[1], 16), m[2].replace(/^(?:[0-9a-f]{2} )+\s*/, "")]);
    }
    return lines;
  } finally {
    await Deno.remove(file);
  }
}

if (import.meta.main) {
  const [data, dumpPath, mapPath, part, countArg] = Deno.args;
  if (part === undefined) {
    console.error(
      "usage: hot_spots.ts <perf.data> <jit-PID.dump> <perf-PID.map> <name part> [count]",
    );
    Deno.exit(64);
  }
  const count = Number(countArg ?? "6");
  const ips = (await output("perf", ["script", "-i", data, "-F", "ip", "--hide-call-graph"]))
    .split("\n").filter((l) => l.trim() !== "").map((l) => BigInt(`0x${l.trim()}`));
  const all = ranges(await Deno.readTextFile(mapPath));
  // Each sample belongs to the newest range holding it.
  const hitsOf = new Map<Range, Map<number, number>>();
  for (const ip of ips) {
    let owner: Range | undefined;
    for (let i = all.length - 1; i >= 0 && owner === undefined; i--) {
      if (ip >= all[i].start && ip < all[i].end) owner = all[i];
    }
    if (owner === undefined || !owner.name.startsWith("JS:*") || !owner.name.includes(part)) {
      continue;
    }
    const hits = hitsOf.get(owner) ?? new Map<number, number>();
    const off = Number(ip - owner.start);
    hits.set(off, (hits.get(off) ?? 0) + 1);
    hitsOf.set(owner, hits);
  }
  const codes = codeAt(
    await Deno.readFile(dumpPath),
    new Set([...hitsOf.keys()].map((r) => r.start)),
  );
  const profiles = [...hitsOf.entries()].map(([range, hits]) => ({
    code: { name: range.name, bytes: codes.get(range.start) },
    hits,
    total: [...hits.values()].reduce((a, b) => a + b, 0),
  })).sort((a, b) => b.total - a.total);
  if (profiles.length === 0) console.error(`no samples in optimised code matching "${part}"`);
  for (const { code, hits, total } of profiles) {
    const pct = (n: number) => (100 * n / ips.length).toFixed(1).padStart(5);
    console.log(`${code.name}: ${total} of ${ips.length} samples (${pct(total)} %)`);
    if (code.bytes === undefined) {
      console.log("  (its code is not in the jitdump)");
      continue;
    }
    const lines = await disassemble(code.bytes);
    const top = [...hits.entries()].sort((a, b) => b[1] - a[1]).slice(0, count);
    for (const [off, n] of top) {
      const i = lines.findLastIndex(([o]) => o <= off);
      console.log(`  +0x${off.toString(16)}: ${n} samples (${pct(n)} % of all)`);
      for (let j = Math.max(0, i - 4); j <= i; j++) {
        const [o, text] = lines[j];
        console.log(`    ${String(hits.get(o) ?? 0).padStart(5)}  ${o.toString(16)}  ${text}`);
      }
    }
  }
}
