import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Outcome } from '../../src/core/pool.js';
import type { Server } from '../../src/core/server.js';
import { createPoolHealth } from '../../src/health/index.js';
import { MIN_FRACTION, rampWeight, SlowStart } from '../../src/health/slowStart.js';
import { makePool, makeServer, memoryLogger, outlierConfig, poolConfig, sleep, waitFor } from './fixtures.js';

test('rampWeight: linear from MIN_FRACTION of the weight to the weight', () => {
  assert.equal(MIN_FRACTION, 0.05);
  assert.equal(rampWeight(10, 0, 1000), 0.5);
  assert.equal(rampWeight(10, 20, 1000), 0.5); // 2% < the floor
  assert.equal(rampWeight(10, 250, 1000), 2.5);
  assert.equal(rampWeight(10, 500, 1000), 5);
  assert.equal(rampWeight(10, 999, 1000), 9.99);
  assert.equal(rampWeight(10, 1000, 1000), 10);
  assert.equal(rampWeight(10, 5000, 1000), 10);
  assert.equal(rampWeight(10, -300, 1000), 0.5); // a ramp that starts later
  assert.equal(rampWeight(0, 500, 1000), 0);
});

/** Samples `server.effectiveWeight` every few ms until it reaches its weight. */
async function sampleRamp(server: Server): Promise<number[]> {
  const samples: number[] = [server.effectiveWeight];
  await waitFor(() => {
    samples.push(server.effectiveWeight);
    return server.effectiveWeight === server.weight;
  }, 'the ramp to end');
  return samples;
}

function assertRamp(samples: number[], weight: number): void {
  assert.ok(samples[0]! <= weight * MIN_FRACTION + 0.01 * weight, `starts low: ${samples[0]}`);
  for (let i = 1; i < samples.length; i++) assert.ok(samples[i]! >= samples[i - 1]!, `monotonic: ${samples}`);
  // Intermediate steps, not a jump from the floor to the weight.
  const distinct = new Set(samples);
  assert.ok(distinct.size >= 4, `steps: ${[...distinct]}`);
  assert.equal(samples.at(-1), weight);
}

test('a server coming up from down ramps its effective weight up over slowStart, then stays at its weight', async () => {
  const [a, b] = [makeServer('a', 1, 10), makeServer('b', 2, 10)];
  const pool = makePool([a, b], 'least-connections');
  const slow = new SlowStart(pool, 400);
  slow.start([]);
  try {
    assert.equal(a.effectiveWeight, 10);
    pool.setState(a, 'down', 'test');
    const at = Date.now();
    pool.setState(a, 'up', 'test');
    const samples = await sampleRamp(a);
    assert.ok(Date.now() - at >= 399, 'not before slowStart');
    assertRamp(samples, 10);
    assert.equal(b.effectiveWeight, 10);
    // Halfway points are roughly right (lower bound only: timers may be late).
    await sleep(60);
    assert.equal(a.effectiveWeight, 10);
  } finally {
    slow.stop();
  }
});

test('leaving maintenance ramps; leaving draining does not (it was serving)', () => {
  const [a, b] = [makeServer('a', 1, 4), makeServer('b', 2, 4)];
  const pool = makePool([a, b], 'weighted-round-robin');
  const slow = new SlowStart(pool, 60_000);
  slow.start([]);
  try {
    pool.setState(a, 'maintenance', 'admin');
    pool.setState(a, 'up', 'admin');
    pool.setState(b, 'draining', 'admin');
    pool.setState(b, 'up', 'admin');
    assert.ok(a.effectiveWeight < 0.3, `a: ${a.effectiveWeight}`);
    assert.equal(b.effectiveWeight, 4);
  } finally {
    slow.stop();
  }
});

test('through createPoolHealth: not for ip-hash', () => {
  const [a, b] = [makeServer('a', 1, 3), makeServer('b', 2, 3)];
  const pool = makePool([a, b], 'ip-hash');
  const health = createPoolHealth(
    pool,
    poolConfig(pool, { algorithm: 'ip-hash', slowStart: 60_000 }),
    memoryLogger(),
  );
  try {
    pool.setState(a, 'down', 'test');
    pool.setState(a, 'up', 'test');
    assert.equal(a.effectiveWeight, 3);
    assert.equal(pool.transitionListeners.length, 0);
  } finally {
    health.stop();
  }
});

test('through createPoolHealth: servers added by a reload ramp; the first servers and kept ones do not', () => {
  const [a, b] = [makeServer('a', 1, 2), makeServer('b', 2, 2)];
  const pool = makePool([a, b], 'least-response-time');
  const log = memoryLogger();
  let health = createPoolHealth(pool, poolConfig(pool, { slowStart: 60_000 }), log);
  try {
    assert.deepEqual([a.effectiveWeight, b.effectiveWeight], [2, 2]);
    const c = makeServer('c', 3, 2);
    pool.setServers([a, b, c]);
    health.stop();
    health = createPoolHealth(pool, poolConfig(pool, { slowStart: 60_000 }), log);
    assert.deepEqual([a.effectiveWeight, b.effectiveWeight], [2, 2]);
    assert.ok(c.effectiveWeight < 0.2, `c: ${c.effectiveWeight}`);
  } finally {
    health.stop();
  }
});

test('through createPoolHealth: a ramp goes on across a re-creation, and ends when slowStart is removed', async () => {
  const [a, b] = [makeServer('a', 1, 10), makeServer('b', 2, 10)];
  const pool = makePool([a, b], 'weighted-round-robin');
  const log = memoryLogger();
  const config = poolConfig(pool, { algorithm: 'weighted-round-robin', slowStart: 2000 });
  let health = createPoolHealth(pool, config, log);
  try {
    pool.setState(a, 'down', 'test');
    pool.setState(a, 'up', 'test');
    await waitFor(() => a.effectiveWeight >= 1, 'the ramp to progress');
    health.stop();
    const before = a.effectiveWeight;
    health = createPoolHealth(pool, config, log);
    // Not restarted from the floor.
    assert.ok(a.effectiveWeight >= before, `${a.effectiveWeight} < ${before}`);
    await waitFor(() => a.effectiveWeight > before, 'the ramp to go on');
    health.stop();
    health = createPoolHealth(pool, { ...config, slowStart: 0 }, log);
    assert.equal(a.effectiveWeight, 10);
  } finally {
    health.stop();
  }
});

test('through createPoolHealth: a server returning from an ejection ramps up from its return', async () => {
  const [a, b] = [makeServer('a', 1, 10), makeServer('b', 2, 10)];
  const pool = makePool([a, b], 'least-connections');
  const log = memoryLogger();
  const config = poolConfig(pool, {
    algorithm: 'least-connections',
    slowStart: 300,
    outlierDetection: outlierConfig({ consecutiveFailures: 1, ejectFor: 200 }),
  });
  const health = createPoolHealth(pool, config, log);
  try {
    a.active++;
    pool.release(a, Outcome.Failure, 5);
    const returnsAt = a.ejectedUntil;
    assert.equal(a.effectiveWeight, 10 * MIN_FRACTION);
    // Still at the floor while ejected: the ramp starts at the return.
    await sleep(100);
    if (Date.now() < returnsAt) assert.equal(a.effectiveWeight, 10 * MIN_FRACTION);
    const samples = await sampleRamp(a);
    assert.ok(Date.now() - returnsAt >= 299, 'ramp lasts slowStart from the return');
    assertRamp([10 * MIN_FRACTION, ...samples], 10);
  } finally {
    health.stop();
  }
});
