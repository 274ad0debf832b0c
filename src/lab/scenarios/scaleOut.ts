/**
 * Scenario 1: scale-out. 1, 2, then 3 backends that spend CPU on every request, behind one
 * balancer: throughput and latency by backend count, and where this machine's cores cap it.
 */
import os from 'node:os';
import { startBackend, startBalancer } from '../fleet.js';
import { closedLoop } from '../load.js';
import { check, type Findings, type LabContext, type Scenario } from '../scenario.js';
import { fmt, fmtSpread, quantile, spread } from '../stats.js';

const COUNTS = [1, 2, 3];
const CPU_MS = 4;
const CONCURRENCY = 12;

function plan(quick: boolean) {
  return { reps: quick ? 2 : 3, seconds: quick ? 2 : 5 };
}

/** The scale-out scenario. */
export const scaleOut: Scenario = {
  name: 'scale-out',
  number: 1,
  title: 'Scale-out: 1, 2, 3 backends doing CPU work',
  claim:
    "Adding servers behind a balancer adds throughput, as long as there is hardware for them: past the machine's cores, more servers only share the same CPU.",
  setup: (quick) => {
    const p = plan(quick);
    return `Three sample backends that spend ${CPU_MS} ms of CPU on every request (fulcrum backend --cpu ${CPU_MS}ms), one balancer with three least-connections pools: the first backend, the first two, all three. A closed-loop client with ${CONCURRENCY} keep-alive connections runs GET / for ${p.seconds} s against each in turn, ${p.reps} repetitions. This machine has ${os.cpus().length} cores, shared by the backends, the balancer and the load generator.`;
  },
  async run(ctx: LabContext): Promise<Findings> {
    const p = plan(ctx.quick);
    ctx.progress('starting 3 backends and the balancer');
    const backends = await Promise.all(
      ['cpu-a', 'cpu-b', 'cpu-c'].map((id) => startBackend(ctx.procs, id, ['--cpu', `${CPU_MS}ms`])),
    );
    const lb = await startBalancer(
      ctx.procs,
      ctx.workDir,
      'scale-out',
      Object.fromEntries(COUNTS.map((n) => [`x${n}`, `x${n}`])),
      COUNTS.map((n) => ({
        name: `x${n}`,
        algorithm: 'least-connections',
        servers: backends.slice(0, n).map((b) => ({ address: `127.0.0.1:${b.port}`, name: b.id })),
      })),
    );
    const rps = new Map<number, number[]>(COUNTS.map((n) => [n, []]));
    const p50 = new Map<number, number[]>(COUNTS.map((n) => [n, []]));
    const p99 = new Map<number, number[]>(COUNTS.map((n) => [n, []]));
    let failed = 0;
    for (let rep = 0; rep < p.reps; rep++) {
      for (const n of COUNTS) {
        ctx.progress(`${n} backend(s), repetition ${rep + 1}/${p.reps}`);
        const samples = await closedLoop(lb.ports[`x${n}`]!, {
          concurrency: CONCURRENCY,
          durationMs: p.seconds * 1000,
        });
        const ok = samples.filter((s) => s.status === 200);
        failed += samples.length - ok.length;
        rps.get(n)!.push(ok.length / p.seconds);
        p50.get(n)!.push(
          quantile(
            ok.map((s) => s.ms),
            0.5,
          ),
        );
        p99.get(n)!.push(
          quantile(
            ok.map((s) => s.ms),
            0.99,
          ),
        );
      }
    }
    const med = (m: Map<number, number[]>, n: number) => spread(m.get(n)!).median;
    const gain2 = med(rps, 2) / med(rps, 1);
    const gain3 = med(rps, 3) / med(rps, 2);
    const checks = [
      check('two backends serve more than one', gain2 > 1.05, `${fmt(gain2, 2)}× the requests per second`),
      check('no request failed', failed === 0, `${failed} failed`),
    ];
    return {
      tables: [
        {
          caption: `Requests per second and latency, median (min–max) over ${p.reps} repetitions`,
          columns: ['backends', 'requests/s', 'p50 ms', 'p99 ms'],
          rows: COUNTS.map((n) => [
            String(n),
            fmtSpread(spread(rps.get(n)!), 0),
            fmtSpread(spread(p50.get(n)!)),
            fmtSpread(spread(p99.get(n)!)),
          ]),
        },
      ],
      charts: [
        {
          kind: 'line',
          title: 'Throughput by number of backends',
          xLabel: 'backends',
          yLabel: 'requests per second',
          series: [
            { name: 'measured', points: COUNTS.map((n) => [n, med(rps, n)] as [number, number]) },
            {
              name: 'linear (1 backend × N)',
              points: COUNTS.map((n) => [n, med(rps, 1) * n] as [number, number]),
              dashed: true,
            },
          ],
        },
      ],
      meaning: `Going from 1 to 2 backends multiplied throughput by ${fmt(gain2, 2)} and from 2 to 3 by ${fmt(gain3, 2)}: the gap to the linear line is this machine's ${os.cpus().length} cores, shared with the balancer and the client, running out.`,
      checks,
      figures: Object.fromEntries(COUNTS.map((n) => [`rps.${n}`, med(rps, n)])),
    };
  },
};
