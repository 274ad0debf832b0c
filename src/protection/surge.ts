/**
 * Listener-wide surge detection, explainable: the request rate over the last `window` (counted
 * per second) against a baseline, an exponentially weighted moving average of the per-second
 * rate with time constant `baseline`. A surge is a recent rate above `factor` times the baseline
 * and above `floor` (a quiet listener warming up, whose baseline is near zero, is not judged
 * until real traffic is far above the floor). During a surge the baseline stops learning (the
 * attack must not become the norm), and the listener sheds new clients until the recent rate
 * falls back under the threshold. Each start and end is told once to `onChange`.
 */

export interface SurgeOptions {
  /** Recent-rate window (ms, whole seconds). */
  window: number;
  /** Time constant of the baseline's moving average (ms). */
  baseline: number;
  /** How many times the baseline the recent rate must exceed. */
  factor: number;
  /** Requests per second below which there is never a surge. */
  floor: number;
}

/** What a surge looked like when it started or ended, for the log and the admin API. */
export interface SurgeState {
  active: boolean;
  /** Requests per second over the recent window. */
  rate: number;
  /** The baseline's requests per second. */
  baseline: number;
  /** The rate above which the listener sheds (max of floor and factor × baseline). */
  threshold: number;
  /** When the current or last surge started (ms since the epoch), 0 if never. */
  since: number;
}

export class SurgeDetector {
  private readonly o: SurgeOptions;
  /** Requests per second: a ring of the current second and the `window` seconds before it. */
  private readonly counts: Float64Array;
  /** The second `counts[second % length]` holds. */
  private second = -1;
  private average = 0;
  /** The baseline has seen at least one whole second. */
  private seeded = false;
  private active = false;
  private since = 0;
  /** Told when a surge starts or ends. */
  onChange: ((state: SurgeState) => void) | null = null;

  constructor(options: SurgeOptions) {
    this.o = options;
    this.counts = new Float64Array(Math.max(1, Math.round(options.window / 1000)) + 1);
  }

  /** Counts one request at `now` and says whether the listener is shedding new clients. */
  hit(now: number): boolean {
    const s = Math.floor(now / 1000);
    if (s !== this.second) this.advance(s);
    this.counts[s % this.counts.length]!++;
    return this.active;
  }

  /** The state now (the seconds elapsed without requests are taken into account). */
  state(now: number): SurgeState {
    const s = Math.floor(now / 1000);
    if (s !== this.second) this.advance(s);
    return this.snapshot();
  }

  /**
   * Moves to second `s`: the surge is judged on the seconds completed, against the baseline as
   * it was before them; then, outside a surge, they feed the baseline.
   */
  private advance(s: number): void {
    const counts = this.counts;
    const n = counts.length;
    const last = this.second;
    this.second = s;
    if (last < 0) return;
    // Second `last` ended, then `empty` seconds without a request.
    const done = counts[last % n]!;
    const empty = s - last - 1;
    for (let t = last + 1; t <= s && t - last <= n; t++) counts[t % n] = 0;
    this.judge(s);
    if (this.active) return;
    const alpha = 1 - Math.exp(-1000 / this.o.baseline);
    this.average = this.seeded ? this.average + alpha * (done - this.average) : done;
    this.seeded = true;
    if (empty > 0) this.average *= (1 - alpha) ** empty;
  }

  /** Starts or ends a surge on the rate of the last whole seconds. */
  private judge(s: number): void {
    const rate = this.recentRate();
    const threshold = this.threshold();
    const surging = this.seeded && rate > threshold;
    if (surging === this.active) return;
    this.active = surging;
    if (surging) this.since = s * 1000;
    this.onChange?.(this.snapshot());
  }

  /** Requests per second over the whole seconds of the window that ended (the current one left out). */
  private recentRate(): number {
    const n = this.counts.length;
    let sum = 0;
    for (let i = 1; i < n; i++) sum += this.counts[(this.second - i + n) % n]!;
    return sum / (n - 1);
  }

  private threshold(): number {
    return Math.max(this.o.floor, this.o.factor * this.average);
  }

  private snapshot(): SurgeState {
    return {
      active: this.active,
      rate: Math.round(this.recentRate()),
      baseline: Math.round(this.average * 10) / 10,
      threshold: Math.round(this.threshold()),
      since: this.since,
    };
  }
}
