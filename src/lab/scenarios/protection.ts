/**
 * Scenario 10: L7 abnormal traffic. A few attacker clients flood at full speed while ordinary
 * clients send at a steady pace, through a listener without protection and one with a rate limit
 * and detection: what the ordinary clients see, how many requests reach the backends, and what
 * the attackers get back (429 over their rate, 403 once detection blocks them).
 */
import { performance } from 'node:perf_hooks';
import { type Balancer, startBackend, startBalancer } from '../fleet.js';
import { closedLoop, keepAliveAgent, pacedLoop, request, type Sample } from '../load.js';
import { check, type Findings, type LabContext, type Scenario } from '../scenario.js';
import { fmt, fmtSpread, quantile, spread } from '../stats.js';

const ATTACKERS = 3;
const ATTACKER_CONNECTIONS = 2;
const ORDINARY = 5;
const ORDINARY_INTERVAL_MS = 100;
const RATE = { requests: 20, per: '1s', burst: 20 };
const DETECT = { window: '500ms', sustain: 2, blockFor: '1m' };
const PHASES = ['off', 'on'] as const;
type Phase = (typeof PHASES)[number];
const LISTENER: Record<Phase, string> = { off: 'open', on: 'guarded' };
/** What an attacker's request got back: 200 served, 429 rate-limited, 403 blocked, 0 connection closed. */
const OUTCOMES = [
  ['served (200)', 200],
  ['rate-limited (429)', 429],
  ['blocked (403)', 403],
  ['connection closed', 0],
] as const;

function plan(quick: boolean) {
  return { reps: quick ? 1 : 3, seconds: quick ? 3 : 6 };
}

interface PhaseResult {
  ordinary: Sample[];
  attackers: Sample[];
  backendRequests: number;
}

/** Requests the balancer has sent to the servers of `pool` so far (the admin API's per-server totals). */
async function sentToServers(lb: Balancer, pool: string): Promise<number> {
  const s = await request(lb.adminPort, {
    path: `/api/pools/${encodeURIComponent(pool)}/servers`,
    timeoutMs: 5000,
  });
  if (s.status !== 200) throw new Error(`admin API: ${s.status} for pool ${pool}`);
  const body = JSON.parse(s.body) as { servers: { total: number }[] };
  return body.servers.reduce((sum, v) => sum + v.total, 0);
}

/** One phase: the flood and the ordinary clients at once against `port`, from the given addresses. */
async function phase(
  lb: Balancer,
  p: Phase,
  seconds: number,
  attackerIps: string[],
  ordinaryIps: string[],
): Promise<PhaseResult> {
  const before = await sentToServers(lb, LISTENER[p]);
  const port = lb.ports[LISTENER[p]]!;
  const origin = performance.now();
  const durationMs = seconds * 1000;
  const agents = ordinaryIps.map(() => keepAliveAgent(1));
  const [attackers, ordinary] = await Promise.all([
    Promise.all(
      attackerIps.map((ip) =>
        closedLoop(port, {
          concurrency: ATTACKER_CONNECTIONS,
          durationMs,
          origin,
          path: '/',
          localAddress: ip,
        }),
      ),
    ),
    Promise.all(
      ordinaryIps.map((ip, i) =>
        pacedLoop(port, {
          intervalMs: ORDINARY_INTERVAL_MS,
          durationMs,
          origin,
          path: '/',
          localAddress: ip,
          agent: agents[i]!,
        }),
      ),
    ),
  ]);
  for (const a of agents) a.destroy();
  const after = await sentToServers(lb, LISTENER[p]);
  return { attackers: attackers.flat(), ordinary: ordinary.flat(), backendRequests: after - before };
}

