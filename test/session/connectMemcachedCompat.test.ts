/**
 * connect-memcached's own test cases, ported and run against Fulcrum's MemcachedStore, with the
 * options an app moving from connect-memcached passes:
 *
 * - v2 (test/test.js with test/services/*): an Express app on express-session counting page
 *   views, 49 requests through one browser, plain (`hosts`, `prefix`), encrypted (`secret`), and
 *   encrypted on a client the app made itself (`client`: a memjs client here, since Fulcrum talks
 *   to memcached through memjs, not node-memcached).
 * - 0.x (the original test script): set, get, set again, destroy through the callback API, and
 *   an exception thrown by the application inside a callback is not swallowed by the store.
 *
 * Then connect-memcached's `ttl` (every write takes it, whatever the cookie says), its
 * default-less `prefix`, `touch`, the options refused with a reason, and the encryption.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import express from 'express';
import session from 'express-session';
import memjs from 'memjs';
import { MemcachedStore, sealedSerializer } from '../../src/session/index.js';
import { startMemcached } from '../helpers/memcachedServer.js';
import { Browser } from './browser.js';

declare module 'express-session' {
  interface SessionData {
    views: number;
  }
}

const quiet = { warn: () => {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const memcached = await startMemcached();
const raw = memjs.Client.create(memcached.address, { retries: 1, timeout: 1, logger: { log: () => {} } });
after(async () => {
  raw.close();
  await memcached.stop();
});

/** connect-memcached's test/services app: page views counted in the session. */
async function pageViewsApp(
  store: MemcachedStore,
  key: string,
): Promise<{ port: number; close(): Promise<void> }> {
  const app = express();
  app.use(
    session({
      secret: 'TestSecret',
      name: key,
      proxy: true,
      resave: false,
      saveUninitialized: false,
      store,
    }),
  );
  app.get('/', (req, res) => {
    if (req.session.views) ++req.session.views;
    else req.session.views = 1;
    res.json({ pageviews: req.session.views });
  });
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

/** v2's case: GET / should increment views value at each request. */
async function incrementsViews(port: number): Promise<void> {
  const agent = new Browser(port);
  let lastPageView = 0;
  for (let i = 1; i < 50; i++) {
    const res = await agent.get('/');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /json/);
    const { pageviews } = res.json<{ pageviews: number }>();
    assert.ok(pageviews > lastPageView, `${pageviews} after ${lastPageView}`);
    lastPageView = pageviews;
  }
  assert.equal(lastPageView, 49);
}

/** The id express-session put in a browser's cookie (`s:<id>.<signature>`, URL-encoded). */
function sessionId(browser: Browser, name: string): string {
  const value = decodeURIComponent(browser.cookie(name) ?? '');
  return value.slice(2, value.lastIndexOf('.'));
}

describe('connect-memcached v2', () => {
  test('plain memcached session store: GET / increments views at each request', async () => {
    const store = new MemcachedStore({ hosts: [memcached.address], prefix: 'testapp_', logger: quiet });
    const app = await pageViewsApp(store, 'test');
    try {
      await incrementsViews(app.port);
      const browser = new Browser(app.port);
      await browser.get('/');
      const { value } = await raw.get(`testapp_${sessionId(browser, 'test')}`);
      assert.match(String(value), /"views":1/, 'stored under prefix + id, as JSON');
    } finally {
      await app.close();
      await store.close();
    }
  });

  test('encrypted memcached session store: GET / increments views; memcached holds ciphertext', async () => {
    const store = new MemcachedStore({
      hosts: [memcached.address],
      secret: 'Hello there stranger!',
      prefix: 'testapp_encrypt_',
      logger: quiet,
    });
    const app = await pageViewsApp(store, 'test_encrypt');
    try {
      await incrementsViews(app.port);
      const browser = new Browser(app.port);
      await browser.get('/');
      const { value } = await raw.get(`testapp_encrypt_${sessionId(browser, 'test_encrypt')}`);
      assert.ok(value, 'stored');
      assert.doesNotMatch(String(value), /views|cookie/, 'nothing readable');
    } finally {
      await app.close();
      await store.close();
    }
  });

  test('encrypted session store using a preexisting memcached client', async () => {
    const client = memjs.Client.create(memcached.address, { logger: { log: () => {} } });
    const store = new MemcachedStore({
      client,
      prefix: 'testapp_encrypt_',
      secret: 'Hello there stranger!',
      logger: quiet,
    });
    const app = await pageViewsApp(store, 'test_encrypt');
    try {
      await incrementsViews(app.port);
    } finally {
      await app.close();
      await store.close();
      // The store leaves a client it was given open: the app still uses it.
      await client.set('still-open', 'yes', {});
      client.close();
    }
  });
});

