/**
 * Sessions in this process: the single-server default. Bounded (least recently used entries go
 * first when full) and expiring (checked on read, swept periodically), and it keeps serialized
 * text, not live objects, so it behaves like the shared stores: a read is a copy, and a handler
 * mutating a session it did not save changes nothing.
 */
import { BASE_STORE_OPTIONS, BaseStore, type BaseStoreOptions, deliver } from './baseStore.js';
import { checkOptions } from './options.js';
import type { SessionData } from './store.js';

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
    checkOptions('MemoryStore', options, [...BASE_STORE_OPTIONS, 'maxEntries', 'sweepIntervalMs']);
    // Nothing to wait for in-process, so no timer per operation.
    super({ ...options, operationTimeoutMs: options.operationTimeoutMs ?? 0 });
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

  /** The live entries' keys, without touching their recency. */
  #liveKeys(): string[] {
    const now = Date.now();
    const keys: string[] = [];
    for (const [key, entry] of this.#entries) if (entry.expiresAt > now) keys.push(key);
    return keys;
  }

  // --- express-session's optional methods (as its own MemoryStore has them) ---

  /** The ids of every live session. */
  ids(): Promise<string[]>;
  ids(callback: (err: unknown, ids?: string[]) => void): void;
  ids(callback?: (err: unknown, ids?: string[]) => void): Promise<string[]> | undefined {
    const ids = this.#liveKeys().map((key) => key.slice(this.prefix.length));
    return deliver(Promise.resolve(ids), callback);
  }

  /** How many live sessions there are. */
  length(): Promise<number>;
  length(callback: (err: unknown, length?: number) => void): void;
  length(callback?: (err: unknown, length?: number) => void): Promise<number> | undefined {
    return deliver(Promise.resolve(this.#liveKeys().length), callback);
  }

  /** Every live session, each with its `id`. */
  all(): Promise<SessionData[]>;
  all(callback: (err: unknown, sessions?: SessionData[]) => void): void;
  all(callback?: (err: unknown, sessions?: SessionData[]) => void): Promise<SessionData[]> | undefined {
    const all = async (): Promise<SessionData[]> => {
      const sessions: SessionData[] = [];
      for (const key of this.#liveKeys()) {
        const id = key.slice(this.prefix.length);
        const session = await this.decode(id, this.#entries.get(key)?.text);
        if (session) sessions.push(Object.assign(session, { id }));
      }
      return sessions;
    };
    return deliver(all(), callback);
  }

  /** Deletes every session. */
  clear(): Promise<void>;
  clear(callback: (err: unknown) => void): void;
  clear(callback?: (err: unknown) => void): Promise<void> | undefined {
    this.#entries.clear();
    return deliver(Promise.resolve(), callback);
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
