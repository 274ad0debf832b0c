/**
 * Fulcrum's stores as the one-line switch from connect-redis and connect-memcached, end to end:
 * a real Express + express-session app in its own process (test/helpers/expressSessionApp.ts),
 * driven over HTTP by a browser with a cookie jar, against a real redis-server or memcached.
 *
 * For each store: a session is created, modified, regenerated, kept alive by touches, re-sent
 * by rolling cookies, expired, destroyed; then the store is killed (503, the app stays up) and
 * restarted (sessions again), then paused with SIGSTOP (503 within the 1 s bound) and resumed
 * with SIGCONT (sessions again, nothing lost). The times are printed as test diagnostics.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { after, type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import memjs from 'memjs';
import { createClient } from 'redis';
import { startMemcached } from '../helpers/memcachedServer.js';
import { startRedis } from '../helpers/redisServer.js';
import type { ServerProcess } from '../helpers/serverProcess.js';
import { Browser, type Reply } from '../session/browser.js';

const APP = resolve(dirname(fileURLToPath(import.meta.url)), '../helpers/expressSessionApp.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The stores' default bound (1 s) and its sweep (an eighth), with room for a busy machine. */
const BOUND_MS = 1000 * 1.125 + 400;

const apps = new Set<ChildProcess>();
after(() => {
  for (const app of apps) app.kill('SIGKILL');
});

async function startApp(store: string): Promise<{ port: number; child: ChildProcess; output(): string }> {
  const child = spawn(process.execPath, [APP, '--store', store, '--max-age', '1500'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  apps.add(child);
  child.once('exit', () => apps.delete(child));
  let output = '';
  child.stderr?.on('data', (c: Buffer) => (output = (output + c.toString()).slice(-4000)));
  const port = await new Promise<number>((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`app did not start: ${output}`)), 10_000);
    let line = '';
    child.stdout?.on('data', (c: Buffer) => {
      line += c.toString();
      const m = /listening (\d+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolvePort(Number(m[1]));
      }
    });
    child.once('exit', (code) => reject(new Error(`app exited (${code}): ${output}`)));
  });
  return { port, child, output: () => output };
}

/** What the store holds under a key (express-session's default prefix `sess:` + id). */
interface Peek {
  has(id: string): Promise<boolean>;
  close(): Promise<void>;
}

async function redisPeek(url: string): Promise<Peek> {
  const client = createClient({ url });
  client.on('error', () => {});
  await client.connect();
  return {
    has: async (id) => (await client.exists(`sess:${id}`)) === 1,
    close: async () => client.destroy(),
  };
}

function memcachedPeek(address: string): Peek {
  const client = memjs.Client.create(address, { retries: 1, timeout: 1, logger: { log: () => {} } });
  return {
    has: async (id) => (await client.get(`sess:${id}`)).value !== null,
    close: async () => client.close(),
  };
}

const cookieOf = (reply: Reply, name: string) => reply.setCookies.find((c) => c.startsWith(`${name}=`));

async function timedGet(browser: Browser, path: string): Promise<{ reply: Reply; ms: number }> {
  const started = performance.now();
  const reply = await browser.get(path);
  return { reply, ms: performance.now() - started };
}

/** Polls until `path` answers 200; returns how long it took. */
async function untilServed(
  browser: Browser,
  path: string,
  limitMs = 15_000,
): Promise<{ reply: Reply; ms: number }> {
  const started = performance.now();
  for (;;) {
    const reply = await browser.get(path);
    if (reply.status === 200) return { reply, ms: performance.now() - started };
    assert.equal(reply.status, 503, reply.body);
    if (performance.now() - started > limitMs) throw new Error(`not served again within ${limitMs} ms`);
    await sleep(25);
  }
}

