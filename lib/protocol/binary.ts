/**
 * memcached's binary protocol (proto_bin.c, memcached-protocol-binary.txt): every opcode
 * memcached 1.6 serves, with its status codes, error strings, CAS and opaque handling, quiet
 * commands, and SASL PLAIN authentication (`-S`). The operations are the shared ones of
 * `Cache`; this module only translates packets to calls and results to packets.
 *
 * Headers are read with direct byte reads from the reader's buffer and keys are used in place;
 * a value is copied once from the read buffer into its item (streamed as it arrives, so a large
 * value never has to fit the read buffer) and once from the item into the reply buffer.
 *
 * A malformed request gets memcached's answer: a bad magic byte closes the connection (replies
 * memcached would not yet have sent are dropped, as its `conn_closing` drops them), lengths that
 * do not add up or a wrong extras/key shape answer UNKNOWN_COMMAND or EINVAL and close, an
 * unknown opcode answers UNKNOWN_COMMAND and skips its body, a value over `-I` answers E2BIG and
 * skips its value. Framing never slips: a body longer than an opcode uses is skipped.
 *
 * @module
 */
import type { Credentials } from "../auth.ts";
import { Arith } from "../cache.ts";
import { VERSION_STRING } from "../config.ts";
import { type Row, statsGroup } from "../report.ts";
import { bytes } from "../reply.ts";
import { AllocFailure, type ItemRef, Mode, NONE, StoreResult } from "../store/store.ts";
import { FLUSH_AT, type Protocol, type Session, Step } from "./session.ts";

/** The first byte of every request. */
export const REQUEST_MAGIC = 0x80;
/** The first byte of every response. */
export const RESPONSE_MAGIC = 0x81;
/** Size of a request or response header. */
export const HEADER_LENGTH = 24;

/** The opcodes memcached 1.6 serves. */
export const Op = {
  Get: 0x00,
  Set: 0x01,
  Add: 0x02,
  Replace: 0x03,
  Delete: 0x04,
  Increment: 0x05,
  Decrement: 0x06,
  Quit: 0x07,
  Flush: 0x08,
  GetQ: 0x09,
  Noop: 0x0a,
  Version: 0x0b,
  GetK: 0x0c,
  GetKQ: 0x0d,
  Append: 0x0e,
  Prepend: 0x0f,
  Stat: 0x10,
  SetQ: 0x11,
  AddQ: 0x12,
  ReplaceQ: 0x13,
  DeleteQ: 0x14,
  IncrementQ: 0x15,
  DecrementQ: 0x16,
  QuitQ: 0x17,
  FlushQ: 0x18,
  AppendQ: 0x19,
  PrependQ: 0x1a,
  Touch: 0x1c,
  Gat: 0x1d,
  GatQ: 0x1e,
  SaslListMechs: 0x20,
  SaslAuth: 0x21,
  SaslStep: 0x22,
  GatK: 0x23,
  GatKQ: 0x24,
} as const;

/** Response status codes. */
export const Status = {
  Ok: 0x00,
  NotFound: 0x01,
  Exists: 0x02,
  TooLarge: 0x03,
  Invalid: 0x04,
  NotStored: 0x05,
  DeltaBadval: 0x06,
  AuthError: 0x20,
  AuthContinue: 0x21,
  UnknownCommand: 0x81,
  NoMemory: 0x82,
} as const;

/** memcached's error strings (write_bin_error). */
const MESSAGE: Record<number, Uint8Array> = {
  [Status.NotFound]: bytes("Not found"),
  [Status.Exists]: bytes("Data exists for key."),
  [Status.TooLarge]: bytes("Too large."),
  [Status.Invalid]: bytes("Invalid arguments"),
  [Status.NotStored]: bytes("Not stored."),
  [Status.DeltaBadval]: bytes("Non-numeric server-side value for incr or decr"),
  [Status.AuthError]: bytes("Auth failure."),
  [Status.UnknownCommand]: bytes("Unknown command"),
  [Status.NoMemory]: bytes("Out of memory"),
};
const OOM_ITEM = bytes("Out of memory allocating item");
const OOM_NEW_ITEM = bytes("Out of memory allocating new item");
const OOM_INCR = bytes("Out of memory incrementing value");
const VERSION = bytes(VERSION_STRING);
const MECHANISMS = bytes("PLAIN");
const AUTHENTICATED = bytes("Authenticated");
const STATS_DETAIL_DUMP = "END\r\n"; // memg keeps no per-prefix stats: an empty dump