/** The abnormal-traffic scenario. */
export const protection: Scenario = {
  name: 'protection',
  number: 10,
  title: 'L7 abnormal traffic: a flood with protection off and on',
  claim:
    'A flood from a few clients reaches the servers in full through a balancer without protection, and everyone shares the cost; a per-client rate limit refuses the excess at the balancer (429) and detection blocks the flooders (403), while ordinary clients are served as before.',
  setup: (quick) => {
    const p = plan(quick);
    return `Two sample backends behind one balancer with two http listeners on two pools of the same servers: "open" without protection and "guarded" with protection: { rateLimit: { requests: ${RATE.requests}, per: ${RATE.per}, burst: ${RATE.burst} } (per client address), detect: { window: ${DETECT.window}, sustain: ${DETECT.sustain}, blockFor: ${DETECT.blockFor} } }. For ${p.seconds} s against each listener in turn: ${ATTACKERS} attacker clients, each from its own address 127.0.x.2y, with ${ATTACKER_CONNECTIONS} keep-alive connections sending GET / as fast as answers come (closed loop), and ${ORDINARY} ordinary clients from 127.0.x.3y, one keep-alive connection each, one GET / every ${ORDINARY_INTERVAL_MS} ms. Requests reaching the backends are the balancer's per-server totals (admin API). ${p.reps} repetition(s), fresh addresses each time.`;
  },
  async run(ctx: LabContext): Promise<Findings> {
    const p = plan(ctx.quick);
    ctx.progress('starting 2 backends and the balancer');
    const backends = await Promise.all(['pa', 'pb'].map((id) => startBackend(ctx.procs, id)));
    const servers = backends.map((b) => ({ address: `127.0.0.1:${b.port}`, name: b.id }));
    const lb = await startBalancer(
      ctx.procs,
      ctx.workDir,
      'protection',
      { open: 'open', guarded: { pool: 'guarded', protection: { rateLimit: RATE, detect: DETECT } } },
      [
        { name: 'open', algorithm: 'round-robin', servers },
        { name: 'guarded', algorithm: 'round-robin', servers },
      ],
    );
    const results: Record<Phase, PhaseResult[]> = { off: [], on: [] };
    for (let rep = 0; rep < p.reps; rep++) {
      for (const [k, ph] of PHASES.entries()) {
        ctx.progress(`protection ${ph}, repetition ${rep + 1}/${p.reps}`);
        // Fresh addresses for each run: a blocked client stays blocked for blockFor.
        const prefix = `127.${10 + rep}.${1 + k}`;
        results[ph].push(
          await phase(
            lb,
            ph,
            p.seconds,
            Array.from({ length: ATTACKERS }, (_, i) => `${prefix}.${21 + i}`),
            Array.from({ length: ORDINARY }, (_, i) => `${prefix}.${31 + i}`),
          ),
        );
      }
    }
    const sp = (ph: Phase, f: (r: PhaseResult) => number) => spread(results[ph].map(f));
    const errors = (ph: Phase) => sp(ph, (r) => r.ordinary.filter((s) => s.status !== 200).length);
    const latency = (ph: Phase, q: number) =>
      sp(ph, (r) =>
        quantile(
          r.ordinary.filter((s) => s.status === 200).map((s) => s.ms),
          q,
        ),
      );
    const backend = (ph: Phase) => sp(ph, (r) => r.backendRequests);
    const outcome = (ph: Phase, status: number) =>
      sp(ph, (r) => r.attackers.filter((s) => s.status === status).length);
    const other = (ph: Phase) =>
      sp(ph, (r) => r.attackers.filter((s) => !OUTCOMES.some(([, st]) => st === s.status)).length);
    const refused = outcome('on', 429).median + outcome('on', 403).median;
    const checks = [
      check(
        'with protection on, the attackers get 429 (over their rate)',
        outcome('on', 429).median > 0,
        `${fmt(outcome('on', 429).median, 0)} answers 429`,
      ),
      check(
        'and detection blocks them: 403, then their connections are closed',
        outcome('on', 403).median > 0,
        `${fmt(outcome('on', 403).median, 0)} answers 403, ${fmt(outcome('on', 0).median, 0)} connections closed`,
      ),
      check(
        'the backends receive far fewer requests with protection on (at most half)',
        backend('on').median * 2 <= backend('off').median,
        `${fmt(backend('on').median, 0)} with protection vs ${fmt(backend('off').median, 0)} without`,
      ),
      check(
        'ordinary clients get no errors with protection on',
        results.on.every((r) => r.ordinary.length > 0 && r.ordinary.every((s) => s.status === 200)),
        `${fmt(errors('on').median, 0)} errors of ${fmt(sp('on', (r) => r.ordinary.length).median, 0)} requests`,
      ),
    ];
    const label: Record<Phase, string> = { off: 'protection off', on: 'protection on' };
    return {
      tables: [
        {
          caption: `Median (min–max) over ${p.reps} repetition(s) of ${p.seconds} s`,
          columns: ['', label.off, label.on],
          rows: [
            ['requests reaching the backends', fmtSpread(backend('off'), 0), fmtSpread(backend('on'), 0)],
            [
              'ordinary clients: requests',
              ...PHASES.map((ph) =>
                fmtSpread(
                  sp(ph, (r) => r.ordinary.length),
                  0,
                ),
              ),
            ],
            ['ordinary clients: errors', ...PHASES.map((ph) => fmtSpread(errors(ph), 0))],
            ['ordinary clients: p50 ms', ...PHASES.map((ph) => fmtSpread(latency(ph, 0.5)))],
            ['ordinary clients: p99 ms', ...PHASES.map((ph) => fmtSpread(latency(ph, 0.99)))],
            [
              'attackers: requests',
              ...PHASES.map((ph) =>
                fmtSpread(
                  sp(ph, (r) => r.attackers.length),
                  0,
                ),
              ),
            ],
            ...OUTCOMES.map(([name, status]) => [
              `attackers: ${name}`,
              ...PHASES.map((ph) => fmtSpread(outcome(ph, status), 0)),
            ]),
            ['attackers: other answers', ...PHASES.map((ph) => fmtSpread(other(ph), 0))],
          ],
        },
      ],
      charts: [
        {
          kind: 'bar',
          title: 'Requests reaching the backends',
          yLabel: 'requests',
          categories: PHASES.map((ph) => label[ph]),
          series: [
            {
              name: 'requests at the backends',
              values: PHASES.map((ph) => backend(ph).median),
              low: PHASES.map((ph) => backend(ph).min),
              high: PHASES.map((ph) => backend(ph).max),
            },
          ],
        },
        {
          kind: 'bar',
          title: "What the attackers' requests got",
          yLabel: 'requests',
          categories: PHASES.map((ph) => label[ph]),
          series: OUTCOMES.map(([name, status]) => ({
            name,
            values: PHASES.map((ph) => outcome(ph, status).median),
          })),
        },
        {
          kind: 'bar',
          title: 'Latency of the ordinary clients',
          yLabel: 'ms',
          categories: PHASES.map((ph) => label[ph]),
          series: [
            ['p50', 0.5],
            ['p99', 0.99],
          ].map(([name, q]) => ({
            name: name as string,
            values: PHASES.map((ph) => latency(ph, q as number).median),
            low: PHASES.map((ph) => latency(ph, q as number).min),
            high: PHASES.map((ph) => latency(ph, q as number).max),
          })),
        },
      ],
      meaning: `Without protection every request of the flood reached the servers (${fmt(backend('off').median, 0)} in ${p.seconds} s); with it the balancer answered ${fmt(refused, 0)} of them itself with 429 or 403, closed ${fmt(outcome('on', 0).median, 0)} of the blocked clients' connections at accept, and the servers got ${fmt(backend('on').median, 0)}, while the ordinary clients, under their rate, were served without errors.`,
      checks,
      figures: {
        'off.backendRequests': backend('off').median,
        'on.backendRequests': backend('on').median,
        'off.ordinaryErrors': errors('off').median,
        'on.ordinaryErrors': errors('on').median,
        'off.ordinaryP50Ms': latency('off', 0.5).median,
        'off.ordinaryP99Ms': latency('off', 0.99).median,
        'on.ordinaryP50Ms': latency('on', 0.5).median,
        'on.ordinaryP99Ms': latency('on', 0.99).median,
        'on.attacker429': outcome('on', 429).median,
        'on.attacker403': outcome('on', 403).median,
        'on.attackerClosed': outcome('on', 0).median,
        'off.attackerServed': outcome('off', 200).median,
      },
    };
  },
};
