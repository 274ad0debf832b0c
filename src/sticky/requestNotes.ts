/**
 * What `pinned()` learned about a request that `onResponse()` needs later (the cookie's creation
 * time for a refresh, the session key to move to a new server). The proxy's seam passes only the
 * client IP and the pinned server to both, so notes are kept by (client IP, pinned server) in
 * arrival order. Notes are taken only on the rare paths (a refresh due, a pinned server that
 * cannot take the request), so few are ever held; notes whose response never came (the client
 * left, no server answered) are dropped after a while, and the whole is bounded.
 */

/** Notes older than this are dropped (a response that never came). */
const NOTE_MAX_AGE_MS = 120_000;
/** Most (client, server) pairs with notes; beyond it the oldest pairs go. */
const MAX_PAIRS = 10_000;
/** Most notes per pair (requests of one address to one server in flight at once). */
const MAX_PER_PAIR = 32;

interface Held<T> {
  at: number;
  note: T;
}

export class RequestNotes<T> {
  private readonly pairs = new Map<string, Held<T>[]>();

  get size(): number {
    return this.pairs.size;
  }

  add(clientIp: string, serverId: string, note: T): void {
    const key = `${clientIp}\n${serverId}`;
    const now = Date.now();
    let list = this.pairs.get(key);
    if (list === undefined) {
      if (this.pairs.size >= MAX_PAIRS) this.prune(now);
      list = [];
      this.pairs.set(key, list);
    } else if (list.length >= MAX_PER_PAIR) {
      list.shift();
    }
    list.push({ at: now, note });
  }

  /** The oldest note of this client for this server, removed; undefined when none. */
  take(clientIp: string, serverId: string): T | undefined {
    if (this.pairs.size === 0) return undefined;
    const key = `${clientIp}\n${serverId}`;
    const list = this.pairs.get(key);
    if (list === undefined) return undefined;
    const now = Date.now();
    let held = list.shift();
    while (held !== undefined && now - held.at > NOTE_MAX_AGE_MS) held = list.shift();
    if (list.length === 0) this.pairs.delete(key);
    return held?.note;
  }

  private prune(now: number): void {
    for (const [key, list] of this.pairs) {
      if (list.length === 0 || now - list[list.length - 1]!.at > NOTE_MAX_AGE_MS) this.pairs.delete(key);
    }
    // Still full: forget the pairs noted first (Map order).
    for (const key of this.pairs.keys()) {
      if (this.pairs.size < MAX_PAIRS * 0.9) break;
      this.pairs.delete(key);
    }
  }
}
