/**
 * What every balancing policy must do, run against each entry of the registry, through a Pool and
 * a Selection as the fronts use them: candidates are eligible servers, each at most once, in the
 * policy's documented fallback order; the pinned server first; skipped servers not tried; backups
 * and weight 0 as the docs say; and a request without retries allocates nothing.
 */
import assert from 'node:assert/strict';
import { PerformanceObserver } from 'node:perf_hooks';
import { test } from 'node:test';
import { IpHash } from '../../src/balancing/ipHash.js';
import {
  ALGORITHM_REGISTRY,
  ALGORITHMS,
  type AlgorithmName,
  createPolicy,
} from '../../src/balancing/registry.js';
import { Outcome, Pool } from '../../src/core/pool.js';
import type { BalancingPolicy, SelectContext } from '../../src/core/selection.js';
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

function servers(...ids: string[]): Server[] {
  return ids.map((id) => server(id));
}

/** Every candidate of one request, leased in turn, as ids ('' when none). */
function candidates(pool: Pool, ctx: SelectContext, pinned?: Server): string {
  const selection = new Selection();
  selection.start(pool, ctx, pinned);
  let out = '';
  for (let s = selection.next(); s !== undefined; s = selection.next()) out += s.id;
  return out;
}

/** One request that takes its first candidate (released at once). */
function first(pool: Pool, ctx: SelectContext): string {
  const selection = new Selection();
  selection.start(pool, ctx);
  const s = selection.next()!;
  pool.release(s, Outcome.Cancelled, 0);
  return s.id;
}

/** Releases every lease: in-flight counts back to what they were. */
function releaseAll(pool: Pool): void {
  for (const s of pool.servers) while (s.active > 0) pool.release(s, Outcome.Cancelled, 0);
}

/** `policy`, with the arrays its rebuilds got and the arrays its picks and fallbacks got. */
function spy(policy: BalancingPolicy): {
  policy: BalancingPolicy;
  rebuilt: Array<readonly Server[]>;
  given: Array<readonly Server[]>;
} {
  const rebuilt: Array<readonly Server[]> = [];
  const given: Array<readonly Server[]> = [];
  const wrapped: BalancingPolicy = {
    name: policy.name,
    pick: (eligible, ctx) => {
      given.push(eligible);
      return policy.pick(eligible, ctx);
    },
    fallback: (eligible, ctx, tried) => {
      given.push(eligible);
      return policy.fallback(eligible, ctx, tried);
    },
    rebuild: (eligible) => {
      rebuilt.push(eligible);
      policy.rebuild?.(eligible);
    },
  };
  return { policy: wrapped, rebuilt, given };
}

/**
 * The order of one request's candidates over five servers a..e, after `setup` prepared them: the
 * policy's documented fallback order (docs/algorithms.md, "Retries" of each algorithm).
 */
const ORDERS: Record<
  AlgorithmName,
  { setup(list: Server[], pool: Pool): void; ctx: SelectContext; order(list: Server[]): string }
> = {
  // Two requests went to a and b: the rotation goes on at c, then wraps around.
  'round-robin': {
    setup: (_list, pool) => {
      assert.equal(first(pool, { clientIp: '' }), 'a');
      assert.equal(first(pool, { clientIp: '' }), 'b');
    },
    ctx: { clientIp: '10.0.0.1' },
    order: () => 'cdeab',
  },
  // Weights 1 3 2 5 4: the smooth rule run among the untried each time (current += weight; the
  // largest wins and gives back the sum of the weights taking part).
  //   a1 b3 c2 d5 e4 → d;  a2 b6 c4 e8 → e;  a3 b9 c6 → b;  a4 c8 → c;  a5 → a
  'weighted-round-robin': {
    setup: (list) => {
      [1, 3, 2, 5, 4].forEach((w, i) => {
        list[i]!.weight = w;
        list[i]!.effectiveWeight = w;
      });
    },
    ctx: { clientIp: '10.0.0.1' },
    order: () => 'debca',
  },
  // The ring walked clockwise from the key: where the key goes with the tried servers removed.
  'ip-hash': {
    setup: () => {},
    ctx: { clientIp: '192.0.2.77' },
    order: (list) => ringOrder(list, '192.0.2.77'),
  },
  // Fewest in flight per unit of weight: d 0, then b and e at 1 (e: 3 on weight 3), c 2, a 3. The
  // tie goes to the first in scan order, which starts after the server chosen last (d): e, then b.
  'least-connections': {
    setup: (list) => {
      const [a, b, c, d, e] = list;
      a!.active = 3;
      b!.active = 1;
      c!.active = 2;
      d!.active = 0;
      e!.active = 3;
      e!.weight = 3;
      e!.effectiveWeight = 3;
    },
    ctx: { clientIp: '10.0.0.1' },
    order: () => 'debca',
  },
  // Lowest estimate × (in flight + 1) / weight: c 10, a 20, e 30, b 40, d 50 (all idle).
  'least-response-time': {
    setup: (list) => {
      const ms = [20, 40, 10, 50, 30];
      list.forEach((s, i) => {
        for (let k = 0; k < 5; k++) s.record(true, ms[i]!);
      });
    },
    ctx: { clientIp: '10.0.0.1' },
    order: () => 'caebd',
  },
};

