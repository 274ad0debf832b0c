/**
 * Scenario 11: redundancy of the balancer itself. A keepalived pair in network namespaces (two
 * balancer hosts each running keepalived beside `fulcrum start`, its track_script `fulcrum
 * health` with the documented interval 1 s and timeout 3 s), three sample backends, Redis and a
 * client host sending steady traffic to the virtual IP with a cookie jar per user. The master's
 * Fulcrum is SIGKILLed: takeover time, failed requests, sessions lost and users whose server
 * changed, with the sticky table and sessions in Redis (shared) and in each process's memory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { buildPair, type Move, pairUnavailable, until } from '../pair.js';
import { check, type Findings, type LabContext, type Scenario } from '../scenario.js';
import { fmt, spread } from '../stats.js';

/** Namespaces are named `fl<PID>-<host>`. */
const NS_LETTERS = 'fl';
const USERS = 8;
const MODES = [
  { shared: true, label: 'shared store (Redis)' },
  { shared: false, label: 'no shared store' },
] as const;

/** One pair built, one kill measured, everything removed (also when it fails). */
async function once(ctx: LabContext, shared: boolean, rep: number): Promise<Move> {
  const dir = fs.mkdtempSync(path.join(ctx.workDir, `redundancy-${shared ? 'shared' : 'local'}-${rep}-`));
  const pair = await buildPair({ letters: NS_LETTERS, subnet: '10.78.0', dir, users: USERS, shared });
  try {
    await until('lb1 to hold the virtual IP', () => pair.vrrp.get('lb1') === 'MASTER', 45_000);
    const since = Date.now();
    await pair.tell({ targets: [pair.vip] });
    await pair.answered(4, since, 30_000);
    ctx.progress(`redundancy: ${shared ? 'shared store' : 'no shared store'}, SIGKILL of lb1's Fulcrum`);
    return await pair.move(() => pair.fulcrums.get('lb1')!.signal('SIGKILL'), 'lb2');
  } finally {
    await pair.close();
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
  unavailable: pairUnavailable,
  async run(ctx: LabContext): Promise<Findings> {
    const reps = ctx.quick ? 1 : 3;
    const results = new Map<boolean, Move[]>();
    for (const mode of MODES) {
      const list: Move[] = [];
      for (let rep = 0; rep < reps; rep++) list.push(await once(ctx, mode.shared, rep));
      results.set(mode.shared, list);
    }
    const med = (shared: boolean, f: (t: Move) => number) => spread(results.get(shared)!.map(f));
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
            const col = (f: (t: Move) => number, d: number) =>
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
