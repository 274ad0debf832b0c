/**
 * The demo lab's Live part (issue 21): the dashboard's Lab panel routes driven over HTTP (kill and
 * restart a backend under simulated users, switch the session strategy, count lost sessions),
 * and the panel itself in Chromium (it shows, and a click kills a backend). Everything runs in
 * this process on loopback, except redis-server, which the demo starts and stops by PID.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { startAdmin } from '../../src/admin/index.js';
import { startLab } from '../../src/demo/lab.js';
import { findBinary } from '../../src/lab/processes.js';
import { api, LOOPBACK, until } from '../admin/helpers.js';
import { memoryLogger, serverList, startBackends, startBalancer } from '../helpers/balancer.js';
import { CHROMIUM_MISSING, openChromium } from '../helpers/browser.js';

// Globals of the functions that run in the page (the tests compile without the DOM library).
// biome-ignore lint/suspicious/noExplicitAny: browser objects
declare const document: any;

const OUTPUT = resolve('test-output');
/** Health checks every second, down after 3 failures, up after 2 successes: generous bounds. */
const HEALTH_MS = 30_000;

interface Counts {
  requests: number;
  failed: number;
  lost: number;
}
interface DemoView {
  strategy: string;
  strategies: Array<{ name: string; available: boolean; reason?: string }>;
  backends: Array<{ id: string; address: string; running: boolean; state: string }>;
  users: {
    running: boolean;
    byStrategy: Record<string, Counts>;
    byServer: Record<string, { requests: number; users: number }>;
  };
  report: { available: boolean; url: string; command: string };
  redis: { pid: number; url: string } | null;
}

