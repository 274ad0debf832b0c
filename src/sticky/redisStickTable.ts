/**
 * A stick table shared by several balancers through Redis, so that active-active instances send
 * each client to the same server. Keys `fulcrum:stick:<pool>:<key>` hold `<created>|<server id>`
 * with a TTL (PX) from the table's ttl and idle.
 *
 * A memory table in front answers the hot path without waiting: an entry held here is used at
 * once and confirmed with Redis in the background at most once a second (that read also extends
 * its idle TTL there). Redis is waited for (one round trip, bounded) only for a key not held here,
 * or when the server held here cannot take the request (another balancer may already have moved
 * the client). Writes are compare-and-set scripts, so that two balancers deciding at once end up
 * agreeing on one server.
 *
 * Redis down: commands fail at once (no offline queue; a bounded connect and command timeout),
 * the outage is logged once, and the table goes on from its memory (clients seen here stay put,
 * new ones are placed by the balancing algorithm, their entries marked to be written later). The
 * client reconnects by itself; once back, it is logged once, and entries are written and read
 * again (a restarted, empty Redis is refilled from the balancers' memory).
 */
import { createHash } from 'node:crypto';
import { createClient } from 'redis';
import { bounded } from '../core/bounded.js';
import type { Logger } from '../core/log.js';
import { MemoryStickTable, type StickEntry } from './memoryStickTable.js';
import { deadlineOf, type Expect, type StickTable, type TableLimits } from './stickTable.js';

/** An entry held here is confirmed with Redis at most this often (ms). */
export const REVALIDATE_MS = 1000;
/** Longest a request waits for Redis (ms); then the algorithm decides. */
const COMMAND_TIMEOUT_MS = 250;
const CONNECT_TIMEOUT_MS = 1000;
/** Commands sent and not answered yet, at most (a hung Redis). */
const MAX_QUEUED = 1000;
/** After a failed command, Redis is left alone this long (ms), then tried by one request. */
const BACKOFF_MS = 1000;

/** GET that also extends the idle TTL (capped by the ttl from creation). ARGV: now, ttl, idle. */
const LOOKUP = `
local v = redis.call('GET', KEYS[1])
if not v then return false end
local idle = tonumber(ARGV[3])
if idle then
  local px = idle
  local ttl = tonumber(ARGV[2])
  local bar = string.find(v, '|', 1, true)
  local created = bar and tonumber(string.sub(v, 1, bar - 1))
  if ttl and created then
    local left = created + ttl - tonumber(ARGV[1])
    if left < px then px = left end
  end
  if px <= 0 then
    redis.call('DEL', KEYS[1])
    return false
  end
  redis.call('PEXPIRE', KEYS[1], tostring(math.floor(px)))
end
return v
`;

/**
 * Compare-and-set. ARGV: value, mode (set | absent | from), expected server (from), px.
 * Returns the value the key holds afterwards.
 */
const ASSIGN = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local bar = string.find(cur, '|', 1, true)
  local server = bar and string.sub(cur, bar + 1) or cur
  local mine = string.sub(ARGV[1], string.find(ARGV[1], '|', 1, true) + 1)
  if server == mine then return cur end
  if ARGV[2] == 'absent' then return cur end
  if ARGV[2] == 'from' and server ~= ARGV[3] then return cur end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
