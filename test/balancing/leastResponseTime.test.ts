import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LeastResponseTime } from '../../src/balancing/leastResponseTime.js';
import { Server } from '../../src/core/server.js';

const ctx = { clientIp: '10.0.0.1' };

function server(id: string, weight = 1): Server {
  return new Server({ id, host: '127.0.0.1', port: 1, address: `127.0.0.1:${id}`, weight, backup: false });
}

function history(s: Server, ms: number, times = 5): Server {
  for (let i = 0; i < times; i++) s.record(true, ms);
  return s;
}

/** Picks `count` times, leasing each pick (active++) and never releasing: a growing backlog. */
function lease(policy: LeastResponseTime, list: readonly Server[], count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) {
    const s = policy.pick(list, ctx);
    s.active++;
    out += s.id;
  }
  return out;
}

interface Behaviour {
  ms: number;
  ok: boolean;
}

/**
 * Closed-loop simulation: `concurrency` clients, each sending its next request as soon as the
 * previous one is answered, through pick → active++ → (latency) → active-- and record(), as the
 * pool does. Returns how many requests each server got.
 */
function simulate(
  policy: LeastResponseTime,
  list: readonly Server[],
  behaviour: (s: Server) => Behaviour,
  requests: number,
  concurrency: number,
): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const s of list) counts[s.id] = 0;
  const inFlight: { server: Server; doneAt: number; b: Behaviour }[] = [];
  let now = 0;
  let sent = 0;
  const send = (): void => {
    const server = policy.pick(list, ctx);
    server.active++;
    counts[server.id]!++;
    const b = behaviour(server);
    inFlight.push({ server, doneAt: now + b.ms, b });
    sent++;
  };
  for (let i = 0; i < concurrency; i++) send();
  while (inFlight.length > 0) {
    let first = 0;
    for (let i = 1; i < inFlight.length; i++) if (inFlight[i]!.doneAt < inFlight[first]!.doneAt) first = i;
    const done = inFlight.splice(first, 1)[0]!;
    now = done.doneAt;
    done.server.active--;
    done.server.record(done.b.ok, done.b.ms);
    if (sent < requests) send();
  }
  return counts;
}

const fixed =
  (table: Record<string, number>) =>
  (s: Server): Behaviour => ({ ms: table[s.id]!, ok: true });

test('least-response-time: score is average × (in flight + 1): a slow server waits for a backlog', () => {
  const list = [history(server('a'), 10), history(server('b'), 10), history(server('c'), 100)];
  const lrt = new LeastResponseTime();
  lrt.rebuild(list);
  // a and b are preferred until 10 × (9 + 1) = 100 × (0 + 1): then the tie rotates to c.
  assert.equal(lease(lrt, list, 21), 'abababababababababcab');
});

test('least-response-time: respects effective weights', () => {
  const list = [history(server('a', 2), 10), history(server('b', 1), 10)];
  const lrt = new LeastResponseTime();
  lrt.rebuild(list);
  lease(lrt, list, 300);
  assert.deepEqual(
    list.map((s) => s.active),
    [200, 100],
  );
  list[0]!.effectiveWeight = 1;
  lease(lrt, list, 100);
  assert.deepEqual(
    list.map((s) => s.active),
    [200, 200],
  );
});

test('least-response-time: steers away from a server that becomes slow', () => {
  const list = [server('a'), server('b'), server('c')];
  const lrt = new LeastResponseTime();
  lrt.rebuild(list);
  const before = simulate(lrt, list, fixed({ a: 10, b: 10, c: 10 }), 3000, 6);
  assert.deepEqual(before, { a: 1000, b: 1000, c: 1000 });
  const after = simulate(lrt, list, fixed({ a: 10, b: 10, c: 80 }), 3000, 6);
  // Only probes reach c (about one pick in 49, with 3 servers), and they keep it measured.
  assert.ok(after.c! >= 40 && after.c! <= 90, `slow c got ${after.c} of 3000`);
  assert.ok(Math.abs(after.a! - after.b!) < 100, JSON.stringify(after));
});

test('least-response-time: a new server gets a fair share at once, neither 0 nor all', () => {
  const a = history(server('a'), 20);
  const b = history(server('b'), 20);
  const c = server('c');
  const lrt = new LeastResponseTime();
  lrt.rebuild([a, b]);
  const list = [a, b, c];
  lrt.rebuild(list);
  // Without samples c is estimated at the mean of the others: an equal in the rotation.
  assert.equal(lease(lrt, list, 6), 'abcabc');
  for (const s of list) s.active = 0;
  const counts = simulate(lrt, list, fixed({ a: 20, b: 20, c: 20 }), 3000, 6);
  assert.deepEqual(counts, { a: 1000, b: 1000, c: 1000 });
});

