/**
 * The live metrics page in headless Chromium (Debian's `chromium`), driven over the DevTools
 * protocol: it loads from memg's metrics port, draws its six charts, and its samples and
 * values move while the test drives sets and gets. Set MEMG_PAGE_SCREENSHOT=/path.png to keep
 * a screenshot of the page under load.
 */
import { assert, assertEquals, assertGreater } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { spawnMemg } from "./helpers/server.ts";

const CHROMIUM = "/usr/bin/chromium";
const CHART_IDS = ["hitRatio", "ops", "memory", "items", "evictions", "connections"];

function haveChromium(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

if (!haveChromium()) {
  console.warn(`metrics_page_test: ${CHROMIUM} is missing (Debian package chromium); skipped`);
}

/** A DevTools-protocol connection to the browser, talking to one page through a session. */
class DevTools {
  readonly #ws: WebSocket;
  #nextId = 1;
  readonly #waiting = new Map<number, (msg: CdpReply) => void>();
  sessionId: string | undefined;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data) as CdpReply;
      if (msg.id !== undefined) this.#waiting.get(msg.id)?.(msg);
    };
  }

  static async connect(url: string): Promise<DevTools> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
    return new DevTools(ws);
  }

  /** Sends a command (to the page session once attached) and resolves with its result. */
  async send(method: string, params: Record<string, unknown> = {}, browser = false) {
    const id = this.#nextId++;
    const reply = new Promise<CdpReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`${method}: no answer`));
      }, 10_000);
      this.#waiting.set(id, (msg) => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        resolve(msg);
      });
    });
    const sessionId = browser ? undefined : this.sessionId;
    this.#ws.send(JSON.stringify({ id, method, params, sessionId }));
    const msg = await reply;
    if (msg.error) throw new Error(`${method}: ${msg.error.message}`);
    return msg.result ?? {};
  }

  /** Evaluates `expression` in the page and returns its value (JSON-serialisable). */
  async evaluate<T>(expression: string): Promise<T> {
    const r = await this.send("Runtime.evaluate", { expression, returnByValue: true });
    const result = r as {
      result: { value: T };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    };
    const error = result.exceptionDetails;
    if (error) throw new Error(error.exception?.description ?? error.text);
    return result.result.value;
  }

  async close(): Promise<void> {
    if (this.#ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise((resolve) => this.#ws.onclose = resolve);
    this.#ws.close();
    await closed;
  }
}

interface CdpReply {
  id?: number;
  result?: Record<string, unknown>;
  error?: { message: string };
}

/** What the page reports through `window.memgCharts`, plus its canvases' inked pixels. */
interface PageState {
  samples: number;
  errors: number;
  drawn: number;
  last: Record<string, number | null>;
  inked: Record<string, number>;
}

const READ_STATE = `(() => {
  const s = window.memgCharts;
  if (s === undefined) return { samples: 0, errors: 0, drawn: 0, last: {}, inked: {} };
  const last = {};
  for (const [id, values] of Object.entries(s.series)) last[id] = values.length ? values[values.length - 1] : null;
  const inked = {};
  for (const canvas of document.querySelectorAll("canvas")) {
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) n++;
    inked[canvas.id.slice("chart-".length)] = n;
  }
  return { samples: s.samples, errors: s.errors, drawn: s.drawn, last, inked };
})()`;

