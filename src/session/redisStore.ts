/**
 * Sessions in Redis (or Valkey, or a Redis Cluster) through the official `redis` client: one key
 * per session (`prefix + id`), written with `SET key value EX ttl`, extended with `EXPIRE`.
 * Reads and writes use single-key commands only, so a cluster client works unchanged; listing
 * (`all`, `ids`, `length`, `clear`) SCANs every master.
 *
 * A drop-in for connect-redis: its options under their own names (`client`, `prefix`, `ttl` as a
 * number or a function of the session, `disableTTL`, `disableTouch`, `serializer`, `scanCount`)
 * with its semantics, and its optional methods. Fulcrum's own names stay as aliases.
 *
 * Given a URL, the store owns its client and configures it for a web server's needs: commands
 * fail at once while disconnected (no offline queue, so a request gets its 503 promptly instead of
 * waiting for a reconnect; only the very first connection is waited for, within the operation
 * timeout), and reconnection runs in the background with capped backoff. Operations are bounded
 * in time by the store (one timer for all), not by node-redis' per-command AbortSignal timeout.
 */
import { createClient, ErrorReply, type RedisClientOptions } from 'redis';
import { BASE_STORE_OPTIONS, BaseStore, type BaseStoreOptions, deliver } from './baseStore.js';
import { DeadlineExceeded } from './deadlines.js';
import { checkOptions, positive } from './options.js';
import { type Bound, isCluster, type RedisScanClient, readMany, removeMany, scanKeys } from './redisKeys.js';
import { type SessionData, StoreUnavailableError } from './store.js';

/** The commands the store needs: a node-redis (v5 or later) client or cluster fits as is. */
export interface RedisCommands {
  get(key: string): Promise<unknown>;
  set(key: string, value: string, options?: { expiration: { type: 'EX'; value: number } }): Promise<unknown>;
  expire(key: string, seconds: number): Promise<unknown>;
  del(key: string): Promise<unknown>;
}

/** connect-redis's `ttl`: seconds, or a function of the session giving them. */
export type RedisTtl = number | ((session: SessionData) => number);

export interface RedisStoreOptions extends BaseStoreOptions {
  /** `redis[s]://[[user][:password]@]host[:port][/db]`: the store creates, connects and closes its client. */
  url?: string;
  /** Extra options for the client the store creates from `url`. */
  clientOptions?: RedisClientOptions;
  /** Your own connected client or cluster instead of `url` (connect-redis's option); you close it. */
  client?: RedisCommands;
  /**
   * connect-redis's `ttl`. A number: the TTL in seconds when the session's cookie has no
   * `expires` (alias of `defaultTtlSeconds`; default 86400). A function of the session: the TTL
   * of every write and touch that comes without one (express-session's calls).
   */
  ttl?: RedisTtl;
  /** connect-redis: keys never expire (SET without EX) and touch does nothing. */
  disableTTL?: boolean;
  /** connect-redis: touch does nothing, so a session expires its TTL after its last write. */
  disableTouch?: boolean;
  /** connect-redis: SCAN's COUNT for `all`, `ids`, `length` and `clear` (default 100). */
  scanCount?: number;
  /** After a command timed out, how often the server is asked whether it answers again (default 500 ms). */
  probeIntervalMs?: number;
}

const KNOWN = [
  ...BASE_STORE_OPTIONS,
  'url',
  'clientOptions',
  'client',
  'ttl',
  'disableTTL',
  'disableTouch',
  'scanCount',
  'probeIntervalMs',
];

const CONNECTION =
  'a connection option of connect-redis 3: give `url` (redis://[:password@]host:port/db) or a connected `client`';
/** Options of older connect-redis releases, refused with what to do instead. */
const UNSUPPORTED = {
  host: CONNECTION,
  port: CONNECTION,
  socket: CONNECTION,
  pass: CONNECTION,
  db: CONNECTION,
  unref: CONNECTION,
  logErrors: 'store errors reach express-session, and outages are reported through `logger`',
};

/** Replies that mean "not now" rather than "never": the server is there but cannot serve yet. */
const TRANSIENT_REPLY = /^(LOADING|BUSY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY)\b/;

