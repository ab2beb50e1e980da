/**
 * memcached's `-L` (`--enable-largepages`) on Linux: memory whose pages the kernel is asked to
 * back with transparent huge pages (`madvise(MADV_HUGEPAGE)`), as memcached asks for its item
 * memory. A cache's working set is spread over far more 4 KiB pages than the CPU's TLB covers,
 * so most lookups also pay for a page-table walk; 2 MiB pages take most of those away.
 *
 * Slab pages (1 MiB by default) are carved from arenas of `ARENA_BYTES`, each the 2 MiB-aligned
 * interior of one `ArrayBuffer` (a lone 1 MiB buffer never holds an aligned 2 MiB range). The
 * memory is touched only as pages are used, so the resident size still grows with the cache. A
 * released page's memory goes back to the kernel (`MADV_DONTNEED`) and its place is reused.
 *
 * @module
 */
import { type Libc, libc, MADV_DONTNEED, MADV_HUGEPAGE, readFileStart } from "../net/libc.ts";

/** The huge page size of x86-64 and of aarch64 with 4 KiB pages. */
const HUGE = 2 * 1024 * 1024;
/** Bytes of one arena (a multiple of `HUGE`); a page larger than this gets an arena of its own. */
const ARENA_BYTES = 64 * 1024 * 1024;
/** Where the kernel says whether, and when, it gives huge pages. */
const THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled";

/** A page's place in an arena: the page size's bytes at `offset` of `buffer`. */
export interface ArenaPage {
  readonly buffer: ArrayBuffer;
  readonly offset: number;
}

/** Why large pages cannot be had here, or null when they can. */
export function largePagesUnavailable(): string | null {
  if (Deno.build.os !== "linux") return "large pages are only supported on Linux";
  const c = libc();
  if (c === null) return "madvise cannot be called (no ffi permission or no libc.so.6)";
  const mode = readFileStart(c, THP_MODE);
  if (mode === null) return `the kernel offers no transparent huge pages (no ${THP_MODE})`;
  if (mode.includes("[never]")) return `transparent huge pages are off (${THP_MODE}: never)`;
  return null;
}

/**
 * Hands out page-sized pieces of huge-page-advised arenas. Guarantees: every piece lies inside
 * its buffer, starts on a `pageSize` boundary of a 2 MiB-aligned arena, and is not handed out
 * twice until it is given back.
 */
export class LargePages {
  readonly #c: Libc;
  readonly #pageSize: number;
  readonly #free: ArenaPage[] = [];
  #arena: ArrayBuffer | null = null;
  #next = 0;
  #end = 0;

  /** Large pages of `pageSize` bytes (a power of two of at least 4 KiB), or null where unavailable. */
  static open(pageSize: number): LargePages | null {
    if (largePagesUnavailable() !== null) return null;
    return new LargePages(libc()!, pageSize);
  }

  private constructor(c: Libc, pageSize: number) {
    this.#c = c;
    this.#pageSize = pageSize;
  }

  /** A page's memory, zero-filled. */
  take(): ArenaPage {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    if (this.#arena === null || this.#next + this.#pageSize > this.#end) this.#newArena();
    const page = { buffer: this.#arena!, offset: this.#next };
    this.#next += this.#pageSize;
    return page;
  }

  /** Takes back a page from `take` that nothing reads any more; its memory returns to the kernel. */
  give(page: ArenaPage): void {
    this.#advise(page.buffer, page.offset, this.#pageSize, MADV_DONTNEED);
    this.#free.push(page);
  }

  /**
   * Asks for huge pages under the 2 MiB-aligned interior of `buffer` (a large typed array that
   * is not carved into pages, such as the hash table), if it has one.
   */
  adviseBuffer(buffer: ArrayBufferLike): void {
    const from = this.#alignedFrom(buffer);
    const bytes = Math.floor((buffer.byteLength - from) / HUGE) * HUGE;
    if (bytes > 0) this.#advise(buffer, from, bytes, MADV_HUGEPAGE);
  }

  #newArena(): void {
    const bytes = Math.max(ARENA_BYTES, this.#pageSize);
    const buffer = new ArrayBuffer(bytes + HUGE);
    const from = this.#alignedFrom(buffer);
    this.#advise(buffer, from, bytes, MADV_HUGEPAGE);
    this.#arena = buffer;
    this.#next = from;
    this.#end = from + bytes;
  }

  #address(buffer: ArrayBufferLike): bigint {
    return this.#c.addressOf(new Uint8Array(buffer), 0, 0);
  }

  /** The offset of `buffer`'s first 2 MiB boundary. */
  #alignedFrom(buffer: ArrayBufferLike): number {
    const huge = BigInt(HUGE);
    return Number((huge - this.#address(buffer) % huge) % huge);
  }

  /** `madvise` over `[offset, offset + bytes)` of `buffer`, which the caller keeps inside it. */
  #advise(buffer: ArrayBufferLike, offset: number, bytes: number, advice: number): void {
    if (offset < 0 || offset + bytes > buffer.byteLength) {
      throw new RangeError("outside the buffer");
    }
    this.#c.madvise(this.#address(buffer) + BigInt(offset), BigInt(bytes), advice);
  }
}
