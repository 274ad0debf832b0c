import type { Server } from './server.js';

/**
 * Client affinity (sticky sessions) of a pool, as the proxies use it. The balancing policy still
 * chooses when there is no affinity, or the pinned server is not eligible.
 */
export interface Affinity {
  /** The cookie it reads, when it is cookie-based (protection serves its holders during a surge). */
  readonly cookie?: string;
  /**
   * The server this client is pinned to, if any, looked up before balancing. HTTP passes its
   * request's cookies; L4 passes null. May return a promise when a shared store must be asked.
   */
  pinned(clientIp: string, cookieHeader: string | null): Server | undefined | Promise<Server | undefined>;
  /**
   * The response from `server` to a request that was (re)assigned by the policy or kept on its
   * pinned server. Returns extra response header lines (each ending in CRLF, e.g. a Set-Cookie),
   * or ''. `setCookies` are the server's own Set-Cookie values (for learn mode). `reassigned` is
   * true when the request had an affinity to a server that could not take it.
   */
  onResponse(
    clientIp: string,
    server: Server,
    pinned: Server | undefined,
    setCookies: readonly string[],
    secure: boolean,
  ): string;
  /** L4: a connection from `clientIp` went to `server` (source affinity records it). */
  onConnection?(clientIp: string, server: Server): void;
  /**
   * Resolves true once a shared store is reachable, false if it is not within `timeoutMs`: the
   * runtime waits for it before accepting traffic, so that the first clients are shared too.
   */
  ready?(timeoutMs: number): Promise<boolean>;
  /** Releases what it holds (a shared store's client); called when the pool drops it. */
  stop?(): Promise<void>;
}

/**
 * How long a front waits for its affinity's answer before the policy chooses. The store bounds
 * its own lookups (the Redis stick table gives up after 250 ms); this is only a safety net
 * against one that never settles, and has nothing to do with connecting to a server.
 */
export const PIN_WAIT_LIMIT_MS = 1000;

const noPin = (): undefined => undefined;

/**
 * The server `affinity` pins this client to, if any, with one error rule for every front: a
 * lookup that throws, or a promise that rejects (a failed store), means no pin. The promise
 * returned, when the store must be asked, never rejects.
 */
export function resolvePinned(
  affinity: Affinity | null,
  clientIp: string,
  cookieHeader: string | null,
): Server | undefined | Promise<Server | undefined> {
  if (affinity === null) return undefined;
  let found: Server | undefined | Promise<Server | undefined>;
  try {
    found = affinity.pinned(clientIp, cookieHeader);
  } catch {
    return undefined;
  }
  return found instanceof Promise ? found.catch(noPin) : found;
}
