/**
 * The contract every session store fulfils, whatever keeps the data: this process (MemoryStore),
 * a shared server (Redis, Memcached) or peers (a replicated store). The middleware only ever talks
 * to this interface, so stores are interchangeable by changing one line.
 */

/** Expiry metadata kept with the session, in express-session's shape so both can read it. */
export interface SessionCookieData {
  /** Lifetime in ms the session was created with; null for a browser-session cookie. */
  originalMaxAge?: number | null;
  /** When the session expires (ISO string once serialized); null/absent: no fixed expiry. */
  expires?: string | Date | null;
  [key: string]: unknown;
}

/** What a store keeps under a session id: any JSON-serializable object. */
export interface SessionData {
  cookie?: SessionCookieData;
  [key: string]: unknown;
}

export type StoreEvent = 'connect' | 'disconnect';

export interface SessionStore {
  /**
   * The session, or null when absent, expired or unreadable (corrupt data is logged). Fulcrum's
   * stores resolve null, as express-session's stores do; a store of your own may resolve undefined.
   */
  get(id: string): Promise<SessionData | null | undefined>;
  /**
   * Writes the whole session (any JSON-serializable object) with a TTL in seconds. Without a TTL it is taken from
   * `data.cookie.expires` (as express-session stores do), else the store's default TTL.
   * A TTL of zero or less deletes the session.
   */
  set(id: string, data: object, ttlSeconds?: number): Promise<void>;
  /** Extends the TTL without rewriting the data; false when the session no longer exists. */
  touch(id: string, ttlSeconds: number): Promise<boolean>;
  destroy(id: string): Promise<void>;
  /** False while the backing service is known to be unreachable (ops then fail fast). */
  readonly available: boolean;
  /** Resolves once the store has answered once; rejects after `timeoutMs`. */
  ready(timeoutMs?: number): Promise<void>;
  /** Releases connections and timers the store owns. */
  close(): Promise<void>;
  on(event: StoreEvent, listener: (cause?: unknown) => void): this;
  off(event: StoreEvent, listener: (cause?: unknown) => void): this;
}

/**
 * Turns session objects into the text a store keeps, and back. `parse` may return a promise, as
 * connect-redis allows.
 */
export interface Serializer {
  stringify(data: SessionData): string;
  parse(text: string): unknown;
}

/** The default serializer: `JSON` itself, as connect-redis's default is. */
export const jsonSerializer: Serializer = JSON;

/** Where stores and the middleware report trouble; `console` fits. */
export interface Logger {
  warn(message: string, ...details: unknown[]): void;
  /** Routine news (a cluster member came up); warn is used when absent. */
  info?(message: string, ...details: unknown[]): void;
}

/**
 * The store could not be reached (refused, timed out, disconnected, still loading). The
 * middleware answers these with 503; any other store error is a bug or a limit (e.g. value too
 * large) and surfaces as such.
 */
export class StoreUnavailableError extends Error {
  readonly code = 'ESESSIONSTOREUNAVAILABLE';
  /**
   * `status`, `statusCode` and `headers` are what Express's final handler (and http-errors aware
   * handlers) read: passed to `next(err)` by express-session, this error becomes a 503 with
   * `Retry-After` without any error handler of the application's own.
   */
  readonly status = 503;
  readonly statusCode = 503;
  readonly headers: Readonly<Record<string, string>> = { 'retry-after': '1' };
  constructor(store: string, options?: { cause?: unknown }) {
    const reason = options?.cause instanceof Error ? `: ${options.cause.message}` : '';
    super(`session store ${store} is unavailable${reason}`, options);
    this.name = 'StoreUnavailableError';
  }
}

export function isStoreUnavailable(err: unknown): err is StoreUnavailableError {
  return err instanceof StoreUnavailableError;
}
