/**
 * Slab memory: fixed-size `ArrayBuffer` pages carved into chunks of size classes, as memcached's
 * slabs.c does, with per-class free lists and chunk headers kept inside the pages themselves.
 * No per-chunk JS object exists; a chunk is addressed by a number (`ItemRef`):
 * `page << shift | byteOffset / 8`, always in [0, 2^31).
 *
 * Every chunk starts with a header of 32-bit words (indices `W_*`). A free chunk uses
 * `W_PREV`/`W_NEXT` for its class's doubly linked free list and `W_META` for `B_FREE`.
 *
 * @module
 */
import { libc } from "../net/libc.ts";
import type { ArenaPage, LargePages } from "./large_pages.ts";
import { NONE } from "./store.ts";

/** Bytes of the header that starts an item's first chunk. */
export const ITEM_HEADER = 48;
/** Bytes of the header that starts each continuation chunk of a large (chained) item. */
export const CHUNK_HEADER = 16;

/** Item header word: next item in the hash bucket chain (or NONE). */
export const W_HNEXT = 0;
/** Item header word: LRU previous (towards the head); free list previous when free. */
export const W_PREV = 1;
/** Item header word: LRU next (towards the tail); free list next when free. */
export const W_NEXT = 2;
/** Header word of every chunk: key length (bits 0-15) and the `B_*` bits. */
export const W_META = 3;
/** Item header word: value length in bytes. */
export const W_NBYTES = 4;
/** Item header word: client flags (u32). */
export const W_FLAGS = 5;
/** Item header word: last access time (u32 seconds). */
export const W_TIME = 6;
/** Item header word: absolute exptime (u32 seconds, 0 = never). */
export const W_EXPTIME = 7;
/** Item header: the CAS value is the float64 at this index of the chunk's float64 view. */
export const F_CAS = 4;
/** Item header word: the key's hash. */
export const W_HASH = 10;
/** Item header word: first continuation chunk (or NONE). */
export const W_CHAIN = 11;
/** Continuation chunk word: next continuation chunk (or NONE). */
export const W_CNEXT = 0;
/** Continuation chunk word: the item (first chunk) it belongs to. */
export const W_CHEAD = 1;

/** `W_META` mask of the key length. */
export const KEY_MASK = 0xffff;
/** `W_META` bit: the item is visible through the hash index. */
export const B_LINKED = 1 << 16;
/** `W_META` bit: the item was fetched since it was stored. */
export const B_FETCHED = 1 << 17;
/** `W_META` bit: meta-protocol stale. */
export const B_STALE = 1 << 18;
/** `W_META` bit: meta-protocol win token sent. */
export const B_WIN = 1 << 19;
/** `W_META` bit: hit since it was last moved to the LRU head (second chance at the tail). */
export const B_ACTIVE = 1 << 20;
/** `W_META` bit: the chunk is a continuation chunk of a large item. */
export const B_CHUNK = 1 << 21;
/** `W_META` bit: the chunk is on its class's free list. */
export const B_FREE = 1 << 22;

/** memcached's MAX_NUMBER_OF_SLAB_CLASSES - 1: class ids are 1..63 at most. */
const MAX_CLASS_ID = 63;
/** Refs are below 2^31 and count 8-byte units: 16 GiB of pages at most. */
export const MAX_MEMORY = 2 ** 34;

const EMPTY_U8 = new Uint8Array(0);
const EMPTY_I32 = new Int32Array(0);
const EMPTY_F64 = new Float64Array(0);
const EMPTY_DV = new DataView(new ArrayBuffer(0));

/** How pages are carved. */
export interface SlabGeometry {
  /** Page size in bytes: a power of two in [4 KiB, 64 MiB]. */
  pageSize: number;
  /** Largest chunk (memcached's slab_chunk_max): divides the page, at most half of it. */
  chunkMax: number;
  /** Smallest chunk size (memcached: 48-byte header + `-n` 48). */
  minChunk: number;
  /** Chunk size growth factor between classes (`-f`), > 1. */
  growthFactor: number;
}

