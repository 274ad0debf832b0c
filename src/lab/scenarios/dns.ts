/**
 * Scenario 9: DNS balancing's coarse control. Fulcrum's dns listener answers a name from a pool of
 * three backends; clients cache the answer for its TTL and send to its first address. One backend
 * is killed: the clients that hold its address keep failing until their cached answer expires,
 * long after the health checks took it out of the answers; the same kill behind the http listener
 * of the same pool, with retries, fails (almost) nothing.
 */
import { performance } from 'node:perf_hooks';
import { startBackend, startBalancer } from '../fleet.js';
import { keepAliveAgent, pacedLoop, type Sample } from '../load.js';
import { freePort, sleep } from '../processes.js';
import { check, type Findings, type LabContext, type Scenario } from '../scenario.js';
import { fmt, fmtSpread, spread } from '../stats.js';
import { CachingClient, queryA } from '../stubResolver.js';

const ZONE = 'lab.test';
const NAME = `www.${ZONE}`;
const SERVERS = [
  { id: 'a', address: '127.0.0.11' },
  { id: 'b', address: '127.0.0.12' },
  { id: 'c', address: '127.0.0.13' },
];
const CLIENTS = 6;
const INTERVAL_MS = 20;
const KILL_AFTER_MS = 500;
const BUCKET_MS = 250;
const CHECK = { interval: '250ms', timeout: '1s', fall: 2, rise: 2 };

function plan(quick: boolean) {
  return { reps: quick ? 1 : 3, ttl: quick ? 3 : 5 };
}

interface Rep {
  sent: { dns: number; l7: number };
  failed: { dns: number; l7: number };
  failedAfterRemoval: number;
  /** From the kill to the end of the last failed request through DNS (ms). */
  lastFailureMs: number;
  /** From the kill to the first answer without the dead server (ms). */
  removedMs: number;
  clientsOnDead: number;
  samples: { dns: Sample[]; l7: Sample[] };
  killAt: number;
  removedAt: number;
  expiresAt: number;
}

