import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findCookie, parseSetCookie } from '../../src/sticky/cookieHeader.js';

const all = (header: string, name: string) => {
  const out: string[] = [];
  findCookie(header, name, (v) => {
    out.push(v);
    return undefined;
  });
  return out;
};

test('findCookie finds every value of a name, only as a whole name', () => {
  assert.deepEqual(all('srv=1', 'srv'), ['1']);
  assert.deepEqual(all('a=b; srv=2;xsrv=3; srvx=4;  srv="5"', 'srv'), ['2', '5']);
  assert.deepEqual(all('x=srv=9; srv', 'srv'), []);
  assert.deepEqual(all('srv=', 'srv'), ['']);
  assert.deepEqual(all('', 'srv'), []);
  assert.equal(
    findCookie('srv=bad; srv=good', 'srv', (v) => (v === 'good' ? v : undefined)),
    'good',
    'the first accepted wins',
  );
});

test('parseSetCookie reads name, value and deletion', () => {
  const now = Date.parse('2030-01-01T00:00:00Z');
  assert.deepEqual(parseSetCookie('JSESSIONID=abc; Path=/; HttpOnly', now), {
    name: 'JSESSIONID',
    value: 'abc',
    deleted: false,
  });
  assert.equal(parseSetCookie('sid=abc; Max-Age=0', now)?.deleted, true);
  assert.equal(parseSetCookie('sid=abc; max-age=-1', now)?.deleted, true);
  assert.equal(parseSetCookie('sid=abc; Expires=Thu, 01 Jan 1970 00:00:00 GMT', now)?.deleted, true);
  assert.equal(
    parseSetCookie('sid=abc; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=60', now)?.deleted,
    false,
  );
  assert.equal(parseSetCookie('sid=; Path=/', now)?.deleted, true);
  assert.equal(parseSetCookie('garbage', now), undefined);
  assert.equal(parseSetCookie('=x', now), undefined);
});
