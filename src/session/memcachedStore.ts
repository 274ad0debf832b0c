/**
 * Sessions in Memcached through `memjs`: one item per session with the TTL as its expiration,
 * extended with memcached's own `touch` (no read-modify-write). Several servers share the keys by
 * the same hash memjs uses, so other memjs clients with the same server list agree on placement.
 *
 * Each server is tracked on its own: after a failure its keys fail fast (503) while a background
 * probe waits for it to answer again; the others keep serving. There is no failover to another
 * server on purpose: a key moved there and back could resurrect a stale session.
 * Memcached's item size limit applies (1 MB unless started with `-I`); larger sessions fail to save.
 */
import memjs from 'memjs';
import { BaseStore, type BaseStoreOptions } from './baseStore.js';
import { Deadlines } from './deadlines.js';
import { StoreUnavailableError } from './store.js';

export interface MemcachedStoreOptions extends BaseStoreOptions {
  /** `host:port[,host:port...]`, or a list; `user:pass@host:port` for SASL. */
  servers: string | readonly string[];
  /** How often an unreachable server is asked again (default 1000 ms). */
  probeIntervalMs?: number;
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

const silent = { log: () => {} };

export class MemcachedStore extends BaseStore {
  protected readonly label: string;
  readonly #nodes: Node[];
  readonly #probeIntervalMs: number;
  readonly #deadlines: Deadlines;
  #prober: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: MemcachedStoreOptions) {
    // Timeouts are applied per server below, where the failing server is known.
    super({ ...options, operationTimeoutMs: 0 });
    const list = typeof options.servers === 'string' ? options.servers.split(',') : options.servers;
    const addresses = list.map((s) => s.trim()).filter((s) => s.length > 0);
    if (addresses.length === 0) throw new TypeError('MemcachedStore needs at least one server');
    const timeoutMs = options.operationTimeoutMs ?? 2000;
    this.#deadlines = new Deadlines(timeoutMs);
    this.#probeIntervalMs = options.probeIntervalMs ?? 1000;
    const seconds = timeoutMs / 1000;
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
    this.label = `memcached://${this.#nodes.map((n) => n.address).join(',')}`;
    this.probe();
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

  protected async read(key: string): Promise<string | undefined> {
    const { value } = await this.#on(key, (c) => c.get(key));
    return value === null ? undefined : value.toString('utf8');
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
    for (const node of this.#nodes) node.client.close();
  }
}
