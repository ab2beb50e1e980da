/**
 * memg's own TCP engine (`lib/net/epoll.ts`) over real loopback sockets:
 * - numeric address parsing and `sockaddr` encoding (`lib/net/sockaddr.ts`), printed as Deno
 *   prints addresses;
 * - which engine serves (`stats settings` → `io_engine`): epoll by default with `--allow-ffi`
 *   and a numeric address, Deno's sockets for `--io deno`, a host name, a unix socket or no
 *   `ffi` permission; `--io=bogus` is a usage error;
 * - both engines answer the same request streams byte for byte: a 5,000-command pipeline in
 *   one write, the same stream trickled a byte per write, a 1 MB value;
 * - back-pressure: 100 MB of replies to a client that reads nothing for a while all arrive
 *   (send hits EAGAIN, EPOLLOUT resumes it) while another client is served meanwhile;
 * - a client that resets the connection with replies unsent is dropped, the others served;
 * - a client's FIN (half-close) still gets every reply, then EOF, also when the FIN arrives
 *   while memg waits to send;
 * - IPv6 listeners, addresses in use, and 300 simultaneous clients.
 *
 * @module
 */
import {
  assert,
  assertEquals,
  assertGreater,
  assertLess,
  assertMatch,
  assertStringIncludes,
  assertThrows,
} from "./helpers/assert.ts";
import { concat } from "../bench/fuzz.ts";
import { latin1, RawClient } from "./helpers/client.ts";
import { runMain, spawnMemg, START_PERMISSIONS, startMemg } from "./helpers/server.ts";
import { stat, statBecomes } from "./helpers/stats.ts";
import { parseConfig, UsageError } from "../lib/config.ts";
import { decodeSockaddr, encodeSockaddr, parseIp } from "../lib/net/sockaddr.ts";

const dec = new TextDecoder("latin1");
const ENGINES = ["epoll", "deno"] as const;
type Engine = typeof ENGINES[number];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The engine `stats settings` names. */
async function engineOf(c: RawClient): Promise<string> {
  const settings = await c.call("stats settings\r\n", "END\r\n");
  const m = /\r\nSTAT io_engine (\S+)\r\n/.exec(settings);
  assert(m !== null, `no io_engine row in ${JSON.stringify(settings)}`);
  return m[1];
}

/** A set and a get of `key` on `c`, checked. */
async function setGet(c: RawClient, key: string): Promise<void> {
  const value = `value of ${key}`;
  assertEquals(await c.call(`set ${key} 7 0 ${value.length}\r\n${value}\r\n`), "STORED\r\n");
  assertEquals(
    await c.call(`get ${key}\r\n`, "END\r\n"),
    `VALUE ${key} 7 ${value.length}\r\n${value}\r\nEND\r\n`,
  );
}

/** `head`, then `body`, then `tail`, as one byte array. */
function join(head: string, body: Uint8Array, tail: string): Uint8Array {
  const h = latin1(head);
  const t = latin1(tail);
  const out = new Uint8Array(h.length + body.length + t.length);
  out.set(h);
  out.set(body, h.length);
  out.set(t, h.length + body.length);
  return out;
}

/** `n` bytes of a pattern that holds every byte value, CR LF pairs included. */
function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + (i >> 9) + seed) & 0xff;
  return out;
}