/** The longest key memcached accepts. */
const KEY_MAX = 250;
/** memcached's MAX_SASL_MECH_LEN. */
const SASL_MECH_MAX = 32;
/** Incr/decr with this expiration never create the item. */
const NO_CREATE = 0xffffffff;
const TWO_32 = 4294967296;
/** `#dispatch` needs the rest of the request before it can act. */
const WAIT = -1;

/** What each opcode is, quiet or not; 0xff for opcodes memcached does not serve. */
const BASE = new Uint8Array(256).fill(0xff);
const QUIET = new Uint8Array(256);
for (const op of Object.values(Op)) BASE[op] = op;
for (
  const [quiet, loud] of [
    [Op.GetQ, Op.Get],
    [Op.GetKQ, Op.GetK],
    [Op.SetQ, Op.Set],
    [Op.AddQ, Op.Add],
    [Op.ReplaceQ, Op.Replace],
    [Op.DeleteQ, Op.Delete],
    [Op.IncrementQ, Op.Increment],
    [Op.DecrementQ, Op.Decrement],
    [Op.QuitQ, Op.Quit],
    [Op.FlushQ, Op.Flush],
    [Op.AppendQ, Op.Append],
    [Op.PrependQ, Op.Prepend],
    [Op.GatQ, Op.Gat],
    [Op.GatKQ, Op.GatK],
  ]
) {
  BASE[quiet] = loud;
  QUIET[quiet] = 1;
}

/** Where a SASL exchange stands (Cyrus SASL's view of the connection). */
const Sasl = { Idle: 0, Continuing: 1, Done: 2 } as const;
type Sasl = typeof Sasl[keyof typeof Sasl];

function u32(b: Uint8Array, i: number): number {
  return ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
}

function u64(b: Uint8Array, i: number): bigint {
  return (BigInt(u32(b, i)) << 32n) | BigInt(u32(b, i + 4));
}

function putU32(b: Uint8Array, i: number, v: number): void {
  b[i] = v >>> 24;
  b[i + 1] = (v >>> 16) & 0xff;
  b[i + 2] = (v >>> 8) & 0xff;
  b[i + 3] = v & 0xff;
}

/** Whether `b[off, off + len)`, read as a C string, is "PLAIN" in any case. */
function isPlain(b: Uint8Array, off: number, len: number): boolean {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  if (end - off !== MECHANISMS.length) return false;
  for (let i = 0; i < MECHANISMS.length; i++) {
    if ((b[off + i] & 0xdf) !== MECHANISMS[i]) return false;
  }
  return true;
}

function latin1(b: Uint8Array, off: number, len: number): string {
  let s = "";
  for (let i = 0; i < len; i++) s += String.fromCharCode(b[off + i]);
  return s;
}

/** The binary protocol codec of one connection. */
export class BinaryProtocol implements Protocol {
  readonly session: Session;
  /** SASL users when `-S` is on, else null (SASL opcodes are then unknown commands). */
  readonly #sasl: Credentials | null;
  #authenticated = false;
  #saslState: Sasl = Sasl.Idle;
  /** The request being answered. */
  #opcode = 0;
  #opaque = 0;
  #quiet = false;
  /** A store command whose value is arriving. */
  #ref: ItemRef = NONE;
  #mode: Mode = Mode.Set;
  #cas = 0;
  #valueOff = 0;
  #valueLen = 0;
  /** Bytes of the current body still to be discarded. */
  #swallow = 0;
  /** The reply bytes memcached would already have sent (it flushes after errors and Noop). */
  #sent = 0;
  /** Digits of an incr/decr initial value. */
  readonly #digits = new Uint8Array(20);
  commands = 0;

  constructor(session: Session, sasl: Credentials | null = null) {
    this.session = session;
    this.#sasl = sasl;
  }

