import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createPolicy } from '../../src/balancing/index.js';
import { createLogger } from '../../src/core/log.js';
import { Outcome, Pool } from '../../src/core/pool.js';
import { Selection } from '../../src/core/selection.js';
import { Server } from '../../src/core/server.js';

function server(id: string, extra: Partial<{ weight: number; backup: boolean }> = {}): Server {
  return new Server({
    id,
    host: '127.0.0.1',
    port: 1,
    address: `127.0.0.1:${id}`,
    weight: 1,
    backup: false,
    ...extra,
  });
}

function pool(servers: Server[], algorithm: Parameters<typeof createPolicy>[0] = 'round-robin') {
  const lines: string[] = [];
  const p = new Pool('p', createPolicy(algorithm), servers);
  p.log = createLogger('info', (l) => lines.push(l));
  return { p, lines };
}

const ctx = { clientIp: '127.0.0.1' };

/** A fresh request's first candidate, leased. */
function acquire(p: Pool): Server | undefined {
  const selection = new Selection();
  selection.start(p, ctx);
  return selection.next();
}

function picks(p: Pool, n: number): string {
  let out = '';
  for (let i = 0; i < n; i++) {
    const s = acquire(p)!;
    out += s.id;
    p.release(s, Outcome.Success, 1);
  }
  return out;
}

test('backups take traffic only while no primary is available', () => {
  const [a, b, x] = [server('a'), server('b'), server('x', { backup: true })];
  const { p } = pool([a, b, x]);
  assert.equal(picks(p, 4), 'abab');
  p.setState(a, 'down', 'test');
  assert.equal(picks(p, 2), 'bb');
  p.setState(b, 'maintenance', 'test');
  assert.equal(picks(p, 2), 'xx');
  p.setState(x, 'draining', 'test');
  assert.equal(acquire(p), undefined);
  p.setState(a, 'up', 'back');
  assert.equal(picks(p, 2), 'aa');
});

test('setState logs each transition once with its reason and tells listeners', () => {
  const a = server('a');
  const { p, lines } = pool([a]);
  const seen: string[] = [];
  p.transitionListeners.push((s, from, reason) => seen.push(`${s.id}:${from}->${s.state}:${reason}`));
  p.setState(a, 'down', '3 failed checks: connect ECONNREFUSED');
  p.setState(a, 'down', 'again');
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /WARN {2}pool p: server a down: 3 failed checks: connect ECONNREFUSED/);
  assert.deepEqual(seen, ['a:up->down:3 failed checks: connect ECONNREFUSED']);
  assert.equal(a.lastTransition?.reason, '3 failed checks: connect ECONNREFUSED');
});

test('leases count in-flight work and feed outcomes to listeners', () => {
  const a = server('a');
  const { p } = pool([a]);
  const outcomes: Array<[Outcome, number]> = [];
  p.outcomeListeners.push((_s, o, status) => outcomes.push([o, status]));
  const s1 = acquire(p)!;
  const s2 = acquire(p)!;
  assert.equal(a.active, 2);
  p.release(s1, Outcome.Success, 20, 200);
  p.release(s2, Outcome.Failure, 5);
  assert.equal(a.active, 0);
  assert.equal(a.total, 2);
  assert.equal(a.failures, 1);
  assert.equal(a.consecutiveFailures, 1);
  assert.deepEqual(outcomes, [
    [Outcome.Success, 200],
    [Outcome.Failure, 0],
  ]);
  // A failure is never sampled as fast.
  assert.ok(a.ewmaMs > 20);
  const s3 = acquire(p)!;
  p.release(s3, Outcome.Cancelled, 1);
  assert.equal(a.total, 3);
  assert.equal(a.failures, 1);
});

test('retries never reuse a server', () => {
  const [a, b, c] = [server('a'), server('b'), server('c')];
  const { p } = pool([a, b, c]);
  const selection = new Selection();
  selection.start(p, ctx);
  const seen: Server[] = [];
  for (let i = 0; i < 3; i++) {
    const s = selection.next()!;
    assert.ok(!seen.includes(s));
    seen.push(s);
  }
  assert.equal(selection.next(), undefined);
  assert.deepEqual(selection.tried, seen);
  assert.deepEqual(
    [a, b, c].map((s) => [s.active, s.total]),
    [
      [1, 1],
      [1, 1],
      [1, 1],
    ],
    'each candidate leased once',
  );
});

test('a server that goes down between tries is not offered', () => {
  const [a, b, c] = [server('a'), server('b'), server('c')];
  const { p } = pool([a, b, c]);
  const selection = new Selection();
  selection.start(p, ctx);
  assert.equal(selection.next(), a);
  p.setState(b, 'down', 'test');
  assert.equal(selection.next(), c);
  assert.equal(selection.next(), undefined);
});

test('an ejected server returns by itself when its ejection time has passed', async () => {
  const [a, b] = [server('a'), server('b')];
  const { p } = pool([a, b]);
  a.ejectedUntil = Date.now() + 60;
  p.invalidate();
  assert.equal(picks(p, 3), 'bbb');
  await new Promise((r) => setTimeout(r, 80));
  assert.match(picks(p, 4), /a/);
});

test('weight 0 takes no new traffic while others can, in every algorithm', () => {
  for (const algo of [
    'round-robin',
    'least-connections',
    'ip-hash',
    'weighted-round-robin',
    'least-response-time',
  ] as const) {
    const [a, z] = [server('a'), server('z', { weight: 0 })];
    const { p } = pool([a, z], algo);
    assert.equal(picks(p, 4), 'aaaa', algo);
    p.setState(a, 'down', 'test');
    assert.equal(picks(p, 2), 'zz', `${algo}: weight 0 is still used when nothing else is left`);
  }
});

test('the failure penalty is bounded and reset when a server comes back', () => {
  const a = server('a');
  const { p } = pool([a]);
  for (let i = 0; i < 5000; i++) {
    const s = acquire(p)!;
    p.release(s, Outcome.Failure, 1);
  }
  assert.ok(Number.isFinite(a.ewmaMs) && a.ewmaMs <= 30_000, String(a.ewmaMs));
  p.setState(a, 'down', 'test');
  p.setState(a, 'up', 'test');
  assert.equal(a.samples, 0);
});

test('Selection.peek gives the candidates in next() order without leasing any', () => {
  const servers = ['a', 'b', 'c'].map((id) => server(id));
  const { p } = pool(servers);
  const selection = new Selection();
  selection.start(p, ctx);
  const peeked: string[] = [];
  for (let s = selection.peek(); s !== undefined; s = selection.peek()) peeked.push(s.id);
  assert.deepEqual(peeked, ['a', 'b', 'c'], 'each eligible server once, the policy first');
  assert.deepEqual(
    servers.map((s) => [s.active, s.total]),
    [
      [0, 0],
      [0, 0],
      [0, 0],
    ],
    'no lease: nothing to release',
  );
  // The policy's state moves on as for a lease: the next request starts after the last one.
  const { p: q } = pool(['a', 'b', 'c'].map((id) => server(id)));
  const leased: string[] = [];
  selection.start(q, ctx);
  for (let s = selection.next(); s !== undefined; s = selection.next()) leased.push(s.id);
  assert.deepEqual(leased, peeked);
  p.setState(servers[1]!, 'draining', 'admin');
  selection.start(p, ctx);
  const usable: string[] = [];
  for (let s = selection.peek(); s !== undefined; s = selection.peek()) usable.push(s.id);
  assert.deepEqual(usable.sort(), ['a', 'c'], 'a draining server is not a candidate');
});
