/**
 * Scenario 7: the sticky hot spot. Stickiness pins each client to the server it first reached, so
 * when a few clients are heavy, their servers carry most of the load while the others idle; round
 * robin without stickiness spreads the same requests evenly.
 */
import { startBackend, startBalancer } from '../fleet.js';
import { CookieClient, keepAliveAgent } from '../load.js';
import { check, type Findings, type LabContext, type Scenario } from '../scenario.js';
import { fmt } from '../stats.js';

const SERVERS = ['hs-a', 'hs-b', 'hs-c'];
const LIGHT = 29;

function plan(quick: boolean) {
  return { heavyRequests: quick ? 150 : 600, lightRequests: quick ? 5 : 20 };
}

/** Requests per server when 2 heavy clients and LIGHT light ones use `port`; heavy ones arrive 1st and 4th. */
async function run(port: number, heavyRequests: number, lightRequests: number): Promise<number[]> {
  const agent = keepAliveAgent(16);
  const clients = Array.from({ length: LIGHT + 2 }, () => new CookieClient(port, agent));
  const heavy = new Set([clients[0]!, clients[3]!]);
  const counts = new Map<string, number>();
  const count = (servedBy: string) => counts.set(servedBy, (counts.get(servedBy) ?? 0) + 1);
  // First requests one at a time: round robin (and so the sticky pins) follow the arrival order.
  for (const c of clients) count((await c.get('/whoami')).servedBy);
  await Promise.all(
    clients.map(async (c) => {
      const n = (heavy.has(c) ? heavyRequests : lightRequests) - 1;
      for (let i = 0; i < n; i++) count((await c.get('/whoami')).servedBy);
    }),
  );
  agent.destroy();
  return SERVERS.map((s) => counts.get(s) ?? 0);
}

/** The sticky hot spot scenario. */
export const hotSpot: Scenario = {
  name: 'hot-spot',
  number: 7,
  title: 'Sticky hot spot: a few heavy clients',
  claim:
    'Sticky sessions pin each client to one server: when a few clients send most of the requests, the servers they happen to be pinned to get hot while the others idle. Without stickiness the same requests spread evenly.',
  setup: (quick) => {
    const p = plan(quick);
    return `Three sample backends behind one balancer with two round-robin pools of the same servers: one with sticky: {type: cookie}, one without. ${LIGHT + 2} clients with cookie jars arrive one at a time (so round robin pins them in turn): two heavy ones, 1st and 4th (both pinned to the first server), send ${p.heavyRequests} requests each; ${LIGHT} light ones send ${p.lightRequests} each. The same clients run against each pool; requests are counted by x-served-by.`;
  },
  async run(ctx: LabContext): Promise<Findings> {
    const p = plan(ctx.quick);
    ctx.progress('starting 3 backends and the balancer');
    const backends = await Promise.all(SERVERS.map((id) => startBackend(ctx.procs, id)));
    const servers = backends.map((b) => ({ address: `127.0.0.1:${b.port}`, name: b.id }));
    const lb = await startBalancer(ctx.procs, ctx.workDir, 'hot-spot', { sticky: 'sticky', plain: 'plain' }, [
      { name: 'sticky', algorithm: 'round-robin', servers, sticky: { type: 'cookie' } },
      { name: 'plain', algorithm: 'round-robin', servers },
    ]);
    ctx.progress('sticky pool');
    const sticky = await run(lb.ports.sticky!, p.heavyRequests, p.lightRequests);
    ctx.progress('round robin without stickiness');
    const plain = await run(lb.ports.plain!, p.heavyRequests, p.lightRequests);
    const share = (counts: number[]) => {
      const total = counts.reduce((a, b) => a + b, 0);
      return counts.map((c) => (total === 0 ? 0 : c / total));
    };
    const s = share(sticky);
    const r = share(plain);
    const checks = [
      check(
        "with stickiness the heavy clients' server carries most of the load",
        Math.max(...s) > 0.5,
        `busiest server ${fmt(Math.max(...s) * 100)} % (even: 33.3 %)`,
      ),
      check(
        'without stickiness the load is even',
        Math.max(...r) < 0.4 && Math.min(...r) > 0.27,
        `shares ${r.map((x) => `${fmt(x * 100)} %`).join(', ')}`,
      ),
    ];
    return {
      tables: [
        {
          caption: 'Requests per server',
          columns: ['pool', ...SERVERS, 'busiest / quietest'],
          rows: [
            [
              'sticky cookie',
              ...sticky.map(String),
              fmt(Math.max(...sticky) / Math.max(1, Math.min(...sticky))),
            ],
            [
              'round robin, no stickiness',
              ...plain.map(String),
              fmt(Math.max(...plain) / Math.max(1, Math.min(...plain))),
            ],
          ],
        },
      ],
      charts: [
        {
          kind: 'bar',
          title: 'Share of requests per server',
          yLabel: 'share of requests (%)',
          categories: SERVERS,
          series: [
            { name: 'sticky cookie', values: s.map((x) => x * 100) },
            { name: 'round robin, no stickiness', values: r.map((x) => x * 100) },
          ],
        },
      ],
      meaning: `Two heavy clients pinned to one server gave it ${fmt(Math.max(...s) * 100, 0)} % of the requests with stickiness, against ${fmt(Math.max(...r) * 100, 0)} % for the busiest server without: stickiness balances clients, not load.`,
      checks,
      figures: { 'sticky.maxShare': Math.max(...s), 'plain.maxShare': Math.max(...r) },
      notes: ['One run: the counts are of requests, the pins follow the arrival order.'],
    };
  },
};
