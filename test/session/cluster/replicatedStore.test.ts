/**
 * ReplicatedStore in one process, several nodes on loopback: the SessionStore contract, then
 * replication in both modes, versions, expiry, failover, joining, and refusing bad peers. The
 * same scenarios run as separate processes behind the balancer in test/e2e/sessionCluster.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { after, test } from 'node:test';
import { encodeFrame, FrameDecoder, FrameType } from '../../../src/session/cluster/frames.js';
import { splitAddress } from '../../../src/session/cluster/membership.js';
import { handshakeMac } from '../../../src/session/cluster/peerConnection.js';
import { ReplicatedStore, type ReplicationMode } from '../../../src/session/index.js';
import { storeContract } from '../storeContract.js';

const quiet = process.env.CLUSTER_DEBUG ? console : { warn: () => {} };
const SECRET = 'test-cluster-secret';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sid = () => randomBytes(18).toString('base64url');
/** Fast failure detection for tests: gone after ~300–500 ms of silence. */
const FAST = { heartbeatMs: 100, missedHeartbeats: 3, requestTimeoutMs: 300 };

const open = new Set<ReplicatedStore>();
after(async () => {
  await Promise.all([...open].map((s) => s.close()));
});

function node(
  mode: ReplicationMode,
  peers: string[],
  extra: Partial<ConstructorParameters<typeof ReplicatedStore>[0]> = {},
) {
  const store = new ReplicatedStore({
    mode,
    listen: '127.0.0.1:0',
    peers,
    secret: SECRET,
    logger: quiet,
    ...FAST,
    ...extra,
  });
  open.add(store);
  return store;
}

async function stop(store: ReplicatedStore): Promise<void> {
  open.delete(store);
  await store.close();
}

/** n nodes, the first one seeding the others (who learn each other through it). */
async function cluster(n: number, mode: ReplicationMode, extra = {}): Promise<ReplicatedStore[]> {
  const first = node(mode, [], extra);
  await first.ready();
  const rest = Array.from({ length: n - 1 }, () => node(mode, [first.node], extra));
  await Promise.all(rest.map((s) => s.ready()));
  const nodes = [first, ...rest];
  await until(() => nodes.every((s) => s.members().length === n - 1), `${n} nodes see each other`);
  return nodes;
}

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

async function closeAll(nodes: ReplicatedStore[]): Promise<void> {
  await Promise.all(nodes.map(stop));
}

// The contract, against one node of a live two-node cluster.
for (const mode of ['all-to-all', 'primary-backup'] as const) {
  let seed: ReplicatedStore | undefined;
  storeContract(
    `cluster (${mode})`,
    () => {
      seed ??= node(mode, []);
      return node(mode, [seed.node]);
    },
    { largeBytes: 4 * 1024 * 1024 },
  );
}

test('handshake: a peer with the wrong secret is refused and never becomes a member', async () => {
  const [a, b] = await cluster(2, 'all-to-all');
  const intruder = node('all-to-all', [a!.node], { secret: 'wrong' });
  await intruder.ready();
  await until(() => a!.stats().refusedPeers > 0 && intruder.stats().refusedPeers > 0, 'both refuse');
  assert.deepEqual(intruder.members(), []);
  assert.deepEqual(a!.members(), [b!.node]);
  await a!.set('s', { ok: 1 }, 60);
  assert.equal(await intruder.get('s'), null);
  const other = node('primary-backup', [a!.node]);
  await other.ready();
  await until(() => a!.stats().refusedPeers > 1, 'a mode mismatch is refused too');
  assert.deepEqual(other.members(), []);
  await closeAll([a!, b!, intruder, other]);
});

