/**
 * What every store shares: key prefixing, (de)serialization with corrupt data read as "no
 * session", TTLs derived like express-session's stores, a bounded time for every operation,
 * reachability tracking with 'connect'/'disconnect' events, and the express-session `Store`
 * protocol (callback signatures, createSession/load/regenerate), so each store is a drop-in there.
 * Subclasses only implement four primitives on raw keys and say which errors mean "unreachable".
 */
import { EventEmitter } from 'node:events';
import { type Deadline, DeadlineExceeded, Deadlines } from './deadlines.js';
import { createExpressSession, type ExpressRequestLike } from './expressCompat.js';
import { positive } from './options.js';
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
  /** `{ stringify, parse }`; `parse` may return a promise. Default `JSON`. */
  serializer?: Serializer;
  /** TTL when `set` gets neither a TTL nor `cookie.expires` (default 86400 s, one day). */
  defaultTtlSeconds?: number;
  /** Every operation fails as unavailable after this long (default 1000 ms; 0: unbounded). */
  operationTimeoutMs?: number;
  /** Where outages, recoveries and corrupt entries are reported (default console). */
  logger?: Logger;
}

/** The option names BaseStoreOptions defines, for the stores' checks of unknown options. */
export const BASE_STORE_OPTIONS: readonly string[] = [
  'prefix',
  'serializer',
  'defaultTtlSeconds',
  'operationTimeoutMs',
  'logger',
];

/** express-session's callbacks: `(err)` for writes, `(err, value)` for reads. */
type Callback<T = unknown> = (err: unknown, value?: T) => void;

/** How one operation ends: `failed` tells whether `result` is the error or the value. */
type Done<R> = (failed: boolean, result: R | unknown) => void;

const identity = <T>(value: T): T => value;
const nothing = (): void => {};

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

/**
 * Ends an operation through a node-style callback, on the next tick: outside the promise
 * machinery, so an exception thrown by the callback is an uncaught exception, not swallowed.
 */
function callbackDone<T>(callback: Callback<T>): Done<T | PromiseLike<T>> {
  return (failed, result) => {
    if (failed) process.nextTick(callback, result);
    else if (isThenable(result)) result.then((value) => process.nextTick(callback, null, value));
    else process.nextTick(callback, null, result);
  };
}

/**
 * For express-session's optional methods (`all`, `length`, ...): the promise, or, given a
 * callback, its outcome through the callback on the next tick.
 */
export function deliver<T>(
  result: Promise<T>,
  callback?: (err: unknown, value?: T) => void,
): Promise<T> | undefined {
  if (!callback) return result;
  result.then(
    (value) => process.nextTick(callback, null, value),
    (err: unknown) => process.nextTick(callback, err),
  );
  return undefined;
}

/** TTL in seconds from express-session's cookie data: what remains until `expires`. */
export function ttlFromCookie(data: object, fallbackSeconds: number): number {
  const expires = (data as SessionData | null)?.cookie?.expires;
  if (expires === undefined || expires === null) return fallbackSeconds;
  const at = expires instanceof Date ? expires.getTime() : Date.parse(String(expires));
  if (Number.isNaN(at)) return fallbackSeconds;
  return Math.ceil((at - Date.now()) / 1000);
}

export abstract class BaseStore extends EventEmitter implements SessionStore {
  /** Prepended to every session id to form its key. */
  prefix: string;
  /** Turns sessions into stored text and back. */
  serializer: Serializer;
  /** TTL in seconds when neither the caller nor the session's cookie gives one. */
  defaultTtlSeconds: number;
  /** Every operation fails as unavailable after this long (0: unbounded). */
  protected readonly operationTimeoutMs: number;
  protected readonly logger: Logger;
  /** 'unknown' until the first answer or failure; only transitions emit events. */
  #state: 'unknown' | 'up' | 'down' = 'unknown';
  readonly #deadlines: Deadlines | undefined;
  #generate: ((req: object) => void) | undefined;
  /** express-session's readiness listeners still to be turned away (see `on`). */
  #expressSessionListeners: string[] = [];

  /** Human-readable name of the backing service for logs and errors, e.g. `redis://h:p`. */
  protected abstract readonly label: string;
  /** The raw stored value (text, or a Buffer), or null/undefined when there is none. */
  protected abstract read(key: string): PromiseLike<unknown>;
  protected abstract write(key: string, text: string, ttlSeconds: number): PromiseLike<unknown>;
  protected abstract remove(key: string): PromiseLike<unknown>;
  /** Resets the key's TTL without rewriting it; false when the key does not exist. */
  protected abstract extend(key: string, ttlSeconds: number): PromiseLike<boolean>;
  /** True when the error means the service could not be reached, not that it refused the op. */
  protected abstract isUnreachable(err: unknown): boolean;

