/**
 * The flag tokens of a meta command, read as memcached 1.6.18's `_meta_flag_preparse` reads
 * them: every command accepts the same flag set (a flag a command does not use is ignored),
 * a repeated flag or a first byte ≥ 127 is a "duplicate flag", an unknown one an "invalid
 * flag"; both stop parsing at once. A bad flag argument is remembered and parsing goes on,
 * so the last bad argument names the error (a bad `F` keeps the previous message).
 *
 * One `MetaFlags` lives per connection and is reset by each `parse`, so parsing allocates
 * nothing (except a `BigInt` for `C`, `D` and `J` arguments).
 *
 * @module
 */
import { bytes } from "../reply.ts";
import { absoluteExptime } from "../store/store.ts";
import { decodeBase64 } from "./base64.ts";
import { parseI32, parseU32, parseU64 } from "./numbers.ts";
import type { Tokens } from "./tokens.ts";

/** The errors flag parsing can end with, worded as memcached words them. */
export const FlagError = {
  BAD_FORMAT: bytes("CLIENT_ERROR bad command line format\r\n"),
  DUPLICATE: bytes("CLIENT_ERROR duplicate flag\r\n"),
  INVALID: bytes("CLIENT_ERROR invalid flag\r\n"),
  BAD_TOKEN: bytes("CLIENT_ERROR bad token in command line format\r\n"),
  DECODE: bytes("CLIENT_ERROR error decoding key\r\n"),
  M_LENGTH: bytes("CLIENT_ERROR incorrect length for M token\r\n"),
  INITIAL: bytes("CLIENT_ERROR invalid numeric initial value\r\n"),
  DELTA: bytes("CLIENT_ERROR invalid numeric delta value\r\n"),
} as const;

/** The longest key memcached accepts (the encoded token, for `b` keys). */
const KEY_MAX = 250;

/** Flag bytes. */
const F = {
  b: 98,
  N: 78,
  T: 84,
  R: 82,
  l: 108,
  O: 79,
  P: 80,
  L: 76,
  k: 107,
  s: 115,
  t: 116,
  c: 99,
  f: 102,
  v: 118,
  h: 104,
  u: 117,
  q: 113,
  F: 70,
  C: 67,
  M: 77,
  J: 74,
  D: 68,
  I: 73,
} as const;

/** The parsed flags of the current meta command. */
export class MetaFlags {
  /** The reply for the failed `parse`. */
  error: Uint8Array = FlagError.BAD_FORMAT;
  /** `u`: do not bump the item. */
  noUpdate = false;
  /** `N T R l h`: memcached bumps the item after answering rather than on lookup. */
  locked = false;
  /** `N`: create the item on a miss. */
  vivify = false;
  /** `v`: return the value. */
  value = false;
  /** `I`: invalidate (mark stale). */
  setStale = false;
  /** `q`: quiet nominal replies. */
  noReply = false;
  /** `C` was given. */
  hasCas = false;
  /** `T` was given. */
  newTtl = false;
  /** `b`: the key was base64 and `key` holds the decoded bytes. */
  keyBinary = false;
  /** `M`: the mode byte, or 0. */
  mode = 0;
  /** `T` as an absolute store time (0 when absent). */
  exptime = 0;
  /** `N` as an absolute store time. */
  autovivExptime = 0;
  /** `R` as an absolute store time. */
  recacheTime = 0;
  /** `F`: client flags (u32). */
  clientFlags = 0;
  /** `C`: the CAS to compare (values beyond 2^53 become `MAX_SAFE_INTEGER`, which no item has). */
  cas = 0;
  /** `D`: the delta (default 1). */
  delta = 1n;
  /** `J`: the initial value (default 0). */
  initial = 0n;
  /** The key: `key[keyOff, keyOff + keyLen)` (decoded when `keyBinary`). */
  key: Uint8Array = new Uint8Array(0);
  keyOff = 0;
  keyLen = 0;

  readonly #decoded = new Uint8Array(KEY_MAX);
  readonly #seen = new Uint8Array(127);

