/**
 * The shared pool of connection buffers, as memcached 1.6 shares its read buffers: a
 * connection takes a buffer while it has unread input or unsent replies and gives it back when
 * both are empty. With a thousand mostly idle connections the few buffers in use stay in the
 * CPU's caches and TLB, where one buffer per connection would be cold at every request; on a VM
 * whose system calls flush the TLB that cold memory decided a light load's latency (README,
 * What decides (4)). Everything runs on the one event loop, so the pool needs no lock.
 *
 * @module
 */

/** Bytes of each pooled buffer: the size readers and reply buffers start with. */
export const POOLED_SIZE = 16 * 1024;
/** Buffers the pool keeps at most; more given back are left to the collector. */
const POOL_MAX = 256;

const free: Uint8Array[] = [];

/** A buffer of `POOLED_SIZE` bytes, from the pool when it has one. Its contents are stale. */
export function takeBuffer(): Uint8Array {
  return free.pop() ?? new Uint8Array(POOLED_SIZE);
}

/** Gives back a buffer no one will touch again; false (and nothing kept) if it is not pooled. */
export function giveBuffer(buf: Uint8Array): boolean {
  if (buf.length !== POOLED_SIZE || buf.byteOffset !== 0 || free.length >= POOL_MAX) {
    return false;
  }
  free.push(buf);
  return true;
}

/** Buffers waiting in the pool (for the tests). */
export function pooledBuffers(): number {
  return free.length;
}
