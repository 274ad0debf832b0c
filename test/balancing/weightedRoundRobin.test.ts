import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WeightedRoundRobin } from '../../src/balancing/weightedRoundRobin.js';
import { Server } from '../../src/core/server.js';

const ctx = { clientIp: '10.0.0.1' };

function server(id: string, weight = 1): Server {
  return new Server({ id, host: '127.0.0.1', port: 1, address: `127.0.0.1:${id}`, weight, backup: false });
}

function ids(policy: WeightedRoundRobin, list: readonly Server[], count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) out += policy.pick(list, ctx).id;
  return out;
}

function counts(policy: WeightedRoundRobin, list: readonly Server[], picks: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of list) out[s.id] = 0;
  for (let i = 0; i < picks; i++) {
    const id = policy.pick(list, ctx).id;
    out[id] = (out[id] ?? 0) + 1;
  }
  return out;
}

test('weighted-round-robin: weights 5,1,1 give nginx smooth sequence a a b a c a a', () => {
  const list = [server('a', 5), server('b', 1), server('c', 1)];
  const wrr = new WeightedRoundRobin();
  wrr.rebuild(list);
  assert.equal(ids(wrr, list, 14), 'aabacaaaabacaa');
});

test('weighted-round-robin: 3:2:1 over 600 picks is exact, and exact in every window of 6', () => {
  const list = [server('a', 3), server('b', 2), server('c', 1)];
  const wrr = new WeightedRoundRobin();
  wrr.rebuild(list);
  assert.equal(ids(wrr, list, 6), 'abacba');
  for (let w = 1; w < 100; w++) assert.deepEqual(counts(wrr, list, 6), { a: 3, b: 2, c: 1 });
});

test('weighted-round-robin: equal weights are plain rotation', () => {
  const list = [server('a', 2), server('b', 2), server('c', 2)];
  const wrr = new WeightedRoundRobin();
  wrr.rebuild(list);
  assert.equal(ids(wrr, list, 6), 'abcabc');
});

test('weighted-round-robin: weight 0 is never chosen while another weight is positive', () => {
  const list = [server('z', 0), server('a', 1), server('y', 0), server('b', 3)];
  const wrr = new WeightedRoundRobin();
  wrr.rebuild(list);
  assert.deepEqual(counts(wrr, list, 400), { z: 0, a: 100, y: 0, b: 300 });
});

test('weighted-round-robin: only weight-0 servers eligible: they rotate', () => {
  const list = [server('z', 0), server('y', 0)];
  const wrr = new WeightedRoundRobin();
  wrr.rebuild(list);
  assert.equal(ids(wrr, list, 4), 'zyzy');
});

test('weighted-round-robin: effectiveWeight changes apply without a rebuild (slow start)', () => {
  const a = server('a', 1);
  const b = server('b', 3);
  const list = [a, b];
  const wrr = new WeightedRoundRobin();
  wrr.rebuild(list);
  b.effectiveWeight = 0; // slow start begins at 0: no traffic
  assert.deepEqual(counts(wrr, list, 10), { a: 10, b: 0 });
  b.effectiveWeight = 1;
  const half = counts(wrr, list, 100);
  assert.ok(Math.abs(half.a! - 50) <= 1 && Math.abs(half.b! - 50) <= 1, JSON.stringify(half));
  b.effectiveWeight = 3;
  const full = counts(wrr, list, 400);
  assert.ok(Math.abs(full.a! - 100) <= 1 && Math.abs(full.b! - 300) <= 1, JSON.stringify(full));
});

test('weighted-round-robin: fractional effective weights keep their proportions', () => {
  const list = [server('a', 1), server('b', 1), server('c', 1)];
  list[0]!.effectiveWeight = 0.5;
  list[1]!.effectiveWeight = 0.5;
  const wrr = new WeightedRoundRobin();
  wrr.rebuild(list);
  assert.deepEqual(counts(wrr, list, 400), { a: 100, b: 100, c: 200 });
});

test('weighted-round-robin: a rebuild with the same servers does not restart the sequence', () => {
  const list = [server('a', 5), server('b', 1), server('c', 1)];
  const wrr = new WeightedRoundRobin();
  wrr.rebuild(list);
  assert.equal(ids(wrr, list, 3), 'aab');
  const copy = [...list];
  wrr.rebuild(copy);
  assert.equal(ids(wrr, copy, 4), 'acaa');
});

test('weighted-round-robin: a fallback only yields untried servers, in weighted proportion', () => {
  const [a, b, c] = [server('a', 5), server('b', 1), server('c', 2)];
  const list = [a!, b!, c!];
  const wrr = new WeightedRoundRobin();
  wrr.rebuild(list);
  const seen: Record<string, number> = { b: 0, c: 0 };
  for (let i = 0; i < 300; i++) seen[wrr.fallback(list, ctx, [a!])!.id]!++;
  assert.deepEqual(seen, { b: 100, c: 200 });
  assert.equal(wrr.fallback(list, ctx, [a!, b!, c!]), undefined, 'none left');
  // The main sequence is still proportional afterwards.
  assert.deepEqual(counts(wrr, list, 800), { a: 500, b: 100, c: 200 });
});

test('weighted-round-robin: an unknown array is adopted as the new eligible set', () => {
  const wrr = new WeightedRoundRobin();
  const list = [server('a', 5), server('b', 1), server('c', 1)];
  assert.equal(ids(wrr, list, 7), 'aabacaa');
});