  close(): void {
    if (this.#ref !== NONE) this.session.cache.store.release(this.#ref);
    this.#ref = NONE;
  }

  inData(): boolean {
    return this.#ref !== NONE || this.#swallow > 0;
  }

  process(): Step {
    const r = this.session.reader;
    const out = this.session.out;
    this.#sent = out.pos;
    for (;;) {
      if (this.#swallow > 0) {
        const n = Math.min(this.#swallow, r.buffered);
        r.consume(n);
        this.#swallow -= n;
        if (this.#swallow > 0) return Step.More;
      }
      if (this.#ref !== NONE && !this.#receive()) return Step.More;
      if (out.pos >= FLUSH_AT) return Step.Flush;
      if (r.buffered < HEADER_LENGTH) return Step.More;
      const b = r.buf;
      const s = r.start;
      if (b[s] !== REQUEST_MAGIC) {
        out.pos = this.#sent;
        return Step.Close;
      }
      if (!r.full(HEADER_LENGTH + b[s + 4] + ((b[s + 2] << 8) | b[s + 3]))) return Step.More;
      this.commands++;
      const step = this.#dispatch();
      if (step === WAIT) return Step.More;
      if (step !== Step.More) return step;
    }
  }

  /** Handles the request whose header, extras and key are buffered; `WAIT` for more bytes. */
  #dispatch(): Step | typeof WAIT {
    const r = this.session.reader;
    const b = r.buf;
    const s = r.start;
    const opcode = b[s + 1];
    const keylen = (b[s + 2] << 8) | b[s + 3];
    const extlen = b[s + 4];
    const bodylen = u32(b, s + 8);
    this.#opcode = opcode;
    this.#opaque = u32(b, s + 12);
    if (keylen + extlen > bodylen) return this.#fatal(Status.UnknownCommand);
    const base = BASE[opcode];
    if (
      this.#sasl !== null && !this.#authenticated && base !== Op.SaslListMechs &&
      base !== Op.SaslAuth && base !== Op.SaslStep && base !== Op.Version
    ) {
      return this.#fatal(Status.AuthError);
    }
    if (keylen > KEY_MAX) return this.#fatal(Status.Invalid);
    this.#quiet = QUIET[opcode] === 1;
    const rest = bodylen - keylen - extlen;
    const ext = s + HEADER_LENGTH;
    const key = ext + extlen;
    const hi = u32(b, s + 16);
    const cas = hi === 0 ? u32(b, s + 20) : hi < 0x200000 ? hi * TWO_32 + u32(b, s + 20) : -1;
    switch (base) {
      case Op.Get:
      case Op.GetK:
        if (extlen !== 0 || rest !== 0 || keylen === 0) return this.#fatal(Status.Invalid);
        r.consume(HEADER_LENGTH + keylen);
        this.#get(b, key, keylen, base === Op.GetK, -1);
        return Step.More;
      case Op.Touch:
      case Op.Gat:
      case Op.GatK:
        if (extlen !== 4 || keylen === 0) return this.#fatal(Status.Invalid);
        this.#skip(keylen + extlen, rest);
        this.#get(b, key, keylen, base === Op.GatK, u32(b, ext));
        return Step.More;
      case Op.Set:
      case Op.Add:
      case Op.Replace:
        if (extlen !== 8 || keylen === 0) return this.#fatal(Status.Invalid);
        r.consume(HEADER_LENGTH + extlen + keylen);
        this.#update(b, key, keylen, u32(b, ext), u32(b, ext + 4), rest, cas, base);
        return Step.More;
      case Op.Append:
      case Op.Prepend:
        if (extlen !== 0 || keylen === 0) return this.#fatal(Status.Invalid);
        r.consume(HEADER_LENGTH + keylen);
        this.#update(b, key, keylen, 0, 0, rest, cas, base);
        return Step.More;
      case Op.Delete:
        if (extlen !== 0 || rest !== 0 || keylen === 0) return this.#fatal(Status.Invalid);
        r.consume(HEADER_LENGTH + keylen);
        this.#delete(b, key, keylen, cas);
        return Step.More;
      case Op.Increment:
      case Op.Decrement:
        if (extlen !== 20 || rest !== 0 || keylen === 0) return this.#fatal(Status.Invalid);
        r.consume(HEADER_LENGTH + extlen + keylen);
        this.#arith(b, key, keylen, base === Op.Increment, ext, cas);
        return Step.More;
      case Op.Flush:
        if (keylen !== 0 || rest !== 0 || (extlen !== 0 && extlen !== 4)) {
          return this.#fatal(Status.Invalid);
        }
        r.consume(HEADER_LENGTH + extlen);
        this.#flush(extlen === 4 ? u32(b, ext) : 0);
        return Step.More;
      case Op.Stat:
        if (extlen !== 0) return this.#fatal(Status.Invalid);
        this.#skip(keylen, rest);
        this.#stat(latin1(b, key, keylen));
        return Step.More;
      case Op.Noop:
      case Op.Version:
      case Op.Quit:
      case Op.SaslListMechs:
        if (bodylen !== 0) return this.#fatal(Status.Invalid);
        r.consume(HEADER_LENGTH);
        return this.#simple(base);
      case Op.SaslAuth:
      case Op.SaslStep:
        if (extlen !== 0 || keylen === 0) return this.#fatal(Status.Invalid);
        return this.#saslAuth(base === Op.SaslAuth, keylen, rest);
      default:
        this.#skip(keylen + extlen, rest);
        this.#error(Status.UnknownCommand, rest);
        return Step.More;
    }
  }

  /** Consumes the header and the `used` body bytes, and discards the `rest` of the body. */
  #skip(used: number, rest: number): void {
    this.session.reader.consume(HEADER_LENGTH + used);
    this.#swallow = rest;
  }

  /** Answers `status` and closes once the replies are sent (memcached's close_after_write). */
  #fatal(status: number): Step {
    this.#error(status, 0);
    return Step.Close;
  }

  /** Writes a response header for the current request. */
  #header(status: number, extlen: number, keylen: number, bodylen: number, cas: number): void {
    const out = this.session.out;
    out.reserve(HEADER_LENGTH);
    const o = out.buf;
    const p = out.pos;
    o[p] = RESPONSE_MAGIC;
    o[p + 1] = this.#opcode;
    o[p + 2] = keylen >>> 8;
    o[p + 3] = keylen & 0xff;
    o[p + 4] = extlen;
    o[p + 5] = 0;
    o[p + 6] = status >>> 8;
    o[p + 7] = status & 0xff;
    putU32(o, p + 8, bodylen);
    putU32(o, p + 12, this.#opaque);
    putU32(o, p + 16, Math.floor(cas / TWO_32));
    putU32(o, p + 20, cas >>> 0);
    out.pos = p + HEADER_LENGTH;
  }

  /** An empty success reply, unless the command is quiet. */
  #ok(cas: number): void {
    if (!this.#quiet) this.#header(Status.Ok, 0, 0, 0, cas);
  }

  /** A success reply carrying `body`, unless the command is quiet. */
  #okBody(body: Uint8Array): void {
    if (this.#quiet) return;
    this.#header(Status.Ok, 0, 0, body.length, 0);
    this.session.out.put(body);
  }

  /**
   * An error reply (sent even for quiet commands). With nothing to swallow memcached flushes
   * its replies right away; with a body to swallow it sends them later.
   */
  #error(status: number, swallow: number, message = MESSAGE[status]): void {
    this.#header(status, 0, 0, message.length, 0);
    const out = this.session.out;
    out.put(message);
    if (swallow > 0) this.#swallow = swallow;
    else this.#sent = out.pos;
  }

