/**
 * TLS (`-Z -o ssl_chain_cert=FILE,ssl_key=FILE`) with a throwaway self-signed certificate made
 * by openssl: real TLS clients (`openssl s_client` fed the seed transcript, pymemcache with an
 * `ssl` context, Deno's own TLS client for pipelined and large traffic), a plaintext client on
 * the TLS port failing cleanly without disturbing the others, plaintext and TLS listeners side by
 * side (`-l notls:`), the `stats settings` rows checked against what the listener really does
 * (TLS 1.2 minimum, session resumption), the start-up errors memcached gives, and the warnings
 * for memcached's TLS options Deno cannot honour.
 */
import { parseConfig } from "../lib/config.ts";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./helpers/assert.ts";
import { RawClient } from "./helpers/client.ts";
import { freePort, spawnMemg, startMemg } from "./helpers/server.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const dec = new TextDecoder();
const enc = new TextEncoder();

/** The permission flags of `deno task start`, read from deno.json. */
async function startFlags(): Promise<string[]> {
  const task: string = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks.start;
  const words = task.split(/\s+/);
  assertEquals(words.slice(0, 2), ["deno", "run"], task);
  assertEquals(words[words.length - 1], "main.ts", task);
  return words.slice(2, -1);
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command with `input` on stdin; killed (and failing) after `timeoutMs`. */
async function run(cmd: string, args: string[], input = "", timeoutMs = 10_000): Promise<Run> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(cmd, {
      args,
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`${cmd} is not installed (Debian package: ${cmd.split("/").pop()})`);
    }
    throw e;
  }
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    const w = child.stdin.getWriter();
    await w.write(enc.encode(input));
    await w.close();
    const out = await child.output();
    assert(out.signal === null, `${cmd} ${args.join(" ")} timed out`);
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

/** A throwaway self-signed certificate for localhost and 127.0.0.1, valid for a day. */
interface Cert {
  dir: string;
  certFile: string;
  keyFile: string;
  certPem: string;
}

async function makeCert(kind: "rsa" | "ec" = "rsa"): Promise<Cert> {
  const dir = await Deno.makeTempDir({ prefix: "memg-tls-" });
  const certFile = `${dir}/cert.pem`;
  const keyFile = `${dir}/key.pem`;
  const key = kind === "rsa"
    ? ["-newkey", "rsa:2048"]
    : ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
  const out = await run("openssl", [
    "req",
    "-x509",
    ...key,
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-addext",
    "basicConstraints=critical,CA:FALSE",
    "-days",
    "1",
    "-keyout",
    keyFile,
    "-out",
    certFile,
  ]);
  assertEquals(out.code, 0, out.stderr);
  return { dir, certFile, keyFile, certPem: await Deno.readTextFile(certFile) };
}

function tlsArgs(cert: Cert): string[] {
  return ["-Z", "-o", `ssl_chain_cert=${cert.certFile},ssl_key=${cert.keyFile}`];
}

/** A TLS client that verifies memg's certificate against the throwaway CA. */
class TlsClient {
  readonly conn: Deno.TlsConn;
  #text = "";
  #chunk = new Uint8Array(64 * 1024);

  private constructor(conn: Deno.TlsConn) {
    this.conn = conn;
  }

  static async connect(port: number, cert: Cert): Promise<TlsClient> {
    return new TlsClient(
      await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [cert.certPem] }),
    );
  }

  async send(data: string): Promise<void> {
    const b = enc.encode(data);
    let off = 0;
    while (off < b.length) off += await this.conn.write(b.subarray(off));
  }

  /** Reads until the text received ends with `suffix`, then takes it all. */
  async readUntil(suffix: string): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`timed out; have ${this.#text.slice(-200)}`)),
        5000,
      );
    });
    try {
      while (!this.#text.endsWith(suffix)) {
        const n = await Promise.race([this.conn.read(this.#chunk), timeout]);
        if (n === null) throw new Error(`closed; have ${this.#text.slice(-200)}`);
        this.#text += dec.decode(this.#chunk.subarray(0, n));
      }
    } finally {
      clearTimeout(timer);
    }
    const got = this.#text;
    this.#text = "";
    return got;
  }

  async call(request: string, suffix = "\r\n"): Promise<string> {
    await this.send(request);
    return await this.readUntil(suffix);
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // closed already
    }
  }
}

