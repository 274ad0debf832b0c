/**
 * connect-redis's own test cases, ported case by case and run against Fulcrum's RedisStore, with
 * connect-redis itself (v9, the devDependency) run through the very same cases as the control:
 * a case both pass is connect-redis behaviour that RedisStore reproduces.
 *
 * - v9 (index_test.ts): defaults, and the lifecycle (set/get/TTL/touch/length/ids/all/destroy/
 *   clear, a bulk load of 1000, expiry in the past deletes).
 * - v6 (test/connect-redis-test.js): the same lifecycle through express-session's callback API,
 *   with `cookie.expires` as an ISO string. (v6 also checked the raw Redis replies handed to the
 *   callbacks, 'OK' and counts; v9 dropped those, and so do these ports.)
 * - v3 (test/connect-redis-test.js): the lifecycle with `cookie.maxAge`, constructor rules, the
 *   options, the TTL options (v3 stubbed `client.set`; here Redis itself reports the TTL), a
 *   broken connection, and a custom serializer. Where v3's semantics changed in later releases
 *   (v3's `ttl` overrode the cookie and took `maxAge`; v9 reads `cookie.expires` first), the
 *   case checks v9's.
 *
 * Then what connect-redis does not test but its options promise (disableTouch, a `ttl`
 * function, an asynchronous parse), and Fulcrum's own rules (unknown options are TypeErrors).
 */
import assert from 'node:assert/strict';
import { after, beforeEach, describe, test } from 'node:test';
import { RedisStore as ConnectRedisStore } from 'connect-redis';
import { Cookie } from 'express-session';
import { createClient } from 'redis';
import { RedisStore } from '../../src/session/index.js';
import { startRedis } from '../helpers/redisServer.js';

const quiet = { warn: () => {} };
const redis = await startRedis();
const client = createClient({ url: redis.url });
client.on('error', () => {});
await client.connect();
after(async () => {
  await client.close();
  await redis.stop();
});
beforeEach(async () => {
  await client.flushAll();
});

type Callback = (err: unknown, value?: unknown) => void;
/** The surface both stores share, loosely typed: the cases drive both through it. */
interface CompatStore {
  readonly client: unknown;
  prefix: string;
  ttl: unknown;
  scanCount: number;
  serializer: unknown;
  disableTTL: boolean;
  disableTouch: boolean;
  get(id: string, cb?: Callback): Promise<unknown> | undefined;
  set(id: string, session: object, cb?: Callback): Promise<unknown> | undefined;
  touch(id: string, session: object, cb?: Callback): Promise<unknown> | undefined;
  destroy(id: string, cb?: Callback): Promise<unknown> | undefined;
  all(cb?: Callback): Promise<unknown> | undefined;
  ids(cb?: Callback): Promise<unknown> | undefined;
  length(cb?: Callback): Promise<unknown> | undefined;
  clear(cb?: Callback): Promise<unknown> | undefined;
}
type Make = (options: Record<string, unknown>) => CompatStore;

const implementations: Array<[string, Make]> = [
  ['RedisStore', (options) => new RedisStore({ logger: quiet, ...options }) as unknown as CompatStore],
  ['connect-redis (control)', (options) => new ConnectRedisStore(options as never) as unknown as CompatStore],
];

/** A store method through express-session's callback API, as a promise (v6's `p(store, method)`). */
function viaCallback<T = unknown>(
  store: CompatStore,
  method: keyof CompatStore,
  ...args: unknown[]
): Promise<T> {
  return new Promise((resolve, reject) => {
    (store[method] as (...a: unknown[]) => void).call(store, ...args, (err: unknown, value?: unknown) =>
      err ? reject(err) : resolve(value as T),
    );
  });
}

const inSeconds = (seconds: number) => new Date(Date.now() + seconds * 1000);

