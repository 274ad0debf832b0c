import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { RedisStore, unsignCookie } from '../../src/session/index.js';
import { startRedis } from '../helpers/redisServer.js';
import { Browser } from './browser.js';
import { CountingStore, startSessionApp } from './sessionApp.js';

const quiet = { warn: () => {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cookieSignature = createRequire(import.meta.url)('cookie-signature') as {
  sign(value: string, secret: string): string;
  unsign(value: string, secret: string): string | false;
};

/** The session id a browser holds, verified with `secrets`. */
function heldId(browser: Browser, secrets: string[]): string | undefined {
  const raw = browser.cookie('fulcrum.sid');
  return raw === undefined ? undefined : unsignCookie(decodeURIComponent(raw), secrets)?.value;
}

test('node:http: a session counts requests; the cookie is signed like express-session does', async () => {
  const store = new CountingStore();
  const app = await startSessionApp({ secret: 'k1', store });
  try {
    const browser = new Browser(app.port);
    const first = await browser.get('/count');
    assert.equal(first.json().count, 1);
    const [setCookie] = first.setCookies;
    assert.match(
      setCookie ?? '',
      /^fulcrum\.sid=s%3A[A-Za-z0-9_-]{32}\.[^;]+; Path=\/; Expires=[^;]+; Max-Age=86400; HttpOnly; SameSite=Lax$/,
    );
    const value = decodeURIComponent(browser.cookie('fulcrum.sid')!);
    assert.equal(
      cookieSignature.unsign(value.slice(2), 'k1'),
      first.json().id,
      'cookie-signature verifies it',
    );
    for (let n = 2; n <= 5; n++) assert.equal((await browser.get('/count')).json().count, n);
    assert.equal(store.size, 1);
    // Another browser has its own session.
    assert.equal((await new Browser(app.port).get('/count')).json().count, 1);
  } finally {
    await app.close();
    await store.close();
  }
});

test('node:http: a cookie signed by express-session (cookie-signature) is accepted', async () => {
  const store = new CountingStore();
  const app = await startSessionApp({ secret: 'shared', store });
  try {
    await store.set('legacy-id-from-express-session', { count: 41, cookie: { originalMaxAge: 1000 } }, 60);
    const browser = new Browser(app.port);
    browser.cookies.set(
      'fulcrum.sid',
      encodeURIComponent(`s:${cookieSignature.sign('legacy-id-from-express-session', 'shared')}`),
    );
    assert.equal((await browser.get('/count')).json().count, 42);
  } finally {
    await app.close();
    await store.close();
  }
});

test('node:http: a tampered or unsigned cookie gets a fresh session, never the offered id', async () => {
  const store = new CountingStore();
  const app = await startSessionApp({ secret: 'k1', store });
  try {
    const victim = new Browser(app.port);
    const { id } = (await victim.get('/count')).json<{ id: string }>();
    for (const forged of [`s:${id}.AAAA`, id, `s:${id}`, `s:${id}.${'A'.repeat(43)}`, 's:.x', '']) {
      const attacker = new Browser(app.port);
      attacker.cookies.set('fulcrum.sid', encodeURIComponent(forged));
      const reply = (await attacker.get('/count')).json<{ id: string; count: number }>();
      assert.equal(reply.count, 1, `forged cookie ${forged} got someone's session`);
      assert.notEqual(reply.id, id);
    }
    assert.equal((await victim.get('/count')).json().count, 2);
  } finally {
    await app.close();
    await store.close();
  }
});

test('node:http: secrets rotate: old cookies stay valid and are re-signed with the new secret', async () => {
  const store = new CountingStore();
  const before = await startSessionApp({ secret: 'old', store });
  const during = await startSessionApp({ secret: ['new', 'old'], store });
  const after = await startSessionApp({ secret: ['new'], store });
  try {
    const browser = new Browser(before.port);
    await browser.get('/count');
    const id = heldId(browser, ['old']);
    browser.port = during.port;
    const reply = await browser.get('/count');
    assert.equal(reply.json().count, 2, 'accepted under the old secret');
    assert.equal(heldId(browser, ['new']), id, 're-signed with the new secret, same session');
    browser.port = after.port;
    assert.equal(
      (await browser.get('/count')).json().count,
      3,
      'the re-signed cookie outlives the old secret',
    );
    const stale = new Browser(after.port);
    stale.cookies.set('fulcrum.sid', encodeURIComponent(`s:${cookieSignature.sign(id!, 'old')}`));
    assert.equal((await stale.get('/count')).json().count, 1, 'once retired, the old secret is refused');
  } finally {
    await Promise.all([before.close(), during.close(), after.close()]);
    await store.close();
  }
});

test('node:http: saved only when changed, touched otherwise; nothing for an untouched new session', async () => {
  const store = new CountingStore();
  const app = await startSessionApp({ secret: 'k', store, cookie: { maxAge: 10 * 60_000 } });
  try {
    const browser = new Browser(app.port);
    const noop = await browser.get('/noop');
    assert.deepEqual(noop.setCookies, [], 'no cookie for a session nobody used');
    assert.equal(store.writes + store.touches, 0);
    await browser.get('/count');
    assert.deepEqual([store.writes, store.touches], [1, 0]);
    assert.equal(store.lastTtl, 600, 'cookie.maxAge is the store TTL');
    await browser.get('/read');
    await browser.get('/noop');
    assert.deepEqual([store.writes, store.touches], [1, 2], 'unchanged: touched, not rewritten');
    await browser.get('/count');
    assert.deepEqual([store.writes, store.touches], [2, 2]);
  } finally {
    await app.close();
    await store.close();
  }
});

test('node:http: rolling expiry keeps an active session alive; fixed expiry ends it anyway', async () => {
  const rollingStore = new CountingStore();
  const fixedStore = new CountingStore();
  const rolling = await startSessionApp({ secret: 'k', store: rollingStore, cookie: { maxAge: 1500 } });
  const fixed = await startSessionApp({
    secret: 'k',
    store: fixedStore,
    cookie: { maxAge: 1500 },
    expiry: 'fixed',
  });
  try {
    const r = new Browser(rolling.port);
    const f = new Browser(fixed.port);
    await r.get('/count');
    const created = await f.get('/count');
    const fixedCookie = created.setCookies[0];
    let lastRolling = 0;
    let lastFixed = 0;
    for (let i = 0; i < 5; i++) {
      await sleep(600); // 3 s in all, twice maxAge
      lastRolling = (await r.get('/read')).json<{ count: number }>().count;
      const reply = await f.get('/read');
      lastFixed = reply.json<{ count: number | null }>().count ?? 0;
      if (i === 0) assert.deepEqual(reply.setCookies, [], 'fixed: the cookie is not sent again');
    }
    assert.equal(lastRolling, 1, 'rolling: still the same session');
    assert.equal(lastFixed, 0, 'fixed: the session ended 1.5 s after it began');
    assert.equal(fixedStore.touches, 0, 'fixed: never touched');
    assert.ok(rollingStore.touches >= 5);
    assert.match(fixedCookie ?? '', /Max-Age=(1|2);/);
  } finally {
    await Promise.all([rolling.close(), fixed.close()]);
    await Promise.all([rollingStore.close(), fixedStore.close()]);
  }
});

test('node:http: regenerate() moves the session to a new id and deletes the old one', async () => {
  const store = new CountingStore();
  const app = await startSessionApp({ secret: 'k', store });
  try {
    const browser = new Browser(app.port);
    const { id: before } = (await browser.get('/count')).json<{ id: string }>();
    const planted = browser.cookie('fulcrum.sid')!;
    const { id: after } = (await browser.post('/login')).json<{ id: string }>();
    assert.notEqual(after, before);
    assert.equal(heldId(browser, ['k']), after);
    assert.equal(await store.get(before), null, 'the old id is gone from the store');
    assert.equal((await browser.get('/whoami')).json().user, 'ada');
    // Whoever kept the pre-login cookie (fixation) does not get the logged-in session.
    const attacker = new Browser(app.port);
    attacker.cookies.set('fulcrum.sid', planted);
    assert.equal((await attacker.get('/whoami')).json().user, null);
  } finally {
    await app.close();
    await store.close();
  }
});

test('node:http: destroy() deletes the session and clears the cookie', async () => {
  const store = new CountingStore();
  const app = await startSessionApp({ secret: 'k', store });
  try {
    const browser = new Browser(app.port);
    const { id } = (await browser.get('/count')).json<{ id: string }>();
    const reply = await browser.get('/logout');
    assert.match(
      reply.setCookies[0] ?? '',
      /^fulcrum\.sid=; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0/,
    );
    assert.equal(browser.cookie('fulcrum.sid'), undefined);
    assert.equal(await store.get(id), null);
    assert.equal(store.size, 0);
    assert.equal((await browser.get('/count')).json().count, 1);
  } finally {
    await app.close();
    await store.close();
  }
});

test('node:http: writeHead with a reason and raw headers keeps them all, plus the cookie', async () => {
  const store = new CountingStore();
  const app = await startSessionApp({ secret: 'k', store });
  try {
    const reply = await new Browser(app.port).get('/raw-headers');
    assert.equal(reply.status, 201);
    assert.equal(reply.headers['x-a'], '1');
    assert.equal(reply.headers['x-b'], '2');
    assert.equal(reply.setCookies.length, 1);
    assert.equal(store.writes, 1);
  } finally {
    await app.close();
    await store.close();
  }
});

test('node:http: a logout is final even while another request of the session is in flight', async () => {
  const store = new CountingStore();
  let release: () => void = () => {};
  const inFlight = new Promise<void>((resolve) => {
    release = resolve;
  });
  let reading: () => void = () => {};
  const started = new Promise<void>((resolve) => {
    reading = resolve;
  });
  const app = await startSessionApp(
    { secret: 'k', store },
    {
      duringRead: () => {
        reading();
        return inFlight;
      },
    },
  );
  try {
    const tabA = new Browser(app.port);
    const { id } = (await tabA.get('/count')).json<{ id: string }>();
    const tabB = new Browser(app.port);
    tabB.cookies.set('fulcrum.sid', tabA.cookie('fulcrum.sid')!);
    const slow = tabA.get('/slow-read'); // loads the session, then waits
    await started;
    await tabB.get('/logout');
    release();
    assert.equal((await slow).json().count, 1);
    assert.equal(await store.get(id), null, 'the slow request did not bring the session back');
  } finally {
    await app.close();
    await store.close();
  }
});

test('node:http: a streamed response gets its cookie with the headers and is saved at the end', async () => {
  const store = new CountingStore();
  const app = await startSessionApp({ secret: 'k', store });
  try {
    const browser = new Browser(app.port);
    const reply = await browser.get('/stream');
    assert.equal(reply.body, 'part one;part two');
    assert.equal(reply.setCookies.length, 1);
    assert.equal((await browser.get('/count')).json().count, 1);
    assert.equal(store.writes, 2);
  } finally {
    await app.close();
    await store.close();
  }
});

test('node:http: an unreachable store answers 503 with a clear body, and recovers by itself', async () => {
  const redis = await startRedis();
  const store = new RedisStore({ url: redis.url, logger: quiet });
  const app = await startSessionApp({ secret: 'k', store, logger: quiet });
  try {
    await store.ready(3000);
    const browser = new Browser(app.port);
    assert.equal((await browser.get('/count')).json().count, 1);
    await redis.stop('SIGKILL');
    const started = performance.now();
    const down = await browser.get('/count');
    assert.ok(performance.now() - started < 1000, 'the 503 comes promptly');
    assert.equal(down.status, 503);
    assert.equal(down.headers['retry-after'], '1');
    assert.match(String(down.headers['content-type']), /application\/json/);
    assert.equal(down.json().error, 'session_store_unavailable');
    await redis.restart();
    await store.ready(5000);
    const back = await browser.get('/count');
    assert.equal(back.status, 200);
    assert.equal(back.json().count, 1, 'a new Redis without persistence starts sessions over');
  } finally {
    await app.close();
    await store.close();
    await redis.stop();
  }
});

test('node:http: the store failing while the request runs still gets the 503, not a lost write', async () => {
  const redis = await startRedis();
  const store = new RedisStore({ url: redis.url, logger: quiet });
  let killDuringRequest = false;
  const app = await startSessionApp(
    {
      secret: 'k',
      store,
      logger: quiet,
      unavailable: { status: 500, body: 'sessions are down', retryAfterSeconds: 0 },
    },
    {
      beforeChange: async () => {
        if (killDuringRequest) await redis.stop('SIGKILL');
      },
    },
  );
  try {
    await store.ready(3000);
    const browser = new Browser(app.port);
    await browser.get('/count');
    killDuringRequest = true;
    const reply = await browser.get('/count');
    assert.equal(reply.status, 500, 'the configured status');
    assert.equal(reply.body, 'sessions are down');
    assert.equal(reply.headers['retry-after'], undefined);
    assert.deepEqual(reply.setCookies, []);
    // Also when the handler wrote its head explicitly: the head is held until the save is done.
    await redis.restart();
    await store.ready(5000);
    killDuringRequest = false;
    await browser.get('/count-writehead');
    killDuringRequest = true;
    const explicit = await browser.get('/count-writehead');
    assert.equal(explicit.status, 500);
    assert.equal(explicit.body, 'sessions are down');
  } finally {
    await app.close();
    await store.close();
    await redis.stop();
  }
});
