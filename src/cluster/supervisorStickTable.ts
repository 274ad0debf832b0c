/**
 * A worker's stick table when the pool's store is `memory` and workers share the clients: the
 * table lives in the supervisor, the worker keeps a copy of what it has used. A key the worker
 * does not hold (or whose server cannot take the request) is asked of the supervisor, waiting
 * at most STICK_WAIT_MS: a late answer means "no pin" and the request is balanced as for a new
 * client. An assignment is made here at once and sent; the supervisor's answer (the first
 * worker to pin a new client wins) corrects the copy. The same contract as the Redis table.
 */
import type { Pool } from '../core/pool.js';
import { MemoryStickTable } from '../sticky/memoryStickTable.js';
import type { Expect, StickTable, TableLimits } from '../sticky/stickTable.js';
import type { WorkerMessage } from './messages.js';

/** Longest wait for the supervisor's answer to a lookup before balancing without a pin. */
export const STICK_WAIT_MS = 250;

type Send = (message: WorkerMessage) => void;

const pending = new Map<number, (server: string | null) => void>();
let nextId = 1;

let installed = false;

/**
 * Makes every `memory` stick table of this process a supervisor-backed one. Loads the sticky
 * module (and its Redis client) only then: call it when a config has a sticky pool.
 */
export async function useSupervisorTables(send: Send): Promise<void> {
  if (installed) return;
  installed = true;
  const { setMemoryTableFactory } = await import('../sticky/index.js');
  setMemoryTableFactory((pool, limits) => new SupervisorStickTable(pool, limits, send));
}

/** The supervisor's answer to a `stick?` or `stick!`. */
export function answerStick(id: number, server: string | null): void {
  const resolve = pending.get(id);
  pending.delete(id);
  resolve?.(server);
}

export class SupervisorStickTable implements StickTable {
  private readonly local: MemoryStickTable;

  constructor(
    private readonly pool: Pool,
    limits: TableLimits,
    private readonly send: Send,
  ) {
    this.local = new MemoryStickTable(limits);
  }

  lookup(
    key: string,
    usable?: (serverId: string) => boolean,
  ): string | undefined | Promise<string | undefined> {
    const held = this.local.lookup(key);
    if (held !== undefined && (usable === undefined || usable(held))) return held;
    return this.ask(key).then((server) => {
      if (server === null) return undefined;
      this.local.assign(key, server);
      return server;
    });
  }

  peek(key: string): string | undefined {
    return this.local.peek(key);
  }

  assign(key: string, serverId: string, expect?: Expect): string {
    const held = this.local.assign(key, serverId, expect);
    const id = nextId++;
    pending.set(id, (winner) => {
      if (winner !== null && winner !== this.local.peek(key)) this.local.assign(key, winner);
    });
    this.send({ t: 'stick!', id, pool: this.pool.name, key, server: serverId, expect });
    return held;
  }

  remove(key: string): void {
    this.local.remove(key);
  }

  get size(): number {
    return this.local.size;
  }

  get up(): boolean {
    return true;
  }

  configure(limits: TableLimits): void {
    this.local.configure(limits);
  }

  close(): Promise<void> {
    return this.local.close();
  }

  /** The supervisor's entry for `key`, or null (none, or no answer in time). */
  private ask(key: string): Promise<string | null> {
    const id = nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        resolve(null);
      }, STICK_WAIT_MS);
      pending.set(id, (server) => {
        clearTimeout(timer);
        resolve(server);
      });
      this.send({ t: 'stick?', id, pool: this.pool.name, key });
    });
  }
}