  constructor(options: BaseStoreOptions = {}) {
    super();
    const name = new.target.name;
    if (options.prefix !== undefined && typeof options.prefix !== 'string') {
      throw new TypeError(`${name}: option "prefix" must be a string`);
    }
    const serializer = options.serializer ?? jsonSerializer;
    if (typeof serializer?.stringify !== 'function' || typeof serializer.parse !== 'function') {
      throw new TypeError(`${name}: option "serializer" must have stringify() and parse()`);
    }
    const timeout = options.operationTimeoutMs ?? 1000;
    if (typeof timeout !== 'number' || !(timeout >= 0)) {
      throw new TypeError(`${name}: option "operationTimeoutMs" must be 0 or more, not ${String(timeout)}`);
    }
    this.prefix = options.prefix ?? 'sess:';
    this.serializer = serializer;
    this.logger = options.logger ?? console;
    this.defaultTtlSeconds = positive(name, 'defaultTtlSeconds', options.defaultTtlSeconds) ?? 86_400;
    this.operationTimeoutMs = timeout;
    this.#deadlines = timeout > 0 && timeout < Number.POSITIVE_INFINITY ? new Deadlines(timeout) : undefined;
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
    this.run(() => this.read(`${this.prefix}__probe`)).catch(nothing);
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
   * StoreUnavailableError, `map` applied to the answer. This runs for every store command, so it
   * adds one reaction to the command's own promise and nothing else: no promise of its own, no
   * timer (the deadlines share one).
   */
  #exec<T, R>(op: () => PromiseLike<T>, map: (value: T) => R, done: Done<R>): void {
    let pending: PromiseLike<T>;
    try {
      pending = op();
    } catch (err) {
      done(true, this.#classify(err));
      return;
    }
    const deadlines = this.#deadlines;
    let entry: Deadline | undefined;
    if (deadlines) entry = deadlines.start((err) => done(true, this.#classify(err)));
    pending.then(
      (value) => {
        if (entry && !deadlines!.finish(entry)) return; // it already failed as overdue
        this.onReachable();
        let result: R;
        try {
          result = map(value);
        } catch (err) {
          done(true, err);
          return;
        }
        done(false, result);
      },
      (err: unknown) => {
        if (entry && !deadlines!.finish(entry)) return;
        done(true, this.#classify(err));
      },
    );
  }

  /** `#exec` as a promise, for the promise API and for subclasses. */
  protected run<T, R = T>(op: () => PromiseLike<T>, map?: (value: T) => R): Promise<Awaited<R>> {
    return new Promise((resolve, reject) => {
      this.#exec(op, map ?? (identity as (value: T) => R), (failed, result) =>
        failed ? reject(result) : resolve(result as Awaited<R>),
      );
    });
  }

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

  /**
   * Parses a stored value; anything that is not a session object is logged and read as absent.
   * A promise when the serializer's `parse` returns one.
   */
  protected decode(id: string, raw: unknown): SessionData | null | Promise<SessionData | null> {
    if (raw === null || raw === undefined) return null;
    let value: unknown;
    try {
      value = this.serializer.parse(typeof raw === 'string' ? raw : String(raw));
    } catch (err) {
      return this.#corrupt(id, err);
    }
    if (isThenable(value)) {
      return Promise.resolve(value).then(
        (parsed) => this.#session(id, parsed),
        (err: unknown) => this.#corrupt(id, err),
      );
    }
    return this.#session(id, value);
  }

  #session(id: string, value: unknown): SessionData | null {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as SessionData;
    return this.#corrupt(
      id,
      new Error(`not an object but ${Array.isArray(value) ? 'an array' : typeof value}`),
    );
  }

  #corrupt(id: string, err: unknown): null {
    const why = err instanceof Error ? err.message : String(err);
    this.logger.warn(`session store ${this.label}: corrupt data for session ${id} ignored (${why})`);
    return null;
  }

  /**
   * The TTL in seconds for a write or a touch that comes with a session but no TTL (the
   * express-session calls): what remains of `cookie.expires`, else `defaultTtlSeconds`.
   * Stores with a `ttl` option of their own decide here.
   */
  protected ttlOf(data: object): number {
    return ttlFromCookie(data, this.defaultTtlSeconds);
  }

  /** False when `touch` must leave TTLs alone (connect-redis's `disableTouch`). */
  protected get touchExtends(): boolean {
    return true;
  }

  // --- SessionStore, each also in express-session's callback form ---

