/**
 * Interoperability with pylibmc (libmemcached) in binary mode, with and without SASL, driven
 * from Deno through Debian's python3 against memg over real sockets; the same script's results
 * against Debian's memcached must be the same.
 */
import { assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { haveMemcached, spawnMemcached, startMemg, type TestServer } from "./helpers/server.ts";

const PYTHON = "/usr/bin/python3";

function havePylibmc(): boolean {
  try {
    return new Deno.Command(PYTHON, { args: ["-c", "import pylibmc"], stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** Each step's result (or "error: <type>") as JSON; argv: port [user password]. */
const SCRIPT = `
import json, sys, pylibmc
port = sys.argv[1]
kw = {"binary": True, "behaviors": {"cas": True}}
if len(sys.argv) > 2:
    kw.update(username=sys.argv[2], password=sys.argv[3])
c = pylibmc.Client(["127.0.0.1:" + port], **kw)
out = []
def step(name, f):
    try:
        out.append([name, f()])
    except Exception as e:
        out.append([name, "error: " + type(e).__name__])
if len(sys.argv) > 2:
    step("set", lambda: c.set("k", "v"))
    step("get", lambda: c.get("k"))
else:
    step("set", lambda: c.set("k", "hello"))
    step("get", lambda: c.get("k"))
    step("get missing", lambda: c.get("missing"))
    step("add existing", lambda: c.add("k", "x"))
    step("add new", lambda: c.add("k2", "x"))
    step("replace missing", lambda: c.replace("nope", "x"))
    step("replace", lambda: c.replace("k2", "y"))
    step("append", lambda: c.append("k", ">"))
    step("prepend", lambda: c.prepend("k", "<"))
    step("get joined", lambda: c.get("k"))
    step("set int", lambda: c.set("n", 10))
    step("incr", lambda: c.incr("n", 5))
    step("decr", lambda: c.decr("n", 100))
    step("incr missing", lambda: c.incr("nope", 1))
    step("set_multi", lambda: sorted(c.set_multi({"a": "1", "b": "2", "c": "3"})))
    step("get_multi", lambda: sorted(c.get_multi(["a", "b", "c", "missing"]).items()))
    step("delete_multi", lambda: c.delete_multi(["a", "b"]))
    step("get_multi after delete", lambda: sorted(c.get_multi(["a", "b", "c"]).items()))
    step("gets", lambda: c.gets("k")[0])
    step("cas", lambda: c.cas("k", "swapped", c.gets("k")[1]))
    step("cas stale", lambda: c.cas("k", "again", 1))
    step("get swapped", lambda: c.get("k"))
    step("touch", lambda: c.touch("k", 100))
    step("touch missing", lambda: c.touch("nope", 100))
    step("delete", lambda: c.delete("k"))
    step("delete missing", lambda: c.delete("k"))
    step("stats", lambda: "cmd_get" in c.get_stats()[0][1])
    step("large value", lambda: c.set("big", "x" * 500000) and len(c.get("big")))
    step("flush_all", lambda: c.flush_all())
    step("get after flush", lambda: c.get("c"))
    q = pylibmc.Client(["127.0.0.1:" + port], binary=True, behaviors={"_noreply": True})
    step("noreply sets", lambda: [q.set("q%d" % i, str(i)) for i in range(3)])
    step("noreply read back", lambda: sorted(q.get_multi(["q0", "q1", "q2"]).items()))
print(json.dumps(out))
`;

async function python(memg: TestServer, ...args: string[]): Promise<Record<string, unknown>> {
  const out = await new Deno.Command(PYTHON, {
    args: ["-c", SCRIPT, String(memg.port), ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assertEquals(out.code, 0, stderr);
  return Object.fromEntries(JSON.parse(new TextDecoder().decode(out.stdout)));
}

Deno.test({
  name: "pylibmc in binary mode against memg",
  ignore: !havePylibmc(),
  fn: async () => {
    const memg = startMemg();
    try {
      const ours = await python(memg);
      if (haveMemcached()) {
        const memcached = await spawnMemcached();
        try {
          assertEquals(ours, await python(memcached), "pylibmc sees memg as it sees memcached");
        } finally {
          await memcached.close();
        }
      }
      assertEquals(ours, {
        "set": true,
        "get": "hello",
        "get missing": null,
        "add existing": false,
        "add new": true,
        "replace missing": "error: NotFound", // memcached answers ENOENT
        "replace": true,
        "append": true,
        "prepend": true,
        "get joined": "<hello>",
        "set int": true,
        "incr": 15,
        "decr": 0,
        "incr missing": "error: NotFound",
        "set_multi": [],
        "get_multi": [["a", "1"], ["b", "2"], ["c", "3"]],
        "delete_multi": true,
        "get_multi after delete": [["c", "3"]],
        "gets": "<hello>",
        "cas": true,
        "cas stale": false,
        "get swapped": "swapped",
        "touch": true,
        "touch missing": false,
        "delete": true,
        "delete missing": false,
        "stats": true,
        "large value": 500000,
        "flush_all": true,
        "get after flush": null,
        "noreply sets": [true, true, true],
        "noreply read back": [["q0", "0"], ["q1", "1"], ["q2", "2"]],
      });
    } finally {
      await memg.close();
    }
  },
});

Deno.test({
  name: "pylibmc with SASL PLAIN against memg -S",
  ignore: !havePylibmc(),
  fn: async () => {
    const pwdb = Deno.makeTempFileSync({ prefix: "memg-pylibmc-" });
    Deno.writeTextFileSync(pwdb, "alice:wonder\n");
    const memg = startMemg(["-S", "--sasl-pwdb", pwdb]);
    try {
      assertEquals(await python(memg, "alice", "wonder"), { set: true, get: "v" });
      const refused = await python(memg, "alice", "nope");
      assertStringIncludes(String(refused.set), "error: ");
      assertEquals(memg.server.cache.counters.auth_errors > 0, true);
    } finally {
      await memg.close();
      Deno.removeSync(pwdb);
    }
  },
});