/** v9's lifecycleTest, promise API. */
async function lifecycleV9(store: CompatStore): Promise<void> {
  await store.clear();

  const sess = { foo: 'bar', cookie: { originalMaxAge: null } };
  await store.set('123', sess);
  assert.deepEqual(await store.get('123'), sess);
  assert.ok((await client.ttl('sess:123')) >= 86399, 'one day when the cookie has no expiry');

  let expires = inSeconds(60);
  await store.set('456', { cookie: { originalMaxAge: null, expires } });
  assert.ok((await client.ttl('sess:456')) <= 60, 'the TTL of cookie.expires');

  await store.touch('456', { cookie: { originalMaxAge: null, expires: inSeconds(90) } });
  assert.ok((await client.ttl('sess:456')) > 60, 'touch extended it');

  assert.equal(await store.length(), 2, 'stored two keys length');
  assert.deepEqual(((await store.ids()) as string[]).sort(), ['123', '456']);
  const all = ((await store.all()) as Array<{ id: string }>).sort((a, b) => (a.id > b.id ? 1 : -1));
  assert.deepEqual(all, [
    { id: '123', foo: 'bar', cookie: { originalMaxAge: null } },
    { id: '456', cookie: { originalMaxAge: null, expires: expires.toISOString() } },
  ]);

  await store.destroy('456');
  assert.equal(await store.length(), 1, 'one key remains');
  await store.clear();
  assert.equal(await store.length(), 0, 'no keys remain');

  const count = 1000;
  const cookie = new Cookie();
  for (let sid = 0; sid < count; sid++) {
    cookie.expires = inSeconds(1);
    await store.set(`s${sid}`, { cookie });
  }
  assert.equal(await store.length(), count, 'bulk count');
  await store.clear();
  assert.equal(await store.length(), 0, 'bulk clear');

  expires = inSeconds(90);
  await store.set('789', { cookie: { originalMaxAge: null, expires } });
  assert.equal(await store.length(), 1);
  expires = inSeconds(-90);
  await store.set('789', { cookie: { originalMaxAge: null, expires } });
  assert.equal(await store.length(), 0, 'an expiry in the past deletes the session');
}

/** v6's lifecycleTest, through the callbacks, `cookie.expires` as an ISO string. */
async function lifecycleV6(store: CompatStore): Promise<void> {
  await viaCallback(store, 'set', '123', { foo: 'bar' });
  assert.deepEqual(await viaCallback(store, 'get', '123'), { foo: 'bar' }, 'get value');
  assert.ok((await client.ttl('sess:123')) >= 86399, 'check one day ttl');

  let expires = inSeconds(60).toISOString();
  await viaCallback(store, 'set', '456', { cookie: { expires } });
  assert.ok((await client.ttl('sess:456')) <= 60, 'check expires ttl');

  // cookie.expires is not rewritten by touch, only the TTL (connect-redis #285)
  await viaCallback(store, 'touch', '456', { cookie: { expires: inSeconds(90).toISOString() } });
  assert.ok((await client.ttl('sess:456')) > 60, 'check expires ttl touch');

  assert.equal(await viaCallback(store, 'length'), 2, 'stored two keys length');
  assert.deepEqual((await viaCallback<string[]>(store, 'ids')).sort(), ['123', '456'], 'stored two keys ids');
  const all = (await viaCallback<Array<{ id: string }>>(store, 'all')).sort((a, b) => (a.id > b.id ? 1 : -1));
  assert.deepEqual(
    all,
    [
      { id: '123', foo: 'bar' },
      { id: '456', cookie: { expires } },
    ],
    'stored two keys data',
  );

  await viaCallback(store, 'destroy', '456');
  assert.equal(await viaCallback(store, 'length'), 1, 'one key remains');
  await viaCallback(store, 'clear');
  assert.equal(await viaCallback(store, 'length'), 0, 'no key remains');

  const count = 1000;
  for (let sid = 0; sid < count; sid++) await viaCallback(store, 'set', `s${sid}`, { cookie: { expires } });
  assert.equal(await viaCallback(store, 'length'), count, 'bulk count');
  await viaCallback(store, 'clear');
  assert.equal(await viaCallback(store, 'length'), 0, 'bulk clear');

  expires = inSeconds(90).toISOString();
  await viaCallback(store, 'set', '789', { cookie: { expires } });
  assert.equal(await viaCallback(store, 'length'), 1, 'one key exists (session 789)');
  expires = inSeconds(-90).toISOString();
  await viaCallback(store, 'set', '789', { cookie: { expires } });
  assert.equal(await viaCallback(store, 'length'), 0, 'no key remains and that includes session 789');
}

/** v3's lifecycleTest: `cookie.maxAge` without `expires`, through the callbacks. */
async function lifecycleV3(store: CompatStore): Promise<void> {
  await viaCallback(store, 'set', '123', { cookie: { maxAge: 2000 }, name: 'tj' });
  assert.deepEqual(
    await viaCallback(store, 'get', '123'),
    { cookie: { maxAge: 2000 }, name: 'tj' },
    '#get() ok',
  );
  await viaCallback(store, 'set', '123', { cookie: { maxAge: undefined }, name: 'tj' });
  assert.deepEqual(await viaCallback(store, 'all'), [{ id: '123', cookie: {}, name: 'tj' }], '#all() ok');
  assert.deepEqual(await viaCallback(store, 'ids'), ['123'], '#ids() ok');
  await viaCallback(store, 'destroy', '123');
  assert.equal(await viaCallback(store, 'get', '123'), null, '#destroy() ok');
}