test('demo lab routes: kill and restart under simulated users, lost sessions by strategy', {
  timeout: 240_000,
}, async (t) => {
  const reportDir = mkdtempSync(join(tmpdir(), 'fulcrum-demo-report-'));
  const log = memoryLogger();
  const lab = await startLab({ port: 0, host: '127.0.0.1', backends: 3, log, reportDir, pauseMs: 100 });
  let redisPid: number | undefined;
  const port = Number(new URL(lab.adminUrl).port);
  const view = async (): Promise<DemoView> => {
    const r = await api(port, 'GET', '/api/demo');
    assert.equal(r.status, 200, r.body);
    return r.data as unknown as DemoView;
  };
  const post = async (path: string, body: unknown = {}): Promise<DemoView> => {
    const r = await api(port, 'POST', path, body);
    assert.equal(r.status, 200, `${path}: ${r.body}`);
    return r.data as unknown as DemoView;
  };
  const counts = async (strategy: string): Promise<Counts> =>
    (await view()).users.byStrategy[strategy] ?? { requests: 0, failed: 0, lost: 0 };
  /** Waits until `n` more answers were counted under `strategy`. */
  const more = async (strategy: string, n: number): Promise<Counts> => {
    const from = (await counts(strategy)).requests;
    await until(
      async () => (await counts(strategy)).requests >= from + n,
      60_000,
      `${n} requests (${strategy})`,
    );
    return counts(strategy);
  };
  const state = (id: string) => lab.balancer.pools.get('web')!.find(id)!.state;
  const killAndRestart = async (strategy: string, id: string) => {
    const killed = await post(`/api/demo/backends/${id}/kill`);
    assert.equal(killed.backends.find((b) => b.id === id)!.running, false);
    assert.ok(!lab.backends.some((b) => b.id === id), `${id} is gone from the running backends`);
    await until(() => state(id) === 'down', HEALTH_MS, `${id} down by the health checks`);
    await more(strategy, 40);
    const restarted = await post(`/api/demo/backends/${id}/restart`);
    assert.equal(restarted.backends.find((b) => b.id === id)!.running, true);
    await until(() => state(id) === 'up', HEALTH_MS, `${id} up again by the health checks`);
    await more(strategy, 30);
    return counts(strategy);
  };
  try {
    // The routes are listed, the panel's first state is the demo's: clustered sessions, all up.
    const routes = (await api(port, 'GET', '/api')).data.routes as Array<{ path: string }>;
    assert.ok(routes.some((r) => r.path === '/api/demo'));
    let v = await view();
    assert.equal(v.strategy, 'cluster');
    assert.deepEqual(
      v.backends.map((b) => [b.id, b.running]),
      [
        ['backend-a', true],
        ['backend-b', true],
        ['backend-c', true],
      ],
    );
    assert.equal(v.users.running, false);

    // The lab report: none yet (the command to make one), then served at /lab/.
    assert.equal(v.report.available, false);
    assert.equal(v.report.command, 'fulcrum lab --quick');
    const none = await api(port, 'GET', '/lab/');
    assert.equal(none.status, 404);
    assert.match(none.data.error ?? '', /fulcrum lab --quick/);
    writeFileSync(join(reportDir, 'index.html'), '<!doctype html><title>lab</title><h1>The lab report</h1>');
    const report = await api(port, 'GET', '/lab/');
    assert.equal(report.status, 200);
    assert.match(report.headers['content-type'] ?? '', /text\/html/);
    assert.match(report.body, /The lab report/);
    assert.equal((await view()).report.available, true);

    // Bad requests name what was expected.
    const bad = await api(port, 'POST', '/api/demo/strategy', { strategy: 'carrier-pigeon' });
    assert.equal(bad.status, 400);
    assert.match(bad.data.error ?? '', /expected one of memory, sticky, cluster, redis/);
    assert.equal((await api(port, 'POST', '/api/demo/backends/backend-z/kill')).status, 404);
    assert.equal((await api(port, 'POST', '/api/demo/backends/backend-a/restart')).status, 409);

    // Clustered sessions: a backend killed under the users loses no session.
    v = await post('/api/demo/users', { running: true });
    assert.equal(v.users.running, true);
    const warm = await more('cluster', 30);
    assert.equal(warm.lost, 0, JSON.stringify(warm));
    const cluster = await killAndRestart('cluster', 'backend-b');
    t.diagnostic(`cluster: ${JSON.stringify(cluster)}`);
    assert.equal(cluster.lost, 0, `clustered sessions lose none across a kill: ${JSON.stringify(cluster)}`);

    // Memory without stickiness: round robin moves the users, sessions are lost (also across a kill).
    v = await post('/api/demo/strategy', { strategy: 'memory' });
    assert.equal(v.strategy, 'memory');
    assert.deepEqual(
      lab.balancer.pools.get('web')!.servers.map((s) => s.id),
      ['backend-a', 'backend-b', 'backend-c'],
    );
    const memory = await killAndRestart('memory', 'backend-a');
    t.diagnostic(`memory: ${JSON.stringify(memory)}`);
    assert.ok(memory.lost > 0, `memory sessions without stickiness are lost: ${JSON.stringify(memory)}`);

    // Sticky cookie: the pool becomes sticky through the running balancer; no loss until a kill,
    // then the users pinned to the killed backend lose theirs.
    v = await post('/api/demo/strategy', { strategy: 'sticky' });
    assert.equal(v.strategy, 'sticky');
    assert.notEqual(lab.balancer.pools.get('web')!.affinity, null, 'the pool is sticky');
    const stickyWarm = await more('sticky', 60);
    assert.equal(stickyWarm.lost, 0, `sticky users keep their sessions: ${JSON.stringify(stickyWarm)}`);
    const pinned = (await view()).users.byServer['backend-c']?.users ?? 0;
    const sticky = await killAndRestart('sticky', 'backend-c');
    t.diagnostic(`sticky: ${JSON.stringify(sticky)} (${pinned} users were on backend-c)`);
    if (pinned > 0) assert.ok(sticky.lost >= 1, `backend-c's users lost theirs: ${JSON.stringify(sticky)}`);

    // Redis: the demo starts redis-server itself; a kill loses none.
    const redis = v.strategies.find((s) => s.name === 'redis')!;
    if (findBinary('redis-server') === undefined) {
      assert.equal(redis.available, false);
      assert.match(redis.reason ?? '', /redis-server/);
      t.diagnostic('redis-server not installed: the Redis strategy is shown disabled');
    } else {
      assert.equal(redis.available, true);
      v = await post('/api/demo/strategy', { strategy: 'redis' });
      assert.equal(v.strategy, 'redis');
      await more('redis', 30);
      const shared = await killAndRestart('redis', 'backend-a');
      t.diagnostic(`redis: ${JSON.stringify(shared)}`);
      assert.equal(shared.lost, 0, `a Redis store loses none across a kill: ${JSON.stringify(shared)}`);
    }

    // Users stop; the counts stay until reset.
    v = await post('/api/demo/users', { running: false });
    assert.equal(v.users.running, false);
    assert.ok((v.users.byStrategy.memory?.requests ?? 0) > 0);
    v = await post('/api/demo/users', { reset: true });
    assert.deepEqual(v.users.byStrategy, {});
  } finally {
    redisPid = lab.control.view().redis?.pid;
    await lab.stop();
    rmSync(reportDir, { recursive: true, force: true });
  }
  // Nothing is left running: the backends, and redis-server stopped by its PID.
  for (const b of lab.control.view().backends) assert.equal(b.running, false, `${b.id} stopped`);
  if (redisPid !== undefined) {
    assert.throws(() => process.kill(redisPid!, 0), /ESRCH/, `redis-server ${redisPid} stopped`);
  }
});

