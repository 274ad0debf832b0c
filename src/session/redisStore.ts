/**
 * Sessions in Redis (or Valkey, or a Redis Cluster) through the official `redis` client: one key
 * per session (`prefix + id`), written with `SET key value EX ttl`, extended with `EXPIRE`.
 * Only single-key commands are used, so a cluster client works unchanged.
 *
 * Given a URL, the store owns its client and configures it for a web server's needs: commands
 * fail at once while disconnected (no offline queue, so a request gets its 503 promptly instead of
 * waiting for a reconnect; only the very first connection is waited for, within the operation
 * timeout), and reconnection runs in the background with capped backoff. Operations are bounded
 * in time by the store (one timer for all), not by node-redis' per-command AbortSignal timeout.
 */
import { createClient, ErrorReply, type RedisClientOptions } from 'redis';
import { BaseStore, type BaseStoreOptions } from './baseStore.js';

/** The commands the store needs: a node-redis client or cluster fits as is. */
export interface RedisCommands {
  get(key: string): Promise<unknown>;
  set(key: string, value: string, options: { expiration: { type: 'EX'; value: number } }): Promise<unknown>;
  expire(key: string, seconds: number): Promise<unknown>;
  del(key: string): Promise<unknown>;
}

export interface RedisStoreOptions extends BaseStoreOptions {
  /** `redis[s]://[[user][:password]@]host[:port][/db]`: the store creates, connects and closes its client. */
  url?: string;
  /** Extra options for the client the store creates from `url`. */
  clientOptions?: RedisClientOptions;
  /** Your own connected client or cluster instead of `url`; you close it. */
  client?: RedisCommands;
}

/** Replies that mean "not now" rather than "never": the server is there but cannot serve yet. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY)\b/;

/** Reconnect after 50 ms, doubling to at most 2 s, with jitter so many servers do not stampede. */
export function redisBackoff(retries: number): number {
  return Math.min(50 * 2 ** retries, 2000) + Math.floor(Math.random() * 50);
}

const text = (value: unknown): string | undefined =>
  value === null || value === undefined ? undefined : String(value);

function describe(url: string | undefined): string {
  if (!url) return 'redis';
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`;
  } catch {
    return 'redis';
  }
}

export class RedisStore extends BaseStore {
  protected readonly label: string;
  readonly client: RedisCommands;
  readonly #owned?: ReturnType<typeof createClient>;
  /** Until the first connection, operations wait for it (bounded) rather than fail at once. */
  #firstReady: Promise<void> | undefined;

  constructor(options: RedisStoreOptions) {
    super(options);
    this.label = describe(options.url);
    if (options.client) {
      this.client = options.client;
      const events = options.client as Partial<Pick<NodeJS.EventEmitter, 'on'>>;
      events.on?.call(options.client, 'ready', () => this.markUp());
      return;
    }
    if (!options.url) throw new TypeError('RedisStore needs a url or a client');
    const client = createClient({
      url: options.url,
      disableOfflineQueue: true,
      ...options.clientOptions,
      // The store bounds every operation itself, with one timer for all of them; node-redis' own
      // per-command timeout (an AbortSignal each) would cost several times more on every command.
      commandOptions: { timeout: 0, ...options.clientOptions?.commandOptions },
      socket: { connectTimeout: 2000, reconnectStrategy: redisBackoff, ...options.clientOptions?.socket },
    });
    // The client reports every failed (re)connection here; without a listener it would crash the process.
    client.on('error', (err: unknown) => this.markDown(err));
    client.on('ready', () => this.markUp());
    // connect() keeps retrying by the reconnect strategy; it only rejects once the store is closed.
    client.connect().catch(() => {});
    this.#firstReady = new Promise((resolve) => client.once('ready', resolve));
    void this.#firstReady.then(() => {
      this.#firstReady = undefined;
    });
    this.#owned = client;
    this.client = client as unknown as RedisCommands;
  }

  protected override run<T, R = T>(op: () => Promise<T>, map?: (value: T) => R): Promise<R> {
    // Wait for the first connection only while it may still come: once a first attempt has
    // failed, fail fast like any other outage.
    const first = this.available ? this.#firstReady : undefined;
    return super.run(first ? () => first.then(op) : op, map);
  }

  protected isUnreachable(err: unknown): boolean {
    if (err instanceof ErrorReply) return TRANSIENT_REPLY.test(err.message);
    // Anything else from the client is the connection (closed, offline, timed out, refused);
    // a TypeError or RangeError is a bug, and is not hidden behind a 503.
    return !(err instanceof TypeError || err instanceof RangeError);
  }

  protected read(key: string): Promise<string | undefined> {
    return this.client.get(key).then(text);
  }

  protected write(key: string, value: string, ttlSeconds: number): Promise<unknown> {
    return this.client.set(key, value, { expiration: { type: 'EX', value: ttlSeconds } });
  }

  protected remove(key: string): Promise<unknown> {
    return this.client.del(key);
  }

  protected extend(key: string, ttlSeconds: number): Promise<boolean> {
    return this.client.expire(key, ttlSeconds).then((n) => Number(n) === 1);
  }

  protected override probe(): void {
    if (this.#owned?.isReady) this.markUp();
    else if (!this.#owned) super.probe();
  }

  async close(): Promise<void> {
    const client = this.#owned;
    if (!client?.isOpen) return;
    if (client.isReady) {
      await client.close().catch(() => client.destroy());
    } else {
      client.destroy();
    }
  }
}
