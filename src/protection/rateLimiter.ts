/**
 * A token bucket per client key: `burst` tokens at most, refilled at `requests` per `perMs`. A
 * request takes a token or is refused with the time until the next one. Entries that are full
 * again are forgotten by `sweep`, so memory follows the clients seen recently, not all of them.
 */
export class RateLimiter {
  /** Tokens refilled per ms. */
  private readonly rate: number;
  readonly burst: number;
  readonly requests: number;
  readonly perMs: number;
  /** Per key: tokens left after the last update, and when that was (ms). */
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  /** Most keys tracked at once; beyond it new keys are refused rather than tracked. */
  private readonly maxKeys: number;

  constructor(requests: number, perMs: number, burst: number, maxKeys = 100_000) {
    this.requests = requests;
    this.perMs = perMs;
    this.rate = requests / perMs;
    this.burst = burst;
    this.maxKeys = maxKeys;
  }

  /** Clients tracked now. */
  get size(): number {
    return this.buckets.size;
  }

  /**
   * Takes a token for `key`: 0 when the request may go, else the ms until a token is back.
   * `remaining` (when given) receives the tokens left after this request.
   */
  take(key: string, now: number, remaining?: { value: number }): number {
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.maxKeys) {
        // Under a flood of distinct keys, a new key waits a full refill rather than growing the table.
        if (remaining !== undefined) remaining.value = 0;
        return Math.ceil(1 / this.rate);
      }
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    } else if (now > b.at) {
      b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * this.rate);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      if (remaining !== undefined) remaining.value = Math.floor(b.tokens);
      return 0;
    }
    if (remaining !== undefined) remaining.value = 0;
    return Math.max(1, Math.ceil((1 - b.tokens) / this.rate));
  }

  /** Forgets the clients whose bucket has filled up again (they are as if never seen). */
  sweep(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + (now - b.at) * this.rate >= this.burst) this.buckets.delete(key);
    }
  }
}
