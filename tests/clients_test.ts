/**
 * Real memcached clients against an in-process memg: pylibmc (libmemcached, Debian's
 * python3-pylibmc) doing what the seed's test.py does and more, pymemcache, and memcache-client
 * from npm running under Deno. (node-memcached, `npm:memcached`, cannot run under Deno: it
 * assigns `Object.prototype.__proto__`, which Deno disables.) The Python scripts assert inside and print what they checked;
 * a failed assertion exits non-zero with its traceback on stderr.
 *
 * @module
 */
import { assert, assertEquals, assertRejects } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { startMemg } from "./helpers/server.ts";
import { MemcacheClient, type MultiRetrievalResponse } from "npm:memcache-client@1.0.5";

/** Debian's interpreter, which has python3-pylibmc and python3-pymemcache. */
const PYTHON = "/usr/bin/python3";

function havePython(module: string): boolean {
  try {
    const r = new Deno.Command(PYTHON, { args: ["-c", `import ${module}`], stderr: "null" })
      .outputSync();
    return r.success;
  } catch {
    return false;
  }
}

/** Runs `script` with the memg port as argv[1]; returns stdout lines, failing on a non-zero exit. */
async function python(script: string, port: number): Promise<string[]> {
  const r = await new Deno.Command(PYTHON, {
    args: ["-c", script, String(port)],
    stdin: "null",
  }).output();
  const out = new TextDecoder().decode(r.stdout);
  const err = new TextDecoder().decode(r.stderr);
  assertEquals(r.code, 0, `python failed:\n${out}\n${err}`);
  return out.trim().split("\n");
}

const PYLIBMC = `
import sys, pylibmc
port = int(sys.argv[1])
mc = pylibmc.Client(["127.0.0.1:%d" % port], binary=False, behaviors={"cas": True})

# the seed's test.py: set greeting, get it back
assert mc.set("greeting", "Hello World")
assert mc.get("greeting") == "Hello World"
print("greeting")

# a miss: get returns None, [] raises KeyError
assert mc.get("no-such-key") is None
try:
    mc["no-such-key"]
    raise AssertionError("no KeyError")
except KeyError:
    pass
print("miss")

# a value with CR LF inside
crlf = "line one\\r\\nline two\\r\\nEND\\r\\n"
assert mc.set("crlf", crlf)
assert mc.get("crlf") == crlf
print("crlf")

# 10,000 integer sets then gets (pylibmc marks ints in flags, 4 on Python 3, and gives ints back)
for i in range(10000):
    assert mc.set("int%d" % i, i)
for i in range(10000):
    v = mc.get("int%d" % i)
    assert v == i and type(v) is int, (i, v)
print("ints")

# multi, add/replace/append/prepend, incr/decr, cas, touch, delete
assert mc.set_multi({"m1": "a", "m2": "b"}) == []
assert mc.get_multi(["m1", "m2", "nope"]) == {"m1": "a", "m2": "b"}
assert not mc.add("m1", "x")
assert mc.add("m3", "c")
assert not mc.replace("nope", "x")
assert mc.replace("m3", "C")
assert mc.append("m3", ">") and mc.prepend("m3", "<")
assert mc.get("m3") == "<C>"
assert mc.incr("int9", 1) == 10 and mc.decr("int9", 20) == 0
assert mc.get("int9") == 0
value, unique = mc.gets("m1")
assert value == "a"
assert mc.cas("m1", "A", unique)
assert not mc.cas("m1", "B", unique)
assert mc.get("m1") == "A"
assert mc.touch("m1", 100)
assert mc.delete("m1")
assert not mc.delete("m1")
big = "x" * 500000
assert mc.set("big", big) and mc.get("big") == big
print("commands")
`;

Deno.test({
  name: "pylibmc: the seed's test.py and the everyday commands",
  ignore: !havePython("pylibmc"),
  async fn() {
    const memg = startMemg();
    try {
      const lines = await python(PYLIBMC, memg.port);
      assertEquals(lines, ["greeting", "miss", "crlf", "ints", "commands"]);
      // what pylibmc put on the wire: ints as decimal text with its flag for ints (4)
      const c = await RawClient.connect(memg.port);
      try {
        assertEquals(await c.call("get int42\r\n", "END\r\n"), "VALUE int42 4 2\r\n42\r\nEND\r\n");
        assertEquals(
          await c.call("get greeting\r\n", "END\r\n"),
          "VALUE greeting 16 11\r\nHello World\r\nEND\r\n", // 16: pylibmc's text flag
        );
      } finally {
        c.close();
      }
    } finally {
      await memg.close();
    }
  },
});

