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
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { after, before, describe, it, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { keepalivedConf, keepalivedPath } from '../helpers/keepalived.js';
import {
  type HostProcess,
  Network,
  namespacesUnavailable,
  prefixOf,
  removeStale,
} from '../helpers/namespaces.js';
import { CLI_PATH, tempDir } from '../helpers/processes.js';

/** Run keepalived's track script with the documented interval (1 s) and timeout (3 s). */
const DOCUMENTED = process.env.FULCRUM_REDUNDANCY_DOCUMENTED === '1';

import type { ClientRecord } from '../helpers/vipClient.js';

/** Namespaces are named `fr<PID>-<host>`. */
const NS_LETTERS = 'fr';
const NET = '10.77.0';
const VIP = `${NET}.10`;
const LBS = { lb1: `${NET}.11`, lb2: `${NET}.12` } as const;
type Lb = keyof typeof LBS;
const APPS = [`${NET}.21`, `${NET}.22`, `${NET}.23`];
const REDIS = `${NET}.30`;
const CLIENT = `${NET}.100`;
const REDIS_URL = `redis://${REDIS}:6379`;
const ADMIN = 'http://127.0.0.1:9000';
const USERS = 8;
const CLIENT_SCRIPT = fileURLToPath(new URL('../helpers/vipClient.js', import.meta.url));
const DOC = fileURLToPath(new URL('../../../docs/redundancy.md', import.meta.url));

const KEEPALIVED = keepalivedPath(existsSync);
const skip =
  namespacesUnavailable() ??
  (KEEPALIVED === undefined ? 'keepalived is not installed (apt-get install keepalived)' : undefined) ??
  (spawnSync('redis-server', ['--version']).status === 0 ? undefined : 'redis-server is not installed');

/** The balancers' config: learned stick table, rate-limit counters and sessions in Redis, or not. */
function fulcrumYaml(shared: boolean): string {
  const servers = APPS.map((a, i) => `      - { address: "${a}:8080", name: app${i + 1} }`).join('\n');
  return `admin: { listen: "127.0.0.1:9000" }
listeners:
  - name: web
    protocol: http
    listen: "0.0.0.0:80"
    pool: web
    protection:
      rateLimit: { requests: 100000, per: 10s, key: ip }
${shared ? `      shared: ${REDIS_URL}\n` : ''}pools:
  - name: web
    servers:
${servers}
    healthCheck: { type: http, path: /health, interval: 2s, timeout: 1s, rise: 1, fall: 2 }
    sticky: { type: cookie, mode: learn, cookie: fulcrum.sid, store: ${shared ? `"${REDIS_URL}"` : 'memory'} }
`;
}

/** What one move did to the users. */
interface Move {
  /** From the action to the first answer to a request sent after it, seconds. */
  takeoverS: number;
  /** From the action to the virtual IP seen on the new holder (polled every 50 ms), seconds. */
  vipS: number;
  failed: number;
  /** The failures by kind, e.g. " (ECONNREFUSED 30, timeout 8)". */
  kinds: string;
  sessionsLost: number;
  serverChanged: number;
}

// Under the runner's 120 s per file, so that a stuck case still ends in after(), which removes it all.
describe('redundancy: a keepalived pair and an active/active pair in network namespaces', {
  skip,
  timeout: 110_000,
}, () => {
  const net = new Network(prefixOf(NS_LETTERS));
  let dir: ReturnType<typeof tempDir>;
  const records: ClientRecord[] = [];
  const masters: Array<{ lb: Lb; at: number }> = [];
  /** Each keepalived's VRRP state as it last logged it (polling `ip addr` would fork 20 times a second). */
  const vrrp = new Map<Lb, string>();
  const fulcrums = new Map<Lb, HostProcess>();
  const keepaliveds = new Map<Lb, HostProcess>();
  let backends: HostProcess[] = [];
  let client: HostProcess;
  let acks = 0;
  let commands = 0;
  const figures: string[] = [];
  /** Cases that passed (the rest get the processes' output printed). */
  let passed = 0;

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
    }
  }

  async function startFulcrum(lb: Lb, shared: boolean): Promise<void> {
    const file = dir.write(`${lb}-${shared ? 'shared' : 'local'}.yaml`, fulcrumYaml(shared));
    const p = net.run(lb, [process.execPath, CLI_PATH, 'start', '-c', file]);
    fulcrums.set(lb, p);
    await p.waitFor(/listener web: http on 0\.0\.0\.0:80/, 45_000);
  }

  function startKeepalived(lb: Lb, nopreempt: boolean): HostProcess {
    const other: Lb = lb === 'lb1' ? 'lb2' : 'lb1';
    const conf = dir.write(
      `keepalived-${lb}-${nopreempt ? 'nopreempt' : 'preempt'}.conf`,
      keepalivedConf({
        routerId: `fulcrum-${lb}`,
        iface: 'eth0',
        address: LBS[lb],
        peer: LBS[other],
        priority: lb === 'lb1' ? 150 : 100,
        vip: `${VIP}/24`,
        healthCommand: `${process.execPath} ${CLI_PATH} health --admin ${ADMIN}`,
        nopreempt,
        // Not the documented 1 s and 3 s: on a test host shared with other suites (2 cores), a
        // Node start every second per balancer piled up probes that starved the balancers and
        // timed out; every 2 s with 10 s of room keeps the pair healthy (detection takes longer).
        // FULCRUM_REDUNDANCY_DOCUMENTED=1 runs the documented settings (for a quiet host).
        scriptInterval: DOCUMENTED ? 1 : 2,
        scriptTimeout: DOCUMENTED ? 3 : 10,
      }),
    );
    const pid = (what: string) => `${dir.path}/${lb}-${what}.pid`;
    const k = net.run(lb, [
      KEEPALIVED!,
      '--dont-fork',
      '--log-console',
      '--log-detail',
      '--no-syslog',
      '--vrrp',
      '-f',
      conf,
      '-p',
      pid('keepalived'),
      '-r',
      pid('vrrp'),
      '-c',
      pid('checkers'),
    ]);
    k.onLine = (line, at) => {
      const entered = /Entering (\w+) STATE/.exec(line);
      if (entered === null) return;
      vrrp.set(lb, entered[1]!);
      if (entered[1] === 'MASTER') masters.push({ lb, at });
    };
    keepaliveds.set(lb, k);
    return k;
  }

  async function startBackends(store: string): Promise<void> {
    await Promise.all(backends.map((b) => b.stop()));
    backends = APPS.map((address, i) =>
      net.run(`app${i + 1}`, [
        process.execPath,
        CLI_PATH,
        'backend',
        '--host',
        address,
        '--port',
        '8080',
        '--id',
        `app${i + 1}`,
        '--session-store',
        store,
      ]),
    );
    await Promise.all(backends.map((b) => b.waitFor(/listening on/, 45_000)));
  }

  /** Sends a command to the client and waits for its acknowledgement. */
  async function tell(command: Record<string, unknown>): Promise<void> {
    const n = ++commands;
    client.child.stdin!.write(`${JSON.stringify(command)}\n`);
    await until(`the client's ack of ${JSON.stringify(command)}`, () => acks >= n, 10_000);
  }

  /** The balancer whose keepalived is MASTER (confirmed with `ip addr` by the callers that assert it). */
  const holder = (): Lb | undefined => (['lb1', 'lb2'] as const).find((lb) => vrrp.get(lb) === 'MASTER');

  /** Waits until every user has had `n` answers since `since`. */
  async function answered(n: number, since: number, timeoutMs = 20_000): Promise<void> {
    await until(
      `${n} answers for every user`,
      () => {
        const per = new Array<number>(USERS).fill(0);
        for (const r of records) if (r.ok && r.start >= since) per[r.u]!++;
        return per.every((c) => c >= n);
      },
      timeoutMs,
    );
  }

  /**
   * Runs `action` on steady traffic to the virtual IP and measures the move it causes, until
   * `to` holds the address and every user has had two answers since.
   */
  async function move(action: () => void | Promise<void>, to: Lb): Promise<Move> {
    const t0 = Date.now();
    await action();
    await until(`the virtual IP on ${to}`, () => holder() === to, 30_000);
    const vipS = ((masters.findLast((m) => m.lb === to)?.at ?? Date.now()) - t0) / 1000;
    assert.ok(net.holds(to, VIP), `${to} is MASTER and holds ${VIP}`);
    await answered(2, t0, 30_000);
    const after = records.filter((r) => r.end >= t0);
    // Back once a request sent after the last failed one is answered (the action itself takes a
    // moment: a request may still get through just after t0).
    const failures = after.filter((r) => !r.ok);
    const lastFailure = Math.max(t0, ...failures.map((r) => r.start));
    const firstOk = Math.min(...after.filter((r) => r.ok && r.start >= lastFailure).map((r) => r.end));
    let sessionsLost = 0;
    let serverChanged = 0;
    for (let u = 0; u < USERS; u++) {
      const mine = records.filter((r) => r.u === u && r.ok).sort((a, b) => a.end - b.end);
      const before = mine.filter((r) => r.end < t0).at(-1);
      const next = mine.find((r) => r.end >= t0);
      if (before === undefined || next === undefined) continue;
      if (next.count! <= before.count!) sessionsLost++;
      if (next.server !== before.server) serverChanged++;
    }
    return {
      takeoverS: (firstOk - t0) / 1000,
      vipS,
      failed: after.filter((r) => !r.ok).length,
      kinds: errors(after.filter((r) => !r.ok)),
      sessionsLost,
      serverChanged,
    };
  }

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
      const mine = records.filter((r) => r.u === u && r.ok && r.start >= since).sort((a, b) => a.end - b.end);
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
  const mark = () => new Map([...fulcrums].map(([lb, p]) => [lb, p.output.length] as const));
  const storeTrouble = (since: Map<Lb, number>) =>
    [...fulcrums].some(([lb, p]) => /sticky store .* unreachable/.test(p.output.slice(since.get(lb) ?? 0)));
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

  /** " (ECONNREFUSED 3, timeout 1)": the failures by kind. */
  const errors = (failed: ClientRecord[]) => {
    const kinds = new Map<string, number>();
    for (const r of failed) kinds.set(r.err ?? '?', (kinds.get(r.err ?? '?') ?? 0) + 1);
    return kinds.size === 0 ? '' : ` (${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')})`;
  };

  const describeMove = (m: Move) =>
    `VIP moved in ${m.vipS.toFixed(2)} s, takeover ${m.takeoverS.toFixed(2)} s, failed requests ${m.failed}${m.kinds}, sessions lost ${m.sessionsLost}/${USERS}, users whose server changed ${m.serverChanged}/${USERS}`;

  function report(t: { diagnostic(message: string): void }, line: string): void {
    figures.push(line);
    t.diagnostic(line);
  }

  before(async () => {
    removeStale(NS_LETTERS);
    dir = tempDir('fulcrum-redundancy-');
    for (const [name, address] of [
      ['lb1', LBS.lb1],
      ['lb2', LBS.lb2],
      ['app1', APPS[0]!],
      ['app2', APPS[1]!],
      ['app3', APPS[2]!],
      ['redis', REDIS],
      ['client', CLIENT],
    ] as const) {
      net.addHost(name, address);
    }
    const redis = net.run('redis', [
      'redis-server',
      '--bind',
      REDIS,
      '--port',
      '6379',
      '--protected-mode',
      'no',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir.path,
    ]);
    await redis.waitFor(/Ready to accept connections/, 45_000);
    await startBackends(REDIS_URL);
    await Promise.all([startFulcrum('lb1', true), startFulcrum('lb2', true)]);
    startKeepalived('lb1', true);
    startKeepalived('lb2', true);
    client = net.run('client', [process.execPath, CLIENT_SCRIPT, String(USERS), '200', '1000']);
    client.onLine = (line) => {
      if (!line.startsWith('{')) return;
      const parsed = JSON.parse(line) as ClientRecord | { ack: number };
      if ('ack' in parsed) acks = parsed.ack;
      else records.push(parsed);
    };
  });

  after(async () => {
    // On failure, what keepalived and Fulcrum said (the namespaces and their files go next).
    if (passed < 6) {
      for (const [lb, p] of [...keepaliveds, ...fulcrums]) {
        process.stdout.write(
          `# --- ${lb}: ${p.command.slice(0, 3).join(' ')} ---\n${p.output.slice(-3000).replace(/^/gm, '# ')}\n`,
        );
      }
    }
    if (figures.length > 0)
      process.stdout.write(`# redundancy figures\n${figures.map((f) => `#   ${f}`).join('\n')}\n`);
    await net.remove();
    dir?.remove();
  });

  it('active/standby, shared store: SIGKILL the master Fulcrum, the VIP moves, users keep server and session', async (t) => {
    // Both start as BACKUP (nopreempt); lb1, the higher priority, is master once the advert timeout passes.
    await until('lb1 to hold the virtual IP', () => holder() === 'lb1', 30_000);
    const since = Date.now();
    const logs = mark();
    await tell({ targets: [VIP] });
    await answered(4, since);
    const steady = churn(since);
    sticky(t, steady.serverChanges, logs);
    const m = await move(() => fulcrums.get('lb1')!.signal('SIGKILL'), 'lb2');
    report(t, `SIGKILL of the master's Fulcrum, shared store: ${describeMove(m)}`);
    assert.equal(m.sessionsLost, 0);
    sticky(t, m.serverChanged, logs);
    assert.ok(m.takeoverS < 20, `takeover ${m.takeoverS} s`);
    passed++;
  });

  it('nopreempt: the old master comes back healthy and the VIP stays where it is', async (t) => {
    if (passed < 1) return t.skip('an earlier case failed: this one needs its state');
    const movesBefore = masters.length;
    const t0 = Date.now();
    const k1 = keepaliveds.get('lb1')!;
    const backups = (k1.output.match(/Entering BACKUP STATE/g) ?? []).length;
    await startFulcrum('lb1', true);
    // keepalived leaves FAULT once `fulcrum health` passes twice, then hears lb2's adverts.
    await until(
      "lb1's keepalived back to BACKUP",
      () => (k1.output.match(/Entering BACKUP STATE/g) ?? []).length > backups,
      20_000,
    );
    await sleep(3000); // three advert intervals: a preempting peer would have taken over by now
    const failed = records.filter((r) => r.end >= t0 && !r.ok);
    report(
      t,
      `old master back with nopreempt: ${masters.length - movesBefore} move(s) of the VIP, failed requests ${failed.length}${errors(failed)}`,
    );
    assert.equal(masters.length, movesBefore, 'no second move');
    assert.equal(holder(), 'lb2');
    assert.ok(net.holds('lb2', VIP) && !net.holds('lb1', VIP));
    passed++;
  });

  it('without nopreempt: the healthy higher-priority host takes the VIP back, one move', async (t) => {
    if (passed < 2) return t.skip('an earlier case failed: this one needs its state');
    const movesBefore = masters.length;
    const logs = mark();
    await keepaliveds.get('lb1')!.stop();
    const m = await move(() => void startKeepalived('lb1', false), 'lb1');
    await sleep(1500);
    const moves = masters.slice(movesBefore);
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
    const m = await move(() => void net.ip('lb1', 'link', 'set', 'eth0', 'down'), 'lb2');
    report(t, `link down on the master, shared store: ${describeMove(m)}`);
    assert.equal(m.sessionsLost, 0);
    sticky(t, m.serverChanged, logs);
    net.ip('lb1', 'link', 'set', 'eth0', 'up');
    passed++;
  });

  it('active/active, shared store: users alternating between the balancers keep one server and their session', async (t) => {
    if (passed < 4) return t.skip('an earlier case failed: this one needs its state');
    await tell({ pause: true, reset: true });
    // Each new user's session starts through one balancer (as a client keeps the address it
    // resolved), then alternates. (A session whose second request reaches the other balancer
    // before the first one's affinity is in Redis may end up with two servers: see the report.)
    let since = Date.now();
    await tell({ targets: [LBS.lb1] });
    await answered(2, since);
    since = Date.now();
    const logs = mark();
    await tell({ targets: [LBS.lb1, LBS.lb2] });
    await answered(10, since, 30_000);
    await tell({ pause: true });
    const c = churn(since);
    report(
      t,
      `active/active, shared store: ${c.answers} answers alternating between the balancers, ${c.serverChanges} server changes (${c.usersMoved}/${USERS} users), ${c.sessionsLost} sessions lost`,
    );
    const failed = records.filter((r) => r.start >= since && !r.ok);
    if (failed.length > 0) t.diagnostic(`failed requests ${failed.length}${errors(failed)}`);
    sticky(t, c.serverChanges, logs);
    assert.equal(c.sessionsLost, 0);
    passed++;
  });

  it('shared store off: active/active and a SIGKILL of the master, what sharing buys', async (t) => {
    if (passed < 5) return t.skip('an earlier case failed: this one needs its state');
    // Stick tables in each balancer's memory, sessions in each backend's memory.
    await Promise.all([...fulcrums.values()].map((p) => p.stop()));
    await startBackends('memory');
    await Promise.all([startFulcrum('lb1', false), startFulcrum('lb2', false)]);
    await tell({ reset: true });
    let since = Date.now();
    await tell({ targets: [LBS.lb1, LBS.lb2] });
    await answered(10, since, 30_000);
    await tell({ pause: true });
    const c = churn(since);
    report(
      t,
      `active/active, shared store off: ${c.answers} answers alternating between the balancers, ${c.serverChanges} server changes (${c.usersMoved}/${USERS} users), ${c.sessionsLost} sessions lost`,
    );
    assert.ok(c.sessionsLost > 0, 'without sharing, alternating users lose sessions');

    // Active/standby without sharing: wait for a master, steady traffic, kill its Fulcrum.
    // lb1 (priority 150, preempting since the case above) ends up master once both are healthy.
    await until('lb1 to hold the virtual IP', () => holder() === 'lb1', 30_000);
    const master: Lb = 'lb1';
    const standby: Lb = 'lb2';
    await tell({ reset: true });
    since = Date.now();
    await tell({ targets: [VIP] });
    await answered(4, since);
    const m = await move(() => fulcrums.get(master)!.signal('SIGKILL'), standby);
    report(t, `SIGKILL of the master's Fulcrum, shared store off: ${describeMove(m)}`);
    await tell({ pause: true });
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