function statRows(reply: string): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of reply.split("\r\n")) {
    const m = /^STAT (\S+) (.*)$/.exec(line);
    if (m !== null) rows.set(m[1], m[2]);
  }
  return rows;
}

const SEED = "set greeting 0 0 11\r\nHello World\r\nget greeting\r\nquit\r\n";
const SEED_REPLY = "STORED\r\nVALUE greeting 0 11\r\nHello World\r\nEND\r\n";

/** `openssl s_client` verifying memg's certificate; its stdout is exactly what memg sent. */
function sClient(port: number, cert: Cert, input: string, extra: string[] = []): Promise<Run> {
  return run("openssl", [
    "s_client",
    "-connect",
    `127.0.0.1:${port}`,
    "-CAfile",
    cert.certFile,
    "-verify_return_error",
    "-verify_ip",
    "127.0.0.1",
    "-quiet",
    ...extra,
  ], input);
}

const PYMEMCACHE = `
import ssl, sys
from pymemcache.client.base import Client
ctx = ssl.create_default_context(cafile=sys.argv[2])
c = Client(("127.0.0.1", int(sys.argv[1])), tls_context=ctx, connect_timeout=5, timeout=5)
assert c.set("py", b"over tls", noreply=False)
print(c.get("py").decode())
print(c.stats("settings")[b"ssl_enabled"].decode())
c.close()
`;

