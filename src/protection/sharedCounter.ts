/**
 * Request counters shared by several balancers through Redis, summed rather than overwritten:
 * each balancer counts its own hits locally and, every `SYNC_MS`, adds them to the shared count
 * of the current window (INCRBY on one key per client and window, with an expiry) and learns the
 * total the others added. A decision therefore costs no round trip; the shared total is at most
 * one sync period old.
 *
 * Redis down or slow: counting goes on locally (fail-open), said once in the log, and the shared
 * count resumes by itself when Redis answers again. With `failClosed`, the listener refuses
 * requests instead while `reachable` is false.
 */
import { bounded } from '../core/bounded.js';
import type { Logger } from '../core/log.js';

/** How often local hits are added to the shared counts (ms). */
export const SYNC_MS = 100;
/** How long the first connection may take before counting without it is said (ms). */
const CONNECT_GRACE_MS = 2000;
/** Longest a sync waits for Redis (ms) before counting locally. */
const COMMAND_TIMEOUT_MS = 250;

interface Entry {
  window: number;
  /** Hits here not yet added to Redis. */
  pending: number;
  /** The shared total of the window as last learned (our synced hits included). */
  total: number;
}

/** The few calls of a Redis client this uses (node-redis' multi). */
interface RedisLike {
  connect(): Promise<unknown>;
  close(): Promise<unknown>;
  destroy(): void;
  readonly isReady: boolean;
  ping(): Promise<unknown>;
  on(event: 'error', listener: (err: Error) => void): unknown;
  multi(): {
    incrBy(key: string, n: number): unknown;
    pExpire(key: string, ms: number): unknown;
    exec(): Promise<unknown[]>;
  };
}

export class SharedWindowCounter {
  readonly windowMs: number;
  private readonly prefix: string;
  private readonly log: Logger;
  private readonly entries = new Map<string, Entry>();
  private client: RedisLike | null = null;
  private timer: NodeJS.Timeout | undefined;
  private syncing = false;
  private up = false;
  private closed = false;
  /** The last sync failed: said once, until one succeeds. */
  private down = false;
  private readonly failClosed: boolean;
  private readonly createdAt = Date.now();
  /** The client has connected once (a lost connection is a failure from then on). */
  private connected = false;

  /**
   * `url`: the Redis server; `prefix`: names this listener's counters (balancers sharing them
   * must use the same); `windowMs`: the length of a counting window.
   */
  constructor(url: string, prefix: string, windowMs: number, log: Logger, failClosed = false) {
    this.windowMs = windowMs;
    this.failClosed = failClosed;
    this.prefix = prefix;
    this.log = log;
    this.timer = setInterval(() => void this.sync(), SYNC_MS);
    this.timer.unref();
    void this.open(url);
  }

  /** Redis answers (the counts are shared right now). */
  get shared(): boolean {
    return this.up;
  }

  /**
   * Redis is connected and the last sync (or ping) succeeded: false from the start until the
   * connection is made, and as soon as the connection drops or a sync fails.
   */
  get reachable(): boolean {
    return this.client?.isReady === true && !this.down;
  }

  /** Counts one hit for `key` and returns its count in the current window, every balancer's. */
  hit(key: string, now: number): number {
    const window = Math.floor(now / this.windowMs);
    let e = this.entries.get(key);
    if (e === undefined || e.window !== window) {
      e = { window, pending: 0, total: 0 };
      this.entries.set(key, e);
    }
    e.pending++;
    return e.total + e.pending;
  }

  /** ms until the current window ends. */
  untilNextWindow(now: number): number {
    return this.windowMs - (now % this.windowMs);
  }

  /** Stops syncing and closes the connection. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    const c = this.client;
    this.client = null;
    if (c === null) return;
    // A client that is reconnecting would wait for Redis to quit: it is dropped at once then.
    if (c.isReady) await c.close().catch(() => c.destroy());
    else c.destroy();
  }

  private async open(url: string): Promise<void> {
    try {
      // Loaded only when counters are shared: the client is large.
      const { createClient } = await import('redis');
      if (this.closed) return;
      const client = createClient({
        url,
        disableOfflineQueue: true,
        commandOptions: { timeout: COMMAND_TIMEOUT_MS },
        socket: { connectTimeout: 1000, reconnectStrategy: (n: number) => Math.min(50 * 2 ** n, 1000) },
      }) as unknown as RedisLike;
      client.on('error', () => {}); // reported through the failed syncs, once
      this.client = client;
      await client.connect();
      this.connected = true;
    } catch (err) {
      this.failed(err);
    }
  }

  /** Adds the local hits of the current window to Redis and learns the totals. */
  private async sync(): Promise<void> {
    const client = this.client;
    if (client === null || this.syncing) return;
    const now = Date.now();
    const window = Math.floor(now / this.windowMs);
    const keys: string[] = [];
    const sent: number[] = [];
    for (const [key, e] of this.entries) {
      if (e.window < window - 1) {
        this.entries.delete(key); // a past window: nothing left to decide with it
        continue;
      }
      if (e.window !== window) continue;
      keys.push(key);
      sent.push(e.pending);
    }
    if (!client.isReady) {
      // Said at once, even with nothing to count (failClosed refuses and counts nothing).
      // (At start, the first connection gets a moment before its absence is a failure.)
      if (this.connected || (keys.length > 0 && Date.now() - this.createdAt > CONNECT_GRACE_MS))
        this.failed(new Error('not connected to Redis'));
      return;
    }
    if (keys.length === 0) {
      // Nothing to add, but a failure said must be cleared once Redis is back (failClosed
      // refuses the requests that would otherwise have synced).
      if (this.down && client.isReady) {
        this.syncing = true;
        try {
          await bounded(client.ping(), COMMAND_TIMEOUT_MS);
          this.back();
        } catch (err) {
          this.failed(err);
        } finally {
          this.syncing = false;
        }
      }
      return;
    }
    this.syncing = true;
    try {
      const m = client.multi();
      for (let i = 0; i < keys.length; i++) {
        const k = `${this.prefix}:${keys[i]}:${window}`;
        // INCRBY 0 still answers the total the other balancers reached.
        m.incrBy(k, sent[i]!);
        m.pExpire(k, this.windowMs * 2);
      }
      const replies = await bounded(m.exec(), COMMAND_TIMEOUT_MS);
      for (let i = 0; i < keys.length; i++) {
        const e = this.entries.get(keys[i]!);
        if (e === undefined || e.window !== window) continue;
        e.pending -= sent[i]!;
        e.total = Number(replies[i * 2]);
      }
      this.back();
    } catch (err) {
      this.failed(err);
    } finally {
      this.syncing = false;
    }
  }

  private back(): void {
    if (this.up) return;
    this.up = true;
    if (this.down) this.log.info(`protection: shared counters back (${this.prefix})`);
    this.down = false;
  }

  private failed(err: unknown): void {
    this.up = false;
    if (this.down || this.closed) return;
    this.down = true;
    this.log.warn(
      `protection: shared counters unavailable (${(err as Error).message}); ${this.failClosed ? 'refusing requests (503, failClosed)' : 'counting locally'} until Redis answers`,
    );
  }
}
