import type { Pool } from '../../core/pool.js';
import { headerValue, type RequestHead } from './headParser.js';

/** A route's match as written in the config (already normalized: host lowercase, method upper). */
export interface RouteMatch {
  host?: string | undefined;
  pathPrefix?: string | undefined;
  method?: string | undefined;
  headers?: Record<string, string> | undefined;
}

interface CompiledRoute {
  /** Exact host, or the suffix after "*" for wildcards ("*.example.com" → ".example.com"). */
  host: string | null;
  wildcard: boolean;
  pathPrefix: string | null;
  method: string | null;
  headers: Array<[string, string]>;
  pool: Pool;
}

/**
 * Chooses a pool for a request: the first route whose every condition matches, else the
 * listener's default pool. Hosts match exactly or by wildcard ("*.example.com" matches any
 * subdomain at any depth, not example.com itself); paths by prefix; headers by exact value.
 */
export class Router {
  private readonly routes: CompiledRoute[];
  readonly defaultPool: Pool;
  /** The index of the route the last `select` matched, -1 for the default pool. */
  matched = -1;

  constructor(routes: ReadonlyArray<{ match: RouteMatch; pool: Pool }>, defaultPool: Pool) {
    this.defaultPool = defaultPool;
    this.routes = routes.map(({ match, pool }) => {
      const host = match.host?.toLowerCase() ?? null;
      const wildcard = host?.startsWith('*.') ?? false;
      return {
        host: wildcard ? host!.slice(1) : host,
        wildcard,
        pathPrefix: match.pathPrefix ?? null,
        method: match.method?.toUpperCase() ?? null,
        headers: Object.entries(match.headers ?? {}).map(
          ([k, v]) => [k.toLowerCase(), v] as [string, string],
        ),
        pool,
      };
    });
  }

  /** Every pool a request may go to: the default one and the routes', once each. */
  pools(): Pool[] {
    return [...new Set([this.defaultPool, ...this.routes.map((r) => r.pool)])];
  }

  select(req: RequestHead): Pool {
    const routes = this.routes;
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i]!;
      if (r.host !== null) {
        if (r.wildcard) {
          if (!(req.host.length > r.host.length && req.host.endsWith(r.host))) continue;
        } else if (req.host !== r.host) continue;
      }
      if (r.pathPrefix !== null && !req.path.startsWith(r.pathPrefix)) continue;
      if (r.method !== null && req.method !== r.method) continue;
      if (r.headers.length > 0 && !r.headers.every(([k, v]) => headerValue(req, k) === v)) continue;
      this.matched = i;
      return r.pool;
    }
    this.matched = -1;
    return this.defaultPool;
  }
}