test('handshake: garbage before authentication, or a malformed frame after it, closes that connection only', async () => {
  const [a, b] = await cluster(2, 'all-to-all');
  const garbage = connect(a!.port, '127.0.0.1');
  garbage.on('error', () => {});
  garbage.resume(); // read, or the close is never noticed
  garbage.write(randomBytes(64));
  await once(garbage, 'close');

  // A real handshake with the secret, then a frame whose length field lies.
  const sock = connect(a!.port, '127.0.0.1');
  sock.on('error', () => {});
  const decoder = new FrameDecoder();
  const myNonce = 'n0nce';
  sock.write(
    encodeFrame(FrameType.hello, { node: '127.0.0.1:1', boot: 'b', nonce: myNonce, mode: 'all-to-all' }),
  );
  let authed = false;
  sock.on('data', (chunk: Buffer) => {
    for (const frame of decoder.push(chunk)) {
      if (frame.type === FrameType.hello) {
        const mac = handshakeMac(SECRET, String(frame.header.nonce), '127.0.0.1:1', 'b').toString('base64');
        sock.write(encodeFrame(FrameType.auth, { mac }));
      }
      if (frame.type === FrameType.auth) authed = true;
    }
  });
  await until(() => authed, 'the handshake completes');
  await sleep(50);
  sock.write(Buffer.from([0, 0, 0, 9, 200, 0, 0, 0, 0, 1, 2, 3, 4]));
  await once(sock, 'close');
  assert.ok(a!.stats().malformedFrames >= 1);
  assert.ok(a!.stats().refusedPeers >= 1, 'the garbage connection was refused');
  // The real peer is unaffected.
  assert.ok(a!.members().includes(b!.node));
  await a!.set('after', { n: 1 }, 60);
  await until(() => b!.locate('after') !== undefined, 'replication still flows');
  await closeAll([a!, b!]);
});

test('all-to-all: every change reaches every node; reads are local', async () => {
  const nodes = await cluster(3, 'all-to-all');
  const [a, b, c] = nodes as [ReplicatedStore, ReplicatedStore, ReplicatedStore];
  await a.set('k', { n: 1 }, 60);
  await until(() => nodes.every((s) => s.locate('k')?.hasValue === true), 'all hold the value');
  const fetchesBefore = b.stats().remoteFetches;
  assert.deepEqual(await b.get('k'), { n: 1 });
  assert.equal(b.stats().remoteFetches, fetchesBefore, 'read locally');
  await c.set('k', { n: 2 }, 60);
  await until(() => a.stats().values === 1 && a.locate('k')?.primary === c.node, 'c wrote last');
  assert.deepEqual(await a.get('k'), { n: 2 });

  // Expiry is one absolute time everywhere, and touch moves it everywhere.
  const expiries = nodes.map((s) => s.locate('k')!.expiresAt);
  assert.equal(new Set(expiries).size, 1);
  assert.equal(await b.touch('k', 120), true);
  await until(() => nodes.every((s) => s.locate('k')!.expiresAt > expiries[0]! + 30_000), 'touch replicated');
  assert.equal(new Set(nodes.map((s) => s.locate('k')!.expiresAt)).size, 1);

  await b.destroy('k');
  await until(() => nodes.every((s) => s.locate('k') === undefined), 'destroy replicated');
  assert.equal(await a.get('k'), null);
  await closeAll(nodes);
});

test('concurrent writes to one session on two nodes converge on the same winner everywhere', async () => {
  for (const mode of ['all-to-all', 'primary-backup'] as const) {
    const nodes = await cluster(3, mode);
    const [a, b, c] = nodes as [ReplicatedStore, ReplicatedStore, ReplicatedStore];
    for (let round = 0; round < 20; round++) {
      await Promise.all([a.set('race', { by: 'a', round }, 60), b.set('race', { by: 'b', round }, 60)]);
    }
    await sleep(100);
    const seen = await Promise.all([c.get('race'), a.get('race'), b.get('race')]);
    assert.equal(seen[0]!.round, 19, mode);
    assert.deepEqual(seen[1], seen[0], `${mode}: a agrees with c`);
    assert.deepEqual(seen[2], seen[0], `${mode}: b agrees with c`);
    await closeAll(nodes);
  }
});

