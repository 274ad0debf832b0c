/**
 * What changed between two configs, for hot reload: listeners and pools by name, servers by
 * identity (their name), so that the runtime touches only what changed and keeps the rest
 * (open connections, server state, statistics) as it is.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Config, PoolConfig } from './types.js';

export interface NamedChanges {
  added: string[];
  removed: string[];
  /** Present in both, with different settings. */
  changed: string[];
}

export interface PoolChanges extends NamedChanges {
  /** For each changed pool: its servers added, removed or changed (by server name). */
  servers: Record<string, NamedChanges>;
  /** Changed pools whose settings other than `servers` changed too. */
  settingsChanged: string[];
}

export interface ConfigDiff {
  admin: boolean;
  shutdownTimeout: boolean;
  listeners: NamedChanges;
  pools: PoolChanges;
  /** Nothing changed at all. */
  unchanged: boolean;
}

export function diffConfig(before: Config, after: Config): ConfigDiff {
  const listeners = diffNamed(before.listeners, after.listeners);
  const pools: PoolChanges = { ...diffNamed(before.pools, after.pools), servers: {}, settingsChanged: [] };
  for (const name of pools.changed) {
    const old = before.pools.find((pool) => pool.name === name)!;
    const now = after.pools.find((pool) => pool.name === name)!;
    pools.servers[name] = diffNamed(old.servers, now.servers);
    if (!isDeepStrictEqual(withoutServers(old), withoutServers(now))) pools.settingsChanged.push(name);
  }
  const admin = !isDeepStrictEqual(before.admin, after.admin);
  const shutdownTimeout = before.shutdownTimeout !== after.shutdownTimeout;
  const unchanged = !admin && !shutdownTimeout && isEmpty(listeners) && isEmpty(pools);
  return { admin, shutdownTimeout, listeners, pools, unchanged };
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

function withoutServers(pool: PoolConfig): Omit<PoolConfig, 'servers'> {
  const { servers: _servers, ...rest } = pool;
  return rest;
}

function isEmpty(changes: NamedChanges): boolean {
  return changes.added.length === 0 && changes.removed.length === 0 && changes.changed.length === 0;
}
