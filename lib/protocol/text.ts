/**
 * memcached's text protocol (proto_text.c): storage, retrieval, delete, incr/decr, touch,
 * flush_all, stats, version, verbosity, quit, shutdown, cache_memlimit — with memcached's exact
 * replies and error strings. Meta commands (`mg ms md ma mn me`) are handed to `MetaCommands`.
 *
 * Every complete command in the reader's buffer is parsed from bytes and answered into the
 * reply buffer in one synchronous pass; values are copied once from the read buffer into the
 * store and once from the store into the reply buffer.
 *
 * @module
 */
import { Arith } from "../cache.ts";
import { VERSION_STRING } from "../config.ts";
import { statsGroup } from "../report.ts";
import { bytes, writeValueHead } from "../reply.ts";
import {
  AllocFailure,
  type GetRunSink,
  type ItemRef,
  Mode,
  NONE,
  StoreResult,
  WARM_MAX,
  WarmedKeys,
} from "../store/store.ts";
import { parseI32, parseU32, parseU64 } from "./numbers.ts";
import { FLUSH_AT, type Protocol, type Session, Step } from "./session.ts";
import { Tokens } from "./tokens.ts";

/**
 * The keys `#warm` hashed in a `process` call: scratch shared by every connection (a `process`
 * call runs to its end before another begins), so that a light load's requests do not each
 * touch a connection's own cold arrays.
 */
const WARMED = new WarmedKeys();

/** The longest key memcached accepts. */
export const KEY_MAX_LENGTH = 250;
/** A line longer than this without a newline closes the connection (unless it is a get). */
const LINE_MAX = 2048;
/** Value bytes still missing from which the socket is read straight into the item. */
const DIRECT_READ_MIN = 8 * 1024;

