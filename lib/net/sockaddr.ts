/**
 * Numeric IPv4/IPv6 addresses and Linux's `sockaddr_in`/`sockaddr_in6`, for the epoll engine.
 * Addresses are parsed and printed the way Deno's own sockets show them (`127.0.0.1`, `::1`).
 *
 * @module
 */

/** Dotted quad as inet_pton takes it: no leading zeros. */
const V4 = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

/** The 4 or 16 bytes of a numeric IPv4 or IPv6 address (brackets allowed), or null. */
export function parseIp(host: string): Uint8Array | null {
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const v4 = V4.exec(host);
  if (v4 !== null) {
    const b = v4.slice(1).map(Number);
    return b.every((x) => x <= 255) ? new Uint8Array(b) : null;
  }
  if (!host.includes(":") || host.includes("%")) return null;
  const halves = host.split("::");
  if (halves.length > 2) return null;
  // An embedded IPv4 address may only end the address.
  const groups = (s: string, last: boolean): number[] | null => {
    if (s === "") return [];
    const out: number[] = [];
    const parts = s.split(":");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (last && i === parts.length - 1 && p.includes(".")) {
        const tail = parseIp(p);
        if (tail === null || tail.length !== 4) return null;
        out.push((tail[0] << 8) | tail[1], (tail[2] << 8) | tail[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) out.push(parseInt(p, 16));
      else return null;
    }
    return out;
  };
  const head = groups(halves[0], halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1], true) : [];
  if (head === null || tail === null) return null;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return null;
  const all = [...head, ...new Array(fill).fill(0), ...tail];
  const ip = new Uint8Array(16);
  all.forEach((g, i) => {
    ip[2 * i] = g >> 8;
    ip[2 * i + 1] = g & 0xff;
  });
  return ip;
}

/** `struct sockaddr_in` (16 bytes) or `struct sockaddr_in6` (28 bytes) for `ip` and `port`. */
export function encodeSockaddr(ip: Uint8Array, port: number): Uint8Array {
  const sa = new Uint8Array(ip.length === 4 ? 16 : 28);
  const v = new DataView(sa.buffer);
  v.setUint16(0, ip.length === 4 ? 2 : 10, true);
  v.setUint16(2, port, false);
  sa.set(ip, ip.length === 4 ? 4 : 8);
  return sa;
}

/** The TCP address a `sockaddr_in`/`sockaddr_in6` holds. */
export function decodeSockaddr(sa: Uint8Array): Deno.NetAddr {
  const v = new DataView(sa.buffer, sa.byteOffset);
  const port = v.getUint16(2, false);
  if (v.getUint16(0, true) === 2) {
    return { transport: "tcp", hostname: Array.from(sa.subarray(4, 8)).join("."), port };
  }
  return { transport: "tcp", hostname: formatV6(sa.subarray(8, 24)), port };
}

/**
 * RFC 5952 text: lower-case hex, the longest run of two or more zero groups as `::`, and an
 * IPv4-mapped address in dotted form.
 */
function formatV6(ip: Uint8Array): string {
  if (ip.subarray(0, 10).every((b) => b === 0) && ip[10] === 0xff && ip[11] === 0xff) {
    return `::ffff:${Array.from(ip.subarray(12)).join(".")}`; // IPv4-mapped, as inet_ntop
  }
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((ip[i] << 8) | ip[i + 1]);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}
