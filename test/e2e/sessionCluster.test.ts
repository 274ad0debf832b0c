/**
 * Session clustering end to end, through the real CLI: `fulcrum backend --session-store cluster`
 * processes replicating sessions between themselves (all-to-all and primary-backup), a
 * `fulcrum start` balancer doing round robin in front, browsers with cookie jars. Nodes are killed
 * with SIGKILL, join a running cluster, or try to get in with the wrong secret or garbage.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, test } from 'node:test';
import type { ReplicationMode } from '../../src/session/index.js';
import { canConnect, freePort, httpGet, runCli, spawnBackend, spawnCli } from '../helpers/processes.js';
import { ClusterLab, type ClusterNode, until, upMembers } from '../helpers/sessionCluster.js';
import { Browser } from '../session/browser.js';

const MODES: readonly ReplicationMode[] = ['all-to-all', 'primary-backup'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const labs = new Set<ClusterLab>();
after(async () => {
  await Promise.all([...labs].map((lab) => lab.close()));
});

/** A lab for one test, closed (every process stopped by PID) whatever happens. */
async function withLab(mode: ReplicationMode, body: (lab: ClusterLab) => Promise<void>): Promise<void> {
  const lab = new ClusterLab(mode);
  labs.add(lab);
  try {
    await body(lab);
    assert.deepEqual(
      lab.crashed().map((p) => p.output),
      [],
      'no process exited on its own',
    );
  } finally {
    await lab.close();
    labs.delete(lab);
  }
}

interface Hit {
  server: string;
  count: number;
  sessionId: string;
  primary: string;
  backup: string;
}

async function hit(browser: Browser): Promise<Hit> {
  const reply = await browser.get('/session');
  assert.equal(reply.status, 200, reply.body);
  return reply.json<Hit>();
}

const byAddress = (nodes: readonly ClusterNode[], address: string): ClusterNode => {
  const node = nodes.find((n) => n.address === address);
  assert.ok(node, `${address} is one of the nodes`);
  return node;
};

// --- a. one counter across all servers -----------------------------------------------------------

for (const mode of MODES) {
  for (const n of [3, 5]) {
    test(`${mode}, ${n} nodes behind the balancer: one session counts 1..${3 * n} across all servers`, () =>
      withLab(mode, async (lab) => {
        const nodes = await lab.startCluster(n);
        const browser = new Browser(await lab.startBalancer(nodes));
        const seen: Hit[] = [];
        for (let i = 0; i < 3 * n; i++) seen.push(await hit(browser));

        assert.deepEqual(
          seen.map((h) => h.count),
          Array.from({ length: 3 * n }, (_, i) => i + 1),
        );
        assert.equal(new Set(seen.map((h) => h.sessionId)).size, 1, 'one session throughout');
        assert.deepEqual(new Set(seen.map((h) => h.server)), new Set(nodes.map((node) => node.name)));
        for (const h of seen) {
          // The node that wrote the session last is where it lives; a backup elsewhere, or none.
          const server = nodes.find((node) => node.name === h.server)!;
          assert.equal(h.primary, server.address, JSON.stringify(h));
          if (mode === 'all-to-all') assert.equal(h.backup, '');
          else
            assert.ok(
              nodes.some((node) => node !== server && node.address === h.backup),
              JSON.stringify(h),
            );
        }
      }));
  }
}

// --- b. a node killed under load -----------------------------------------------------------------

interface Answer {
  /** ms since the test started. */
  at: number;
  status: number;
  hit?: Hit;
  /** Body of a non-200 answer, or the error of a request that got no answer. */
  error?: string;
}