/** Reconnect after 50 ms, doubling to at most 2 s, with jitter so many servers do not stampede. */
export function redisBackoff(retries: number): number {
  return Math.min(50 * 2 ** retries, 2000) + Math.floor(Math.random() * 50);
}

function describe(url: string | undefined): string {
  if (!url) return 'redis';
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`;
  } catch {
    return 'redis';
  }
}

/** What the store may find on a node-redis client beyond RedisCommands. */
interface ClientExtras extends RedisScanClient {
  withCommandOptions?(options: { timeout: number }): RedisCommands;
  options?: { url?: string; keyPrefix?: string; commandOptions?: { timeout?: number } };
  on?(event: string, listener: () => void): unknown;
}

function optionalBoolean(name: string, value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new TypeError(`RedisStore: option "${name}" must be true or false`);
  return value;
}

export class RedisStore extends BaseStore {
  protected readonly label: string;
  /** The client or cluster, yours or the store's own. */
  readonly client: RedisCommands;
  /** connect-redis: keys never expire, and touch does nothing. */
  disableTTL: boolean;
  /** connect-redis: touch does nothing. */
  disableTouch: boolean;
  /** connect-redis: SCAN's COUNT. */
  scanCount: number;
  /** What the commands go through: the client, or a view of it without per-command timers. */
  readonly #commands: RedisCommands;
  readonly #owned?: ReturnType<typeof createClient>;
  #ttlFunction: ((session: SessionData) => number) | undefined;
  /** Until the first connection, operations wait for it (bounded) rather than fail at once. */
  #firstReady: Promise<void> | undefined;
  readonly #probeIntervalMs: number;
  /** The server stopped answering: commands fail at once until a probe gets through. */
  #hung = false;
  #prober: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #bound: Bound = (op) => this.run(op);

  constructor(options: RedisStoreOptions) {
    checkOptions('RedisStore', options, KNOWN, UNSUPPORTED);
    const ttl = options?.ttl;
    if (ttl !== undefined && options.defaultTtlSeconds !== undefined) {
      throw new TypeError('RedisStore: "ttl" and "defaultTtlSeconds" are the same option: give one');
    }
    super({
      ...options,
      defaultTtlSeconds:
        typeof ttl === 'function'
          ? undefined
          : (positive('RedisStore', 'ttl', ttl) ?? options?.defaultTtlSeconds),
    });
    this.#ttlFunction = typeof ttl === 'function' ? ttl : undefined;
    this.disableTTL = optionalBoolean('disableTTL', options.disableTTL);
    this.disableTouch = optionalBoolean('disableTouch', options.disableTouch);
    const scanCount = options.scanCount ?? 100;
    if (!Number.isInteger(scanCount) || scanCount < 1) {
      throw new TypeError(
        `RedisStore: option "scanCount" must be a positive integer, not ${String(scanCount)}`,
      );
    }
    this.scanCount = scanCount;
    this.#probeIntervalMs = positive('RedisStore', 'probeIntervalMs', options.probeIntervalMs) ?? 500;
    // Your client's address when it has one to tell (node-redis keeps the url it was given).
    this.label = describe(options.url ?? (options.client as ClientExtras | undefined)?.options?.url);
    if (options.client !== undefined) {
      if (options.url !== undefined)
        throw new TypeError('RedisStore: give either "url" or "client", not both');
      const client = options.client as RedisCommands & ClientExtras;
      if (typeof client?.get !== 'function' || typeof client.set !== 'function') {
        throw new TypeError('RedisStore: "client" must be a node-redis client or cluster (v5 or later)');
      }
      this.client = client;
      this.#commands = this.#untimed(client);
      client.on?.call(client, 'ready', () => this.#answered());
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
    client.on('ready', () => this.#answered());
    // connect() keeps retrying by the reconnect strategy; it only rejects once the store is closed.
    client.connect().catch(() => {});
    this.#firstReady = new Promise((resolve) => client.once('ready', resolve));
    void this.#firstReady.then(() => {
      this.#firstReady = undefined;
    });
    this.#owned = client;
    this.client = client as unknown as RedisCommands;
    this.#commands = this.client;
  }

  /**
   * Your client, seen without its per-command timeout when the store's own bound is at least as
   * tight: node-redis arms an AbortSignal timer for every command (5 s by default since v6), which
   * costs more than the command itself on a fast server, and the store's deadline would fire
   * first anyway. A shorter timeout of yours is kept; the client itself is not changed.
   */
  #untimed(client: RedisCommands & ClientExtras): RedisCommands {
    if (this.operationTimeoutMs <= 0 || typeof client.withCommandOptions !== 'function') return client;
    if ('masters' in client) return client; // a cluster's withCommandOptions replaces all options
    const timeout = client.options?.commandOptions?.timeout;
    if (timeout !== undefined && (timeout <= 0 || timeout < this.operationTimeoutMs)) return client;
    return client.withCommandOptions({ timeout: 0 });
  }

  /** connect-redis's `ttl`: the function, else the number of seconds used without `cookie.expires`. */
  get ttl(): RedisTtl {
    return this.#ttlFunction ?? this.defaultTtlSeconds;
  }

  set ttl(value: RedisTtl) {
    if (typeof value === 'function') {
      this.#ttlFunction = value;
    } else {
      this.defaultTtlSeconds = positive('RedisStore', 'ttl', value) ?? 86_400;
      this.#ttlFunction = undefined;
    }
  }

  protected override ttlOf(data: object): number {
    return this.#ttlFunction ? this.#ttlFunction(data as SessionData) : super.ttlOf(data);
  }

  protected override get touchExtends(): boolean {
    return !(this.disableTouch || this.disableTTL);
  }

  /**
   * The command, unless the server is known to hang (then a 503 at once, not after the bound),
   * and after the first connection while that may still come.
   */
  #send<T>(command: () => Promise<T>): Promise<T> {
    if (this.#hung) return Promise.reject(this.#hungError());
    // Wait for the first connection only while it may still come: once a first attempt has
    // failed, fail fast like any other outage.
    const first = this.#firstReady;
    return first && this.available ? first.then(command) : command();
  }

  protected isUnreachable(err: unknown): boolean {
    if (err instanceof ErrorReply) return TRANSIENT_REPLY.test(err.message);
    // Anything else from the client is the connection (closed, offline, timed out, refused);
    // a TypeError or RangeError is a bug, and is not hidden behind a 503.
    return !(err instanceof TypeError || err instanceof RangeError);
  }

  protected read(key: string): Promise<unknown> {
    const commands = this.#commands;
    return this.#hung || this.#firstReady ? this.#send(() => commands.get(key)) : commands.get(key);
  }

  protected write(key: string, value: string, ttlSeconds: number): Promise<unknown> {
    const commands = this.#commands;
    const set = this.disableTTL
      ? () => commands.set(key, value)
      : () => commands.set(key, value, { expiration: { type: 'EX', value: ttlSeconds } });
    return this.#hung || this.#firstReady ? this.#send(set) : set();
  }

  protected remove(key: string): Promise<unknown> {
    return this.#send(() => this.#commands.del(key));
  }

  protected extend(key: string, ttlSeconds: number): Promise<boolean> {
    return this.#send(() => this.#commands.expire(key, ttlSeconds)).then((n) => Number(n) === 1);
  }

  // --- a server that hangs ---
  // A server that stops answering (paused, swapping, stuck in a slow command) keeps its
  // connection open, so the client neither fails nor reconnects: each command would wait out the
  // whole bound, and under load the requests held would pile up. After the first command that
  // times out, commands fail at once while a probe, every probeIntervalMs, waits for an answer.
  // Not on a cluster: one master hanging must not fail the keys of the others.

  protected override onUnreachable(cause: unknown): void {
    super.onUnreachable(cause);
    if (!(cause instanceof DeadlineExceeded) || this.#hung || this.#closed || isCluster(this.#scanClient))
      return;
    this.#hung = true;
    this.#scheduleProbe();
  }

  protected override onReachable(): void {
    this.#answered();
  }

  /** The server answered a command, or the client (re)connected: it serves. */
  #answered(): void {
    if (this.#hung) {
      this.#hung = false;
      clearTimeout(this.#prober);
      this.#prober = undefined;
    }
    this.markUp();
  }

  #hungError(): StoreUnavailableError {
    return new StoreUnavailableError(this.label, {
      cause: new Error(
        `no answer within ${this.operationTimeoutMs} ms; waiting for the server to answer again`,
      ),
    });
  }

  #scheduleProbe(): void {
    clearTimeout(this.#prober);
    this.#prober = setTimeout(() => this.#probeHung(), this.#probeIntervalMs);
    this.#prober.unref();
  }

  #probeHung(): void {
    // Straight to the client, past the fail-fast: an answer, hit or miss, means it is back.
    this.run(() => this.#commands.get(`${this.prefix}__probe`)).catch(() => {
      if (this.#hung && !this.#closed) this.#scheduleProbe();
    });
  }

  protected override probe(): void {
    if (this.#hung) this.#probeHung();
    else if (this.#owned?.isReady) this.markUp();
    else if (!this.#owned) super.probe();
  }

  // --- express-session's optional methods, as connect-redis has them ---

  /** Every key of this store, deduplicated (SCAN may return a key twice). */
  async #keys(): Promise<string[]> {
    const seen = new Set<string>();
    for await (const batch of scanKeys(this.#scanClient, this.prefix, this.scanCount, this.#bound)) {
      for (const key of batch) seen.add(key);
    }
    return [...seen];
  }

  get #scanClient(): RedisScanClient {
    // SCAN and the listing go through the same view of the client as every other command; a
    // cluster is used as given (nodeClient, masters).
    return this.#commands as unknown as RedisScanClient;
  }

  /** The ids of every session (connect-redis). */
  ids(): Promise<string[]>;
  ids(callback: (err: unknown, ids?: string[]) => void): void;
  ids(callback?: (err: unknown, ids?: string[]) => void): Promise<string[]> | undefined {
    const result = this.#keys().then((keys) => keys.map((key) => key.slice(this.prefix.length)));
    return deliver(result, callback);
  }

  /** How many sessions there are (express-session's optional `length`). */
  length(): Promise<number>;
  length(callback: (err: unknown, length?: number) => void): void;
  length(callback?: (err: unknown, length?: number) => void): Promise<number> | undefined {
    return deliver(
      this.#keys().then((keys) => keys.length),
      callback,
    );
  }

  /** Every session, each with its `id` (express-session's optional `all`). */
  all(): Promise<SessionData[]>;
  all(callback: (err: unknown, sessions?: SessionData[]) => void): void;
  all(callback?: (err: unknown, sessions?: SessionData[]) => void): Promise<SessionData[]> | undefined {
    return deliver(this.#all(), callback);
  }

  async #all(): Promise<SessionData[]> {
    const client = this.#scanClient;
    const seen = new Set<string>();
    const sessions: SessionData[] = [];
    for await (const batch of scanKeys(client, this.prefix, this.scanCount, this.#bound)) {
      const keys = batch.filter((key) => !seen.has(key) && seen.add(key));
      if (keys.length === 0) continue;
      const values = await readMany(client, keys, this.#bound);
      for (const [i, raw] of values.entries()) {
        const id = keys[i]!.slice(this.prefix.length);
        const session = await this.decode(id, raw);
        // Gone between SCAN and the read (expired, destroyed), or unreadable (logged): skipped.
        if (session) sessions.push(Object.assign(session, { id }));
      }
    }
    return sessions;
  }

  /** Deletes every session of this store, and nothing else (express-session's optional `clear`). */
  clear(): Promise<void>;
  clear(callback: (err: unknown) => void): void;
  clear(callback?: (err: unknown) => void): Promise<void> | undefined {
    return deliver(this.#clear(), callback);
  }

  async #clear(): Promise<void> {
    const client = this.#scanClient;
    for await (const batch of scanKeys(client, this.prefix, this.scanCount, this.#bound)) {
      await removeMany(client, batch, this.#bound);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#prober);
    const client = this.#owned;
    if (!client?.isOpen) return;
    if (client.isReady) {
      await client.close().catch(() => client.destroy());
    } else {
      client.destroy();
    }
  }
}
