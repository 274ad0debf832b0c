/**
 * The framework-neutral heart of the middleware: turn a request's `Cookie` header into a loaded
 * Session, and at the end of the request store it only if its data changed (else touch it, for
 * rolling expiry) and tell which `Set-Cookie` to send. The node:http/Express and Fastify adapters
 * are thin shells around this.
 */
import { type CookieOptions, readCookie, serializeCookie } from './cookie.js';
import { MemoryStore } from './memoryStore.js';
import { Session, type SessionOwner, type SessionState, sessionState } from './session.js';
import { generateSessionId } from './sessionId.js';
import { signCookie, unsignCookie } from './signing.js';
import type { Logger, SessionData, SessionStore } from './store.js';

export interface UnavailableResponse {
  /** Default 503. */
  status?: number;
  /** A string is sent as is (text/plain), anything else as JSON. */
  body?: unknown;
  /** `Retry-After` header in seconds (default 1; 0 omits it). */
  retryAfterSeconds?: number;
}

export interface SessionOptions {
  /** Signs the session cookie. A list rotates: sign with the first, accept any. */
  secret: string | readonly string[];
  /** Default: a MemoryStore, fine for one process only. */
  store?: SessionStore;
  /** Cookie name (default `fulcrum.sid`). */
  name?: string;
  /** Cookie attributes; `maxAge` (ms, default one day) is also the session's TTL in the store. */
  cookie?: CookieOptions;
  /**
   * `rolling` (default): every request extends the session by `maxAge` (stored again when changed,
   * else touched). `fixed`: the session ends `maxAge` after it was created, whatever happens.
   */
  expiry?: 'rolling' | 'fixed';
  /** Store sessions nobody wrote to (default false: no store write and no cookie for them). */
  saveUninitialized?: boolean;
  /** Store TTL for browser-session cookies (`cookie.maxAge: null`), in seconds (default 86400). */
  ttlSeconds?: number;
  /** The answer when the store cannot be reached (default 503 with a JSON explanation). */
  unavailable?: UnavailableResponse;
  /** Where store failures during a response are reported (default console). */
  logger?: Logger;
}

export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const DAY_MS = 86_400_000;
const DEFAULT_UNAVAILABLE_BODY = {
  error: 'session_store_unavailable',
  message: 'The session store cannot be reached right now; please retry shortly.',
};

export class SessionManager implements SessionOwner {
  readonly store: SessionStore;
  readonly name: string;
  readonly logger: Logger;
  readonly #secrets: readonly string[];
  readonly #cookie: CookieOptions;
  readonly #maxAge: number | null;
  readonly #rolling: boolean;
  readonly #saveUninitialized: boolean;
  readonly #ttlSeconds: number;
  readonly #unavailable: ErrorResponse;

  constructor(options: SessionOptions) {
    const secrets = typeof options.secret === 'string' ? [options.secret] : [...options.secret];
    if (secrets.length === 0 || secrets.some((s) => typeof s !== 'string' || s.length === 0)) {
      throw new TypeError('session middleware needs a non-empty secret (or list of secrets)');
    }
    this.#secrets = secrets;
    this.store = options.store ?? new MemoryStore();
    this.name = options.name ?? 'fulcrum.sid';
    this.logger = options.logger ?? console;
    this.#cookie = { path: '/', httpOnly: true, sameSite: 'lax', ...options.cookie };
    this.#maxAge = options.cookie?.maxAge === undefined ? DAY_MS : options.cookie.maxAge;
    this.#rolling = (options.expiry ?? 'rolling') === 'rolling';
    this.#saveUninitialized = options.saveUninitialized ?? false;
    this.#ttlSeconds = options.ttlSeconds ?? 86_400;
    this.#unavailable = errorResponse(options.unavailable);
  }

