/**
 * Bounds many concurrent operations in time with one timer instead of one each: on the hot path
 * an operation only enters and leaves a list, which costs far less than arming and clearing a
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
  expire: ((err: DeadlineExceeded) => void) | undefined;
  prev: Deadline | undefined;
  next: Deadline | undefined;
}

export class Deadlines {
  /**
   * Pending operations in start order (so in due order: they share one limit), as a doubly
   * linked list: entering and leaving are O(1), and the long-lived Deadlines object references
   * only its two ends. A Set here made every short-lived operation reachable from an old-space
   * hash table, and the garbage collector promoted them: several times the GC work per request.
   */
  #head: Deadline | undefined;
  #tail: Deadline | undefined;
  readonly #tickMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly ms: number) {
    this.#tickMs = Math.max(5, Math.min(250, Math.floor(ms / 8)));
  }

  /** Starts watching an operation; `expire` is called if `finish` has not been by the deadline. */
  start(expire: (err: DeadlineExceeded) => void): Deadline {
    const entry: Deadline = { due: Date.now() + this.ms, expire, prev: this.#tail, next: undefined };
    if (this.#tail) this.#tail.next = entry;
    else this.#head = entry;
    this.#tail = entry;
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#sweep(), this.#tickMs);
      this.#timer.unref();
    }
    return entry;
  }

  /** The operation settled: true if in time, false if it had already expired. */
  finish(entry: Deadline): boolean {
    if (entry.expire === undefined) return false;
    entry.expire = undefined;
    this.#unlink(entry);
    return true;
  }

  #unlink(entry: Deadline): void {
    if (entry.prev) entry.prev.next = entry.next;
    else this.#head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else this.#tail = entry.prev;
    entry.prev = undefined;
    entry.next = undefined;
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
    // In due order: stop at the first not yet due.
    for (let entry = this.#head; entry && entry.due <= now; entry = this.#head) {
      const expire = entry.expire!;
      entry.expire = undefined;
      this.#unlink(entry);
      expire(new DeadlineExceeded(this.ms));
    }
    if (!this.#head) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