return ARGV[1]
`;

interface Script {
  text: string;
  sha: string;
}

const script = (text: string): Script => ({ text, sha: createHash('sha1').update(text).digest('hex') });
const LOOKUP_SCRIPT = script(LOOKUP);
const ASSIGN_SCRIPT = script(ASSIGN);

/** Reconnect after 50 ms, doubling to at most 1 s, with jitter. */
function backoff(retries: number): number {
  return Math.min(50 * 2 ** retries, 1000) + Math.floor(Math.random() * 50);
}

/** The URL without credentials, for logs. */
export function describeStore(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return 'redis';
  }
}

/** `<created>|<server id>` → its parts; undefined when malformed. */
function parseValue(v: string): { created: number; server: string } | undefined {
  const bar = v.indexOf('|');
  if (bar <= 0) return undefined;
  const created = Number(v.slice(0, bar));
  const server = v.slice(bar + 1);
  return Number.isFinite(created) && server !== '' ? { created, server } : undefined;
}

/**
 * Commands fail at once while disconnected. (node-redis' own command timeout covers only the wait
 * before a command is written, not for its answer: `bounded` (core/bounded.ts) covers both.)
 */
function newClient(url: string) {
  return createClient({
    url,
    disableOfflineQueue: true,
    commandsQueueMaxLength: MAX_QUEUED,
    commandOptions: { timeout: COMMAND_TIMEOUT_MS },
    socket: { connectTimeout: CONNECT_TIMEOUT_MS, reconnectStrategy: backoff },
  });
}

type Client = ReturnType<typeof newClient>;

export interface RedisStickTableOptions {
  url: string;
  /** The pool's name: part of every key. */
  pool: string;
  limits: TableLimits;
  log: Logger;
}

export class RedisStickTable implements StickTable {
  readonly label: string;
  private readonly local: MemoryStickTable;
  private readonly client: Client;
  private readonly prefix: string;
  private readonly log: Logger;
  private readonly poolName: string;
  private limits: TableLimits;
  /** Lookups waiting for Redis, by key (one round trip per key at a time). */
  private readonly inflight = new Map<string, Promise<string | undefined>>();
  private healthy = false;
  private loggedDown = false;
  private retryAt = 0;
  private closed = false;

  constructor(options: RedisStickTableOptions) {
    this.label = describeStore(options.url);
    this.limits = options.limits;
    this.local = new MemoryStickTable(options.limits);
    this.prefix = `fulcrum:stick:${options.pool}:`;
    this.poolName = options.pool;
    this.log = options.log;
    const client = newClient(options.url);
    // Every failed (re)connection is reported here; without a listener it would crash the process.
    client.on('error', (err: unknown) => this.failed(err));
    client.on('ready', () => this.reachable());
    // connect() retries by the strategy above until close(); nothing waits for it.
    client.connect().catch(() => {});
    this.client = client;
  }

  get size(): number {
    return this.local.size;
  }

  get up(): boolean {
    return this.healthy && this.client.isReady;
  }

  configure(limits: TableLimits): void {
    this.limits = limits;
    this.local.configure(limits);
  }

  lookup(
    key: string,
    usable?: (serverId: string) => boolean,
  ): string | undefined | Promise<string | undefined> {
    const now = Date.now();
    const e = this.local.entry(key, now, true);
    if (e !== undefined) {
      if (!this.available(now)) return e.server;
      if (usable === undefined || usable(e.server)) {
        if (now - e.checked >= REVALIDATE_MS) void this.fetch(key);
        return e.server;
      }
      // Its server cannot take the request: has another balancer moved this client already?
      return this.fetch(key);
    }
    if (!this.available(now)) return undefined;
    return this.fetch(key);
  }

  peek(key: string): string | undefined {
    return this.local.peek(key);
  }

  assign(key: string, serverId: string, expect?: Expect): string {
    const now = Date.now();
    const before = this.local.entry(key, now, true);
    const held = this.local.assign(key, serverId, expect);
    if (held !== serverId) return held;
    if (before !== undefined && before.server === serverId && !before.dirty) return serverId;
    this.write(key, this.local.entry(key, now, false)!, expect, now);
    return serverId;
  }

  remove(key: string): void {
    this.local.remove(key);
    if (!this.available(Date.now())) return;
    bounded(this.client.del(this.prefix + key), COMMAND_TIMEOUT_MS).then(
      () => this.reachable(),
      (err: unknown) => this.failed(err),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.local.close();
    const client = this.client;
    if (!client.isOpen) return;
    if (client.isReady) await client.close().catch(() => client.destroy());
    else client.destroy();
  }

  /** Redis may be asked now: connected, and not backing off after a failure. */
  private available(now: number): boolean {
    if (this.closed || !this.client.isReady) return false;
    if (this.healthy) return true;
    if (now < this.retryAt) return false;
    // One request probes; the others keep off for another while.
    this.retryAt = now + BACKOFF_MS;
    return true;
  }

  /** Asks Redis for `key`, extending its idle TTL there; answers from memory on failure. */
  private fetch(key: string): Promise<string | undefined> {
    const pending = this.inflight.get(key);
    if (pending !== undefined) return pending;
    const now = Date.now();
    const held = this.local.entry(key, now, false);
    if (held !== undefined) {
      held.checked = now;
      if (held.dirty) {
        // Decided here while Redis was away: this balancer has served the client since.
        this.write(key, held, undefined, now);
        return Promise.resolve(held.server);
      }
    }
    const { ttl, idle } = this.limits;
    const p = this.run(LOOKUP_SCRIPT, key, [
      String(now),
      ttl === undefined ? '' : String(ttl),
      idle === undefined ? '' : String(idle),
    ])
      .then(
        (v) => {
          this.reachable();
          const e = this.local.entry(key, Date.now(), false);
          if (v === null || v === undefined) {
            // Not in Redis (expired there, or Redis restarted empty): what this balancer holds
            // goes back, unless another balancer writes first.
            if (e !== undefined) this.write(key, e, null, Date.now());
            return e?.server;
          }
          return this.adopt(key, String(v)) ?? e?.server;
        },
        (err: unknown) => {
          this.failed(err);
          return this.local.peek(key);
        },
      )
      .finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
    return p;
  }

  /** Writes an entry held here to Redis (compare-and-set by `expect`), adopting what wins there. */
  private write(key: string, e: StickEntry, expect: Expect, now: number): void {
    const px = Math.floor(deadlineOf(this.limits, e.created, now) - now);
    if (px <= 0) return;
    if (!this.available(now)) {
      e.dirty = true;
      return;
    }
    e.dirty = false;
    e.checked = now;
    const mode = expect === undefined ? 'set' : expect === null ? 'absent' : 'from';
    this.run(ASSIGN_SCRIPT, key, [`${e.created}|${e.server}`, mode, expect ?? '', String(px)]).then(
      (v) => {
        this.reachable();
        if (typeof v === 'string') this.adopt(key, v);
      },
      (err: unknown) => {
        e.dirty = true;
        this.failed(err);
      },
    );
  }

  /** Takes Redis' value for `key` into memory; returns its server id. */
  private adopt(key: string, value: string): string | undefined {
    const v = parseValue(value);
    if (v === undefined) return undefined;
    const now = Date.now();
    const e = this.local.entry(key, now, false);
    if (e !== undefined && e.server === v.server) {
      e.created = v.created;
      e.checked = now;
      e.dirty = false;
    } else {
      this.local.put(key, {
        server: v.server,
        created: v.created,
        seen: e?.seen ?? now,
        checked: now,
        dirty: false,
      });
    }
    return v.server;
  }

  /** Runs a script on `key`, within COMMAND_TIMEOUT_MS. */
  private run(s: Script, key: string, args: string[]): Promise<unknown> {
    const k = this.prefix + key;
    const call = this.client.sendCommand(['EVALSHA', s.sha, '1', k, ...args]).catch((err: unknown) => {
      if (!(err instanceof Error && err.message.startsWith('NOSCRIPT'))) throw err;
      return this.client.sendCommand(['EVAL', s.text, '1', k, ...args]);
    });
    return bounded(call, COMMAND_TIMEOUT_MS);
  }

  private failed(err: unknown): void {
    if (this.closed) return;
    this.healthy = false;
    this.retryAt = Date.now() + BACKOFF_MS;
    if (this.loggedDown) return;
    this.loggedDown = true;
    const why = err instanceof Error ? err.message : String(err);
    this.log.warn(
      `pool ${this.poolName}: sticky store ${this.label} unreachable (${why}): clients are placed by the balancing algorithm and remembered in this process until it is back`,
    );
  }

  private reachable(): void {
    if (this.healthy || this.closed) return;
    this.healthy = true;
    this.retryAt = 0;
    if (!this.loggedDown) return;
    this.loggedDown = false;
    this.log.info(
      `pool ${this.poolName}: sticky store ${this.label} reachable again: affinities are shared again`,
    );
  }
}