for (const [name, make] of implementations) {
  describe(name, () => {
    // --- v9 ---
    test('v9 defaults: client, prefix sess:, ttl one day, scanCount 100, JSON, touch and TTL on', () => {
      const store = make({ client });
      assert.ok(store.client);
      assert.equal(store.prefix, 'sess:');
      assert.equal(store.ttl, 86400);
      assert.equal(store.scanCount, 100);
      assert.equal(store.serializer, JSON);
      assert.equal(store.disableTouch, false);
      assert.equal(store.disableTTL, false);
    });

    test('v9 lifecycle: set, get, TTLs, touch, length, ids, all, destroy, clear, bulk, expiry', async () => {
      await lifecycleV9(make({ client }));
    });

    // --- v6 ---
    test('v6 defaults: a client is required; the defaults', () => {
      assert.throws(() => make(undefined as unknown as Record<string, unknown>));
      const store = make({ client });
      assert.equal(store.client, client, 'stores client');
      assert.equal(store.prefix, 'sess:', 'defaults to sess:');
      assert.equal(store.ttl, 86400, 'defaults to one day');
      assert.equal(store.scanCount, 100, 'defaults SCAN count to 100');
      assert.equal(store.serializer, JSON, 'defaults to JSON serialization');
      assert.equal(store.disableTouch, false, 'defaults to having `touch` enabled');
      assert.equal(store.disableTTL, false, 'defaults to having `ttl` enabled');
    });

    test('v6 lifecycle through the callback API', async () => {
      await lifecycleV6(make({ client }));
    });

    // --- v3 ---
    test('v3 constructor not callable as a function', () => {
      const Store = make({ client }).constructor as unknown as (options: object) => unknown;
      assert.throws(() => Store({ client }), TypeError);
    });

    test('v3 basic: a store with a ttl option runs the lifecycle', async () => {
      await lifecycleV3(make({ client, ttl: 10 }));
    });

    test('v3 existing client: the store uses the client it is given', async () => {
      const store = make({ client });
      assert.equal(store.client, client);
      await lifecycleV3(store);
    });

    test('v3 options: prefix, ttl, disableTTL, scanCount', async () => {
      const store = make({ client, prefix: 'tobi', ttl: 1000, disableTTL: true, scanCount: 32 });
      assert.equal(store.prefix, 'tobi', 'uses provided prefix');
      assert.equal(store.ttl, 1000, 'sets ttl');
      assert.equal(store.disableTTL, true, 'disableTTL enabled');
      assert.equal(store.scanCount, 32, 'sets scanCount');
      await lifecycleV3(store);
      await viaCallback(store, 'set', 'x', { name: 'tobi' });
      assert.equal(await client.get('tobix'), '{"name":"tobi"}', 'keys are prefix + id');
    });

    test('v3 ttl options: one day without a cookie expiry (maxAge undefined, null, absent)', async () => {
      const store = make({ client });
      for (const cookie of [{}, { maxAge: undefined }, { maxAge: null }]) {
        await viaCallback(store, 'set', '123', { cookie, name: 'tj' });
        const ttl = await client.ttl('sess:123');
        assert.ok(ttl > 86390 && ttl <= 86400, `${JSON.stringify(cookie)}: ttl ${ttl}`);
      }
    });

    test("v3 ttl options: the cookie's expiry sets the TTL", async () => {
      const store = make({ client, ttl: 500 });
      await viaCallback(store, 'set', '123', { cookie: { maxAge: 2000, expires: inSeconds(2) }, name: 'tj' });
      const ttl = await client.ttl('sess:123');
      assert.ok(ttl > 0 && ttl <= 2, `ttl ${ttl}`);
    });

    test('v3 ttl options: a custom ttl, without a cookie expiry', async () => {
      const store = make({ client, ttl: 10 });
      await viaCallback(store, 'set', '123', { cookie: { maxAge: null }, name: 'tj' });
      const ttl = await client.ttl('sess:123');
      assert.ok(ttl > 5 && ttl <= 10, `ttl ${ttl}`);
    });

    test('v3 ttl options: a ttl function of the session (v9 signature), over the cookie', async () => {
      const store = make({
        client,
        ttl: (sess: { cookie: { originalMaxAge: number } }) => sess.cookie.originalMaxAge / 1000 + 1,
      });
      await viaCallback(store, 'set', '123', {
        cookie: { originalMaxAge: 2000, expires: inSeconds(600) },
        name: 'tj',
      });
      const ttl = await client.ttl('sess:123');
      assert.ok(ttl > 0 && ttl <= 3, `ttl ${ttl}`);
    });

    test('v3 ttl options: disableTTL writes without expiry', async () => {
      const store = make({ client, disableTTL: true });
      await viaCallback(store, 'set', '123', { cookie: { maxAge: 2000, expires: inSeconds(2) }, name: 'tj' });
      assert.equal(await client.ttl('sess:123'), -1, 'no expiry');
      await lifecycleV3(store);
    });

    test('v3 interruptions: a store whose client cannot reach Redis reports the error', async () => {
      const dead = createClient({ url: 'redis://127.0.0.1:1' });
      dead.on('error', () => {});
      const store = make({ client: dead });
      await assert.rejects(viaCallback(store, 'set', '123', { cookie: { maxAge: 2000 }, name: 'tj' }));
      await assert.rejects(viaCallback(store, 'get', '123'));
    });

    test('v3 serializer: a custom serializer round-trips, and its text is what Redis keeps', async () => {
      const parsed: string[] = [];
      const serializer = {
        stringify: (...args: unknown[]) => `XXX${JSON.stringify(args[0])}`,
        parse: (x: string) => {
          parsed.push(x);
          assert.ok(x.startsWith('XXX'));
          return JSON.parse(x.substring(3));
        },
      };
      assert.equal(serializer.stringify('UnitTest'), 'XXX"UnitTest"');
      assert.equal(serializer.parse(serializer.stringify('UnitTest')), 'UnitTest');
      const store = make({ client, serializer });
      await lifecycleV3(store);
      await viaCallback(store, 'set', '9', { a: 1 });
      assert.equal(await client.get('sess:9'), 'XXX{"a":1}');
      assert.ok(parsed.length >= 3, 'parse was used');
    });

    test('v3 #touch(): touch resets the TTL from the cookie, without rewriting the data', async () => {
      const store = make({ client });
      const sess = { cookie: { maxAge: 2000, expires: inSeconds(2) }, name: 'tj' };
      await viaCallback(store, 'set', '123', sess);
      await client.set('sess:123', '{"name":"changed"}', { KEEPTTL: true });
      await viaCallback(store, 'touch', '123', { ...sess, cookie: { expires: inSeconds(300) } });
      const ttl = await client.ttl('sess:123');
      assert.ok(ttl > 290 && ttl <= 300, `ttl ${ttl}`);
      assert.equal(await client.get('sess:123'), '{"name":"changed"}', 'touch wrote nothing');
    });

    // --- what connect-redis's options promise, untested in its suite ---
    test('disableTouch: touch leaves the TTL alone', async () => {
      const store = make({ client, disableTouch: true });
      await store.set('1', { cookie: { expires: inSeconds(60) } });
      await store.touch('1', { cookie: { expires: inSeconds(600) } });
      assert.ok((await client.ttl('sess:1')) <= 60);
      assert.equal(store.disableTouch, true);
    });

    test('disableTTL: touch does nothing either', async () => {
      const store = make({ client, disableTTL: true });
      await store.set('1', { cookie: { expires: inSeconds(60) } });
      await store.touch('1', { cookie: { expires: inSeconds(600) } });
      assert.equal(await client.ttl('sess:1'), -1);
    });

    test('ttl function: used by touch too', async () => {
      const store = make({ client, ttl: () => 200 });
      await store.set('1', { cookie: { expires: inSeconds(60) } });
      assert.ok((await client.ttl('sess:1')) > 195);
      await client.expire('sess:1', 5);
      await store.touch('1', { cookie: { expires: inSeconds(60) } });
      assert.ok((await client.ttl('sess:1')) > 195);
    });

    test('ttl number: used only without a cookie expiry', async () => {
      const store = make({ client, ttl: 50 });
      await store.set('1', { cookie: { originalMaxAge: null } });
      const ttl = await client.ttl('sess:1');
      assert.ok(ttl > 45 && ttl <= 50, `ttl ${ttl}`);
    });

    test('get of a missing id: null, promise and callback', async () => {
      const store = make({ client });
      assert.equal(await store.get('nope'), null);
      assert.equal(await viaCallback(store, 'get', 'nope'), null);
    });

    test('serializer with an asynchronous parse', async () => {
      const serializer = { stringify: JSON.stringify, parse: async (text: string) => JSON.parse(text) };
      const store = make({ client, serializer });
      await store.set('1', { a: 1 });
      assert.deepEqual(await store.get('1'), { a: 1 });
      assert.deepEqual(await viaCallback(store, 'get', '1'), { a: 1 });
    });

    test('scanCount 1: listing still finds every session, batch by batch', async () => {
      const store = make({ client, scanCount: 1 });
      for (let i = 0; i < 25; i++) await store.set(`k${i}`, { i });
      assert.equal(await store.length(), 25);
      assert.equal(((await store.all()) as unknown[]).length, 25);
      await store.clear();
      assert.equal(await store.length(), 0);
    });

    test('listing and clear stay within the prefix', async () => {
      await client.set('other:1', 'not a session');
      const store = make({ client, prefix: 'app:' });
      await store.set('1', { a: 1 });
      assert.deepEqual(await store.ids(), ['1']);
      await store.clear();
      assert.equal(await client.get('other:1'), 'not a session');
    });
  });
}