/** Bytes of a cache line, where pages start when their address can be known. */
const LINE = 64;

/**
 * A page of its own buffer, starting on a cache line when the C library can say where the
 * buffer lies, else at its start. A large buffer's bytes start 16 bytes past a page boundary
 * (glibc's chunk header), so without this every 192-byte chunk would straddle four cache
 * lines instead of three.
 */
function linedPage(size: number): ArenaPage {
  const c = libc();
  if (c === null) return { buffer: new ArrayBuffer(size), offset: 0 };
  const buffer = new ArrayBuffer(size + LINE);
  const line = BigInt(LINE);
  const offset = Number((line - c.addressOf(new Uint8Array(buffer), 0, 0) % line) % line);
  return { buffer, offset };
}

/**
 * Pages, size classes and free lists. Guarantees: never holds more than `maxPages` pages
 * (`addPage` refuses), pages are allocated only when asked for, and a released page's buffer
 * is dropped so its memory can return to the system.
 */
export class SlabPages {
  /** Bytes per page. */
  readonly pageSize: number;
  /** The largest chunk (memcached's slab_chunk_max). */
  readonly chunkMax: number;
  /** The id of the largest class; ids run 1..largest. */
  readonly largest: number;
  /** Chunk size per class id. */
  readonly chunkSize: Int32Array;
  /** Chunks per page per class id. */
  readonly perPage: Int32Array;
  /** Head of each class's free list. */
  readonly freeHead: Int32Array;
  /** Free chunks per class. */
  readonly freeCount: Int32Array;
  /** Pages per class. */
  readonly classPages: Int32Array;
  /** Right shift from a ref to its page id. */
  readonly shift: number;
  /** Mask from a ref to its 8-byte unit within the page. */
  readonly mask: number;

  /** Byte view of each page id (empty when the id is unused). */
  readonly u8: Uint8Array[] = [];
  /** Word view of each page id. */
  readonly i32: Int32Array[] = [];
  /** Float64 view of each page id. */
  readonly f64: Float64Array[] = [];
  /** `DataView` of each page id (for `copyBytes`). */
  readonly dv: DataView[] = [];
  /** Class of each page id (0 = unused). */
  pageClass = new Uint8Array(0);
  /** Chunks in use (not free) per page id. */
  pageUsed = new Int32Array(0);
  /** Chunks per page id held by items that must not move (allocated, not linked, or pinned). */
  pageReserved = new Int32Array(0);
  /** Page ids below this have been used at some time. */
  pageIds = 0;
  /** Pages currently allocated. */
  pagesInUse = 0;
  /** The most pages `addPage` may hold. */
  maxPages = 0;

  private freeIds = new Int32Array(0);
  private freeIdCount = 0;
  private readonly bySize: Uint8Array;
  /** Where each page id's memory came from, with `large` (else its own buffer). */
  private readonly arenaPages: Array<ArenaPage | null> = [];