for (const [mode, sync] of MODES.flatMap((m) => [[m, true] as const, [m, false] as const])) {
  const how = sync ? '--cluster-sync' : '(asynchronous)';
  test(`${mode} ${how}: a node SIGKILLed under load (20 browsers) restarts no session`, (t) =>
    withLab(mode, async (lab) => {
      const nodes = await lab.startCluster(3, { sync });
      const port = await lab.startBalancer(nodes);
      const t0 = Date.now();
      const browsers = Array.from({ length: 20 }, () => new Browser(port));
      const answers: Answer[][] = browsers.map(() => []);
      let running = true;
      const loops = browsers.map(async (browser, i) => {
        while (running) {
          try {
            const reply = await browser.get('/session');
            const at = Date.now() - t0;
            if (reply.status === 200) answers[i]!.push({ at, status: 200, hit: reply.json<Hit>() });
            else answers[i]!.push({ at, status: reply.status, error: reply.body });
          } catch (err) {
            answers[i]!.push({ at: Date.now() - t0, status: 0, error: String(err) });
            await sleep(20);
          }
        }
      });
      const done = (from: number[]) => answers.every((a, i) => a.length >= from[i]!);
      try {
        await until('4 rounds per browser', () => done(answers.map(() => 4)), 20_000);

        // The node that is primary of the most sessions right now (in all-to-all: the last writer).
        const latest = answers.map((a) => a.findLast((x) => x.hit)?.hit);
        const primaries = new Map<string, number>();
        for (const h of latest) if (h) primaries.set(h.primary, (primaries.get(h.primary) ?? 0) + 1);
        const [victimAddress, sessionsOnVictim] = [...primaries].sort((x, y) => y[1] - x[1])[0]!;
        const victim = byAddress(nodes, victimAddress);
        const survivors = nodes.filter((n) => n !== victim);
        t.diagnostic(`killing ${victim.name} (${victim.address}), primary of ${sessionsOnVictim} session(s)`);
        await lab.kill(victim);
        const killedAt = Date.now() - t0;

        await sleep(3000);
        const mark = answers.map((a) => a.length);
        await until('3 more rounds per browser', () => done(mark.map((m) => m + 3)), 20_000);
        running = false;
        await Promise.all(loops);

        const failures: string[] = [];
        const repeats: string[] = [];
        for (const [i, list] of answers.entries()) {
          let previous: Answer | undefined;
          for (const a of list) {
            if (!a.hit) {
              failures.push(`browser ${i} at ${a.at - killedAt} ms from the kill: ${a.status} ${a.error}`);
              continue;
            }
            const h = a.hit;
            const story = () =>
              `browser ${i}: ${[previous!, a].map((x) => `${JSON.stringify(x.hit)} at ${x.at - killedAt} ms`).join(' then ')} (ms from the kill of ${victim.name} ${victim.address})`;
            if (previous === undefined) {
              assert.equal(h.count, 1, `browser ${i}: its first answer starts its session`);
            } else {
              // No session restarted: same id, and never back to 1.
              assert.equal(h.sessionId, previous.hit!.sessionId, story());
              assert.notEqual(h.count, 1, story());
              if (h.count <= previous.hit!.count) repeats.push(story());
            }
            previous = a;
          }
          // The rounds after the kill window all answered, by the survivors.
          for (const a of list.slice(mark[i])) {
            assert.equal(a.status, 200, `browser ${i} after the kill window: ${a.error}`);
            assert.notEqual(a.hit!.server, victim.name);
          }
        }
        // Asynchronous writes may lose the very last write of a killed node (a count repeats,
        // the session survives); synchronous ones may not.
        if (sync) assert.deepEqual(repeats, [], 'counts strictly increase per browser (no update lost)');
        for (const r of sync ? [] : repeats) t.diagnostic(`repeated: ${r}`);
        const total = answers.reduce((n, a) => n + a.length, 0);
        t.diagnostic(
          `${total} requests, ${failures.length} without a 200, ${repeats.length} count(s) repeated`,
        );
        for (const f of failures) t.diagnostic(f);
        // GET is retried on another server when one is killed: nothing should reach the browser.
        assert.deepEqual(failures, []);

        // The survivors saw the node go, and lost nothing.
        await until('the survivors declare the victim gone', async () => {
          for (const s of survivors) {
            const stats = await lab.stats(s);
            if (stats.members.find((m) => m.id === victim.address)?.state !== 'gone') return false;
          }
          return true;
        });
        for (const s of survivors) {
          const stats = await lab.stats(s);
          t.diagnostic(
            `${s.name}: lost ${stats.lost}, promoted ${stats.promoted}, unacknowledged ${stats.unacknowledged}, remote fetches ${stats.remoteFetches}`,
          );
          assert.equal(stats.lost, 0, `${s.name} lost no session`);
        }
      } finally {
        running = false;
        await Promise.all(loops);
      }
    }));
}

