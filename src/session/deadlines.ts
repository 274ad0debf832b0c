/**
 * Bounds many concurrent operations in time with one timer instead of one each: on the hot path
 * an operation only enters and leaves a set, which costs far less than arming and clearing a
 * timer per store command. A sweep every quarter of the limit rejects the overdue ones, so an
 * operation fails between `ms` and `1.25 * ms` after it began.
 */
export class DeadlineExceeded extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'DeadlineExceeded';
  }
}

interface Entry {
  due: number;
  reject: (err: Error) => void;
}

export class Deadlines {
  readonly #pending = new Set<Entry>();
  readonly #tickMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly ms: number) {
    this.#tickMs = Math.max(5, Math.min(250, Math.floor(ms / 4)));
  }

  /**
   * Settles like `promise`, except that it fails with DeadlineExceeded once `promise` has taken
   * longer than `ms`. `map` and `mapError` shape the outcome in the same step (one promise, not a
   * chain of them: this runs for every store command).
   */
  bound<T, R = T>(
    promise: Promise<T>,
    map: (value: T) => R = (value) => value as unknown as R,
    mapError: (err: unknown) => unknown = (err) => err,
  ): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const entry: Entry = { due: Date.now() + this.ms, reject: (err) => reject(mapError(err)) };
      this.#pending.add(entry);
      if (!this.#timer) {
        this.#timer = setInterval(() => this.#sweep(), this.#tickMs);
        this.#timer.unref();
      }
      promise.then(
        (value) => {
          if (!this.#pending.delete(entry)) return; // already timed out
          try {
            resolve(map(value));
          } catch (err) {
            reject(err);
          }
        },
        (err: unknown) => {
          if (this.#pending.delete(entry)) reject(mapError(err));
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
      entry.reject(new DeadlineExceeded(this.ms));
    }
    if (this.#pending.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
