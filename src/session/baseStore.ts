/**
 * What every store shares: key prefixing, (de)serialization with corrupt data read as "no
 * session", TTLs derived like express-session's stores, a bounded time for every operation,
 * reachability tracking with 'connect'/'disconnect' events, and the express-session `Store`
 * protocol (callback signatures, createSession/load/regenerate), so each store is a drop-in there.
 * Subclasses only implement four primitives on raw keys and say which errors mean "unreachable".
 */
import { EventEmitter } from 'node:events';
import { DeadlineExceeded, Deadlines } from './deadlines.js';
import { createExpressSession, type ExpressRequestLike } from './expressCompat.js';
import {
  jsonSerializer,
  type Logger,
  type Serializer,
  type SessionData,
  type SessionStore,
  StoreUnavailableError,
} from './store.js';

export interface BaseStoreOptions {
  /** Prepended to every session id to form the key (default `sess:`, as connect-redis). */
  prefix?: string;
  /** Default JSON. */
  serializer?: Serializer;
  /** TTL when `set` gets neither a TTL nor `cookie.expires` (default 86400 s, one day). */
  defaultTtlSeconds?: number;
  /** Every operation fails as unavailable after this long (default 2000 ms; 0: unbounded). */
  operationTimeoutMs?: number;
  /** Where outages, recoveries and corrupt entries are reported (default console). */
  logger?: Logger;
}

type ErrorCallback = (err?: unknown) => void;

const noop = (): void => {};

/** Runs a settled promise's outcome through a node-style callback outside the promise chain. */
function settle<T>(promise: Promise<T>, ok: (value: T) => void, fail: (err: unknown) => void): void {
  promise.then(
    (value) => process.nextTick(ok, value),
    (err: unknown) => process.nextTick(fail, err),
  );
}

/** TTL in seconds from express-session's cookie data: what remains until `expires`. */
export function ttlFromCookie(data: object, fallbackSeconds: number): number {
  const expires = (data as SessionData).cookie?.expires;
  if (expires === undefined || expires === null) return fallbackSeconds;
  const at = expires instanceof Date ? expires.getTime() : Date.parse(String(expires));
  if (Number.isNaN(at)) return fallbackSeconds;
  return Math.ceil((at - Date.now()) / 1000);
}

export abstract class BaseStore extends EventEmitter implements SessionStore {
  /** express-session installs its session factory here; used by regenerate/createSession. */
  declare generate?: (req: object) => void;

  protected readonly prefix: string;
  protected readonly serializer: Serializer;
  protected readonly logger: Logger;
  protected readonly defaultTtlSeconds: number;
  protected readonly operationTimeoutMs: number;
  /** 'unknown' until the first answer or failure; only transitions emit events. */
  #state: 'unknown' | 'up' | 'down' = 'unknown';
  readonly #deadlines: Deadlines | undefined;

  /** Human-readable name of the backing service for logs and errors, e.g. `redis://h:p`. */
  protected abstract readonly label: string;
  protected abstract read(key: string): Promise<string | undefined>;
  protected abstract write(key: string, text: string, ttlSeconds: number): Promise<unknown>;
  protected abstract remove(key: string): Promise<unknown>;
  /** Resets the key's TTL without rewriting it; false when the key does not exist. */
  protected abstract extend(key: string, ttlSeconds: number): Promise<boolean>;
  /** True when the error means the service could not be reached, not that it refused the op. */
  protected abstract isUnreachable(err: unknown): boolean;

  constructor(options: BaseStoreOptions = {}) {
    super();
    this.prefix = options.prefix ?? 'sess:';
    this.serializer = options.serializer ?? jsonSerializer;
    this.logger = options.logger ?? console;
    this.defaultTtlSeconds = options.defaultTtlSeconds ?? 86_400;
    this.operationTimeoutMs = options.operationTimeoutMs ?? 2000;
    this.#deadlines = this.operationTimeoutMs > 0 ? new Deadlines(this.operationTimeoutMs) : undefined;
  }

  get available(): boolean {
    return this.#state !== 'down';
  }

  abstract close(): Promise<void>;

