/**
 * memcached 1.6.18's meta commands (proto_text.c): `mg`, `ms`, `md`, `ma`, `mn` and `me`,
 * with every flag that version knows, its reply codes (`VA HD EN NS EX NF MN ME`), its return
 * flags echoed in request order, its quiet mode (`q` hides `EN` for mg and `HD` for ms, md and
 * ma — for ma also a `VA` — as 1.6.18 does) and its error strings word for word.
 *
 * Keys and values stay bytes: keys are read from the request line by offset (or decoded
 * into a per-connection buffer for `b`), values are copied once into the store and once out.
 * Accounting mirrors memcached's: meta commands bump the get/touch/delete/incr counters the
 * way proto_text.c does, which is not always the way the classic commands do (an `N` vivify
 * counts as a get hit, `md I` counts nothing), and only `me` counts `cmd_meta`.
 *
 * @module
 */
import { Arith, type Cache } from "../cache.ts";
import { bytes, type ReplyBuffer } from "../reply.ts";
import { AllocFailure, type ItemRef, Mode, NONE, type Store, StoreResult } from "../store/store.ts";
import { encodeBase64, encodedLength } from "./base64.ts";
import { MetaFlags } from "./meta_flags.ts";
import { ClassCounter } from "../stats.ts";
import { parseI32 } from "./numbers.ts";
import { KEY_MAX_LENGTH, type MetaCommands, type TextProtocol } from "./text.ts";
import type { Tokens } from "./tokens.ts";

/** memcached's MFLAG_MAX_OPT_LENGTH: more tokens than this (counting a terminal one) is refused. */
const MAX_TOKENS = 20;
/** memcached's MFLAG_MAX_OPAQUE_LENGTH, counting the `O`. */
const OPAQUE_MAX = 32;
/** The largest data length `ms` accepts (INT_MAX - 2). */
const VALUE_MAX = 2147483645;

