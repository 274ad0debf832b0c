/**
 * Bounds many concurrent operations in time with one timer instead of one each: on the hot path
 * an operation only enters and leaves a set, which costs far less than arming and clearing a
 * timer (or an AbortSignal) per store command. A sweep every eighth of the limit fails the overdue
 * ones, so an operation fails between `ms` and `1.125 * ms` after it began.
 */
export class DeadlineExceeded extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'DeadlineExceeded';
  }
}

/** One operation under watch: `expire` runs once if it is still pending when due. */
export interface Deadline {
  due: number;
  expire: (err: DeadlineExceeded) => void;
}

export class Deadlines {
  readonly #pending = new Set<Deadline>();
  readonly #tickMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly ms: number) {
    this.#tickMs = Math.max(5, Math.min(250, Math.floor(ms / 8)));
  }

  /** Starts watching an operation; `expire` is called if `finish` has not been by the deadline. */
  start(expire: (err: DeadlineExceeded) => void): Deadline {
    const entry: Deadline = { due: Date.now() + this.ms, expire };
    this.#pending.add(entry);
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#sweep(), this.#tickMs);
      this.#timer.unref();
    }
    return entry;
  }

  /** The operation settled: true if in time, false if it had already expired. */
  finish(entry: Deadline): boolean {
    return this.#pending.delete(entry);
  }

  /**
   * Settles like `promise`, except that it fails with DeadlineExceeded once `promise` has taken
   * longer than `ms`. `map` and `mapError` shape the outcome in the same step.
   */
  bound<T, R = T>(
    promise: PromiseLike<T>,
    map: (value: T) => R = (value) => value as unknown as R,
    mapError: (err: unknown) => unknown = (err) => err,
  ): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const entry = this.start((err) => reject(mapError(err)));
      promise.then(
        (value) => {
          if (!this.finish(entry)) return; // already timed out
          try {
            resolve(map(value));
          } catch (err) {
            reject(err);
          }
        },
        (err: unknown) => {
          if (this.finish(entry)) reject(mapError(err));
        },
      );
    });
  }

  #sweep(): void {
    const now = Date.now();
    // Entries share one limit, so insertion order is due order: stop at the first not yet due.
    for (const entry of this.#pending) {
      if (entry.due > now) break;
      this.#pending.delete(entry);
      entry.expire(new DeadlineExceeded(this.ms));
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
