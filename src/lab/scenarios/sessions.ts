/**
 * Scenario 5 (first part): the session problem of scale-out and its fixes. Sessions in each
 * backend's memory without stickiness, with sticky cookies, and in a shared Redis or Memcached
 * store: the requests that find their session gone, then the sessions lost when a server dies.
 */
import {
  type Backend,
  startBackend,
  startBalancer,
  startStore,
  storesUnavailable,
  waitForServerState,
} from '../fleet.js';
import { CookieClient, keepAliveAgent } from '../load.js';
import { check, type Findings, type LabContext, type Scenario } from '../scenario.js';
import { fmt } from '../stats.js';

const SERVERS = 3;

interface Strategy {
  key: string;
  label: string;
  store: (urls: { redis: string; memcached: string }) => string;
  sticky: boolean;
}

const STRATEGIES: Strategy[] = [
  { key: 'memory', label: 'memory, no stickiness', store: () => 'memory', sticky: false },
  { key: 'sticky', label: 'memory + sticky cookie', store: () => 'memory', sticky: true },
  { key: 'redis', label: 'Redis store', store: (u) => u.redis, sticky: false },
  { key: 'memcached', label: 'Memcached store', store: (u) => u.memcached, sticky: false },
];

function plan(quick: boolean) {
  return { clients: quick ? 24 : 90, requests: quick ? 6 : 12 };
}

interface Tally {
  requests: number;
  lost: number;
  clients: number;
  lostOnKill: number;
  failed: number;
}

/** The client's session continued (its count went up by one), or was lost (started again). */
function continued(body: string, last: number): { count: number; ok: boolean } {
  try {
    const count = Number((JSON.parse(body) as { count?: number }).count);
    return { count, ok: count === last + 1 };
  } catch {
    return { count: 0, ok: false };
  }
}