  /** Get/GetK/GetQ/GetKQ (`exptime` < 0) and Touch/GAT/GATK(Q) (`exptime` ≥ 0). */
  #get(b: Uint8Array, key: number, keylen: number, withKey: boolean, exptime: number): void {
    const cache = this.session.cache;
    const ref = exptime < 0
      ? cache.get(b, key, keylen)
      : cache.touch(b, key, keylen, cache.exptime(exptime));
    const out = this.session.out;
    if (ref === NONE) {
      if (this.#quiet) return;
      if (!withKey) return this.#error(Status.NotFound, 0);
      this.#header(Status.NotFound, 0, keylen, keylen, 0);
      out.putRange(b, key, keylen);
      return;
    }
    const store = cache.store;
    const vlen = this.#opcode === Op.Touch ? 0 : store.valueLength(ref);
    const kl = withKey ? keylen : 0;
    out.reserve(HEADER_LENGTH + 4 + kl + vlen);
    this.#header(Status.Ok, 4, kl, 4 + kl + vlen, store.cas(ref));
    putU32(out.buf, out.pos, store.flags(ref));
    out.pos += 4;
    if (kl > 0) out.putRange(b, key, kl);
    if (vlen > 0) out.pos += store.readValue(ref, out.buf, out.pos);
  }