test('primary-backup: the writer is primary, one backup holds the value, the rest only the id', async () => {
  const nodes = await cluster(4, 'primary-backup');
  const [a] = nodes as [ReplicatedStore];
  const ids = Array.from({ length: 40 }, sid);
  for (const id of ids) await a.set(id, { id, pad: 'x'.repeat(500) }, 60);
  await until(() => nodes.every((s) => s.stats().sessions === 40), 'every node knows every id');
  for (const id of ids) {
    const where = a.locate(id)!;
    assert.equal(where.primary, a.node);
    assert.notEqual(where.backup, a.node);
    const holders = nodes.filter((s) => s.locate(id)?.hasValue);
    assert.deepEqual(holders.map((s) => s.node).sort(), [a.node, where.backup].sort(), 'exactly two copies');
  }
  const backups = new Set(ids.map((id) => a.locate(id)!.backup));
  assert.equal(backups.size, 3, 'backups are spread over the other members');
  const copies = nodes.reduce((sum, s) => sum + s.stats().values, 0);
  assert.equal(copies, 80);
  await closeAll(nodes);
});

test('primary-backup: a read on a node holding only the id fetches the value and takes over', async () => {
  const nodes = await cluster(3, 'primary-backup');
  const [a] = nodes as [ReplicatedStore];
  await a.set('s', { n: 7 }, 60);
  await until(() => nodes.every((s) => s.locate('s') !== undefined), 'index replicated');
  const backup = a.locate('s')!.backup;
  const reader = nodes.find((s) => s.node !== a.node && s.node !== backup)!;
  assert.equal(reader.locate('s')!.hasValue, false);
  assert.deepEqual(await reader.get('s'), { n: 7 });
  assert.equal(reader.stats().remoteFetches, 1);
  await until(
    () => nodes.every((s) => s.locate('s')?.primary === reader.node),
    'everyone knows the new primary',
  );
  const now = reader.locate('s')!;
  assert.equal(now.hasValue, true);
  const holders = nodes.filter((s) => s.locate('s')?.hasValue).map((s) => s.node);
  assert.deepEqual(holders.sort(), [reader.node, now.backup].sort(), 'still exactly two copies');
  await closeAll(nodes);
});

test('sync: a write resolves once the replicas hold it', async () => {
  for (const mode of ['all-to-all', 'primary-backup'] as const) {
    const nodes = await cluster(3, mode, { sync: true });
    const [a] = nodes as [ReplicatedStore];
    for (let i = 0; i < 20; i++) {
      await a.set(`k${i}`, { i }, 60);
      const holders = nodes.filter((s) => s.locate(`k${i}`)?.hasValue).length;
      assert.equal(holders, mode === 'all-to-all' ? 3 : 2, `${mode}: replicas hold k${i} when set resolves`);
    }
    await closeAll(nodes);
  }
});

test('sync primary-backup: a write just after its backup died gets another backup, and the old copies stop serving', async () => {
  const nodes = await cluster(3, 'primary-backup', { sync: true });
  const [a, c, x] = nodes as [ReplicatedStore, ReplicatedStore, ReplicatedStore];
  let id = sid();
  for (let i = 0; i < 200; i++) {
    await a.set(id, { n: 1 }, 60);
    if (a.locate(id)!.backup === x.node) break;
    id = sid();
  }
  assert.equal(a.locate(id)!.backup, x.node, 'a session backed up on x');
  await stop(x); // dead, not yet declared gone
  assert.deepEqual(await c.get(id), { n: 1 });
  await c.set(id, { n: 2 }, 60);
  assert.equal(c.locate(id)!.backup, a.node, 'the backup is a live member, not x');
  assert.deepEqual(await a.get(id), { n: 2 }, 'the former primary serves the new version at once');
  await closeAll([a, c]);
});

