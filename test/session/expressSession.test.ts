/**
 * Fulcrum's stores inside real Express apps: as express-session's `Store` (the one-line switch
 * for an existing app), and Fulcrum's own middleware mounted in Express.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import express, { type ErrorRequestHandler } from 'express';
import session from 'express-session';
import { createClient } from 'redis';
import {
  type BaseStore,
  getSession,
  isStoreUnavailable,
  MemcachedStore,
  MemoryStore,
  RedisStore,
  sessionMiddleware,
} from '../../src/session/index.js';
import { startMemcached } from '../helpers/memcachedServer.js';
import { startRedis } from '../helpers/redisServer.js';
import { Browser } from './browser.js';

declare module 'express-session' {
  interface SessionData {
    count: number;
    user: string;
  }
}

const quiet = { warn: () => {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const redis = await startRedis({ persistent: true });
const memcached = await startMemcached();
after(async () => {
  await redis.stop();
  await memcached.stop();
});

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

/**
 * An Express app using express-session with `store`, as an existing app would; with an error
 * handler mapping StoreUnavailableError to 503 unless `errorHandler: false` (Express's own then).
 */
function expressSessionApp(
  store: BaseStore,
  maxAge = 60_000,
  { errorHandler = true }: { errorHandler?: boolean } = {},
): express.Express {
  const app = express();
  // The one line that changes when an app moves to a Fulcrum store: `store: ...`.
  app.use(
    session({
      store,
      secret: 'es-secret',
      resave: false,
      saveUninitialized: false,
      rolling: true,
      cookie: { maxAge },
    }),
  );
  app.get('/count', (req, res) => {
    if (!req.session) {
      res.json({ session: false });
      return;
    }
    req.session.count = (req.session.count ?? 0) + 1;
    res.json({ session: true, count: req.session.count, id: req.sessionID });
  });
  app.get('/read', (req, res) => {
    res.json({ count: req.session?.count ?? null, id: req.sessionID });
  });
  app.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = 'ada';
      res.json({ id: req.sessionID });
    });
  });
  app.post('/logout', (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.json({ ok: true })));
  });
  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    res.status(isStoreUnavailable(err) ? 503 : 500).json({ error: String(err) });
  };
  if (errorHandler) app.use(onError);
  else app.set('env', 'test'); // Express's final handler would log every 503's stack
  return app;
}

const stores: Array<[string, () => BaseStore]> = [
  ['MemoryStore', () => new MemoryStore()],
  ['RedisStore', () => new RedisStore({ url: redis.url, logger: quiet })],
  ['MemcachedStore', () => new MemcachedStore({ servers: memcached.address, logger: quiet })],
];

for (const [name, open] of stores) {
  test(`express-session with Fulcrum's ${name}: count, regenerate, destroy, touch`, async () => {
    const store = open();
    const server = await listen(expressSessionApp(store, 1500));
    try {
      const browser = new Browser(server.port);
      for (let n = 1; n <= 3; n++) assert.equal((await browser.get('/count')).json().count, n);
      assert.ok(browser.cookie('connect.sid')?.startsWith('s%3A'));

      const { id: before } = (await browser.get('/read')).json<{ id: string }>();
      const { id: after } = (await browser.post('/login')).json<{ id: string }>();
      assert.notEqual(after, before);
      assert.equal(await store.get(before), null, 'regenerate deleted the old session');
      assert.equal((await store.get(after))?.user, 'ada');

      // Unchanged requests go through store.touch; they keep the session past its 1.5 s maxAge.
      await browser.get('/count');
      for (let i = 0; i < 4; i++) {
        await sleep(600);
        assert.equal((await browser.get('/read')).json().count, 1, `alive after ${(i + 1) * 600} ms`);
      }

      await browser.post('/logout');
      assert.equal(await store.get(after), null, 'destroy deleted it');
      assert.equal((await browser.get('/read')).json().count, null);
    } finally {
      await server.close();
      await store.close();
    }
  });
}