  /** Set/Add/Replace/Append/Prepend: allocates the item, then receives its value. */
  #update(
    b: Uint8Array,
    key: number,
    keylen: number,
    flags: number,
    exptime: number,
    vlen: number,
    cas: number,
    base: number,
  ): void {
    const mode = base === Op.Set
      ? Mode.Set
      : base === Op.Add
      ? Mode.Add
      : base === Op.Replace
      ? Mode.Replace
      : base === Op.Append
      ? Mode.Append
      : Mode.Prepend;
    const cache = this.session.cache;
    const ref = cache.allocate(b, key, keylen, flags, cache.exptime(exptime), vlen, mode);
    if (ref === NONE) {
      if (cache.store.allocFailure === AllocFailure.TooLarge) this.#error(Status.TooLarge, vlen);
      else this.#error(Status.NoMemory, vlen, OOM_ITEM);
      return;
    }
    this.#ref = ref;
    this.#mode = mode;
    this.#cas = cas;
    this.#valueOff = 0;
    this.#valueLen = vlen;
  }

  /** Copies arrived value bytes into the pending item; true once it is stored and answered. */
  #receive(): boolean {
    const r = this.session.reader;
    const n = Math.min(this.#valueLen - this.#valueOff, r.buffered);
    if (n > 0) {
      this.session.cache.store.writeValue(this.#ref, this.#valueOff, r.buf, r.start, n);
      r.consume(n);
      this.#valueOff += n;
    }
    if (this.#valueOff < this.#valueLen) return false;
    const ref = this.#ref;
    this.#ref = NONE;
    const cache = this.session.cache;
    const mode = this.#mode;
    const cas = this.#cas;
    const concat = mode === Mode.Append || mode === Mode.Prepend;
    // memcached turns a set, add or replace carrying a CAS into its `cas` command
    switch (cache.commit(ref, cas !== 0 && !concat ? Mode.Set : mode, cas)) {
      case StoreResult.Stored:
        this.#ok(cache.store.cas(cache.store.linked));
        break;
      case StoreResult.Exists:
        this.#error(Status.Exists, 0);
        break;
      case StoreResult.NotFound: // for append/prepend with a CAS, memcached finds no item to join
        this.#error(concat ? Status.NotStored : Status.NotFound, 0);
        break;
      default: // memcached's complete_update_bin: the answer depends on the command
        this.#error(
          cas !== 0 || concat
            ? Status.NotStored
            : mode === Mode.Add
            ? Status.Exists
            : mode === Mode.Replace
            ? Status.NotFound
            : Status.NotStored,
          0,
        );
    }
    return true;
  }

  #delete(b: Uint8Array, key: number, keylen: number, cas: number): void {
    const cache = this.session.cache;
    if (cas !== 0) {
      const ref = cache.store.find(b, key, keylen);
      if (ref !== NONE && cache.store.cas(ref) !== cas) return this.#error(Status.Exists, 0);
    }
    if (cache.delete(b, key, keylen)) this.#ok(0);
    else this.#error(Status.NotFound, 0);
  }

  /** Increment/Decrement: extras are delta (u64), initial (u64), expiration (u32). */
  #arith(b: Uint8Array, key: number, keylen: number, incr: boolean, ext: number, cas: number) {
    const cache = this.session.cache;
    const store = cache.store;
    const ref = store.find(b, key, keylen);
    if (ref !== NONE) {
      switch (cache.arithOn(ref, incr, u64(b, ext), cas)) {
        case Arith.Ok:
          return this.#arithReply(cache.arithValue, cache.arithCas);
        case Arith.NonNumeric:
          return this.#error(Status.DeltaBadval, 0);
        case Arith.Exists:
          return this.#error(Status.Exists, 0);
        default:
          return this.#error(Status.NoMemory, 0, OOM_INCR);
      }
    }
    const exptime = u32(b, ext + 16);
    if (exptime === NO_CREATE) {
      if (incr) cache.counters.incr_misses++;
      else cache.counters.decr_misses++;
      return this.#error(Status.NotFound, 0);
    }
    const initial = u64(b, ext + 8);
    const text = initial.toString();
    const digits = this.#digits;
    for (let i = 0; i < text.length; i++) digits[i] = text.charCodeAt(i);
    const fresh = store.alloc(b, key, keylen, text.length, 0, cache.exptime(exptime));
    if (fresh === NONE) return this.#error(Status.NoMemory, 0, OOM_NEW_ITEM);
    store.writeValue(fresh, 0, digits, 0, text.length);
    if (store.link(fresh, Mode.Add, 0) !== StoreResult.Stored) {
      return this.#error(Status.NotStored, 0);
    }
    this.#arithReply(initial, store.cas(store.linked));
  }

  #arithReply(value: bigint, cas: number): void {
    if (this.#quiet) return;
    this.#header(Status.Ok, 0, 0, 8, cas);
    const out = this.session.out;
    out.reserve(8);
    putU32(out.buf, out.pos, Number(value >> 32n));
    putU32(out.buf, out.pos + 4, Number(value & 0xffffffffn));
    out.pos += 8;
  }

  #flush(delay: number): void {
    const cache = this.session.cache;
    // memcached's binary flush refuses with AUTH_ERROR under -F, and does not count it
    if (!cache.config.flushEnabled) return this.#error(Status.AuthError, 0);
    cache.flushAll(delay);
    this.#ok(0);
  }

  /** Stat: one packet per row, then an empty packet; groups as memcached's process_bin_stat. */
  #stat(group: string): void {
    const cache = this.session.cache;
    let rows: Row[] | null;
    if (group === "") rows = statsGroup(cache, "");
    else if (group.startsWith("reset")) {
      cache.resetStats();
      rows = [];
    } else if (group.startsWith("settings")) rows = statsGroup(cache, "settings");
    else if (group.startsWith("detail")) {
      const sub = group.slice(6);
      rows = sub.startsWith(" dump")
        ? [["detailed", STATS_DETAIL_DUMP]]
        : sub.startsWith(" on") || sub.startsWith(" off")
        ? []
        : null;
    } else if (group === "conns") rows = this.session.connectionRows();
    else rows = statsGroup(cache, group);
    if (rows === null) return this.#error(Status.NotFound, 0);
    const out = this.session.out;
    for (const [name, value] of rows) {
      const text = String(value);
      this.#header(Status.Ok, 0, name.length, name.length + text.length, 0);
      out.putAscii(name);
      out.putAscii(text);
    }
    this.#header(Status.Ok, 0, 0, 0, 0);
  }

  /** Noop, Version, Quit(Q) and SASL list-mechs: requests without a body. */
  #simple(base: number): Step {
    switch (base) {
      case Op.Noop:
        this.#header(Status.Ok, 0, 0, 0, 0);
        this.#sent = this.session.out.pos;
        return Step.More;
      case Op.Version:
        this.#okBody(VERSION);
        return Step.More;
      case Op.Quit:
        this.#ok(0);
        return Step.Close;
      default:
        if (this.#sasl === null) this.#error(Status.UnknownCommand, 0);
        else {
          this.#authenticated = false;
          this.#okBody(MECHANISMS);
        }
        return Step.More;
    }
  }

  /** SASL auth/step: the mechanism is the key, the client's message the value. */
  #saslAuth(start: boolean, keylen: number, vlen: number): Step | typeof WAIT {
    const r = this.session.reader;
    if (this.#sasl === null) {
      this.#skip(keylen, vlen);
      this.#error(Status.UnknownCommand, vlen);
      return Step.More;
    }
    if (keylen > SASL_MECH_MAX) {
      this.#skip(keylen, vlen);
      this.#error(Status.Invalid, vlen);
      return Step.More;
    }
    const config = this.session.cache.config;
    if (keylen + vlen > Math.min(config.itemSizeMax, config.slabChunkMaxKb * 1024)) {
      this.#skip(keylen, vlen); // memcached cannot hold it in one chunk
      this.#error(Status.NoMemory, vlen);
      return Step.More;
    }
    if (!r.full(HEADER_LENGTH + keylen + vlen)) return WAIT;
    const b = r.buf;
    const mech = r.start + HEADER_LENGTH;
    r.consume(HEADER_LENGTH + keylen + vlen);
    this.#authenticated = false;
    let ok = false;
    if (start) {
      this.#saslState = Sasl.Idle;
      if (isPlain(b, mech, keylen)) {
        if (vlen === 0) {
          this.#saslState = Sasl.Continuing;
          this.#header(Status.AuthContinue, 0, 0, 0, 0);
          this.#sent = this.session.out.pos;
          return Step.More;
        }
        ok = this.#sasl.checkPlain(b, mech + keylen, vlen);
      }
    } else if (this.#saslState === Sasl.Continuing) {
      ok = this.#sasl.checkPlain(b, mech + keylen, vlen);
    }
    const counters = this.session.cache.counters;
    counters.auth_cmds++;
    if (!ok) {
      counters.auth_errors++;
      this.#error(Status.AuthError, 0);
      return Step.More;
    }
    this.#saslState = Sasl.Done;
    this.#authenticated = true;
    this.#okBody(AUTHENTICATED);
    return Step.More;
  }
}
