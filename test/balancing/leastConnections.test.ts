import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LeastConnections } from '../../src/balancing/leastConnections.js';
import { Server } from '../../src/core/server.js';

const ctx = { clientIp: '10.0.0.1' };

function server(id: string, weight = 1, active = 0): Server {
  const s = new Server({ id, host: '127.0.0.1', port: 1, address: `127.0.0.1:${id}`, weight, backup: false });
  s.active = active;
  return s;
}

/** Picks `count` times, leasing each pick (active++) and never releasing: a growing backlog. */
function lease(policy: LeastConnections, list: readonly Server[], count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) {
    const s = policy.pick(list, ctx);
    s.active++;
    out += s.id;
  }
  return out;
}

test('least-connections: picks the server with the fewest in flight', () => {
  const list = [server('a', 1, 3), server('b', 1, 1), server('c', 1, 2)];
  const lc = new LeastConnections();
  assert.equal(lc.pick(list, ctx).id, 'b');
  assert.equal(lc.pick(list, ctx).id, 'b');
});

test('least-connections: compares active relative to weight', () => {
  const lc = new LeastConnections();
  // 3/2 < 2/1
  assert.equal(lc.pick([server('a', 2, 3), server('b', 1, 2)], ctx).id, 'a');
  // 5/2 > 2/1
  assert.equal(lc.pick([server('a', 2, 5), server('b', 1, 2)], ctx).id, 'b');
});

test('least-connections: reads effectiveWeight, not weight (slow start)', () => {
  const a = server('a', 4, 2);
  const b = server('b', 1, 1);
  const lc = new LeastConnections();
  assert.equal(lc.pick([a, b], ctx).id, 'a'); // 2/4 < 1/1
  a.effectiveWeight = 1;
  assert.equal(lc.pick([a, b], ctx).id, 'b'); // 2/1 > 1/1
});

test('least-connections: ties rotate instead of always taking the first', () => {
  const list = [server('a'), server('b'), server('c')];
  const lc = new LeastConnections();
  let out = '';
  for (let i = 0; i < 6; i++) out += lc.pick(list, ctx).id; // released at once: always a tie
  assert.equal(out, 'abcabc');
  const skewed = [server('a'), server('b', 1, 5), server('c')];
  out = '';
  for (let i = 0; i < 6; i++) out += lc.pick(skewed, ctx).id;
  assert.equal(out, 'acacac');
});

test('least-connections: a backlog fills servers in proportion to their weights', () => {
  const list = [server('a', 2), server('b', 1), server('c', 1)];
  const lc = new LeastConnections();
  assert.equal(lease(lc, list, 8), 'abcabcaa');
  lease(lc, list, 392);
  assert.deepEqual(
    list.map((s) => s.active),
    [200, 100, 100],
  );
});

test('least-connections: weight 0 is never chosen while another weight is positive', () => {
  const list = [server('z', 0), server('a', 1, 50), server('y', 0)];
  const lc = new LeastConnections();
  for (let i = 0; i < 20; i++) assert.equal(lc.pick(list, ctx).id, 'a');
  const zeros = [server('z', 0, 2), server('y', 0, 1)];
  assert.equal(lc.pick(zeros, ctx).id, 'y');
});

test('least-connections: any array works, and a fallback picks the least loaded untried', () => {
  const [a, b, c] = [server('a', 1, 0), server('b', 1, 9), server('c', 1, 4)];
  const lc = new LeastConnections();
  assert.equal(lc.pick([b!, c!], ctx).id, 'c');
  assert.equal(lc.pick([b!], ctx).id, 'b');
  const list = [a!, b!, c!];
  assert.equal(lc.pick(list, ctx), a);
  assert.equal(lc.fallback(list, ctx, [a!]), c);
  assert.equal(lc.fallback(list, ctx, [a!, c!]), b);
  assert.equal(lc.fallback(list, ctx, [a!, c!, b!]), undefined);
});
