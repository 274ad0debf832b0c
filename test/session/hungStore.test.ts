/**
 * A hung store: the process stops answering (SIGSTOP) while its port stays open, so connections
 * neither fail nor answer. Every store operation is bounded by `operationTimeoutMs` (default
 * 1 s): a request gets its 503 within that bound, through Fulcrum's middleware and through
 * express-session, the app stays up, and once the store answers again (SIGCONT) sessions work
 * again by themselves, with nothing lost. The times measured are printed as test diagnostics.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import express from 'express';
import session from 'express-session';
import { createClient } from 'redis';
import {
  type BaseStore,
  getSession,
  MemcachedStore,
  RedisStore,
  sessionMiddleware,
} from '../../src/session/index.js';
import { startMemcached } from '../helpers/memcachedServer.js';
import { startRedis } from '../helpers/redisServer.js';
import type { ServerProcess } from '../helpers/serverProcess.js';
import { Browser } from './browser.js';

declare module 'express-session' {
  interface SessionData {
    count: number;
  }
}

const quiet = { warn: () => {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The default bound (1 s), its sweep (an eighth), and room for a busy test machine. */
const BOUND_MS = 1000 * 1.125 + 400;

async function listen(app: express.Express): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The same counter app twice: on express-session (no error handler: Express's own), and on Fulcrum's middleware. */
function apps(store: BaseStore): { expressSession: express.Express; fulcrum: express.Express } {
  const expressSession = express();
  expressSession.set('env', 'test'); // Express's final handler would log every 503's stack
  expressSession.use(session({ store, secret: 's', resave: false, saveUninitialized: false }));
  expressSession.get('/count', (req, res) => {
    req.session.count = (req.session.count ?? 0) + 1;
    res.json({ count: req.session.count });
  });
  const fulcrum = express();
  fulcrum.use(sessionMiddleware({ store, secret: 's' }));
  fulcrum.get('/count', (req, res) => {
    const s = getSession(req);
    s.count = Number(s.count ?? 0) + 1;
    res.json({ count: s.count });
  });
  return { expressSession, fulcrum };
}

async function timed(browser: Browser, path: string) {
  const started = performance.now();
  const reply = await browser.get(path);
  return { reply, ms: performance.now() - started };
}

/**
 * Pauses the store under running apps, checks the 503s and their timing, resumes it, and
 * measures how long until the same browsers are served again with their sessions.
 */
async function hang(t: TestContext, name: string, server: ServerProcess, store: BaseStore): Promise<void> {
  const { expressSession, fulcrum } = apps(store);
  const servers = [await listen(expressSession), await listen(fulcrum)];
  const labels = ['express-session', 'fulcrum middleware'];
  try {
    await store.ready(3000);
    const browsers = servers.map((s) => new Browser(s.port));
    for (const b of browsers) {
      assert.equal((await b.get('/count')).json().count, 1);
      assert.equal((await b.get('/count')).json().count, 2);
    }

    await server.pause();
    const paused = performance.now();
    for (const [i, b] of browsers.entries()) {
      const times: number[] = [];
      for (let k = 0; k < 3; k++) {
        const { reply, ms } = await timed(b, '/count');
        assert.equal(reply.status, 503, `${labels[i]}: ${reply.body}`);
        assert.equal(reply.headers['retry-after'], '1');
        assert.ok(ms < BOUND_MS, `${labels[i]}: 503 after ${ms.toFixed(0)} ms`);
        times.push(ms);
      }
      // Many at once: each is bounded on its own, none waits behind another.
      const withCookie = await Promise.all(Array.from({ length: 20 }, () => timed(b, '/count')));
      for (const { reply, ms } of withCookie) {
        assert.equal(reply.status, 503);
        assert.ok(ms < BOUND_MS, `${labels[i]}: 503 after ${ms.toFixed(0)} ms in a burst`);
      }
      const slowest = Math.max(...withCookie.map((w) => w.ms));
      t.diagnostic(
        `${name}, ${labels[i]}: 503 after ${times.map((m) => m.toFixed(0)).join(', ')} ms; 20 at once: slowest ${slowest.toFixed(0)} ms`,
      );
    }

    server.resume();
    const resumed = performance.now();
    // Served again, each browser with its session, without any help.
    for (const [i, b] of browsers.entries()) {
      let reply = await b.get('/count');
      while (reply.status === 503 && performance.now() - resumed < 10_000) {
        await sleep(25);
        reply = await b.get('/count');
      }
      assert.equal(reply.status, 200, `${labels[i]} after SIGCONT: ${reply.body}`);
      assert.equal(reply.json().count, 3, `${labels[i]}: the session survived`);
      t.diagnostic(
        `${name}, ${labels[i]}: served again ${(performance.now() - resumed).toFixed(0)} ms after SIGCONT (paused ${(resumed - paused).toFixed(0)} ms)`,
      );
    }
    assert.equal(store.available, true);
  } finally {
    server.resume();
    for (const s of servers) await s.close();
  }
}

test('a hung Redis (the store owns its client): 503 within the bound, recovery after SIGCONT', async (t) => {
  const redis = await startRedis();
  const store = new RedisStore({ url: redis.url, logger: quiet });
  try {
    await hang(t, 'redis (url)', redis, store);
  } finally {
    redis.resume();
    await store.close();
    await redis.stop();
  }
});

test('a hung Redis (your own client, as with connect-redis): 503 within the bound, recovery', async (t) => {
  const redis = await startRedis();
  const client = createClient({ url: redis.url });
  client.on('error', () => {});
  await client.connect();
  const store = new RedisStore({ client, logger: quiet });
  try {
    await hang(t, 'redis (client)', redis, store);
  } finally {
    redis.resume();
    await store.close();
    client.destroy();
    await redis.stop();
  }
});

test('a hung memcached: 503 within the bound, recovery after SIGCONT', async (t) => {
  const memcached = await startMemcached();
  const store = new MemcachedStore({ hosts: memcached.address, logger: quiet });
  try {
    await hang(t, 'memcached', memcached, store);
  } finally {
    memcached.resume();
    await store.close();
    await memcached.stop();
  }
});

test('a hung store with a shorter bound: operationTimeoutMs (and timeout for memcached) set it', async () => {
  const redis = await startRedis();
  const memcached = await startMemcached();
  const stores: BaseStore[] = [
    new RedisStore({ url: redis.url, operationTimeoutMs: 300, logger: quiet }),
    new MemcachedStore({ hosts: memcached.address, timeout: 300, logger: quiet }),
  ];
  try {
    for (const store of stores) await store.ready(3000);
    await redis.pause();
    await memcached.pause();
    for (const store of stores) {
      const started = performance.now();
      await assert.rejects(store.get('x'), { code: 'ESESSIONSTOREUNAVAILABLE', status: 503 });
      const ms = performance.now() - started;
      assert.ok(ms >= 290 && ms < 300 * 1.125 + 300, `${ms.toFixed(0)} ms`);
    }
  } finally {
    redis.resume();
    memcached.resume();
    for (const store of stores) await store.close();
    await redis.stop();
    await memcached.stop();
  }
});
