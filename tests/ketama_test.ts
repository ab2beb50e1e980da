/**
 * Scale-out with client-side ketama: pylibmc (Debian's python3-pylibmc, libmemcached) shards
 * 30,000 keys over three memg child processes, every key reads back, each memg holds its share,
 * and after one memg is killed only its keys fail while the other two keep serving.
 *
 * libmemcached places a server on the ketama ring by the text of its address, so random ports
 * would give different shares on every run. The memg listen on UNIX sockets in a fresh
 * directory that is the client's working directory, and the client names them
 * `/proc/self/cwd/<name>.sock`: the same names every run, so the same shares.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { type ChildMemg, spawnMemg } from "./helpers/server.ts";

/** Debian's interpreter: the one python3-pylibmc is installed for. */
const PYTHON = "/usr/bin/python3";
const CLIENT = new URL("./ketama_client.py", import.meta.url).pathname;
const KEYS = 30_000;
const NAMES = ["a", "b", "c"];
const TOLERANCE = 0.15;

function havePylibmc(): boolean {
  try {
    const out = new Deno.Command(PYTHON, { args: ["-c", "import pylibmc"], stderr: "null" })
      .outputSync();
    return out.success;
  } catch {
    return false;
  }
}

interface Loaded {
  read_back: number;
  items: number[];
  owners: string;
}

interface Checked {
  outcomes: string;
  errors: Record<string, number>;
}

/** Reads newline-terminated lines from a child's stdout. */
class Lines {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #pending = "";

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }

  async next(): Promise<string | null> {
    for (;;) {
      const nl = this.#pending.indexOf("\n");
      if (nl >= 0) {
        const line = this.#pending.slice(0, nl);
        this.#pending = this.#pending.slice(nl + 1);
        return line;
      }
      const { value, done } = await this.#reader.read();
      if (done) return null;
      this.#pending += value;
    }
  }

  async rest(): Promise<void> {
    while (!(await this.#reader.read()).done) { /* drain */ }
  }
}

const HAVE_PYLIBMC = havePylibmc();
if (!HAVE_PYLIBMC) {
  console.warn(
    `ketama_test: ${PYTHON} cannot import pylibmc (Debian package python3-pylibmc); skipped`,
  );
}

Deno.test({
  name: "ketama in pylibmc: 30,000 keys over three memg, and one memg killed",
  ignore: !HAVE_PYLIBMC,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "memg-ketama-" });
    const memgs: ChildMemg[] = [];
    let python: { process: Deno.ChildProcess; lines: Lines; stderr: Promise<string> } | null = null;
    try {
      for (const name of NAMES) memgs.push(await spawnMemg(["-s", `${dir}/${name}.sock`]));
      const process = new Deno.Command(PYTHON, {
        args: [CLIENT, String(KEYS), ...NAMES.map((n) => `/proc/self/cwd/${n}.sock`)],
        cwd: dir,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stdin = process.stdin.getWriter();
      const stderr = new Response(process.stderr).text();
      const lines = new Lines(process.stdout);
      python = { process, lines, stderr };
      const expectLine = async (): Promise<string> => {
        const line = await lines.next();
        if (line === null) throw new Error(`ketama client ended: ${await stderr}`);
        return line;
      };
      const loaded: Loaded = JSON.parse(await expectLine());

      await t.step("every key written through the ketama client reads back", () => {
        assertEquals(loaded.read_back, KEYS);
      });

      await t.step("each memg holds its share within ±15 %, and each key is on one", () => {
        assertEquals(loaded.items.reduce((a, b) => a + b), KEYS, `curr_items ${loaded.items}`);
        for (const n of loaded.items) {
          const share = n / (KEYS / NAMES.length);
          assert(Math.abs(share - 1) <= TOLERANCE, `curr_items ${loaded.items}`);
        }
        assertEquals(loaded.owners.length, KEYS);
        for (let s = 0; s < NAMES.length; s++) {
          const held = loaded.owners.split("").filter((o) => o === String(s)).length;
          assertEquals(held, loaded.items[s], `keys found on ${NAMES[s]}`);
        }
      });

      await t.step("killing one memg fails only its keys; no key is remapped", async () => {
        const killed = 1;
        await memgs[killed].close();
        await stdin.write(new TextEncoder().encode("check\n"));
        await stdin.close();
        const checked: Checked = JSON.parse(await expectLine());
        assertEquals(checked.outcomes.length, KEYS);
        let failed = 0;
        for (let i = 0; i < KEYS; i++) {
          const o = checked.outcomes[i];
          if (loaded.owners[i] === String(killed)) {
            assert(o === "m" || o === "e", `key:${i} of the killed memg answered ${o}`);
            if (o === "e") failed++;
          } else {
            assertEquals(o, "h", `key:${i} of a live memg`);
          }
        }
        // Without remapping every key of the dead server fails with an error instead of
        // silently missing on another server.
        assertEquals(failed, loaded.items[killed], JSON.stringify(checked.errors));
      });
      assertEquals((await process.status).code, 0, await stderr);
    } finally {
      if (python !== null) {
        try {
          python.process.kill("SIGKILL");
        } catch {
          // exited already
        }
        await python.process.status;
        await python.lines.rest();
        await python.stderr;
      }
      for (const m of memgs) await m.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
