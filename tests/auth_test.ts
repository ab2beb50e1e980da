/**
 * Authentication: the password files (-Y and the SASL database), SASL PLAIN checking, the
 * command-line rules memcached applies to -S and -Y, start-up failures, and ascii
 * authentication over real sockets — also compared with Debian's memcached -Y.
 */
import { assert, assertEquals, assertStringIncludes, assertThrows } from "./helpers/assert.ts";
import { latin1, RawClient } from "./helpers/client.ts";
import {
  attach,
  haveMemcached,
  spawnMemcached,
  START_PERMISSIONS,
  startMemg,
} from "./helpers/server.ts";
import { AuthFileError, loadAuthentication, parseAuthFile, parseSaslPwdb } from "../lib/auth.ts";
import { parseConfig, UsageError } from "../lib/config.ts";

const check = (creds: ReturnType<typeof parseAuthFile>, user: string, pass: string) => {
  const b = latin1(`${user} ${pass}`);
  return creds.check(b, 0, user.length, user.length + 1, pass.length);
};
const plainOk = (creds: ReturnType<typeof parseAuthFile>, message: string) => {
  const b = latin1(`__${message}__`); // the message need not start at offset 0
  return creds.checkPlain(b, 2, message.length);
};

Deno.test("auth files: memcached's -Y format", async (t) => {
  await t.step("user:password lines; the password runs to the end of the line", () => {
    const creds = parseAuthFile(latin1("u1:p1\nu2:p:2\r\nu3:\nu1:second"), "f");
    assertEquals(creds.size, 4);
    assert(check(creds, "u1", "p1"));
    assert(check(creds, "u1", "second"), "every entry of a user counts");
    assert(check(creds, "u2", "p:2"), "a ':' belongs to the password; '\\r' ends it");
    assert(!check(creds, "u2", "p"));
    assert(!check(creds, "u1", "p"), "a prefix is not the password");
    assert(!check(creds, "U1", "p1"), "user names are case sensitive");
    assert(!check(creds, "u3", "x"));
  });
  await t.step(
    "an empty file has no users; a line without ':' (a blank one too) is refused",
    () => {
      assertEquals(parseAuthFile(new Uint8Array(0), "f").size, 0);
      for (const bad of ["nocolon\n", "u:p\n\n", "u:p\n\r\n"]) {
        assertThrows(
          () => parseAuthFile(latin1(bad), "/x/f"),
          AuthFileError,
          "[/x/f] has a malformed entry",
        );
      }
    },
  );
});

Deno.test("auth files: the SASL password database", () => {
  const creds = parseSaslPwdb(latin1("alice:wonder:extra\r\nbob:builder\nalice:other\ngarbage\n"));
  assert(check(creds, "alice", "wonder"), "fields after the password are ignored");
  assert(!check(creds, "alice", "other"), "only a user's first line counts");
  assert(check(creds, "bob", "builder"));
  assert(!check(creds, "garbage", ""));
});

Deno.test("SASL PLAIN messages are checked as Cyrus SASL checks them", () => {
  const creds = parseSaslPwdb(latin1("alice:wonder\n"));
  assert(plainOk(creds, "\0alice\0wonder"));
  assert(plainOk(creds, "alice\0alice\0wonder"), "authzid may name the user itself");
  for (
    const bad of [
      "x\0alice\0wonder", // acting as someone else
      "\0alice\0wonder\0", // a third NUL
      "\0alice\0", // empty password
      "\0\0wonder", // empty user
      "\0alice", // one NUL
      "alice wonder",
      "\0alice\0wonde",
      "\0alice\0wonderr",
    ]
  ) assert(!plainOk(creds, bad), JSON.stringify(bad));
});