const R = {
  HD: bytes("HD"),
  VA: bytes("VA "),
  EN: bytes("EN"),
  EX: bytes("EX"),
  NF: bytes("NF"),
  NS: bytes("NS"),
  MN: bytes("MN\r\n"),
  ME: bytes("ME "),
  EXP: bytes(" exp="),
  LA: bytes(" la="),
  CAS: bytes(" cas="),
  FETCH_YES: bytes(" fetch=yes"),
  FETCH_NO: bytes(" fetch=no"),
  CLS: bytes(" cls="),
  SIZE: bytes(" size="),
  EN_LINE: bytes("EN\r\n"),
  ERROR: bytes("ERROR\r\n"),
  BAD_FORMAT: bytes("CLIENT_ERROR bad command line format\r\n"),
  BAD_CHUNK: bytes("CLIENT_ERROR bad data chunk\r\n"),
  MG_TOO_LONG: bytes("CLIENT_ERROR options flags are too long\r\n"),
  TOO_LONG: bytes("CLIENT_ERROR options flags too long\r\n"),
  INVALID_OR_DUPLICATE: bytes("CLIENT_ERROR invalid or duplicate flag\r\n"),
  OPAQUE_TOO_LONG: bytes("CLIENT_ERROR opaque token too long\r\n"),
  MS_MODE: bytes("CLIENT_ERROR invalid mode for ms M token\r\n"),
  MA_MODE: bytes("CLIENT_ERROR invalid mode for ma M token\r\n"),
  NON_NUMERIC: bytes("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
  TOO_LARGE: bytes("SERVER_ERROR object too large for cache\r\n"),
  OUT_OF_MEMORY_STORING: bytes("SERVER_ERROR out of memory storing object\r\n"),
  OUT_OF_MEMORY: bytes("SERVER_ERROR out of memory\r\n"),
  OUT_OF_MEMORY_CREATING: bytes("SERVER_ERROR Out of memory allocating new item\r\n"),
} as const;

/** Request and reply bytes. */
const B = {
  space: 32,
  minus: 45,
  plus: 43,
  zero: 48,
  one: 49,
  g: 103,
  s: 115,
  d: 100,
  n: 110,
  a: 97,
  e: 101,
  b: 98,
  c: 99,
  f: 102,
  h: 104,
  k: 107,
  l: 108,
  t: 116,
  D: 68,
  E: 69,
  A: 65,
  I: 73,
  N: 78,
  O: 79,
  P: 80,
  R: 82,
  S: 83,
  T: 84,
  W: 87,
  X: 88,
  Z: 90,
} as const;

/** The meta commands of one connection (it keeps the reply flags of an `ms` awaiting data). */
export class MetaProtocol implements MetaCommands {
  readonly #f = new MetaFlags();
  /** The `ms` awaiting its data block: what its reply needs. */
  readonly #setKey = new Uint8Array(KEY_MAX_LENGTH);
  #setKeyLen = 0;
  #setBinary = false;
  #setQuiet = false;
  #setAppend = false;
  readonly #setOpaque = new Uint8Array(OPAQUE_MAX);
  #setOpaqueLen = 0;
  /** Return flags (`O`, `k`, `c`) in request order. */
  readonly #setOrder = new Uint8Array(3);
  #setOrderLen = 0;
  /** `ms I` with an older CAS: store the value as stale, keeping these from the old item. */
  #stale = false;
  #staleExptime = 0;
  #staleWinSent = false;
  /** Scratch for the initial value of an `ma N`. */
  readonly #digits = new Uint8Array(20);

  command(t: TextProtocol, tokens: Tokens): void {
    switch (tokens.buf[tokens.start[0] + 1]) {
      case B.g:
        return this.#get(t, tokens);
      case B.s:
        return this.#set(t, tokens);
      case B.d:
        return this.#delete(t, tokens);
      case B.a:
        return this.#arith(t, tokens);
      case B.e:
        return this.#debug(t, tokens);
      case B.n:
        return t.session.out.put(R.MN);
      default:
        return t.session.out.put(R.ERROR);
    }
  }

  /** `mg <key> <flags>*` */
  #get(t: TextProtocol, tk: Tokens): void {
    const out = t.session.out;
    const n = tk.count + 1;
    if (n < 3) return out.put(R.ERROR);
    if (tk.len(1) > KEY_MAX_LENGTH) return out.put(R.BAD_FORMAT);
    if (n > MAX_TOKENS) return out.put(R.MG_TOO_LONG);
    const cache = t.session.cache;
    const store = cache.store;
    const now = cache.now();
    const f = this.#f;
    if (!f.parse(tk, 2, now)) return out.put(f.error);

    let ref = store.find(f.key, f.keyOff, f.keyLen);
    let created = false;
    if (ref === NONE && f.vivify) {
      ref = vivify(store, f);
      created = ref !== NONE;
    }
    const mark = out.pos;
    if (ref === NONE) {
      cache.counters.cmd_get++;
      cache.counters.get_misses++;
      out.put(R.EN);
      if (!this.#echo(out, tk, 2, mark)) return;
      out.crlf();
      if (f.noReply) out.pos = mark;
      return;
    }

    const vlen = store.valueLength(ref);
    if (f.value) {
      out.put(R.VA);
      out.putUint(vlen);
    } else {
      out.put(R.HD);
    }
    let won = false;
    let touched = false;
    for (let i = 2; i < tk.count; i++) {
      switch (tk.buf[tk.start[i]]) {
        case B.T:
          store.touch(ref, f.exptime);
          touched = true;
          break;
        case B.N:
          if (created) {
            store.touch(ref, f.autovivExptime);
            won = true;
          }
          break;
        case B.R: {
          const exptime = store.exptime(ref);
          if (!store.winSent(ref) && !created && exptime !== 0 && exptime < f.recacheTime) {
            won = true;
          }
          break;
        }
        case B.s:
          flag(out, B.s);
          out.putUint(vlen);
          break;
        case B.t:
          putTtl(out, store.exptime(ref), now);
          break;
        case B.c:
          flag(out, B.c);
          out.putUint(store.cas(ref));
          break;
        case B.f:
          flag(out, B.f);
          out.putUint(store.flags(ref));
          break;
        case B.l:
          flag(out, B.l);
          out.putUint((now - store.lastAccess(ref)) >>> 0);
          break;
        case B.h:
          flag(out, B.h);
          out.putByte(store.fetched(ref) ? B.one : B.zero);
          break;
        case B.O:
          if (!putOpaque(out, tk, i, mark)) {
            // memcached bumped the item on lookup unless flags made it delay the bump
            if (!f.locked && !f.noUpdate) store.bump(ref);
            return;
          }
          break;
        case B.k:
          putKey(out, f.key, f.keyOff, f.keyLen, f.keyBinary);
          break;
      }
    }
    const sent = store.winSent(ref);
    if (sent) flag(out, B.Z);
    if (store.stale(ref)) {
      flag(out, B.X);
      if (!sent) won = true;
    }
    if (won) {
      flag(out, B.W);
      store.setWinSent(ref, true);
    }
    out.crlf();
    if (f.value) {
      out.putValue(store, ref, vlen, true);
      out.crlf();
    }
    countHit(cache, ref, touched);
    if (!f.noUpdate) store.bump(ref);
  }

  /** `ms <key> <datalen> <flags>*` — the reply is written by `finishSet` once the data is in. */
  #set(t: TextProtocol, tk: Tokens): void {
    const out = t.session.out;
    const n = tk.count + 1;
    if (n < 3) return out.put(R.ERROR);
    if (tk.len(1) > KEY_MAX_LENGTH || n === 3) return out.put(R.BAD_FORMAT);
    if (n > MAX_TOKENS) return out.put(R.TOO_LONG);
    const vlen = parseI32(tk.buf, tk.start[2], tk.end[2]);
    if (vlen === null || vlen < 0 || vlen > VALUE_MAX) return out.put(R.BAD_FORMAT);
    // From here on memcached knows the data length and swallows the data block on error.
    const cache = t.session.cache;
    const store = cache.store;
    const f = this.#f;
    if (!f.parse(tk, 3, cache.now())) return refuse(t, f.error, vlen);

    let error: Uint8Array | null = null;
    let wantKey = false;
    this.#setOrderLen = 0;
    for (let i = 3; i < tk.count; i++) {
      const s = tk.start[i];
      const c = tk.buf[s];
      if (c === B.O) {
        const len = tk.len(i);
        if (len > OPAQUE_MAX) {
          error = R.OPAQUE_TOO_LONG;
          continue;
        }
        copy(tk.buf, s, len, this.#setOpaque);
        this.#setOpaqueLen = len;
      } else if (c === B.k) {
        wantKey = true;
      } else if (c !== B.c) {
        continue;
      }
      this.#setOrder[this.#setOrderLen++] = c;
    }
    let mode: Mode;
    switch (f.mode) {
      case 0:
      case B.S:
        mode = Mode.Set;
        break;
      case B.E:
        mode = Mode.Add;
        break;
      case B.A:
        mode = Mode.Append;
        break;
      case B.P:
        mode = Mode.Prepend;
        break;
      case B.R:
        mode = Mode.Replace;
        break;
      default:
        return refuse(t, R.MS_MODE, vlen);
    }
    if (error !== null) return refuse(t, error, vlen);

    this.#setAppend = mode === Mode.Append || mode === Mode.Prepend;
    this.#stale = false;
    let cas = 0;
    if (f.hasCas && mode !== Mode.Add) {
      // Set and replace become memcached's `cas` (a C0 never matches); append and prepend
      // compare only a non-zero CAS; add ignores it.
      cas = this.#setAppend ? f.cas : f.cas === 0 ? -1 : f.cas;
      if (f.setStale && f.cas !== 0 && !this.#setAppend) cas = this.#staleCas(store, f);
    }
    this.#setQuiet = f.noReply;
    this.#setBinary = f.keyBinary;
    if (wantKey) {
      copy(f.key, f.keyOff, f.keyLen, this.#setKey);
      this.#setKeyLen = f.keyLen;
    }

    // memcached's mset drops the old item on a failed allocation whatever the mode.
    const ref = cache.allocate(
      f.key,
      f.keyOff,
      f.keyLen,
      f.clientFlags,
      f.exptime,
      vlen,
      Mode.Set,
    );
    if (ref === NONE) {
      const tooLarge = store.allocFailure === AllocFailure.TooLarge;
      return refuse(t, tooLarge ? R.TOO_LARGE : R.OUT_OF_MEMORY_STORING, vlen);
    }
    t.receive(ref, vlen, mode, cas, true);
  }

  /**
   * `ms I C<cas>` with a CAS older than the item's: memcached stores the value anyway, marked
   * stale, keeping the old item's TTL and win-token bit. Returns the CAS to link with.
   */
  #staleCas(store: Store, f: MetaFlags): number {
    const old = store.find(f.key, f.keyOff, f.keyLen);
    if (old === NONE) return f.cas;
    const current = store.cas(old);
    if (f.cas >= current) return f.cas;
    this.#stale = true;
    this.#staleExptime = store.exptime(old);
    this.#staleWinSent = store.winSent(old);
    return current;
  }

  finishSet(t: TextProtocol, result: StoreResult | -1): void {
    const out = t.session.out;
    if (result === -1) return out.put(R.BAD_CHUNK); // (counted by `Cache.discard`)
    const store = t.session.cache.store;
    let code: Uint8Array = R.NS;
    let cas = 0;
    switch (result) {
      case StoreResult.Stored: {
        const ref = store.linked;
        if (this.#stale) {
          store.setStale(ref, true);
          store.touch(ref, this.#staleExptime);
          store.setWinSent(ref, this.#staleWinSent);
        }
        if (this.#setQuiet) return;
        cas = store.cas(ref);
        code = R.HD;
        break;
      }
      case StoreResult.Exists:
        code = R.EX;
        break;
      case StoreResult.NotFound:
        // a CAS append/prepend finding no item is "not stored", as in memcached
        if (!this.#setAppend) code = R.NF;
        break;
    }
    out.put(code);
    for (let i = 0; i < this.#setOrderLen; i++) {
      switch (this.#setOrder[i]) {
        case B.O:
          out.putByte(B.space);
          putBytes(out, this.#setOpaque, 0, this.#setOpaqueLen);
          break;
        case B.k:
          putKey(out, this.#setKey, 0, this.#setKeyLen, this.#setBinary);
          break;
        case B.c:
          flag(out, B.c);
          out.putUint(cas);
          break;
      }
    }
    out.crlf();
  }

  /** `md <key> <flags>*` */
  #delete(t: TextProtocol, tk: Tokens): void {
    const out = t.session.out;
    const n = tk.count + 1;
    if (n < 3) return out.put(R.ERROR);
    if (tk.len(1) > KEY_MAX_LENGTH) return out.put(R.BAD_FORMAT);
    if (n > MAX_TOKENS) return out.put(R.TOO_LONG);
    const cache = t.session.cache;
    const store = cache.store;
    const f = this.#f;
    if (!f.parse(tk, 2, cache.now())) return out.put(R.INVALID_OR_DUPLICATE);

    const mark = out.pos;
    out.put(R.HD); // the code is filled in below
    if (!this.#echo(out, tk, 2, mark)) return;
    const ref = store.find(f.key, f.keyOff, f.keyLen);
    let code: Uint8Array = R.HD;
    if (ref === NONE) {
      cache.counters.delete_misses++;
      code = R.NF;
    } else if (f.hasCas && store.cas(ref) !== f.cas) {
      cache.counters.delete_misses++;
      code = R.EX;
    } else if (f.setStale) {
      if (f.newTtl) store.touch(ref, f.exptime);
      store.setStale(ref, true);
      store.setWinSent(ref, false);
      store.renewCas(ref);
    } else {
      cache.classCounters.bump(ClassCounter.delete_hits, store.slabClass(ref));
      cache.counters.delete_hits++;
      store.unlink(ref);
    }
    if (code === R.HD && f.noReply) {
      out.pos = mark;
      return;
    }
    out.buf[mark] = code[0];
    out.buf[mark + 1] = code[1];
    out.crlf();
  }

  /** `ma <key> <flags>*` */
  #arith(t: TextProtocol, tk: Tokens): void {
    const out = t.session.out;
    const n = tk.count + 1;
    if (n < 3) return out.put(R.ERROR);
    if (tk.len(1) > KEY_MAX_LENGTH) return out.put(R.BAD_FORMAT);
    if (n > MAX_TOKENS) return out.put(R.TOO_LONG);
    const cache = t.session.cache;
    const store = cache.store;
    const now = cache.now();
    const f = this.#f;
    if (!f.parse(tk, 2, now)) return out.put(R.INVALID_OR_DUPLICATE);
    let incr: boolean;
    switch (f.mode) {
      case 0:
      case B.I:
      case B.plus:
        incr = true;
        break;
      case B.D:
      case B.minus:
        incr = false;
        break;
      default:
        return out.put(R.MA_MODE);
    }

    let ref = store.find(f.key, f.keyOff, f.keyLen);
    let code: Uint8Array | null = null;
    let created = false;
    let quiet = false;
    let digits = "";
    if (ref === NONE) {
      if (f.vivify) {
        digits = f.initial.toString();
        const fresh = store.alloc(f.key, f.keyOff, f.keyLen, digits.length, 0, 0);
        if (fresh === NONE) return out.put(R.OUT_OF_MEMORY_CREATING);
        for (let i = 0; i < digits.length; i++) this.#digits[i] = digits.charCodeAt(i);
        store.writeValue(fresh, 0, this.#digits, 0, digits.length);
        if (store.link(fresh, Mode.Add, 0) === StoreResult.Stored) {
          ref = store.linked;
          created = true;
        } else {
          code = R.NS;
        }
      } else {
        if (incr) cache.counters.incr_misses++;
        else cache.counters.decr_misses++;
        code = R.NF;
      }
    } else {
      switch (cache.arithOn(ref, incr, f.delta, f.cas)) {
        case Arith.Ok:
          ref = store.find(f.key, f.keyOff, f.keyLen); // the number may live in a new item
          digits = cache.arithValue.toString();
          quiet = f.noReply;
          break;
        case Arith.Exists:
          code = R.EX;
          break;
        case Arith.NoMemory:
          return out.put(R.OUT_OF_MEMORY);
        default:
          return out.put(R.NON_NUMERIC);
      }
    }

    const mark = out.pos;
    if (code !== null) {
      out.put(code);
      if (this.#echo(out, tk, 2, mark)) out.crlf();
      return;
    }
    if (f.value) {
      out.put(R.VA);
      out.putUint(digits.length);
    } else {
      out.put(R.HD);
    }
    for (let i = 2; i < tk.count; i++) {
      switch (tk.buf[tk.start[i]]) {
        case B.c:
          flag(out, B.c);
          out.putUint(store.cas(ref));
          break;
        case B.t:
          putTtl(out, store.exptime(ref), now);
          break;
        case B.T:
          store.touch(ref, f.exptime);
          break;
        case B.N:
          if (created) store.touch(ref, f.autovivExptime);
          break;
        case B.O:
          if (!putOpaque(out, tk, i, mark)) return;
          break;
        case B.k:
          putKey(out, f.key, f.keyOff, f.keyLen, f.keyBinary);
          break;
      }
    }
    if (f.value) {
      out.crlf();
      out.putAscii(digits);
    }
    out.crlf();
    if (quiet) out.pos = mark;
  }

  /** `me <key> [b]` */
  #debug(t: TextProtocol, tk: Tokens): void {
    const out = t.session.out;
    const n = tk.count + 1;
    if (n < 3 || tk.len(1) > KEY_MAX_LENGTH) return out.put(R.BAD_FORMAT);
    const cache = t.session.cache;
    const store = cache.store;
    const f = this.#f;
    let key = tk.buf;
    let off = tk.start[1];
    let len = tk.len(1);
    const binary = n >= 4 && tk.len(2) === 1 && tk.buf[tk.start[2]] === B.b;
    if (binary) {
      if (!f.decodeKey(tk)) return out.put(R.BAD_FORMAT);
      key = f.key;
      off = f.keyOff;
      len = f.keyLen;
    }
    const ref = store.find(key, off, len);
    if (ref === NONE) {
      out.put(R.EN_LINE);
    } else {
      const now = cache.now();
      const exptime = store.exptime(ref);
      out.put(R.ME);
      if (binary) putBase64(out, key, off, len);
      else putBytes(out, key, off, len);
      out.put(R.EXP);
      putInt(out, exptime === 0 ? -1 : (now - exptime) | 0);
      out.put(R.LA);
      out.putUint((now - store.lastAccess(ref)) >>> 0);
      out.put(R.CAS);
      out.putUint(store.cas(ref));
      out.put(store.fetched(ref) ? R.FETCH_YES : R.FETCH_NO);
      out.put(R.CLS);
      out.putUint(store.slabClass(ref));
      out.put(R.SIZE);
      out.putUint(store.itemSize(ref));
      out.crlf();
    }
    cache.counters.cmd_meta++;
  }

  /**
   * Echoes the `O` and `k` flags of a reply without an item (and of md); on an over-long
   * opaque, replaces everything from `mark` with the error and returns false.
   */
  #echo(out: ReplyBuffer, tk: Tokens, first: number, mark: number): boolean {
    const f = this.#f;
    for (let i = first; i < tk.count; i++) {
      const c = tk.buf[tk.start[i]];
      if (c === B.O) {
        if (!putOpaque(out, tk, i, mark)) return false;
      } else if (c === B.k) {
        putKey(out, f.key, f.keyOff, f.keyLen, f.keyBinary);
      }
    }
    return true;
  }
}

/** Sends `error` and discards the data block of a refused `ms`. */
function refuse(t: TextProtocol, error: Uint8Array, vlen: number): void {
  t.session.out.put(error);
  t.swallow(vlen + 2);
}

/** Creates the empty item of an `mg N` on a miss (flags 0, no TTL yet); `NONE` when it cannot. */
function vivify(store: Store, f: MetaFlags): ItemRef {
  const ref = store.alloc(f.key, f.keyOff, f.keyLen, 0, 0, 0);
  if (ref === NONE) return NONE;
  return store.link(ref, Mode.Add, 0) === StoreResult.Stored ? store.linked : NONE;
}

/** Copies `src[off, off + len)` to the start of `dst` (short runs: keys, opaques). */
function copy(src: Uint8Array, off: number, len: number, dst: Uint8Array): void {
  for (let i = 0; i < len; i++) dst[i] = src[off + i];
}

/** Counts an `mg` that found (or made) an item: a touch when it had `T`, else a get. */
function countHit(cache: Cache, ref: ItemRef, touched: boolean): void {
  const cls = cache.store.slabClass(ref);
  if (touched) {
    cache.counters.cmd_touch++;
    cache.counters.touch_hits++;
    cache.classCounters.bump(ClassCounter.touch_hits, cls);
  } else {
    cache.counters.cmd_get++;
    cache.counters.get_hits++;
    cache.classCounters.bump(ClassCounter.get_hits, cls);
  }
}

/** Appends ` <c>`. */
function flag(out: ReplyBuffer, c: number): void {
  out.putByte(B.space);
  out.putByte(c);
}

/** Appends ` t<remaining TTL>` (`-1` for none), wrapped to u32 as memcached prints it. */
function putTtl(out: ReplyBuffer, exptime: number, now: number): void {
  flag(out, B.t);
  if (exptime === 0) putInt(out, -1);
  else out.putUint((exptime - now) >>> 0);
}

/** Appends ` <token i>` (an `O` flag); false, with the error replacing the reply, when too long. */
function putOpaque(out: ReplyBuffer, tk: Tokens, i: number, mark: number): boolean {
  const len = tk.len(i);
  if (len > OPAQUE_MAX) {
    out.pos = mark;
    out.put(R.OPAQUE_TOO_LONG);
    return false;
  }
  out.putByte(B.space);
  putBytes(out, tk.buf, tk.start[i], len);
  return true;
}

/** Appends ` k<key>`, or ` k<base64 key> b` for a binary key. */
function putKey(
  out: ReplyBuffer,
  key: Uint8Array,
  off: number,
  len: number,
  binary: boolean,
): void {
  flag(out, B.k);
  if (!binary) {
    putBytes(out, key, off, len);
    return;
  }
  putBase64(out, key, off, len);
  flag(out, B.b);
}

/** Appends `src[off, off + len)` byte by byte (short runs; no view is made). */
function putBytes(out: ReplyBuffer, src: Uint8Array, off: number, len: number): void {
  out.reserve(len);
  const buf = out.buf;
  let p = out.pos;
  for (let i = 0; i < len; i++) buf[p++] = src[off + i];
  out.pos = p;
}

/** Appends the base64 encoding of `key[off, off + len)`. */
function putBase64(out: ReplyBuffer, key: Uint8Array, off: number, len: number): void {
  out.reserve(encodedLength(len));
  out.pos += encodeBase64(key, off, len, out.buf, out.pos);
}

/** Appends a signed integer. */
function putInt(out: ReplyBuffer, n: number): void {
  if (n < 0) {
    out.putByte(B.minus);
    n = -n;
  }
  out.putUint(n);
}