// --- Fulcrum's own rules for these options ---

test('RedisStore: an unknown option is a TypeError naming it and the known ones', () => {
  assert.throws(
    () => new RedisStore({ client, tll: 50 } as never),
    (err: unknown) =>
      err instanceof TypeError &&
      /unknown option "tll"/.test(err.message) &&
      /known options: .*disableTTL.*scanCount.*ttl/.test(err.message),
  );
});

test("RedisStore: connect-redis 3's connection options are refused with what to use instead", () => {
  for (const name of ['host', 'port', 'socket', 'pass', 'db', 'unref']) {
    assert.throws(
      () => new RedisStore({ client, [name]: 1 } as never),
      (err: unknown) =>
        err instanceof TypeError && err.message.includes(`"${name}"`) && /url/.test(err.message),
    );
  }
  assert.throws(() => new RedisStore({ client, logErrors: true } as never), /logger/);
});

test('RedisStore: ttl and defaultTtlSeconds are one option; bad values are TypeErrors', () => {
  assert.equal(new RedisStore({ client, defaultTtlSeconds: 50, logger: quiet }).ttl, 50);
  assert.throws(() => new RedisStore({ client, ttl: 5, defaultTtlSeconds: 5 }), /same option/);
  assert.throws(() => new RedisStore({ client, ttl: 0 }), /"ttl" must be a positive number/);
  assert.throws(() => new RedisStore({ client, ttl: '60' as never }), /"ttl" must be a positive number/);
  assert.throws(() => new RedisStore({ client, scanCount: 0 }), /scanCount/);
  assert.throws(() => new RedisStore({ client, disableTTL: 'yes' as never }), /disableTTL/);
  assert.throws(() => new RedisStore({ client, url: redis.url }), /either "url" or "client"/);
});