describe('connect-memcached 0.x', () => {
  test('#set(), #get(), #set() again, #destroy() through the callbacks', async () => {
    const store = new MemcachedStore({ hosts: memcached.address, logger: quiet });
    const call = <T>(fn: (cb: (err: unknown, value?: T) => void) => void) =>
      new Promise<T | undefined>((resolve, reject) =>
        fn((err, value) => (err ? reject(err) : resolve(value))),
      );
    try {
      await call((cb) => store.set('123', { cookie: { maxAge: 2000 }, name: 'tj' }, cb));
      assert.deepEqual(await call((cb) => store.get('123', cb)), { cookie: { maxAge: 2000 }, name: 'tj' });
      await call((cb) => store.set('123', { cookie: { maxAge: 2000 }, name: 'tj' }, cb));
      await call((cb) => store.destroy('123', cb));
      assert.equal(await call((cb) => store.get('123', cb)), null);
    } finally {
      await store.close();
    }
  });

  test("an error thrown in the application's callback is not swallowed, nor passed back to it", async () => {
    const store = new MemcachedStore({ hosts: memcached.address, logger: quiet });
    // The runner's own listeners would count the (expected) uncaught exception as a failure.
    const runners = process.rawListeners('uncaughtException') as Array<(err: Error) => void>;
    process.removeAllListeners('uncaughtException');
    try {
      await store.set('123', { name: 'tj' }, 60);
      let calls = 0;
      const uncaught = new Promise<Error>((resolve) => process.once('uncaughtException', resolve));
      store.get('123', () => {
        calls++;
        throw new Error('Error in fn');
      });
      assert.equal((await uncaught).message, 'Error in fn');
      await sleep(50);
      assert.equal(calls, 1, 'the callback ran once');
    } finally {
      for (const listener of runners) process.on('uncaughtException', listener);
      await store.close();
    }
  });
});

