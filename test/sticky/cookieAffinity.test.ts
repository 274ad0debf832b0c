import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InsertCookieAffinity, LearnCookieAffinity, refreshAfter } from '../../src/sticky/cookieAffinity.js';
import { MemoryStickTable } from '../../src/sticky/memoryStickTable.js';
import { keyring, serverToken } from '../../src/sticky/serverToken.js';
import { cookiePair, testPool } from './fixtures.js';

const ring = keyring('a-secret-of-16-characters');
const IP = '192.0.2.1';

function insert(ids = ['a', 'b', 'c'], o: { ttl?: number; idle?: number } = {}) {
  const pool = testPool(ids);
  const aff = new InsertCookieAffinity(pool, { cookie: 'fulcrum_srv', ttl: o.ttl, idle: o.idle }, ring);
  return { pool, aff };
}

test('insert: a cookie naming the server by its token, HttpOnly, SameSite=Lax, Secure on TLS', () => {
  const { pool, aff } = insert();
  const b = pool.find('b')!;
  const line = aff.onResponse(IP, b, undefined, [], false);
  assert.equal(
    line,
    `set-cookie: fulcrum_srv=${serverToken(ring, 'web', 'b')}; Path=/; HttpOnly; SameSite=Lax\r\n`,
  );
  assert.ok(!line.includes('10.0.0') && !/=b;/.test(line), 'neither address nor name');
  assert.match(aff.onResponse(IP, b, undefined, [], true), /; Secure\r\n$/);
  assert.equal(aff.pinned(IP, `other=1; ${cookiePair(line)}`), b);
});

test('insert: the cookie is sent only when needed', () => {
  const { pool, aff } = insert();
  const [a, b] = [pool.find('a')!, pool.find('b')!];
  const cookie = cookiePair(aff.onResponse(IP, a, undefined, [], false));
  assert.equal(aff.pinned(IP, cookie), a);
  assert.equal(aff.onResponse(IP, a, a, [], false), '', 'kept on its server: nothing to send');
  const moved = aff.onResponse(IP, b, a, [], false);
  assert.equal(cookiePair(moved), `fulcrum_srv=${serverToken(ring, 'web', 'b')}`, 'reassigned: rewritten');
});

test('insert: forged, stale and foreign cookies are ignored, never an error', () => {
  const { pool, aff } = insert(['a', 'b']);
  const cases = [
    'fulcrum_srv=',
    'fulcrum_srv=a',
    'fulcrum_srv=0',
    'fulcrum_srv=10.0.0.1:80',
    'fulcrum_srv=AAAAAAAAAAAAAAAA',
    `fulcrum_srv=${serverToken(keyring('some-other-secret-0000'), 'web', 'a')}`,
    `fulcrum_srv=${serverToken(ring, 'api', 'a')}`,
    `fulcrum_srv=${serverToken(ring, 'web', 'gone')}`,
    'fulcrum_srv=%00%ff"\u00e9',
    `fulcrum_srv=${'x'.repeat(5000)}`,
  ];
  for (const c of cases) assert.equal(aff.pinned(IP, c), undefined, c);
  assert.equal(aff.pinned(IP, null), undefined);
  const good = `fulcrum_srv=${serverToken(ring, 'web', 'b')}`;
  assert.equal(aff.pinned(IP, `fulcrum_srv=junk; ${good}`), pool.find('b'), 'the valid one of two');
  // A server removed from the pool: its cookie is stale.
  pool.setServers(pool.servers.filter((s) => s.id !== 'b'));
  assert.equal(aff.pinned(IP, good), undefined);
});

test('insert with ttl: Max-Age, creation time kept, expired cookies ignored', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_700_000_000_000 });
  const { pool, aff } = insert(['a', 'b'], { ttl: 60_000 });
  const a = pool.find('a')!;
  const line = aff.onResponse(IP, a, undefined, [], false);
  assert.match(line, /; Max-Age=60\r\n$/);
  const cookie = cookiePair(line);
  assert.match(cookie, /^fulcrum_srv=[A-Za-z0-9_-]{16}\.[0-9a-z]+\.[0-9a-z]+$/);
  t.mock.timers.tick(59_000);
  assert.equal(aff.pinned(IP, cookie), a);
  assert.equal(aff.onResponse(IP, a, a, [], false), '', 'no idle: nothing to refresh');
  t.mock.timers.tick(1_000);
  assert.equal(aff.pinned(IP, cookie), undefined, 'past ttl');
});