  /** `large`: carve pages from huge-page arenas (`-L`) instead of a buffer each. */
  constructor(
    geometry: SlabGeometry,
    maxPages: number,
    private readonly large: LargePages | null = null,
  ) {
    const { pageSize, growthFactor } = geometry;
    if (!Number.isInteger(pageSize) || pageSize < 4096 || pageSize > 2 ** 26) {
      throw new RangeError(`page size ${pageSize} is not in [4 KiB, 64 MiB]`);
    }
    if ((pageSize & (pageSize - 1)) !== 0) {
      throw new RangeError(`page size ${pageSize} is not a power of two`);
    }
    if (!(growthFactor > 1)) throw new RangeError(`growth factor ${growthFactor} must be > 1`);
    const { chunkMax } = geometry;
    if (!(Number.isInteger(chunkMax) && chunkMax <= pageSize / 2 && pageSize % chunkMax === 0)) {
      throw new RangeError(`largest chunk ${chunkMax} must divide the page, at most half of it`);
    }
    this.pageSize = pageSize;
    this.chunkMax = chunkMax;
    const minChunk = align8(geometry.minChunk);
    if (!(minChunk >= ITEM_HEADER + 8 && minChunk <= this.chunkMax / 2)) {
      throw new RangeError(`minimum chunk ${geometry.minChunk} out of range`);
    }
    const sizes = [0];
    // memcached's slabs_init: grow by the factor until the next size would pass the largest.
    for (let size = minChunk; sizes.length < MAX_CLASS_ID;) {
      if (size >= this.chunkMax / growthFactor) break;
      size = align8(size);
      sizes.push(size);
      size = Math.floor(size * growthFactor);
    }
    sizes.push(this.chunkMax);
    this.largest = sizes.length - 1;
    const n = sizes.length;
    this.chunkSize = Int32Array.from(sizes);
    this.perPage = this.chunkSize.map((s) => (s === 0 ? 0 : Math.floor(pageSize / s)));
    this.freeHead = new Int32Array(n).fill(NONE);
    this.freeCount = new Int32Array(n);
    this.classPages = new Int32Array(n);
    this.bySize = new Uint8Array(this.chunkMax / 8 + 1);
    for (let k = 0, c = 1; k < this.bySize.length; k++) {
      while (this.chunkSize[c] < k * 8) c++;
      this.bySize[k] = c;
    }
    this.shift = Math.log2(pageSize) - 3;
    this.mask = (1 << this.shift) - 1;
    this.setMaxPages(maxPages);
  }

  /** Changes the page limit; pages above it stay until the caller releases them. */
  setMaxPages(maxPages: number): void {
    this.maxPages = maxPages;
    const cap = this.pageClass.length;
    if (maxPages <= cap) return;
    this.pageClass = grown(this.pageClass, new Uint8Array(maxPages));
    this.pageUsed = grown(this.pageUsed, new Int32Array(maxPages));
    this.pageReserved = grown(this.pageReserved, new Int32Array(maxPages));
    this.freeIds = grown(this.freeIds, new Int32Array(maxPages));
  }

  /** The smallest class whose chunks hold `size` bytes (`size` ≤ chunkMax). */
  classFor(size: number): number {
    return this.bySize[(size + 7) >>> 3];
  }

  /** Page id of a ref. */
  page(ref: number): number {
    return ref >>> this.shift;
  }

  /** Byte offset of a ref within its page. */
  offset(ref: number): number {
    return (ref & this.mask) << 3;
  }

  /** A header word of the chunk at `ref`. */
  word(ref: number, w: number): number {
    return this.i32[ref >>> this.shift][((ref & this.mask) << 1) + w];
  }

  /** Sets a header word of the chunk at `ref`. */
  setWord(ref: number, w: number, v: number): void {
    this.i32[ref >>> this.shift][((ref & this.mask) << 1) + w] = v;
  }

  /** The CAS of the item at `ref`. */
  cas(ref: number): number {
    return this.f64[ref >>> this.shift][(ref & this.mask) + F_CAS];
  }

  /** Sets the CAS of the item at `ref`. */
  setCas(ref: number, cas: number): void {
    this.f64[ref >>> this.shift][(ref & this.mask) + F_CAS] = cas;
  }

  /** The ref of chunk `i` of page `p`. */
  chunkRef(p: number, i: number): number {
    return (p << this.shift) | ((i * this.chunkSize[this.pageClass[p]]) >>> 3);
  }

  /** Takes a chunk of class `c` off its free list, counted as used and reserved; or NONE. */
  take(c: number): number {
    const ref = this.freeHead[c];
    if (ref === NONE) return NONE;
    const next = this.word(ref, W_NEXT);
    this.freeHead[c] = next;
    if (next !== NONE) this.setWord(next, W_PREV, NONE);
    this.freeCount[c]--;
    this.setWord(ref, W_META, 0);
    const p = ref >>> this.shift;
    this.pageUsed[p]++;
    this.pageReserved[p]++;
    return ref;
  }