async function scenario(
  t: TestContext,
  name: string,
  store: ServerProcess,
  spec: string,
  peek: Peek,
  persistent: boolean,
): Promise<void> {
  const app = await startApp(spec);
  try {
    const browser = new Browser(app.port);
    // create
    const first = await browser.get('/f/count');
    assert.equal(first.status, 200, first.body);
    assert.equal(first.json().count, 1);
    assert.ok(cookieOf(first, 'fsid'), 'a cookie for the new session');
    const { id } = first.json<{ id: string }>();
    assert.ok(await peek.has(id), 'the store holds it');
    // modify
    assert.equal((await browser.get('/f/count')).json().count, 2);
    assert.equal((await browser.get('/f/count')).json().count, 3);
    // regenerate
    const { id: regenerated } = (await browser.post('/f/login')).json<{ id: string }>();
    assert.notEqual(regenerated, id);
    assert.equal(await peek.has(id), false, 'regenerate destroyed the old session');
    assert.deepEqual((await browser.get('/f/read')).json(), { count: null, user: 'ada', id: regenerated });
    // touch: unchanged requests keep it past its 1.5 s maxAge; rolling: false sends no cookie then
    for (let i = 0; i < 4; i++) {
      await sleep(600);
      const read = await browser.get('/f/read');
      assert.equal(read.json().user, 'ada', `alive after ${(i + 1) * 600} ms`);
      assert.equal(cookieOf(read, 'fsid'), undefined, 'rolling: false, unchanged: no Set-Cookie');
    }
    // rolling: true re-sends the cookie on every response, with a later expiry
    const rolled1 = await browser.get('/r/count');
    await sleep(1100);
    const rolled2 = await browser.get('/r/read');
    const expiry = (line: string | undefined) => Date.parse(/Expires=([^;]+)/i.exec(line ?? '')?.[1] ?? '');
    assert.ok(cookieOf(rolled2, 'rsid'), 'rolling: true, unchanged: Set-Cookie anyway');
    assert.ok(expiry(cookieOf(rolled2, 'rsid')) > expiry(cookieOf(rolled1, 'rsid')), 'a later expiry');
    // expiry: idle past maxAge (memcached counts whole seconds), the session is gone
    await sleep(2600);
    assert.equal((await browser.get('/f/read')).json().user, null, 'expired');
    assert.equal(await peek.has(regenerated), false);
    // destroy
    const { id: live } = (await browser.get('/f/count')).json<{ id: string }>();
    assert.ok(await peek.has(live));
    assert.equal((await browser.post('/f/logout')).status, 200);
    assert.equal(await peek.has(live), false, 'destroyed');
    assert.equal((await browser.get('/f/read')).json().count, null);

    // The store killed: 503, the app stays up. From here on /r, whose sessions last a minute
    // (in a persistent Redis they outlive the outage; /f's 1.5 s would not).
    for (let n = 2; n <= 3; n++) assert.equal((await browser.get('/r/count')).json().count, n);
    const pid = (await new Browser(app.port).get('/health')).json().pid;
    await store.stop('SIGKILL');
    const killed: number[] = [];
    for (let i = 0; i < 3; i++) {
      const { reply, ms } = await timedGet(browser, '/r/count');
      assert.equal(reply.status, 503, reply.body);
      assert.equal(reply.headers['retry-after'], '1');
      assert.ok(ms < BOUND_MS, `503 after ${ms.toFixed(0)} ms`);
      killed.push(ms);
    }
    const health = await new Browser(app.port).get('/health');
    assert.deepEqual([health.status, health.json().pid], [200, pid], 'the same process, up');
    await store.restart();
    const restarted = await untilServed(browser, '/r/count');
    assert.equal(
      restarted.reply.json().count,
      persistent ? 4 : 1,
      persistent ? 'the session survived' : 'empty',
    );
    t.diagnostic(
      `${name}: killed → 503 after ${killed.map((m) => m.toFixed(0)).join(', ')} ms; restarted → served again after ${restarted.ms.toFixed(0)} ms`,
    );

    // The store hung (SIGSTOP): 503 within the bound; SIGCONT: served again, nothing lost
    const before = restarted.reply.json().count as number;
    await store.pause();
    try {
      const hung: number[] = [];
      for (let i = 0; i < 3; i++) {
        const { reply, ms } = await timedGet(browser, '/r/count');
        assert.equal(reply.status, 503, reply.body);
        assert.ok(ms < BOUND_MS, `503 after ${ms.toFixed(0)} ms`);
        hung.push(ms);
      }
      await sleep(3000); // a hang longer than the clients' own socket timeouts
      const late = await timedGet(browser, '/r/count');
      assert.equal(late.reply.status, 503);
      hung.push(late.ms);
      assert.equal((await new Browser(app.port).get('/health')).status, 200, 'the app is up');
      store.resume();
      const resumed = await untilServed(browser, '/r/count');
      assert.equal(resumed.reply.json().count, before + 1, 'the session survived the hang');
      t.diagnostic(
        `${name}: SIGSTOP → 503 after ${hung.map((m) => m.toFixed(0)).join(', ')} ms; SIGCONT → served again after ${resumed.ms.toFixed(0)} ms`,
      );
    } finally {
      store.resume();
    }
    assert.equal(app.child.exitCode, null, `the app is still running: ${app.output()}`);
  } finally {
    app.child.kill('SIGKILL');
  }
}

test('express-session + RedisStore({ url }) over HTTP: lifecycle, killed, hung', async (t) => {
  const redis = await startRedis({ persistent: true });
  const peek = await redisPeek(redis.url);
  try {
    await scenario(t, 'redis (url)', redis, redis.url, peek, true);
  } finally {
    redis.resume();
    await peek.close();
    await redis.stop();
  }
});

test('express-session + RedisStore({ client }) over HTTP, as from connect-redis: lifecycle, killed, hung', async (t) => {
  const redis = await startRedis({ persistent: true });
  const peek = await redisPeek(redis.url);
  try {
    await scenario(t, 'redis (client)', redis, redis.url.replace('redis://', 'redis-client://'), peek, true);
  } finally {
    redis.resume();
    await peek.close();
    await redis.stop();
  }
});

test('express-session + MemcachedStore({ hosts }) over HTTP, as from connect-memcached: lifecycle, killed, hung', async (t) => {
  const memcached = await startMemcached();
  const peek = memcachedPeek(memcached.address);
  try {
    await scenario(t, 'memcached', memcached, `memcached://${memcached.address}`, peek, false);
  } finally {
    memcached.resume();
    await peek.close();
    await memcached.stop();
  }
});
