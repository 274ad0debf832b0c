import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Outcome, type Pool } from '../../src/core/pool.js';
import type { Server } from '../../src/core/server.js';
import { createPoolHealth } from '../../src/health/index.js';
import {
  decayedLevel,
  ejectionDuration,
  mayEject,
  OutlierDetector,
} from '../../src/health/outlierDetector.js';
import { makePool, makeServer, memoryLogger, outlierConfig, poolConfig, waitFor } from './fixtures.js';

/** Releases `n` leases on `server` with this outcome, as a proxy would. */
function feed(pool: Pool, server: Server, n: number, outcome = Outcome.Failure, status = 0): void {
  for (let i = 0; i < n; i++) {
    server.active++;
    pool.release(server, outcome, 5, status);
  }
}

/** A clock the test moves by hand (ejection decisions only; timers stay real). */
function manualClock(start = Date.now()) {
  const clock = { t: start, now: () => clock.t };
  return clock;
}

test('consecutiveFailures failures in a row eject the server, logged once', () => {
  const [a, b] = [makeServer('a'), makeServer('b')];
  const pool = makePool([a, b]);
  const log = memoryLogger();
  const clock = manualClock();
  const d = new OutlierDetector(pool, outlierConfig({ consecutiveFailures: 5 }), log, { now: clock.now });
  d.start();
  try {
    feed(pool, a, 4);
    assert.equal(a.ejectedUntil, 0);
    feed(pool, a, 1);
    assert.equal(a.ejectedUntil, clock.t + 30_000);
    assert.deepEqual(log.lines, ['pool p: server a ejected for 30s: 5 consecutive failures']);
    // Late failures of an ejected server neither extend nor repeat the ejection.
    feed(pool, a, 10);
    assert.equal(a.ejectedUntil, clock.t + 30_000);
    assert.equal(log.lines.length, 1);
    assert.deepEqual(
      pool.eligibleServers().map((s) => s.id),
      ['b'],
    );
  } finally {
    d.stop();
  }
});

test('a success starts the count over; a cancelled lease is ignored', () => {
  const [a, b] = [makeServer('a'), makeServer('b')];
  const pool = makePool([a, b]);
  const log = memoryLogger();
  const d = new OutlierDetector(pool, outlierConfig({ consecutiveFailures: 3 }), log);
  d.start();
  try {
    feed(pool, a, 2);
    feed(pool, a, 1, Outcome.Success, 200);
    feed(pool, a, 2);
    assert.equal(a.ejectedUntil, 0);
    feed(pool, a, 5, Outcome.Cancelled);
    feed(pool, a, 1);
    assert.ok(a.ejectedUntil > Date.now());
  } finally {
    d.stop();
  }
});

test('5xx answers count only with on5xx; 4xx never', () => {
  for (const on5xx of [false, true]) {
    const [a, b] = [makeServer('a'), makeServer('b')];
    const pool = makePool([a, b]);
    const d = new OutlierDetector(
      pool,
      outlierConfig({ consecutiveFailures: 3, on5xx, maxEjectedPercent: 100 }),
      memoryLogger(),
    );
    d.start();
    try {
      feed(pool, a, 10, Outcome.Success, 404);
      assert.equal(a.ejectedUntil, 0);
      feed(pool, a, 3, Outcome.Success, 503);
      assert.equal(a.ejectedUntil > 0, on5xx, `on5xx: ${on5xx}`);
      // Mixed: 5xx and transport failures add up.
      feed(pool, b, 1, Outcome.Success, 502);
      feed(pool, b, 1, Outcome.Failure);
      feed(pool, b, 1, Outcome.Success, 500);
      assert.equal(b.ejectedUntil > 0, on5xx, `on5xx: ${on5xx}`);
    } finally {
      d.stop();
    }
  }
});