const R = {
  STORED: bytes("STORED\r\n"),
  NOT_STORED: bytes("NOT_STORED\r\n"),
  EXISTS: bytes("EXISTS\r\n"),
  NOT_FOUND: bytes("NOT_FOUND\r\n"),
  DELETED: bytes("DELETED\r\n"),
  TOUCHED: bytes("TOUCHED\r\n"),
  END: bytes("END\r\n"),
  /** The end of a hit's data block and of the reply, in one copy. */
  CRLF_END: bytes("\r\nEND\r\n"),
  OK: bytes("OK\r\n"),
  RESET: bytes("RESET\r\n"),
  ERROR: bytes("ERROR\r\n"),
  VERSION: bytes(`VERSION ${VERSION_STRING}\r\n`),
  STAT: bytes("STAT "),
  BAD_FORMAT: bytes("CLIENT_ERROR bad command line format\r\n"),
  BAD_CHUNK: bytes("CLIENT_ERROR bad data chunk\r\n"),
  BAD_EXPTIME: bytes("CLIENT_ERROR invalid exptime argument\r\n"),
  BAD_DELTA: bytes("CLIENT_ERROR invalid numeric delta argument\r\n"),
  NON_NUMERIC: bytes("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
  DELETE_USAGE: bytes("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"),
  TOO_LARGE: bytes("SERVER_ERROR object too large for cache\r\n"),
  OUT_OF_MEMORY: bytes("SERVER_ERROR out of memory storing object\r\n"),
  OOM: bytes("SERVER_ERROR out of memory\r\n"),
  FLUSH_DISABLED: bytes("CLIENT_ERROR flush_all not allowed\r\n"),
  SHUTDOWN_DISABLED: bytes("ERROR: shutdown not enabled\r\n"),
  SHUTDOWN_MODE: bytes("CLIENT_ERROR invalid shutdown mode\r\n"),
  MEMLIMIT_SMALL: bytes("MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"),
  MEMLIMIT_UNITS: bytes("MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"),
  STATS_BAD: bytes("CLIENT_ERROR bad command line\r\n"),
} as const;

const W = {
  get: bytes("get"),
  gets: bytes("gets"),
  gat: bytes("gat"),
  gats: bytes("gats"),
  bget: bytes("bget"),
  set: bytes("set"),
  add: bytes("add"),
  replace: bytes("replace"),
  append: bytes("append"),
  prepend: bytes("prepend"),
  cas: bytes("cas"),
  delete: bytes("delete"),
  incr: bytes("incr"),
  decr: bytes("decr"),
  touch: bytes("touch"),
  stats: bytes("stats"),
  flush_all: bytes("flush_all"),
  version: bytes("version"),
  verbosity: bytes("verbosity"),
  quit: bytes("quit"),
  shutdown: bytes("shutdown"),
  graceful: bytes("graceful"),
  cache_memlimit: bytes("cache_memlimit"),
  noreply: bytes("noreply"),
  reset: bytes("reset"),
  conns: bytes("conns"),
  zero: bytes("0"),
} as const;

/** First bytes memcached's process_command_ascii dispatches on (a c d g i s t). */
const BRANCHES = [97, 99, 100, 103, 105, 115, 116];

/** The meta command codec, plugged into the text protocol (meta commands share its lines). */
export interface MetaCommands {
  /** Handles a meta command line (`tokens[0]` is `m?`). */
  command(t: TextProtocol, tokens: Tokens): void;
  /** Answers an `ms` whose value was read (`result` from `Cache.commit`, or -1: bad chunk). */
  finishSet(t: TextProtocol, result: StoreResult | -1): void;
}

/** What a value being received will become once its bytes are in. */
const Pending = { None: 0, Store: 1, Meta: 2 } as const;
type Pending = typeof Pending[keyof typeof Pending];

/** The text protocol codec of one connection. */
export class TextProtocol implements Protocol {
  readonly session: Session;
  readonly tokens = new Tokens();
  readonly meta: MetaCommands | null;
  /** Suppress the reply of the command being handled (`noreply`, meta `q`). */
  noreply = false;
  commands = 0;
  /** Bytes of a refused value still to be discarded. */
  #swallow = 0;
  #pending: Pending = Pending.None;
  #ref: ItemRef = NONE;
  #mode: Mode = Mode.Set;
  #cas = 0;
  #valueOff = 0;
  #valueLen = 0;
  /** Buffer offset up to which `#warm` has looked at lines in this `process` call. */
  #warmedTo = 0;
  /** Where the results of `Store.warm` go (they mean nothing). */
  #sink = 0;
  readonly #warmed = WARMED;
  /** What `Store.getRun` counts and writes to. */
  readonly #run: GetRunSink;

  constructor(session: Session, meta: MetaCommands | null) {
    this.session = session;
    this.meta = meta;
    this.#run = {
      counters: session.cache.counters,
      classCounters: session.cache.classCounters,
      out: session.out,
    };
  }

  close(): void {
    if (this.#ref !== NONE) this.session.cache.store.release(this.#ref);
    this.#ref = NONE;
    this.#pending = Pending.None;
  }

  inData(): boolean {
    return this.#pending !== Pending.None || this.#swallow > 0;
  }

  process(): Step {
    const r = this.session.reader;
    const out = this.session.out;
    this.#warmedTo = -1;
    this.#warmed.count = 0;
    for (;;) {
      if (this.#swallow > 0) {
        const n = Math.min(this.#swallow, r.buffered);
        r.consume(n);
        this.#swallow -= n;
        if (this.#swallow > 0) return Step.More;
      }
      if (this.#pending !== Pending.None && !this.#receiveValue()) return Step.More;
      if (out.pos >= FLUSH_AT) return Step.Flush;
      if (out.holding) out.release(); // the next command may change a held value
      if (r.start >= this.#warmedTo) this.#warmedTo = this.#warm(r.buf, r.start, r.end);
      if (this.#getRun() || this.#simpleGet() || this.#simpleSet()) continue;
      const lf = r.line();
      if (lf < 0) {
        if (r.buffered > LINE_MAX && !this.#isLongGet()) return Step.Abort;
        return Step.More;
      }
      const lineEnd = lf > r.start && r.buf[lf - 1] === 13 ? lf - 1 : lf;
      this.tokens.split(r.buf, r.start, lineEnd);
      const lineStart = r.start;
      r.consume(lf + 1 - lineStart);
      this.commands++;
      const step = this.#command();
      if (step !== Step.More) return step;
    }
  }

  /** Copies arrived value bytes into the pending item; true once the value is complete. */
  #receiveValue(): boolean {
    const r = this.session.reader;
    const store = this.session.cache.store;
    if (this.#valueOff < this.#valueLen) {
      this.#valueOff += r.directRead;
      r.directRead = 0;
      const n = Math.min(this.#valueLen - this.#valueOff, r.buffered);
      if (n > 0) {
        store.writeValue(this.#ref, this.#valueOff, r.buf, r.start, n);
        r.consume(n);
        this.#valueOff += n;
      }
      const missing = this.#valueLen - this.#valueOff;
      if (missing > 0) {
        // A large remainder is read straight into the item, saving a copy and reads.
        if (missing >= DIRECT_READ_MIN) {
          r.readDirect(store.valueView(this.#ref, this.#valueOff, missing));
        }
        return false;
      }
    }
    if (r.buffered < 2) return false;
    const good = r.buf[r.start] === 13 && r.buf[r.start + 1] === 10;
    r.consume(2);
    const ref = this.#ref;
    const pending = this.#pending;
    this.#ref = NONE;
    this.#pending = Pending.None;
    let result: StoreResult | -1 = -1;
    if (good) {
      result = this.session.cache.commit(ref, this.#mode, this.#cas);
    } else {
      this.session.cache.discard(ref);
    }
    if (pending === Pending.Meta) {
      this.meta!.finishSet(this, result);
    } else if (result === -1) {
      this.reply(R.BAD_CHUNK);
    } else {
      this.reply(STORE_REPLIES[result]);
    }
    this.noreply = false;
    return true;
  }

  /**
   * Warms the store (`Store.warm`) for the keys of the complete `get` lines and `set` commands
   * that follow one another from `from`, up to `WARM_MAX` keys, so that their lookups' cache
   * misses overlap. Returns the offset after the last line (or data block) it looked at. Only
   * a hint: it changes nothing.
   */
  #warm(buf: Uint8Array, from: number, end: number): number {
    const warmed = this.#warmed;
    const starts = warmed.starts;
    const lens = warmed.lens;
    let keys = 0;
    let i = from;
    warmed.count = 0; // the arrays are about to hold other keys
    warmed.next = 0;
    for (let lines = 0; lines < WARM_MAX && keys < WARM_MAX; lines++) {
      if (i + 4 > end || buf[i + 1] !== 101 || buf[i + 2] !== 116 || buf[i + 3] !== 32) break;
      if (buf[i] === 115) {
        // `set <key> <flags> <exptime> <bytes>[ noreply]`: its key, then past its data block
        let k = i + 4;
        while (k < end && buf[k] === 32) k++;
        const ks = k;
        while (k < end && buf[k] > 32) k++;
        if (k === end) break;
        if (k > ks && k - ks <= KEY_MAX_LENGTH) {
          starts[keys] = ks;
          lens[keys++] = k - ks;
        }
        for (let f = 0; f < 2; f++) {
          while (k < end && buf[k] === 32) k++;
          while (k < end && buf[k] > 32) k++;
        }
        while (k < end && buf[k] === 32) k++;
        const digits = k;
        let bytes = 0;
        while (k < end && k - digits < 9 && buf[k] >= 48 && buf[k] <= 57) {
          bytes = bytes * 10 + buf[k++] - 48;
        }
        if (k === digits) break;
        while (k < end && buf[k] !== 10) k++;
        if (k === end) break;
        i = k + 1 + bytes + 2;
        if (i > end) break;
        continue;
      }
      if (buf[i] !== 103) break;
      let k = i + 4;
      for (;;) {
        while (k < end && buf[k] === 32) k++;
        const ks = k;
        while (k < end && buf[k] > 32) k++;
        if (k === end) break;
        if (k > ks && k - ks <= KEY_MAX_LENGTH && keys < WARM_MAX) {
          starts[keys] = ks;
          lens[keys++] = k - ks;
        }
        if (buf[k] !== 32) break;
      }
      while (k < end && buf[k] !== 10) k++;
      if (k === end) break;
      i = k + 1;
    }
    if (keys > 1) {
      this.#sink ^= this.session.cache.store.warm(buf, starts, lens, warmed.hashes, keys);
      warmed.count = keys;
    }
    return i;
  }

  /** Whether the unterminated line in the buffer is a long `get`/`gets` key list. */
  #isLongGet(): boolean {
    const r = this.session.reader;
    let i = r.start;
    while (i < r.end && r.buf[i] === 32) i++;
    if (i - r.start > 100) return false;
    const b = r.buf;
    return b[i] === 103 && b[i + 1] === 101 && b[i + 2] === 116 &&
      (b[i + 3] === 32 || (b[i + 3] === 115 && b[i + 4] === 32));
  }

  /** Appends a reply unless the command asked for none. */
  reply(bytes: Uint8Array): void {
    if (!this.noreply) this.session.out.put(bytes);
  }

  /** Starts receiving `valueLen` bytes into `ref`; the line has been consumed. */
  receive(ref: ItemRef, valueLen: number, mode: Mode, cas: number, meta: boolean): void {
    this.#ref = ref;
    this.#valueOff = 0;
    this.#valueLen = valueLen;
    this.#mode = mode;
    this.#cas = cas;
    this.#pending = meta ? Pending.Meta : Pending.Store;
  }

  /** Discards the next `n` bytes of input (a refused value and its trailer). */
  swallow(n: number): void {
    this.#swallow = n;
  }

  #command(): Step {
    const t = this.tokens;
    this.noreply = false;
    if (t.count === 0 || t.len(0) < 2) {
      this.reply(R.ERROR);
      return Step.More;
    }
    const c0 = t.buf[t.start[0]];
    if (c0 === 109 /* m */ && t.len(0) === 2) {
      if (this.meta === null) this.reply(R.ERROR);
      else this.meta.command(this, t);
      return Step.More;
    }
    const n = t.count + 1; // memcached counts a terminal token
    if (t.is(0, W.get) || t.is(0, W.bget)) return this.#get(false, false, n);
    if (t.is(0, W.gets)) return this.#get(true, false, n);
    if (t.is(0, W.gat)) return this.#get(false, true, n);
    if (t.is(0, W.gats)) return this.#get(true, true, n);
    if (t.is(0, W.set)) return this.#update(Mode.Set, false, n);
    if (t.is(0, W.add)) return this.#update(Mode.Add, false, n);
    if (t.is(0, W.replace)) return this.#update(Mode.Replace, false, n);
    if (t.is(0, W.append)) return this.#update(Mode.Append, false, n);
    if (t.is(0, W.prepend)) return this.#update(Mode.Prepend, false, n);
    if (t.is(0, W.cas)) return this.#update(Mode.Set, true, n);
    if (t.is(0, W.delete)) return this.#delete(n);
    if (t.is(0, W.incr)) return this.#arith(true, n);
    if (t.is(0, W.decr)) return this.#arith(false, n);
    if (t.is(0, W.touch)) return this.#touch(n);
    if (t.is(0, W.stats)) return this.#stats(n);
    if (t.is(0, W.flush_all)) return this.#flushAll(n);
    if (t.is(0, W.version)) {
      this.reply(R.VERSION);
      return Step.More;
    }
    if (t.is(0, W.quit)) return Step.Close;
    if (t.is(0, W.verbosity)) return this.#verbosity(n);
    if (t.is(0, W.shutdown)) return this.#shutdown(n);
    if (t.is(0, W.cache_memlimit)) return this.#memlimit(n);
    // memcached closes on a line ending in an HTTP version, but only when the command's first
    // byte has no dispatch branch of its own (a, c, d, g, i, s, t answer ERROR instead).
    const last = t.count - 1;
    if (!BRANCHES.includes(c0) && t.len(last) >= 5 && t.text(last).startsWith("HTTP/")) {
      return Step.Abort;
    }
    this.reply(R.ERROR);
    return Step.More;
  }

  /** memcached's `set_noreply_maybe`: the second-to-last counted token is `noreply`. */
  #noreplyMaybe(n: number): boolean {
    const i = n - 2;
    if (i >= 0 && i < this.tokens.count && this.tokens.is(i, W.noreply)) this.noreply = true;
    return this.noreply;
  }

  #get(withCas: boolean, touch: boolean, n: number): Step {
    const t = this.tokens;
    if (n < 3) {
      this.reply(R.ERROR);
      return Step.More;
    }
    const cache = this.session.cache;
    const out = this.session.out;
    let first = 1;
    let exptime = 0;
    if (touch) {
      const e = parseI32(t.buf, t.start[1], t.end[1]);
      if (e === null) {
        out.put(R.BAD_EXPTIME);
        return Step.More;
      }
      exptime = cache.exptime(e);
      first = 2;
    }
    const mark = out.pos;
    // Large values may leave for the socket at once, unless a long key would take them back.
    let direct = true;
    for (let i = first; i < t.count && direct; i++) {
      direct = t.end[i] - t.start[i] <= KEY_MAX_LENGTH;
    }
    for (let i = first; i < t.count; i++) {
      const ks = t.start[i];
      const kl = t.end[i] - ks;
      if (kl > KEY_MAX_LENGTH) {
        out.pos = mark;
        out.put(R.BAD_FORMAT);
        return Step.More;
      }
      const ref = touch ? cache.touch(t.buf, ks, kl, exptime) : cache.get(t.buf, ks, kl);
      if (ref !== NONE) {
        this.#putHit(t.buf, ks, kl, ref, withCas, direct);
        out.crlf();
      }
    }
    out.put(R.END);
    return Step.More;
  }

  /**
   * Where the key ends in a line at the reader's start that begins `<c>et <key>` (`c` is `g` or
   * `s`), the key 1 to 250 bytes above space with a byte after it in the buffer; -1 otherwise.
   */
  #plainKey(c: number): number {
    const r = this.session.reader;
    const b = r.buf;
    const start = r.start;
    const end = r.end;
    if (b[start] !== c || b[start + 1] !== 101 || b[start + 2] !== 116 || b[start + 3] !== 32) {
      return -1;
    }
    const ks = start + 4;
    // `#warm` found this key's end already when it lists a key starting here
    const warmed = this.#warmed;
    if (warmed.seek(ks)) {
      return ks + warmed.lens[warmed.next];
    }
    const limit = Math.min(end, ks + KEY_MAX_LENGTH + 1);
    let k = ks;
    while (k < limit && b[k] > 32) k++;
    const kl = k - ks;
    return kl === 0 || kl > KEY_MAX_LENGTH || k >= end ? -1 : k;
  }

  /**
   * Lets the store answer the run of plain one-key `get` lines at the reader's start
   * (`Store.getRun`); true if it answered any.
   */
  #getRun(): boolean {
    const r = this.session.reader;
    const counters = this.#run.counters;
    const gets = counters.cmd_get;
    const to = this.session.cache.store.getRun(
      r.buf,
      r.start,
      r.end,
      KEY_MAX_LENGTH,
      this.#warmed,
      this.#run,
      FLUSH_AT,
    );
    if (to === r.start) return false;
    r.consume(to - r.start);
    this.commands += counters.cmd_get - gets;
    this.noreply = false;
    return true;
  }

  /**
   * Handles the line at the reader's start if it is the commonest request of all, `get` of one
   * key, exactly `get <key>\r\n` (or `\n`) with a key of 1 to 250 bytes above space: consumes
   * it and answers as `#get` would, without splitting tokens. False: left for the general path.
   */
  #simpleGet(): boolean {
    const k = this.#plainKey(103);
    if (k < 0) return false;
    const r = this.session.reader;
    const b = r.buf;
    const start = r.start;
    const end = r.end;
    const ks = start + 4;
    const kl = k - ks;
    let lf = k;
    if (b[k] === 13) lf = k + 1;
    if (lf >= end || b[lf] !== 10) return false;
    r.consume(lf + 1 - start);
    this.commands++;
    this.noreply = false;
    // `#plainKey` stopped at this key's entry if `#warm` hashed it in this `process` call (the
    // buffer unchanged since, so the hash is still the key's), and took the key's end from it
    const warmed = this.#warmed;
    const ref = warmed.seek(ks)
      ? this.session.cache.getHashed(b, ks, kl, warmed.hashes[warmed.next++])
      : this.session.cache.get(b, ks, kl);
    if (ref !== NONE) this.#putHit(b, ks, kl, ref, false, true);
    this.session.out.put(ref !== NONE ? R.CRLF_END : R.END);
    return true;
  }

  /**
   * Handles the line at the reader's start if it is the commonest update, a plain `set`:
   * `set <key> <flags> <exptime> <bytes>[ noreply]\r\n` (or `\n`) with single spaces, a key of 1
   * to 250 bytes above space, each number 1 to 9 digits, and its whole data block and trailer
   * already in the buffer. Consumes it and answers as `#update` and `#receiveValue` would,
   * without splitting tokens or waiting for the value. False: left for the general path.
   */
  #simpleSet(): boolean {
    let k = this.#plainKey(115);
    if (k < 0) return false;
    const r = this.session.reader;
    const b = r.buf;
    const start = r.start;
    const end = r.end;
    if (b[k] !== 32) return false;
    const ks = start + 4;
    const kl = k - ks;
    // three numbers of plain digits, each after one space
    let flags = 0;
    let exptime = 0;
    let vlen = 0;
    for (let f = 0; f < 3; f++) {
      const digits = ++k;
      let n = 0;
      while (k < end && k - digits < 10 && b[k] >= 48 && b[k] <= 57) n = n * 10 + b[k++] - 48;
      if (k === digits || k - digits > 9 || k >= end) return false;
      if (f === 0) flags = n;
      else if (f === 1) exptime = n;
      else vlen = n;
      if (f < 2 && b[k] !== 32) return false;
    }
    let noreply = false;
    if (b[k] === 32) {
      const w = W.noreply;
      if (k + 1 + w.length > end) return false;
      for (let i = 0; i < w.length; i++) if (b[k + 1 + i] !== w[i]) return false;
      noreply = true;
      k += 1 + w.length;
    }
    if (k < end && b[k] === 13) k++;
    if (k >= end || b[k] !== 10) return false;
    const data = k + 1;
    const after = data + vlen + 2;
    if (after > end || b[after - 2] !== 13 || b[after - 1] !== 10) return false;
    this.commands++;
    this.noreply = noreply;
    const cache = this.session.cache;
    const ref = cache.allocate(b, ks, kl, flags, cache.exptime(exptime), vlen, Mode.Set);
    if (ref === NONE) {
      r.consume(after - start);
      this.reply(
        cache.store.allocFailure === AllocFailure.TooLarge ? R.TOO_LARGE : R.OUT_OF_MEMORY,
      );
      this.noreply = false;
      return true;
    }
    cache.store.writeValue(ref, 0, b, data, vlen);
    r.consume(after - start);
    this.reply(STORE_REPLIES[cache.commit(ref, Mode.Set, 0)]);
    this.noreply = false;
    return true;
  }

  /**
   * Appends the `VALUE` line and data block of a hit on key `key[ks, ks + kl)`, not the `\r\n`
   * after the block.
   */
  #putHit(
    key: Uint8Array,
    ks: number,
    kl: number,
    ref: ItemRef,
    withCas: boolean,
    direct: boolean,
  ) {
    const store = this.session.cache.store;
    const out = this.session.out;
    const vlen = store.valueLength(ref);
    // the commonest reply of all, written with one bounds check and a local offset
    out.reserve(kl + 30);
    const buf = out.buf;
    const pos = writeValueHead(buf, out.pos, key, ks, kl, store.flags(ref), vlen);
    if (withCas) {
      out.pos = pos;
      out.putByte(32);
      out.putUint(store.cas(ref));
      out.crlf();
    } else {
      buf[pos] = 13;
      buf[pos + 1] = 10;
      out.pos = pos + 2;
    }
    out.putValue(store, ref, vlen, direct);
  }

  #update(mode: Mode, withCas: boolean, n: number): Step {
    const t = this.tokens;
    if (withCas ? n !== 7 && n !== 8 : n !== 6 && n !== 7) {
      this.reply(R.ERROR);
      return Step.More;
    }
    this.#noreplyMaybe(n);
    const ks = t.start[1];
    const kl = t.len(1);
    if (kl > KEY_MAX_LENGTH) {
      this.reply(R.BAD_FORMAT);
      return Step.More;
    }
    const b = t.buf;
    const flags = parseU32(b, t.start[2], t.end[2]);
    const exptime = parseI32(b, t.start[3], t.end[3]);
    const vlen = parseI32(b, t.start[4], t.end[4]);
    if (flags === null || exptime === null || vlen === null) {
      this.reply(R.BAD_FORMAT);
      return Step.More;
    }
    let cas = 0;
    if (withCas) {
      const c = parseU64(b, t.start[5], t.end[5]);
      if (c === null) {
        this.reply(R.BAD_FORMAT);
        return Step.More;
      }
      cas = c > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(c);
      if (cas === 0) cas = -1; // cas 0 never matches an item (memcached: NOT_FOUND/EXISTS)
    }
    if (vlen < 0 || vlen > 2147483645) {
      this.reply(R.BAD_FORMAT);
      return Step.More;
    }
    const cache = this.session.cache;
    const ref = cache.allocate(b, ks, kl, flags, cache.exptime(exptime), vlen, mode);
    if (ref === NONE) {
      this.reply(
        cache.store.allocFailure === AllocFailure.TooLarge ? R.TOO_LARGE : R.OUT_OF_MEMORY,
      );
      this.noreply = false;
      this.swallow(vlen + 2);
      return Step.More;
    }
    this.receive(ref, vlen, mode, cas, false);
    return Step.More;
  }

  #delete(n: number): Step {
    const t = this.tokens;
    if (n < 3 || n > 5) {
      this.reply(R.ERROR);
      return Step.More;
    }
    if (n > 3) {
      const holdIsZero = t.is(2, W.zero);
      const setsNoreply = this.#noreplyMaybe(n);
      const valid = (n === 4 && (holdIsZero || setsNoreply)) ||
        (n === 5 && holdIsZero && setsNoreply);
      if (!valid) {
        this.reply(R.DELETE_USAGE);
        return Step.More;
      }
    }
    const kl = t.len(1);
    if (kl > KEY_MAX_LENGTH) {
      this.reply(R.BAD_FORMAT);
      return Step.More;
    }
    this.reply(this.session.cache.delete(t.buf, t.start[1], kl) ? R.DELETED : R.NOT_FOUND);
    return Step.More;
  }

  #arith(incr: boolean, n: number): Step {
    const t = this.tokens;
    if (n !== 4 && n !== 5) {
      this.reply(R.ERROR);
      return Step.More;
    }
    this.#noreplyMaybe(n);
    const kl = t.len(1);
    if (kl > KEY_MAX_LENGTH) {
      this.reply(R.BAD_FORMAT);
      return Step.More;
    }
    const delta = parseU64(t.buf, t.start[2], t.end[2]);
    if (delta === null) {
      this.reply(R.BAD_DELTA);
      return Step.More;
    }
    const cache = this.session.cache;
    switch (cache.arith(t.buf, t.start[1], kl, incr, delta)) {
      case Arith.Ok:
        if (!this.noreply) {
          this.session.out.putAscii(cache.arithValue.toString());
          this.session.out.crlf();
        }
        break;
      case Arith.NonNumeric:
        this.reply(R.NON_NUMERIC);
        break;
      case Arith.NoMemory:
        this.reply(R.OOM);
        break;
      default:
        this.reply(R.NOT_FOUND);
    }
    return Step.More;
  }

  #touch(n: number): Step {
    const t = this.tokens;
    if (n !== 4 && n !== 5) {
      this.reply(R.ERROR);
      return Step.More;
    }
    this.#noreplyMaybe(n);
    const kl = t.len(1);
    if (kl > KEY_MAX_LENGTH) {
      this.reply(R.BAD_FORMAT);
      return Step.More;
    }
    const e = parseI32(t.buf, t.start[2], t.end[2]);
    if (e === null) {
      this.reply(R.BAD_EXPTIME);
      return Step.More;
    }
    const cache = this.session.cache;
    const ref = cache.touch(t.buf, t.start[1], kl, cache.exptime(e));
    this.reply(ref === NONE ? R.NOT_FOUND : R.TOUCHED);
    return Step.More;
  }

  #stats(n: number): Step {
    const t = this.tokens;
    const cache = this.session.cache;
    const out = this.session.out;
    if (n > 2 && t.is(1, W.reset)) {
      cache.resetStats();
      out.put(R.RESET);
      return Step.More;
    }
    const group = n > 2 ? t.text(1) : "";
    const rows = group === "conns" ? this.session.connectionRows() : statsGroup(cache, group);
    if (rows === null) {
      out.put(R.ERROR);
      return Step.More;
    }
    for (const [name, value] of rows) {
      out.put(R.STAT);
      out.putAscii(name);
      out.putByte(32);
      out.putAscii(String(value));
      out.crlf();
    }
    out.put(R.END);
    return Step.More;
  }

  #flushAll(n: number): Step {
    const t = this.tokens;
    if (n < 2 || n > 4) {
      this.reply(R.ERROR);
      return Step.More;
    }
    this.#noreplyMaybe(n);
    const cache = this.session.cache;
    let delay = 0;
    // As memcached: -F refuses before the delay is read, and a bad delay still counts cmd_flush.
    if (cache.config.flushEnabled && n !== (this.noreply ? 3 : 2)) {
      const d = parseI32(t.buf, t.start[1], t.end[1]);
      if (d === null) {
        cache.counters.cmd_flush++;
        this.reply(R.BAD_EXPTIME);
        return Step.More;
      }
      delay = d;
    }
    this.reply(cache.flushAll(delay) ? R.OK : R.FLUSH_DISABLED);
    return Step.More;
  }

  #verbosity(n: number): Step {
    const t = this.tokens;
    if (n !== 3 && n !== 4) {
      this.reply(R.ERROR);
      return Step.More;
    }
    this.#noreplyMaybe(n);
    const level = parseU32(t.buf, t.start[1], t.end[1]);
    if (level === null) {
      this.reply(R.BAD_FORMAT);
      return Step.More;
    }
    this.session.cache.config.verbose = Math.min(level, 2);
    this.reply(R.OK);
    return Step.More;
  }

  #shutdown(n: number): Step {
    if (!this.session.cache.config.enableShutdown) {
      this.reply(R.SHUTDOWN_DISABLED);
      return Step.More;
    }
    if (n === 2) {
      this.session.shutdown(false);
      return Step.Abort;
    }
    if (n === 3 && this.tokens.is(1, W.graceful)) {
      this.session.shutdown(true);
      return Step.Abort;
    }
    this.reply(R.SHUTDOWN_MODE);
    return Step.More;
  }

  #memlimit(n: number): Step {
    const t = this.tokens;
    if (n !== 3 && n !== 4) {
      this.reply(R.ERROR);
      return Step.More;
    }
    this.#noreplyMaybe(n);
    const mb = parseU32(t.buf, t.start[1], t.end[1]);
    if (mb === null) this.reply(R.ERROR);
    else if (mb < 8) this.reply(R.MEMLIMIT_SMALL);
    else if (mb > 1000000000) this.reply(R.MEMLIMIT_UNITS);
    else {
      this.session.cache.store.setLimit(mb * 1024 * 1024);
      this.reply(R.OK);
    }
    return Step.More;
  }
}

const STORE_REPLIES: Record<StoreResult, Uint8Array> = {
  [StoreResult.Stored]: R.STORED,
  [StoreResult.NotStored]: R.NOT_STORED,
  [StoreResult.Exists]: R.EXISTS,
  [StoreResult.NotFound]: R.NOT_FOUND,
  // Only append/prepend fail this way; memcached answers them NOT_STORED.
  [StoreResult.NoMemory]: R.NOT_STORED,
  [StoreResult.TooLarge]: R.NOT_STORED,
};
