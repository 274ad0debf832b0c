/**
 * Scenario 6: Redis vs Memcached as the session store. The latency and throughput of one session
 * load + save through the session library's stores, and what a restart of each server does to
 * the sessions it holds (Redis with its append-only file keeps them, Memcached loses them).
 */
import { performance } from 'node:perf_hooks';
import { openStore } from '../../session/index.js';
import { type StoreServer, startStore, storesUnavailable } from '../fleet.js';
import { sleep } from '../processes.js';
import { check, type Findings, type LabContext, type Scenario } from '../scenario.js';
import { fmt, fmtSpread, quantile, spread } from '../stats.js';

const KINDS = ['redis', 'memcached'] as const;
const LABEL = { redis: 'Redis', memcached: 'Memcached' } as const;
const CONCURRENCY = 16;
const quiet = { warn: () => {} };

function plan(quick: boolean) {
  return { reps: quick ? 2 : 3, seconds: quick ? 1.5 : 4, sessions: quick ? 300 : 2000 };
}

function sessionData(i: number): object {
  return { cookie: { originalMaxAge: 1_800_000 }, user: `user-${i}`, cart: [i, i + 1, i + 2], visits: i };
}

/** One closed-loop run of load + save against `url`: operations per second and per-operation latency. */
async function loadSave(url: string, seconds: number, keys: number) {
  const store = openStore(url, { logger: quiet });
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const i = next++ % keys;
        const id = `lab-bench-${i}`;
        const t = performance.now();
        try {
          const data = (await store.get(id)) ?? sessionData(i);
          await store.set(id, data, 1800);
          latencies.push(performance.now() - t);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  await store.close();
  return {
    opsPerSec: latencies.length / elapsed,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    errors,
  };
}

/** Writes `count` sessions, restarts the server (SIGTERM, same port and folder), counts those still there. */
async function restartKeeps(ctx: LabContext, server: StoreServer, count: number): Promise<number> {
  const before = openStore(server.url, { logger: quiet });
  for (let i = 0; i < count; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, (_, k) =>
        before.set(`lab-restart-${i + k}`, sessionData(i + k), 1800),
      ),
    );
  }
  await before.close();
  await ctx.procs.stop(server.proc);
  await startStore(ctx.procs, ctx.workDir, server.kind, server.port);
  const after = openStore(server.url, { logger: quiet });
  // redis-server accepts connections while it reads its append-only file back, answering LOADING
  // until done: wait for a read that succeeds (found or not) before counting.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ok = await after.get('lab-restart-0').then(
      () => true,
      () => false,
    );
    if (ok || Date.now() > deadline) break;
    await sleep(100);
  }
  let kept = 0;
  for (let i = 0; i < count; i += 50) {
    const found = await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, (_, k) =>
        after.get(`lab-restart-${i + k}`).catch(() => null),
      ),
    );
    kept += found.filter((f) => f !== null && f !== undefined).length;
  }
  await after.close();
  return kept;
}

