/**
 * Sessions in this process: the single-server default. Bounded (least recently used entries go
 * first when full) and expiring (checked on read, swept periodically), and it keeps serialized
 * text, not live objects, so it behaves like the shared stores: a read is a copy, and a handler
 * mutating a session it did not save changes nothing.
 */
import { BaseStore, type BaseStoreOptions } from './baseStore.js';

export interface MemoryStoreOptions extends BaseStoreOptions {
  /** Most sessions kept; the least recently used is dropped beyond it (default 10 000). */
  maxEntries?: number;
  /** How often expired sessions are swept out (default 60 s); reads never return them anyway. */
  sweepIntervalMs?: number;
}

interface Entry {
  text: string;
  expiresAt: number;
}

export class MemoryStore extends BaseStore {
  protected readonly label = 'memory';
  readonly maxEntries: number;
  /** Map order is recency order: every read or write moves the key to the end. */
  readonly #entries = new Map<string, Entry>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: MemoryStoreOptions = {}) {
    // Nothing to wait for in-process, so no timer per operation.
    super({ operationTimeoutMs: 0, ...options });
    this.maxEntries = options.maxEntries ?? 10_000;
    if (!(this.maxEntries >= 1)) throw new RangeError('MemoryStore maxEntries must be at least 1');
    this.#sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 60_000);
    this.#sweeper.unref();
    queueMicrotask(() => this.markUp());
  }

  /** Sessions held now, expired ones not yet swept included. */
  get size(): number {
    return this.#entries.size;
  }

  /** Drops expired entries; returns how many. */
  sweep(now = Date.now()): number {
    let dropped = 0;
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt <= now) {
        this.#entries.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  protected override probe(): void {
    this.markUp();
  }

  protected isUnreachable(): boolean {
    return false;
  }

  #live(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    this.#entries.delete(key);
    if (entry.expiresAt <= Date.now()) return undefined;
    this.#entries.set(key, entry);
    return entry;
  }

  protected async read(key: string): Promise<string | undefined> {
    return this.#live(key)?.text;
  }

  protected async write(key: string, text: string, ttlSeconds: number): Promise<void> {
    this.#entries.delete(key);
    this.#entries.set(key, { text, expiresAt: Date.now() + ttlSeconds * 1000 });
    if (this.#entries.size > this.maxEntries) {
      // The first key is the least recently used one.
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
  }

  protected async remove(key: string): Promise<void> {
    this.#entries.delete(key);
  }

  protected async extend(key: string, ttlSeconds: number): Promise<boolean> {
    const entry = this.#live(key);
    if (!entry) return false;
    entry.expiresAt = Date.now() + ttlSeconds * 1000;
    return true;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
  }
}
