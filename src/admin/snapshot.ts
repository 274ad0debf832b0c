/**
 * The JSON views of the running balancer that the admin API returns and the event stream sends:
 * listeners, pools and servers with their state, weights, traffic, latency and health.
 */
import { formatDuration } from '../config/duration.js';
import type { ListenerConfig } from '../config/types.js';
import type { Pool } from '../core/pool.js';
import type { Server } from '../core/server.js';
import { healthOf } from '../health/index.js';
import type { Runtime } from '../runtime/runtime.js';
import type { ClusterView, WorkerRow } from './clusterView.js';
import type { Percentiles } from './live.js';
import type { Telemetry, Totals } from './metrics.js';

export interface ServerView {
  id: string;
  address: string;
  weight: number;
  /** The weight in use (below `weight` while slow start ramps the server up). */
  effectiveWeight: number;
  backup: boolean;
  state: Server['state'];
  /** Being drained before its removal. */
  removing: boolean;
  ejected: boolean;
  ejectedUntil: string | null;
  ejections: number;
  active: number;
  /** Idle keep-alive connections to the server (http). */
  idleConnections: number;
  total: number;
  failures: number;
  /** Requests, errors, retries and bytes since the admin endpoint started. */
  totals: Totals;
  /** Requests (or connections) per second over the last second. */
  requestRate: number;
  /** This server's part of the pool's request rate, 0..1. */
  share: number;
  /** Over the last 10 seconds; null without traffic. */
  latencyMs: Percentiles | null;
  /** The moving average the least-response-time policy reads; null before any response. */
  responseTimeMs: number | null;
  health: {
    ok: boolean;
    lastResult: string;
    lastCheckAt: string;
    consecutive: number;
    durationMs: number;
  } | null;
  lastTransition: { at: string; from: string; to: string; reason: string } | null;
}

export interface PoolView {
  name: string;
  algorithm: string;
  requestRate: number;
  stickyReassignments: number;
  healthCheck: string | null;
  servers: ServerView[];
}

export interface ListenerView {
  name: string;
  protocol: string;
  listen: string;
  address: { host: string; port: number };
  pool: string;
  routes: Array<{ match: Record<string, unknown>; pool: string }>;
  /** dns listeners: their zones, each with the pools its records answer from. */
  zones?: Array<{ name: string; pools: string[] }>;
  connections: number;
  /** Requests (http), connections (tcp), flows (udp), queries answered (dns). */
  requests: number;
  /** Requests, errors, retries and bytes since the admin endpoint started. */
  totals: Totals;
}

export interface StatusView {
  time: string;
  uptimeSeconds: number;
  config: { file: string; stateFile: string | null };
  listeners: ListenerView[];
  pools: PoolView[];
  /** With `workers` > 1: one row per worker process. */
  workers?: WorkerRow[];
}

export interface ViewContext {
  runtime: Runtime;
  telemetry: Telemetry;
  /** `pool\0server` keys of servers being removed. */
  removing: ReadonlySet<string>;
  stateFile: string | null;
  startedAt: number;
  /** A supervisor's workers: they run the listeners (src/cluster/). */
  cluster?: ClusterView;
}

const round2 = (n: number) => Math.round(n * 100) / 100;
const iso = (ms: number) => new Date(ms).toISOString();

