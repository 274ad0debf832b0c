import assert from 'node:assert/strict';
import { test } from 'node:test';
import { keyring, serverToken, sessionKey, TokenMap } from '../../src/sticky/serverToken.js';

const ring = keyring('0123456789abcdef-secret');

test('a server token is stable, opaque, 16 base64url characters, and depends on secret, pool and server', () => {
  const t = serverToken(ring, 'web', '10.0.0.5:8080');
  assert.match(t, /^[A-Za-z0-9_-]{16}$/);
  assert.equal(
    serverToken(keyring('0123456789abcdef-secret'), 'web', '10.0.0.5:8080'),
    t,
    'same in another process',
  );
  assert.ok(!t.includes('10') || !t.includes('8080'));
  assert.notEqual(serverToken(ring, 'web', '10.0.0.6:8080'), t);
  assert.notEqual(serverToken(ring, 'api', '10.0.0.5:8080'), t);
  assert.notEqual(serverToken(keyring('another-secret-0123456'), 'web', '10.0.0.5:8080'), t);
});

test('without a secret the key is derived: the same everywhere, and flagged', () => {
  const a = keyring(undefined);
  assert.equal(a.derived, true);
  assert.equal(serverToken(a, 'web', 'a'), serverToken(keyring(undefined), 'web', 'a'));
  assert.notEqual(serverToken(a, 'web', 'a'), serverToken(ring, 'web', 'a'));
  assert.equal(ring.derived, false);
});

test('session keys hash the session id: never the id itself', () => {
  const k = sessionKey(ring, 'web', 's:abc.def');
  assert.match(k, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(sessionKey(ring, 'web', 's:abc.def'), k);
  assert.notEqual(sessionKey(ring, 'web', 's:abd.def'), k);
});

test('TokenMap finds servers by token among the pool servers only, and follows membership', () => {
  const map = new TokenMap<{ id: string }>(ring, 'web');
  const a = { id: 'a' };
  const b = { id: 'b' };
  let servers = [a, b];
  assert.equal(map.serverOf(map.token('a'), servers), a);
  assert.equal(map.serverOf(map.token('b'), servers), b);
  assert.equal(map.serverOf('AAAAAAAAAAAAAAAA', servers), undefined);
  assert.equal(map.serverOf(serverToken(ring, 'other', 'a'), servers), undefined, 'a token of another pool');
  servers = [b];
  assert.equal(map.serverOf(map.token('a'), servers), undefined, 'removed');
  const c = { id: 'c' };
  servers = [b, c];
  assert.equal(map.serverOf(map.token('b'), servers), b, 'b keeps its token when c is added');
  assert.equal(map.serverOf(map.token('c'), servers), c);
});
