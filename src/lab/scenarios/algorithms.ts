/**
 * Scenario 2: one slow server among three, under round robin, weighted round robin, least
 * connections and least response time: each one's share of the traffic and the latency clients see.
 */
import { type Backend, startBackend, startBalancer } from '../fleet.js';
import { closedLoop } from '../load.js';
import { check, type Findings, type LabContext, type Scenario } from '../scenario.js';
import { fmt, fmtSpread, mean, quantile, shares, spread } from '../stats.js';

const ALGORITHMS = [
  'round-robin',
  'weighted-round-robin',
  'least-connections',
  'least-response-time',
] as const;
const SHORT: Record<(typeof ALGORITHMS)[number], string> = {
  'round-robin': 'rr',
  'weighted-round-robin': 'wrr',
  'least-connections': 'lc',
  'least-response-time': 'lrt',
};
const SLOW_MS = 40;
const CONCURRENCY = 6;
const SERVERS = ['fast-a', 'fast-b', 'slow-c'];

function plan(quick: boolean) {
  return { reps: quick ? 2 : 3, seconds: quick ? 1.5 : 5 };
}

/** The algorithms scenario. */
export const algorithms: Scenario = {
  name: 'algorithms',
  number: 2,
  title: 'Algorithms with one slow server among three',
  claim:
    'Round robin gives a slow server its full third of the traffic, so clients wait on it; weighted round robin gives it what its weight says; least connections and least response time notice it and send it less.',
  setup: (quick) => {
    const p = plan(quick);
    return `Three sample backends (fulcrum backend): fast-a and fast-b answer at once, slow-c waits ${SLOW_MS} ms (--delay). One balancer with four listeners, one per algorithm, each with its own pool of the same three servers (weighted round robin: weights 3, 3, 1). A closed-loop client with ${CONCURRENCY} keep-alive connections runs GET / for ${p.seconds} s against each listener in turn, ${p.reps} repetitions.`;
  },
  async run(ctx: LabContext): Promise<Findings> {
    const p = plan(ctx.quick);
    ctx.progress('starting 3 backends and the balancer');
    const backends: Backend[] = await Promise.all([
      startBackend(ctx.procs, 'fast-a'),
      startBackend(ctx.procs, 'fast-b'),
      startBackend(ctx.procs, 'slow-c', ['--delay', `${SLOW_MS}ms`]),
    ]);
    const weights = [3, 3, 1];
    const lb = await startBalancer(
      ctx.procs,
      ctx.workDir,
      'algorithms',
      Object.fromEntries(ALGORITHMS.map((a) => [SHORT[a], a])),
      ALGORITHMS.map((a) => ({
        name: a,
        algorithm: a,
        servers: backends.map((b, i) => ({
          address: `127.0.0.1:${b.port}`,
          name: b.id,
          ...(a === 'weighted-round-robin' ? { weight: weights[i] } : {}),
        })),
      })),
    );
    // share[algorithm][server][rep], latency per algorithm per rep
    const share = new Map<string, number[][]>(ALGORITHMS.map((a) => [a, SERVERS.map(() => [])]));
    const p50 = new Map<string, number[]>(ALGORITHMS.map((a) => [a, []]));
    const p99 = new Map<string, number[]>(ALGORITHMS.map((a) => [a, []]));
    const avg = new Map<string, number[]>(ALGORITHMS.map((a) => [a, []]));
    const errors = new Map<string, number>(ALGORITHMS.map((a) => [a, 0]));
    for (let rep = 0; rep < p.reps; rep++) {
      for (const a of ALGORITHMS) {
        ctx.progress(`${a}, repetition ${rep + 1}/${p.reps}`);
        const samples = await closedLoop(lb.ports[SHORT[a]]!, {
          concurrency: CONCURRENCY,
          durationMs: p.seconds * 1000,
          path: '/',
        });
        const ok = samples.filter((s) => s.status === 200);
        errors.set(a, (errors.get(a) ?? 0) + samples.length - ok.length);
        for (const [i, v] of shares(ok, (s) => s.servedBy, SERVERS).entries()) share.get(a)![i]!.push(v);
        const ms = ok.map((s) => s.ms);
        p50.get(a)!.push(quantile(ms, 0.5));
        p99.get(a)!.push(quantile(ms, 0.99));
        avg.get(a)!.push(mean(ms));
      }
    }
    const slowShare = (a: string) => spread(share.get(a)![2]!).median;
    const latency = (m: Map<string, number[]>, a: string) => spread(m.get(a)!);
    const figures: Record<string, number> = {};
    for (const a of ALGORITHMS) {
      figures[`${SHORT[a]}.slowShare`] = slowShare(a);
      figures[`${SHORT[a]}.p50Ms`] = latency(p50, a).median;
      figures[`${SHORT[a]}.p99Ms`] = latency(p99, a).median;
      figures[`${SHORT[a]}.meanMs`] = latency(avg, a).median;
    }
    const rr = slowShare('round-robin');
    const checks = [
      check(
        'round robin gives the slow server about a third',
        rr > 0.25 && rr < 0.42,
        `slow-c share ${fmt(rr * 100)} %`,
      ),
      check(
        'weighted round robin follows the weights (1 of 7 to slow-c)',
        slowShare('weighted-round-robin') < rr && slowShare('weighted-round-robin') < 0.22,
        `slow-c share ${fmt(slowShare('weighted-round-robin') * 100)} %`,
      ),
      check(
        'least connections sends the slow server less than round robin',
        slowShare('least-connections') < rr,
        `slow-c share ${fmt(slowShare('least-connections') * 100)} % vs ${fmt(rr * 100)} %`,
      ),
      check(
        'least response time gives the slow server the smallest share',
        SERVERS.every(
          (_, i) =>
            i === 2 ||
            spread(share.get('least-response-time')![i]!).median > slowShare('least-response-time'),
        ),
        `shares ${SERVERS.map((s, i) => `${s} ${fmt(spread(share.get('least-response-time')![i]!).median * 100)} %`).join(', ')}`,
      ),
      check(
        'no request failed',
        [...errors.values()].every((e) => e === 0),
        ALGORITHMS.map((a) => `${SHORT[a]} ${errors.get(a)}`).join(', '),
      ),
    ];
    return {
      tables: [
        {
          caption:
            'Share of requests per server (%) and latency seen by the client (ms), median (min–max) over repetitions',
          columns: ['algorithm', ...SERVERS.map((s) => `${s} %`), 'p50 ms', 'p99 ms', 'mean ms'],
          rows: ALGORITHMS.map((a) => [
            a,
            ...SERVERS.map((_, i) => {
              const s = spread(share.get(a)![i]!.map((v) => v * 100));
              return fmtSpread(s);
            }),
            fmtSpread(latency(p50, a)),
            fmtSpread(latency(p99, a)),
            fmtSpread(latency(avg, a)),
          ]),
        },
      ],
      charts: [
        {
          kind: 'bar',
          title: 'Share of requests per server, by algorithm',
          yLabel: 'share of requests (%)',
          categories: ALGORITHMS.map((a) => a),
          series: SERVERS.map((name, i) => {
            const s = ALGORITHMS.map((a) => spread(share.get(a)![i]!.map((v) => v * 100)));
            return {
              name,
              values: s.map((x) => x.median),
              low: s.map((x) => x.min),
              high: s.map((x) => x.max),
            };
          }),
        },
        {
          kind: 'bar',
          title: 'Latency seen by clients, by algorithm',
          yLabel: 'ms',
          categories: ALGORITHMS.map((a) => a),
          series: [
            ['p50', p50],
            ['p99', p99],
            ['mean', avg],
          ].map(([name, m]) => {
            const s = ALGORITHMS.map((a) => latency(m as Map<string, number[]>, a));
            return {
              name: name as string,
              values: s.map((x) => x.median),
              low: s.map((x) => x.min),
              high: s.map((x) => x.max),
            };
          }),
        },
      ],
      meaning: `Round robin keeps sending a third of the requests to the ${SLOW_MS} ms server whatever it costs; the adaptive algorithms (least connections, least response time) shift traffic to the fast servers on their own, and weighted round robin does so only because an operator set the weights.`,
      checks,
      figures,
    };
  },
};
