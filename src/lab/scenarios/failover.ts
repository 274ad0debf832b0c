/**
 * Scenario 4: a server killed under load. The same three backends behind two pools, one retrying
 * a failed attempt on another server and one not; both under load when one backend dies and comes
 * back: failed requests of each, the time the health checks take to mark it down and up again.
 */
import { performance } from 'node:perf_hooks';
import { restartBackend, startBackend, startBalancer, waitForServerState } from '../fleet.js';
import { closedLoop, type Sample } from '../load.js';
import { sleep } from '../processes.js';
import { check, type Findings, type LabContext, type Scenario } from '../scenario.js';
import { fmt, fmtSpread, spread } from '../stats.js';

const BUCKET_MS = 250;
const CHECK = { interval: '250ms', timeout: '1500ms', fall: 2, rise: 2 };

function plan(quick: boolean) {
  return { reps: quick ? 1 : 3, killAt: 1500, downFor: quick ? 2500 : 4000, total: quick ? 6000 : 10_000 };
}

interface Rep {
  errors: { plain: number; retry: number };
  total: { plain: number; retry: number };
  detectMs: number;
  recoverMs: number;
  servedAfter: number;
  samples: { plain: Sample[]; retry: Sample[] };
  killAt: number;
  downAt: number;
  restartAt: number;
  upAt: number;
}