describe("connect-memcached's options on MemcachedStore", () => {
  test('ttl: every write takes it, whatever the cookie says', async () => {
    const store = new MemcachedStore({ hosts: memcached.address, ttl: 1, logger: quiet });
    try {
      assert.equal(store.ttl, 1);
      // The callback form, waited for: a loaded machine may take longer than a fixed pause.
      await new Promise<void>((resolve, reject) =>
        store.set('t', { cookie: { maxAge: 60_000, expires: new Date(Date.now() + 60_000) }, n: 1 }, (err) =>
          err ? reject(err) : resolve(),
        ),
      );
      assert.deepEqual((await store.get('t'))?.n, 1);
      await sleep(2600); // memcached counts expiry in whole seconds
      assert.equal(await store.get('t'), null, 'expired after ttl, not after the cookie');
    } finally {
      await store.close();
    }
  });

  test('touch: extends the session through express-session, as connect-memcached (v2) does', async () => {
    const store = new MemcachedStore({ hosts: memcached.address, logger: quiet });
    try {
      const soon = { cookie: { expires: new Date(Date.now() + 1000) }, n: 1 };
      await store.set('touched', soon);
      await new Promise<void>((resolve, reject) =>
        store.touch('touched', { cookie: { expires: new Date(Date.now() + 60_000) } }, (err) =>
          err ? reject(err) : resolve(),
        ),
      );
      await sleep(2600);
      assert.deepEqual((await store.get('touched'))?.n, 1);
    } finally {
      await store.close();
    }
  });

  test('prefix: given as connect-memcached takes it, also the empty prefix', async () => {
    const store = new MemcachedStore({ hosts: memcached.address, prefix: '', logger: quiet });
    try {
      await store.set('bare-id', { n: 1 }, 60);
      assert.match(String((await raw.get('bare-id')).value), /"n":1/);
    } finally {
      await store.close();
    }
  });

  test('hosts: a string, a comma-separated string, a list; servers and hosts together refused', () => {
    for (const hosts of [memcached.address, `${memcached.address},127.0.0.1:1`, [memcached.address]]) {
      void new MemcachedStore({ hosts, logger: quiet }).close();
    }
    assert.throws(
      () => new MemcachedStore({ hosts: memcached.address, servers: memcached.address }),
      /same option/,
    );
    assert.throws(
      () => new MemcachedStore({ hosts: { [memcached.address]: 1 } as never }),
      /weighted servers are not supported/,
    );
  });

  test("node-memcached's options that have no place with memjs are refused, with the reason", () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['poolSize', 10, /one connection per server/],
      ['retries', 5, /one connection per server/],
      ['failOverServers', ['127.0.0.1:1'], /no failover/],
      ['remove', true, /no failover/],
      ['maxValue', 1_048_576, /no memjs counterpart/],
      ['hashing', 'sha512', /authenticates/],
    ];
    for (const [name, value, why] of cases) {
      assert.throws(
        () => new MemcachedStore({ hosts: memcached.address, [name]: value } as never),
        (err: unknown) =>
          err instanceof TypeError && err.message.includes(`"${name}"`) && why.test(err.message),
        name,
      );
    }
    assert.throws(
      () => new MemcachedStore({ hosts: memcached.address, secret: 's', algorithm: 'aes-256-ctr' }),
      /aes-256-gcm/,
    );
    assert.throws(
      () => new MemcachedStore({ hosts: memcached.address, ttll: 5 } as never),
      /unknown option "ttll"; known options: .*hosts.*secret.*ttl/,
    );
    assert.throws(() => new MemcachedStore({ client: {} as never }), /memjs client/);
  });

  test('timeout and retry: node-memcached names for operationTimeoutMs and probeIntervalMs', () => {
    assert.throws(
      () => new MemcachedStore({ hosts: memcached.address, timeout: 500, operationTimeoutMs: 500 }),
      /same option/,
    );
    assert.throws(
      () => new MemcachedStore({ hosts: memcached.address, retry: 500, probeIntervalMs: 500 }),
      /same option/,
    );
    assert.throws(() => new MemcachedStore({ hosts: memcached.address, timeout: 0 }), /positive number/);
    void new MemcachedStore({ hosts: memcached.address, timeout: 500, retry: 200, logger: quiet }).close();
  });

  test('what connect-memcached has and MemcachedStore deliberately has not: length, clear', () => {
    // connect-memcached's length() answered memcached's item statistics, not a count of
    // sessions, and clear() flushed the whole server (every key of every application):
    // memcached cannot list keys by prefix, so neither has an honest equivalent.
    const store = new MemcachedStore({ hosts: memcached.address, logger: quiet });
    assert.equal((store as unknown as { length?: unknown }).length, undefined);
    assert.equal((store as unknown as { clear?: unknown }).clear, undefined);
    void store.close();
  });
});

describe('secret: sessions sealed with AES-256-GCM', () => {
  test('another secret, or altered data, reads as no session (logged)', async () => {
    const lines: string[] = [];
    const logger = { warn: (m: string) => lines.push(m) };
    const a = new MemcachedStore({ hosts: memcached.address, secret: 'one', logger });
    const b = new MemcachedStore({ hosts: memcached.address, secret: 'two', logger });
    try {
      await a.set('sealed', { user: 'ada' }, 60);
      assert.deepEqual(await a.get('sealed'), { user: 'ada' });
      assert.equal(await b.get('sealed'), null);
      const text = String((await raw.get('sess:sealed')).value);
      const flipped = `${text.slice(0, -2)}${text.endsWith('AA') ? 'AB' : 'AA'}`;
      await raw.set('sess:sealed', flipped, { expires: 60 });
      assert.equal(await a.get('sealed'), null);
      assert.equal(lines.filter((l) => l.includes('corrupt data')).length, 2, lines.join('\n'));
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('a list of secrets rotates: the first seals, any opens', async () => {
    const old = new MemcachedStore({ hosts: memcached.address, secret: 'old', logger: quiet });
    const rotated = new MemcachedStore({ hosts: memcached.address, secret: ['new', 'old'], logger: quiet });
    try {
      await old.set('r', { n: 1 }, 60);
      assert.deepEqual(await rotated.get('r'), { n: 1 });
      await rotated.set('r', { n: 2 }, 60);
      assert.equal(await old.get('r'), null, 'sealed with the new secret now');
      // The serializer on its own, for any store.
      const sealed = sealedSerializer('k');
      assert.deepEqual(sealed.parse(sealed.stringify({ a: 1 })), { a: 1 });
      assert.throws(() => sealedSerializer(''), TypeError);
    } finally {
      await old.close();
      await rotated.close();
    }
  });
});
