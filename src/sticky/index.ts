/**
 * Sticky sessions for a pool, from its `sticky` config: cookie insert, cookie learn, or source IP,
 * with a memory or Redis stick table. The Runtime calls createAffinity() after building or
 * updating a pool, sets `pool.affinity` to it and stops the previous one: a stick table is handed
 * over from one to the next when its store is the same, so a reload moves no client.
 */
import { createHash } from 'node:crypto';
import type { StickyConfig } from '../config/types.js';
import type { Affinity } from '../core/affinity.js';
import type { Logger } from '../core/log.js';
import type { Pool } from '../core/pool.js';
import { InsertCookieAffinity, LearnCookieAffinity } from './cookieAffinity.js';
import { MemoryStickTable } from './memoryStickTable.js';
import { RedisStickTable } from './redisStickTable.js';
import { keyring } from './serverToken.js';
import { SourceAffinity } from './sourceAffinity.js';
import { DEFAULT_IDLE_MS, type StickTable, type TableLimits } from './stickTable.js';

export { InsertCookieAffinity, LearnCookieAffinity } from './cookieAffinity.js';
export { MemoryStickTable } from './memoryStickTable.js';
export { RedisStickTable } from './redisStickTable.js';
export { serverToken } from './serverToken.js';
export { SourceAffinity } from './sourceAffinity.js';
export type { StickTable } from './stickTable.js';

export interface StickyStats {
  /** Stick-table entries held by this process (0 for insert cookies: the cookie is the entry). */
  entries: number;
  /** Requests whose pinned server could not take them (sticky_reassigned); = pool.reassigned. */
  reassigned: number;
  /** The shared store is reachable (always true for memory and insert cookies). */
  storeUp: boolean;
}

export type StickyAffinity = Affinity & {
  readonly kind: 'insert' | 'learn' | 'source';
  /** The stick table (null for insert cookies). */
  readonly table: StickTable | null;
  stats(): StickyStats;
  stop(): Promise<void>;
};

/** A stick table and the affinities using it (handed over on reload). */
interface TableHolder {
  spec: string;
  table: StickTable;
  users: number;
}

const tables = new WeakMap<Pool, TableHolder>();
const installed = new WeakMap<Affinity, StickyAffinity>();
/** Pools already told about a missing secret / an unused store (once each, not on every reload). */
const warned = new WeakSet<Pool>();
const noted = new WeakSet<Pool>();

/** The table limits of a config: a table without ttl nor idle forgets clients idle 30 minutes. */
export function tableLimits(config: StickyConfig): TableLimits {
  return {
    ttl: config.ttl,
    idle: config.idle ?? (config.ttl === undefined ? DEFAULT_IDLE_MS : undefined),
    maxEntries: config.maxEntries,
  };
}

/** Makes the tables of `store: memory` (default: a MemoryStickTable). */
type MemoryTableFactory = (pool: Pool, limits: TableLimits) => StickTable;
let memoryTable: MemoryTableFactory = (_pool, limits) => new MemoryStickTable(limits);

/**
 * Replaces how `store: memory` tables are made: a worker under a supervisor (src/cluster/) uses
 * the supervisor's table, so that all workers pin a client to the same server.
 */
export function setMemoryTableFactory(factory: MemoryTableFactory): void {
  memoryTable = factory;
}

function openTable(pool: Pool, config: StickyConfig, log: Logger): TableHolder {
  // Keys depend on the type, the cookie and the secret (learn mode hashes session ids with it).
  const secret = config.secret === undefined ? '' : createHash('sha256').update(config.secret).digest('hex');
  const spec = JSON.stringify([
    config.type,
    config.type === 'cookie' ? config.cookie : '',
    secret,
    config.store,
  ]);
  const limits = tableLimits(config);
  const current = tables.get(pool);
  if (current !== undefined && current.users > 0 && current.spec === spec) {
    current.users++;
    current.table.configure(limits);
    return current;
  }
  const table =
    config.store === 'memory'
      ? memoryTable(pool, limits)
      : new RedisStickTable({ url: config.store, pool: pool.name, limits, log });
  const holder = { spec, table, users: 1 };
  tables.set(pool, holder);
  return holder;
}

async function closeTable(pool: Pool, holder: TableHolder): Promise<void> {
  if (--holder.users > 0) return;
  if (tables.get(pool) === holder) tables.delete(pool);
  await holder.table.close();
}

/**
 * The affinity of `pool` for its `sticky` config. Set it as `pool.affinity`; stop() the one it
 * replaces (after creating the new one, so that its stick table is handed over).
 */
export function createAffinity(pool: Pool, config: StickyConfig, log: Logger): StickyAffinity {
  const ring = keyring(config.secret);
  if (config.type === 'cookie' && config.mode === 'insert') {
    if (ring.derived && !warned.has(pool)) {
      warned.add(pool);
      log.warn(
        `pool ${pool.name}: sticky.secret is not set: cookie ${config.cookie} names servers with a public key (stable, but a client who guesses a server's name can match it); set a secret of 16+ characters`,
      );
    }
    if (config.store !== 'memory' && !noted.has(pool)) {
      noted.add(pool);
      log.info(
        `pool ${pool.name}: sticky.store is not used by insert cookies (the cookie carries the server)`,
      );
    }
    const affinity = new InsertCookieAffinity(
      pool,
      { cookie: config.cookie, ttl: config.ttl, idle: config.idle },
      ring,
    );
    return register(affinity, {
      kind: 'insert',
      table: null,
      stats: () => ({ entries: 0, reassigned: pool.reassigned, storeUp: true }),
      stop: async () => {},
    });
  }
  const holder = openTable(pool, config, log);
  const table = holder.table;
  const affinity =
    config.type === 'cookie'
      ? new LearnCookieAffinity(pool, config.cookie, ring, table)
      : new SourceAffinity(pool, table);
  let stopped = false;
  return register(affinity, {
    kind: config.type === 'cookie' ? 'learn' : 'source',
    table,
    stats: () => ({ entries: table.size, reassigned: pool.reassigned, storeUp: table.up }),
    ready: async (timeoutMs: number) => {
      const until = Date.now() + timeoutMs;
      while (!table.up && Date.now() < until && !stopped) await new Promise((r) => setTimeout(r, 10));
      return table.up;
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await closeTable(pool, holder);
    },
  });
}

function register<A extends Affinity>(
  affinity: A,
  extra: Pick<StickyAffinity, 'kind' | 'table' | 'stats' | 'stop'> & Pick<Affinity, 'ready'>,
): A & StickyAffinity {
  const out = Object.assign(affinity, extra) as A & StickyAffinity;
  installed.set(out, out);
  return out;
}

/** Sticky statistics of a pool (for /metrics): of its current affinity, zeros without one. */
export function stickyStats(pool: Pool): StickyStats {
  const affinity = pool.affinity === null ? undefined : installed.get(pool.affinity);
  return affinity?.stats() ?? { entries: 0, reassigned: pool.reassigned, storeUp: true };
}