Deno.test("-S and -Y choose the protocol as memcached does", async (t) => {
  await t.step("-S implies the binary protocol; -S with ascii or auto is refused", () => {
    assertEquals(parseConfig(["-S"]).config.protocol, "binary");
    assertEquals(parseConfig(["-S", "-B", "binary"]).config.protocol, "binary");
    for (const b of ["ascii", "auto"]) {
      assertThrows(
        () => parseConfig(["-S", "-B", b]),
        UsageError,
        "You cannot allow the ASCII protocol while using SASL.",
      );
    }
    assertThrows(() => parseConfig(["-S", "-U", "11211"]), UsageError, "Cannot enable UDP");
  });
  await t.step("-Y implies ascii (also over -S); -Y with binary or auto is refused", () => {
    assertEquals(parseConfig(["-Y", "f"]).config.protocol, "ascii");
    assertEquals(parseConfig(["-S", "-Y", "f"]).config.protocol, "ascii");
    assertThrows(
      () => parseConfig(["-Y", "f", "-B", "auto"]),
      UsageError,
      "You cannot allow the BINARY protocol while using ascii authentication tokens.",
    );
  });
  await t.step("the SASL file comes from --sasl-pwdb, else MEMCACHED_SASL_PWDB", () => {
    assertEquals(parseConfig(["-S"], { saslPwdb: "/env" }).config.saslPwdb, "/env");
    assertEquals(
      parseConfig(["-S", "--sasl-pwdb", "/flag"], { saslPwdb: "/env" }).config.saslPwdb,
      "/flag",
    );
  });
});