/** Whether two byte arrays are equal (faster than a deep equality for megabytes). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** One read of `conn` into `p`, failing after `ms` (the caller closes `conn` then). */
async function readWithin(conn: Deno.Conn, p: Uint8Array, ms: number): Promise<number | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const read = conn.read(p);
  read.catch(() => {}); // a read cut short by close() after a timeout
  try {
    return await Promise.race([
      read,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`read timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Everything `conn` receives until the peer's end of stream (within `ms`). */
async function readToEnd(conn: Deno.Conn, ms: number): Promise<Uint8Array> {
  const deadline = Date.now() + ms;
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(1 << 20);
  let total = 0;
  for (;;) {
    const n = await readWithin(conn, buf, Math.max(1, deadline - Date.now()));
    if (n === null) break;
    chunks.push(buf.slice(0, n));
    total += n;
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Reads `unit` repeated `times` times from `conn`, comparing as it goes (no more than that is
 * read), within `ms`.
 */
async function expectRepeated(
  conn: Deno.Conn,
  unit: Uint8Array,
  times: number,
  ms: number,
): Promise<void> {
  const total = unit.length * times;
  const deadline = Date.now() + ms;
  const buf = new Uint8Array(1 << 20);
  let got = 0;
  let at = 0; // offset in unit of the next byte
  while (got < total) {
    const want = buf.subarray(0, Math.min(buf.length, total - got));
    const n = await readWithin(conn, want, Math.max(1, deadline - Date.now()));
    if (n === null) throw new Error(`end of stream after ${got} of ${total} bytes`);
    for (let i = 0; i < n; i++) {
      if (buf[i] !== unit[at]) {
        const pos = got + i;
        throw new Error(
          `byte ${pos} (block ${Math.floor(pos / unit.length)}, offset ${at}) is ${buf[i]}, ` +
            `expected ${unit[at]}`,
        );
      }
      if (++at === unit.length) at = 0;
    }
    got += n;
  }
}

/** A request stream and the replies memcached gives to it, from a model of the cache. */
interface Script {
  request: string;
  expected: string;
  stored: number;
  values: number;
}

/**
 * `n` pseudo-random set/get/delete/incr commands on 64 keys under `prefix` (the same sequence
 * for every prefix), with the replies a model of the cache predicts. No CAS values, no `decr`
 * (memcached pads a shrunk number with spaces), so every reply is exactly predictable.
 */
function mixedScript(prefix: string, n: number): Script {
  const model = new Map<string, { flags: number; value: string }>();
  let x = 2024;
  const rand = (m: number) => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return (x >>> 8) % m;
  };
  const key = () => `${prefix}:${rand(64)}`;
  let request = "";
  let expected = "";
  let stored = 0;
  let values = 0;
  for (let i = 0; i < n; i++) {
    const r = rand(100);
    if (r < 35) {
      const k = key();
      const flags = rand(65536);
      const value = rand(3) === 0 ? `${prefix}-${i}-${"x".repeat(rand(40))}` : String(rand(100000));
      request += `set ${k} ${flags} 0 ${value.length}\r\n${value}\r\n`;
      expected += "STORED\r\n";
      model.set(k, { flags, value });
      stored++;
    } else if (r < 65) {
      const keys = Array.from({ length: 1 + rand(3) }, key);
      request += `get ${keys.join(" ")}\r\n`;
      for (const k of keys) {
        const item = model.get(k);
        if (item === undefined) continue;
        expected += `VALUE ${k} ${item.flags} ${item.value.length}\r\n${item.value}\r\n`;
        values++;
      }
      expected += "END\r\n";
    } else if (r < 80) {
      const k = key();
      request += `delete ${k}\r\n`;
      expected += model.delete(k) ? "DELETED\r\n" : "NOT_FOUND\r\n";
    } else {
      const k = key();
      const delta = rand(1000);
      request += `incr ${k} ${delta}\r\n`;
      const item = model.get(k);
      if (item === undefined) expected += "NOT_FOUND\r\n";
      else if (!/^\d+$/.test(item.value)) {
        expected += "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
      } else {
        item.value = String(BigInt(item.value) + BigInt(delta));
        expected += `${item.value}\r\n`;
      }
    }
  }
  return { request, expected, stored, values };
}

/** Reads `script`'s replies from `c`, checks them and that nothing follows; returns them. */
async function collect(c: RawClient, script: Script): Promise<string> {
  const got = dec.decode(await c.readBytes(script.expected.length, 10000));
  assertEquals((got.match(/^STORED\r$/gm) ?? []).length, script.stored, "STORED lines");
  assertEquals((got.match(/^VALUE /gm) ?? []).length, script.values, "VALUE lines");
  assert(got.endsWith("\r\n"), "the replies end with CR LF");
  if (got !== script.expected) {
    let i = 0;
    while (got[i] === script.expected[i]) i++;
    throw new Error(
      `replies differ at byte ${i}: got ${JSON.stringify(got.slice(i, i + 80))}, expected ` +
        JSON.stringify(script.expected.slice(i, i + 80)),
    );
  }
  // nothing else was sent: the next reply is the next command's
  assertMatch(await c.call("version\r\n"), /^VERSION 1\.6\.18\S*\r\n$/);
  return got;
}

Deno.test("sockaddr: parseIp reads numeric IPv4 and IPv6 addresses", async (t) => {
  const v6 = (...groups: number[]) => {
    const b = new Uint8Array(16);
    groups.forEach((g, i) => {
      b[2 * i] = g >> 8;
      b[2 * i + 1] = g & 0xff;
    });
    return b;
  };
  const good: Array<[string, Uint8Array]> = [
    ["127.0.0.1", new Uint8Array([127, 0, 0, 1])],
    ["0.0.0.0", new Uint8Array([0, 0, 0, 0])],
    ["255.254.253.252", new Uint8Array([255, 254, 253, 252])],
    ["::1", v6(0, 0, 0, 0, 0, 0, 0, 1)],
    ["::", v6(0, 0, 0, 0, 0, 0, 0, 0)],
    ["fe80::1:2", v6(0xfe80, 0, 0, 0, 0, 0, 1, 2)],
    ["FE80::A:b", v6(0xfe80, 0, 0, 0, 0, 0, 0xa, 0xb)],
    ["1:2:3:4:5:6:7:8", v6(1, 2, 3, 4, 5, 6, 7, 8)],
    ["1:2:3:4:5:6:7::", v6(1, 2, 3, 4, 5, 6, 7, 0)],
    ["::2:3:4:5:6:7:8", v6(0, 2, 3, 4, 5, 6, 7, 8)],
    ["::ffff:1.2.3.4", v6(0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304)],
    ["1:2:3:4:5:6:1.2.3.4", v6(1, 2, 3, 4, 5, 6, 0x0102, 0x0304)],
    ["[::1]", v6(0, 0, 0, 0, 0, 0, 0, 1)],
    ["[127.0.0.1]", new Uint8Array([127, 0, 0, 1])],
  ];
  await t.step("accepted", () => {
    for (const [text, bytes] of good) assertEquals(parseIp(text), bytes, text);
  });
  await t.step("rejected: not a numeric address", () => {
    for (
      const text of [
        "localhost",
        "1.2.3.256",
        "1.2.3",
        "1.2.3.4.5",
        "1::2::3",
        "",
        "1:2:3:4:5:6:7:8:9",
        "1:2:3:4:5:6:7::8",
        "1:2:3:4:5:6:7",
        ":1:2:3:4:5:6:7",
        "::g",
        "12345::",
        "fe80::1%eth0",
        "[::1",
        "::ffff:1.2.3.256",
      ]
    ) {
      assertEquals(parseIp(text), null, JSON.stringify(text));
    }
  });
  await t.step("rejected: an IPv4 tail anywhere but at the end (as inet_pton)", () => {
    for (const text of ["1.2.3.4::", "1.2.3.4::5", "1::1.2.3.4:5"]) {
      assertEquals(parseIp(text), null, JSON.stringify(text));
    }
  });
});

Deno.test("sockaddr: encode/decode round trips print addresses as Deno does", async (t) => {
  const roundTrip = (text: string, port: number): Deno.NetAddr => {
    const ip = parseIp(text);
    assert(ip !== null, text);
    return decodeSockaddr(encodeSockaddr(ip, port));
  };
  await t.step("sockaddr_in and sockaddr_in6 layouts", () => {
    const v4 = encodeSockaddr(new Uint8Array([127, 0, 0, 1]), 11211);
    assertEquals(v4, new Uint8Array([2, 0, 0x2b, 0xcb, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]));
    const v6 = encodeSockaddr(parseIp("::1")!, 0x1234);
    assertEquals(v6.length, 28);
    assertEquals(Array.from(v6.subarray(0, 8)), [10, 0, 0x12, 0x34, 0, 0, 0, 0]);
    assertEquals(v6[23], 1);
  });
  await t.step("IPv4 and RFC 5952 IPv6 text", () => {
    const cases: Array<[string, string]> = [
      ["127.0.0.1", "127.0.0.1"],
      ["0.0.0.0", "0.0.0.0"],
      ["255.255.255.255", "255.255.255.255"],
      ["::1", "::1"],
      ["[::1]", "::1"],
      ["::", "::"],
      ["0:0:0:0:0:0:0:1", "::1"],
      ["fe80::1:2", "fe80::1:2"],
      ["FE80:0:0:0:0:0:0:ABCD", "fe80::abcd"],
      ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
      ["1::", "1::"],
      ["1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"], // one zero group stays
      ["1:0:0:2:0:0:0:3", "1:0:0:2::3"], // the longest run
      ["1:0:0:2:0:0:3:4", "1::2:0:0:3:4"], // the first of equal runs
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["0001:0db8::0010", "1:db8::10"], // no leading zeros
    ];
    for (const [text, want] of cases) {
      const addr = roundTrip(text, 4242);
      assertEquals(addr, { transport: "tcp", hostname: want, port: 4242 }, text);
      // WHATWG URL hosts are RFC 5952 text too (without the mixed IPv4 notation)
      const bare = text.startsWith("[") ? text.slice(1, -1) : text;
      if (want.includes(":")) assertEquals(`[${want}]`, new URL(`http://[${bare}]/`).hostname);
    }
    assertEquals(roundTrip("10.0.0.1", 0).port, 0);
    assertEquals(roundTrip("10.0.0.1", 65535).port, 65535);
  });
  await t.step("IPv4-mapped IPv6 in mixed notation (as Deno and inet_ntop print it)", () => {
    assertEquals(roundTrip("::ffff:127.0.0.1", 80).hostname, "::ffff:127.0.0.1");
    assertEquals(roundTrip("::ffff:7f00:1", 80).hostname, "::ffff:127.0.0.1");
  });
});