/** The failover scenario. */
export const failover: Scenario = {
  name: 'failover',
  number: 4,
  title: 'Failover: a server killed under load',
  claim:
    'When a server dies, the balancer keeps sending it requests until its health checks notice; retrying on another server hides those failures from clients, and the server gets traffic again once it is back.',
  setup: (quick) => {
    const p = plan(quick);
    return `Three sample backends (5 ms per answer) in two pools of one balancer: "no retries" (retries.attempts 0) and "retries" (attempts 2 on connect-failure and reset); health checks GET /health every ${CHECK.interval}, timeout ${CHECK.timeout}, fall ${CHECK.fall}, rise ${CHECK.rise}. Each listener gets a closed-loop client with 4 keep-alive connections for ${p.total / 1000} s, or until a second after b is back. At ${p.killAt / 1000} s backend b is killed (SIGKILL); ${p.downFor / 1000} s later it is started again on its port. The admin API is polled every 25 ms for the server's state. ${p.reps} repetition(s).`;
  },
  async run(ctx: LabContext): Promise<Findings> {
    const p = plan(ctx.quick);
    const reps: Rep[] = [];
    for (let rep = 0; rep < p.reps; rep++) {
      ctx.progress(`repetition ${rep + 1}/${p.reps}: starting 3 backends and the balancer`);
      const backends = await Promise.all(
        ['a', 'b', 'c'].map((id) => startBackend(ctx.procs, id, ['--delay', '5ms'])),
      );
      const servers = backends.map((b) => ({ address: `127.0.0.1:${b.port}`, name: b.id }));
      const healthCheck = { type: 'http', path: '/health', ...CHECK };
      const lb = await startBalancer(
        ctx.procs,
        ctx.workDir,
        `failover-${rep}`,
        { plain: 'no-retries', retry: 'retries' },
        [
          { name: 'no-retries', servers, healthCheck, retries: { attempts: 0 } },
          {
            name: 'retries',
            servers,
            healthCheck,
            retries: { attempts: 2, on: ['connect-failure', 'reset'] },
          },
        ],
      );
      const origin = performance.now();
      const now = () => performance.now() - origin;
      // The load runs until a second after b is back (at most a minute: a loaded machine starts
      // processes slowly).
      const stop = new AbortController();
      const load = Promise.all(
        (['plain', 'retry'] as const).map((l) =>
          closedLoop(lb.ports[l]!, {
            concurrency: 4,
            durationMs: 60_000,
            origin,
            path: '/',
            signal: stop.signal,
          }),
        ),
      );
      const victim = backends[1]!;
      await sleep(p.killAt);
      ctx.progress(`repetition ${rep + 1}: killing backend b under load`);
      const killAt = now();
      await ctx.procs.kill(victim.proc);
      const detectMs = await waitForServerState(lb, 'no-retries', 'b', 'down', 10_000);
      const downAt = now();
      await sleep(Math.max(0, killAt + p.downFor - now()));
      ctx.progress(`repetition ${rep + 1}: starting backend b again`);
      await restartBackend(ctx.procs, victim);
      const restartAt = now();
      const recoverMs = await waitForServerState(lb, 'no-retries', 'b', 'up', 10_000);
      const upAt = now();
      await sleep(Math.max(1000, p.total - now()));
      stop.abort();
      const [plain, retry] = await load;
      reps.push({
        errors: {
          plain: plain!.filter((s) => s.status !== 200).length,
          retry: retry!.filter((s) => s.status !== 200).length,
        },
        total: { plain: plain!.length, retry: retry!.length },
        detectMs: Number.isFinite(detectMs) ? downAt - killAt : Number.NaN,
        recoverMs: Number.isFinite(recoverMs) ? upAt - restartAt : Number.NaN,
        servedAfter: [...plain!, ...retry!].filter((s) => s.servedBy === 'b' && s.at > upAt).length,
        samples: { plain: plain!, retry: retry! },
        killAt,
        downAt,
        restartAt,
        upAt,
      });
      await ctx.procs.stopAll();
    }
    const sp = (f: (r: Rep) => number) => spread(reps.map(f));
    const errPlain = sp((r) => r.errors.plain);
    const errRetry = sp((r) => r.errors.retry);
    const detect = sp((r) => r.detectMs);
    const recover = sp((r) => r.recoverMs);
    const served = sp((r) => r.servedAfter);
    const last = reps[reps.length - 1]!;
    const lastAt = Math.max(...last.samples.plain.map((s) => s.at), p.total);
    const buckets = Math.ceil(lastAt / BUCKET_MS) + 1;
    const perBucket = (samples: Sample[], keep: (s: Sample) => boolean): [number, number][] => {
      const counts = new Array<number>(buckets).fill(0);
      for (const s of samples) if (keep(s)) counts[Math.min(buckets - 1, Math.floor(s.at / BUCKET_MS))]!++;
      return counts.map((c, i) => [(i * BUCKET_MS) / 1000, c]);
    };
    const checks = [
      check(
        'without retries, clients see failures when the server dies',
        errPlain.median > 0,
        `${fmt(errPlain.median, 0)} failed requests`,
      ),
      check(
        'retries hide (most of) them',
        errRetry.median < errPlain.median,
        `${fmt(errRetry.median, 0)} failed with retries vs ${fmt(errPlain.median, 0)} without`,
      ),
      check(
        'the health checks mark the dead server down',
        Number.isFinite(detect.median) && detect.median < 10_000,
        `after ${fmt(detect.median, 0)} ms (interval ${CHECK.interval} × fall ${CHECK.fall})`,
      ),
      check(
        'the restarted server is marked up and serves again',
        Number.isFinite(recover.median) && served.median > 0,
        `up after ${fmt(recover.median, 0)} ms, then served ${fmt(served.median, 0)} requests`,
      ),
    ];
    const marks = [
      { x: last.killAt / 1000, label: 'killed' },
      { x: last.downAt / 1000, label: 'down' },
      { x: last.restartAt / 1000, label: 'listening' },
      { x: last.upAt / 1000, label: 'up' },
    ];
    return {
      tables: [
        {
          caption: `Median (min–max) over ${reps.length} repetition(s)`,
          columns: ['', 'no retries', 'retries'],
          rows: [
            [
              'requests sent',
              fmtSpread(
                sp((r) => r.total.plain),
                0,
              ),
              fmtSpread(
                sp((r) => r.total.retry),
                0,
              ),
            ],
            ['failed requests', fmtSpread(errPlain, 0), fmtSpread(errRetry, 0)],
            ['time from kill to marked down (ms)', fmtSpread(detect, 0), 'same servers, same checks'],
            ['time from listening again to marked up (ms)', fmtSpread(recover, 0), ''],
          ],
        },
      ],
      charts: [
        {
          kind: 'line',
          title: `Failed requests per ${BUCKET_MS} ms (last repetition)`,
          xLabel: 'time (s)',
          yLabel: `failed requests per ${BUCKET_MS} ms`,
          series: [
            { name: 'no retries', points: perBucket(last.samples.plain, (s) => s.status !== 200) },
            { name: 'retries', points: perBucket(last.samples.retry, (s) => s.status !== 200) },
          ],
          markers: marks,
        },
        {
          kind: 'line',
          title: `Requests served by b per ${BUCKET_MS} ms (last repetition)`,
          xLabel: 'time (s)',
          yLabel: `requests per ${BUCKET_MS} ms`,
          series: [
            { name: 'no retries', points: perBucket(last.samples.plain, (s) => s.servedBy === 'b') },
            { name: 'retries', points: perBucket(last.samples.retry, (s) => s.servedBy === 'b') },
          ],
          markers: marks,
        },
      ],
      meaning: `Between the kill and the health checks' verdict (${fmt(detect.median, 0)} ms here) the balancer still chose the dead server: without retries ${fmt(errPlain.median, 0)} requests failed, with retries ${fmt(errRetry.median, 0)}; faster checks shorten the window, retries close it for requests that can be replayed.`,
      checks,
      figures: {
        'errors.noRetries': errPlain.median,
        'errors.retries': errRetry.median,
        detectMs: detect.median,
        recoverMs: recover.median,
        servedAfterRestart: served.median,
      },
    };
  },
};
