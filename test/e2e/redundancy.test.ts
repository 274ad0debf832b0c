/**
 * The balancer's own redundancy (issue 17, docs/redundancy.md), for real: network namespaces on
 * one bridge for two balancer hosts, three backend hosts, a Redis host and a client host; real
 * keepalived beside a real `fulcrum start` on each balancer host, its track_script running
 * `fulcrum health`; sample backends keeping their sessions in Redis, the balancers their learned
 * stick table and rate-limit counters too. The client sends steady traffic with a cookie jar per
 * simulated user, and the figures of each move (takeover time, failed requests, sessions lost,
 * users whose server changed) are printed as diagnostics. Needs root (CAP_NET_ADMIN), keepalived
 * and redis-server; says why and skips without them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { keepalivedConf } from '../helpers/keepalived.js';
import {
  buildPair,
  failureKinds,
  type Lb,
  type Move,
  type Pair,
  pairUnavailable,
  until,
} from '../helpers/pair.js';
import { tempDir } from '../helpers/processes.js';

/** Run keepalived's track script with the documented interval (1 s) and timeout (3 s). */
const DOCUMENTED = process.env.FULCRUM_REDUNDANCY_DOCUMENTED === '1';

/** Namespaces are named `fr<PID>-<host>`. */
const NS_LETTERS = 'fr';
const USERS = 8;
const DOC = fileURLToPath(new URL('../../../docs/redundancy.md', import.meta.url));

const skip = pairUnavailable();

