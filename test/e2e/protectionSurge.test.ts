import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { test } from 'node:test';
import { request, serverList, startBackends, startBalancer } from '../helpers/balancer.js';
import { startRedis } from '../helpers/redisServer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 20 ms until true; throws naming `what` after `ms`. */
async function waitFor(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('surge: a listener-wide flood far above the baseline sheds new clients with 503; clients with a sticky or session cookie keep being served; start and end logged once', async () => {
  const [backend] = await startBackends(1);
  const lb = await startBalancer(`
listeners:
  - name: web
    protocol: http
    listen: "127.0.0.1:0"
    pool: p
    protection:
      surge: { window: 2s, baseline: 5s, factor: 4, floor: 30, sessionCookies: [sid] }
      allow: [127.0.0.40]
pools:
  - name: p
    sticky: { type: cookie, secret: surge-test-secret-0123 }
    servers:
${serverList([{ id: 'a', port: backend!.port }])}
`);
  const p = lb.runtime.listeners.get('web')!.protection!;
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  let flooding = true;
  try {
    // A known client gets its sticky cookie before anything happens.
    const first = await request(lb.port, { localAddress: '127.0.0.21' });
    const sticky = String(first.headers['set-cookie']).split(';')[0]!;
    assert.match(sticky, /^fulcrum_srv=/);
    // Quiet traffic, about 10 requests a second for 3 s: the baseline.
    for (let i = 0; i < 30; i++) {
      assert.equal((await request(lb.port, { localAddress: '127.0.0.22' })).status, 200);
      await sleep(100);
    }
    assert.equal(p.surge!.state(Date.now()).active, false);
    // A flood from one address, eight requests in flight at once, until the surge is seen.
    const floods = Array.from({ length: 8 }, async () => {
      const statuses = new Map<number, number>();
      while (flooding) {
        const r = await request(lb.port, { localAddress: '127.0.0.23', agent }).catch(() => null);
        if (r !== null) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      }
      return statuses;
    });
    await waitFor(() => lb.log.lines.some((l) => l.includes('web: surge:')), 'the surge to be detected');
    // During the surge: a new client is shed with Retry-After...
    const shed = await request(lb.port, { localAddress: '127.0.0.24' });
    assert.equal(shed.status, 503);
    assert.ok(Number(shed.headers['retry-after']) >= 1);
    assert.equal(shed.headers['x-served-by'], undefined, 'never reaches a server');
    // ...while clients holding the sticky cookie or a session cookie, and allow-listed ones, are served.
    for (let i = 0; i < 5; i++) {
      assert.equal(
        (await request(lb.port, { localAddress: '127.0.0.21', headers: { cookie: sticky } })).status,
        200,
      );
      const session = await request(lb.port, {
        localAddress: '127.0.0.25',
        headers: { cookie: 'a=1; sid=abc' },
      });
      assert.equal(session.status, 200);
      assert.equal((await request(lb.port, { localAddress: '127.0.0.40' })).status, 200);
    }
    flooding = false;
    const statuses = new Map<number, number>();
    for (const m of await Promise.all(floods))
      for (const [k, v] of m) statuses.set(k, (statuses.get(k) ?? 0) + v);
    assert.ok((statuses.get(503) ?? 0) > 0, 'the flood itself is shed');
    // Quiet again: the surge ends after its window, said once.
    // (a request every 200 ms, under the threshold: surges are judged as requests arrive)
    for (let i = 0; !lb.log.lines.some((l) => l.includes('web: surge over')); i++) {
      assert.ok(i < 75, 'the surge ends within 15 s of the flood');
      await request(lb.port, { localAddress: '127.0.0.22' });
      await sleep(200);
    }
    assert.equal((await request(lb.port, { localAddress: '127.0.0.26' })).status, 200);
    assert.equal(lb.log.lines.filter((l) => l.includes('web: surge:')).length, 1, 'start said once');
    assert.equal(lb.log.lines.filter((l) => l.includes('web: surge over')).length, 1, 'end said once');
    assert.ok(p.rejected.surge >= (statuses.get(503) ?? 0));
  } finally {
    flooding = false;
    agent.destroy();
    await lb.stop();
    await backend!.close();
  }
});

test('failClosed: with Redis killed, rate-limited requests are refused with 503 (one log line) and served again once Redis is back', async () => {
  const redis = await startRedis();
  const [backend] = await startBackends(1);
  const lb = await startBalancer(`
listeners:
  - name: web
    protocol: http
    listen: "127.0.0.1:0"
    pool: p
    protection:
      rateLimit: { requests: 1000, per: 1s }
      shared: "${redis.url}"
      failClosed: true
      allow: [127.0.0.40]
pools:
  - name: p
    servers:
${serverList([{ id: 'a', port: backend!.port }])}
`);
  const shared = lb.runtime.listeners.get('web')!.protection!.shared!;
  try {
    await waitFor(() => shared.reachable, 'the balancer to reach Redis');
    assert.equal((await request(lb.port, { localAddress: '127.0.0.31' })).status, 200);
    await redis.stop('SIGKILL');
    await waitFor(() => !shared.reachable, 'the balancer to see Redis gone');
    for (let i = 0; i < 5; i++) {
      const r = await request(lb.port, { localAddress: '127.0.0.31' });
      assert.equal(r.status, 503);
      assert.ok(Number(r.headers['retry-after']) >= 1);
    }
    // Allow-listed clients are never limited, so never refused.
    assert.equal((await request(lb.port, { localAddress: '127.0.0.40' })).status, 200);
    await waitFor(
      () => lb.log.lines.some((l) => l.includes('shared counters unavailable')),
      'the unavailability to be logged',
    );
    const down = lb.log.lines.filter((l) => l.includes('shared counters unavailable'));
    assert.equal(down.length, 1, 'said once');
    assert.match(down[0]!, /refusing requests \(503, failClosed\)/);
    assert.ok(lb.runtime.listeners.get('web')!.protection!.rejected['shared-down'] >= 5);
    await redis.restart();
    await waitFor(() => shared.reachable, 'shared counting to resume');
    assert.equal((await request(lb.port, { localAddress: '127.0.0.31' })).status, 200);
    assert.ok(lb.log.lines.some((l) => l.includes('shared counters back')));
  } finally {
    await lb.stop();
    await backend!.close();
    await redis.stop();
  }
});