test('express-session with RedisStore: Redis killed → 503 from Express itself, restarted → sessions again', async () => {
  const events: string[] = [];
  const store = new RedisStore({ url: redis.url, logger: quiet });
  // The app's own listeners still hear the outage; express-session's are turned away, so that it
  // does not go on without sessions.
  store.on('connect', () => events.push('connect'));
  store.on('disconnect', () => events.push('disconnect'));
  const server = await listen(expressSessionApp(store, 60_000, { errorHandler: false }));
  try {
    await store.ready(3000);
    const browser = new Browser(server.port);
    assert.equal((await browser.get('/count')).json().count, 1);
    assert.equal((await browser.get('/count')).json().count, 2);

    await redis.stop('SIGKILL');
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      const reply = await browser.get('/count');
      const ms = performance.now() - started;
      // No error handler in this app: Express's final handler reads the error's status and headers.
      assert.equal(reply.status, 503, reply.body);
      assert.equal(reply.headers['retry-after'], '1');
      assert.ok(ms < 1500, `503 after ${ms.toFixed(0)} ms`);
    }
    assert.deepEqual(events, ['connect', 'disconnect']);
    const health = await new Browser(server.port).get('/read'); // no cookie: no store involved
    assert.equal(health.status, 200, 'the app is up');

    await redis.restart(); // persistent: the session is still there
    await once(store, 'connect');
    assert.equal((await browser.get('/count')).json().count, 3);
    assert.deepEqual(events, ['connect', 'disconnect', 'connect']);
  } finally {
    await server.close();
    await store.close();
  }
});

test('express-session with MemcachedStore: memcached killed → 503, restarted → sessions again', async () => {
  const own = await startMemcached();
  const events: string[] = [];
  const store = new MemcachedStore({ servers: own.address, probeIntervalMs: 200, logger: quiet });
  store.on('connect', () => events.push('connect'));
  store.on('disconnect', () => events.push('disconnect'));
  const server = await listen(expressSessionApp(store));
  try {
    await store.ready(3000);
    const browser = new Browser(server.port);
    assert.equal((await browser.get('/count')).json().count, 1);
    await own.stop('SIGKILL');
    // Every request meets the store's error (the first finds the server gone, the next fail fast).
    for (let i = 0; i < 3; i++) assert.equal((await browser.get('/count')).status, 503);
    assert.deepEqual(events, ['connect', 'disconnect']);
    await own.restart();
    await once(store, 'connect');
    assert.equal((await browser.get('/count')).json().count, 1, 'a restarted memcached is empty');
  } finally {
    await server.close();
    await store.close();
    await own.stop();
  }
});

test('express-session with a RedisStore on your own client', async () => {
  const client = createClient({ url: redis.url });
  client.on('error', () => {});
  await client.connect();
  const store = new RedisStore({ client, prefix: 'myapp:', logger: quiet });
  const server = await listen(expressSessionApp(store));
  try {
    const browser = new Browser(server.port);
    const { id } = (await browser.get('/count')).json<{ id: string }>();
    const stored = JSON.parse((await client.get(`myapp:${id}`)) ?? '{}') as {
      count?: number;
      cookie?: object;
    };
    assert.equal(stored.count, 1);
    assert.ok(stored.cookie, 'express-session keeps its cookie data in the record');
  } finally {
    await server.close();
    await store.close();
    await client.close();
  }
});

test("Fulcrum's own middleware in Express, with getSession(req)", async () => {
  const store = new RedisStore({ url: redis.url, prefix: 'fulcrum:', logger: quiet });
  const app = express();
  app.use(sessionMiddleware({ secret: 'k', store }));
  app.get('/count', (req, res) => {
    const s = getSession(req);
    s.count = (Number(s.count) || 0) + 1;
    res.json({ count: s.count });
  });
  app.post('/login', async (req, res) => {
    await getSession(req).regenerate({ keepData: true });
    res.json({ id: getSession(req).id });
  });
  const server = await listen(app);
  try {
    const browser = new Browser(server.port);
    for (let n = 1; n <= 3; n++) assert.equal((await browser.get('/count')).json().count, n);
    await browser.post('/login');
    assert.equal((await browser.get('/count')).json().count, 4, 'keepData carried the data to the new id');
  } finally {
    await server.close();
    await store.close();
  }
});