export function serverView(
  ctx: ViewContext,
  pool: Pool,
  s: Server,
  poolRate?: number,
  now = Date.now(),
): ServerView {
  const live = ctx.telemetry.liveOf(pool.name, s.id);
  const total = poolRate ?? rateOf(ctx, pool);
  const h = healthOf(s);
  const t = s.lastTransition;
  return {
    id: s.id,
    address: s.address,
    weight: s.weight,
    effectiveWeight: round2(s.effectiveWeight),
    backup: s.backup,
    state: s.state,
    removing: ctx.removing.has(`${pool.name}\0${s.id}`),
    ejected: s.ejectedUntil > now,
    ejectedUntil: s.ejectedUntil > now ? iso(s.ejectedUntil) : null,
    ejections: ctx.telemetry.ejectionsOf(pool.name, s.id),
    active: s.active,
    idleConnections: ctx.telemetry.idleOf(pool.name, s),
    total: s.total,
    failures: s.failures,
    totals: ctx.telemetry.serverTotals(pool.name, s.id),
    requestRate: round2(live.rate),
    share: total > 0 ? round2(live.rate / total) : 0,
    latencyMs: live.percentiles(),
    responseTimeMs: s.samples > 0 ? round2(s.ewmaMs) : null,
    health:
      h === undefined
        ? null
        : {
            ok: h.ok,
            lastResult: h.lastResult,
            lastCheckAt: iso(h.lastCheckAt),
            consecutive: h.consecutive,
            durationMs: round2(h.durationMs),
          },
    lastTransition: t === null ? null : { at: iso(t.at), from: t.from, to: t.to, reason: t.reason },
  };
}

function rateOf(ctx: ViewContext, pool: Pool): number {
  let n = 0;
  for (const s of pool.servers) n += ctx.telemetry.liveOf(pool.name, s.id).rate;
  return n;
}

export function poolView(ctx: ViewContext, pool: Pool): PoolView {
  const config = ctx.runtime.config.pools.find((p) => p.name === pool.name);
  const rate = rateOf(ctx, pool);
  const now = Date.now();
  const hc = config?.healthCheck;
  return {
    name: pool.name,
    algorithm: pool.policy.name,
    requestRate: round2(rate),
    stickyReassignments: pool.reassigned,
    healthCheck:
      hc === undefined
        ? null
        : `${hc.type}${hc.type === 'http' ? ` ${hc.method} ${hc.path}` : ''} every ${formatDuration(hc.interval)}`,
    servers: pool.servers.map((s) => serverView(ctx, pool, s, rate, now)),
  };
}

export function listenerViews(ctx: ViewContext): ListenerView[] {
  const cluster = ctx.cluster;
  if (cluster !== undefined) {
    // A supervisor's listeners: as configured, with what its workers report.
    return ctx.runtime.config.listeners.map((c) => {
      const running = cluster.listener(c.name);
      return listenerView(
        ctx,
        c,
        running?.address ?? { host: c.listen.host, port: c.listen.port },
        running?.connections ?? 0,
      );
    });
  }
  const out: ListenerView[] = [];
  for (const l of ctx.runtime.listeners.values()) {
    const c = ctx.runtime.config.listeners.find((x) => x.name === l.name);
    if (c !== undefined) out.push(listenerView(ctx, c, l.address, l.connectionCount));
  }
  return out;
}

/** One listener as configured, with where it is bound and its open connections. */
function listenerView(
  ctx: ViewContext,
  c: ListenerConfig,
  address: ListenerView['address'],
  connections: number,
): ListenerView {
  return {
    name: c.name,
    protocol: c.protocol,
    listen: c.listen.text,
    address,
    pool: c.pool,
    routes: c.routes.map((r) => ({ match: { ...r.match }, pool: r.pool })),
    ...(c.zones === undefined
      ? {}
      : {
          zones: c.zones.map((z) => ({ name: z.name, pools: [...new Set(z.records.map((r) => r.pool))] })),
        }),
    connections,
    // A dns listener's "requests" are the queries it answered.
    requests: c.protocol === 'dns' ? ctx.telemetry.dnsQueriesOf(c.name) : ctx.telemetry.requestsOf(c.name),
    totals: ctx.telemetry.listenerTotals(c.name),
  };
}

export function statusView(ctx: ViewContext): StatusView {
  return {
    time: new Date().toISOString(),
    uptimeSeconds: Math.round((Date.now() - ctx.startedAt) / 1000),
    config: { file: ctx.runtime.file, stateFile: ctx.stateFile },
    listeners: listenerViews(ctx),
    pools: [...ctx.runtime.pools.values()].map((p) => poolView(ctx, p)),
    ...(ctx.cluster === undefined ? {} : { workers: ctx.cluster.workers() }),
  };
}
