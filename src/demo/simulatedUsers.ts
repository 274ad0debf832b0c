/**
 * The demo lab's simulated users: a few clients with their own cookie jar and keep-alive
 * connection, each asking the balancer for `GET /session` steadily, counting what a user would
 * notice: a session lost (its counter went back: the backend did not find it), a failed request,
 * and which backend answered. One user is heavy (five times the others' rate), to show what
 * stickiness does to the load (the lab's scenario 7, the sticky hot spot).
 */
import { Agent, request } from 'node:http';
import { CookieJar } from '../lab/cookieJar.js';

export interface SimulatedUsersOptions {
  host: string;
  port: number;
  /** How many users (default 6); the first is the heavy one. */
  users?: number;
  /** Pause between one user's requests, ms (default 200; the heavy user's is a fifth). */
  pauseMs?: number;
}

/** What the users saw under one session strategy. */
export interface StrategyCounts {
  requests: number;
  /** Answers other than 200 with a counter, and requests that got no answer. */
  failed: number;
  /** Answers whose counter went back: the session was not found. */
  lost: number;
}

/** The users' figures, for the dashboard. */
export interface UsersView {
  running: boolean;
  users: number;
  heavy: string;
  /** Counts by strategy name, added up over every time it ran. */
  byStrategy: Record<string, StrategyCounts>;
  /** Since the last strategy switch: requests each backend answered, and users it served last. */
  byServer: Record<string, { requests: number; users: number }>;
}

const REQUEST_TIMEOUT_MS = 5000;

class User {
  readonly jar = new CookieJar();
  /** The last counter seen, 0 before the first answer. */
  last = 0;
  lastServer = '';
  readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  timer: NodeJS.Timeout | undefined;
  busy = false;

  constructor(
    readonly name: string,
    readonly pauseMs: number,
  ) {}

  forget(): void {
    this.jar.clear();
    this.last = 0;
    this.lastServer = '';
  }
}

/**
 * The users. `start()` sets them going, `stop()` stops them and waits for the requests in flight;
 * `switchTo(strategy)` attributes what follows to a new strategy and clears every jar (the old
 * sessions are gone with the old backends). `pause()` holds them while the backends are swapped.
 */
export class SimulatedUsers {
  readonly #users: User[];
  readonly #byStrategy = new Map<string, StrategyCounts>();
  #byServer = new Map<string, number>();
  #strategy: string;
  #running = false;
  #paused = false;
  readonly #idle = new Set<() => void>();

  constructor(
    private readonly options: SimulatedUsersOptions,
    strategy: string,
  ) {
    const n = Math.max(1, options.users ?? 6);
    const pause = options.pauseMs ?? 200;
    this.#users = Array.from(
      { length: n },
      (_, i) => new User(`user-${i + 1}`, i === 0 ? Math.max(1, Math.round(pause / 5)) : pause),
    );
    this.#strategy = strategy;
  }

  get running(): boolean {
    return this.#running;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    // A user whose request is still in flight (stopped and started again) goes on when it ends.
    for (const u of this.#users) if (!u.busy && u.timer === undefined) this.#schedule(u, 0);
  }

  /** Stops every user; resolves once no request is in flight. */
  async stop(): Promise<void> {
    this.#running = false;
    for (const u of this.#users) {
      clearTimeout(u.timer);
      u.timer = undefined;
    }
    await this.#settled();
  }

  /** Holds every user until `resume()`; resolves once no request is in flight. */
  async pause(): Promise<void> {
    this.#paused = true;
    await this.#settled();
  }

  resume(): void {
    this.#paused = false;
  }

  /** What follows counts for `strategy`; the jars start empty. */
  switchTo(strategy: string): void {
    this.#strategy = strategy;
    this.#byServer = new Map();
    for (const u of this.#users) u.forget();
  }

  /** Clears every count (the jars stay). */
  reset(): void {
    this.#byStrategy.clear();
    this.#byServer = new Map();
  }

  /** Stops the users and closes their connections. */
  async close(): Promise<void> {
    await this.stop();
    for (const u of this.#users) u.agent.destroy();
  }

  view(): UsersView {
    const byServer: Record<string, { requests: number; users: number }> = {};
    for (const [server, requests] of this.#byServer) byServer[server] = { requests, users: 0 };
    for (const u of this.#users) {
      if (u.lastServer === '') continue;
      byServer[u.lastServer] ??= { requests: 0, users: 0 };
      byServer[u.lastServer]!.users++;
    }
    return {
      running: this.#running,
      users: this.#users.length,
      heavy: this.#users[0]!.name,
      byStrategy: Object.fromEntries([...this.#byStrategy].map(([k, v]) => [k, { ...v }])),
      byServer,
    };
  }

  #counts(): StrategyCounts {
    let c = this.#byStrategy.get(this.#strategy);
    if (c === undefined) {
      c = { requests: 0, failed: 0, lost: 0 };
      this.#byStrategy.set(this.#strategy, c);
    }
    return c;
  }

  #settled(): Promise<void> {
    if (!this.#users.some((u) => u.busy)) return Promise.resolve();
    return new Promise((resolve) => this.#idle.add(resolve));
  }

  #schedule(u: User, ms: number): void {
    if (!this.#running) return;
    u.timer = setTimeout(() => {
      u.timer = undefined;
      if (!this.#running) return;
      if (this.#paused) {
        this.#schedule(u, 50);
        return;
      }
      u.busy = true;
      const strategy = this.#strategy;
      this.#ask(u).then((outcome) => {
        u.busy = false;
        // An answer to a request sent under the previous strategy counts for none.
        if (strategy === this.#strategy) this.#record(u, outcome);
        if (!this.#users.some((x) => x.busy)) {
          for (const done of this.#idle) done();
          this.#idle.clear();
        }
        if (u.timer === undefined) this.#schedule(u, u.pauseMs);
      });
    }, ms);
  }

  #record(u: User, outcome: { count: number; server: string } | undefined): void {
    const c = this.#counts();
    c.requests++;
    if (outcome === undefined) {
      c.failed++;
      return;
    }
    if (u.last > 0 && outcome.count <= u.last) c.lost++;
    u.last = outcome.count;
    u.lastServer = outcome.server;
    this.#byServer.set(outcome.server, (this.#byServer.get(outcome.server) ?? 0) + 1);
  }

  /** One `GET /session`: the counter and the backend, or undefined when it failed. */
  #ask(u: User): Promise<{ count: number; server: string } | undefined> {
    return new Promise((resolve) => {
      const cookie = u.jar.header();
      const req = request(
        {
          host: this.options.host,
          port: this.options.port,
          path: '/session',
          agent: u.agent,
          headers: cookie === '' ? {} : { cookie },
          timeout: REQUEST_TIMEOUT_MS,
        },
        (res) => {
          u.jar.keep(res.headers['set-cookie']);
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', () => resolve(undefined));
          res.on('end', () => {
            if (res.statusCode !== 200) return resolve(undefined);
            try {
              const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
                count?: unknown;
                server?: unknown;
              };
              if (typeof body.count !== 'number') return resolve(undefined);
              resolve({ count: body.count, server: String(body.server ?? '?') });
            } catch {
              resolve(undefined);
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => resolve(undefined));
      req.end();
    });
  }
}
