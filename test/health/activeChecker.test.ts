import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ActiveChecker,
  type HealthStatus,
  healthOf,
  JITTER,
  jittered,
} from '../../src/health/activeChecker.js';
import { createPoolHealth } from '../../src/health/index.js';
import {
  checkConfig,
  closedPort,
  makePool,
  makeServer,
  memoryLogger,
  poolConfig,
  sleep,
  startHttp,
  startTcp,
  waitFor,
} from './fixtures.js';

test('jittered: within ±10% of the interval, centred on it', () => {
  assert.equal(JITTER, 0.1);
  assert.equal(
    jittered(1000, () => 0),
    900,
  );
  assert.equal(
    jittered(1000, () => 0.5),
    1000,
  );
  assert.ok(Math.abs(jittered(1000, () => 0.999999) - 1100) < 0.01);
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  for (let i = 0; i < 10_000; i++) {
    const v = jittered(2000);
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  assert.ok(min >= 1800 && max < 2200, `${min}..${max}`);
  // Spread over the range, not bunched up.
  assert.ok(min < 1850 && max > 2150, `${min}..${max}`);
});

test('http check: fall failed checks (status 500) mark an up server down, once, with the reason', async () => {
  const http = await startHttp((_req, res) => {
    res.statusCode = 500;
    res.end();
  });
  const a = makeServer('a', http.port);
  const pool = makePool([a]);
  const results: HealthStatus[] = [];
  const checker = new ActiveChecker(pool, checkConfig({ fall: 3 }), {
    onResult: (_s, st) => results.push(st),
  });
  let probesAtDown = 0;
  pool.transitionListeners.push(() => (probesAtDown = http.requests.length));
  try {
    checker.start([]);
    await waitFor(() => a.state === 'down', 'a to go down');
    // Down at the third failure, not before.
    assert.equal(probesAtDown, 3);
    assert.deepEqual(
      results.slice(0, 3).map((r) => [r.ok, r.lastResult, r.consecutive]),
      [
        [false, 'status 500', 1],
        [false, 'status 500', 2],
        [false, 'status 500', 3],
      ],
    );
    assert.equal(a.lastTransition?.reason, '3 failed checks: status 500');
    await waitFor(() => results.length >= 6, 'three more checks');
    assert.deepEqual(
      pool.log.lines.filter((l) => l.includes('server a')),
      ['pool p: server a down: 3 failed checks: status 500'],
    );
    assert.equal(healthOf(a)?.ok, false);
    assert.ok((healthOf(a)?.consecutive ?? 0) >= 6);
  } finally {
    checker.stop();
    await http.close();
  }
});

test('http check: a closed port goes down with connect ECONNREFUSED; rise passed checks bring it up', async () => {
  const port = await closedPort();
  const a = makeServer('a', port);
  const pool = makePool([a]);
  const results: HealthStatus[] = [];
  let checker = new ActiveChecker(pool, checkConfig({ fall: 2, rise: 3 }), {
    onResult: (_s, st) => results.push(st),
  });
  try {
    checker.start([]);
    await waitFor(() => a.state === 'down', 'a to go down');
    assert.equal(a.lastTransition?.reason, '2 failed checks: connect ECONNREFUSED');
    checker.stop();

    // The backend comes back on the same port.
    const http = await startHttp();
    try {
      a.port = http.port;
      results.length = 0;
      checker = new ActiveChecker(pool, checkConfig({ fall: 2, rise: 3 }), {
        onResult: (_s, st) => results.push(st),
      });
      let probesAtUp = 0;
      pool.transitionListeners.push(() => (probesAtUp = http.requests.length));
      checker.start([]);
      await waitFor(() => a.state === 'up', 'a to come up');
      assert.equal(probesAtUp, 3);
      assert.deepEqual(
        results.slice(0, 3).map((r) => [r.ok, r.consecutive]),
        [
          [true, 1],
          [true, 2],
          [true, 3],
        ],
      );
      assert.equal(a.lastTransition?.reason, '3 passed checks');
      assert.ok(pool.log.lines.includes('pool p: server a up: 3 passed checks'));
    } finally {
      checker.stop();
      await http.close();
    }
  } finally {
    checker.stop();
  }
});

test('http check: one pass between failures starts the count over', async () => {
  let n = 0;
  // fail, fail, pass, fail, fail, fail ...
  const http = await startHttp((_req, res) => {
    n++;
    res.statusCode = n === 3 ? 200 : 500;
    res.end();
  });
  const a = makeServer('a', http.port);
  const pool = makePool([a]);
  const checker = new ActiveChecker(pool, checkConfig({ fall: 3 }));
  let probesAtDown = 0;
  pool.transitionListeners.push(() => (probesAtDown = n));
  try {
    checker.start([]);
    await waitFor(() => a.state === 'down', 'a to go down');
    assert.equal(probesAtDown, 6);
  } finally {
    checker.stop();
    await http.close();
  }
});

test('tcp check: down when refused, up when accepted', async () => {
  const port = await closedPort();
  const a = makeServer('a', port);
  const pool = makePool([a]);
  const config = checkConfig({ type: 'tcp', fall: 2, rise: 2 });
  const checker = new ActiveChecker(pool, config);
  let tcp: Awaited<ReturnType<typeof startTcp>> | undefined;
  try {
    checker.start([]);
    await waitFor(() => a.state === 'down', 'a to go down');
    assert.equal(a.lastTransition?.reason, '2 failed checks: connect ECONNREFUSED');
    tcp = await startTcp();
    a.port = tcp.port; // read on every probe
    await waitFor(() => a.state === 'up', 'a to come up');
    assert.equal(a.lastTransition?.reason, '2 passed checks');
  } finally {
    checker.stop();
    await tcp?.close();
  }
});

test('http check: a server that accepts and never answers times out and goes down', async () => {
  const tcp = await startTcp();
  const a = makeServer('a', tcp.port);
  const pool = makePool([a]);
  const checker = new ActiveChecker(pool, checkConfig({ timeout: 60, fall: 2 }));
  try {
    checker.start([]);
    await waitFor(() => a.state === 'down', 'a to go down');
    assert.equal(a.lastTransition?.reason, '2 failed checks: timeout after 60ms');
  } finally {
    checker.stop();
    await tcp.close();
  }
});

test('http check: expectBody failing takes the server down with the reason', async () => {
  const http = await startHttp((_req, res) => res.end('degraded'));
  const a = makeServer('a', http.port);
  const pool = makePool([a]);
  const checker = new ActiveChecker(pool, checkConfig({ expectBody: 'ok', fall: 1 }));
  try {
    checker.start([]);
    await waitFor(() => a.state === 'down', 'a to go down');
    assert.equal(a.lastTransition?.reason, '1 failed checks: body does not contain "ok"');
  } finally {
    checker.stop();
    await http.close();
  }
});

test('probe starts are spaced by the interval ±10% (never less), with jitter', async () => {
  const http = await startHttp();
  const a = makeServer('a', http.port);
  const pool = makePool([a]);
  const starts: number[] = [];
  const checker = new ActiveChecker(pool, checkConfig({ interval: 40 }), {
    onResult: (_s, st) => starts.push(st.lastCheckAt),
  });
  try {
    checker.start([]);
    await waitFor(() => starts.length >= 12, '12 probes');
  } finally {
    checker.stop();
    await http.close();
  }
  const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
  // Timers never fire early by more than a millisecond of clock rounding.
  for (const g of gaps) assert.ok(g >= 40 * (1 - JITTER) - 1, `gap ${g}ms in ${gaps.join(',')}`);
  // Not a fixed period (11 gaps all within 1ms of each other would be a very unlikely draw).
  assert.ok(Math.max(...gaps) - Math.min(...gaps) > 1, `gaps ${gaps.join(',')}`);
});

test('draining and maintenance servers are probed but their state is left alone', async () => {
  const port = await closedPort();
  const http = await startHttp();
  const d = makeServer('d', port);
  const m = makeServer('m', port);
  const back = makeServer('back', http.port);
  const pool = makePool([d, m, back]);
  d.state = 'draining';
  m.state = 'maintenance';
  back.state = 'maintenance';
  const checker = new ActiveChecker(pool, checkConfig({ fall: 1, rise: 1 }));
  try {
    checker.start([]);
    await waitFor(
      () => [d, m, back].every((s) => (healthOf(s)?.consecutive ?? 0) >= 4),
      'four checks of each server',
    );
    assert.deepEqual([d.state, m.state, back.state], ['draining', 'maintenance', 'maintenance']);
    assert.deepEqual([healthOf(d)?.ok, healthOf(m)?.ok, healthOf(back)?.ok], [false, false, true]);
    assert.equal(healthOf(d)?.lastResult, 'connect ECONNREFUSED');
    assert.deepEqual(pool.log.lines, []);
  } finally {
    checker.stop();
    await http.close();
  }
});

test('stop(): no probe starts afterwards, and one in flight is aborted and its socket closed', async () => {
  const http = await startHttp();
  const hanging = await startTcp();
  const a = makeServer('a', http.port);
  const h = makeServer('h', hanging.port);
  const pool = makePool([a, h]);
  const checker = new ActiveChecker(pool, checkConfig({ interval: 10, timeout: 60_000 }));
  try {
    checker.start([]);
    await waitFor(() => http.requests.length >= 3 && hanging.accepted === 1, 'probes');
    checker.stop();
    const seen = http.requests.length;
    await waitFor(() => hanging.open.size === 0, 'the hanging probe to be closed');
    await sleep(150);
    assert.ok(http.requests.length <= seen + 1, 'no probe after stop()'); // one may have been mid-flight
    const after = http.requests.length;
    await sleep(150);
    assert.equal(http.requests.length, after);
    assert.equal(hanging.accepted, 1);
  } finally {
    checker.stop();
    await http.close();
    await hanging.close();
  }
});

test('startDown: servers never seen start down and rise; a re-created PoolHealth keeps the others as they are', async () => {
  const http = await startHttp();
  const a = makeServer('a', http.port);
  const b = makeServer('b', http.port);
  const pool = makePool([a, b]);
  const log = memoryLogger();
  const config = poolConfig(pool, { healthCheck: checkConfig({ startDown: true, interval: 20 }) });
  let health = createPoolHealth(pool, config, log);
  try {
    assert.deepEqual([a.state, b.state], ['down', 'down']);
    assert.equal(a.lastTransition?.reason, 'waiting for 2 passed checks');
    assert.deepEqual(pool.eligibleServers(), []);
    await waitFor(() => a.state === 'up' && b.state === 'up', 'a and b to rise');

    // A reload adds c: only c starts down.
    const c = makeServer('c', http.port);
    pool.setServers([a, b, c]);
    health.stop();
    health = createPoolHealth(pool, poolConfig(pool, { healthCheck: config.healthCheck }), log);
    assert.deepEqual([a.state, b.state, c.state], ['up', 'up', 'down']);
    await waitFor(() => c.state === 'up', 'c to rise');
    assert.deepEqual(
      pool.log.lines.filter((l) => l.includes('server c')),
      ['pool p: server c down: waiting for 2 passed checks', 'pool p: server c up: 2 passed checks'],
    );
  } finally {
    health.stop();
    await http.close();
  }
});

test('a server already down keeps its rise progress across a re-creation', async () => {
  let status = 500;
  const http = await startHttp((_req, res) => {
    res.statusCode = status;
    res.end();
  });
  const a = makeServer('a', http.port);
  const pool = makePool([a]);
  const log = memoryLogger();
  const config = poolConfig(pool, { healthCheck: checkConfig({ interval: 20, fall: 1, rise: 1000 }) });
  let health = createPoolHealth(pool, config, log);
  try {
    await waitFor(() => a.state === 'down', 'a to go down');
    status = 200;
    await waitFor(() => (healthOf(a)?.ok ?? false) && (healthOf(a)?.consecutive ?? 0) >= 2, 'two passes');
    health.stop();
    const before = healthOf(a)!.consecutive;
    health = createPoolHealth(pool, config, log);
    // Counted on from `before`: a reset would have started again at 1.
    await waitFor(() => healthOf(a)!.consecutive > before, 'another pass');
    assert.equal(a.state, 'down');
  } finally {
    health.stop();
    await http.close();
  }
});

test('removing the health check releases the servers it held down', async () => {
  const port = await closedPort();
  const a = makeServer('a', port);
  const b = makeServer('b', port);
  const pool = makePool([a, b]);
  const log = memoryLogger();
  let health = createPoolHealth(pool, poolConfig(pool, { healthCheck: checkConfig({ fall: 1 }) }), log);
  try {
    await waitFor(() => a.state === 'down' && b.state === 'down', 'a and b to go down');
    // An administrator owns b now: it stays in maintenance.
    health.stop();
    pool.setState(b, 'maintenance', 'admin');
    health = createPoolHealth(pool, poolConfig(pool), log);
    assert.equal(a.state, 'up');
    assert.equal(a.lastTransition?.reason, 'health check removed');
    assert.equal(b.state, 'maintenance');
    assert.equal(healthOf(a), undefined);
  } finally {
    health.stop();
  }
});
