/**
 * The session strategies the demo lab switches between (the lab's scenario 5, live): where the
 * backends keep `GET /session`'s counter, and whether the balancer pins a client to one backend.
 */

/** A strategy's name, as the demo's admin routes and the dashboard's Lab panel use it. */
export type StrategyName = 'memory' | 'sticky' | 'cluster' | 'redis';

/** One strategy: what each backend stores sessions in, and whether the pool is sticky. */
export interface SessionStrategy {
  readonly name: StrategyName;
  /** Shown on the dashboard's button. */
  readonly label: string;
  /** One sentence on what to expect. */
  readonly expect: string;
  /** Where each backend keeps its sessions. */
  readonly store: 'memory' | 'cluster' | 'redis';
  /** The pool pins each client to a backend with a cookie. */
  readonly sticky: boolean;
}

/** Every strategy, in the order the dashboard shows them. */
export const STRATEGIES: readonly SessionStrategy[] = [
  {
    name: 'memory',
    label: 'memory, no stickiness',
    expect: 'each backend has its own sessions and round robin moves every user: most requests lose it',
    store: 'memory',
    sticky: false,
  },
  {
    name: 'sticky',
    label: 'sticky cookie',
    expect: "users stay on their backend; killing one loses its users' sessions (about 1/N)",
    store: 'memory',
    sticky: true,
  },
  {
    name: 'cluster',
    label: 'clustered sessions',
    expect: 'backends replicate every session to each other (all-to-all): a kill loses none',
    store: 'cluster',
    sticky: false,
  },
  {
    name: 'redis',
    label: 'Redis store',
    expect: 'sessions live in one redis-server the backends share: a kill loses none',
    store: 'redis',
    sticky: false,
  },
];

/** The strategy named `name`, or undefined. */
export function strategyNamed(name: unknown): SessionStrategy | undefined {
  return STRATEGIES.find((s) => s.name === name);
}

/** The sticky cookie's name while the `sticky` strategy runs. */
export const STICKY_COOKIE = 'fulcrum_srv';

/**
 * The demo's balancer config: one HTTP listener in front of one round-robin pool of `servers`,
 * sticky by cookie when `sticky`.
 */
export function demoConfigYaml(
  listen: string,
  servers: ReadonlyArray<{ address: string; name: string }>,
  sticky: boolean,
): string {
  return `
listeners:
  - name: web
    protocol: http
    listen: ${listen}
    pool: web
pools:
  - name: web
    algorithm: round-robin
    healthCheck: { type: http, path: /health, interval: 1s, timeout: 500ms }
    retries: { attempts: 2 }
${sticky ? `    sticky: { type: cookie, cookie: ${STICKY_COOKIE}, ttl: 30m }\n` : ''}    servers:
${servers.map((s) => `      - address: ${s.address}\n        name: ${s.name}`).join('\n')}
`;
}