// Under the runner's 120 s per file, so that a stuck case still ends in after(), which removes it all.
describe('redundancy: a keepalived pair and an active/active pair in network namespaces', {
  skip,
  timeout: 110_000,
}, () => {
  let pair: Pair;
  let dir: ReturnType<typeof tempDir>;
  const figures: string[] = [];
  /** Cases that passed (the rest get the processes' output printed). */
  let passed = 0;

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  /** Server changes and session losses between consecutive answers of each user since `since`. */
  function churn(since: number): {
    serverChanges: number;
    usersMoved: number;
    sessionsLost: number;
    answers: number;
  } {
    let serverChanges = 0;
    let usersMoved = 0;
    let sessionsLost = 0;
    let answers = 0;
    for (let u = 0; u < USERS; u++) {
      const mine = pair.records
        .filter((r) => r.u === u && r.ok && r.start >= since)
        .sort((a, b) => a.end - b.end);
      answers += mine.length;
      let moved = false;
      for (let i = 1; i < mine.length; i++) {
        if (mine[i]!.server !== mine[i - 1]!.server) {
          serverChanges++;
          moved = true;
        }
        if (mine[i]!.count! <= mine[i - 1]!.count!) sessionsLost++;
      }
      if (moved) usersMoved++;
    }
    return { serverChanges, usersMoved, sessionsLost, answers };
  }

  /**
   * Whether a balancer found its sticky store slow or unreachable since `mark` (from mark()): it
   * then places clients by the algorithm and remembers them locally (fail-open), so users may
   * change servers. On a starved test host Redis can miss the 250 ms bound.
   */
  const mark = () => new Map([...pair.fulcrums].map(([lb, p]) => [lb, p.output.length] as const));
  const storeTrouble = (since: Map<Lb, number>) =>
    [...pair.fulcrums].some(([lb, p]) =>
      /sticky store .* unreachable/.test(p.output.slice(since.get(lb) ?? 0)),
    );
  /** Asserts no server change, unless the sticky store failed open meanwhile (then says so). */
  const sticky = (t: { diagnostic(m: string): void }, changes: number, since: Map<Lb, number>) => {
    if (changes > 0 && storeTrouble(since)) {
      t.diagnostic(
        `${changes} server change(s) while a balancer's sticky store missed its 250 ms bound (fail-open)`,
      );
      return;
    }
    assert.equal(changes, 0, 'users kept their server');
  };

  const describeMove = (m: Move) =>
    `VIP moved in ${m.vipS.toFixed(2)} s, takeover ${m.takeoverS.toFixed(2)} s, failed requests ${m.failed}${m.kinds}, sessions lost ${m.sessionsLost}/${USERS}, users whose server changed ${m.serverChanged}/${USERS}`;

  function report(t: { diagnostic(message: string): void }, line: string): void {
    figures.push(line);
    t.diagnostic(line);
  }

  before(async () => {
    dir = tempDir('fulcrum-redundancy-');
    pair = await buildPair({
      letters: NS_LETTERS,
      subnet: '10.77.0',
      dir: dir.path,
      users: USERS,
      shared: true,
      rateLimit: true,
      // Not the documented 1 s and 3 s: on a test host shared with other suites (2 cores), a
      // Node start every second per balancer piled up probes that starved the balancers and
      // timed out; every 2 s with 10 s of room keeps the pair healthy (detection takes longer).
      // FULCRUM_REDUNDANCY_DOCUMENTED=1 runs the documented settings (for a quiet host).
      scriptInterval: DOCUMENTED ? 1 : 2,
      scriptTimeout: DOCUMENTED ? 3 : 10,
    });
  });

  after(async () => {
    // On failure, what keepalived and Fulcrum said (the namespaces and their files go next).
    if (passed < 6 && pair !== undefined) {
      for (const [lb, p] of [...pair.keepaliveds, ...pair.fulcrums]) {
        process.stdout.write(
          `# --- ${lb}: ${p.command.slice(0, 3).join(' ')} ---\n${p.output.slice(-3000).replace(/^/gm, '# ')}\n`,
        );
      }
    }
    if (figures.length > 0)
      process.stdout.write(`# redundancy figures\n${figures.map((f) => `#   ${f}`).join('\n')}\n`);
    await pair?.close();
    dir?.remove();
  });

  it('active/standby, shared store: SIGKILL the master Fulcrum, the VIP moves, users keep server and session', async (t) => {
    // Both start as BACKUP (nopreempt); lb1, the higher priority, is master once the advert timeout passes.
    await until('lb1 to hold the virtual IP', () => pair.holder() === 'lb1', 30_000);
    const since = Date.now();
    const logs = mark();
    await pair.tell({ targets: [pair.vip] });
    await pair.answered(4, since);
    const steady = churn(since);
    sticky(t, steady.serverChanges, logs);
    const m = await pair.move(() => pair.fulcrums.get('lb1')!.signal('SIGKILL'), 'lb2');
    report(t, `SIGKILL of the master's Fulcrum, shared store: ${describeMove(m)}`);
    assert.equal(m.sessionsLost, 0);
    sticky(t, m.serverChanged, logs);
    assert.ok(m.takeoverS < 20, `takeover ${m.takeoverS} s`);
    passed++;
  });

  it('nopreempt: the old master comes back healthy and the VIP stays where it is', async (t) => {
    if (passed < 1) return t.skip('an earlier case failed: this one needs its state');
    const movesBefore = pair.masters.length;
    const t0 = Date.now();
    const k1 = pair.keepaliveds.get('lb1')!;
    const backups = (k1.output.match(/Entering BACKUP STATE/g) ?? []).length;
    await pair.startFulcrum('lb1', true);
    // keepalived leaves FAULT once `fulcrum health` passes twice, then hears lb2's adverts.
    await until(
      "lb1's keepalived back to BACKUP",
      () => (k1.output.match(/Entering BACKUP STATE/g) ?? []).length > backups,
      20_000,
    );
    await sleep(3000); // three advert intervals: a preempting peer would have taken over by now
    const failed = pair.records.filter((r) => r.end >= t0 && !r.ok);
    report(
      t,
      `old master back with nopreempt: ${pair.masters.length - movesBefore} move(s) of the VIP, failed requests ${failed.length}${failureKinds(failed)}`,
    );
    assert.equal(pair.masters.length, movesBefore, 'no second move');
    assert.equal(pair.holder(), 'lb2');
    assert.ok(pair.net.holds('lb2', pair.vip) && !pair.net.holds('lb1', pair.vip));
    passed++;
  });

  it('without nopreempt: the healthy higher-priority host takes the VIP back, one move', async (t) => {
    if (passed < 2) return t.skip('an earlier case failed: this one needs its state');
    const movesBefore = pair.masters.length;
    const logs = mark();
    await pair.keepaliveds.get('lb1')!.stop();
    const m = await pair.move(() => void pair.startKeepalived('lb1', false), 'lb1');
    await sleep(1500);
    const moves = pair.masters.slice(movesBefore);
    report(
      t,
      `old master back without nopreempt: ${moves.length} move(s) (${moves.map((x) => x.lb).join(', ')}), ${describeMove(m)} (times from keepalived's start: its script passes twice first; the takeover is the longest interruption)`,
    );
    assert.deepEqual(
      moves.map((x) => x.lb),
      ['lb1'],
    );
    assert.equal(m.sessionsLost, 0);
    sticky(t, m.serverChanged, logs);
    passed++;
  });

  it("active/standby, shared store: the master's link goes down, the VIP moves", async (t) => {
    if (passed < 3) return t.skip('an earlier case failed: this one needs its state');
    const logs = mark();
    const m = await pair.move(() => void pair.net.ip('lb1', 'link', 'set', 'eth0', 'down'), 'lb2');
    report(t, `link down on the master, shared store: ${describeMove(m)}`);
    assert.equal(m.sessionsLost, 0);
    sticky(t, m.serverChanged, logs);
    pair.net.ip('lb1', 'link', 'set', 'eth0', 'up');
    passed++;
  });

  it('active/active, shared store: users alternating between the balancers keep one server and their session', async (t) => {
    if (passed < 4) return t.skip('an earlier case failed: this one needs its state');
    await pair.tell({ pause: true, reset: true });
    // Each new user's session starts through one balancer (as a client keeps the address it
    // resolved), then alternates. (A session whose second request reaches the other balancer
    // before the first one's affinity is in Redis may end up with two servers: see the report.)
    let since = Date.now();
    await pair.tell({ targets: [pair.lbs.lb1] });
    await pair.answered(2, since);
    since = Date.now();
    const logs = mark();
    await pair.tell({ targets: [pair.lbs.lb1, pair.lbs.lb2] });
    await pair.answered(10, since, 30_000);
    await pair.tell({ pause: true });
    const c = churn(since);
    report(
      t,
      `active/active, shared store: ${c.answers} answers alternating between the balancers, ${c.serverChanges} server changes (${c.usersMoved}/${USERS} users), ${c.sessionsLost} sessions lost`,
    );
    const failed = pair.records.filter((r) => r.start >= since && !r.ok);
    if (failed.length > 0) t.diagnostic(`failed requests ${failed.length}${failureKinds(failed)}`);
    sticky(t, c.serverChanges, logs);
    assert.equal(c.sessionsLost, 0);
    passed++;
  });

  it('shared store off: active/active and a SIGKILL of the master, what sharing buys', async (t) => {
    if (passed < 5) return t.skip('an earlier case failed: this one needs its state');
    // Stick tables in each balancer's memory, sessions in each backend's memory.
    await Promise.all([...pair.fulcrums.values()].map((p) => p.stop()));
    await pair.startBackends('memory');
    await Promise.all([pair.startFulcrum('lb1', false), pair.startFulcrum('lb2', false)]);
    await pair.tell({ reset: true });
    let since = Date.now();
    await pair.tell({ targets: [pair.lbs.lb1, pair.lbs.lb2] });
    await pair.answered(10, since, 30_000);
    await pair.tell({ pause: true });
    const c = churn(since);
    report(
      t,
      `active/active, shared store off: ${c.answers} answers alternating between the balancers, ${c.serverChanges} server changes (${c.usersMoved}/${USERS} users), ${c.sessionsLost} sessions lost`,
    );
    assert.ok(c.sessionsLost > 0, 'without sharing, alternating users lose sessions');

    // Active/standby without sharing: wait for a master, steady traffic, kill its Fulcrum.
    // lb1 (priority 150, preempting since the case above) ends up master once both are healthy.
    await until('lb1 to hold the virtual IP', () => pair.holder() === 'lb1', 30_000);
    const master: Lb = 'lb1';
    const standby: Lb = 'lb2';
    await pair.tell({ reset: true });
    since = Date.now();
    await pair.tell({ targets: [pair.vip] });
    await pair.answered(4, since);
    const m = await pair.move(() => pair.fulcrums.get(master)!.signal('SIGKILL'), standby);
    report(t, `SIGKILL of the master's Fulcrum, shared store off: ${describeMove(m)}`);
    await pair.tell({ pause: true });
    passed++;
  });
});

test('docs/redundancy.md shows the keepalived.conf files this test runs (same shape)', () => {
  const doc = readFileSync(DOC, 'utf8');
  for (const [routerId, address, peer, priority] of [
    ['fulcrum-a', '192.0.2.11', '192.0.2.12', 150],
    ['fulcrum-b', '192.0.2.12', '192.0.2.11', 100],
  ] as const) {
    const marker = `<!-- keepalived.conf of ${routerId} -->`;
    const at = doc.indexOf(marker);
    assert.ok(at >= 0, `docs/redundancy.md has no ${marker}`);
    const block = /```[a-z]*\n([\s\S]*?)```/.exec(doc.slice(at))![1];
    assert.equal(
      block,
      keepalivedConf({
        routerId,
        iface: 'eth0',
        address,
        peer,
        priority,
        vip: '192.0.2.10/24',
        healthCommand: '/usr/local/bin/fulcrum health --admin http://127.0.0.1:9000',
      }),
    );
  }
});
