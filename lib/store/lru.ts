/**
 * Per-class LRU lists of the slab store: doubly linked through the items' `W_PREV`/`W_NEXT`
 * header words, with heads, tails and counts in typed arrays indexed by class id.
 *
 * @module
 */
import { NONE } from "./store.ts";
import { type SlabPages, W_NEXT, W_PREV } from "./slab_pages.ts";

/** One LRU per slab class; every operation is O(1) and allocates nothing. */
export class Lru {
  /** Most recently used item per class (or NONE). */
  readonly head: Int32Array;
  /** Least recently used item per class (or NONE). */
  readonly tail: Int32Array;
  /** Items per class. */
  readonly count: Int32Array;

  constructor(private readonly mem: SlabPages, classes: number) {
    this.head = new Int32Array(classes).fill(NONE);
    this.tail = new Int32Array(classes).fill(NONE);
    this.count = new Int32Array(classes);
  }

  /** Puts `ref`, which must not be in a list, at the head of class `c`. */
  push(c: number, ref: number): void {
    const mem = this.mem;
    const head = this.head[c];
    mem.setWord(ref, W_PREV, NONE);
    mem.setWord(ref, W_NEXT, head);
    if (head === NONE) this.tail[c] = ref;
    else mem.setWord(head, W_PREV, ref);
    this.head[c] = ref;
    this.count[c]++;
  }

  /** Takes `ref`, which must be in class `c`'s list, out of it. */
  remove(c: number, ref: number): void {
    const mem = this.mem;
    const prev = mem.word(ref, W_PREV);
    const next = mem.word(ref, W_NEXT);
    if (prev === NONE) this.head[c] = next;
    else mem.setWord(prev, W_NEXT, next);
    if (next === NONE) this.tail[c] = prev;
    else mem.setWord(next, W_PREV, prev);
    this.count[c]--;
  }

  /** Points the neighbours of an item that moved to chunk `to` (header copied) at `to`. */
  moved(c: number, to: number): void {
    const mem = this.mem;
    const prev = mem.word(to, W_PREV);
    const next = mem.word(to, W_NEXT);
    if (prev === NONE) this.head[c] = to;
    else mem.setWord(prev, W_NEXT, to);
    if (next === NONE) this.tail[c] = to;
    else mem.setWord(next, W_PREV, to);
  }

  /** Moves `ref`, which must be in class `c`'s list, to its head. */
  toHead(c: number, ref: number): void {
    if (this.head[c] === ref) return;
    this.remove(c, ref);
    this.push(c, ref);
  }
}
