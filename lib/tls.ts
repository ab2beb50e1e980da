/**
 * TLS (`-Z`): the certificate chain and private key named by
 * `-o ssl_chain_cert=FILE,ssl_key=FILE`, read once at start-up, served by Deno's TLS listener
 * (rustls). As in memcached, a `-l notls:ADDR` listener stays plaintext and a unix socket (`-s`)
 * is never TLS. What memcached's OpenSSL offers and Deno's listener cannot do is named, option by
 * option, by `tlsOptionWarning`.
 *
 * @module
 */
import type { Config } from "./config.ts";

/** A certificate or key that cannot be used; memg stops with its message and exit status 64. */
export class TlsFileError extends Error {}

/** The PEM texts every TLS listener serves with, and the files they were read from. */
export interface TlsCredentials {
  readonly cert: string;
  readonly key: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/** The `-l` prefix that keeps one listener plaintext while TLS is on (memcached's `notls:`). */
export const NOTLS = "notls:";

/** Why each TLS `-o` sub-option memcached knows cannot be honoured here. */
const UNSUPPORTED: ReadonlyMap<string, string> = new Map(Object.entries({
  ssl_verify_mode: "client certificates are neither requested nor verified " +
    "(Deno's TLS listener has no client authentication); every client is accepted as with mode 0",
  ssl_ca_cert: "not used; memg cannot verify client certificates " +
    "(Deno's TLS listener has no client authentication)",
  ssl_ciphers: "cipher suites cannot be chosen; Deno's TLS (rustls) offers its own fixed list " +
    "of modern AEAD suites",
  ssl_min_version: "the TLS versions cannot be chosen; memg accepts TLS 1.2 and TLS 1.3 and " +
    "refuses older versions",
  ssl_keyformat: "only PEM keys are read (no DER, no ENGINE)",
  ssl_wbuf_size: "memg has no separate TLS write buffer to size",
  ssl_session_cache: "has no effect; Deno's TLS always keeps a server-side session cache " +
    "(TLS 1.2 sessions resume)",
  ssl_kernel_tls: "kernel TLS offload is not available in Deno",
}));

/** Values of those sub-options that ask for exactly what memg does (no warning then). */
const ALREADY: ReadonlyMap<string, string> = new Map([
  ["ssl_verify_mode", "0"],
  ["ssl_keyformat", "1"],
  ["ssl_min_version", "2"],
]);

/**
 * The start-up warning for a TLS `-o` sub-option (`ssl_*`) memg cannot honour, saying exactly
 * what is not supported; null when `value` asks for what memg does anyway or `name` is not one.
 */
export function tlsOptionWarning(name: string, value: string): string | null {
  const reason = UNSUPPORTED.get(name);
  if (reason === undefined || ALREADY.get(name) === value) return null;
  return `-o ${name}: ${reason}`;
}

const CERTIFICATE = /-----BEGIN CERTIFICATE-----/;
const PRIVATE_KEY = /-----BEGIN (?:RSA |EC )?PRIVATE KEY-----/;

function why(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Reads one PEM file, checking it holds what memg needs from it (memcached's messages). */
function readPem(path: string | null, what: string, marker: RegExp, needs: string): string {
  if (path === null) {
    throw new TlsFileError(`Error loading the ${what}: (null) : -Z needs -o ${needs}`);
  }
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new TlsFileError(`Error loading the ${what}: ${path} : ${why(e)}`);
  }
  if (!marker.test(text)) {
    throw new TlsFileError(`Error loading the ${what}: ${path} : no ${needs} in PEM format`);
  }
  return text;
}

/**
 * Reads the certificate chain and key `-Z` needs; null when TLS is off. Throws `TlsFileError`
 * when a file is not named, cannot be read, or holds no PEM certificate / unencrypted PEM key.
 */
export function loadTls(config: Config): TlsCredentials | null {
  if (!config.tls) return null;
  const certFile = config.sslChainCert;
  const keyFile = config.sslKey;
  const cert = readPem(certFile, "certificate chain", CERTIFICATE, "ssl_chain_cert=FILE");
  const key = readPem(keyFile, "key", PRIVATE_KEY, "ssl_key=FILE (an unencrypted private key)");
  return { cert, key, certFile: certFile!, keyFile: keyFile! };
}

/**
 * Opens a TLS listener. A certificate or key rustls refuses (no usable certificate, a key that
 * does not match it) is a `TlsFileError` naming both files; address errors pass through.
 */
export function listenTls(tls: TlsCredentials, hostname: string, port: number): Deno.TlsListener {
  try {
    return Deno.listenTls({ hostname, port, cert: tls.cert, key: tls.key });
  } catch (e) {
    if (e instanceof Deno.errors.InvalidData || why(e).includes("KeyMismatch")) {
      throw new TlsFileError(
        `Error loading the certificate chain and key: ${tls.certFile}, ${tls.keyFile} : ${why(e)}`,
      );
    }
    throw e;
  }
}

/**
 * The `ssl_*` rows of `stats settings`, in memcached's order, each saying what memg does: the
 * files given, and the fixed behaviour of Deno's TLS where memcached has a setting (no client
 * verification, PEM only, rustls' own ciphers, a session cache, no kernel TLS, TLS 1.2 at least).
 * memcached's `ssl_wbuf_size` is left out: memg has no such buffer.
 */
export function tlsSettingsRows(config: Config): Array<[string, string]> {
  return [
    ["ssl_enabled", config.tls ? "yes" : "no"],
    ["ssl_chain_cert", config.sslChainCert ?? "(null)"],
    ["ssl_key", config.sslKey ?? "(null)"],
    ["ssl_verify_mode", "0"],
    ["ssl_keyformat", "1"],
    ["ssl_ciphers", "NULL"],
    ["ssl_ca_cert", "NULL"],
    ["ssl_session_cache", "yes"],
    ["ssl_kernel_tls", "no"],
    ["ssl_min_version", "tlsv1.2"],
  ];
}
