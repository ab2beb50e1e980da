/**
 * The users memg accepts: memcached's two password files, read once at start-up, and the
 * checks the protocols make against them — SASL PLAIN for the binary protocol (`-S`, the file
 * named by `--sasl-pwdb` or `$MEMCACHED_SASL_PWDB`) and the ascii `set` token (`-Y FILE`).
 * Users and passwords stay bytes; nothing is decoded.
 *
 * @module
 */
import type { Config } from "./config.ts";

/** A password file that cannot be used; start-up fails with its message. */
export class AuthFileError extends Error {}

/** A set of user/password pairs, compared as bytes. */
export class Credentials {
  readonly #users: Uint8Array[] = [];
  readonly #passwords: Uint8Array[] = [];

  /** Number of user/password pairs. */
  get size(): number {
    return this.#users.length;
  }

  /** Adds a pair; a user may appear more than once (each of its passwords is then accepted). */
  add(user: Uint8Array, password: Uint8Array): void {
    this.#users.push(user);
    this.#passwords.push(password);
  }

  /**
   * Whether `buf[userOff, +userLen)` / `buf[passOff, +passLen)` is one of the pairs. Every
   * password byte is compared, so the time taken does not tell where a guess went wrong.
   */
  check(
    buf: Uint8Array,
    userOff: number,
    userLen: number,
    passOff: number,
    passLen: number,
  ): boolean {
    let ok = false;
    for (let i = 0; i < this.#users.length; i++) {
      const user = this.#users[i];
      if (user.length !== userLen || !equal(user, 0, buf, userOff, userLen)) continue;
      const pass = this.#passwords[i];
      if (pass.length !== passLen) continue;
      let diff = 0;
      for (let k = 0; k < passLen; k++) diff |= pass[k] ^ buf[passOff + k];
      if (diff === 0) ok = true;
    }
    return ok;
  }

  /**
   * Checks a SASL PLAIN message (RFC 4616: `authzid NUL authcid NUL password`) as Cyrus SASL
   * does for memcached: exactly two NULs, a non-empty user and password, and an authzid that is
   * empty or the user itself.
   */
  checkPlain(buf: Uint8Array, off: number, len: number): boolean {
    const end = off + len;
    const nul1 = buf.indexOf(0, off);
    if (nul1 < 0 || nul1 >= end) return false;
    const nul2 = buf.indexOf(0, nul1 + 1);
    if (nul2 < 0 || nul2 >= end) return false;
    const extra = buf.indexOf(0, nul2 + 1);
    if (extra >= 0 && extra < end) return false;
    const userOff = nul1 + 1;
    const userLen = nul2 - userOff;
    const passLen = end - nul2 - 1;
    const authzLen = nul1 - off;
    if (userLen === 0 || passLen === 0) return false;
    if (authzLen !== 0 && (authzLen !== userLen || !equal(buf, off, buf, userOff, userLen))) {
      return false;
    }
    return this.check(buf, userOff, userLen, nul2 + 1, passLen);
  }
}

function equal(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

const latin1 = new TextDecoder("latin1");
const LF = 10;
const CR = 13;
const COLON = 58;

/** Splits `bytes` into lines on `\n`; a last line without `\n` still counts. */
function lines(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  while (start < bytes.length) {
    let nl = bytes.indexOf(LF, start);
    if (nl < 0) nl = bytes.length;
    out.push(bytes.subarray(start, nl));
    start = nl + 1;
  }
  return out;
}

/** Index of the first of `stops` in `line` at or after `from`, or the line's length. */
function endAt(line: Uint8Array, from: number, stops: number[]): number {
  for (let i = from; i < line.length; i++) if (stops.includes(line[i])) return i;
  return line.length;
}

/**
 * Parses memcached's `-Y` file (authfile.c): every line is `user:password`; the password runs
 * to the end of the line (a `\r` or NUL ends it early, so `:` may be part of it). A line with
 * no `:` — a blank line included — makes the whole file unusable, as in memcached.
 */
export function parseAuthFile(bytes: Uint8Array, name: string): Credentials {
  const creds = new Credentials();
  for (const line of lines(bytes)) {
    const colon = line.indexOf(COLON);
    if (colon < 0) {
      throw new AuthFileError(
        `Authfile [${name}] has a malformed entry. Should be 'user:password'`,
      );
    }
    const passEnd = endAt(line, colon + 1, [CR, 0]);
    creds.add(line.slice(0, colon), line.slice(colon + 1, passEnd));
  }
  return creds;
}

/**
 * Parses a SASL password database as memcached's `MEMCACHED_SASL_PWDB` support reads it
 * (sasl_defs.c): `user:password` lines, the password ending at `:`, `\r` or the end of the line
 * (later fields are ignored); only the first line of a user counts; lines without `:` are
 * skipped.
 */
export function parseSaslPwdb(bytes: Uint8Array): Credentials {
  const creds = new Credentials();
  const seen = new Set<string>();
  for (const line of lines(bytes)) {
    const colon = line.indexOf(COLON);
    if (colon < 0) continue;
    const user = latin1.decode(line.subarray(0, colon));
    if (seen.has(user)) continue;
    seen.add(user);
    creds.add(line.slice(0, colon), line.slice(colon + 1, endAt(line, colon + 1, [COLON, CR, 0])));
  }
  return creds;
}

function read(path: string, what: string): Uint8Array {
  try {
    return Deno.readFileSync(path);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new AuthFileError(`Could not open ${what} [${path}] for reading: ${why}`);
  }
}

/** Who may use the server, per protocol; null where that protocol needs no authentication. */
export interface Authentication {
  /** SASL PLAIN users for the binary protocol (`-S`). */
  readonly sasl: Credentials | null;
  /** Users of the ascii `set` authentication (`-Y`). */
  readonly ascii: Credentials | null;
}

/** No authentication on either protocol. */
export const OPEN: Authentication = { sasl: null, ascii: null };

/**
 * Reads the password files `config` names. Throws `AuthFileError` when one cannot be read or
 * parsed, or when `-S` is given without a password file (memg has no Cyrus sasldb to fall back
 * on).
 */
export function loadAuthentication(config: Config): Authentication {
  let sasl: Credentials | null = null;
  if (config.sasl && config.protocol !== "ascii") {
    if (config.saslPwdb === null) {
      throw new AuthFileError(
        "-S needs a password file of user:password lines: --sasl-pwdb=FILE or MEMCACHED_SASL_PWDB",
      );
    }
    sasl = parseSaslPwdb(read(config.saslPwdb, "SASL password file"));
  }
  const file = config.authFile;
  const ascii = file === null ? null : parseAuthFile(read(file, "authfile"), file);
  return { sasl, ascii };
}