Deno.test("engine choice: epoll where it can run, Deno's sockets otherwise", async (t) => {
  for (
    const [name, args, want] of [
      ["in process, by default", [], "epoll"],
      ["--io epoll", ["--io", "epoll"], "epoll"],
      ["--io=epoll", ["--io=epoll"], "epoll"],
      ["--io deno", ["--io", "deno"], "deno"],
      ["--io=deno", ["--io=deno"], "deno"],
      ["-l 127.0.0.1 (numeric)", ["-l", "127.0.0.1"], "epoll"],
      ["-l localhost (a name: falls back)", ["-l", "localhost"], "deno"],
    ] as const
  ) {
    await t.step(name, async () => {
      const memg = startMemg([...args]);
      const [listener] = memg.server.listenerNames();
      const m = /^tcp:(.+):(\d+)$/.exec(listener);
      assert(m !== null, listener);
      assertEquals(Number(m[2]), memg.port);
      const c = await RawClient.connect(memg.port, m[1]);
      try {
        assertEquals(await engineOf(c), want);
        await setGet(c, "choice");
      } finally {
        c.close();
        await memg.close();
      }
    });
  }

  await t.step("-s (a unix socket) is served by Deno's sockets", async () => {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/memg.sock`;
    const memg = startMemg(["-s", path]);
    try {
      const conn = await Deno.connect({ transport: "unix", path });
      try {
        await conn.write(latin1("stats settings\r\n"));
        let text = "";
        const buf = new Uint8Array(65536);
        for (let i = 0; i < 100 && !text.endsWith("END\r\n"); i++) {
          const n = await readWithin(conn, buf, 5000);
          if (n === null) break;
          text += dec.decode(buf.subarray(0, n));
        }
        assertStringIncludes(text, "\r\nSTAT io_engine deno\r\n");
      } finally {
        conn.close();
      }
    } finally {
      await memg.close();
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("a child with the start permissions uses epoll", async () => {
    assert(START_PERMISSIONS.includes("--allow-ffi"), "deno task start grants --allow-ffi");
    const child = await spawnMemg();
    try {
      const c = await RawClient.connect(child.port);
      try {
        assertEquals(await engineOf(c), "epoll");
        await setGet(c, "child");
      } finally {
        c.close();
      }
      assertEquals((await child.stop("SIGTERM")).code, 0);
    } finally {
      await child.close();
    }
  });

  await t.step("a child without --allow-ffi falls back to Deno's sockets", async () => {
    const child = await spawnMemg([], START_PERMISSIONS.filter((p) => p !== "--allow-ffi"));
    try {
      const c = await RawClient.connect(child.port);
      try {
        assertEquals(await engineOf(c), "deno");
        await setGet(c, "child");
      } finally {
        c.close();
      }
      assertEquals((await child.stop("SIGTERM")).code, 0);
      assertEquals(child.stderr.join(""), "");
    } finally {
      await child.close();
    }
  });

  await t.step("--io=bogus is a usage error: exit 64 and the usage", async () => {
    assertThrows(() => parseConfig(["--io=bogus"]), UsageError, "--io must be epoll or deno");
    assertThrows(() => parseConfig(["--io", "EPOLL"]), UsageError, "--io must be epoll or deno");
    const r = await runMain(["--io=bogus"]);
    assertEquals(r.code, 64, r.err);
    assertStringIncludes(r.err, "--io must be epoll or deno");
    assertStringIncludes(r.err, "-p, --port=<num>");
    assertStringIncludes(r.err, "--io=<engine>");
    assertEquals(r.out, "");
  });
});

Deno.test("both engines give byte-identical replies to the same streams", async (t) => {
  const N = 5000;
  const BIG = 1024 * 1024;
  const replies = new Map<Engine, { pipelined: string; trickled: string; big: Uint8Array }>();
  for (const engine of ENGINES) {
    await t.step(`--io ${engine}`, async (t) => {
      const memg = startMemg(["--io", engine, "-I", "2m"]);
      const c = await RawClient.connect(memg.port);
      try {
        assertEquals(await engineOf(c), engine);
        let pipelined = "";
        let trickled = "";
        let big: Uint8Array = new Uint8Array(0);
        await t.step(`${N} mixed commands in one write`, async () => {
          const script = mixedScript("p", N);
          await c.send(script.request);
          pipelined = await collect(c, script);
        });
        await t.step("the same stream, its first 300 bytes one per write", async () => {
          const script = mixedScript("t", N);
          for (let i = 0; i < 300; i++) await c.send(script.request[i]);
          await c.send(script.request.slice(300));
          trickled = await collect(c, script);
        });
        await t.step("a 1 MB value set, then got back", async () => {
          const value = pattern(BIG, 3);
          await c.send(join(`set big 3 0 ${BIG}\r\n`, value, "\r\nget big\r\n"));
          const expected = join(`STORED\r\nVALUE big 3 ${BIG}\r\n`, value, "\r\nEND\r\n");
          big = await c.readBytes(expected.length, 10000);
          assert(sameBytes(big, expected), "the 1 MB value comes back as it was sent");
          assertMatch(await c.call("version\r\n"), /^VERSION /);
        });
        replies.set(engine, { pipelined, trickled, big });
      } finally {
        c.close();
        await memg.close();
      }
    });
  }
  await t.step("epoll's replies equal deno's", () => {
    const epoll = replies.get("epoll");
    const deno = replies.get("deno");
    assert(epoll !== undefined && deno !== undefined, "both engines ran");
    assertGreater(epoll.pipelined.length, 50_000);
    assert(epoll.pipelined === deno.pipelined, "pipelined replies differ between engines");
    assert(epoll.trickled === deno.trickled, "trickled replies differ between engines");
    assertGreater(epoll.big.length, BIG);
    assert(sameBytes(epoll.big, deno.big), "1 MB replies differ between engines");
  });
});

/** Runs `body` with two clients of a memg on `engine`: one that will fall behind, and another. */
async function withTwoClients(
  engine: Engine,
  body: (slow: RawClient, other: RawClient) => Promise<void>,
): Promise<void> {
  const memg = startMemg(["--io", engine]);
  const slow = await RawClient.connect(memg.port);
  const other = await RawClient.connect(memg.port);
  try {
    assertEquals(await engineOf(other), engine);
    await body(slow, other);
  } finally {
    slow.close();
    other.close();
    await memg.close();
  }
}

Deno.test("back-pressure: 200 × 512 KB to a client that waits, another served meanwhile", async (t) => {
  const SIZE = 512 * 1024;
  const TIMES = 200;
  for (const engine of ENGINES) {
    await t.step(`--io ${engine}`, async () => {
      await withTwoClients(engine, async (slow, other) => {
        const value = pattern(SIZE, 11);
        await slow.send(join(`set big 5 0 ${SIZE}\r\n`, value, "\r\n"));
        assertEquals(await slow.readLine(), "STORED");
        // ~100 MB of replies: far more than the socket buffers hold, so memg's sends come up
        // short (EAGAIN) until the client reads (EPOLLOUT)
        await slow.send("get big\r\n".repeat(TIMES));
        const started = Date.now();
        await setGet(other, "meanwhile");
        const took = Date.now() - started;
        assertLess(took, 2000, `a round trip took ${took} ms while a client was backed up`);
        await sleep(Math.max(0, 300 - took));
        assertEquals(await stat(other, "curr_connections"), 2);
        const block = join(`VALUE big 5 ${SIZE}\r\n`, value, "\r\nEND\r\n");
        await expectRepeated(slow.conn, block, TIMES, 15000);
        // and nothing more: the next reply is the next command's
        assertMatch(await slow.call("version\r\n"), /^VERSION /);
        await setGet(other, "after");
        assertEquals(await stat(other, "get_hits"), TIMES + 2);
      });
    });
  }
});

Deno.test("back-pressure: large values held for a gathered send stay as they were got while sets replace them", async (t) => {
  for (const engine of ENGINES) {
    for (const size of [17 * 1024, 300 * 1024]) {
      await t.step(`--io ${engine}, ${size} B values`, async () => {
        await withTwoClients(engine, async (slow, other) => {
          const value = (i: number) => pattern(size, i);
          // a 50 KB line grows the read buffer, so that whole 17 KiB sets fit in one read
          const keys = Array.from({ length: 5000 }, (_, i) => `miss${i}`).join(" ");
          assertEquals(await slow.call(`get ${keys}\r\n`), "END\r\n");
          await slow.send(join(`set big 5 0 ${size}\r\n`, value(0), "\r\n"));
          assertEquals(await slow.readLine(), "STORED");
          // get, then a set of the same key (reusing freed chunks), again and again, unread:
          // the gathered sends come up short and the rest is copied
          const times = Math.ceil(12e6 / size);
          const ask: Uint8Array[] = [];
          const want: Uint8Array[] = [];
          for (let i = 1; i <= times; i++) {
            ask.push(join(`get big\r\nset big 5 0 ${size}\r\n`, value(i), "\r\n"));
            want.push(join(`VALUE big 5 ${size}\r\n`, value(i - 1), "\r\nEND\r\nSTORED\r\n"));
          }
          // (sent while the replies are read: memg stops reading while its replies wait)
          const sending = slow.send(concat(ask)).then(() => null, (e) => e);
          await sleep(200);
          await setGet(other, "meanwhile");
          await expectRepeated(slow.conn, concat(want), 1, 15000);
          assertEquals(await sending, null);
          const last = join(`VALUE big 5 ${size}\r\n`, value(times), "\r\nEND\r\n");
          await slow.send("get big\r\n");
          await expectRepeated(slow.conn, last, 1, 5000);
        });
      });
    }
  }
});

Deno.test("back-pressure: small replies of many reads to a client that waits (the round's sends come up short)", async (t) => {
  const SIZE = 4000;
  const WRITES = 120;
  const GETS = 40; // 160 KB of replies per write: under FLUSH_AT, so they leave at the round's end
  for (const engine of ENGINES) {
    await t.step(`--io ${engine}`, async () => {
      await withTwoClients(engine, async (slow, other) => {
        const value = pattern(SIZE, 5);
        await slow.send(join(`set k 3 0 ${SIZE}\r\n`, value, "\r\n"));
        assertEquals(await slow.readLine(), "STORED");
        // ~19 MB of replies, one write (and mostly one read) at a time: once the socket is full,
        // each round's send takes part or nothing, and the rest waits for EPOLLOUT
        for (let i = 0; i < WRITES; i++) {
          await slow.send("get k\r\n".repeat(GETS));
          await sleep(2);
        }
        await setGet(other, "meanwhile");
        const block = join(`VALUE k 3 ${SIZE}\r\n`, value, "\r\nEND\r\n");
        await expectRepeated(slow.conn, block, WRITES * GETS, 15000);
        assertMatch(await slow.call("version\r\n"), /^VERSION /);
        await setGet(other, "after");
        assertEquals(await stat(other, "get_hits"), WRITES * GETS + 2);
      });
    });
  }
});

Deno.test("a client that resets the connection while memg is blocked sending", async (t) => {
  const SIZE = 512 * 1024;
  for (const engine of ENGINES) {
    await t.step(`--io ${engine}`, async () => {
      const memg = startMemg(["--io", engine]);
      const probe = await RawClient.connect(memg.port);
      try {
        const gone = await RawClient.connect(memg.port);
        try {
          await gone.send(join(`set big 0 0 ${SIZE}\r\n`, pattern(SIZE, 1), "\r\n"));
          assertEquals(await gone.readLine(), "STORED");
          await gone.send("get big\r\n".repeat(100));
          await gone.readBytes(65536); // some of the replies, then gone with the rest unread
          await sleep(50);
        } finally {
          gone.close(); // unread data: the kernel sends a reset
        }
        await statBecomes(probe, "curr_connections", 1);
        await setGet(probe, "survivor");
        const again = await RawClient.connect(memg.port);
        try {
          await setGet(again, "again");
        } finally {
          again.close();
        }
      } finally {
        probe.close();
        await memg.close();
      }
    });
  }
});

Deno.test("half-close: a client's FIN still gets every reply, then EOF", async (t) => {
  const SIZE = 512 * 1024;
  for (const engine of ENGINES) {
    await t.step(`--io ${engine}`, async (t) => {
      const memg = startMemg(["--io", engine]);
      try {
        await t.step("small replies", async () => {
          const c = await RawClient.connect(memg.port);
          try {
            await c.send(
              "set a 1 0 3\r\nabc\r\nget a\r\nincr n 1\r\nset n 0 0 2\r\n41\r\nincr n 1\r\n" +
                "delete a\r\nget a n\r\n",
            );
            await c.conn.closeWrite();
            const got = dec.decode(await readToEnd(c.conn, 5000));
            assertEquals(
              got,
              "STORED\r\nVALUE a 1 3\r\nabc\r\nEND\r\nNOT_FOUND\r\nSTORED\r\n42\r\nDELETED\r\n" +
                "VALUE n 0 2\r\n42\r\nEND\r\n",
            );
          } finally {
            c.close();
          }
        });
        await t.step("4 MB of replies after the FIN", async () => {
          const c = await RawClient.connect(memg.port);
          try {
            const value = pattern(SIZE, 5);
            await c.send(join(`set big 9 0 ${SIZE}\r\n`, value, "\r\n" + "get big\r\n".repeat(8)));
            await c.conn.closeWrite();
            const got = await readToEnd(c.conn, 10000);
            const block = join(`VALUE big 9 ${SIZE}\r\n`, value, "\r\nEND\r\n");
            assertEquals(got.length, 8 + block.length * 8, "STORED and 8 whole values");
            assertEquals(dec.decode(got.subarray(0, 8)), "STORED\r\n");
            for (let i = 0; i < 8; i++) {
              const at = 8 + i * block.length;
              assert(sameBytes(got.subarray(at, at + block.length), block), `value ${i}`);
            }
          } finally {
            c.close();
          }
        });
        await t.step("commands and FIN that arrive while memg is blocked sending", async () => {
          // 52 MB of replies fill the socket buffers (tcp_rmem's limit is 32 MB at most): memg
          // waits to send and reads nothing while the last commands and the FIN arrive, so
          // they are reported together (one edge) and must both be read once it goes on
          const c = await RawClient.connect(memg.port);
          try {
            const value = pattern(SIZE, 6);
            await c.send(join(`set big 2 0 ${SIZE}\r\n`, value, "\r\n"));
            assertEquals(await c.readLine(), "STORED");
            await c.send("get big\r\n".repeat(100));
            await sleep(100);
            await c.send("set tail 0 0 4\r\nlast\r\nget tail\r\n");
            await c.conn.closeWrite();
            await sleep(100);
            const block = join(`VALUE big 2 ${SIZE}\r\n`, value, "\r\nEND\r\n");
            await expectRepeated(c.conn, block, 100, 10000);
            const rest = dec.decode(await readToEnd(c.conn, 5000));
            assertEquals(rest, "STORED\r\nVALUE tail 0 4\r\nlast\r\nEND\r\n");
          } finally {
            c.close();
          }
        });
        await t.step("the connection is gone from the server", async () => {
          const probe = await RawClient.connect(memg.port);
          try {
            await statBecomes(probe, "curr_connections", 1);
          } finally {
            probe.close();
          }
        });
      } finally {
        await memg.close();
      }
    });
  }
});

/** Whether this host can bind `hostname` (IPv6 may be off). */
function canBind(hostname: string): boolean {
  try {
    Deno.listen({ hostname, port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

/** Whether a listener on `::` here takes IPv4 clients too (no `bindv6only`). */
async function dualStack(): Promise<boolean> {
  let l: Deno.Listener;
  try {
    l = Deno.listen({ hostname: "::", port: 0 });
  } catch {
    return false;
  }
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: (l.addr as Deno.NetAddr).port });
    const s = await l.accept();
    s.close();
    c.close();
    return true;
  } catch {
    return false;
  } finally {
    l.close();
  }
}

Deno.test("IPv6: -l ::1 is served by the epoll engine", async (t) => {
  const v6 = canBind("::1");
  if (!v6) console.log("IPv6 steps skipped: ::1 cannot be bound on this host");
  const both = v6 && await dualStack();
  if (v6 && !both) console.log("dual-stack step skipped: :: takes no IPv4 clients here");
  for (const spec of ["::1", "[::1]"]) {
    await t.step({
      name: `-l ${spec}`,
      ignore: !v6,
      fn: async () => {
        const memg = startMemg(["-l", spec]);
        const c = await RawClient.connect(memg.port, "::1");
        try {
          assertEquals(memg.server.listenerNames(), [`tcp:::1:${memg.port}`]);
          assertEquals(await engineOf(c), "epoll");
          await setGet(c, "v6");
          const conns = await c.call("stats conns\r\n", "END\r\n");
          const m = /^STAT \d+:addr (\S+)\r$/m.exec(conns);
          assert(m !== null, conns);
          assertEquals(m[1], `tcp:::1:${(c.conn.localAddr as Deno.NetAddr).port}`);
        } finally {
          c.close();
          await memg.close();
        }
      },
    });
  }
  await t.step({
    name: "-l :: : an IPv4 client's address reads the same under both engines",
    ignore: !both,
    fn: async () => {
      const seen = new Map<Engine, string>();
      for (const engine of ENGINES) {
        const memg = startMemg(["--io", engine, "-l", "::"]);
        const c = await RawClient.connect(memg.port, "127.0.0.1");
        try {
          assertEquals(await engineOf(c), engine);
          const conns = await c.call("stats conns\r\n", "END\r\n");
          const m = /^STAT \d+:addr (\S+)\r$/m.exec(conns);
          assert(m !== null, conns);
          const port = (c.conn.localAddr as Deno.NetAddr).port;
          seen.set(engine, m[1].replace(`:${port}`, ":PORT"));
        } finally {
          c.close();
          await memg.close();
        }
      }
      assertEquals(seen.get("deno"), "tcp:::ffff:127.0.0.1:PORT");
      assertEquals(seen.get("epoll"), seen.get("deno"));
    },
  });
});

Deno.test("an address in use: listening throws Deno.errors.AddrInUse", async (t) => {
  for (const engine of ENGINES) {
    await t.step(`--io ${engine}, a port Deno.listen holds`, () => {
      const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      try {
        const port = (blocker.addr as Deno.NetAddr).port;
        assertThrows(
          () => startMemg(["--io", engine, "-l", `127.0.0.1:${port}`]),
          Deno.errors.AddrInUse,
        );
      } finally {
        blocker.close();
      }
    });
    for (const first of ENGINES) {
      await t.step(`--io ${engine}, a port an --io ${first} memg holds`, async () => {
        const memg = startMemg(["--io", first]);
        try {
          assertThrows(
            () => startMemg(["--io", engine, "-l", `127.0.0.1:${memg.port}`]),
            Deno.errors.AddrInUse,
          );
          const c = await RawClient.connect(memg.port);
          try {
            assertEquals(await engineOf(c), first); // the first server still serves
            await setGet(c, "still");
          } finally {
            c.close();
          }
        } finally {
          await memg.close();
        }
      });
    }
  }
});

Deno.test("300 clients at once are all served, and curr_connections comes back down", async (t) => {
  const CLIENTS = 300;
  for (const engine of ENGINES) {
    await t.step(`--io ${engine}`, async () => {
      const memg = startMemg(["--io", engine]);
      const probe = await RawClient.connect(memg.port);
      const clients: RawClient[] = [];
      try {
        assertEquals(await engineOf(probe), engine);
        assertEquals(await stat(probe, "curr_connections"), 1);
        try {
          await Promise.all(
            Array.from({ length: CLIENTS }, async () => {
              clients.push(await RawClient.connect(memg.port));
            }),
          );
          await Promise.all(clients.map((c, i) => setGet(c, `many:${i}`)));
          assertEquals(await stat(probe, "curr_connections"), CLIENTS + 1);
          assertEquals(await stat(probe, "curr_items"), CLIENTS);
          assertEquals(await stat(probe, "get_hits"), CLIENTS);
        } finally {
          for (const c of clients) c.close();
        }
        await statBecomes(probe, "curr_connections", 1);
        assertGreater(await stat(probe, "total_connections"), CLIENTS);
      } finally {
        probe.close();
        await memg.close();
      }
    });
  }
});

/** How long one metrics fetch may wait next to the saturating clients before the test fails. */
const FETCH_DEADLINE_MS = 5000;

Deno.test("Deno's own sockets (the metrics server) stay served while epoll clients saturate memg", async () => {
  // The epoll loop hands Deno's event loop a turn at least every 5 ms while busy; without that,
  // HTTP, TLS and unix-socket clients would wait as long as the epoll clients kept sending. An
  // HTTP exchange needs several turns (measured here: p50 about 4 ms, p99 40-90 ms).
  const memg = await spawnMemg(["-m", "64", "--metrics-port", "0"]);
  const line = memg.stdout.find((l) => l.startsWith("memg metrics on "));
  assert(line !== undefined, `no metrics line in ${JSON.stringify(memg.stdout)}`);
  const url = new URL("stats.json", line.slice("memg metrics on ".length));
  const greedy: Deno.Conn[] = [];
  let stop = false;
  const client = Deno.createHttpClient({});
  try {
    const value = "v".repeat(1000);
    const batch = new TextEncoder().encode(
      `set k 0 0 ${value.length}\r\n${value}\r\n${"get k\r\n".repeat(50)}`.repeat(20),
    );
    let received = 0;
    const pumps: Promise<void>[] = [];
    for (let i = 0; i < 4; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: memg.port });
      greedy.push(conn);
      pumps.push(
        (async () => {
          while (!stop) {
            for (let off = 0; off < batch.length;) off += await conn.write(batch.subarray(off));
          }
        })().catch(() => {}),
      );
      pumps.push((async () => {
        const buf = new Uint8Array(256 * 1024);
        for (;;) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) return;
          received += n;
        }
      })());
    }
    await sleep(200);
    const times: number[] = [];
    const gets: number[] = [];
    const started = Date.now();
    while (Date.now() - started < 2000) {
      const t0 = performance.now();
      // Starved, a fetch would wait for as long as the clients send, which is until this loop
      // ends: without a deadline the test would hang instead of failing.
      const res = await fetch(url, { client, signal: AbortSignal.timeout(FETCH_DEADLINE_MS) })
        .catch((e) => {
          throw new Error(`a fetch got no reply in ${FETCH_DEADLINE_MS} ms (${e})`);
        });
      const body = await res.json() as Record<string, unknown>;
      times.push(performance.now() - t0);
      assertEquals(res.status, 200);
      assertEquals(typeof body.cmd_get, "number");
      gets.push(body.cmd_get as number);
      await sleep(10);
    }
    assertGreater(gets[gets.length - 1], gets[0], "cmd_get did not move while the fetches ran");
    stop = true;
    for (const c of greedy) c.close();
    await Promise.all(pumps);
    assertGreater(received, 50 * 1024 * 1024, "the epoll clients were not kept busy");
    times.sort((a, b) => a - b);
    const p50 = times[Math.floor(times.length * 0.5)];
    const p90 = times[Math.floor(times.length * 0.9)];
    const p99 = times[Math.floor(times.length * 0.99)];
    console.log(
      `/stats.json next to 4 saturating epoll clients: ${times.length} fetches, p50 ` +
        `${p50.toFixed(1)} ms, p90 ${p90.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms; ` +
        `${(received / 1048576).toFixed(0)} MB of replies meanwhile`,
    );
    // Served, there are 70 to 120 fetches on a quiet machine (each is followed by a 10 ms sleep),
    // p50 4-8 ms. The bounds are loose because CI runs the other test files at once on two
    // cores: one CI run saw a single fetch take 1.9 s, another only 15 fetches in the 2 s.
    assertGreater(times.length, 5, `only ${times.length} fetches in 2 s`);
    assertLess(p50, 400, `p50 ${p50} ms`);
  } finally {
    stop = true;
    for (const c of greedy) {
      try {
        c.close();
      } catch {
        // closed above
      }
    }
    client.close();
    assertEquals((await memg.stop()).code, 0);
  }
});

Deno.test("values sent straight from the store arrive whole and in order among the other replies", async (t) => {
  for (const engine of ENGINES) {
    await t.step(`--io ${engine}`, async () => {
      const memg = startMemg(["--io", engine, "-I", "2m", "-m", "64"]);
      const c = await RawClient.connect(memg.port);
      try {
        // 16 KiB and more go from the slab page to the socket; smaller ones are copied
        // every byte value, as one char each (what latin1() sends and the client reads back)
        const bytes = (n: number, seed: number) =>
          Array.from(pattern(n, seed), (b) => String.fromCharCode(b)).join("");
        const big1 = bytes(40_000, 1);
        const big2 = bytes(300_000, 2);
        const edge = bytes(16 * 1024, 3);
        for (const [k, v] of [["big1", big1], ["big2", big2], ["edge", edge], ["small", "s"]]) {
          assertEquals(await c.call(latin1(`set ${k} 7 0 ${v.length}\r\n${v}\r\n`)), "STORED\r\n");
        }
        const block = (k: string, v: string) => `VALUE ${k} 7 ${v.length}\r\n${v}\r\n`;
        const want = block("small", "s") + block("big1", big1) + block("small", "s") +
          block("big2", big2) + block("edge", edge) + block("small", "s") + "END\r\n";
        // (the client decodes as windows-1252, which `TextDecoder("latin1")` is: compare alike)
        const same = (got: string, sent: string) => got === dec.decode(latin1(sent));
        const got = await c.call("get small big1 small big2 edge small\r\n", "END\r\n");
        assertEquals(got.length, want.length);
        assert(same(got, want), "a multi-key get with large values came back altered");
        // meta: flags before the value, and a pipeline ended by mn
        const meta = await c.call("mg big2 v k O7 f\r\nmg small v\r\nmn\r\n", "MN\r\n");
        assert(
          same(meta, `VA ${big2.length} kbig2 O7 f7\r\n${big2}\r\nVA 1\r\ns\r\nMN\r\n`),
          `mg of a large value: ${meta.slice(0, 40)}...`,
        );
        // a long key among them takes the whole reply back, large values included (as memcached)
        assertEquals(
          await c.call(`get big1 ${"k".repeat(251)} big2\r\n`),
          "CLIENT_ERROR bad command line format\r\n",
        );
        assertEquals(await c.call("version\r\n"), await c.call("version\r\n"));
      } finally {
        c.close();
        await memg.close();
      }
    });
  }
});