/** Each next candidate is the owner of the key on a fresh ring without the ones before. */
function ringOrder(list: readonly Server[], key: string): string {
  const left = [...list];
  let out = '';
  while (left.length > 0) {
    const ring = new IpHash();
    ring.rebuild(left);
    const s = ring.pick(left, { clientIp: key });
    left.splice(left.indexOf(s), 1);
    out += s.id;
  }
  return out;
}

/** GC runs observed while `body` runs (reported asynchronously: awaited). */
async function collections(body: () => void): Promise<number> {
  let count = 0;
  const observer = new PerformanceObserver((list) => {
    count += list.getEntries().length;
  });
  observer.observe({ entryTypes: ['gc'] });
  await new Promise((r) => setTimeout(r, 20));
  const before = count;
  body();
  await new Promise((r) => setTimeout(r, 50));
  observer.disconnect();
  return count - before;
}

for (const name of ALGORITHMS) {
  const info = ALGORITHM_REGISTRY[name];

  test(`${name}: createPolicy gives a fresh policy of that name`, () => {
    const one = createPolicy(name);
    assert.equal(one.name, name);
    assert.notEqual(createPolicy(name), one);
  });

  test(`${name}: pick returns a member of eligible, whatever the array and the client`, () => {
    const policy = createPolicy(name);
    const lists = [servers('a'), servers('a', 'b'), servers('a', 'b', 'c', 'd', 'e', 'f', 'g')];
    for (const list of lists) {
      policy.rebuild?.(list);
      for (let i = 0; i < 50; i++) {
        const s = policy.pick(list, { clientIp: `10.0.${i}.${i}` });
        assert.ok(list.includes(s), `${s.id} is not in [${list.map((x) => x.id)}]`);
      }
    }
    // An array it was not rebuilt with (used without a pool) is adopted.
    const other = servers('x', 'y');
    assert.ok(other.includes(policy.pick(other, { clientIp: '10.0.0.1' })));
  });

  test(`${name}: a Selection yields each eligible server exactly once, then undefined`, () => {
    for (const n of [1, 2, 5, 9]) {
      const list = servers(...'abcdefghi'.slice(0, n).split(''));
      const pool = new Pool('p', createPolicy(name), list);
      for (let r = 0; r < 20; r++) {
        const selection = new Selection();
        selection.start(pool, { clientIp: `172.16.${r}.1` });
        const seen: Server[] = [];
        for (let s = selection.next(); s !== undefined; s = selection.next()) {
          assert.ok(!seen.includes(s), `${s.id} twice`);
          assert.ok(list.includes(s));
          seen.push(s);
        }
        assert.equal(seen.length, n);
        assert.deepEqual(selection.tried, seen);
        assert.equal(selection.next(), undefined, 'still none left');
        assert.equal(selection.reassigned, false);
        releaseAll(pool);
      }
      assert.ok(
        list.every((s) => s.total === 20),
        'each leased once per request',
      );
    }
  });

  test(`${name}: a retry gets the policy's documented fallback order`, () => {
    const list = servers('a', 'b', 'c', 'd', 'e');
    const pool = new Pool('p', createPolicy(name), list);
    const expected = ORDERS[name];
    expected.setup(list, pool);
    const active = list.map((s) => s.active);
    const order = expected.order(list);
    // Candidates are leased one after the other, as retries do (the failed lease released).
    const selection = new Selection();
    selection.start(pool, expected.ctx);
    let got = '';
    for (let s = selection.next(); s !== undefined; s = selection.next()) {
      got += s.id;
      pool.release(s, Outcome.Cancelled, 0);
    }
    assert.equal(got, order);
    assert.deepEqual(
      list.map((s) => s.active),
      active,
    );
  });

  test(`${name}: the pinned server comes first, then the policy`, () => {
    const list = servers('a', 'b', 'c', 'd');
    const pool = new Pool('p', createPolicy(name), list);
    const selection = new Selection();
    for (const pinned of list) {
      selection.start(pool, { clientIp: '10.9.9.9' }, pinned);
      assert.equal(selection.next(), pinned);
      assert.equal(selection.reassigned, false, 'kept on its server');
      for (let s = selection.next(); s !== undefined; s = selection.next());
      assert.deepEqual(
        selection.tried
          .map((s) => s.id)
          .sort()
          .join(''),
        'abcd',
      );
      releaseAll(pool);
    }
    assert.equal(pool.reassigned, 4, 'each request once: its retries left the pinned server');
  });

  test(`${name}: a pinned server that is not eligible: the policy chooses, counted once`, () => {
    const list = servers('a', 'b', 'c', 'd');
    const pool = new Pool('p', createPolicy(name), list);
    const c = list[2]!;
    pool.setState(c, 'down', 'test');
    const selection = new Selection();
    selection.start(pool, { clientIp: '10.9.9.9' }, c);
    const first = selection.next()!;
    assert.notEqual(first, c);
    assert.equal(selection.reassigned, true);
    assert.equal(pool.reassigned, 1);
    let rest = '';
    for (let s = selection.next(); s !== undefined; s = selection.next()) rest += s.id;
    assert.equal(rest.length, 2);
    assert.ok(!rest.includes('c'));
    assert.equal(pool.reassigned, 1, 'once per request');
    // A pinned server that fails: the retry is the policy's, and counts once too.
    pool.setState(c, 'up', 'test');
    releaseAll(pool);
    selection.start(pool, { clientIp: '10.9.9.9' }, c);
    assert.equal(selection.next(), c);
    assert.equal(selection.reassigned, false);
    assert.notEqual(selection.next(), c);
    assert.notEqual(selection.next(), undefined);
    assert.equal(selection.reassigned, true);
    assert.equal(pool.reassigned, 2);
  });

  test(`${name}: skip passes servers over for one call, without marking them tried`, () => {
    const list = servers('a', 'b', 'c', 'd');
    const pool = new Pool('p', createPolicy(name), list);
    const [a, b] = list;
    const full = new Set<Server>([a!, b!]);
    const skip = (s: Server) => full.has(s);
    const selection = new Selection();
    selection.start(pool, { clientIp: '10.1.1.1' }, a);
    const first = selection.next(skip)!;
    assert.ok(first !== a && first !== b, first.id);
    assert.equal(selection.reassigned, true, 'the pinned server was full: reassigned');
    const second = selection.next(skip)!;
    assert.ok(second !== a && second !== b && second !== first);
    assert.equal(selection.next(skip), undefined, 'only full servers left');
    assert.equal(selection.skipped, 2);
    assert.deepEqual(selection.tried, [first, second], 'skipped servers are not tried');
    // Once a slot frees up, the skipped servers are still candidates.
    full.delete(b!);
    assert.equal(selection.next(skip), b);
    full.clear();
    assert.equal(selection.next(skip), a);
    assert.equal(selection.next(skip), undefined);
    assert.equal(selection.skipped, 0, 'none left at all: nothing to wait for');
    assert.equal(pool.reassigned, 1);
    // Everything full from the start: nothing leased, and the caller knows to wait.
    releaseAll(pool);
    selection.start(pool, { clientIp: '10.1.1.1' });
    assert.equal(
      selection.next(() => true),
      undefined,
    );
    assert.equal(selection.skipped, 4);
    assert.equal(selection.tried.length, 0);
    assert.ok(list.every((s) => s.active === 0));
  });

  test(`${name}: the pool rebuilds the policy on membership changes, with the array it then passes`, () => {
    const list = servers('a', 'b', 'c');
    const { policy, rebuilt, given } = spy(createPolicy(name));
    const pool = new Pool('p', policy, list);
    const ctx = { clientIp: '10.2.2.2' };
    candidates(pool, ctx);
    releaseAll(pool);
    assert.equal(rebuilt.length, 1);
    pool.setState(list[1]!, 'down', 'test');
    assert.ok(!candidates(pool, ctx).includes('b'));
    releaseAll(pool);
    assert.equal(rebuilt.length, 2);
    assert.deepEqual(
      rebuilt[1]!.map((s) => s.id),
      ['a', 'c'],
    );
    const d = server('d');
    pool.setServers([...list, d]);
    assert.equal([...candidates(pool, ctx)].sort().join(''), 'acd');
    releaseAll(pool);
    let sawD = false;
    for (let i = 0; i < 200 && !sawD; i++) sawD = first(pool, { clientIp: `10.3.${i}.${i}` }) === 'd';
    assert.ok(sawD, 'the new server is picked first at times');
    assert.equal(rebuilt.length, 3);
    // Every array handed to pick and fallback is the one of the last rebuild before it.
    for (const arr of given) assert.ok(rebuilt.includes(arr));
  });

  test(`${name}: backups take part only while no primary is eligible`, () => {
    const [a, b, x, y] = [
      server('a'),
      server('b'),
      server('x', { backup: true }),
      server('y', { backup: true }),
    ];
    const pool = new Pool('p', createPolicy(name), [x, a, y, b]);
    const ctx = { clientIp: '10.4.4.4' };
    assert.equal([...candidates(pool, ctx)].sort().join(''), 'ab');
    releaseAll(pool);
    pool.setState(a, 'down', 'test');
    assert.equal(candidates(pool, ctx), 'b');
    releaseAll(pool);
    pool.setState(b, 'maintenance', 'test');
    assert.equal([...candidates(pool, ctx)].sort().join(''), 'xy');
    releaseAll(pool);
    // Pinned to a backup while a primary is back: the primary is chosen.
    pool.setState(b, 'up', 'test');
    assert.equal(candidates(pool, ctx, x), 'b');
  });

  test(`${name}: weight 0 takes new work only when nothing else can`, () => {
    // Through a pool: weight 0 is not eligible while a positive weight is.
    const [a, z] = [server('a'), server('z', { weight: 0 })];
    const pool = new Pool('p', createPolicy(name), [z, a]);
    assert.equal(candidates(pool, { clientIp: '10.5.5.5' }), 'a');
    releaseAll(pool);
    pool.setState(a, 'down', 'test');
    assert.equal(candidates(pool, { clientIp: '10.5.5.5' }), 'z');
    releaseAll(pool);
    // The policy alone, with effective weights at 0 among others (slow start, or no pool):
    // weighted policies offer them only after every server of positive weight.
    const list = [
      server('z', { weight: 0 }),
      server('a'),
      server('y', { weight: 0 }),
      server('b', { weight: 2 }),
    ];
    const policy = createPolicy(name);
    policy.rebuild?.(list);
    for (let i = 0; i < 30; i++) {
      const ctx = { clientIp: `10.6.${i}.1` };
      const tried: Server[] = [policy.pick(list, ctx)];
      for (
        let s = policy.fallback(list, ctx, tried);
        s !== undefined;
        s = policy.fallback(list, ctx, tried)
      ) {
        assert.ok(!tried.includes(s), `${s.id} twice`);
        tried.push(s);
      }
      const order = tried.map((s) => s.id).join('');
      assert.equal([...order].sort().join(''), 'abyz', order);
      if (info.usesWeights) assert.match(order, /^(ab|ba)/, `${order}: weight 0 last`);
    }
  });

  test(`${name}: a request without retries allocates nothing in selection`, async () => {
    const list = [
      server('a', { weight: 3 }),
      server('b'),
      server('c', { weight: 2 }),
      server('d'),
      server('e'),
    ];
    const pool = new Pool('p', createPolicy(name), list);
    const selection = new Selection();
    const ctx = { clientIp: '198.51.100.23' };
    const requests = (n: number) => {
      for (let i = 0; i < n; i++) {
        selection.start(pool, ctx);
        // Cancelled: the lease is undone without statistics (their double arithmetic is not
        // selection, and how it is compiled varies from run to run).
        pool.release(selection.next()!, Outcome.Cancelled, i & 7);
      }
    };
    requests(100_000); // optimized before measuring
    // 16 bytes a request would be 16 MB: several young-generation collections at the least, in
    // every round. Unoptimized code boxes doubles, so a round that ran into a deoptimization (the
    // same code ran with another policy before) may see a few: the best of three rounds counts.
    let gcs = Number.POSITIVE_INFINITY;
    for (let round = 0; round < 3 && gcs > 1; round++) {
      gcs = Math.min(gcs, await collections(() => requests(1_000_000)));
    }
    assert.ok(gcs <= 1, `${gcs} garbage collections during 1,000,000 selections`);
  });
}
