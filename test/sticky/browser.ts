/** Test clients for the sticky end-to-end tests: a browser with a cookie jar, and the wiring. */
import { Agent } from 'node:http';
import type { Pool } from '../../src/core/pool.js';
import { createAffinity, type StickyAffinity } from '../../src/sticky/index.js';
import { type Reply, request, type TestBalancer } from '../helpers/balancer.js';

/** A client with a cookie jar (name → value) and its own keep-alive connection. */
export class Browser {
  readonly cookies = new Map<string, string>();
  /** Set-Cookie headers received, by cookie name. */
  readonly setCookies = new Map<string, number>();
  /** `x-served-by` of every answer, in order. */
  readonly servedBy: string[] = [];
  private readonly agent: Agent;
  port: number;
  private readonly localAddress: string | undefined;

  constructor(port: number, localAddress?: string) {
    this.port = port;
    this.localAddress = localAddress;
    this.agent = new Agent({ keepAlive: true, maxSockets: 1 });
  }

  async get(path = '/whoami'): Promise<Reply> {
    const headers: Record<string, string> = {};
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const r = await request(this.port, { path, headers, agent: this.agent, localAddress: this.localAddress });
    for (const line of r.headers['set-cookie'] ?? []) {
      const pair = line.split(';')[0]!;
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      this.cookies.set(name, pair.slice(eq + 1));
      this.setCookies.set(name, (this.setCookies.get(name) ?? 0) + 1);
    }
    this.servedBy.push(String(r.headers['x-served-by']));
    return r;
  }

  /** The distinct servers seen, in order of first appearance. */
  get servers(): string[] {
    return [...new Set(this.servedBy)];
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * The pool's affinity as the Runtime will install it (createAffinity after the pool is built);
 * installed here while the Runtime does not do it itself.
 */
export function installAffinity(
  lb: TestBalancer,
  poolName: string,
): { pool: Pool; affinity: StickyAffinity } {
  const pool = lb.runtime.pools.get(poolName)!;
  if (pool.affinity === null) {
    const config = lb.runtime.config.pools.find((p) => p.name === poolName)!;
    pool.affinity = createAffinity(pool, config.sticky!, lb.log);
    if (!installed.has(lb)) {
      installed.add(lb);
      // Stops the affinities with the balancer (their Redis clients would keep the process alive).
      const stop = lb.stop;
      lb.stop = async () => {
        await stop();
        for (const p of lb.runtime.pools.values()) await (p.affinity as StickyAffinity | null)?.stop();
      };
    }
  }
  return { pool, affinity: pool.affinity as StickyAffinity };
}

const installed = new WeakSet<TestBalancer>();

/** What the Runtime does on reload: a new affinity for the updated pool, the old one stopped. */
export async function reinstallAffinity(lb: TestBalancer, poolName: string): Promise<StickyAffinity> {
  const pool = lb.runtime.pools.get(poolName)!;
  const old = pool.affinity as StickyAffinity | null;
  const config = lb.runtime.config.pools.find((p) => p.name === poolName)!;
  const next = createAffinity(pool, config.sticky!, lb.log);
  pool.affinity = next;
  await old?.stop();
  return next;
}

/** How many of `items` each key has, sorted by key. */
export function tally(items: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of [...items].sort()) out[i] = (out[i] ?? 0) + 1;
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(what: string, check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