// --- c. two nodes killed together ----------------------------------------------------------------

test('primary-backup, 4 nodes: two nodes SIGKILLed together lose exactly the sessions they both held', (t) =>
  withLab('primary-backup', async (lab) => {
    const nodes = await lab.startCluster(4);
    const SESSIONS = 30;
    const browsers = Array.from(
      { length: SESSIONS },
      (_, i) => new Browser(nodes[i % nodes.length]!.httpPort),
    );
    const first: Hit[] = [];
    for (const b of browsers) first.push(await hit(b));
    // Every node knows every session; each value is held twice (primary and backup).
    await until('replication settles', async () => {
      const all = await Promise.all(nodes.map((n) => lab.stats(n)));
      return (
        all.every((s) => s.sessions === SESSIONS) && all.reduce((n, s) => n + s.values, 0) === 2 * SESSIONS
      );
    });

    // The pair of nodes holding both copies of the most sessions.
    const pairs = new Map<string, number>();
    const pairOf = (h: Hit) => [h.primary, h.backup].sort().join(' ');
    for (const h of first) pairs.set(pairOf(h), (pairs.get(pairOf(h)) ?? 0) + 1);
    const [pair, expectedLost] = [...pairs].sort((x, y) => y[1] - x[1])[0]!;
    const [x, y] = pair.split(' ').map((address) => byAddress(nodes, address)) as [ClusterNode, ClusterNode];
    const survivors = nodes.filter((n) => n !== x && n !== y);
    t.diagnostic(
      `killing ${x.name} and ${y.name}: ${expectedLost} of ${SESSIONS} sessions have both copies there`,
    );
    assert.ok(expectedLost > 0);

    await Promise.all([lab.kill(x), lab.kill(y)]);
    await until('the survivors declare both gone', async () => {
      for (const s of survivors) {
        const states = new Map((await lab.stats(s)).members.map((m) => [m.id, m.state]));
        if (states.get(x.address) !== 'gone' || states.get(y.address) !== 'gone') return false;
      }
      return true;
    });
    for (const s of survivors) {
      const stats = await lab.stats(s);
      t.diagnostic(`${s.name}: lost ${stats.lost}, promoted ${stats.promoted}`);
      assert.equal(stats.lost, expectedLost, `${s.name} counted the sessions lost`);
    }

    for (const [i, b] of browsers.entries()) {
      b.port = survivors[i % survivors.length]!.httpPort;
      const before = first[i]!;
      const now = await hit(b);
      if (pairOf(before) === pair) {
        assert.equal(now.count, 1, `session ${i} (${pairOf(before)}) is lost: it starts over`);
        assert.notEqual(now.sessionId, before.sessionId);
      } else {
        assert.equal(now.count, 2, `session ${i} (${pairOf(before)}) continues`);
        assert.equal(now.sessionId, before.sessionId);
      }
    }
    for (const s of survivors) assert.equal(s.proc.exited, false, `${s.name} is still running`);
  }));

// --- d. a node joins a running cluster -----------------------------------------------------------

for (const mode of MODES) {
  test(`${mode}: a node joining with one peer serves the existing sessions and becomes a member`, () =>
    withLab(mode, async (lab) => {
      const nodes = await lab.startCluster(3);
      const browsers = Array.from({ length: 6 }, (_, i) => new Browser(nodes[i % 3]!.httpPort));
      const before: Hit[] = [];
      for (const [i, b] of browsers.entries()) {
        await hit(b);
        b.port = nodes[(i + 1) % 3]!.httpPort;
        before.push(await hit(b));
      }
      assert.ok(before.every((h) => h.count === 2));
      await until('replication settles', async () =>
        (await Promise.all(nodes.map((n) => lab.stats(n)))).every((s) => s.sessions === browsers.length),
      );

      const joiner = await lab.startNode('d', { peers: [nodes[0]!.address] });
      const health = await new Browser(joiner.httpPort).get('/health');
      assert.equal(health.status, 200);
      for (const [i, b] of browsers.entries()) {
        b.port = joiner.httpPort;
        const now = await hit(b);
        assert.equal(now.server, 'd');
        assert.equal(now.sessionId, before[i]!.sessionId);
        assert.equal(now.count, 3, `session ${i} continues on the new node`);
      }
      await lab.meshed([...nodes, joiner]);
      for (const node of nodes) assert.ok(upMembers(await lab.stats(node)).has(joiner.address));
    }));
}