  /** The session for a request; throws StoreUnavailableError when the store cannot be asked. */
  async load(cookieHeader: string | undefined): Promise<Session> {
    const raw = readCookie(cookieHeader, this.name);
    const unsigned = raw === undefined ? undefined : unsignCookie(raw, this.#secrets);
    if (unsigned && unsigned.value.length > 0) {
      const data = await this.store.get(unsigned.value);
      if (data && !this.#expired(data)) return this.#loaded(unsigned.value, data, unsigned.secretIndex > 0);
    }
    // No valid cookie, or its session is gone: a fresh id, never the one the client offered.
    return this.#fresh(raw !== undefined);
  }

  /** Stores the session if changed, touches it if not (rolling); nothing for untouched new ones. */
  async commit(session: Session): Promise<void> {
    const state = sessionState(session);
    if (state.destroyed) return;
    const data = session.data();
    const json = JSON.stringify(data);
    const changed = json !== state.storedJson;
    if (state.committed && !changed) return;
    if (state.isNew && !changed && !this.#saveUninitialized) return;
    const expires = this.#expiresAt(state);
    const ttl = expires ? Math.ceil((expires.getTime() - Date.now()) / 1000) : this.#ttlSeconds;
    if (!changed && !state.isNew) {
      if (!this.#rolling) return; // fixed expiry: nothing to extend
      // A touch that finds the session gone (destroyed by a logout in another tab, or expired
      // since it was read) leaves it gone: writing it back would undo the logout.
      await this.store.touch(state.id, ttl);
      state.committed = true;
      return;
    }
    const record: SessionData = {
      cookie: { originalMaxAge: this.#maxAge, expires: expires ? expires.toISOString() : null },
      ...data,
    };
    await this.store.set(state.id, record, ttl);
    state.storedJson = json;
    state.isNew = false;
    state.committed = true;
  }

  /** The `Set-Cookie` value this response needs, if any. Call it when headers are written. */
  setCookie(session: Session): string | undefined {
    const state = sessionState(session);
    if (state.destroyed) {
      return state.hadCookie ? serializeCookie(this.name, '', this.#cookie, new Date(0)) : undefined;
    }
    const refresh = this.#rolling && this.#maxAge !== null;
    if (!state.idChanged && !state.resign && !refresh) return undefined;
    if (state.isNew && !this.#saveUninitialized && JSON.stringify(session.data()) === state.storedJson) {
      return undefined;
    }
    const expires = this.#expiresAt(state);
    return serializeCookie(
      this.name,
      signCookie(state.id, this.#secrets[0]!),
      this.#cookie,
      expires ?? undefined,
    );
  }

  /** What to answer when the store is unreachable. */
  get unavailableResponse(): ErrorResponse {
    return this.#unavailable;
  }

  // --- SessionOwner: what Session methods do ---

  async regenerate(session: Session, keepData: boolean): Promise<void> {
    const state = sessionState(session);
    if (!state.isNew) await this.store.destroy(state.id);
    if (!keepData) session.clear();
    state.id = generateSessionId();
    state.isNew = true;
    state.idChanged = true;
    state.destroyed = false;
    state.committed = false;
    // Empty JSON marker that never equals real data: a regenerated session is always stored.
    state.storedJson = '';
    state.expires = this.#rolling || this.#maxAge === null ? null : new Date(Date.now() + this.#maxAge);
  }

  async destroy(session: Session): Promise<void> {
    const state = sessionState(session);
    if (!state.isNew) await this.store.destroy(state.id);
    session.clear();
    state.destroyed = true;
    state.isNew = true;
  }

  async save(session: Session): Promise<void> {
    await this.commit(session);
  }

  // --- internals ---

  #expired(data: SessionData): boolean {
    if (this.#rolling) return false; // the store's TTL is the authority
    const expires = data.cookie?.expires;
    if (expires === undefined || expires === null) return false;
    return new Date(expires).getTime() <= Date.now();
  }

  /** When the session ends if nothing else happens: now + maxAge (rolling) or the fixed end. */
  #expiresAt(state: SessionState): Date | null {
    if (this.#maxAge === null) return null;
    if (!this.#rolling && state.expires) return state.expires;
    return new Date(Date.now() + this.#maxAge);
  }

  #loaded(id: string, data: SessionData, resign: boolean): Session {
    const stored = data.cookie?.expires;
    const state: SessionState = {
      id,
      owner: this,
      isNew: false,
      idChanged: false,
      resign,
      hadCookie: true,
      destroyed: false,
      storedJson: '',
      expires: !this.#rolling && stored ? new Date(stored) : null,
      committed: false,
    };
    const session = new Session(state, data);
    state.storedJson = JSON.stringify(session.data());
    return session;
  }

  #fresh(hadCookie: boolean): Session {
    const state: SessionState = {
      id: generateSessionId(),
      owner: this,
      isNew: true,
      idChanged: true,
      resign: false,
      hadCookie,
      destroyed: false,
      storedJson: '{}',
      expires: this.#rolling || this.#maxAge === null ? null : new Date(Date.now() + this.#maxAge),
      committed: false,
    };
    return new Session(state);
  }
}

function errorResponse(options: UnavailableResponse | undefined): ErrorResponse {
  const body = options?.body ?? DEFAULT_UNAVAILABLE_BODY;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const headers: Record<string, string> = {
    'content-type':
      typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
    'cache-control': 'no-store',
  };
  const retryAfter = options?.retryAfterSeconds ?? 1;
  if (retryAfter > 0) headers['retry-after'] = String(retryAfter);
  return { status: options?.status ?? 503, headers, body: text };
}