test('primary-backup: when a primary dies its backup takes over; when a backup dies the primary picks another', async () => {
  const nodes = await cluster(4, 'primary-backup');
  const [a, b] = nodes as [ReplicatedStore, ReplicatedStore];
  const ids = Array.from({ length: 60 }, sid);
  for (const [i, id] of ids.entries()) await (i % 2 === 0 ? a : b).set(id, { id }, 60);
  await until(() => nodes.every((s) => s.stats().sessions === 60), 'replicated');
  const survivors = nodes.filter((s) => s !== a);
  const backedUpByA = ids.filter((id) => b.locate(id)?.backup === a.node);
  await stop(a);
  await until(() => survivors.every((s) => !s.members().includes(a.node)), 'a declared gone', 5000);
  await until(
    () => ids.every((id) => survivors.filter((s) => s.locate(id)?.hasValue).length === 2),
    'every session has two copies again',
  );
  for (const id of ids) {
    const where = survivors[0]!.locate(id)!;
    assert.notEqual(where.primary, a.node);
    assert.notEqual(where.backup, a.node);
    assert.deepEqual(await survivors[2]!.get(id), { id });
  }
  assert.ok(backedUpByA.length > 0);
  assert.equal(
    survivors.reduce((n, s) => n + s.stats().lost, 0),
    0,
    'nothing lost',
  );
  assert.ok(
    survivors.reduce((n, s) => n + s.stats().promoted, 0) >= 25,
    'a’s sessions taken over by backups',
  );
  await closeAll(survivors);
});

test('a node that closes tells the others, who take over its sessions at once', async () => {
  // Slow heartbeats: without the goodbye, the others would need 3 s to notice.
  const nodes = await cluster(3, 'primary-backup', { heartbeatMs: 1000, missedHeartbeats: 3 });
  const [a, b, c] = nodes as [ReplicatedStore, ReplicatedStore, ReplicatedStore];
  for (let i = 0; i < 20; i++) await a.set(`s${i}`, { i }, 60);
  await until(() => [b, c].every((s) => s.stats().sessions === 20), 'replicated');
  const started = Date.now();
  await stop(a);
  await until(() => [b, c].every((s) => s.members().length === 1), 'b and c see a gone', 1000);
  assert.ok(Date.now() - started < 1000, `noticed after ${Date.now() - started} ms`);
  await until(
    () =>
      Array.from({ length: 20 }, (_, i) => `s${i}`).every((id) =>
        [b, c].every((s) => s.locate(id)?.hasValue),
      ),
    'both survivors hold every session',
  );
  assert.equal(b.stats().promoted + c.stats().promoted, 20);
  await closeAll([b, c]);
});

test('primary-backup: a primary and its backup dying together lose exactly their sessions, counted', async () => {
  const nodes = await cluster(4, 'primary-backup');
  const [a, b, c, d] = nodes as [ReplicatedStore, ReplicatedStore, ReplicatedStore, ReplicatedStore];
  const ids = Array.from({ length: 80 }, sid);
  for (const [i, id] of ids.entries()) await nodes[i % 4]!.set(id, { id }, 60);
  await until(() => nodes.every((s) => s.stats().sessions === 80), 'replicated');
  const pair = new Set([a.node, b.node]);
  const doomed = ids.filter((id) => {
    const where = c.locate(id)!;
    return pair.has(where.primary) && pair.has(where.backup);
  });
  assert.ok(doomed.length > 0, 'some sessions live only on a and b');
  await Promise.all([stop(a), stop(b)]);
  await until(() => [c, d].every((s) => s.members().length === 1), 'a and b declared gone', 5000);
  await until(
    () => [c, d].every((s) => s.stats().lost === doomed.length),
    `${doomed.length} lost on c and d`,
  );
  for (const id of ids) {
    const value = await d.get(id);
    if (doomed.includes(id)) assert.equal(value, null);
    else assert.deepEqual(value, { id });
  }
  await closeAll([c, d]);
});