const PYMEMCACHE = `
import sys
from pymemcache.client.base import Client
port = int(sys.argv[1])
c = Client(("127.0.0.1", port), default_noreply=False, connect_timeout=5, timeout=5)

assert c.set("k", b"v")
assert c.get("k") == b"v"
assert c.get("nope") is None
assert c.get("nope", default=b"d") == b"d"
print("get")

crlf = b"a\\r\\nEND\\r\\nb"
assert c.set("crlf", crlf) and c.get("crlf") == crlf
allbytes = bytes(range(256))
assert c.set("bin", allbytes) and c.get("bin") == allbytes
print("binary-safe")

assert c.set_many({"m%d" % i: b"%d" % i for i in range(300)}) == []
got = c.get_many(["m%d" % i for i in range(300)] + ["nope"])
assert len(got) == 300 and got["m299"] == b"299"
print("many")

assert c.add("k", b"x") is False and c.add("k2", b"x") is True
assert c.replace("nope", b"x") is False and c.replace("k2", b"y") is True
assert c.append("k2", b">") and c.prepend("k2", b"<") and c.get("k2") == b"<y>"
assert c.incr("m5", 10) == 15 and c.decr("m5", 100) == 0 and c.incr("nope", 1) is None
value, unique = c.gets("k")
assert value == b"v"
assert c.cas("k", b"w", unique) is True
assert c.cas("k", b"z", unique) is False
assert c.cas("nope", b"z", unique) is None
assert c.touch("k", 100) is True and c.touch("nope", 100) is False
assert c.delete("k") is True and c.delete("k") is False
print("commands")

assert c.version().startswith(b"1.6.18")
stats = c.stats()
assert stats[b"curr_connections"] >= 1 and stats[b"cmd_get"] > 0
assert c.flush_all() is True and c.get("k2") is None
c.quit()
print("admin")
`;

Deno.test({
  name: "pymemcache: every command, binary-safe values, stats and flush",
  ignore: !havePython("pymemcache"),
  async fn() {
    const memg = startMemg();
    try {
      const lines = await python(PYMEMCACHE, memg.port);
      assertEquals(lines, ["get", "binary-safe", "many", "commands", "admin"]);
    } finally {
      await memg.close();
    }
  },
});

Deno.test("memcache-client from npm, under Deno: set get incr delete touch multi-get", async () => {
  const memg = startMemg();
  const mc = new MemcacheClient({ server: `127.0.0.1:${memg.port}` });
  try {
    assertEquals(await mc.set("greeting", "Hello World"), ["STORED"]);
    assertEquals((await mc.get<string>("greeting"))?.value, "Hello World");
    assertEquals(await mc.get("no-such-key"), undefined);
    const crlf = "a\r\nEND\r\nb";
    assertEquals(await mc.set("crlf", crlf), ["STORED"]);
    assertEquals((await mc.get<string>("crlf"))?.value, crlf);
    const multi = await mc.get<MultiRetrievalResponse<string>>(["greeting", "crlf", "nope"]);
    assertEquals(Object.keys(multi).sort(), ["crlf", "greeting"]);
    assertEquals(multi.crlf.value, crlf);
    assertEquals(await mc.set("n", "41"), ["STORED"]);
    assertEquals(String(await mc.incr("n", 1)), "42");
    assertEquals(String(await mc.decr("n", 50)), "0");
    await assertRejects(() => mc.incr("nope", 1), Error, "NOT_FOUND");
    assertEquals(await mc.touch("greeting", "100"), ["TOUCHED"]);
    const g = await mc.gets<string>("greeting");
    assertEquals(g?.value, "Hello World");
    assertEquals(await mc.cas("greeting", "Hi", { casUniq: g!.casUniq! }), ["STORED"]);
    await assertRejects(() => mc.cas("greeting", "Ho", { casUniq: g!.casUniq! }), Error, "EXISTS");
    await assertRejects(() => mc.add("greeting", "x"), Error, "NOT_STORED");
    assertEquals(await mc.delete("greeting"), ["DELETED"]);
    assertEquals(await mc.get("greeting"), undefined);
    const version = await mc.version();
    assert(version[1].startsWith("1.6.18"), version.join(" "));
  } finally {
    mc.shutdown();
    await memg.close();
  }
});