test('a production admin endpoint has no demo routes', { timeout: 30_000 }, async () => {
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    servers:
${serverList(backends)}
`);
  const admin = await startAdmin(lb.runtime, LOOPBACK, lb.log, { stateFile: null });
  try {
    assert.equal((await api(admin.address.port, 'GET', '/api/demo')).status, 404);
    assert.equal((await api(admin.address.port, 'POST', '/api/demo/backends/a/kill')).status, 404);
    const routes = (await api(admin.address.port, 'GET', '/api')).data.routes as Array<{ path: string }>;
    assert.ok(!routes.some((r) => r.path.startsWith('/api/demo')));
  } finally {
    await admin.close();
    await lb.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
});

test('the Lab panel shows in the demo, and a click kills a backend', {
  skip: CHROMIUM_MISSING,
  timeout: 120_000,
}, async (t) => {
  const log = memoryLogger();
  const reportDir = mkdtempSync(join(tmpdir(), 'fulcrum-demo-report-'));
  const lab = await startLab({ port: 0, host: '127.0.0.1', backends: 3, log, reportDir, pauseMs: 100 });
  const { page, close: closeBrowser } = await openChromium({ viewport: { width: 1400, height: 1000 } });
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  try {
    await page.goto(`${lab.adminUrl}/`);
    await page.waitForSelector('#lab:not([hidden])', { timeout: 15_000 });
    await page.waitForSelector('#lab tr[data-backend="backend-c"]', { timeout: 10_000 });
    assert.match((await page.locator('#lab-report').textContent()) ?? '', /fulcrum lab --quick/);
    assert.equal(await page.locator('#lab button.strategy.current').getAttribute('data-strategy'), 'cluster');

    // Start the users from the panel; their requests show up.
    await page.locator('#lab-users').click();
    await page.waitForFunction(
      () =>
        Number(document.querySelector('#lab-counts tr[data-strategy="cluster"] td.requests')?.textContent) >
        20,
      undefined,
      { timeout: 30_000 },
    );

    // Kill backend-b with a click: its process goes, the panel says so, the balancer sees it down.
    await page.locator('#lab tr[data-backend="backend-b"] button[data-action="kill"]').click();
    await page.waitForSelector('#lab tr[data-backend="backend-b"][data-running="false"]', {
      timeout: 10_000,
    });
    assert.ok(!lab.backends.some((b) => b.id === 'backend-b'), 'backend-b is killed');
    assert.equal(
      (await page.locator('#lab tr[data-backend="backend-b"] td.process').textContent())?.trim(),
      'killed',
    );
    await page.waitForSelector('#lab tr[data-backend="backend-b"] .badge.down', { timeout: HEALTH_MS });
    await page.waitForSelector('#lab tr[data-backend="backend-b"] button[data-action="restart"]');
    // Let the counters move a little, then keep a picture of it.
    await page.waitForTimeout(2000);
    mkdirSync(OUTPUT, { recursive: true });
    const shot = join(OUTPUT, 'demo-lab.png');
    await page.locator('#lab').screenshot({ path: shot });
    await page.screenshot({ path: join(OUTPUT, 'demo-lab-page.png'), fullPage: true });
    t.diagnostic(`screenshot: ${shot}`);
    assert.equal(
      Number(await page.locator('#lab-counts tr[data-strategy="cluster"] td.lost').textContent()),
      0,
      'clustered sessions: none lost',
    );
    assert.deepEqual(errors, [], 'no errors in the page');
  } catch (err) {
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: join(OUTPUT, 'demo-lab-failure.png'), fullPage: true }).catch(() => {});
    t.diagnostic(`page errors: ${JSON.stringify(errors)}; log: ${log.lines.slice(-20).join('\n')}`);
    throw err;
  } finally {
    await closeBrowser();
    await lab.stop();
    rmSync(reportDir, { recursive: true, force: true });
  }
});
