/**
 * A pool's health: active checks, passive outlier detection and slow start, started together by
 * the Runtime for each pool and re-created (with the same Pool and Server objects) on every reload
 * that changes the pool. Per-server health state lives in module-level weak maps, so a server
 * keeps its check counts, ejection history and slow-start ramp across re-creations.
 */
import { algorithmInfo } from '../balancing/registry.js';
import type { PoolConfig } from '../config/types.js';
import type { Logger } from '../core/log.js';
import type { Pool } from '../core/pool.js';
import type { Server } from '../core/server.js';
import { ActiveChecker, releaseHeldDown } from './activeChecker.js';
import { liftEjections, OutlierDetector } from './outlierDetector.js';
import { endRamps, SlowStart } from './slowStart.js';

export type { ActiveCheckerOptions, HealthStatus } from './activeChecker.js';
export { ActiveChecker, healthOf, JITTER, jittered } from './activeChecker.js';
export type { OutlierDetectorOptions } from './outlierDetector.js';
export { decayedLevel, ejectionDuration, mayEject, OutlierDetector } from './outlierDetector.js';
export type { ProbeConfig, ProbeResult, ProbeTarget } from './probe.js';
export { MAX_BODY_BYTES, probe } from './probe.js';
export { MIN_FRACTION, rampOf, rampWeight, SlowStart } from './slowStart.js';

export interface PoolHealth {
  stop(): void;
}

/** Servers some PoolHealth has already set up: the others are new (startDown, slow start). */
const seenServers = new WeakSet<Server>();
/** Pools that already had a PoolHealth: servers first seen after that were added by a reload. */
const seenPools = new WeakSet<Pool>();

/**
 * Starts a pool's health. `active` false (a worker under a supervisor): no active checks, and
 * servers held down by `startDown` stay as the supervisor's checks say.
 */
export function createPoolHealth(pool: Pool, config: PoolConfig, log: Logger, active = true): PoolHealth {
  const running = seenPools.has(pool);
  seenPools.add(pool);
  const fresh = pool.servers.filter((s) => !seenServers.has(s));
  for (const s of fresh) seenServers.add(s);

  const check = config.healthCheck;
  const checker = check !== undefined && active ? new ActiveChecker(pool, check) : undefined;

  // Not for algorithms that place clients by weight (ip-hash): a ramp would move them back and forth.
  const ramps = config.slowStart > 0 && algorithmInfo(config.algorithm).rampsWeight;
  const slowStart = ramps ? new SlowStart(pool, config.slowStart) : undefined;
  if (slowStart === undefined) endRamps(pool);

  const outlier = config.outlierDetection;
  const outliers =
    outlier !== undefined
      ? new OutlierDetector(pool, outlier, log, {
          // The ramp starts when the ejection ends.
          onEject: (server: Server, until: number) => slowStart?.begin(server, until),
        })
      : undefined;

  // startDown first, so that slow start ramps only the new servers that are up.
  checker?.start(fresh);
  slowStart?.start(running ? fresh : []);
  outliers?.start();
  // After slow start is listening, so that released servers ramp up.
  if (checker === undefined && (active || check === undefined)) releaseHeldDown(pool);
  if (outliers === undefined) liftEjections(pool, log);

  return {
    stop(): void {
      checker?.stop();
      outliers?.stop();
      slowStart?.stop();
    },
  };
}
