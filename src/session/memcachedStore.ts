/**
 * Sessions in Memcached through `memjs`: one item per session with the TTL as its expiration,
 * extended with memcached's own `touch` (no read-modify-write). Several servers share the keys by
 * the same hash memjs uses, so other memjs clients with the same server list agree on placement.
 *
 * A drop-in for connect-memcached where its options apply: `hosts`, `prefix`, `ttl`, `secret`
 * (sessions encrypted at rest), `client` (a memjs client), and node-memcached's `timeout` and
 * `retry`. The rest of node-memcached's options are refused with the reason.
 *
 * Each server is tracked on its own: after a failure its keys fail fast (503) while a background
 * probe waits for it to answer again; the others keep serving. There is no failover to another
 * server on purpose: a key moved there and back could resurrect a stale session.
 * Memcached's item size limit applies (1 MB unless started with `-I`); larger sessions fail to save.
 */
import memjs from 'memjs';
import { BASE_STORE_OPTIONS, BaseStore, type BaseStoreOptions } from './baseStore.js';
import { Deadlines } from './deadlines.js';
import { checkOptions, positive } from './options.js';
import { sealedSerializer } from './sealedSerializer.js';
import { StoreUnavailableError } from './store.js';

export interface MemcachedStoreOptions extends BaseStoreOptions {
  /** `host:port[,host:port...]`, or a list; `user:pass@host:port` for SASL. Default `127.0.0.1:11211`. */
  servers?: string | readonly string[];
  /** connect-memcached's name for `servers`. */
  hosts?: string | readonly string[];
  /** Your own memjs client instead of `servers`; you close it. */
  client?: memjs.Client;
  /**
   * connect-memcached's `ttl`: the TTL in seconds of every session written or touched through
   * express-session, whatever its cookie says (without it: what remains of `cookie.expires`).
   */
  ttl?: number;
  /** connect-memcached's `secret`: sessions are sealed with AES-256-GCM under it (a list rotates). */
  secret?: string | readonly string[];
  /** connect-memcached's cipher for `secret`: only `aes-256-gcm`, the one Fulcrum uses. */
  algorithm?: string;
  /** node-memcached's `timeout` (ms): alias of `operationTimeoutMs`. */
  timeout?: number;
  /** How often an unreachable server is asked again (default 500 ms). */
  probeIntervalMs?: number;
  /** node-memcached's `retry` (ms between a server's failure and trying it again): alias of `probeIntervalMs`. */
  retry?: number;
}

const KNOWN = [
  ...BASE_STORE_OPTIONS,
  'servers',
  'hosts',
  'client',
  'ttl',
  'secret',
  'algorithm',
  'timeout',
  'probeIntervalMs',
  'retry',
];

const POOL =
  'memjs keeps one connection per server, and the store brings a failed server back itself (`retry`, `probeIntervalMs`)';
const FAILOVER =
  'there is no failover to another server, on purpose: a session moved there and back could come back stale';
const NODE_MEMCACHED = "a node-memcached setting with no memjs counterpart; memcached's own limits apply";
/** connect-memcached passes the rest of its options to node-memcached (and kruptein): these have no place here. */
const UNSUPPORTED = {
  hashing: 'sessions are sealed with AES-256-GCM, which authenticates them itself: there is no separate HMAC',
  poolSize: POOL,
  reconnect: POOL,
  idle: POOL,
  retries: POOL,
  minTimeout: POOL,
  maxTimeout: POOL,
  factor: POOL,
  randomize: POOL,
  failures: FAILOVER,
  remove: FAILOVER,
  failOverServers: FAILOVER,
  maxKeySize: NODE_MEMCACHED,
  maxExpiration: NODE_MEMCACHED,
  maxValue: NODE_MEMCACHED,
  keyCompression: NODE_MEMCACHED,
  namespace: 'use `prefix`',
  debug: NODE_MEMCACHED,
};

function serverList(name: string, value: unknown): string[] {
  if (value === undefined) return ['127.0.0.1:11211']; // connect-memcached's and memjs' default
  if (typeof value !== 'string' && !Array.isArray(value)) {
    throw new TypeError(
      `MemcachedStore: option "${name}" must be "host:port[,host:port]" or a list of them` +
        (value && typeof value === 'object'
          ? ' (weighted servers are not supported: memjs has no weights)'
          : ''),
    );
  }
  const list = typeof value === 'string' ? value.split(',') : (value as unknown[]).map(String);
  const addresses = list.map((s) => s.trim()).filter((s) => s.length > 0);
  if (addresses.length === 0) throw new TypeError('MemcachedStore needs at least one server');
  return addresses;
}