Deno.test("TLS listener: real clients over TLS, plaintext refused cleanly", async (t) => {
  const cert = await makeCert();
  const memg = startMemg(tlsArgs(cert));
  try {
    await t.step("openssl s_client runs the seed transcript", async () => {
      const out = await sClient(memg.port, cert, SEED);
      assertEquals(out.stdout, SEED_REPLY, out.stderr);
    });

    await t.step(
      "pymemcache with an ssl context (certificate verified) sets and gets",
      async () => {
        const out = await run("/usr/bin/python3", [
          "-c",
          PYMEMCACHE,
          String(memg.port),
          cert.certFile,
        ]);
        assertEquals(out.code, 0, out.stderr);
        assertEquals(out.stdout, "over tls\nyes\n");
      },
    );

    await t.step("a plaintext client fails cleanly and does not disturb a TLS client", async () => {
      const tls = await TlsClient.connect(memg.port, cert);
      const plain = await RawClient.connect(memg.port);
      try {
        assertEquals(await tls.call("set kept 0 0 4\r\nsafe\r\n"), "STORED\r\n");
        await plain.send("version\r\nget kept\r\n");
        assert(await plain.closedByServer(), "memg kept a plaintext connection open on TLS");
        const sent = plain.text();
        assert(!sent.includes("VERSION") && !sent.includes("safe"), JSON.stringify(sent));
        assertEquals(
          await tls.call("get kept\r\n", "END\r\n"),
          "VALUE kept 0 4\r\nsafe\r\nEND\r\n",
        );
        const stats = statRows(await tls.call("stats\r\n", "END\r\n"));
        assertEquals(stats.get("curr_connections"), "1");
      } finally {
        plain.close();
        tls.close();
      }
      const again = await TlsClient.connect(memg.port, cert);
      try {
        assertEquals(
          await again.call("get kept\r\n", "END\r\n"),
          "VALUE kept 0 4\r\nsafe\r\nEND\r\n",
        );
      } finally {
        again.close();
      }
    });

    await t.step("large values and a long pipeline come back intact over TLS", async () => {
      const tls = await TlsClient.connect(memg.port, cert);
      try {
        const big = "x".repeat(512 * 1024 - 7) + "/the-end";
        assertEquals(await tls.call(`set big 0 0 ${big.length}\r\n${big}\r\n`), "STORED\r\n");
        const got = await tls.call("get big\r\n", "END\r\n");
        assertEquals(got, `VALUE big 0 ${big.length}\r\n${big}\r\nEND\r\n`);
        let batch = "";
        let expected = "";
        for (let i = 0; i < 2000; i++) {
          batch += `set k${i} 0 0 ${String(i).length}\r\n${i}\r\nget k${i}\r\n`;
          expected += `STORED\r\nVALUE k${i} 0 ${String(i).length}\r\n${i}\r\nEND\r\n`;
        }
        assertEquals(await tls.call(batch + "mn\r\n", "MN\r\n"), expected + "MN\r\n");
      } finally {
        tls.close();
      }
    });

    await t.step("an EC key works as well as RSA", async () => {
      const ec = await makeCert("ec");
      const other = startMemg(tlsArgs(ec));
      try {
        const out = await sClient(other.port, ec, SEED);
        assertEquals(out.stdout, SEED_REPLY, out.stderr);
      } finally {
        await other.close();
        await Deno.remove(ec.dir, { recursive: true });
      }
    });

    await t.step("stats settings tells the truth about the TLS listener", async () => {
      const tls = await TlsClient.connect(memg.port, cert);
      let rows: Map<string, string>;
      try {
        rows = statRows(await tls.call("stats settings\r\n", "END\r\n"));
      } finally {
        tls.close();
      }
      assertEquals(rows.get("ssl_enabled"), "yes");
      assertEquals(rows.get("ssl_chain_cert"), cert.certFile);
      assertEquals(rows.get("ssl_key"), cert.keyFile);
      assertEquals(rows.get("ssl_verify_mode"), "0");
      assertEquals(rows.get("ssl_ca_cert"), "NULL");
      assertEquals(rows.get("ssl_kernel_tls"), "no");
      // ssl_min_version tlsv1.2: TLS 1.2 and 1.3 are served, TLS 1.1 is refused.
      assertEquals(rows.get("ssl_min_version"), "tlsv1.2");
      for (const version of ["-tls1_2", "-tls1_3"]) {
        const out = await sClient(memg.port, cert, "version\r\nquit\r\n", [version]);
        assertMatch(out.stdout, /^VERSION /, `${version}: ${out.stderr}`);
      }
      const old = await sClient(memg.port, cert, "version\r\nquit\r\n", [
        "-tls1_1",
        "-cipher",
        "DEFAULT@SECLEVEL=0",
      ]);
      assertEquals(old.stdout, "");
      assert(old.code !== 0, "TLS 1.1 was accepted");
      // ssl_session_cache yes: a TLS 1.2 session is resumed on reconnect.
      assertEquals(rows.get("ssl_session_cache"), "yes");
      const again = await run("openssl", [
        "s_client",
        "-connect",
        `127.0.0.1:${memg.port}`,
        "-CAfile",
        cert.certFile,
        "-tls1_2",
        "-reconnect",
      ]);
      assertMatch(again.stdout, /^Reused, TLSv1\.2/m, again.stdout);
    });
  } finally {
    await memg.close();
    await Deno.remove(cert.dir, { recursive: true });
  }
});

Deno.test("-l ADDR and -l notls:ADDR: TLS and plaintext listeners side by side", async () => {
  const cert = await makeCert();
  const tlsPort = freePort();
  const plainPort = freePort();
  const memg = await spawnMemg([
    ...tlsArgs(cert),
    "-l",
    `127.0.0.1:${tlsPort}`,
    "-l",
    `notls:127.0.0.1:${plainPort}`,
  ], await startFlags());
  try {
    assertEquals(memg.port, plainPort);
    const lines = memg.stdout.join("\n");
    assertMatch(lines, new RegExp(`listening on tls:127\\.0\\.0\\.1:${tlsPort}$`, "m"));
    assertMatch(lines, new RegExp(`listening on tcp:127\\.0\\.0\\.1:${plainPort}$`, "m"));

    const out = await sClient(tlsPort, cert, SEED);
    assertEquals(out.stdout, SEED_REPLY, out.stderr);
    const plain = await RawClient.connect(plainPort);
    try {
      assertEquals(
        await plain.call("get greeting\r\n", "END\r\n"),
        "VALUE greeting 0 11\r\nHello World\r\nEND\r\n",
      );
      const rows = statRows(await plain.call("stats settings\r\n", "END\r\n"));
      assertEquals(rows.get("inter"), `127.0.0.1:${tlsPort},notls:127.0.0.1:${plainPort}`);
      assertEquals(rows.get("ssl_enabled"), "yes");
    } finally {
      plain.close();
    }
    const stray = await RawClient.connect(tlsPort);
    try {
      await stray.send("version\r\n");
      assert(await stray.closedByServer(), "plaintext kept open on the TLS listener");
      assert(!stray.text().includes("VERSION"), stray.text());
    } finally {
      stray.close();
    }
    assertEquals((await memg.stop()).code, 0);
  } finally {
    await memg.close();
    await Deno.remove(cert.dir, { recursive: true });
  }
});

