/**
 * A stick table: which server each client goes to, by a key (a client IP, a hashed application
 * session id), as the server's stable identity (never an index or an address). Entries expire by
 * lifetime (`ttl`, from creation) and by inactivity (`idle`, from last use).
 */

/**
 * What an assignment expects to find, so that several balancers sharing a table agree:
 * `undefined`: overwrite whatever is there; `null`: only if there is no entry (a new client: the
 * first balancer to decide wins); a server id: only if the entry still names that server or is
 * gone (a reassignment away from it: a balancer that already moved the client wins).
 */
export type Expect = string | null | undefined;

export interface TableLimits {
  /** ms an entry lives after it is created; undefined: no fixed lifetime. */
  ttl: number | undefined;
  /** ms an entry survives unused; undefined: no idle limit (then ttl is set). */
  idle: number | undefined;
  /** Most entries kept in memory (least recently used dropped first). */
  maxEntries: number;
}

/** A stick table without `ttl` nor `idle` configured forgets clients idle for this long. */
export const DEFAULT_IDLE_MS = 30 * 60_000;

export interface StickTable {
  /**
   * The server id for `key`, if any, and the entry counts as used. A shared store answers from
   * its local copy when it can; it asks the shared store (returning a promise) for a key it does
   * not hold, or when `usable` says the server it holds cannot take the request (another
   * balancer may already have moved this client).
   */
  lookup(
    key: string,
    usable?: (serverId: string) => boolean,
  ): string | undefined | Promise<string | undefined>;
  /** The server id held for `key` in this process, without using the entry or asking anyone. */
  peek(key: string): string | undefined;
  /** Pins `key` to `serverId` if `expect` allows (see Expect); returns the server id it holds now. */
  assign(key: string, serverId: string, expect?: Expect): string;
  remove(key: string): void;
  /** Entries held in this process. */
  readonly size: number;
  /** The shared store is reachable (always true for memory). */
  readonly up: boolean;
  /** New limits on reload; entries are kept. */
  configure(limits: TableLimits): void;
  close(): Promise<void>;
}

/** When an entry expires (ms since epoch), from its creation and last use. */
export function deadlineOf(limits: TableLimits, created: number, seen: number): number {
  let deadline = Number.POSITIVE_INFINITY;
  if (limits.ttl !== undefined) deadline = created + limits.ttl;
  if (limits.idle !== undefined) deadline = Math.min(deadline, seen + limits.idle);
  return deadline;
}