test('a node joining an existing cluster pulls its state before it is ready', async () => {
  for (const mode of ['all-to-all', 'primary-backup'] as const) {
    const nodes = await cluster(3, mode);
    const ids = Array.from({ length: 50 }, sid);
    for (const [i, id] of ids.entries()) await nodes[i % 3]!.set(id, { id }, 60);
    await nodes[0]!.destroy(ids[0]!);
    await sleep(50);
    const late = node(mode, [nodes[2]!.node]);
    await late.ready();
    assert.equal(late.stats().sessions, 49, `${mode}: the joiner knows every live session at once`);
    assert.equal(late.stats().values, mode === 'all-to-all' ? 49 : 0);
    assert.equal(await late.get(ids[0]!), null, 'the destroyed one stays destroyed');
    for (const id of ids.slice(1)) assert.deepEqual(await late.get(id), { id });
    await until(() => nodes.every((s) => s.members().includes(late.node)), 'every member knows the joiner');
    await closeAll([...nodes, late]);
  }
});

test('a node that is alone serves at once, and finds its peers when they come', async () => {
  const first = node('all-to-all', ['127.0.0.1:1']); // nothing listens on port 1
  const started = Date.now();
  await first.ready();
  assert.ok(Date.now() - started < 2000, 'a refused peer does not hold up readiness');
  await first.set('early', { n: 1 }, 60);
  const second = node('all-to-all', [first.node]);
  await second.ready();
  assert.deepEqual(await second.get('early'), { n: 1 });
  await closeAll([first, second]);
});

// --- forgetting members learned at run time -------------------------------------------------------

/**
 * Listens where a dead node listened and counts the dials that reach it, by dialer (the node id in
 * the hello every dial opens with); each is closed once its hello is read.
 */