test('repeat ejections double up to maxEjectFor; healthy time lowers the level again', () => {
  const [a, b] = [makeServer('a'), makeServer('b')];
  const pool = makePool([a, b]);
  const log = memoryLogger();
  const clock = manualClock();
  const config = outlierConfig({ consecutiveFailures: 1, ejectFor: 1000, maxEjectFor: 10_000 });
  const d = new OutlierDetector(pool, config, log, { now: clock.now });
  d.start();
  const ejectNow = (): number => {
    const at = clock.t;
    feed(pool, a, 1);
    const duration = a.ejectedUntil - at;
    clock.t = a.ejectedUntil; // returns, and fails again at once
    return duration;
  };
  try {
    assert.deepEqual(
      [ejectNow(), ejectNow(), ejectNow(), ejectNow(), ejectNow(), ejectNow()],
      [1000, 2000, 4000, 8000, 10_000, 10_000],
    );
    // Level 6 now. 2.5 × ejectFor of healthy time: two levels fewer, 1000 × 2^4 capped.
    clock.t += 2500;
    assert.equal(ejectNow(), 10_000);
    // Level 5; 4 × ejectFor healthy: level 1.
    clock.t += 4000;
    assert.equal(ejectNow(), 2000);
    assert.ok(log.lines.includes('pool p: server a ejected for 10s: 1 consecutive failures'));
  } finally {
    d.stop();
  }
});

test('decayedLevel and ejectionDuration', () => {
  const config = outlierConfig({ ejectFor: 1000, maxEjectFor: 10_000 });
  assert.equal(decayedLevel(undefined, 5000, 1000), 0);
  assert.equal(decayedLevel({ level: 3, endedAt: 5000 }, 5000, 1000), 3);
  assert.equal(decayedLevel({ level: 3, endedAt: 5000 }, 5999, 1000), 3);
  assert.equal(decayedLevel({ level: 3, endedAt: 5000 }, 6000, 1000), 2);
  assert.equal(decayedLevel({ level: 3, endedAt: 5000 }, 60_000, 1000), 0);
  // An ejection cut short (its end still ahead) does not count as healthy time.
  assert.equal(decayedLevel({ level: 3, endedAt: 9000 }, 5000, 1000), 3);
  assert.deepEqual(
    [0, 1, 2, 3, 4, 100].map((l) => ejectionDuration(l, config)),
    [1000, 2000, 4000, 8000, 10_000, 10_000],
  );
});

test('mayEject: maxEjectedPercent, and always at least one (Envoy)', () => {
  assert.equal(mayEject(0, 4, 50), true);
  assert.equal(mayEject(1, 4, 50), true); // 2 of 4 = 50%
  assert.equal(mayEject(2, 4, 50), false); // 3 of 4 = 75%
  assert.equal(mayEject(0, 2, 10), true); // rounds down to none: one anyway
  assert.equal(mayEject(1, 2, 10), false);
  assert.equal(mayEject(0, 3, 0), true);
  assert.equal(mayEject(2, 3, 100), true);
});

test('maxEjectedPercent is honoured in a pool, and the refusal is logged', () => {
  const servers = ['a', 'b', 'c', 'd'].map((id) => makeServer(id));
  const [a, b, c, d] = servers as [Server, Server, Server, Server];
  const pool = makePool(servers);
  const log = memoryLogger();
  const det = new OutlierDetector(
    pool,
    outlierConfig({ consecutiveFailures: 2, maxEjectedPercent: 50 }),
    log,
  );
  det.start();
  try {
    feed(pool, a, 2);
    feed(pool, b, 2);
    feed(pool, c, 2);
    assert.deepEqual(
      servers.map((s) => s.ejectedUntil > 0),
      [true, true, false, false],
    );
    assert.equal(
      log.lines[2],
      'pool p: server c not ejected after 2 consecutive failures: 2 of 4 servers already ejected (maxEjectedPercent 50)',
    );
    // The count started over: one more failure is not enough.
    feed(pool, c, 1);
    assert.equal(log.lines.length, 3);
    // Once a returns, c may go.
    a.ejectedUntil = Date.now() - 1;
    feed(pool, c, 1);
    assert.ok(c.ejectedUntil > Date.now());
    assert.equal(d.ejectedUntil, 0);
  } finally {
    det.stop();
  }
});