/** The DNS scenario. */
export const dns: Scenario = {
  name: 'dns',
  number: 9,
  title: "DNS balancing's coarse control",
  claim:
    'Clients keep using an address they resolved until its TTL runs out, so traffic goes on reaching a dead server for up to the TTL, even after the health checks have taken it out of the answers; a balancer in the path stops sending to it as soon as it fails, and retries the request elsewhere.',
  setup: (quick) => {
    const p = plan(quick);
    return `Three sample backends on 127.0.0.11, .12 and .13 (same port), one pool with round robin, health checks GET /health every ${CHECK.interval} (fall ${CHECK.fall}) and retries (attempts 2 on connect-failure and reset). One balancer with a dns listener answering ${NAME} (A records of the pool's usable servers, TTL ${p.ttl} s) and an http listener on the same pool. ${CLIENTS} DNS clients each resolve ${NAME} over UDP once, keep the answer for its TTL and send GET / to its first address every ${INTERVAL_MS} ms, never trying another address (a stub resolver's cache and a simple client); ${CLIENTS} clients send GET / through the http listener at the same pace. ${KILL_AFTER_MS} ms after the DNS clients resolved, the backend first in the second client's answer is killed (SIGKILL); a probe asks the dns listener every 50 ms until the answer leaves it out. ${p.reps} repetition(s).`;
  },
  async run(ctx: LabContext): Promise<Findings> {
    const p = plan(ctx.quick);
    const reps: Rep[] = [];
    for (let rep = 0; rep < p.reps; rep++) {
      ctx.progress(`repetition ${rep + 1}/${p.reps}: starting 3 backends and the balancer`);
      const port = await freePort();
      const procs = await Promise.all(
        SERVERS.map(async (s) => (await startBackend(ctx.procs, s.id, [], port, s.address)).proc),
      );
      const lb = await startBalancer(
        ctx.procs,
        ctx.workDir,
        `dns-${rep}`,
        {
          dns: {
            protocol: 'dns',
            responseRateLimit: { responses: 0 },
            zones: [{ name: ZONE, ttl: `${p.ttl}s`, records: [{ name: 'www', pool: 'web' }] }],
          },
          l7: 'web',
        },
        [
          {
            name: 'web',
            algorithm: 'round-robin',
            healthCheck: { type: 'http', path: '/health', ...CHECK },
            retries: { attempts: 2, on: ['connect-failure', 'reset'] },
            servers: SERVERS.map((s) => ({ address: `${s.address}:${port}`, name: s.id })),
          },
        ],
      );
      const dnsPort = lb.ports.dns!;
      ctx.progress(`repetition ${rep + 1}: ${CLIENTS} clients resolve ${NAME} and send`);
      const clients = Array.from({ length: CLIENTS }, () => new CachingClient(dnsPort, NAME, port));
      // One after the other, so round robin gives them each server first in turn.
      const first: string[] = [];
      for (const c of clients) first.push((await c.target()).host);
      const origin = performance.now();
      const now = () => performance.now() - origin;
      const expiresAt = p.ttl * 1000;
      const victim = SERVERS.findIndex((s) => s.address === first[1]);
      if (victim < 0) throw new Error(`the DNS answer named no backend: ${first.join(', ')}`);
      const stop = new AbortController();
      const agents = Array.from({ length: 2 * CLIENTS }, () => keepAliveAgent(1));
      const paced = { intervalMs: INTERVAL_MS, durationMs: 60_000, origin, signal: stop.signal, path: '/' };
      const dnsLoad = Promise.all(
        clients.map((c, i) => pacedLoop(port, { ...paced, agent: agents[i]!, target: () => c.target() })),
      );
      const l7Load = Promise.all(
        clients.map((_, i) => pacedLoop(lb.ports.l7!, { ...paced, agent: agents[CLIENTS + i]! })),
      );
      await sleep(KILL_AFTER_MS);
      ctx.progress(`repetition ${rep + 1}: killing backend ${SERVERS[victim]!.id}`);
      const killAt = now();
      await ctx.procs.kill(procs[victim]!);
      let removedAt = Number.NaN;
      while (now() - killAt < 15_000) {
        const answer = await queryA(dnsPort, NAME).catch(() => undefined);
        if (answer !== undefined && !answer.addresses.includes(SERVERS[victim]!.address)) {
          removedAt = now();
          break;
        }
        await sleep(50);
      }
      // Until every cached answer has expired and been renewed (longer if the checks were slow).
      const endAt = Math.max(expiresAt, Number.isFinite(removedAt) ? removedAt + p.ttl * 1000 : 0) + 1500;
      await sleep(Math.max(0, endAt - now()));
      stop.abort();
      const dnsSamples = (await dnsLoad).flat();
      const l7Samples = (await l7Load).flat();
      for (const a of agents) a.destroy();
      const dnsFailures = dnsSamples.filter((s) => s.status !== 200);
      reps.push({
        sent: { dns: dnsSamples.length, l7: l7Samples.length },
        failed: { dns: dnsFailures.length, l7: l7Samples.filter((s) => s.status !== 200).length },
        failedAfterRemoval: dnsFailures.filter((s) => s.at > removedAt).length,
        lastFailureMs:
          dnsFailures.length === 0 ? 0 : Math.max(...dnsFailures.map((s) => s.at + s.ms)) - killAt,
        removedMs: removedAt - killAt,
        clientsOnDead: first.filter((a) => a === SERVERS[victim]!.address).length,
        samples: { dns: dnsSamples, l7: l7Samples },
        killAt,
        removedAt,
        expiresAt,
      });
      await ctx.procs.stopAll();
    }
    const sp = (f: (r: Rep) => number) => spread(reps.map(f));
    const failedDns = sp((r) => r.failed.dns);
    const failedL7 = sp((r) => r.failed.l7);
    const afterRemoval = sp((r) => r.failedAfterRemoval);
    const lastFailure = sp((r) => r.lastFailureMs);
    const removed = sp((r) => r.removedMs);
    const ttlMs = p.ttl * 1000;
    const last = reps[reps.length - 1]!;
    const lastAt = Math.max(...last.samples.dns.map((s) => s.at), ttlMs);
    const buckets = Math.ceil(lastAt / BUCKET_MS) + 1;
    const failedPerBucket = (samples: Sample[]): [number, number][] => {
      const counts = new Array<number>(buckets).fill(0);
      for (const s of samples) {
        if (s.status !== 200) counts[Math.min(buckets - 1, Math.floor(s.at / BUCKET_MS))]!++;
      }
      return counts.map((c, i) => [(i * BUCKET_MS) / 1000, c]);
    };
    const checks = [
      check(
        'through DNS, requests kept going to the dead server after the kill',
        failedDns.median > 0,
        `${fmt(failedDns.median, 0)} failed requests from the ${fmt(sp((r) => r.clientsOnDead).median, 0)} client(s) holding its address`,
      ),
      check(
        'the health checks took the dead server out of the answers',
        Number.isFinite(removed.median),
        `${fmt(removed.median, 0)} ms after the kill`,
      ),
      check(
        'cached answers kept sending to it after it had left the answers: the TTL decides, not the health check',
        afterRemoval.median > 0 && lastFailure.median > removed.median,
        `last failure ${fmt(lastFailure.median, 0)} ms after the kill, ${fmt(afterRemoval.median, 0)} failures after it left the answers`,
      ),
      check(
        'the failures stopped once the cached answers expired (TTL plus a second of slack)',
        lastFailure.median <= ttlMs + 1000,
        `last failure ${fmt(lastFailure.median, 0)} ms after the kill; TTL ${ttlMs} ms, answers cached ${KILL_AFTER_MS} ms before the kill`,
      ),
      check(
        'through the http listener far fewer failed (at most a tenth), retried on another server',
        failedL7.median * 10 <= failedDns.median,
        `${fmt(failedL7.median, 0)} failed through the balancer vs ${fmt(failedDns.median, 0)} through DNS`,
      ),
    ];
    return {
      tables: [
        {
          caption: `Median (min–max) over ${reps.length} repetition(s); TTL ${p.ttl} s`,
          columns: ['', 'DNS clients caching the answer', 'clients of the http listener'],
          rows: [
            [
              'requests sent',
              fmtSpread(
                sp((r) => r.sent.dns),
                0,
              ),
              fmtSpread(
                sp((r) => r.sent.l7),
                0,
              ),
            ],
            ['failed requests', fmtSpread(failedDns, 0), fmtSpread(failedL7, 0)],
            ['failed after the dead server had left the answers', fmtSpread(afterRemoval, 0), ''],
            ['time from the kill to the last failure (ms)', fmtSpread(lastFailure, 0), ''],
            [
              'time from the kill to out of the answers (ms)',
              fmtSpread(removed, 0),
              'same pool, same checks',
            ],
          ],
        },
      ],
      charts: [
        {
          kind: 'line',
          title: `Failed requests per ${BUCKET_MS} ms (last repetition)`,
          xLabel: 'time since the clients resolved (s)',
          yLabel: `failed requests per ${BUCKET_MS} ms`,
          series: [
            { name: 'DNS clients', points: failedPerBucket(last.samples.dns) },
            { name: 'http listener', points: failedPerBucket(last.samples.l7) },
          ],
          markers: [
            { x: last.killAt / 1000, label: 'killed' },
            ...(Number.isFinite(last.removedAt)
              ? [{ x: last.removedAt / 1000, label: 'out of answers' }]
              : []),
            { x: last.expiresAt / 1000, label: 'TTL expired' },
          ],
        },
      ],
      meaning: `The health checks took the dead server out of Fulcrum's DNS answers ${fmt(removed.median, 0)} ms after the kill, but clients that had cached it kept sending to it until their ${p.ttl} s TTL ran out (${fmt(failedDns.median, 0)} failed requests); behind the http listener the same kill cost ${fmt(failedL7.median, 0)}: DNS balancing steers new lookups, not traffic already resolved.`,
      checks,
      figures: {
        ttlMs,
        'dns.failed': failedDns.median,
        'dns.failedAfterRemoval': afterRemoval.median,
        'dns.lastFailureMs': lastFailure.median,
        'dns.removedFromAnswersMs': removed.median,
        'l7.failed': failedL7.median,
      },
    };
  },
};