test('least-response-time: no samples anywhere is least-connections with rotation', () => {
  const list = [server('a'), server('b'), server('c')];
  const lrt = new LeastResponseTime();
  let out = '';
  for (let i = 0; i < 6; i++) out += lrt.pick(list, ctx).id;
  assert.equal(out, 'abcabc');
  assert.equal(lease(lrt, list, 6), 'abcabc');
  list[1]!.active = 0;
  assert.equal(lrt.pick(list, ctx).id, 'b');
});

test('least-response-time: a server failing fast is not rewarded', () => {
  const fast = (s: Server): Behaviour => (s.id === 'c' ? { ms: 1, ok: false } : { ms: 20, ok: true });
  const list = [server('a'), server('b'), server('c')];
  const counts = simulate(new LeastResponseTime(), list, fast, 3000, 6);
  // Two picks before any answer came back, then only probes.
  assert.ok(counts.c! < 90, `failing c got ${counts.c} of 3000`);
  // The same speed with successes would win most of the traffic: the penalty is what steers.
  const honest = [server('a'), server('b'), server('c')];
  const ok = simulate(new LeastResponseTime(), honest, fixed({ a: 20, b: 20, c: 1 }), 3000, 6);
  assert.ok(ok.c! > 1500, `fast c got ${ok.c} of 3000`);
});

test('least-response-time: a sidelined server is probed, and recovers once fast again', () => {
  const list = [server('a'), server('b'), server('c')];
  const lrt = new LeastResponseTime();
  lrt.rebuild(list);
  simulate(lrt, list, fixed({ a: 10, b: 10, c: 100 }), 1000, 6);
  assert.ok(list[2]!.ewmaMs > 90);
  // Sequential traffic: c loses every comparison, so only probes reach it, one per 49 picks.
  let out = '';
  for (let i = 0; i < 490; i++) out += lrt.pick(list, ctx).id;
  assert.equal(out.split('c').length - 1, 10);
  // c is fast again: probes bring its average down until it earns its share back.
  simulate(lrt, list, fixed({ a: 10, b: 10, c: 10 }), 3000, 6);
  const late = simulate(lrt, list, fixed({ a: 10, b: 10, c: 10 }), 1500, 6);
  assert.deepEqual(late, { a: 500, b: 500, c: 500 });
});

test('least-response-time: weight 0 is never chosen while another weight is positive', () => {
  const list = [history(server('z', 0), 1), history(server('a'), 50)];
  const lrt = new LeastResponseTime();
  lrt.rebuild(list);
  assert.equal(lease(lrt, list, 200), 'a'.repeat(200));
});

test('least-response-time: a fallback only yields untried servers, best score first', () => {
  const [a, b, c] = [history(server('a'), 5), history(server('b'), 50), history(server('c'), 60)];
  const list = [a!, b!, c!];
  const lrt = new LeastResponseTime();
  lrt.rebuild(list);
  assert.equal(lrt.pick(list, ctx), a);
  for (let i = 0; i < 100; i++) {
    const got = lrt.fallback(list, ctx, [a!]);
    assert.ok(got === b || got === c);
  }
  assert.equal(lrt.fallback(list, ctx, [a!]), b);
  assert.equal(lrt.fallback(list, ctx, [a!, b!]), c);
  assert.equal(lrt.fallback(list, ctx, [a!, b!, c!]), undefined);
});

test('least-response-time: an exploded or NaN average counts as very slow, not as fast', () => {
  const list = [history(server('a'), 10), history(server('b'), 10), history(server('c'), 10)];
  list[1]!.ewmaMs = Number.NaN;
  list[2]!.ewmaMs = Number.POSITIVE_INFINITY;
  const lrt = new LeastResponseTime();
  lrt.rebuild(list);
  assert.equal(lease(lrt, list, 30), 'a'.repeat(30));
  // A newcomer is not poisoned by them either: it is estimated at the best, a's 10 ms.
  const d = server('d');
  const more = [...list, d];
  lrt.rebuild(more);
  for (const s of more) s.active = 0;
  assert.equal(lease(lrt, more, 4), 'dada');
});

test('least-response-time: a new server is estimated at the best healthy average', () => {
  const a = history(server('a'), 10);
  const b = history(server('b'), 400);
  const c = history(server('c'), 5);
  c.record(false, 1); // failing: not a reference, though it was the fastest
  const d = server('d');
  const list = [a, b, c, d];
  const lrt = new LeastResponseTime();
  lrt.rebuild(list);
  // d counts as 10 ms like a (a mean with b would be 205 ms and starve it).
  assert.equal(lease(lrt, list, 6), 'adadad');
  // Without a healthy reference a newcomer is assumed fast (1 ms) against failing servers.
  const failing = history(server('f'), 10);
  failing.record(false, 1);
  const fresh = server('n');
  assert.equal(lease(new LeastResponseTime(), [failing, fresh], 3), 'nnn');
});
