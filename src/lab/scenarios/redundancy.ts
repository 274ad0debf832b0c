/**
 * Scenario 11: redundancy of the balancer itself. A keepalived pair in network namespaces (two
 * balancer hosts each running keepalived beside `fulcrum start`, its track_script `fulcrum
 * health` with the documented interval 1 s and timeout 3 s), three sample backends, Redis and a
 * client host sending steady traffic to the virtual IP with a cookie jar per user. The master's
 * Fulcrum is SIGKILLed: takeover time, failed requests, sessions lost and users whose server
 * changed, with the sticky table and sessions in Redis (shared) and in each process's memory.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { keepalivedConf, keepalivedPath } from '../keepalived.js';
import { type HostProcess, Network, namespacesUnavailable, prefixOf, removeStale } from '../netns.js';
import { CLI, sleep } from '../processes.js';
import { check, type Findings, type LabContext, type Scenario } from '../scenario.js';
import { fmt, spread } from '../stats.js';
import type { ClientRecord } from '../vipClient.js';

/** Namespaces are named `fl<PID>-<host>`. */
const NS_LETTERS = 'fl';
const NET = '10.78.0';
const VIP = `${NET}.10`;
const LBS = { lb1: `${NET}.11`, lb2: `${NET}.12` } as const;
type Lb = keyof typeof LBS;
const APPS = [`${NET}.21`, `${NET}.22`, `${NET}.23`];
const REDIS = `${NET}.30`;
const CLIENT = `${NET}.100`;
const REDIS_URL = `redis://${REDIS}:6379`;
const ADMIN = 'http://127.0.0.1:9000';
const USERS = 8;
const CLIENT_SCRIPT = fileURLToPath(new URL('../vipClient.js', import.meta.url));
const MODES = [
  { shared: true, label: 'shared store (Redis)' },
  { shared: false, label: 'no shared store' },
] as const;

/** What one SIGKILL of the master's Fulcrum did to the users. */
interface Takeover {
  /** From the kill to the first answer to a request sent after the last failure, seconds. */
  takeoverS: number;
  failed: number;
  sessionsLost: number;
  serverChanged: number;
}

function fulcrumYaml(shared: boolean): string {
  const servers = APPS.map((a, i) => `      - { address: "${a}:8080", name: app${i + 1} }`).join('\n');
  return `admin: { listen: "127.0.0.1:9000" }
listeners:
  - name: web
    protocol: http
    listen: "0.0.0.0:80"
    pool: web
pools:
  - name: web
    servers:
${servers}
    healthCheck: { type: http, path: /health, interval: 2s, timeout: 1s, rise: 1, fall: 2 }
    sticky: { type: cookie, mode: learn, cookie: fulcrum.sid, store: ${shared ? `"${REDIS_URL}"` : 'memory'} }
`;
}

