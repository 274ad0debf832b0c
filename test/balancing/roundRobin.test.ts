import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RoundRobin } from '../../src/balancing/roundRobin.js';
import { Server } from '../../src/core/server.js';

const ctx = { clientIp: '10.0.0.1' };

function server(id: string, weight = 1): Server {
  return new Server({ id, host: '127.0.0.1', port: 1, address: `127.0.0.1:${id}`, weight, backup: false });
}

function ids(policy: RoundRobin, list: readonly Server[], count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) out += policy.pick(list, ctx).id;
  return out;
}

test('round-robin: exact cycle a b c a b c', () => {
  const list = [server('a'), server('b'), server('c')];
  const rr = new RoundRobin();
  rr.rebuild(list);
  assert.equal(ids(rr, list, 9), 'abcabcabc');
});

test('round-robin: ignores weights', () => {
  const list = [server('a', 5), server('b', 1), server('c', 0)];
  const rr = new RoundRobin();
  rr.rebuild(list);
  assert.equal(ids(rr, list, 6), 'abcabc');
});

test('round-robin: works without a rebuild', () => {
  const list = [server('a'), server('b')];
  assert.equal(ids(new RoundRobin(), list, 4), 'abab');
});

test('round-robin: a server leaving does not restart the cycle', () => {
  const [a, b, c, d] = [server('a'), server('b'), server('c'), server('d')];
  const rr = new RoundRobin();
  const all = [a!, b!, c!, d!];
  rr.rebuild(all);
  assert.equal(ids(rr, all, 2), 'ab');
  const withoutC = [a!, b!, d!];
  rr.rebuild(withoutC);
  assert.equal(ids(rr, withoutC, 4), 'dabd');
});

test('round-robin: a server joining takes its turn in order', () => {
  const [a, b, c] = [server('a'), server('b'), server('c')];
  const rr = new RoundRobin();
  const two = [a!, c!];
  rr.rebuild(two);
  assert.equal(ids(rr, two, 1), 'a');
  const three = [a!, b!, c!];
  rr.rebuild(three);
  assert.equal(ids(rr, three, 4), 'bcab');
});

test('round-robin: a fallback gets the next server of the rotation not tried', () => {
  const [a, b, c] = [server('a'), server('b'), server('c')];
  const list = [a!, b!, c!];
  const rr = new RoundRobin();
  rr.rebuild(list);
  assert.equal(ids(rr, list, 1), 'a');
  // b is next but was tried: c is chosen, and the rotation moves past it.
  assert.equal(rr.fallback(list, ctx, [b!])!.id, 'c');
  assert.equal(ids(rr, list, 3), 'abc');
  for (let i = 0; i < 30; i++) assert.notEqual(rr.fallback(list, ctx, [b!]), b);
  assert.equal(rr.fallback(list, ctx, [c!, a!, b!]), undefined, 'none left');
});

test('round-robin: an unknown array is adopted as the new eligible set', () => {
  const rr = new RoundRobin();
  const first = [server('a'), server('b')];
  rr.rebuild(first);
  const other = [server('x'), server('y'), server('z')];
  assert.equal(ids(rr, other, 3), 'xyz');
});