test('insert with idle: refreshed once due, keeps its creation time, ignored once idle too long', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_700_000_000_000 });
  const idle = 80_000;
  const { pool, aff } = insert(['a', 'b'], { idle, ttl: 3_600_000 });
  const a = pool.find('a')!;
  let cookie = cookiePair(aff.onResponse(IP, a, undefined, [], false));
  const created = cookie.split('.')[1];
  t.mock.timers.tick(refreshAfter(idle) - 1);
  assert.equal(aff.pinned(IP, cookie), a);
  assert.equal(aff.onResponse(IP, a, a, [], false), '', 'not due yet');
  t.mock.timers.tick(1);
  assert.equal(aff.pinned(IP, cookie), a);
  const refreshed = aff.onResponse(IP, a, a, [], false);
  assert.notEqual(refreshed, '', 'due: refreshed');
  assert.match(refreshed, /; Max-Age=3590\r\n$/, 'Max-Age counts from creation');
  cookie = cookiePair(refreshed);
  assert.equal(cookie.split('.')[1], created);
  assert.equal(aff.pendingRefreshes, 0);
  t.mock.timers.tick(idle - 1);
  assert.equal(aff.pinned(IP, cookie), a);
  aff.onResponse(IP, a, a, [], false);
  t.mock.timers.tick(idle);
  assert.equal(aff.pinned(IP, cookie), undefined, 'idle too long');
  const forged = `fulcrum_srv=${serverToken(ring, 'web', 'a')}.${(Date.now() + 3_600_000).toString(36)}.${Date.now().toString(36)}`;
  assert.equal(aff.pinned(IP, forged), undefined, 'created in the future');
  assert.equal(
    aff.pinned(IP, `fulcrum_srv=${serverToken(ring, 'web', 'a')}.zz`),
    undefined,
    'malformed times',
  );
});

test('insert: a cookie from before ttl/idle were configured is kept and given its times', () => {
  const { pool, aff } = insert(['a'], { idle: 60_000 });
  const a = pool.find('a')!;
  assert.equal(aff.pinned(IP, `fulcrum_srv=${serverToken(ring, 'web', 'a')}`), a);
  assert.match(aff.onResponse(IP, a, a, [], false), /^set-cookie: fulcrum_srv=[^.;]+\.[0-9a-z]+\.[0-9a-z]+;/);
});

function learn(ids = ['a', 'b', 'c']) {
  const pool = testPool(ids);
  const table = new MemoryStickTable({ ttl: undefined, idle: 60_000, maxEntries: 100 });
  return { pool, table, aff: new LearnCookieAffinity(pool, 'JSESSIONID', ring, table) };
}

test('learn: a session cookie set by a server pins that session to it; the table holds no session id', () => {
  const { pool, table, aff } = learn();
  const b = pool.find('b')!;
  assert.equal(aff.pinned(IP, 'JSESSIONID=s1'), undefined, 'unknown session');
  assert.equal(aff.onResponse(IP, b, undefined, ['JSESSIONID=s1; Path=/; HttpOnly', 'other=x'], false), '');
  assert.equal(aff.pinned(IP, 'x=1; JSESSIONID=s1'), b);
  assert.equal(aff.pinned('198.51.100.7', 'JSESSIONID=s1'), b, 'the session, from any address');
  assert.equal(aff.pinned(IP, 'JSESSIONID=s2'), undefined);
  assert.equal(table.size, 1);
  assert.equal(table.peek('s1'), undefined, 'keyed by a hash, not the id');
  aff.onResponse(IP, b, b, ['JSESSIONID=s1; Max-Age=0'], false);
  assert.equal(aff.pinned(IP, 'JSESSIONID=s1'), undefined, 'deleted by the application');
});

test('learn: a session whose server is down moves with the request, once', () => {
  const { pool, aff } = learn();
  const [a, c] = [pool.find('a')!, pool.find('c')!];
  aff.onResponse(IP, a, undefined, ['JSESSIONID=s1'], false);
  pool.setState(a, 'down', 'test');
  assert.equal(aff.pinned(IP, 'JSESSIONID=s1'), a, 'still pinned: the proxy counts the reassignment');
  aff.onResponse(IP, c, a, [], false);
  assert.equal(aff.pinned(IP, 'JSESSIONID=s1'), c, 'moved to where it went');
  pool.setState(a, 'up', 'test');
  assert.equal(aff.pinned(IP, 'JSESSIONID=s1'), c, 'and stays there when a is back');
});