  /** Returns a chunk to its class's free list; `reserved` says whether it still counts so. */
  give(ref: number, reserved: boolean): void {
    const p = ref >>> this.shift;
    this.pageUsed[p]--;
    if (reserved) this.pageReserved[p]--;
    this.pushFree(this.pageClass[p], ref);
  }

  /** Adds `delta` to the reserved count of the page holding `ref`. */
  reserve(ref: number, delta: number): void {
    this.pageReserved[ref >>> this.shift] += delta;
  }

  /** Allocates a page for class `c` and frees all its chunks; false at `maxPages`. */
  addPage(c: number): boolean {
    if (this.pagesInUse >= this.maxPages) return false;
    const p = this.freeIdCount > 0 ? this.freeIds[--this.freeIdCount] : this.pageIds++;
    const size = this.pageSize;
    const at = this.large?.take() ?? null;
    const { buffer: buf, offset: off } = at ?? linedPage(size);
    this.arenaPages[p] = at;
    this.u8[p] = new Uint8Array(buf, off, size);
    this.i32[p] = new Int32Array(buf, off, size / 4);
    this.f64[p] = new Float64Array(buf, off, size / 8);
    this.dv[p] = new DataView(buf, off, size);
    this.pagesInUse++;
    this.carve(p, c);
    return true;
  }

  /** Takes page `p`'s free chunks off its class's free list (before emptying the page). */
  detachFree(p: number): void {
    const c = this.pageClass[p];
    for (let i = 0; i < this.perPage[c]; i++) {
      const ref = this.chunkRef(p, i);
      if ((this.word(ref, W_META) & B_FREE) === 0) continue;
      const prev = this.word(ref, W_PREV);
      const next = this.word(ref, W_NEXT);
      if (prev === NONE) this.freeHead[c] = next;
      else this.setWord(prev, W_NEXT, next);
      if (next !== NONE) this.setWord(next, W_PREV, prev);
      this.freeCount[c]--;
    }
  }

  /** Marks a chunk of a detached page free without listing it (its item moved elsewhere). */
  vacate(ref: number): void {
    this.setWord(ref, W_META, B_FREE);
    this.pageUsed[ref >>> this.shift]--;
  }

  /** Gives page `p`, detached and with every chunk free, to class `c`. */
  reassign(p: number, c: number): void {
    this.classPages[this.pageClass[p]]--;
    this.carve(p, c);
  }

  /** Drops page `p`, detached and with every chunk free, returning its memory. */
  release(p: number): void {
    this.classPages[this.pageClass[p]]--;
    this.pageClass[p] = 0;
    this.u8[p] = EMPTY_U8;
    this.i32[p] = EMPTY_I32;
    this.f64[p] = EMPTY_F64;
    this.dv[p] = EMPTY_DV;
    const at = this.arenaPages[p];
    if (at) this.large!.give(at);
    this.arenaPages[p] = null;
    this.freeIds[this.freeIdCount++] = p;
    this.pagesInUse--;
  }

  private carve(p: number, c: number): void {
    this.pageClass[p] = c;
    this.pageUsed[p] = 0;
    this.pageReserved[p] = 0;
    this.classPages[c]++;
    for (let i = this.perPage[c] - 1; i >= 0; i--) this.pushFree(c, this.chunkRef(p, i));
  }

  private pushFree(c: number, ref: number): void {
    const head = this.freeHead[c];
    this.setWord(ref, W_META, B_FREE);
    this.setWord(ref, W_PREV, NONE);
    this.setWord(ref, W_NEXT, head);
    if (head !== NONE) this.setWord(head, W_PREV, ref);
    this.freeHead[c] = ref;
    this.freeCount[c]++;
  }
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

function grown<T extends Uint8Array | Int32Array>(old: T, bigger: T): T {
  bigger.set(old);
  return bigger;
}