  ready(timeoutMs = 5000): Promise<void> {
    if (this.#state === 'up') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('connect', onConnect);
        reject(new StoreUnavailableError(this.label, { cause: new DeadlineExceeded(timeoutMs) }));
      }, timeoutMs);
      const onConnect = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.once('connect', onConnect);
      this.probe();
    });
  }

  /** Asks the service for a sign of life; subclasses that can, override. */
  protected probe(): void {
    this.run(() => this.read(`${this.prefix}__probe`)).catch(() => {});
  }

  protected markUp(): void {
    if (this.#state === 'up') return;
    const wasDown = this.#state === 'down';
    this.#state = 'up';
    if (wasDown) this.logger.warn(`session store ${this.label} is reachable again`);
    this.emit('connect');
  }

  protected markDown(cause: unknown): void {
    if (this.#state === 'down') return;
    this.#state = 'down';
    const why = cause instanceof Error ? cause.message : String(cause);
    this.logger.warn(`session store ${this.label} is unreachable (${why}); sessions fail until it is back`);
    this.emit('disconnect', cause);
  }

  /**
   * One store operation: bounded in time, feeding reachability, unreachable →
   * StoreUnavailableError. `map` shapes the result in the same step: this runs for every store
   * command, so it adds one promise, not a chain.
   */
  protected run<T, R = T>(op: () => Promise<T>, map?: (value: T) => R): Promise<R> {
    let pending: Promise<T>;
    try {
      pending = op();
    } catch (err) {
      pending = Promise.reject(err);
    }
    const reached = (value: T): R => {
      this.onReachable();
      return map ? map(value) : (value as unknown as R);
    };
    if (this.#deadlines) return this.#deadlines.bound(pending, reached, this.#failed);
    return pending.then(reached, (err: unknown) => {
      throw this.#failed(err);
    });
  }

  readonly #failed = (err: unknown): unknown => this.#classify(err);

  #classify(err: unknown): unknown {
    if (
      !(err instanceof DeadlineExceeded || err instanceof StoreUnavailableError || this.isUnreachable(err))
    ) {
      return err;
    }
    this.onUnreachable(err);
    return err instanceof StoreUnavailableError ? err : new StoreUnavailableError(this.label, { cause: err });
  }

  /** After each successful operation. Stores with several servers track them individually instead. */
  protected onReachable(): void {
    this.markUp();
  }

  /** After each operation that failed because the service could not be reached. */
  protected onUnreachable(cause: unknown): void {
    this.markDown(cause);
  }

  /** Parses stored text; anything that is not a session object is logged and read as absent. */
  protected decode(id: string, text: string | undefined): SessionData | undefined {
    if (text === undefined) return undefined;
    try {
      const value = this.serializer.parse(text);
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as SessionData;
      throw new Error(`not an object but ${Array.isArray(value) ? 'an array' : typeof value}`);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      this.logger.warn(`session store ${this.label}: corrupt data for session ${id} ignored (${why})`);
      return undefined;
    }
  }

  // --- SessionStore, each also in express-session's callback form ---

  get(id: string): Promise<SessionData | undefined>;
  /** express-session's form; `T` lets its own SessionData type through. */
  get<T extends object = SessionData>(id: string, callback: (err: unknown, session?: T | null) => void): void;
  get(
    id: string,
    callback?: (err: unknown, session?: SessionData | null) => void,
  ): Promise<SessionData | undefined> | undefined {
    const result = this.run(
      () => this.read(this.prefix + id),
      (text) => this.decode(id, text),
    );
    if (!callback) return result;
    settle(result, (session) => callback(null, session ?? null), callback);
  }

  set(id: string, data: object, ttlSeconds?: number): Promise<void>;
  set(id: string, data: object, callback: ErrorCallback): void;
  set(id: string, data: object, ttlOrCallback?: number | ErrorCallback): Promise<void> | undefined {
    const ttl =
      typeof ttlOrCallback === 'number' ? ttlOrCallback : ttlFromCookie(data, this.defaultTtlSeconds);
    const result = this.#set(id, data, ttl);
    if (typeof ttlOrCallback !== 'function') return result;
    settle(result, () => ttlOrCallback(), ttlOrCallback);
  }

  #set(id: string, data: object, ttlSeconds: number): Promise<void> {
    if (ttlSeconds <= 0) return this.#destroy(id);
    let text: string;
    try {
      text = this.serializer.stringify(data as SessionData);
    } catch (err) {
      return Promise.reject(err); // unserializable data is the caller's problem, not the store's
    }
    return this.run(() => this.write(this.prefix + id, text, Math.ceil(ttlSeconds)), noop);
  }

  touch(id: string, ttlOrSession: number | object): Promise<boolean>;
  touch(id: string, session: object, callback: ErrorCallback): void;
  touch(id: string, ttlOrSession: number | object, callback?: ErrorCallback): Promise<boolean> | undefined {
    const ttl =
      typeof ttlOrSession === 'number' ? ttlOrSession : ttlFromCookie(ttlOrSession, this.defaultTtlSeconds);
    const result =
      ttl <= 0
        ? this.#destroy(id).then(() => false)
        : this.run(() => this.extend(this.prefix + id, Math.ceil(ttl)));
    if (!callback) return result;
    settle(result, () => callback(), callback);
  }

  destroy(id: string): Promise<void>;
  destroy(id: string, callback: ErrorCallback): void;
  destroy(id: string, callback?: ErrorCallback): Promise<void> | undefined {
    const result = this.#destroy(id);
    if (!callback) return result;
    settle(result, () => callback(), callback);
  }

  #destroy(id: string): Promise<void> {
    return this.run(() => this.remove(this.prefix + id), noop);
  }

  // --- the rest of express-session's Store protocol ---

  /** express-session: replace the request's session by a new one under a new id. */
  regenerate(req: ExpressRequestLike, callback: ErrorCallback): void {
    this.destroy(req.sessionID, (err) => {
      this.generate?.(req);
      callback(err);
    });
  }

  /** express-session: load a session object (with its methods) by id. */
  load<T = object>(id: string, callback: (err: unknown, session?: T) => void): void {
    this.get(id, (err, data) => {
      if (err) return callback(err);
      if (!data) return callback(undefined);
      callback(undefined, this.createSession<T>({ sessionID: id, sessionStore: this }, data));
    });
  }

  /**
   * express-session: turn stored data into its Session object. Generic because that type lives
   * in express-session, which this library does not depend on.
   */
  createSession<T = object>(req: ExpressRequestLike, data: object): T {
    return createExpressSession(this.generate, req, data as SessionData) as T;
  }
}