  /**
   * The session, or null when there is none (as connect-redis and express-session's stores
   * answer), in every store.
   */
  get(id: string): Promise<SessionData | null>;
  /** express-session's form; `T` lets its own SessionData type through. */
  get<T extends object = SessionData>(id: string, callback: (err: unknown, session?: T | null) => void): void;
  get(
    id: string,
    callback?: (err: unknown, session?: SessionData | null) => void,
  ): Promise<SessionData | null | undefined> | undefined {
    const key = this.prefix + id;
    const read = () => this.read(key);
    const decode = (raw: unknown) => this.decode(id, raw);
    if (!callback) return this.run(read, decode);
    this.#exec(read, decode, callbackDone(callback));
  }

  set(id: string, data: object, ttlSeconds?: number): Promise<void>;
  set(id: string, data: object, callback: Callback): void;
  set(id: string, data: object, ttlOrCallback?: number | Callback): Promise<void> | undefined {
    const ttl = typeof ttlOrCallback === 'number' ? ttlOrCallback : this.ttlOf(data);
    if (typeof ttlOrCallback !== 'function') {
      return new Promise((resolve, reject) =>
        this.#set(id, data, ttl, (failed, err) => (failed ? reject(err) : resolve())),
      );
    }
    this.#set(id, data, ttl, callbackDone(ttlOrCallback));
  }

  #set(id: string, data: object, ttlSeconds: number, done: Done<undefined>): void {
    if (!(ttlSeconds > 0)) {
      this.#exec(() => this.remove(this.prefix + id), nothing, done);
      return;
    }
    let text: string;
    try {
      text = this.serializer.stringify(data as SessionData);
    } catch (err) {
      done(true, err); // unserializable data is the caller's problem, not the store's
      return;
    }
    const key = this.prefix + id;
    const ttl = Math.ceil(ttlSeconds);
    this.#exec(() => this.write(key, text, ttl), nothing, done);
  }

  /**
   * Extends the session's TTL without rewriting it: to `ttlSeconds`, or from a session's cookie
   * (express-session's form). Resolves false when there is no such session; true without asking
   * the store when touching is disabled.
   */
  touch(id: string, ttlOrSession: number | object): Promise<boolean>;
  touch(id: string, session: object, callback: Callback): void;
  touch(id: string, ttlOrSession: number | object, callback?: Callback): Promise<boolean> | undefined {
    if (callback) {
      this.#touch(id, ttlOrSession, callbackDone(callback));
      return;
    }
    return new Promise((resolve, reject) =>
      this.#touch(id, ttlOrSession, (failed, result) =>
        failed ? reject(result) : resolve(result as boolean),
      ),
    );
  }

  #touch(id: string, ttlOrSession: number | object, done: Done<boolean>): void {
    if (!this.touchExtends) {
      done(false, true);
      return;
    }
    const ttl = typeof ttlOrSession === 'number' ? ttlOrSession : this.ttlOf(ttlOrSession);
    const key = this.prefix + id;
    if (!(ttl > 0))
      this.#exec(
        () => this.remove(key),
        () => false,
        done,
      );
    else this.#exec(() => this.extend(key, Math.ceil(ttl)), identity, done);
  }

  destroy(id: string): Promise<void>;
  destroy(id: string, callback: Callback): void;
  destroy(id: string, callback?: Callback): Promise<void> | undefined {
    const key = this.prefix + id;
    const remove = () => this.remove(key);
    if (!callback) return this.run(remove, nothing);
    this.#exec(remove, nothing, callbackDone(callback));
  }

  // --- the rest of express-session's Store protocol ---

  /**
   * Installed by express-session on its store: its session factory, used by
   * regenerate/createSession. Right after installing it, express-session registers its
   * readiness listeners; see `on`.
   */
  get generate(): ((req: object) => void) | undefined {
    return this.#generate;
  }

  set generate(fn: ((req: object) => void) | undefined) {
    this.#generate = fn;
    this.#expressSessionListeners = ['disconnect', 'connect'];
  }

  /**
   * Registers a listener, except express-session's own 'disconnect'/'connect' listeners (the
   * ones it registers right after installing `generate`): with them, express-session would serve
   * every request during an outage *without* a session, and a handler reading `req.session`
   * would fail or act logged out. Without them, each request meets the store's own error within
   * `operationTimeoutMs`: a StoreUnavailableError that Express answers with a 503.
   */
  override on(event: string | symbol, listener: (...args: unknown[]) => void): this {
    const pending = this.#expressSessionListeners;
    if (pending.length > 0 && typeof event === 'string' && listener.name === `on${event}`) {
      const at = pending.indexOf(event);
      if (at >= 0) {
        pending.splice(at, 1);
        return this;
      }
    }
    return super.on(event, listener);
  }

  /** express-session: replace the request's session by a new one under a new id. */
  regenerate(req: ExpressRequestLike, callback: (err?: unknown) => void): void {
    this.destroy(req.sessionID, (err) => {
      this.generate?.(req);
      callback(err ?? undefined);
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