  /**
   * Reads flag tokens `first..` of `tokens` (token 1 is the key); relative times are taken
   * from `now`. Returns false with `error` set when memcached would refuse the command.
   */
  parse(tokens: Tokens, first: number, now: number): boolean {
    this.#reset(tokens);
    const buf = tokens.buf;
    let failed = false;
    for (let i = first; i < tokens.count; i++) {
      const s = tokens.start[i];
      const e = tokens.end[i];
      const o = buf[s];
      if (o >= 127 || this.#seen[o] !== 0) {
        this.error = FlagError.DUPLICATE;
        return false;
      }
      this.#seen[o] = 1;
      switch (o) {
        case F.b:
          this.keyBinary = true;
          if (!this.decodeKey(tokens)) {
            this.error = FlagError.DECODE;
            failed = true;
          }
          break;
        case F.N:
        case F.T:
        case F.R: {
          this.locked = true;
          const n = parseI32(buf, s + 1, e);
          if (n === null) {
            this.error = FlagError.BAD_TOKEN;
            failed = true;
          } else if (o === F.N) {
            this.vivify = true;
            this.autovivExptime = absoluteExptime(n, now);
          } else if (o === F.T) {
            this.exptime = absoluteExptime(n, now);
            this.newTtl = true;
          } else {
            this.recacheTime = absoluteExptime(n, now);
          }
          break;
        }
        case F.l:
        case F.h:
          this.locked = true;
          break;
        case F.O:
        case F.P:
        case F.L:
        case F.k:
        case F.s:
        case F.t:
        case F.c:
        case F.f:
          break;
        case F.v:
          this.value = true;
          break;
        case F.u:
          this.noUpdate = true;
          break;
        case F.q:
          this.noReply = true;
          break;
        case F.F: {
          const n = parseU32(buf, s + 1, e);
          if (n === null) failed = true; // memcached leaves the message as it was
          else this.clientFlags = n;
          break;
        }
        case F.C: {
          const n = parseU64(buf, s + 1, e);
          if (n === null) {
            this.error = FlagError.BAD_TOKEN;
            failed = true;
          } else {
            this.hasCas = true;
            this.cas = n > MAX_SAFE ? Number.MAX_SAFE_INTEGER : Number(n);
          }
          break;
        }
        case F.M:
          if (e - s !== 2) {
            this.error = FlagError.M_LENGTH;
            failed = true;
          } else {
            this.mode = buf[s + 1];
          }
          break;
        case F.J: {
          const n = parseU64(buf, s + 1, e);
          if (n === null) {
            this.error = FlagError.INITIAL;
            failed = true;
          } else {
            this.initial = n;
          }
          break;
        }
        case F.D: {
          const n = parseU64(buf, s + 1, e);
          if (n === null) {
            this.error = FlagError.DELTA;
            failed = true;
          } else {
            this.delta = n;
          }
          break;
        }
        case F.I:
          this.setStale = true;
          break;
        default:
          this.error = FlagError.INVALID;
          return false;
      }
    }
    return !failed;
  }

  /**
   * Base64-decodes key token 1 into this object's own buffer and points `key` at it; false
   * (and an empty key) when memcached's decoder refuses it.
   */
  decodeKey(tokens: Tokens): boolean {
    this.keyLen = decodeBase64(tokens.buf, tokens.start[1], tokens.len(1), this.#decoded, 0);
    this.key = this.#decoded;
    this.keyOff = 0;
    return this.keyLen !== 0;
  }

  #reset(tokens: Tokens): void {
    this.#seen.fill(0);
    this.error = FlagError.BAD_FORMAT;
    this.noUpdate = false;
    this.locked = false;
    this.vivify = false;
    this.value = false;
    this.setStale = false;
    this.noReply = false;
    this.hasCas = false;
    this.newTtl = false;
    this.keyBinary = false;
    this.mode = 0;
    this.exptime = 0;
    this.autovivExptime = 0;
    this.recacheTime = 0;
    this.clientFlags = 0;
    this.cas = 0;
    this.delta = 1n;
    this.initial = 0n;
    this.key = tokens.buf;
    this.keyOff = tokens.start[1];
    this.keyLen = tokens.len(1);
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
