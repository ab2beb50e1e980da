/**
 * Summarises a V8 `.cpuprofile` (as written by `deno run --cpu-prof`): the functions with the
 * most self time, merged across every call path they appear on. Each sample lasts until the
 * next one (the last until the profile's end), as Chrome DevTools counts it.
 *
 * Usage: `deno run --allow-read bench/profile.ts <file.cpuprofile> [count]`.
 *
 * @module
 */

/** A V8 CPU profile (the parts this summary reads). */
export interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  }>;
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One function's share of the profile. */
export interface FrameTime {
  name: string;
  /** `file:line:column` (1-based) relative to the repository, or "" for VM frames. */
  location: string;
  selfMs: number;
  /** Percentage of the busy (non-idle) time. */
  pct: number;
}

/** A profile's busy/idle split and its heaviest frames. */
export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  top: FrameTime[];
}

const ROOT = new URL("../", import.meta.url).href;

function shortUrl(url: string): string {
  if (url.startsWith(ROOT)) return url.slice(ROOT.length);
  return url.replace(/^file:\/\//, "");
}

/** The `count` frames with the most self time, idle time excluded from the percentages. */
export function summarize(profile: CpuProfile, count: number): ProfileSummary {
  const keyOf = new Map<number, string>();
  const frames = new Map<string, { name: string; location: string; us: number }>();
  for (const node of profile.nodes) {
    const f = node.callFrame;
    const name = f.functionName || "(anonymous)";
    const location = f.url === ""
      ? ""
      : `${shortUrl(f.url)}:${f.lineNumber + 1}:${f.columnNumber + 1}`;
    const key = `${name}\u0000${location}`;
    keyOf.set(node.id, key);
    if (!frames.has(key)) frames.set(key, { name, location, us: 0 });
  }
  const { samples, timeDeltas } = profile;
  let t = profile.startTime;
  const stamps = new Array<number>(samples.length);
  for (let i = 0; i < samples.length; i++) {
    t += timeDeltas[i] ?? 0;
    stamps[i] = t;
  }
  for (let i = 0; i < samples.length; i++) {
    const next = i + 1 < samples.length ? stamps[i + 1] : profile.endTime;
    const key = keyOf.get(samples[i]);
    const frame = key === undefined ? undefined : frames.get(key);
    if (frame !== undefined) frame.us += Math.max(0, next - stamps[i]);
  }
  let totalUs = 0;
  let idleUs = 0;
  for (const f of frames.values()) {
    totalUs += f.us;
    if (f.name === "(idle)") idleUs += f.us;
  }
  const busy = Math.max(1, totalUs - idleUs);
  const top = [...frames.values()]
    .filter((f) => f.name !== "(idle)" && f.us > 0)
    .sort((a, b) => b.us - a.us)
    .slice(0, count)
    .map((f) => ({
      name: f.name,
      location: f.location,
      selfMs: f.us / 1000,
      pct: (100 * f.us) / busy,
    }));
  return { totalMs: totalUs / 1000, idleMs: idleUs / 1000, top };
}

/** The summary as a small text table. */
export function formatSummary(s: ProfileSummary): string {
  const busy = s.totalMs - s.idleMs;
  const lines = [
    `  profiled ${s.totalMs.toFixed(0)} ms: busy ${busy.toFixed(0)} ms, idle ${
      s.idleMs.toFixed(0)
    } ms`,
    `  ${"self ms".padStart(9)} ${"busy %".padStart(7)}  function (location)`,
  ];
  for (const f of s.top) {
    const where = f.location === "" ? "" : `  (${f.location})`;
    lines.push(
      `  ${f.selfMs.toFixed(1).padStart(9)} ${f.pct.toFixed(1).padStart(7)}  ${f.name}${where}`,
    );
  }
  return lines.join("\n");
}

/** Reads and summarises a `.cpuprofile` file. */
export async function summarizeFile(path: string, count = 15): Promise<ProfileSummary> {
  return summarize(JSON.parse(await Deno.readTextFile(path)) as CpuProfile, count);
}

if (import.meta.main) {
  const [path, n] = Deno.args;
  if (path === undefined) {
    console.error("usage: deno run --allow-read bench/profile.ts <file.cpuprofile> [count]");
    Deno.exit(64);
  }
  console.log(formatSummary(await summarizeFile(path, n === undefined ? 15 : Number(n))));
}