/** The sessions scenario. */
export const sessions: Scenario = {
  name: 'sessions',
  number: 5,
  title: 'Session consistency: memory, sticky sessions, a shared store',
  claim:
    "Sessions kept in one server's memory are lost whenever the balancer sends the client elsewhere; sticky sessions fix that until a server dies (its clients, about 1/N, lose their sessions); a shared Redis or Memcached store loses none.",
  setup: (quick) => {
    const p = plan(quick);
    return `Four groups of ${SERVERS} sample backends (fulcrum backend --session-store memory | redis://… | memcached://…, one redis-server and one memcached started by the lab), each group behind its own round-robin pool of one balancer (the sticky group with sticky: {type: cookie}); health checks every 250 ms. ${p.clients} clients per group, each with its own cookie jar, call GET /session ${p.requests} times (the backend counts the session's requests); a request "sees a lost session" when the count does not go on from the last one. Then one backend of each group is killed (SIGKILL); once marked down, every client calls once more: its session is lost when the count starts again.`;
  },
  unavailable: storesUnavailable,
  async run(ctx: LabContext): Promise<Findings> {
    const p = plan(ctx.quick);
    ctx.progress('starting redis-server, memcached, 12 backends and the balancer');
    const [redis, memcached] = await Promise.all([
      startStore(ctx.procs, ctx.workDir, 'redis'),
      startStore(ctx.procs, ctx.workDir, 'memcached'),
    ]);
    const groups = new Map<string, Backend[]>();
    for (const s of STRATEGIES) {
      const store = s.store({ redis: redis.url, memcached: memcached.url });
      groups.set(
        s.key,
        await Promise.all(
          Array.from({ length: SERVERS }, (_, i) =>
            startBackend(ctx.procs, `${s.key}-${i + 1}`, ['--session-store', store]),
          ),
        ),
      );
    }
    const lb = await startBalancer(
      ctx.procs,
      ctx.workDir,
      'sessions',
      Object.fromEntries(STRATEGIES.map((s) => [s.key, s.key])),
      STRATEGIES.map((s) => ({
        name: s.key,
        algorithm: 'round-robin',
        servers: groups.get(s.key)!.map((b) => ({ address: `127.0.0.1:${b.port}`, name: b.id })),
        healthCheck: {
          type: 'http',
          path: '/health',
          interval: '250ms',
          timeout: '1500ms',
          fall: 2,
          rise: 2,
        },
        ...(s.sticky ? { sticky: { type: 'cookie' } } : {}),
      })),
    );
    const tallies = new Map<string, Tally>();
    const jars = new Map<string, { client: CookieClient; last: number; server: string }[]>();
    await Promise.all(
      STRATEGIES.map(async (s) => {
        const agent = keepAliveAgent(8);
        const t: Tally = { requests: 0, lost: 0, clients: p.clients, lostOnKill: 0, failed: 0 };
        tallies.set(s.key, t);
        const clients = Array.from({ length: p.clients }, () => ({
          client: new CookieClient(lb.ports[s.key]!, agent),
          last: 0,
          server: '',
        }));
        jars.set(s.key, clients);
        await Promise.all(
          clients.map(async (c) => {
            for (let i = 0; i < p.requests; i++) {
              const r = await c.client.get('/session');
              if (r.status !== 200) {
                t.failed++;
                continue;
              }
              const { count, ok } = continued(r.body, c.last);
              t.requests++;
              if (!ok && i > 0) t.lost++;
              c.last = count;
              c.server = r.servedBy;
            }
          }),
        );
      }),
    );
    ctx.progress('killing one backend of each group');
    await Promise.all(STRATEGIES.map((s) => ctx.procs.kill(groups.get(s.key)![1]!.proc)));
    const down = await Promise.all(
      STRATEGIES.map((s) => waitForServerState(lb, s.key, groups.get(s.key)![1]!.id, 'down')),
    );
    await Promise.all(
      STRATEGIES.map(async (s) => {
        const t = tallies.get(s.key)!;
        await Promise.all(
          jars.get(s.key)!.map(async (c) => {
            const r = await c.client.get('/session');
            if (r.status !== 200) t.failed++;
            if (!continued(r.body, c.last).ok) t.lostOnKill++;
          }),
        );
      }),
    );
    const stickyVictim = groups.get('sticky')![1]!.id;
    const onVictim = jars.get('sticky')!.filter((c) => c.server === stickyVictim).length;
    const lostShare = (k: string) =>
      tallies.get(k)!.lost / Math.max(1, tallies.get(k)!.requests - tallies.get(k)!.clients);
    const killShare = (k: string) => tallies.get(k)!.lostOnKill / tallies.get(k)!.clients;
    const figures: Record<string, number> = {};
    for (const s of STRATEGIES) {
      figures[`${s.key}.lostRequests`] = lostShare(s.key);
      figures[`${s.key}.lostOnKill`] = killShare(s.key);
      figures[`${s.key}.failed`] = tallies.get(s.key)!.failed;
    }
    figures['sticky.pinnedToKilled'] = onVictim / p.clients;
    const checks = [
      check(
        'memory sessions without stickiness are lost',
        lostShare('memory') > 0.3,
        `${fmt(lostShare('memory') * 100)} % of the requests after the first saw a lost session`,
      ),
      check(
        'sticky cookies keep every session while the servers live',
        tallies.get('sticky')!.lost === 0,
        `${tallies.get('sticky')!.lost} lost`,
      ),
      check(
        "sticky sessions: exactly the dead server's clients lose theirs (about 1/N)",
        onVictim > 0 && tallies.get('sticky')!.lostOnKill === onVictim,
        `${tallies.get('sticky')!.lostOnKill} of ${p.clients} clients (${fmt(killShare('sticky') * 100)} %; 1/N = ${fmt(100 / SERVERS)} %) lost their session; ${onVictim} were pinned to ${stickyVictim}`,
      ),
      ...(['redis', 'memcached'] as const).map((k) =>
        check(
          `the ${k === 'redis' ? 'Redis' : 'Memcached'} store loses none, even when a server dies`,
          tallies.get(k)!.lost === 0 && tallies.get(k)!.lostOnKill === 0 && tallies.get(k)!.failed === 0,
          `${tallies.get(k)!.lost} lost before, ${tallies.get(k)!.lostOnKill} after the kill, ${tallies.get(k)!.failed} failed requests`,
        ),
      ),
      check(
        'the killed servers were marked down',
        down.every(Number.isFinite),
        down.map((d) => `${fmt(d, 0)} ms`).join(', '),
      ),
    ];
    return {
      tables: [
        {
          caption: `${p.clients} clients per strategy, ${p.requests} requests each, then one of ${SERVERS} servers killed`,
          columns: [
            'strategy',
            'requests seeing a lost session (%)',
            'clients losing their session when a server dies (%)',
            'failed requests',
          ],
          rows: STRATEGIES.map((s) => [
            s.label,
            fmt(lostShare(s.key) * 100),
            fmt(killShare(s.key) * 100),
            String(tallies.get(s.key)!.failed),
          ]),
        },
      ],
      charts: [
        {
          kind: 'bar',
          title: 'Lost sessions by strategy',
          yLabel: '%',
          categories: STRATEGIES.map((s) => s.label),
          series: [
            { name: 'requests seeing a lost session', values: STRATEGIES.map((s) => lostShare(s.key) * 100) },
            {
              name: 'sessions lost when a server dies',
              values: STRATEGIES.map((s) => killShare(s.key) * 100),
            },
          ],
        },
      ],
      meaning: `Without stickiness, memory sessions are useless behind a balancer (${fmt(lostShare('memory') * 100, 0)} % of requests saw none); sticky cookies fix that but a dead server still takes its clients' sessions with it (${fmt(killShare('sticky') * 100, 0)} %, about 1/${SERVERS}); a shared store keeps every session whichever server answers.`,
      notes: [
        'Each figure is one run (the counts are of clients and requests); the memory figure after the kill is not meaningful, its sessions were already being lost.',
      ],
      checks,
      figures,
    };
  },
};