Deno.test("password files are read at start-up; an unusable one stops it", async (t) => {
  const dir = Deno.makeTempDirSync({ prefix: "memg-auth-" });
  try {
    Deno.writeTextFileSync(`${dir}/ok`, "u1:p1\n");
    Deno.writeTextFileSync(`${dir}/bad`, "u1:p1\n\n");
    await t.step("loadAuthentication reads what the flags name, and only that", () => {
      const both = loadAuthentication(
        parseConfig(["-S", "-B", "binary", "--sasl-pwdb", `${dir}/ok`]).config,
      );
      assertEquals([both.sasl?.size, both.ascii], [1, null]);
      const ascii = loadAuthentication(parseConfig(["-S", "-Y", `${dir}/ok`]).config);
      assertEquals([ascii.sasl, ascii.ascii?.size], [null, 1]);
      assertThrows(
        () => loadAuthentication(parseConfig(["-S"]).config),
        AuthFileError,
        "MEMCACHED_SASL_PWDB",
      );
    });
    await t.step("memg exits 1 with the reason for a missing or malformed file", async () => {
      const cases: Array<[string[], string]> = [
        [["-Y", `${dir}/missing`], `Could not open authfile [${dir}/missing]`],
        [["-Y", `${dir}/bad`], "has a malformed entry"],
        [["-S", "--sasl-pwdb", `${dir}/missing`], "Could not open SASL password file"],
      ];
      for (const [args, reason] of cases) {
        const out = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--config",
            new URL("../deno.json", import.meta.url).pathname,
            ...START_PERMISSIONS,
            new URL("../main.ts", import.meta.url).pathname,
            "-p",
            "0",
            ...args,
          ],
          stdout: "null",
          stderr: "piped",
        }).output();
        assertEquals(out.code, 1);
        assertStringIncludes(new TextDecoder().decode(out.stderr), reason);
      }
    });
    await t.step("MEMCACHED_SASL_PWDB names the file when the flag does not", async () => {
      const memg = await spawnMemgWithEnv(["-S"], `${dir}/ok`);
      try {
        const c = await RawClient.connect(memg.port);
        try {
          await c.send(plainAuth("u1", "p1"));
          const h = await c.readBytes(24);
          assertEquals([h[0], h[6], h[7]], [0x81, 0, 0]);
        } finally {
          c.close();
        }
      } finally {
        await memg.close();
      }
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** A memg child whose environment names `pwdb` in MEMCACHED_SASL_PWDB. */
async function spawnMemgWithEnv(args: string[], pwdb: string) {
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      ...START_PERMISSIONS,
      new URL("../main.ts", import.meta.url).pathname,
      "-p",
      "0",
      ...args,
    ],
    env: { MEMCACHED_SASL_PWDB: pwdb },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  return await attach(process);
}

function plainAuth(user: string, pass: string): Uint8Array {
  const mech = latin1("PLAIN");
  const msg = latin1(`\0${user}\0${pass}`);
  const b = new Uint8Array(24 + mech.length + msg.length);
  const dv = new DataView(b.buffer);
  b[0] = 0x80;
  b[1] = 0x21;
  dv.setUint16(2, mech.length);
  dv.setUint32(8, mech.length + msg.length);
  b.set(mech, 24);
  b.set(msg, 24 + mech.length);
  return b;
}

/** Runs `fn` with a -Y server whose file has u1:p1 and u2:p:2. */
async function withAsciiAuth(fn: (port: number) => Promise<void>, memcached = false) {
  const file = Deno.makeTempFileSync({ prefix: "memg-authfile-" });
  Deno.writeTextFileSync(file, "u1:p1\nu2:p:2\n");
  const server = memcached ? await spawnMemcached(["-Y", file]) : startMemg(["-Y", file]);
  try {
    await fn(server.port);
  } finally {
    await server.close();
    Deno.removeSync(file);
  }
}

/**
 * Sends `stream` (whole: no token left waiting for bytes) in one write on a new connection;
 * returns the first line of the answer.
 */
async function firstLine(port: number, stream: string): Promise<string> {
  const c = await RawClient.connect(port);
  try {
    await c.send(stream);
    const line = await c.readLine();
    // then authenticate for real: the connection must still be in its authentication phase
    // or past it, and answer in order
    assertEquals(
      await c.call("set x 0 0 5\r\nu1 p1\r\nget nope\r\n", "END\r\n"),
      "STORED\r\nEND\r\n",
    );
    return line;
  } finally {
    c.close();
  }
}

/**
 * Streams that end in the authentication phase. memcached answers each read with one line:
 * the last of its authentication-phase answers replaces the ones before it.
 */
const UNAUTHENTICATED_STREAMS = [
  "get a\r\n",
  "quit\r\n",
  "\r\n",
  "SET a 0 0 5\r\nu1 p1\r\n",
  "set a 0 0\r\n",
  "set a 0 0 x\r\n",
  "set a 0 0 -1\r\n",
  "set a 0 0 5\r\nu1 p2\r\n",
  "set a 0 0 5\r\nu9 p1\r\n",
  "set a 0 0 4\r\nu1p1\r\n",
  "set a 0 0 2\r\nu1\r\n",
  "set a 0 0 0\r\n\r\n",
  "set a 0 0 6\r\nu1 p1\r\nX",
  "set a 0 0 5\r\nu1 p1\n\n",
  "set a 0 0 5\nu1 p2\r\n",
  "set a 0 0 5\r\nu1 p2\r\nget a\r\n",
  "get a\r\nset a 0 0 5\r\nu1 p2\r\n",
  "set a 0 0 4294967295\r\nX", // size + 2 wraps to 1 in memcached's uint32
  "set a 0 0 4294967294\r\n", // ... and to 0
];

/** Streams that authenticate: the answers up to the final `END`. */
const AUTHENTICATING_STREAMS = [
  "set a 0 0 5\r\nu1 p1\r\nget a\r\n",
  "get a\r\nset a 0 0 5\r\nu1 p1\r\nget a\r\n",
  "set a 0 0 5 noreply\r\nu1 p1\r\nset a 0 0 5\r\nu1 p2\r\nget a\r\n",
  " set  k b c 6\r\nu2 p:2\r\nget a\r\n",
  "set a 0 0 9\r\nu1 p1 xyz\r\nget a\r\n",
  "set a 0 0 7\r\nu1  p1 \r\nget a\r\n",
  "set a 0 0 6\r\nu2 p:2\r\nset b 0 0 5\r\nu1 p3\r\nget b\r\n",
];

/** Sends `stream`; returns everything up to and including the first `END`. */
async function untilEnd(port: number, stream: string): Promise<string> {
  const c = await RawClient.connect(port);
  try {
    return await c.call(stream, "END\r\n");
  } finally {
    c.close();
  }
}

Deno.test("ascii authentication (-Y) over real sockets", async (t) => {
  await withAsciiAuth(async (port) => {
    await t.step("before authenticating, every other command is refused", async () => {
      assertEquals(await firstLine(port, "get a\r\n"), "CLIENT_ERROR unauthenticated");
      assertEquals(
        await firstLine(port, "set a 0 0 5\r\nu1 p2\r\n"),
        "CLIENT_ERROR authentication failure",
      );
      assertEquals(
        await firstLine(port, "set a 0 0 6\r\nu1 p1\r\nget a\r\n"),
        "CLIENT_ERROR unauthenticated",
      );
      assertEquals(
        await firstLine(port, "set a 0 0 2\r\nu1\r\n"),
        "CLIENT_ERROR bad authentication token format",
      );
      assertEquals(
        await firstLine(port, "set a 0 0 5\r\nu1 p1\n\n"),
        "CLIENT_ERROR bad command line termination",
      );
    });
    await t.step(
      "the right user and password answer STORED, then the text protocol serves",
      async () => {
        assertEquals(
          await untilEnd(port, "set a 0 0 5\r\nu1 p1\r\nget a\r\n"),
          "STORED\r\nEND\r\n",
        );
        const c = await RawClient.connect(port);
        try {
          assertEquals(await c.call("set k 0 0 6\r\nu2 p:2\r\n"), "STORED\r\n");
          assertEquals(await c.call("set k 1 0 2\r\nhi\r\n"), "STORED\r\n");
          assertEquals(await c.call("get k\r\n", "END\r\n"), "VALUE k 1 2\r\nhi\r\nEND\r\n");
        } finally {
          c.close();
        }
      },
    );
    await t.step("answers from one read share one slot: only the last is sent", async () => {
      assertEquals(
        await untilEnd(port, "get a\r\nset a 0 0 5\r\nu1 p1\r\nget zz\r\n"),
        "STORED\r\nEND\r\n",
      );
    });
    await t.step(
      "2 KB without a newline, or a token over 16 KB, close the connection",
      async () => {
        for (const junk of ["x".repeat(2100), `set a 0 0 20000\r\n${"x".repeat(17000)}`]) {
          const c = await RawClient.connect(port);
          try {
            await c.send(junk);
            assert(await c.closedByServer());
            assertEquals(c.take().length, 0);
          } finally {
            c.close();
          }
        }
      },
    );
  });
});

Deno.test("ascii authentication counts auth_cmds and auth_errors", async () => {
  await withAsciiAuth(async (port) => {
    const c = await RawClient.connect(port);
    try {
      assertEquals(
        await c.call("set a 0 0 5\r\nu1 p0\r\n"),
        "CLIENT_ERROR authentication failure\r\n",
      );
      const stats = await c.call("set a 0 0 5\r\nu1 p1\r\nstats\r\n", "END\r\n");
      assertStringIncludes(stats, "STAT auth_cmds 2\r\n");
      assertStringIncludes(stats, "STAT auth_errors 1\r\n");
    } finally {
      c.close();
    }
  });
});

Deno.test({
  name: "ascii authentication answers as memcached -Y does",
  ignore: !haveMemcached(),
  fn: async (t) => {
    const answers = async (memcached: boolean) => {
      const out: string[] = [];
      await withAsciiAuth(async (port) => {
        for (const s of UNAUTHENTICATED_STREAMS) out.push(await firstLine(port, s));
        for (const s of AUTHENTICATING_STREAMS) out.push(await untilEnd(port, s));
      }, memcached);
      return out;
    };
    const theirs = await answers(true);
    const ours = await answers(false);
    const streams = [...UNAUTHENTICATED_STREAMS, ...AUTHENTICATING_STREAMS];
    for (let i = 0; i < streams.length; i++) {
      await t.step(JSON.stringify(streams[i]), () => assertEquals(ours[i], theirs[i]));
    }
  },
});