// --- d'. a node paused long enough to be declared gone comes back ---------------------------------

for (const mode of MODES) {
  test(`${mode}: a node paused until declared gone serves the sessions' newer versions when it resumes`, () =>
    withLab(mode, async (lab) => {
      const nodes = await lab.startCluster(3);
      const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
      // Sessions written on b (primary there), then b is frozen.
      const browsers = Array.from({ length: 6 }, () => new Browser(b.httpPort));
      for (const browser of browsers) await hit(browser);
      await until('replication settles', async () =>
        (await Promise.all(nodes.map((n) => lab.stats(n)))).every((s) => s.sessions === browsers.length),
      );
      process.kill(b.proc.pid, 'SIGSTOP');
      try {
        await until(
          'a and c declare b gone',
          async () => {
            for (const n of [a, c]) {
              const stats = await lab.stats(n);
              if (stats.members.find((m) => m.id === b.address)?.state !== 'gone') return false;
            }
            return true;
          },
          15_000,
        );
        // The sessions move on without b.
        for (const [i, browser] of browsers.entries()) {
          browser.port = (i % 2 === 0 ? a : c).httpPort;
          assert.equal((await hit(browser)).count, 2);
        }
      } finally {
        process.kill(b.proc.pid, 'SIGCONT');
      }
      // b resumes believing nothing happened; it must not serve what it held before the pause.
      await lab.meshed(nodes);
      await sleep(200);
      for (const [i, browser] of browsers.entries()) {
        browser.port = b.httpPort;
        const now = await hit(browser);
        assert.equal(now.server, 'b');
        assert.equal(now.count, 3, `session ${i}: b serves the version written while it was paused`);
      }
    }));
}

// --- e. intruders --------------------------------------------------------------------------------

test('a node with the wrong secret is refused; garbage on the cluster port is dropped; replication goes on', (t) =>
  withLab('all-to-all', async (lab) => {
    const nodes = await lab.startCluster(3);
    const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
    const browser = new Browser(a.httpPort);
    assert.equal((await hit(browser)).count, 1);

    const intruder = await lab.startNode('x', {
      peers: nodes.map((n) => n.address),
      secret: 'not-the-secret',
    });
    await until('every node refused the intruder', async () => {
      for (const node of nodes) if ((await lab.stats(node)).refusedPeers === 0) return false;
      return true;
    });
    for (const node of nodes) {
      const stats = await lab.stats(node);
      assert.ok(
        !stats.members.some((m) => m.id === intruder.address),
        `${node.name} does not list the intruder`,
      );
      assert.deepEqual(upMembers(stats), new Set(nodes.filter((n) => n !== node).map((n) => n.address)));
    }
    const outside = await lab.stats(intruder);
    assert.deepEqual(upMembers(outside), new Set());
    t.diagnostic(
      `intruder: refusedPeers ${outside.refusedPeers}, members ${JSON.stringify(outside.members)}`,
    );
    for (const [node, count] of [
      [b, 2],
      [c, 3],
    ] as const) {
      browser.port = node.httpPort;
      assert.equal((await hit(browser)).count, count);
    }

    // Random bytes on a's cluster port: a closes that connection, nothing else changes.
    const before = await lab.stats(a);
    const closedAfter = await new Promise<number>((resolve, reject) => {
      const started = Date.now();
      const socket = connect({ host: '127.0.0.1', port: a.clusterPort });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error('the node kept a connection that sent garbage open for 5 s'));
      }, 5000);
      socket.on('connect', () => socket.write(randomBytes(512)));
      socket.on('data', () => {}); // its hello
      socket.on('error', () => {}); // a reset is a close too
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(Date.now() - started);
      });
    });
    const afterGarbage = await lab.stats(a);
    t.diagnostic(
      `garbage connection closed by the node after ${closedAfter} ms; malformedFrames ${before.malformedFrames} -> ${afterGarbage.malformedFrames}, refusedPeers ${before.refusedPeers} -> ${afterGarbage.refusedPeers}`,
    );
    assert.deepEqual(upMembers(afterGarbage), new Set([b.address, c.address]));
    const fresh = new Browser(a.httpPort);
    const written = await hit(fresh);
    assert.equal(written.count, 1);
    await until('the new session reaches b', async () => (await lab.stats(b)).sessions === 2);
    fresh.port = b.httpPort;
    const read = await hit(fresh);
    assert.equal(read.sessionId, written.sessionId);
    assert.equal(read.count, 2);
    assert.equal(read.server, 'b');
  }));