test('an ejected server returns after ejectFor, logged once', async () => {
  const [a, b] = [makeServer('a'), makeServer('b')];
  const pool = makePool([a, b]);
  const log = memoryLogger();
  const d = new OutlierDetector(pool, outlierConfig({ consecutiveFailures: 1, ejectFor: 150 }), log);
  d.start();
  try {
    const at = Date.now();
    feed(pool, a, 1);
    assert.deepEqual(
      pool.eligibleServers().map((s) => s.id),
      ['b'],
    );
    await waitFor(() => log.lines.includes('pool p: server a returned after ejection'), 'a to return');
    assert.ok(Date.now() - at >= 149, 'not before ejectFor');
    assert.deepEqual(
      pool.eligibleServers().map((s) => s.id),
      ['a', 'b'],
    );
    assert.equal(log.lines.filter((l) => l.includes('returned')).length, 1);
  } finally {
    d.stop();
  }
});

test('an ejected server marked down by the active check is no longer ejected: it returns through its checks', () => {
  const [a, b] = [makeServer('a'), makeServer('b')];
  const pool = makePool([a, b]);
  const log = memoryLogger();
  const d = new OutlierDetector(pool, outlierConfig({ consecutiveFailures: 1 }), log);
  d.start();
  try {
    feed(pool, a, 1);
    assert.ok(a.ejectedUntil > 0);
    pool.setState(a, 'down', '3 failed checks: timeout after 1000ms');
    assert.equal(a.ejectedUntil, 0);
    // Failures of a down server (requests still in flight) do not eject it.
    feed(pool, a, 3);
    assert.equal(a.ejectedUntil, 0);
    pool.setState(a, 'up', '2 passed checks');
    assert.deepEqual(
      pool.eligibleServers().map((s) => s.id),
      ['a', 'b'],
    );
  } finally {
    d.stop();
  }
});

test('stop() unhooks the detector from the pool', () => {
  const [a, b] = [makeServer('a'), makeServer('b')];
  const pool = makePool([a, b]);
  const d = new OutlierDetector(pool, outlierConfig({ consecutiveFailures: 1 }), memoryLogger());
  d.start();
  d.stop();
  assert.equal(pool.outcomeListeners.length, 0);
  assert.equal(pool.transitionListeners.length, 0);
  feed(pool, a, 3);
  assert.equal(a.ejectedUntil, 0);
});

test('through createPoolHealth: an ejection survives a re-creation; removing outlierDetection lifts it', async () => {
  const [a, b] = [makeServer('a'), makeServer('b')];
  const pool = makePool([a, b]);
  const log = memoryLogger();
  const config = poolConfig(pool, {
    outlierDetection: outlierConfig({ consecutiveFailures: 2, ejectFor: 150 }),
  });
  let health = createPoolHealth(pool, config, log);
  try {
    feed(pool, a, 2);
    const until = a.ejectedUntil;
    assert.ok(until > Date.now());
    health.stop();
    health = createPoolHealth(pool, config, log);
    assert.equal(a.ejectedUntil, until);
    assert.equal(pool.outcomeListeners.length, 1);
    await waitFor(() => log.lines.includes('pool p: server a returned after ejection'), 'a to return');

    feed(pool, b, 2);
    assert.ok(b.ejectedUntil > Date.now());
    health.stop();
    health = createPoolHealth(pool, poolConfig(pool), log);
    assert.equal(b.ejectedUntil, 0);
    assert.ok(log.lines.includes('pool p: server b returned after ejection: outlier detection removed'));
    assert.equal(pool.outcomeListeners.length, 0);
  } finally {
    health.stop();
  }
});
