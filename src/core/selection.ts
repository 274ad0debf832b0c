import type { Pool } from './pool.js';
import type { Server } from './server.js';

/** What a policy may look at besides the servers. One object is reused per connection. */
export interface SelectContext {
  /** Client address as the balancer sees it (after trusted X-Forwarded-For, or a PROXY header). */
  clientIp: string;
  /** Overrides the hashed key for hash-based policies (e.g. a session id). */
  hashKey?: string | undefined;
}

/**
 * A balancing algorithm. One mechanism for L4 and L7: the pool hands the policy the eligible
 * servers, the policy names candidates (`pick` first, `fallback` for retries), a Selection leases
 * them, and the lease feeds outcomes back into the Server stats.
 *
 * The pool calls `rebuild` with exactly the array it then passes to `pick` and `fallback`, until
 * the next change; a policy used without a pool may get another array, and then rebuilds itself.
 */
export interface BalancingPolicy {
  readonly name: string;
  /** The first choice among `eligible` (never empty). Hot path: no I/O, no allocation. */
  pick(eligible: readonly Server[], ctx: SelectContext): Server;
  /**
   * The next candidate among `eligible` minus `tried` (non-empty, in the order they were tried;
   * it may hold servers that are no longer eligible), in this policy's fallback order, or
   * undefined when none is left. Rare path (retries, servers at their connection limit).
   */
  fallback(eligible: readonly Server[], ctx: SelectContext, tried: readonly Server[]): Server | undefined;
  /** Membership or weights changed: rebuild rings/schedules here, not in pick(). */
  rebuild?(eligible: readonly Server[]): void;
}

const NO_CONTEXT: SelectContext = { clientIp: '' };

/**
 * The candidates of one request or connection, best first: the pinned (sticky) server if it is
 * eligible, else the policy's pick, then the policy's fallbacks; never the same server twice.
 * Every front (HTTP, TCP, UDP) selects through one of these, so the sticky step, the count of
 * reassignments and the no-repeat rule live here only.
 *
 * One object per connection (or HTTP/2 stream), started again for each request: a request
 * without retries allocates nothing.
 */
export class Selection {
  readonly #tried: Server[] = [];
  /** `#tried` and the servers `skip` passed over in the current next() call (rare path). */
  readonly #passed: Server[] = [];
  #skipped = 0;
  #pool: Pool | null = null;
  #ctx: SelectContext = NO_CONTEXT;
  #pinned: Server | undefined = undefined;
  #reassigned = false;

  /** Servers leased (or peeked) so far for this request, in order (the last is the current one). */
  get tried(): readonly Server[] {
    return this.#tried;
  }

  /** The server sticky affinity pins this request to, if any (as given to start()). */
  get pinned(): Server | undefined {
    return this.#pinned;
  }

  /**
   * True when the request had a pinned server that could not take it (not eligible, at its
   * limit, or failed) and the policy chose; counted once per request in `pool.reassigned`.
   */
  get reassigned(): boolean {
    return this.#reassigned;
  }

  /**
   * Servers the last next() passed over because of its `skip` predicate. When next() returned
   * undefined and this is not 0, a candidate exists but is busy: the caller may wait and call
   * next() again.
   */
  get skipped(): number {
    return this.#skipped;
  }

  /**
   * Starts a new request's selection on `pool` (forgetting the previous one's). `pinned`: the
   * server sticky affinity pins this client to, if any.
   */
  start(pool: Pool, ctx: SelectContext, pinned?: Server): void {
    this.#pool = pool;
    this.#ctx = ctx;
    this.#pinned = pinned;
    this.#reassigned = false;
    this.#skipped = 0;
    clear(this.#tried);
  }

  /**
   * Leases the next candidate (pool.lease: active++, total++) and returns it, or undefined when
   * none is left. The eligible servers are read afresh on every call: one may have gone down
   * since the last try. `skip`: servers that cannot take work right now but should not count as
   * tried (L4 maxConnections); they are passed over for this call only.
   */
  next(skip?: (server: Server) => boolean): Server | undefined {
    const server = this.#choose(skip);
    if (server !== undefined) this.#pool!.lease(server);
    return server;
  }

  /**
   * Like next(), without a lease: the same candidate in the same order (the policy's state moves
   * on as for next(), so round robin rotates), recorded as tried so the following peek() gives
   * the next one, but no in-flight count changes and nothing is to be released. For answers that
   * name servers without opening a connection to them (DNS): start() then peek() until
   * undefined gives the pool's usable servers in its algorithm's order, each once. Every peek
   * after the first asks the policy for a fallback, which moves a round robin past the server
   * returned, as a retry does (proxy/dns/answers.ts takes only the first for that reason).
   */
  peek(skip?: (server: Server) => boolean): Server | undefined {
    return this.#choose(skip);
  }

  /** The next candidate (not yet leased), recorded as tried; undefined when none is left. */
  #choose(skip: ((server: Server) => boolean) | undefined): Server | undefined {
    const pool = this.#pool;
    if (pool === null) throw new Error('Selection.next() or peek() before start()');
    this.#skipped = 0;
    const eligible = pool.eligibleServers();
    if (eligible.length === 0) {
      // A pinned client that no server can take counts as reassigned, as one sent elsewhere.
      this.#countReassigned(pool);
      return undefined;
    }
    let exclude: readonly Server[] = this.#tried;
    const pinned = this.#pinned;
    if (pinned !== undefined && exclude.length === 0 && eligible.includes(pinned)) {
      if (skip === undefined || !skip(pinned)) return this.#take(pool, pinned);
      exclude = this.#passOver(pinned);
    }
    const policy = pool.policy;
    let candidate: Server | undefined;
    if (exclude.length > 0) candidate = policy.fallback(eligible, this.#ctx, exclude);
    // A single eligible server is chosen without consulting the policy (its state stays put).
    else candidate = eligible.length === 1 ? eligible[0]! : policy.pick(eligible, this.#ctx);
    while (candidate !== undefined && skip?.(candidate) === true) {
      candidate = policy.fallback(eligible, this.#ctx, this.#passOver(candidate));
    }
    return candidate === undefined ? undefined : this.#take(pool, candidate);
  }

  #take(pool: Pool, server: Server): Server {
    if (server !== this.#pinned) this.#countReassigned(pool);
    this.#tried.push(server);
    return server;
  }

  /** The pinned server could not take the request: counted once per request. */
  #countReassigned(pool: Pool): void {
    if (this.#pinned !== undefined && !this.#reassigned) {
      this.#reassigned = true;
      pool.reassigned++;
    }
  }

  /** Adds `server` to this call's exclusions (the tried ones and those passed over so far). */
  #passOver(server: Server): readonly Server[] {
    const passed = this.#passed;
    if (this.#skipped === 0) {
      clear(passed);
      for (const t of this.#tried) passed.push(t);
    }
    passed.push(server);
    this.#skipped++;
    return passed;
  }
}

/** Empties `list` keeping its backing store: `length = 0` drops it, and the next push allocates. */
function clear(list: Server[]): void {
  while (list.length > 0) list.pop();
}