/** The Redis vs Memcached scenario. */
export const storeRestart: Scenario = {
  name: 'store-restart',
  number: 6,
  title: 'Redis vs Memcached as the session store',
  claim:
    'Both serve a session load + save in about a millisecond or less on loopback; the difference that decides is durability: Redis with persistence keeps the sessions across a restart, Memcached (memory only) loses them all.',
  setup: (quick) => {
    const p = plan(quick);
    return `One redis-server (appendonly yes, appendfsync everysec, its own folder) and one memcached, started by the lab on free ports. Through Fulcrum's RedisStore and MemcachedStore (fulcrum/session), ${CONCURRENCY} concurrent loops each load a session and save it back (get + set, ~100 bytes of JSON, 1 000 distinct sessions) for ${p.seconds} s, ${p.reps} repetitions per store. Then ${p.sessions} sessions are written to each, the server is stopped (SIGTERM) and started again on the same port and folder, and the sessions still there are counted.`;
  },
  unavailable: storesUnavailable,
  async run(ctx: LabContext): Promise<Findings> {
    const p = plan(ctx.quick);
    ctx.progress('starting redis-server and memcached');
    const servers = {
      redis: await startStore(ctx.procs, ctx.workDir, 'redis'),
      memcached: await startStore(ctx.procs, ctx.workDir, 'memcached'),
    };
    const runs = {
      redis: [] as Awaited<ReturnType<typeof loadSave>>[],
      memcached: [] as Awaited<ReturnType<typeof loadSave>>[],
    };
    for (let rep = 0; rep < p.reps; rep++) {
      for (const k of KINDS) {
        ctx.progress(`${LABEL[k]} load + save, repetition ${rep + 1}/${p.reps}`);
        runs[k].push(await loadSave(servers[k].url, p.seconds, 1000));
      }
    }
    const kept = { redis: 0, memcached: 0 };
    for (const k of KINDS) {
      ctx.progress(`${LABEL[k]}: writing ${p.sessions} sessions, restarting the server`);
      kept[k] = await restartKeeps(ctx, servers[k], p.sessions);
    }
    const of = (k: (typeof KINDS)[number], f: (r: Awaited<ReturnType<typeof loadSave>>) => number) =>
      spread(runs[k].map(f));
    const figures: Record<string, number> = {};
    for (const k of KINDS) {
      figures[`${k}.opsPerSec`] = of(k, (r) => r.opsPerSec).median;
      figures[`${k}.p50Ms`] = of(k, (r) => r.p50).median;
      figures[`${k}.p99Ms`] = of(k, (r) => r.p99).median;
      figures[`${k}.keptAfterRestart`] = kept[k] / p.sessions;
    }
    const errors = KINDS.map((k) => runs[k].reduce((n, r) => n + r.errors, 0));
    const checks = [
      check(
        'Redis with persistence keeps every session across a restart',
        kept.redis === p.sessions,
        `${kept.redis} of ${p.sessions} kept`,
      ),
      check('Memcached loses them all', kept.memcached === 0, `${kept.memcached} of ${p.sessions} kept`),
      check(
        'no operation failed',
        errors.every((e) => e === 0),
        KINDS.map((k, i) => `${LABEL[k]} ${errors[i]}`).join(', '),
      ),
    ];
    return {
      tables: [
        {
          caption: `Session load + save, ${CONCURRENCY} at a time, median (min–max) over ${p.reps} repetitions`,
          columns: [
            'store',
            'load + save per second',
            'p50 ms',
            'p99 ms',
            `sessions kept after a restart (of ${p.sessions})`,
          ],
          rows: KINDS.map((k) => [
            LABEL[k],
            fmtSpread(
              of(k, (r) => r.opsPerSec),
              0,
            ),
            fmtSpread(
              of(k, (r) => r.p50),
              2,
            ),
            fmtSpread(
              of(k, (r) => r.p99),
              2,
            ),
            String(kept[k]),
          ]),
        },
      ],
      charts: [
        {
          kind: 'bar',
          title: 'Latency of one session load + save',
          yLabel: 'ms',
          categories: KINDS.map((k) => LABEL[k]),
          series: [
            ['p50', (r: Awaited<ReturnType<typeof loadSave>>) => r.p50] as const,
            ['p99', (r: Awaited<ReturnType<typeof loadSave>>) => r.p99] as const,
          ].map(([name, f]) => {
            const s = KINDS.map((k) => of(k, f));
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
          title: 'Sessions still there after the store server restarts',
          yLabel: '% of sessions',
          categories: KINDS.map((k) => LABEL[k]),
          series: [{ name: 'kept after restart', values: KINDS.map((k) => (kept[k] / p.sessions) * 100) }],
        },
      ],
      meaning: `Both are fast on loopback (${fmt(of('redis', (r) => r.opsPerSec).median, 0)} vs ${fmt(of('memcached', (r) => r.opsPerSec).median, 0)} load + save per second here, through Fulcrum's stores and their client libraries, so the gap says as much about the clients as the servers); choose by durability: a Redis restart kept ${kept.redis} of ${p.sessions} sessions, a Memcached restart ${kept.memcached}.`,
      checks,
      figures,
    };
  },
};
