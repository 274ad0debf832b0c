/**
 * Abnormal-traffic detection, explainable: per client and per window of time, it counts the
 * requests a rate limit let through and refused, and the answers that look like a scan or a
 * brute force (401, 403, 404). A client that stays far over its rate limit for `sustain` windows
 * in a row, or whose answers are mostly such errors, is blocked for `blockFor`; every block says
 * why in one log line.
 */

/** One client's counts in the current window. */
interface Tally {
  window: number;
  allowed: number;
  refused: number;
  answers: number;
  errors: number;
  /** Consecutive windows so far with the client far over its rate. */
  overWindows: number;
}

/** What detection decided about a client, for the admin API. */
export interface Block {
  ip: string;
  until: number;
  reason: string;
}

export interface DetectorOptions {
  /** How long a client stays blocked (ms). */
  blockFor: number;
  /** The counting window (ms). */
  window: number;
  /** Windows in a row over `overFactor` times the rate limit before a block. */
  sustain: number;
  /** Requests refused by the rate limit per request allowed that count as "far over". */
  overFactor: number;
  /** Answers in a window before the error ratio is judged. */
  minAnswers: number;
  /** Share of 401/403/404 answers that counts as a scan or brute force. */
  errorRatio: number;
  /** Most clients tracked (a flood of addresses must not grow memory without bound). */
  maxClients: number;
}

export const DEFAULT_DETECTOR: Omit<DetectorOptions, 'blockFor'> = {
  window: 10_000,
  sustain: 2,
  overFactor: 2,
  minAnswers: 20,
  errorRatio: 0.8,
  maxClients: 100_000,
};

export class Detector {
  private readonly o: DetectorOptions;
  private readonly tallies = new Map<string, Tally>();
  private readonly blocked = new Map<string, Block>();
  /** Told of every new block (the listener logs it). */
  onBlock: ((block: Block) => void) | null = null;

  constructor(options: DetectorOptions) {
    this.o = options;
  }

  /** The block on `ip` now, if any (an expired one is lifted). */
  blockOf(ip: string, now: number): Block | undefined {
    const b = this.blocked.get(ip);
    if (b === undefined) return undefined;
    if (b.until > now) return b;
    this.blocked.delete(ip);
    return undefined;
  }

  /** A request of `ip` went through the rate limit (`refused` false) or was refused by it. */
  onRate(ip: string, refused: boolean, now: number): void {
    const t = this.tally(ip, now);
    if (t === undefined) return;
    if (refused) t.refused++;
    else t.allowed++;
  }

  /** `ip` got an answer with `status`. */
  onAnswer(ip: string, status: number, now: number): void {
    const t = this.tally(ip, now);
    if (t === undefined) return;
    t.answers++;
    if (status === 401 || status === 403 || status === 404) t.errors++;
    if (t.answers >= this.o.minAnswers && t.errors >= t.answers * this.o.errorRatio) {
      const pct = Math.round((100 * t.errors) / t.answers);
      this.block(ip, now, `${pct}% of ${t.answers} answers were 401/403/404 (a scan or a brute force)`);
    }
  }

  /** Lifts a block; false when `ip` was not blocked. */
  unblock(ip: string): boolean {
    this.tallies.delete(ip);
    return this.blocked.delete(ip);
  }

  /** The clients blocked now. */
  blocks(now: number): Block[] {
    const out: Block[] = [];
    for (const b of this.blocked.values()) if (b.until > now) out.push(b);
    return out;
  }

  /** The clients with the most requests in the current window, most first. */
  top(n: number): Array<{ ip: string; requests: number; refused: number; errors: number }> {
    return [...this.tallies.entries()]
      .map(([ip, t]) => ({ ip, requests: t.allowed + t.refused, refused: t.refused, errors: t.errors }))
      .sort((a, b) => b.requests - a.requests)
      .slice(0, n);
  }

  /** Forgets the clients silent for a whole window, and expired blocks. */
  sweep(now: number): void {
    const current = Math.floor(now / this.o.window);
    for (const [ip, t] of this.tallies) if (t.window < current - 1) this.tallies.delete(ip);
    for (const [ip, b] of this.blocked) if (b.until <= now) this.blocked.delete(ip);
  }

  /** The client's tally for the window of `now`, closing the previous window when it changed. */
  private tally(ip: string, now: number): Tally | undefined {
    const window = Math.floor(now / this.o.window);
    let t = this.tallies.get(ip);
    if (t === undefined) {
      if (this.tallies.size >= this.o.maxClients) return undefined;
      t = { window, allowed: 0, refused: 0, answers: 0, errors: 0, overWindows: 0 };
      this.tallies.set(ip, t);
      return t;
    }
    if (t.window !== window) {
      const far = t.refused >= Math.max(1, t.allowed) * this.o.overFactor;
      t.overWindows = far && t.window === window - 1 ? t.overWindows + 1 : 0;
      if (t.overWindows >= this.o.sustain) {
        this.block(
          ip,
          now,
          `over its rate limit ×${this.o.overFactor + 1} for ${t.overWindows} windows in a row`,
        );
        t.overWindows = 0;
      }
      t.window = window;
      t.allowed = 0;
      t.refused = 0;
      t.answers = 0;
      t.errors = 0;
    }
    return t;
  }

  private block(ip: string, now: number, reason: string): void {
    if (this.blockOf(ip, now) !== undefined) return;
    const b: Block = { ip, until: now + this.o.blockFor, reason };
    this.blocked.set(ip, b);
    this.onBlock?.(b);
  }
}