/** Memcached reads expirations above 30 days as absolute Unix times. */
const MAX_RELATIVE_TTL = 30 * 24 * 3600;

function expiration(ttlSeconds: number): number {
  return ttlSeconds > MAX_RELATIVE_TTL ? Math.floor(Date.now() / 1000) + ttlSeconds : ttlSeconds;
}

class Node {
  up = true;
  constructor(
    readonly address: string,
    readonly client: memjs.Client,
  ) {}
}

/** A memjs client: what `client` must be (node-memcached's, connect-memcached's, is not). */
function isMemjsClient(client: unknown): client is memjs.Client {
  const c = client as Partial<memjs.Client> | null;
  return typeof c?.get === 'function' && typeof c.touch === 'function' && Array.isArray(c.servers);
}

const silent = { log: () => {} };

export class MemcachedStore extends BaseStore {
  protected readonly label: string;
  /** connect-memcached's `ttl`: every express-session write and touch gets it, if set. */
  ttl: number | undefined;
  readonly #nodes: Node[];
  readonly #probeIntervalMs: number;
  readonly #deadlines: Deadlines;
  readonly #owned: boolean;
  #prober: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: MemcachedStoreOptions = {}) {
    checkOptions('MemcachedStore', options, KNOWN, UNSUPPORTED);
    const both = (a: keyof MemcachedStoreOptions, b: keyof MemcachedStoreOptions) => {
      if (options[a] !== undefined && options[b] !== undefined) {
        throw new TypeError(`MemcachedStore: "${a}" and "${b}" are the same option: give one`);
      }
    };
    both('servers', 'hosts');
    both('operationTimeoutMs', 'timeout');
    both('probeIntervalMs', 'retry');
    if (options.secret !== undefined && options.serializer !== undefined) {
      throw new TypeError(
        'MemcachedStore: "secret" seals the default serializer; with your own, use sealedSerializer(secret, yours)',
      );
    }
    if (options.algorithm !== undefined && !/^aes-256-gcm$/i.test(options.algorithm)) {
      throw new TypeError(
        `MemcachedStore: option "algorithm" must be aes-256-gcm, not ${options.algorithm}: sessions are sealed with AES-256-GCM only`,
      );
    }
    if (options.algorithm !== undefined && options.secret === undefined) {
      throw new TypeError('MemcachedStore: option "algorithm" only applies with "secret"');
    }
    // Timeouts are applied per server below, where the failing server is known.
    super({
      ...options,
      operationTimeoutMs: 0,
      serializer: options.secret === undefined ? options.serializer : sealedSerializer(options.secret),
    });
    this.ttl = positive('MemcachedStore', 'ttl', options.ttl);
    const timeoutMs =
      options.operationTimeoutMs ?? positive('MemcachedStore', 'timeout', options.timeout) ?? 1000;
    if (typeof timeoutMs !== 'number' || !(timeoutMs > 0)) {
      throw new TypeError(
        `MemcachedStore: option "operationTimeoutMs" must be more than 0, not ${String(timeoutMs)}`,
      );
    }
    this.#deadlines = new Deadlines(timeoutMs);
    this.#probeIntervalMs =
      positive('MemcachedStore', 'probeIntervalMs', options.probeIntervalMs) ??
      positive('MemcachedStore', 'retry', options.retry) ??
      500;
    if (options.client !== undefined) {
      if (options.servers !== undefined || options.hosts !== undefined) {
        throw new TypeError('MemcachedStore: give either "servers" (or "hosts") or "client", not both');
      }
      if (!isMemjsClient(options.client)) {
        throw new TypeError(
          'MemcachedStore: "client" must be a memjs client (memjs.Client.create(...)); node-memcached clients are not supported',
        );
      }
      const address = options.client.servers.map((s) => `${s.host}:${s.port}`).join(',');
      this.#nodes = [new Node(address, options.client)];
      this.#owned = false;
    } else {
      const seconds = timeoutMs / 1000;
      const addresses = serverList(
        options.servers !== undefined ? 'servers' : 'hosts',
        options.servers ?? options.hosts,
      );
      this.#nodes = addresses.map(
        (address) =>
          new Node(
            address.replace(/^.*@/, ''),
            memjs.Client.create(address, {
              // memjs' own timeout tears the socket down; ours (below) answers the request first.
              timeout: seconds * 1.5,
              conntimeout: Math.min(seconds, 1),
              retries: 2,
              retry_delay: 0.05,
              keepAlive: true,
              logger: silent,
            }),
          ),
      );
      this.#owned = true;
    }
    this.label = `memcached://${this.#nodes.map((n) => n.address).join(',')}`;
    this.probe();
  }

  protected override ttlOf(data: object): number {
    return this.ttl ?? super.ttlOf(data);
  }

  protected override onReachable(): void {}
  protected override onUnreachable(): void {}

  protected isUnreachable(err: unknown): boolean {
    // memjs words the server's own refusals "MemJS <OP>: ..."; anything else is the network.
    return !(err instanceof Error && err.message.startsWith('MemJS '));
  }

  #nodeFor(key: string): Node {
    const nodes = this.#nodes;
    return nodes.length === 1 ? nodes[0]! : nodes[memjs.Utils.hashCode(key) % nodes.length]!;
  }

  /** One request to the server owning `key`: fast failure while it is down, bounded in time. */
  async #on<T>(key: string, request: (client: memjs.Client) => Promise<T>): Promise<T> {
    const node = this.#nodeFor(key);
    if (!node.up) throw new StoreUnavailableError(`memcached://${node.address}`);
    try {
      const result = await this.#deadlines.bound(request(node.client));
      this.#nodeUp(node);
      return result;
    } catch (err) {
      if (!this.isUnreachable(err)) throw err;
      this.#nodeDown(node, err);
      throw new StoreUnavailableError(`memcached://${node.address}`, { cause: err });
    }
  }

  #nodeUp(node: Node): void {
    if (!node.up) {
      node.up = true;
      if (this.#nodes.length > 1) this.logger.warn(`session store memcached://${node.address} is back`);
    }
    this.markUp();
  }

  #nodeDown(node: Node, cause: unknown): void {
    if (node.up) {
      node.up = false;
      if (this.#nodes.length > 1) {
        const why = cause instanceof Error ? cause.message : String(cause);
        this.logger.warn(`session store memcached://${node.address} is unreachable (${why})`);
      }
    }
    // The store as a whole is down only when no server answers: the others still hold their keys.
    if (this.#nodes.every((n) => !n.up)) this.markDown(cause);
    this.#scheduleProbe();
  }

  #scheduleProbe(): void {
    if (this.#prober || this.#closed) return;
    this.#prober = setTimeout(() => {
      this.#prober = undefined;
      this.#probeDown();
    }, this.#probeIntervalMs);
    this.#prober.unref();
  }

  /** Asks each down server for any key; an answer, hit or miss, means it is back. */
  #probeDown(): void {
    for (const node of this.#nodes) {
      if (!node.up) this.#probeNode(node);
    }
  }

  #probeNode(node: Node): void {
    this.#deadlines.bound(node.client.get(`${this.prefix}__probe`)).then(
      () => this.#nodeUp(node),
      (err: unknown) => this.#nodeDown(node, err),
    );
  }

  protected override probe(): void {
    for (const node of this.#nodes) this.#probeNode(node);
  }

  protected read(key: string): Promise<unknown> {
    return this.#on(key, (c) => c.get(key)).then(({ value }) =>
      value === null ? null : value.toString('utf8'),
    );
  }

  protected write(key: string, text: string, ttlSeconds: number): Promise<unknown> {
    return this.#on(key, (c) => c.set(key, text, { expires: expiration(ttlSeconds) }));
  }

  protected remove(key: string): Promise<unknown> {
    return this.#on(key, (c) => c.delete(key));
  }

  protected async extend(key: string, ttlSeconds: number): Promise<boolean> {
    return this.#on(key, (c) => c.touch(key, expiration(ttlSeconds)));
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#prober);
    if (this.#owned) for (const node of this.#nodes) node.client.close();
  }
}
