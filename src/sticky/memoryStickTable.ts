import { deadlineOf, type Expect, type StickTable, type TableLimits } from './stickTable.js';

/** One affinity. `checked` and `dirty` are for a shared store that keeps this table as its cache. */
export interface StickEntry {
  server: string;
  /** ms since epoch the affinity was created (for `ttl`). */
  created: number;
  /** ms since epoch it was last used (for `idle`). */
  seen: number;
  /** ms since epoch a shared store last confirmed it. */
  checked: number;
  /** Written here while the shared store was unreachable: to be written there. */
  dirty: boolean;
}

/** A used entry moves to the back of the eviction order at most this often. */
const REORDER_MS = 1000;
/** Expired entries at the front of the order removed per insertion (amortized sweep). */
const SWEEP_PER_INSERT = 4;

/**
 * The stick table of one balancer: a Map in least-recently-used order (approximately: a used
 * entry is moved at most once a second), bounded by `maxEntries` (the least recently used entry
 * goes first), entries dropped once past their ttl or idle deadline, lazily on use and a few at a
 * time from the front on every insertion, so no timer runs.
 */
export class MemoryStickTable implements StickTable {
  private readonly entries = new Map<string, StickEntry>();
  private limits: TableLimits;

  constructor(limits: TableLimits) {
    this.limits = limits;
  }

  get size(): number {
    return this.entries.size;
  }

  get up(): boolean {
    return true;
  }

  configure(limits: TableLimits): void {
    this.limits = limits;
    while (this.entries.size > limits.maxEntries) this.evictOldest();
  }

  lookup(key: string): string | undefined {
    return this.entry(key, Date.now(), true)?.server;
  }

  peek(key: string): string | undefined {
    return this.entry(key, Date.now(), false)?.server;
  }

  assign(key: string, serverId: string, expect?: Expect): string {
    const now = Date.now();
    const current = this.entry(key, now, true);
    if (current !== undefined) {
      if (current.server === serverId) return serverId;
      if (expect === null || (typeof expect === 'string' && current.server !== expect)) return current.server;
    }
    this.put(key, { server: serverId, created: now, seen: now, checked: now, dirty: false });
    return serverId;
  }

  remove(key: string): void {
    this.entries.delete(key);
  }

  /** The live entry for `key`, or undefined (an expired one is dropped); `use` marks it used. */
  entry(key: string, now: number, use: boolean): StickEntry | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (now >= deadlineOf(this.limits, e.created, e.seen)) {
      this.entries.delete(key);
      return undefined;
    }
    if (use) {
      if (now - e.seen >= REORDER_MS) {
        this.entries.delete(key);
        this.entries.set(key, e);
      }
      e.seen = now;
    }
    return e;
  }

  /** Stores an entry (replacing any), evicting expired and least recently used ones as needed. */
  put(key: string, e: StickEntry): void {
    const entries = this.entries;
    if (entries.has(key)) entries.delete(key);
    else {
      this.sweep(e.seen);
      while (entries.size >= this.limits.maxEntries) this.evictOldest();
    }
    entries.set(key, e);
  }

  async close(): Promise<void> {
    this.entries.clear();
  }

  private sweep(now: number): void {
    let n = 0;
    for (const [key, e] of this.entries) {
      if (n++ >= SWEEP_PER_INSERT || now < deadlineOf(this.limits, e.created, e.seen)) return;
      this.entries.delete(key);
    }
  }

  private evictOldest(): void {
    const first = this.entries.keys().next();
    if (!first.done) this.entries.delete(first.value);
  }
}