async function until(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** One pair built, one kill measured, everything removed (also when it fails). */
async function once(ctx: LabContext, shared: boolean, rep: number): Promise<Takeover> {
  const keepalived = keepalivedPath(fs.existsSync)!;
  const dir = fs.mkdtempSync(path.join(ctx.workDir, `redundancy-${shared ? 'shared' : 'local'}-${rep}-`));
  const net = new Network(prefixOf(NS_LETTERS));
  // Ctrl-C or an exit in the middle: the runner's handlers end its own processes; these go too.
  const removeNow = () => net.removeNow();
  process.on('exit', removeNow);
  process.on('SIGINT', removeNow);
  process.on('SIGTERM', removeNow);
  const records: ClientRecord[] = [];
  const state = new Map<Lb, string>();
  try {
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
      dir,
    ]);
    await redis.waitFor(/Ready to accept connections/, 45_000);
    const store = shared ? REDIS_URL : 'memory';
    const backends = APPS.map((address, i) =>
      net.run(`app${i + 1}`, [
        process.execPath,
        CLI,
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
    const config = path.join(dir, 'fulcrum.yaml');
    fs.writeFileSync(config, fulcrumYaml(shared));
    const fulcrums = new Map<Lb, HostProcess>();
    for (const lb of ['lb1', 'lb2'] as const) {
      fulcrums.set(lb, net.run(lb, [process.execPath, CLI, 'start', '-c', config]));
    }
    await Promise.all(
      [...fulcrums.values()].map((p) => p.waitFor(/listener web: http on 0\.0\.0\.0:80/, 45_000)),
    );
    const masters: Array<{ lb: Lb; at: number }> = [];
    for (const lb of ['lb1', 'lb2'] as const) {
      const other: Lb = lb === 'lb1' ? 'lb2' : 'lb1';
      const conf = path.join(dir, `keepalived-${lb}.conf`);
      fs.writeFileSync(
        conf,
        keepalivedConf({
          routerId: `fulcrum-${lb}`,
          iface: 'eth0',
          address: LBS[lb],
          peer: LBS[other],
          priority: lb === 'lb1' ? 150 : 100,
          vip: `${VIP}/24`,
          healthCommand: `${process.execPath} ${CLI} health --admin ${ADMIN}`,
        }),
      );
      const pid = (what: string) => path.join(dir, `${lb}-${what}.pid`);
      const k = net.run(lb, [
        keepalived,
        '--dont-fork',
        '--log-console',
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
        state.set(lb, entered[1]!);
        if (entered[1] === 'MASTER') masters.push({ lb, at });
      };
    }
    await until('lb1 to hold the virtual IP', () => state.get('lb1') === 'MASTER', 45_000);

    const client = net.run('client', [process.execPath, CLIENT_SCRIPT, String(USERS), '200', '1000']);
    client.onLine = (line) => {
      if (!line.startsWith('{')) return;
      const parsed = JSON.parse(line) as ClientRecord | { ack: number };
      if (!('ack' in parsed)) records.push(parsed);
    };
    const answered = (n: number, since: number) => {
      const per = new Array<number>(USERS).fill(0);
      for (const r of records) if (r.ok && r.start >= since) per[r.u]!++;
      return per.every((c) => c >= n);
    };
    const since = Date.now();
    client.child.stdin!.write(`${JSON.stringify({ targets: [VIP] })}\n`);
    await until('4 answers for every user', () => answered(4, since), 30_000);

    ctx.progress(`redundancy: ${shared ? 'shared store' : 'no shared store'}, SIGKILL of lb1's Fulcrum`);
    const t0 = Date.now();
    fulcrums.get('lb1')!.signal('SIGKILL');
    await until('the virtual IP on lb2', () => state.get('lb2') === 'MASTER', 30_000);
    if (!net.holds('lb2', VIP)) throw new Error('lb2 is MASTER but does not hold the virtual IP');
    await until('2 answers for every user after the move', () => answered(2, t0), 30_000);
    client.child.stdin!.write(`${JSON.stringify({ exit: true })}\n`);

    const after = records.filter((r) => r.end >= t0);
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
    return { takeoverS: (firstOk - t0) / 1000, failed: failures.length, sessionsLost, serverChanged };
  } finally {
    await net.remove();
    process.off('exit', removeNow);
    process.off('SIGINT', removeNow);
    process.off('SIGTERM', removeNow);
  }
}

/** Scenario 11 of issue 21. */
export const redundancy: Scenario = {
  name: 'redundancy',
  number: 11,
  title: 'Redundancy: takeover time of a balancer pair',
  claim:
    'With two balancers sharing a virtual address (VRRP), clients keep being served when the active one dies, after a short takeover; with the stick table and sessions in a shared store, no session is lost.',
  setup: (quick) =>
    `Network namespaces on one bridge: 2 balancer hosts (keepalived + fulcrum start, track_script \`fulcrum health\` every 1 s, timeout 3 s, nopreempt), 3 sample backends, Redis, a client with ${USERS} cookie-jar users (one request each per 200 ms) on the virtual IP. The master's Fulcrum SIGKILLed, with the sticky table and sessions in Redis and in memory, ${quick ? '1 repetition' : '3 repetitions'} each.`,
  unavailable: () => {
    const ns = namespacesUnavailable();
    if (ns !== undefined) return ns;
    if (keepalivedPath(fs.existsSync) === undefined)
      return 'keepalived is not installed (apt-get install keepalived)';
    if (spawnSync('redis-server', ['--version']).status !== 0) return 'redis-server is not installed';
    return undefined;
  },
  async run(ctx: LabContext): Promise<Findings> {
    removeStale(NS_LETTERS);
    const reps = ctx.quick ? 1 : 3;
    const results = new Map<boolean, Takeover[]>();
    for (const mode of MODES) {
      const list: Takeover[] = [];
      for (let rep = 0; rep < reps; rep++) list.push(await once(ctx, mode.shared, rep));
      results.set(mode.shared, list);
    }
    const med = (shared: boolean, f: (t: Takeover) => number) => spread(results.get(shared)!.map(f));
    const figures: Record<string, number> = {};
    for (const mode of MODES) {
      const key = mode.shared ? 'shared' : 'local';
      figures[`${key}.takeoverS`] = med(mode.shared, (t) => t.takeoverS).median;
      figures[`${key}.failedRequests`] = med(mode.shared, (t) => t.failed).median;
      figures[`${key}.sessionsLost`] = med(mode.shared, (t) => t.sessionsLost).median;
      figures[`${key}.serverChanged`] = med(mode.shared, (t) => t.serverChanged).median;
    }
    const all = [...results.values()].flat();
    const checks = [
      check(
        'shared store: no session lost',
        results.get(true)!.every((t) => t.sessionsLost === 0),
        `sessions lost per run: ${results
          .get(true)!
          .map((t) => t.sessionsLost)
          .join(', ')} of ${USERS}`,
      ),
      check(
        'the virtual IP moved: takeover measured, > 0 and finite',
        all.every((t) => Number.isFinite(t.takeoverS) && t.takeoverS > 0),
        `takeover per run: ${all.map((t) => `${fmt(t.takeoverS, 2)} s`).join(', ')}`,
      ),
    ];
    const shared = figures['shared.takeoverS']!;
    return {
      tables: [
        {
          caption: `SIGKILL of the master's Fulcrum, ${USERS} users, median over ${reps} repetition(s) (each run listed)`,
          columns: ['store', 'takeover s', 'failed requests', 'sessions lost', 'users whose server changed'],
          rows: MODES.map((mode) => {
            const list = results.get(mode.shared)!;
            const col = (f: (t: Takeover) => number, d: number) =>
              `${fmt(spread(list.map(f)).median, d)}${list.length > 1 ? ` (${list.map((t) => fmt(f(t), d)).join(', ')})` : ''}`;
            return [
              mode.label,
              col((t) => t.takeoverS, 2),
              col((t) => t.failed, 0),
              `${col((t) => t.sessionsLost, 0)} of ${USERS}`,
              `${col((t) => t.serverChanged, 0)} of ${USERS}`,
            ];
          }),
        },
      ],
      charts: [
        {
          kind: 'bar',
          title: "Takeover after a SIGKILL of the master's Fulcrum",
          yLabel: 'seconds',
          categories: MODES.map((m) => m.label),
          series: [
            {
              name: 'takeover',
              values: MODES.map((m) => med(m.shared, (t) => t.takeoverS).median),
              low: MODES.map((m) => med(m.shared, (t) => t.takeoverS).min),
              high: MODES.map((m) => med(m.shared, (t) => t.takeoverS).max),
            },
          ],
        },
        {
          kind: 'bar',
          title: `What the ${USERS} users saw`,
          yLabel: 'count',
          categories: ['failed requests', 'sessions lost', 'users whose server changed'],
          series: MODES.map((m) => ({
            name: m.label,
            values: [
              med(m.shared, (t) => t.failed).median,
              med(m.shared, (t) => t.sessionsLost).median,
              med(m.shared, (t) => t.serverChanged).median,
            ],
          })),
        },
      ],
      meaning: `The standby took the virtual IP over ${fmt(shared, 1)} s after the master's Fulcrum died (\`fulcrum health\` fails twice at 1 s intervals, then VRRP moves the address); with a shared store ${figures['shared.sessionsLost']} of ${USERS} users lost their session, without one ${figures['local.sessionsLost']}.`,
      checks,
      figures,
    };
  },
};
