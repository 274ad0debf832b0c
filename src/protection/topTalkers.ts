/**
 * The clients that sent the most lately, over the current and the last window of 10 s (requests,
 * connections or datagrams, and how many of them protection refused), for operators: `GET /api/protection` and
 * `fulcrum protection`. Used where detection, which keeps its own tallies, is off. Bounded: at
 * most `maxClients` tracked per window (later clients are not counted until the next one).
 */
export class TopTalkers {
  private readonly windowMs: number;
  private readonly maxClients: number;
  private window = -1;
  private counts = new Map<string, { requests: number; refused: number }>();
  /** The last whole window's counts. */
  private previous = new Map<string, { requests: number; refused: number }>();

  constructor(windowMs = 10_000, maxClients = 10_000) {
    this.windowMs = windowMs;
    this.maxClients = maxClients;
  }

  /** `ip` sent one more, `refused` or not. */
  hit(ip: string, refused: boolean, now: number): void {
    const w = Math.floor(now / this.windowMs);
    if (w !== this.window) {
      this.previous = w === this.window + 1 ? this.counts : new Map();
      this.counts = new Map();
      this.window = w;
    }
    let c = this.counts.get(ip);
    if (c === undefined) {
      if (this.counts.size >= this.maxClients) return;
      c = { requests: 0, refused: 0 };
      this.counts.set(ip, c);
    }
    c.requests++;
    if (refused) c.refused++;
  }

  /** The `n` clients with the most over the current and the last window, most first. */
  top(n: number, now: number): Array<{ ip: string; requests: number; refused: number; errors: number }> {
    const w = Math.floor(now / this.windowMs);
    const sum = new Map<string, { requests: number; refused: number }>();
    const add = (m: Map<string, { requests: number; refused: number }>) => {
      for (const [ip, c] of m) {
        const t = sum.get(ip);
        if (t === undefined) sum.set(ip, { ...c });
        else {
          t.requests += c.requests;
          t.refused += c.refused;
        }
      }
    };
    if (w === this.window) {
      add(this.previous);
      add(this.counts);
    } else if (w === this.window + 1) add(this.counts);
    return [...sum.entries()]
      .map(([ip, c]) => ({ ip, requests: c.requests, refused: c.refused, errors: 0 }))
      .sort((a, b) => b.requests - a.requests)
      .slice(0, n);
  }
}