test("RedisStore: store.ttl reads and sets connect-redis's ttl", async () => {
  const store = new RedisStore({ client, logger: quiet });
  store.ttl = 30;
  await store.set('t', { cookie: { originalMaxAge: null } });
  const ttl = await client.ttl('sess:t');
  assert.ok(ttl > 25 && ttl <= 30, `ttl ${ttl}`);
  store.ttl = () => 300;
  await store.set('t', { cookie: { expires: inSeconds(5) } });
  assert.ok((await client.ttl('sess:t')) > 295);
});

test('RedisStore: a prefix with glob characters lists only its own keys', async () => {
  const store = new RedisStore({ client, prefix: 'a*[b]:', logger: quiet });
  await client.set('aXb:1', '{}');
  await client.set('ab:2', '{}');
  await store.set('3', { n: 3 });
  assert.deepEqual(await store.ids(), ['3']);
  await store.clear();
  assert.equal(await client.exists(['aXb:1', 'ab:2']), 2);
});

test("RedisStore on your client: your client's options are left as they are", async () => {
  const own = createClient({ url: redis.url, commandOptions: { timeout: 4000 } });
  await own.connect();
  try {
    const store = new RedisStore({ client: own, logger: quiet });
    assert.equal(store.client, own);
    await store.set('c', { n: 1 });
    assert.deepEqual(await store.get('c'), { n: 1 });
    assert.equal(own.options?.commandOptions?.timeout, 4000);
  } finally {
    await own.close();
  }
});
