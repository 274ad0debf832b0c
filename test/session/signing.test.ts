import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import {
  generateSessionId,
  readCookie,
  serializeCookie,
  signCookie,
  unsignCookie,
} from '../../src/session/index.js';

const cookieSignature = createRequire(import.meta.url)('cookie-signature') as {
  sign(value: string, secret: string): string;
};

test('signing: the same format as cookie-signature (express-session)', () => {
  const id = generateSessionId();
  assert.equal(signCookie(id, 'sekrit'), `s:${cookieSignature.sign(id, 'sekrit')}`);
  assert.deepEqual(unsignCookie(`s:${cookieSignature.sign(id, 'sekrit')}`, ['sekrit']), {
    value: id,
    secretIndex: 0,
  });
});

test('signing: rotation signs with the first secret and accepts any', () => {
  const signed = signCookie('abc', 'old');
  assert.deepEqual(unsignCookie(signed, ['new', 'old']), { value: 'abc', secretIndex: 1 });
  assert.equal(unsignCookie(signed, ['new']), undefined);
});

test('signing: tampering is refused', () => {
  const signed = signCookie('abc', 'k');
  assert.equal(unsignCookie(signed.replace('abc', 'abd'), ['k']), undefined);
  assert.equal(unsignCookie(`${signed}x`, ['k']), undefined);
  assert.equal(unsignCookie(signed.slice(0, -1), ['k']), undefined);
  assert.equal(unsignCookie(signed.slice(2), ['k']), undefined, 'the s: prefix is required');
  assert.equal(unsignCookie('s:nodot', ['k']), undefined);
  assert.equal(unsignCookie('', ['k']), undefined);
});

test('session ids: 24 random bytes, base64url', () => {
  const ids = new Set(Array.from({ length: 1000 }, generateSessionId));
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{32}$/);
});

test('cookies: read from a Cookie header, written as Set-Cookie', () => {
  assert.equal(readCookie('a=1; fulcrum.sid=s%3Aabc.def; b=2', 'fulcrum.sid'), 's:abc.def');
  assert.equal(readCookie('xfulcrum.sid=1', 'fulcrum.sid'), undefined);
  assert.equal(readCookie('fulcrum.sid="quoted"', 'fulcrum.sid'), 'quoted');
  assert.equal(readCookie('fulcrum.sid=%E0%A4%A', 'fulcrum.sid'), '%E0%A4%A', 'bad encoding is kept raw');
  assert.equal(readCookie(undefined, 'x'), undefined);
  const expires = new Date(Date.now() + 60_000);
  assert.equal(
    serializeCookie('sid', 's:a+b/c', { secure: true, sameSite: 'strict', domain: 'example.com' }, expires),
    `sid=s%3Aa%2Bb%2Fc; Path=/; Domain=example.com; Expires=${expires.toUTCString()}; Max-Age=60; HttpOnly; Secure; SameSite=Strict`,
  );
  assert.equal(serializeCookie('sid', 'v', { httpOnly: false }), 'sid=v; Path=/');
});
