/**
 * Building binary-protocol requests for tests: any header field can be set (or made to lie), and
 * the extras of the common commands.
 *
 * @module
 */
import { latin1 } from "./client.ts";

/** A request's fields; the overrides build malformed headers. */
export interface Req {
  op: number;
  key?: string | Uint8Array;
  extras?: Uint8Array;
  value?: string | Uint8Array;
  cas?: bigint;
  opaque?: number;
  /** Overrides, to build malformed headers. */
  magic?: number;
  keylen?: number;
  bodylen?: number;
}

function asBytes(v: string | Uint8Array | undefined): Uint8Array {
  return v === undefined ? new Uint8Array(0) : typeof v === "string" ? latin1(v) : v;
}

/** The request's bytes. */
export function req(r: Req): Uint8Array {
  const key = asBytes(r.key);
  const ext = r.extras ?? new Uint8Array(0);
  const val = asBytes(r.value);
  const b = new Uint8Array(24 + ext.length + key.length + val.length);
  const dv = new DataView(b.buffer);
  b[0] = r.magic ?? 0x80;
  b[1] = r.op;
  dv.setUint16(2, r.keylen ?? key.length);
  b[4] = ext.length;
  dv.setUint32(8, r.bodylen ?? ext.length + key.length + val.length);
  dv.setUint32(12, r.opaque ?? 0);
  dv.setBigUint64(16, r.cas ?? 0n);
  b.set(ext, 24);
  b.set(key, 24 + ext.length);
  b.set(val, 24 + ext.length + key.length);
  return b;
}

/** Big-endian u32 fields. */
export function u32s(...values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 4);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => dv.setUint32(i * 4, v));
  return b;
}

/** Set/Add/Replace extras. */
export const setExt = (flags = 0, exptime = 0) => u32s(flags, exptime);

/** Incr/Decr extras. */
export function arithExt(delta: bigint, initial: bigint, exptime: number): Uint8Array {
  const b = new Uint8Array(20);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(0, delta);
  dv.setBigUint64(8, initial);
  dv.setUint32(16, exptime);
  return b;
}
