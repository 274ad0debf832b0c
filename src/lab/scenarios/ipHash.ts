/**
 * Scenario 3: when one of N servers leaves, consistent hashing (Fulcrum's ip-hash ring) moves only
 * that server's clients, about 1/N of them; hashing modulo N moves most clients. Computed on
 * Fulcrum's own IpHash policy for many synthetic addresses, then measured through a running
 * balancer with distinct loopback sources.
 */
import { hash32 } from '../../balancing/hash.js';
import { IpHash } from '../../balancing/ipHash.js';
import { Server } from '../../core/server.js';
import { type Backend, startBackend, startBalancer, waitForServerState } from '../fleet.js';
import { request } from '../load.js';
import { check, type Findings, type LabContext, type Scenario } from '../scenario.js';
import { fmt, fmtSpread, spread } from '../stats.js';

const SIZES = [2, 3, 4, 5, 6, 8, 10];
const MEASURED_SERVERS = 3;

function servers(n: number): Server[] {
  return Array.from({ length: n }, (_, i) => {
    const port = 3001 + i;
    return new Server({
      id: `s${i + 1}`,
      host: '10.0.0.1',
      port,
      address: `10.0.0.1:${port}`,
      weight: 1,
      backup: false,
    });
  });
}

function clientIps(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
}

/** Fraction of clients that change server when server `leaving` of `n` leaves: [ring, modulo, ring-moved-from-stayers]. */
function moved(n: number, leaving: number, ips: readonly string[]): [number, number, number] {
  const all = servers(n);
  const rest = all.filter((_, i) => i !== leaving);
  const before = new IpHash();
  before.rebuild(all);
  const after = new IpHash();
  after.rebuild(rest);
  let ring = 0;
  let modulo = 0;
  let strays = 0;
  for (const ip of ips) {
    const a = before.pick(all, { clientIp: ip });
    const b = after.pick(rest, { clientIp: ip });
    if (a !== b) {
      ring++;
      if (a !== all[leaving]) strays++;
    }
    const h = hash32(ip);
    if (all[h % n] !== rest[h % (n - 1)]) modulo++;
  }
  return [ring / ips.length, modulo / ips.length, strays];
}