Deno.test("TLS start-up errors stop memg with memcached's messages and exit 64", async (t) => {
  const cert = await makeCert();
  const other = await makeCert("ec");
  const flags = await startFlags();
  const memg = (...args: string[]) =>
    run(Deno.execPath(), ["run", ...flags, "main.ts", "-p", "0", ...args]);
  try {
    await t.step("a certificate file that cannot be read", async () => {
      const out = await memg(
        "-Z",
        "-o",
        `ssl_chain_cert=${cert.dir}/nope.pem,ssl_key=${cert.keyFile}`,
      );
      assertEquals(out.code, 64, out.stderr);
      assertStringIncludes(
        out.stderr,
        `Error loading the certificate chain: ${cert.dir}/nope.pem :`,
      );
      assertEquals(out.stdout, "");
    });
    await t.step("-Z without ssl_key", async () => {
      const out = await memg("-Z", "-o", `ssl_chain_cert=${cert.certFile}`);
      assertEquals(out.code, 64, out.stderr);
      assertStringIncludes(out.stderr, "Error loading the key: (null)");
    });
    await t.step("a key file with no private key in it", async () => {
      const out = await memg(
        "-Z",
        "-o",
        `ssl_chain_cert=${cert.certFile},ssl_key=${cert.certFile}`,
      );
      assertEquals(out.code, 64, out.stderr);
      assertStringIncludes(out.stderr, `Error loading the key: ${cert.certFile} :`);
    });
    await t.step("a key that does not match the certificate", async () => {
      const out = await memg(
        "-Z",
        "-o",
        `ssl_chain_cert=${cert.certFile},ssl_key=${other.keyFile}`,
      );
      assertEquals(out.code, 64, out.stderr);
      assertStringIncludes(out.stderr, "Error loading the certificate chain and key");
      assertEquals(out.stdout, "");
    });
    await t.step("notls: without -Z is refused, as memcached refuses it", async () => {
      const out = await memg("-l", "notls:127.0.0.1");
      assertEquals(out.code, 64, out.stderr);
      assertStringIncludes(out.stderr, "'notls' option is valid only when SSL is enabled");
    });
  } finally {
    await Deno.remove(cert.dir, { recursive: true });
    await Deno.remove(other.dir, { recursive: true });
  }
});

Deno.test("memcached's TLS options Deno cannot honour are accepted with a warning naming why", () => {
  const warn = (opt: string) => {
    const { config } = parseConfig(["-o", opt]);
    return config.warnings;
  };
  const cases: Array<[string, RegExp]> = [
    ["ssl_verify_mode=2", /client certificates are neither requested nor verified/],
    ["ssl_ca_cert=/etc/ca.pem", /cannot verify client certificates/],
    ["ssl_ciphers=HIGH", /cipher suites cannot be chosen/],
    ["ssl_min_version=3", /accepts TLS 1\.2 and TLS 1\.3/],
    ["ssl_keyformat=2", /only PEM keys/],
    ["ssl_wbuf_size=32", /no separate TLS write buffer/],
    ["ssl_session_cache", /always keeps a server-side session cache/],
    ["ssl_kernel_tls", /kernel TLS offload is not available/],
  ];
  for (const [opt, why] of cases) {
    const warnings = warn(opt);
    assertEquals(warnings.length, 1, opt);
    assertMatch(warnings[0], why);
    assert(warnings[0].startsWith(`-o ${opt.split("=")[0]}: `), warnings[0]);
  }
  // Values that ask for exactly what memg does need no warning.
  for (const opt of ["ssl_verify_mode=0", "ssl_keyformat=1", "ssl_min_version=2"]) {
    assertEquals(warn(opt), [], opt);
  }
});
