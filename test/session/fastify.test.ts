import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import Fastify from 'fastify';
import {
  fastifySession,
  getSession,
  MemcachedStore,
  RedisStore,
  type SessionStore,
} from '../../src/session/index.js';
import { startMemcached } from '../helpers/memcachedServer.js';
import { startRedis } from '../helpers/redisServer.js';
import { Browser } from './browser.js';

const quiet = { warn: () => {} };
const redis = await startRedis();
const memcached = await startMemcached();
after(async () => {
  await redis.stop();
  await memcached.stop();
});

async function startApp(store: SessionStore) {
  const app = Fastify();
  await app.register(fastifySession, { secret: 'fastify-secret', store, logger: quiet });
  app.get('/count', async (request) => {
    const session = getSession(request);
    session.count = (Number(session.count) || 0) + 1;
    return { count: session.count, id: session.id };
  });
  app.post('/login', async (request) => {
    const session = getSession(request);
    await session.regenerate();
    session.user = 'ada';
    return { id: session.id };
  });
  app.post('/logout', async (request) => {
    await getSession(request).destroy();
    return { ok: true };
  });
  app.get('/whoami', async (request) => ({ user: getSession(request).user ?? null }));
  app.get('/cookie-too', async (_request, reply) => {
    reply.header('set-cookie', 'theme=dark; Path=/');
    getSession(_request).seen = true;
    return { ok: true };
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return { app, port: typeof address === 'object' && address ? address.port : 0 };
}

for (const [name, open] of [
  ['Redis', () => new RedisStore({ url: redis.url, logger: quiet })],
  ['Memcached', () => new MemcachedStore({ servers: memcached.address, logger: quiet })],
] as const) {
  test(`fastify with ${name}: count, regenerate, destroy, other cookies kept`, async () => {
    const store = open();
    const { app, port } = await startApp(store);
    try {
      const browser = new Browser(port);
      for (let n = 1; n <= 3; n++) assert.equal((await browser.get('/count')).json().count, n);
      const { id: before } = (await browser.get('/count')).json<{ id: string }>();
      const { id: after } = (await browser.post('/login')).json<{ id: string }>();
      assert.notEqual(after, before);
      assert.equal(await store.get(before), null);
      assert.equal((await browser.get('/whoami')).json().user, 'ada');
      const both = await browser.get('/cookie-too');
      assert.equal(both.setCookies.length, 2, both.setCookies.join(' | '));
      assert.ok(both.setCookies.some((c) => c.startsWith('theme=dark')));
      await browser.post('/logout');
      assert.equal(browser.cookie('fulcrum.sid'), undefined);
      assert.equal((await browser.get('/whoami')).json().user, null);
    } finally {
      await app.close();
      await store.close();
    }
  });
}

test('fastify: an unreachable store answers 503, and serves again once it is back', async () => {
  const own = await startRedis();
  const store = new RedisStore({ url: own.url, logger: quiet });
  const { app, port } = await startApp(store);
  try {
    await store.ready(3000);
    const browser = new Browser(port);
    assert.equal((await browser.get('/count')).json().count, 1);
    await own.stop('SIGKILL');
    const down = await browser.get('/count');
    assert.equal(down.status, 503);
    assert.equal(down.json().error, 'session_store_unavailable');
    assert.equal(down.headers['retry-after'], '1');
    await own.restart();
    await store.ready(5000);
    assert.equal((await browser.get('/count')).status, 200);
  } finally {
    await app.close();
    await store.close();
    await own.stop();
  }
});
