import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IpHash } from '../../src/balancing/ipHash.js';
import { Server } from '../../src/core/server.js';

function server(id: string, weight = 1): Server {
  return new Server({ id, host: '127.0.0.1', port: 1, address: `127.0.0.1:${id}`, weight, backup: false });
}

function servers(...names: string[]): Server[] {
  return names.map((n) => server(n));
}

const KEYS = 10_000;
const ipv4 = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const ipv6 = (i: number): string => `2001:db8:${(i >> 12).toString(16)}::${(i & 0xfff).toString(16)}`;

function assign(policy: IpHash, list: readonly Server[], key: (i: number) => string = ipv4): string[] {
  const out: string[] = [];
  for (let i = 0; i < KEYS; i++) out.push(policy.pick(list, { clientIp: key(i) }).id);
  return out;
}

function ring(list: readonly Server[]): IpHash {
  const p = new IpHash();
  p.rebuild(list);
  return p;
}

function tally(ids: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const id of ids) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
}

test('ip-hash: a key always lands on the same server', () => {
  const list = servers('a', 'b', 'c', 'd', 'e');
  const p = ring(list);
  const first = assign(p, list);
  assert.deepEqual(assign(p, list), first);
  p.rebuild(list);
  assert.deepEqual(assign(p, list), first);
});

test('ip-hash: ring positions come from ids, not array order', () => {
  const list = servers('a', 'b', 'c', 'd', 'e');
  const reversed = [...list].reverse();
  assert.deepEqual(assign(ring(reversed), reversed), assign(ring(list), list));
  // Fresh Server objects with the same ids (a config reload) map keys the same way too.
  const reloaded = servers('c', 'e', 'a', 'd', 'b');
  assert.deepEqual(assign(ring(reloaded), reloaded), assign(ring(list), list));
});

test('ip-hash: spread over 4 servers is within ±25% of the fair share', () => {
  const list = servers('a', 'b', 'c', 'd');
  for (const key of [ipv4, ipv6]) {
    const counts = tally(assign(ring(list), list, key));
    assert.equal(counts.size, 4);
    for (const [id, n] of counts) assert.ok(n >= 1875 && n <= 3125, `${id}: ${n} of 10000`);
  }
});

test('ip-hash: IPv6 keys are stable and distinct from their IPv4 neighbours', () => {
  const list = servers('a', 'b', 'c');
  const p = ring(list);
  assert.deepEqual(assign(p, list, ipv6), assign(p, list, ipv6));
  assert.equal(p.pick(list, { clientIp: '::1' }), p.pick(list, { clientIp: '::1' }));
  assert.equal(
    p.pick(list, { clientIp: '2001:db8::8a2e:370:7334' }),
    p.pick(list, { clientIp: '2001:db8::8a2e:370:7334' }),
  );
});

test('ip-hash: removing 1 of 5 servers moves only its keys, spread over the other 4', () => {
  const list = servers('a', 'b', 'c', 'd', 'e');
  const before = assign(ring(list), list);
  const rest = list.filter((s) => s.id !== 'c');
  const after = assign(ring(rest), rest);
  const movedTo = new Map<string, number>();
  let moved = 0;
  for (let i = 0; i < KEYS; i++) {
    if (before[i] === 'c') {
      moved++;
      movedTo.set(after[i]!, (movedTo.get(after[i]!) ?? 0) + 1);
    } else {
      assert.equal(after[i], before[i], `key ${i} moved from ${before[i]} though it was not removed`);
    }
  }
  assert.ok(moved > 1500 && moved < 2500, `${moved} keys were on the removed server (1/5 expected)`);
  assert.equal(movedTo.size, 4);
  for (const [id, n] of movedTo) assert.ok(n > moved * 0.1, `${id} took only ${n} of ${moved} moved keys`);
});

test('ip-hash: adding a 5th server moves ~1/5 of the keys, all to the new server', () => {
  const four = servers('a', 'b', 'c', 'd');
  const five = [...four, server('e')];
  const before = assign(ring(four), four);
  const after = assign(ring(five), five);
  let moved = 0;
  for (let i = 0; i < KEYS; i++) {
    if (after[i] !== before[i]) {
      moved++;
      assert.equal(after[i], 'e', `key ${i} moved from ${before[i]} to ${after[i]}`);
    }
  }
  assert.ok(moved > 1500 && moved < 2500, `${moved} keys moved (1/5 expected)`);
});