// --- f. the CLI's cluster flags ------------------------------------------------------------------

test('fulcrum backend: bad or misplaced cluster flags exit 2 naming the flag; the secret may come from the environment', async () => {
  const port = await freePort();
  const cluster = `127.0.0.1:${await freePort()}`;
  const base = ['backend', '--port', String(port)];
  const noSecret = { FULCRUM_CLUSTER_SECRET: '' };
  for (const [args, flag] of [
    [['--session-store', 'cluster', '--cluster-secret', 's'], '--cluster-listen'],
    [['--session-store', 'cluster', '--cluster-listen', cluster], '--cluster-secret'],
    [
      [
        '--session-store',
        'cluster',
        '--cluster-listen',
        cluster,
        '--cluster-secret',
        's',
        '--cluster-mode',
        'ring',
      ],
      '--cluster-mode',
    ],
    [
      ['--session-store', 'cluster', '--cluster-listen', 'nowhere', '--cluster-secret', 's'],
      '--cluster-listen',
    ],
    [
      [
        '--session-store',
        'cluster',
        '--cluster-listen',
        cluster,
        '--cluster-secret',
        's',
        '--peers',
        'a:1,b',
      ],
      '--peers',
    ],
    [['--cluster-listen', cluster], '--cluster-listen'],
    [['--session-store', 'memory', '--peers', cluster], '--peers'],
    [['--cluster-sync'], '--cluster-sync'],
    [['--cluster-mode', 'primary-backup', '--cluster-secret', 's'], '--cluster-mode'],
  ] as const) {
    const r = await runCli([...base, ...args], { env: noSecret });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^fulcrum backend: .*${flag}`), args.join(' '));
    assert.equal(r.stdout, '');
  }
  assert.equal(await canConnect(port), false);

  // FULCRUM_CLUSTER_SECRET stands in for --cluster-secret.
  const node = spawnCli([...base, '--session-store', 'cluster', '--cluster-listen', cluster], {
    env: { FULCRUM_CLUSTER_SECRET: 'from-the-environment' },
  });
  try {
    await node.waitFor(/listening on .*\(session cluster all-to-all, node 127\.0\.0\.1:\d+\)/);
    const stats = JSON.parse((await httpGet(port, '/cluster')).body) as { node: string; members: unknown[] };
    assert.equal(stats.node, cluster);
    assert.deepEqual(stats.members, []);
    const reply = JSON.parse((await httpGet(port, '/session')).body) as Hit;
    assert.deepEqual([reply.count, reply.primary, reply.backup], [1, cluster, '']);
  } finally {
    await node.stop('SIGKILL', 1000);
  }

  // Without the cluster store: /cluster is 404 and /session answers as before.
  const { proc, port: memoryPort } = await spawnBackend('m');
  try {
    assert.equal((await httpGet(memoryPort, '/cluster')).status, 404);
    const reply = JSON.parse((await httpGet(memoryPort, '/session')).body) as Record<string, unknown>;
    assert.deepEqual(Object.keys(reply), ['server', 'count', 'sessionId']);
  } finally {
    await proc.stop('SIGKILL', 1000);
  }
});
