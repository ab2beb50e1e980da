/**
 * Least privilege after start-up. memg needs its broad Deno permissions only while it starts: to
 * read the password files and TLS certificate, load a snapshot, create the unix socket and open
 * its listeners. Once that is done, `dropPrivileges` revokes every permission the rest of the
 * run does not need — network included, since listeners already open keep accepting — so a bug
 * in the command path cannot read, write or reach anything else.
 *
 * Deno cannot narrow a grant: revoking one path of a global `--allow-read` changes nothing, and
 * revoking the global grant removes every path with it (and a revoked permission cannot be asked
 * for again without a prompt). So a file still needed after start-up keeps its permission for
 * every path; `Dropped.kept` says which, and whether the grant was global.
 *
 * @module
 */
import type { Config } from "./config.ts";

/** The Deno permissions, in the order `stats settings` lists them. */
export const PERMISSIONS = ["net", "read", "write", "env", "sys", "run", "ffi", "import"] as const;

/** One Deno permission name. */
export type PermissionName = typeof PERMISSIONS[number];

/** A permission left granted after start-up because the server still needs it for `paths`. */
export interface Kept {
  name: "read" | "write";
  paths: string[];
  /** True when the grant covers every path (`--allow-read`), not just the ones named. */
  global: boolean;
}

/** What `dropPrivileges` did. */
export interface Dropped {
  /** Permissions revoked: whatever was granted, each is refused from now on (under `--no-prompt`). */
  revoked: PermissionName[];
  kept: Kept[];
}

function descriptor(name: PermissionName): Deno.PermissionDescriptor {
  return { name } as Deno.PermissionDescriptor;
}

/**
 * The files memg touches after start-up, by the access it needs: the unix socket (`-s`),
 * removed at exit; the snapshot (`--snapshot`), written as `FILE.tmp`, renamed over `FILE`, its
 * directory opened to fsync the rename.
 */
export function filesAfterStartup(config: Config): Record<"read" | "write", string[]> {
  const read: string[] = [];
  const write: string[] = [];
  if (config.unixSocket !== null) write.push(config.unixSocket);
  const snap = config.snapshot;
  if (snap !== null) {
    const slash = snap.lastIndexOf("/");
    const dir = slash < 0 ? "." : slash === 0 ? "/" : snap.slice(0, slash);
    read.push(snap, `${snap}.tmp`, dir);
    write.push(snap, `${snap}.tmp`);
  }
  return { read, write };
}

/**
 * Revokes every permission the running server does not need (see `filesAfterStartup`): call
 * it once the listeners are open. Network, environment, system information, subprocesses, FFI
 * and imports are always revoked; read and write are revoked unless a file still needs them.
 */
export function dropPrivileges(config: Config): Dropped {
  const files = filesAfterStartup(config);
  const revoked: PermissionName[] = [];
  const kept: Kept[] = [];
  for (const name of PERMISSIONS) {
    if ((name === "read" || name === "write") && files[name].length > 0) {
      const global = Deno.permissions.querySync({ name }).state === "granted";
      kept.push({ name, paths: files[name], global });
    } else {
      Deno.permissions.revokeSync(descriptor(name));
      revoked.push(name);
    }
  }
  return { revoked, kept };
}

/**
 * What the process may do now, one `stats settings` row per permission, `permission_net` …
 * `permission_import`: `granted` (for everything); `partial` (read or write granted only for
 * some paths, among them a file memg still needs); or `denied` — not granted. A permission not
 * granted is refused outright under `--no-prompt` (which `deno task start` and the compiled
 * binary pass) or without a terminal; only a hand-run `deno run` on a terminal would ask.
 */
export function permissionRows(config: Config): Array<[string, string]> {
  const files = filesAfterStartup(config);
  return PERMISSIONS.map((name) => {
    if (Deno.permissions.querySync(descriptor(name)).state === "granted") {
      return [`permission_${name}`, "granted"];
    }
    const some = (name === "read" || name === "write") &&
      files[name].some((path) => Deno.permissions.querySync({ name, path }).state === "granted");
    return [`permission_${name}`, some ? "partial" : "denied"];
  });
}