async function dialCounter(address: string) {
  const { host, port } = splitAddress(address);
  const dials = new Map<string, number>();
  const server = createServer((socket) => {
    socket.on('error', () => {});
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        if (frame.type !== FrameType.hello) continue;
        const from = String(frame.header.node);
        dials.set(from, (dials.get(from) ?? 0) + 1);
        socket.destroy();
        return;
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    from: (node: string) => dials.get(node) ?? 0,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * A hand-made member connected to `store`: it authenticates, answers pings, and records every
 * member list the store sends it. Its id is an address nobody can dial, so the others see it up
 * only through the store (as if cut off from them).
 */
async function listeningPeer(store: ReplicatedStore, id = '127.0.0.1:1') {
  const lists: string[][] = [];
  const sock = connect(store.port, '127.0.0.1');
  sock.on('error', () => {});
  const decoder = new FrameDecoder();
  const boot = randomBytes(4).toString('hex');
  sock.write(encodeFrame(FrameType.hello, { node: id, boot, nonce: 'n0nce', mode: store.mode }));
  let authed = false;
  sock.on('data', (chunk: Buffer) => {
    for (const frame of decoder.push(chunk)) {
      const h = frame.header;
      if (frame.type === FrameType.hello) {
        const mac = handshakeMac(SECRET, String(h.nonce), id, boot).toString('base64');
        sock.write(encodeFrame(FrameType.auth, { mac }));
      } else if (frame.type === FrameType.auth) {
        authed = true;
      } else if (frame.type === FrameType.members) {
        lists.push(h.ids as string[]);
      } else if (frame.type === FrameType.ping) {
        // A sign of life either way; a re-check ping wants its answer.
        sock.write(encodeFrame(typeof h.seq === 'number' ? FrameType.pong : FrameType.ping, { re: h.seq }));
      }
    }
  });
  await until(() => authed, 'the hand-made member authenticates');
  return { id, lists, close: () => sock.destroy() };
}

test('a member learned at run time that stays gone is forgotten; a static peer is redialed still; it may come back', async () => {
  const FORGET_MS = 2000;
  const s = node('all-to-all', []);
  await s.ready();
  // a has s as a static peer, and learns x when x connects.
  const a = node('all-to-all', [s.node], { forgetAfterMs: FORGET_MS });
  await a.ready();
  const x = node('all-to-all', [a.node]);
  await x.ready();
  await until(() => [a, s, x].every((n) => n.members().length === 2), 'the three see each other');
  const [sAddress, xAddress] = [s.node, x.node];
  await Promise.all([stop(s), stop(x)]);
  const deadS = await dialCounter(sAddress);
  const deadX = await dialCounter(xAddress);
  try {
    await until(() => deadS.from(a.node) > 0 && deadX.from(a.node) > 0, 'a redials both', FORGET_MS);
    await until(() => a.stats().forgottenMembers === 1, 'a forgets x', FORGET_MS + 5000);
    assert.deepEqual(a.stats().members, [{ id: sAddress, state: 'gone' }], 'the static peer is kept');
    const [sDials, xDials] = [deadS.from(a.node), deadX.from(a.node)];
    // Backoff reaches 5 s: two more dials to s leave x more than enough time to be dialed again.
    await until(() => deadS.from(a.node) >= sDials + 2, 'a still redials s', 15_000);
    assert.equal(deadX.from(a.node), xDials, 'x not dialed since it was forgotten');
  } finally {
    await Promise.all([deadS.close(), deadX.close()]);
  }
  // x comes back on the same address: a new member, accepted as any other.
  const back = node('all-to-all', [a.node], { listen: xAddress });
  await back.ready();
  await until(() => a.members().includes(xAddress), 'a accepts x back');
  await a.set('k', { n: 1 }, 60);
  await until(() => back.locate('k')?.hasValue === true, 'replication reaches it');
  assert.equal(a.stats().forgottenMembers, 1);
  await closeAll([a, back]);
});

test('members pass on only the members they see up: a forgotten member is not taught back', async () => {
  // b keeps x as gone (default bound: 10 minutes) long after a has forgotten it.
  const b = node('all-to-all', []);
  await b.ready();
  const a = node('all-to-all', [b.node], { forgetAfterMs: 500 });
  const x = node('all-to-all', [b.node]);
  await Promise.all([a.ready(), x.ready()]);
  await until(() => [a, b, x].every((n) => n.members().length === 2), 'the three see each other');
  const xAddress = x.node;
  await stop(x);
  const deadX = await dialCounter(xAddress);
  try {
    await until(() => a.stats().forgottenMembers === 1, 'a forgets x');
    const xDials = deadX.from(a.node);
    // A member that only b sees up: it reaches a through b's periodic member list (as a node
    // cut off from a would), so b has told a whom it sees since a forgot x.
    const peer = await listeningPeer(b);
    try {
      await until(() => a.stats().members.some((m) => m.id === peer.id), 'b’s member list reaches a');
      assert.equal(b.stats().members.find((m) => m.id === xAddress)?.state, 'gone', 'b still knows x');
      assert.ok(!a.stats().members.some((m) => m.id === xAddress), 'a did not learn x again');
      assert.equal(deadX.from(a.node), xDials, 'nor dial it');
      assert.ok(deadX.from(b.node) > 0, 'while b, which has not forgotten x, still does');
      assert.ok(peer.lists.length >= 2, 'lists on connecting and periodically');
      for (const ids of peer.lists) assert.ok(!ids.includes(xAddress), `x is not passed on: ${ids}`);
    } finally {
      peer.close();
    }
  } finally {
    await deadX.close();
  }
  await closeAll([a, b]);
});

test('forgetAfterMs must be positive', () => {
  for (const forgetAfterMs of [0, -1, Number.NaN]) {
    assert.throws(
      () => new ReplicatedStore({ listen: '127.0.0.1:0', secret: SECRET, forgetAfterMs }),
      /forgetAfterMs/,
    );
  }
});
