/**
 * Live per-server traffic figures for the admin API and the dashboard: requests per second over
 * the last second, and latency percentiles over the last ten seconds. Recording is O(1) and
 * allocates nothing (a log-scale bucket counter); the work happens once a second in `tick()`.
 */

/** Buckets are eighth powers of two from 10 µs: ~9% wide, so percentiles are within ~5%. */
const MIN_MS = 0.01;
const STEPS_PER_DOUBLING = 8;
const BUCKETS = 200; // up to 0.01 ms × 2^(199/8) ≈ 310 s
/** Seconds of history kept for the percentiles. */
export const WINDOW_SECONDS = 10;

function bucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  const i = Math.floor(Math.log2(ms / MIN_MS) * STEPS_PER_DOUBLING) + 1;
  return i < BUCKETS ? i : BUCKETS - 1;
}

/** The middle (geometric) of a bucket, in ms; 0 for the first (up to 10 µs, and 0 itself). */
function middleOf(bucket: number): number {
  if (bucket === 0) return 0;
  return MIN_MS * 2 ** ((bucket - 0.5) / STEPS_PER_DOUBLING);
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
}

export class LiveStats {
  /** Requests per second over the last tick. */
  rate = 0;
  private current: Uint32Array = new Uint32Array(BUCKETS);
  private currentCount = 0;
  private readonly history: Uint32Array[] = [];
  private readonly counts: number[] = [];
  private cached: Percentiles | null | undefined;

  record(ms: number): void {
    this.current[bucketOf(ms)]!++;
    this.currentCount++;
  }

  /** Closes the current second; `elapsedMs` is the real time since the last tick. */
  tick(elapsedMs: number): void {
    this.rate = elapsedMs > 0 ? (this.currentCount * 1000) / elapsedMs : 0;
    this.history.push(this.current);
    this.counts.push(this.currentCount);
    const reuse = this.history.length > WINDOW_SECONDS ? this.history.shift() : undefined;
    if (this.counts.length > WINDOW_SECONDS) this.counts.shift();
    if (reuse !== undefined) {
      reuse.fill(0);
      this.current = reuse;
    } else {
      this.current = new Uint32Array(BUCKETS);
    }
    this.currentCount = 0;
    this.cached = undefined;
  }

  /** Requests in the window (the last ten ticks). */
  get windowCount(): number {
    let n = 0;
    for (const c of this.counts) n += c;
    return n;
  }

  /** p50, p90 and p99 in ms over the last ten seconds; null without requests. */
  percentiles(): Percentiles | null {
    if (this.cached !== undefined) return this.cached;
    const total = this.windowCount;
    if (total === 0) {
      this.cached = null;
      return null;
    }
    const merged = new Float64Array(BUCKETS);
    for (const h of this.history) for (let i = 0; i < BUCKETS; i++) merged[i]! += h[i]!;
    const at = (q: number): number => {
      const rank = Math.max(1, Math.ceil(q * total));
      let seen = 0;
      for (let i = 0; i < BUCKETS; i++) {
        seen += merged[i]!;
        if (seen >= rank) return round(middleOf(i));
      }
      return round(middleOf(BUCKETS - 1));
    };
    this.cached = { p50: at(0.5), p90: at(0.9), p99: at(0.99) };
    return this.cached;
  }
}

function round(ms: number): number {
  return ms >= 10 ? Math.round(ms * 10) / 10 : Math.round(ms * 1000) / 1000;
}