/** The ip-hash scenario. */
export const ipHash: Scenario = {
  name: 'ip-hash',
  number: 3,
  title: 'IP hash: consistent hashing vs modulo when a server leaves',
  claim:
    "With hashing modulo N, removing one of N servers sends most clients to a different server (their sessions and caches are lost); with consistent hashing only the leaving server's clients move, about 1/N.",
  setup: (quick) =>
    `Computed: ${quick ? '20 000' : '100 000'} client addresses through Fulcrum's own ip-hash policy (src/balancing/ipHash.ts, a ring with 160 points per server) and through hash modulo N on the same hash, for N = ${SIZES.join(', ')}, each server leaving in turn (the spread is over which one leaves). Measured: a balancer with an ip-hash pool of ${MEASURED_SERVERS} sample backends and health checks every 200 ms; ${quick ? 40 : 120} clients, each its own loopback source address 127.0.0.x, ask GET /whoami; one backend is killed (SIGKILL); once the balancer has marked it down, the same clients ask again.`,
  async run(ctx: LabContext): Promise<Findings> {
    const ips = clientIps(ctx.quick ? 20_000 : 100_000);
    const ring = new Map<number, number[]>();
    const modulo = new Map<number, number[]>();
    let strays = 0;
    ctx.progress(`computing moves for N = ${SIZES.join(', ')}`);
    for (const n of SIZES) {
      ring.set(n, []);
      modulo.set(n, []);
      for (let leaving = 0; leaving < n; leaving++) {
        const [r, m, s] = moved(n, leaving, ips);
        ring.get(n)!.push(r);
        modulo.get(n)!.push(m);
        strays += s;
      }
    }

    ctx.progress(`measuring through a balancer: ${MEASURED_SERVERS} backends, ip-hash`);
    const backends: Backend[] = await Promise.all(
      Array.from({ length: MEASURED_SERVERS }, (_, i) => startBackend(ctx.procs, `srv-${i + 1}`)),
    );
    const lb = await startBalancer(ctx.procs, ctx.workDir, 'ip-hash', { web: 'web' }, [
      {
        name: 'web',
        algorithm: 'ip-hash',
        servers: backends.map((b) => ({ address: `127.0.0.1:${b.port}`, name: b.id })),
        healthCheck: {
          type: 'http',
          path: '/health',
          interval: '200ms',
          timeout: '1500ms',
          fall: 1,
          rise: 1,
        },
      },
    ]);
    const clients = Array.from(
      { length: ctx.quick ? 40 : 120 },
      (_, i) => `127.0.${1 + Math.floor(i / 250)}.${2 + (i % 250)}`,
    );
    const ask = async () => {
      const seen = new Map<string, string>();
      for (let i = 0; i < clients.length; i += 10) {
        const batch = clients.slice(i, i + 10);
        const answers = await Promise.all(
          batch.map((ip) => request(lb.ports.web!, { path: '/whoami', localAddress: ip })),
        );
        for (const [k, ip] of batch.entries()) seen.set(ip, answers[k]!.servedBy);
      }
      return seen;
    };
    const before = await ask();
    const victim = backends[MEASURED_SERVERS - 1]!;
    await ctx.procs.kill(victim.proc);
    const downMs = await waitForServerState(lb, 'web', victim.id, 'down');
    // On a loaded machine a live server can miss a check: ask again only once the others are up.
    await Promise.all(backends.slice(0, -1).map((b) => waitForServerState(lb, 'web', b.id, 'up')));
    const after = await ask();
    let movedMeasured = 0;
    let movedFromStayers = 0;
    let onVictim = 0;
    for (const ip of clients) {
      const a = before.get(ip);
      if (a === victim.id) onVictim++;
      if (a !== after.get(ip)) {
        movedMeasured++;
        if (a !== victim.id) movedFromStayers++;
      }
    }
    const failedAfter = [...after.values()].filter((v) => v === '').length;
    const measuredFraction = movedMeasured / clients.length;

    const figures: Record<string, number> = {
      'measured.moved': measuredFraction,
      'measured.movedFromStayers': movedFromStayers,
      'computed.strays': strays,
    };
    for (const n of SIZES) {
      figures[`ring.moved.${n}`] = spread(ring.get(n)!).median;
      figures[`modulo.moved.${n}`] = spread(modulo.get(n)!).median;
    }
    const ringNear = SIZES.every((n) => {
      const m = spread(ring.get(n)!).median;
      return m > 0.5 / n && m < 1.6 / n;
    });
    const moduloWorse = SIZES.filter((n) => n >= 3).every(
      (n) => spread(modulo.get(n)!).median > 1.8 * spread(ring.get(n)!).median,
    );
    const checks = [
      check(
        'consistent hashing moves about 1/N of the clients',
        ringNear,
        SIZES.map(
          (n) => `N=${n}: ${fmt(spread(ring.get(n)!).median * 100)} % (1/N = ${fmt(100 / n)} %)`,
        ).join('; '),
      ),
      check(
        'modulo moves far more (at least 1.8× as many for N ≥ 3)',
        moduloWorse,
        SIZES.map((n) => `N=${n}: ${fmt(spread(modulo.get(n)!).median * 100)} %`).join('; '),
      ),
      check(
        "with the ring, only the leaving server's clients move",
        strays === 0,
        `${strays} clients of staying servers moved`,
      ),
      check(
        'through the balancer: the killed server was marked down',
        Number.isFinite(downMs),
        Number.isFinite(downMs) ? `down after ${fmt(downMs, 0)} ms` : 'never marked down within 15 s',
      ),
      check(
        "through the balancer: only the killed server's clients moved",
        movedFromStayers === 0 && movedMeasured === onVictim && failedAfter === 0,
        `${movedMeasured} of ${clients.length} clients moved, ${onVictim} were on ${victim.id}, ${movedFromStayers} others moved, ${failedAfter} failed`,
      ),
    ];
    return {
      tables: [
        {
          caption:
            'Clients that change server when one of N leaves (%), median (min–max) over which server leaves',
          columns: ['N', 'consistent (ip-hash ring)', 'modulo N', 'ideal 1/N'],
          rows: SIZES.map((n) => [
            String(n),
            fmtSpread(spread(ring.get(n)!.map((v) => v * 100))),
            fmtSpread(spread(modulo.get(n)!.map((v) => v * 100))),
            fmt(100 / n),
          ]),
        },
        {
          caption: `Measured through the balancer (${MEASURED_SERVERS} servers, ${clients.length} loopback clients)`,
          columns: [
            'clients',
            `on ${victim.id} before`,
            'moved',
            'moved from staying servers',
            'time to mark down (ms)',
          ],
          rows: [
            [
              String(clients.length),
              String(onVictim),
              String(movedMeasured),
              String(movedFromStayers),
              fmt(downMs, 0),
            ],
          ],
        },
      ],
      charts: [
        {
          kind: 'line',
          title: 'Clients that move when one of N servers leaves',
          xLabel: 'servers before one leaves (N)',
          yLabel: 'clients that move (%)',
          series: [
            { name: 'modulo N', points: SIZES.map((n) => [n, spread(modulo.get(n)!).median * 100]) },
            {
              name: 'consistent (ip-hash)',
              points: SIZES.map((n) => [n, spread(ring.get(n)!).median * 100]),
            },
            { name: 'ideal 1/N', points: SIZES.map((n) => [n, 100 / n]), dashed: true },
          ],
        },
      ],
      meaning: `Losing one of ${SIZES.at(-1)} servers remaps ${fmt(spread(modulo.get(SIZES.at(-1)!)!).median * 100, 0)} % of clients with modulo hashing but only ${fmt(spread(ring.get(SIZES.at(-1)!)!).median * 100, 0)} % with Fulcrum's ring, and the balancer confirmed it: only the dead server's clients moved (${fmt(measuredFraction * 100, 0)} % of them here).`,
      checks,
      figures,
    };
  },
};