/** Launches headless Chromium on `url`; resolves once its DevTools endpoint is known. */
async function launch(url: string, profile: string) {
  const process = new Deno.Command(CHROMIUM, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-dev-shm-usage",
      `--user-data-dir=${profile}`,
      "--remote-debugging-address=127.0.0.1",
      "--remote-debugging-port=0",
      "--window-size=1280,800",
      url,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = process.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  let endpoint: string | null = null;
  const timer = setTimeout(() => lines.cancel("timeout"), 20_000);
  while (endpoint === null) {
    const { value, done } = await lines.read().catch(() => ({ value: "", done: true }));
    if (done) break;
    seen += value;
    endpoint = /DevTools listening on (ws:\/\/\S+)/.exec(seen)?.[1] ?? null;
  }
  clearTimeout(timer);
  const drain = (async () => {
    try {
      while (!(await lines.read()).done) { /* Chromium's chatter */ }
    } catch {
      // cancelled
    }
  })();
  const stop = async () => {
    try {
      process.kill("SIGTERM");
    } catch {
      // exited already
    }
    const killer = setTimeout(() => {
      try {
        process.kill("SIGKILL");
      } catch {
        // exited already
      }
    }, 5000);
    await process.status;
    clearTimeout(killer);
    await drain;
  };
  if (endpoint === null) {
    await stop();
    throw new Error(`chromium gave no DevTools endpoint: ${seen}`);
  }
  return { endpoint, stop };
}

/** Polls the page until `ok` holds (or fails after `timeoutMs`). */
async function waitFor(
  dt: DevTools,
  ok: (s: PageState) => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<PageState> {
  const deadline = Date.now() + timeoutMs;
  let s = await dt.evaluate<PageState>(READ_STATE);
  while (!ok(s)) {
    if (Date.now() > deadline) throw new Error(`${what}; page state ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 100));
    s = await dt.evaluate<PageState>(READ_STATE);
  }
  return s;
}

Deno.test({
  name: "metrics page in headless Chromium: loads, draws, and moves under load",
  ignore: !haveChromium(),
  fn: async (t) => {
    const memg = await spawnMemg(["--metrics-port", "0"]);
    const profile = await Deno.makeTempDir({ prefix: "memg-chromium-" });
    const line = memg.stdout.find((l) => l.startsWith("memg metrics on "))!;
    const url = line.slice("memg metrics on ".length);
    let browser: { stop(): Promise<void> } | null = null;
    let dt: DevTools | null = null;
    const load = await RawClient.connect(memg.port);
    try {
      const launched = await launch(url, profile);
      browser = launched;
      dt = await DevTools.connect(launched.endpoint);
      const { targetInfos } = await dt.send("Target.getTargets", {}, true) as {
        targetInfos: Array<{ targetId: string; type: string; url: string }>;
      };
      const page = targetInfos.find((i) => i.type === "page" && i.url === url);
      assert(page !== undefined, `no page for ${url} in ${JSON.stringify(targetInfos)}`);
      const { sessionId } = await dt.send("Target.attachToTarget", {
        targetId: page.targetId,
        flatten: true,
      }, true) as { sessionId: string };
      dt.sessionId = sessionId;
      const devtools = dt;

      let first: PageState;
      await t.step("loads and draws all six charts from /stats.json", async () => {
        first = await waitFor(devtools, (s) => s.samples >= 2, "no samples");
        assertEquals(first.errors, 0);
        assertGreater(first.drawn, 0);
        for (const id of CHART_IDS) assertGreater(first.inked[id] ?? 0, 500, `chart ${id} inked`);
        assertEquals(first.last.items, 0);
        assertEquals(first.last.memory, 0);
        assertEquals(first.last.limit, 64 * 1024 * 1024);
      });

      await t.step("samples and values move while sets and gets run", async () => {
        // Bounded load: a batch of 200 sets and 200 two-key gets (one hit, one miss) every
        // 50 ms, until the page has taken three more samples with items in view (15 s at most).
        const deadline = Date.now() + 15_000;
        let state = first;
        for (let batch = 0; Date.now() < deadline; batch++) {
          let req = "";
          for (let i = 0; i < 200; i++) {
            const k = `k${batch * 200 + i}`;
            req += `set ${k} 0 0 1 noreply\r\nx\r\nget ${k} miss${i}\r\n`;
          }
          await load.send(req);
          let ends = 0;
          while (ends < 200) ends += (await load.readUntil("END\r\n")).split("END\r\n").length - 1;
          state = await devtools.evaluate<PageState>(READ_STATE);
          if (state.samples >= first.samples + 3 && (state.last.items ?? 0) > 0) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        assertGreater(state.samples, first.samples + 2);
        assertGreater(state.last.items ?? 0, 0);
        assertGreater(state.last.memory ?? 0, 0);
        assertGreater(state.last.ops ?? 0, 0);
        assertEquals(state.last.connections, 1);
        const ratio = state.last.hitRatio ?? -1;
        assert(ratio > 10 && ratio < 90, `hit ratio ${ratio} (one hit, one miss per key)`);
        assertEquals(state.errors, 0);
        assertGreater(state.drawn, first.drawn);
        const shot = Deno.env.get("MEMG_PAGE_SCREENSHOT");
        if (shot !== undefined) {
          const { data } = await devtools.send("Page.captureScreenshot", { format: "png" }) as {
            data: string;
          };
          await Deno.writeFile(shot, Uint8Array.from(atob(data), (ch) => ch.charCodeAt(0)));
        }
      });
    } finally {
      load.close();
      await dt?.close();
      await browser?.stop();
      assertEquals((await memg.stop()).code, 0);
      await Deno.remove(profile, { recursive: true });
    }
  },
});