test('ip-hash: weights are proportional', () => {
  const list = [server('a', 2), server('b', 1), server('c', 1)];
  const counts = tally(assign(ring(list), list));
  assert.ok(counts.get('a')! > 4300 && counts.get('a')! < 5700, `a: ${counts.get('a')}`);
});

test('ip-hash: slow start (effective weight rising) only moves keys to the ramping server', () => {
  const list = servers('a', 'b', 'c', 'd', 'e');
  const e = list[4]!;
  e.effectiveWeight = 0.25;
  const p = ring(list);
  const ramp = assign(p, list);
  const early = tally(ramp).get('e')!;
  assert.ok(early > 300 && early < 900, `e at a quarter weight got ${early} of 10000`);
  e.effectiveWeight = 1;
  p.rebuild(list);
  const full = assign(p, list);
  for (let i = 0; i < KEYS; i++) {
    if (full[i] !== ramp[i]) assert.equal(full[i], 'e', `key ${i} moved from ${ramp[i]} to ${full[i]}`);
  }
  // At full weight the ring is the one a fresh start builds.
  const fresh = servers('a', 'b', 'c', 'd', 'e');
  assert.deepEqual(full, assign(ring(fresh), fresh));
});

test('ip-hash: weight 0 owns no keys while others have weight', () => {
  const list = [server('a'), server('z', 0), server('b')];
  assert.equal(tally(assign(ring(list), list)).get('z'), undefined);
  const zeros = [server('y', 0), server('z', 0)];
  assert.equal(tally(assign(ring(zeros), zeros)).size, 2);
});

test('ip-hash: hashKey overrides the client address', () => {
  const list = servers('a', 'b', 'c', 'd');
  const p = ring(list);
  for (let i = 0; i < 100; i++) {
    const bySession = p.pick(list, { clientIp: ipv4(i), hashKey: `session-${i}` });
    assert.equal(p.pick(list, { clientIp: ipv4(i + 1000), hashKey: `session-${i}` }), bySession);
    assert.equal(p.pick(list, { clientIp: `session-${i}` }), bySession);
  }
});

test('ip-hash: a fallback gets the next server clockwise, as if the tried one were gone', () => {
  const list = servers('a', 'b', 'c', 'd', 'e');
  const p = ring(list);
  const first = assign(p, list);
  const withoutEach = new Map(list.map((s) => [s, list.filter((o) => o !== s)]));
  const reference = new Map(list.map((s) => [s.id, assign(ring(withoutEach.get(s)!), withoutEach.get(s)!)]));
  for (let i = 0; i < KEYS; i++) {
    const excluded = list.find((s) => s.id === first[i])!;
    const retry = p.fallback(list, { clientIp: ipv4(i) }, [excluded])!;
    assert.notEqual(retry, excluded);
    assert.equal(retry.id, reference.get(excluded.id)![i]);
  }
  // The fast path is unchanged afterwards.
  assert.deepEqual(assign(p, list), first);
});

test('ip-hash: a fallback to weight-0 servers still yields one of them, consistently', () => {
  const a = server('a');
  const y = server('y', 0);
  const z = server('z', 0);
  const list = [a, y, z];
  const p = ring(list);
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const got = p.fallback(list, { clientIp: ipv4(i) }, [a])!;
    assert.ok(got === y || got === z);
    assert.equal(p.fallback(list, { clientIp: ipv4(i) }, [a]), got);
    const last = p.fallback(list, { clientIp: ipv4(i) }, [a, got]);
    assert.equal(last, got === y ? z : y, 'then the other one');
    assert.equal(p.fallback(list, { clientIp: ipv4(i) }, [a, y, z]), undefined);
    seen.add(got.id);
  }
  assert.equal(seen.size, 2);
});

test('ip-hash: without a rebuild the given array is adopted', () => {
  const list = servers('a', 'b', 'c');
  assert.deepEqual(assign(new IpHash(), list), assign(ring(list), list));
});
