/**
 * What changed between two configs: the one place a reload learns it from. Listeners and pools
 * are matched by name, servers by identity (their name), so that the runtime touches only what
 * changed and keeps the rest (open connections, server state, statistics) as it is; the admin
 * endpoint and the access log are told whether their socket, token or file changed.
 *
 * Values are compared deeply, whatever the order of their keys: a config that went through the
 * state file's round trip (admin/state.ts) equals the file it came from.
 */
import { isDeepStrictEqual } from 'node:util';
import { sameServerTls } from './serverTls.js';
import type { Config } from './types.js';

export interface NamedChanges {
  added: string[];
  removed: string[];
  /** Present in both, with different settings. */
  changed: string[];
}

export interface PoolChanges extends NamedChanges {
  /** For each changed pool: its servers added, removed or changed (by server name). */
  servers: Record<string, NamedChanges>;
}

export interface AdminChanges {
  /** `admin.listen` added, removed or moved: the endpoint starts, stops or binds elsewhere. */
  listen: boolean;
  /** `admin.token` set, changed or dropped. */
  token: boolean;
}

export interface ConfigDiff {
  listeners: NamedChanges;
  pools: PoolChanges;
  admin: AdminChanges;
  /** `accessLog` added, removed or moved to another path. */
  accessLog: boolean;
  shutdownTimeout: boolean;
  /** The top-level settings other than listeners and pools that changed (`admin`, `accessLog`, ...). */
  settings: string[];
  /** Nothing changed at all. */
  unchanged: boolean;
}

export function diffConfig(before: Config, after: Config): ConfigDiff {
  const listeners = diffNamed(before.listeners, after.listeners);
  const pools: PoolChanges = { ...diffNamed(before.pools, after.pools), servers: {} };
  // The files a pool's tls names may have new contents under the same names.
  for (const now of after.pools) {
    const old = before.pools.find((pool) => pool.name === now.name);
    if (old !== undefined && !pools.changed.includes(now.name) && !sameServerTls(old.tls, now.tls)) {
      pools.changed.push(now.name);
    }
  }
  for (const name of pools.changed) {
    const old = before.pools.find((pool) => pool.name === name)!;
    const now = after.pools.find((pool) => pool.name === name)!;
    pools.servers[name] = diffNamed(old.servers, now.servers);
  }
  return {
    listeners,
    pools,
    admin: {
      listen: !isDeepStrictEqual(before.admin?.listen, after.admin?.listen),
      token: before.admin?.token !== after.admin?.token,
    },
    accessLog: before.accessLog?.path !== after.accessLog?.path,
    shutdownTimeout: before.shutdownTimeout !== after.shutdownTimeout,
    settings: changedSettings(before, after),
    unchanged: isDeepStrictEqual(before, after) && pools.changed.length === 0,
  };
}

function changedSettings(before: Config, after: Config): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  keys.delete('listeners');
  keys.delete('pools');
  const value = (c: Config, key: string) => (c as unknown as Record<string, unknown>)[key];
  return [...keys].filter((key) => !isDeepStrictEqual(value(before, key), value(after, key)));
}

function diffNamed<T extends { name: string }>(before: readonly T[], after: readonly T[]): NamedChanges {
  const old = new Map(before.map((item) => [item.name, item]));
  const now = new Map(after.map((item) => [item.name, item]));
  return {
    added: [...now.keys()].filter((name) => !old.has(name)),
    removed: [...old.keys()].filter((name) => !now.has(name)),
    changed: [...now.keys()].filter(
      (name) => old.has(name) && !isDeepStrictEqual(old.get(name), now.get(name)),
    ),
  };
}
