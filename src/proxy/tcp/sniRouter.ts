import type { Pool } from '../../core/pool.js';

interface SniRoute {
  /** Exact name, or the suffix after "*" of a wildcard ("*.example.com" → ".example.com"). */
  name: string;
  wildcard: boolean;
  pool: Pool;
}

/**
 * Chooses the pool of a TLS connection by the server name of its ClientHello: the first route
 * whose `sni` matches, else the listener's default pool (also for a ClientHello without SNI).
 * Names match as http route hosts do: exactly, or by one leading wildcard label ("*.example.com"
 * matches any subdomain at any depth, not example.com itself).
 */
export class SniRouter {
  private readonly routes: SniRoute[];

  constructor(routes: ReadonlyArray<{ sni: string; pool: Pool }>) {
    this.routes = routes.map(({ sni, pool }) => {
      const name = sni.toLowerCase();
      const wildcard = name.startsWith('*.');
      return { name: wildcard ? name.slice(1) : name, wildcard, pool };
    });
  }

  /** The routed pool, or undefined for the listener's default. `sni` is lower-case. */
  select(sni: string | null): Pool | undefined {
    if (sni === null) return undefined;
    for (const r of this.routes) {
      if (r.wildcard ? sni.length > r.name.length && sni.endsWith(r.name) : sni === r.name) return r.pool;
    }
    return undefined;
  }
}
