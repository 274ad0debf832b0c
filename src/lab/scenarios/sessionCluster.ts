/**
 * Scenario 5 (second part): session clustering between the backends themselves (the session
 * library's ReplicatedStore, `fulcrum backend --session-store cluster`), all-to-all vs
 * primary-backup, for N nodes: sessions held per node, replication bytes per write, and sessions
 * lost when nodes die.
 */
import { type Backend, startBackend } from '../fleet.js';
import { CookieClient, request } from '../load.js';
import { freePort, sleep } from '../processes.js';
import { check, type Findings, type LabContext, type Scenario } from '../scenario.js';
import { fmt } from '../stats.js';

const MODES = ['all-to-all', 'primary-backup'] as const;
type Mode = (typeof MODES)[number];
const SECRET = 'fulcrum-lab-cluster-secret';
const WRITES = 3;

function plan(quick: boolean) {
  return { sizes: quick ? [2, 3] : [2, 3, 4, 5], sessions: quick ? 60 : 300 };
}

interface NodeStats {
  values: number;
  valueBytes: number;
  bytesSent: number;
  members: { id: string; state: string }[];
}

interface Result {
  mode: Mode;
  n: number;
  valuesPerNode: number;
  bytesPerNode: number;
  bytesPerWrite: number;
  killed: number;
  lost: number;
  settled: boolean;
}

async function stats(b: Backend): Promise<NodeStats | undefined> {
  const s = await request(b.port, { path: '/cluster', timeoutMs: 3000 });
  if (s.status !== 200) return undefined;
  return JSON.parse(s.body) as NodeStats;
}

async function allStats(nodes: Backend[]): Promise<NodeStats[]> {
  const all = await Promise.all(nodes.map(stats));
  return all.filter((s): s is NodeStats => s !== undefined);
}

/** Polls until `done(stats)` or the timeout; the last stats and whether it was reached. */
async function until(nodes: Backend[], done: (s: NodeStats[]) => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await allStats(nodes);
    if (s.length === nodes.length && done(s)) return { stats: s, ok: true };
    if (Date.now() > deadline) return { stats: s, ok: false };
    await sleep(100);
  }
}

async function runCluster(ctx: LabContext, mode: Mode, n: number, sessions: number): Promise<Result> {
  const clusterPorts = await Promise.all(Array.from({ length: n }, () => freePort()));
  const args = (i: number) => [
    '--session-store',
    'cluster',
    '--cluster-mode',
    mode,
    '--cluster-listen',
    `127.0.0.1:${clusterPorts[i]}`,
    '--cluster-secret',
    SECRET,
    ...(i === 0 ? [] : ['--peers', `127.0.0.1:${clusterPorts[0]}`]),
  ];
  const first = await startBackend(ctx.procs, `${mode}-${n}-1`, args(0));
  const rest = await Promise.all(
    Array.from({ length: n - 1 }, (_, k) => startBackend(ctx.procs, `${mode}-${n}-${k + 2}`, args(k + 1))),
  );
  const nodes = [first, ...rest];
  const upCount = (s: NodeStats) => s.members.filter((m) => m.state === 'up').length;
  await until(nodes, (all) => all.every((s) => upCount(s) >= n - 1), 15_000);
  const before = await allStats(nodes);
  const sentBefore = before.reduce((sum, s) => sum + s.bytesSent, 0);
  // Session i is created and written on node i mod N, as round robin spreads new sessions and
  // stickiness keeps them.
  const clients = Array.from({ length: sessions }, (_, i) => ({
    client: new CookieClient(nodes[i % n]!.port),
    last: 0,
  }));
  for (let i = 0; i < clients.length; i += 20) {
    await Promise.all(
      clients.slice(i, i + 20).map(async (c) => {
        for (let w = 0; w < WRITES; w++) {
          const r = await c.client.get('/session');
          if (r.status === 200) c.last = Number((JSON.parse(r.body) as { count: number }).count);
        }
      }),
    );
  }
  const expectedValues = mode === 'all-to-all' ? n * sessions : Math.min(2, n) * sessions;
  const settledRun = await until(
    nodes,
    (all) => all.reduce((sum, s) => sum + s.values, 0) >= expectedValues,
    10_000,
  );
  const after = settledRun.stats;
  const sentAfter = after.reduce((sum, s) => sum + s.bytesSent, 0);
  const valuesPerNode = after.reduce((sum, s) => sum + s.values, 0) / Math.max(1, after.length);
  const bytesPerNode = after.reduce((sum, s) => sum + s.valueBytes, 0) / Math.max(1, after.length);
  // Nodes die: one of two, else two at once (the worst case for primary-backup).
  const killed = n === 2 ? 1 : 2;
  await Promise.all(nodes.slice(0, killed).map((b) => ctx.procs.kill(b.proc)));
  const survivors = nodes.slice(killed);
  let lost = 0;
  for (let i = 0; i < clients.length; i += 20) {
    await Promise.all(
      clients.slice(i, i + 20).map(async (c, k) => {
        const node = survivors[(i + k) % survivors.length]!;
        const moved = new CookieClient(node.port);
        for (const [name, value] of c.client.cookies) moved.cookies.set(name, value);
        const r = await moved.get('/session');
        const count = r.status === 200 ? Number((JSON.parse(r.body) as { count: number }).count) : 0;
        if (count !== c.last + 1) lost++;
      }),
    );
  }
  await Promise.all(nodes.map((b) => ctx.procs.stop(b.proc)));
  return {
    mode,
    n,
    valuesPerNode,
    bytesPerNode,
    bytesPerWrite: (sentAfter - sentBefore) / (sessions * WRITES),
    killed,
    lost: lost / sessions,
    settled: settledRun.ok,
  };
}

/** The session clustering scenario. */
export const sessionCluster: Scenario = {
  name: 'session-cluster',
  number: 5,
  title: 'Session clustering: all-to-all vs primary-backup',
  claim:
    'All-to-all replication keeps every session on every node: memory per node and bytes per write grow with N, and any node can die. Primary-backup keeps two copies of each session: memory per node falls as 2/N and a write sends one copy (and only the session id to the other nodes), but a session is lost when its primary and its backup die together.',
  setup: (quick) => {
    const p = plan(quick);
    return `For N = ${p.sizes.join(', ')} and each mode: N sample backends with --session-store cluster --cluster-mode MODE (node 1 the seed, the others join it), asked directly. ${p.sessions} sessions, session i created and written ${WRITES} times on node i mod N (GET /session). Once replication has settled, /cluster gives each node's session values and bytes and the bytes sent between nodes (heartbeats included). Then nodes die (SIGKILL): one of two, or two at once when N ≥ 3, and each session is read on a surviving node: lost when its count starts again. One run per point; the clusters of one mode run at the same time.`;
  },
  async run(ctx: LabContext): Promise<Findings> {
    const p = plan(ctx.quick);
    const results: Result[] = [];
    // The clusters of one mode run side by side (their own processes and ports): starting node
    // processes one cluster after the other would take most of the run.
    for (const mode of MODES) {
      ctx.progress(`${mode}: clusters of ${p.sizes.join(', ')} nodes`);
      results.push(...(await Promise.all(p.sizes.map((n) => runCluster(ctx, mode, n, p.sessions)))));
    }
    const get = (mode: Mode, n: number) => results.find((r) => r.mode === mode && r.n === n)!;
    const big = p.sizes[p.sizes.length - 1]!;
    const figures: Record<string, number> = {};
    for (const r of results) {
      figures[`${r.mode}.${r.n}.valuesPerNode`] = r.valuesPerNode;
      figures[`${r.mode}.${r.n}.bytesPerWrite`] = r.bytesPerWrite;
      figures[`${r.mode}.${r.n}.lost`] = r.lost;
    }
    const threePlus = p.sizes.filter((n) => n >= 3);
    const checks = [
      check(
        'all-to-all: every node holds every session',
        p.sizes.every((n) => get('all-to-all', n).valuesPerNode >= p.sessions * 0.98),
        p.sizes
          .map((n) => `N=${n}: ${fmt(get('all-to-all', n).valuesPerNode, 0)} of ${p.sessions}`)
          .join('; '),
      ),
      check(
        'primary-backup: memory per node falls with N (about 2/N of the sessions)',
        threePlus.every(
          (n) => get('primary-backup', n).valuesPerNode < get('all-to-all', n).valuesPerNode * 0.85,
        ),
        p.sizes
          .map(
            (n) =>
              `N=${n}: ${fmt(get('primary-backup', n).valuesPerNode, 0)} (2/N: ${fmt((2 * p.sessions) / n, 0)})`,
          )
          .join('; '),
      ),
      check(
        `all-to-all sends more bytes per write than primary-backup at N = ${big}`,
        get('all-to-all', big).bytesPerWrite > get('primary-backup', big).bytesPerWrite,
        `${fmt(get('all-to-all', big).bytesPerWrite, 0)} vs ${fmt(get('primary-backup', big).bytesPerWrite, 0)} bytes`,
      ),
      check(
        'all-to-all loses no session when nodes die',
        p.sizes.every((n) => get('all-to-all', n).lost === 0),
        p.sizes
          .map(
            (n) => `N=${n}, ${get('all-to-all', n).killed} killed: ${fmt(get('all-to-all', n).lost * 100)} %`,
          )
          .join('; '),
      ),
      check(
        'primary-backup survives one node dying',
        get('primary-backup', 2).lost === 0,
        `N=2, 1 killed: ${fmt(get('primary-backup', 2).lost * 100)} % lost`,
      ),
      check(
        'primary-backup loses the sessions whose two copies die together',
        threePlus.every((n) => get('primary-backup', n).lost > 0),
        threePlus
          .map(
            (n) =>
              `N=${n}, 2 killed: ${fmt(get('primary-backup', n).lost * 100)} % (expected about 1/C(N,2) = ${fmt(200 / (n * (n - 1)))} %)`,
          )
          .join('; '),
      ),
    ];
    const notes = results
      .filter((r) => !r.settled)
      .map((r) => `${r.mode}, N=${r.n}: replication had not settled within 10 s when measured.`);
    return {
      tables: [
        {
          caption: `${p.sessions} sessions, ${WRITES} writes each`,
          columns: [
            'mode',
            'N',
            'session values per node',
            'value bytes per node',
            'bytes sent per write',
            'nodes killed',
            'sessions lost (%)',
          ],
          rows: results.map((r) => [
            r.mode,
            String(r.n),
            fmt(r.valuesPerNode, 0),
            fmt(r.bytesPerNode, 0),
            fmt(r.bytesPerWrite, 0),
            String(r.killed),
            fmt(r.lost * 100),
          ]),
        },
      ],
      charts: [
        {
          kind: 'line',
          title: 'Sessions held per node',
          xLabel: 'nodes (N)',
          yLabel: 'session values per node',
          series: MODES.map((m) => ({
            name: m,
            points: p.sizes.map((n) => [n, get(m, n).valuesPerNode] as [number, number]),
          })),
        },
        {
          kind: 'line',
          title: 'Replication bytes per session write',
          xLabel: 'nodes (N)',
          yLabel: 'bytes sent between nodes per write',
          series: MODES.map((m) => ({
            name: m,
            points: p.sizes.map((n) => [n, get(m, n).bytesPerWrite] as [number, number]),
          })),
        },
        {
          kind: 'bar',
          title: 'Sessions lost when nodes die (1 of 2, else 2 at once)',
          yLabel: 'sessions lost (%)',
          categories: p.sizes.map((n) => `N = ${n}`),
          series: MODES.map((m) => ({ name: m, values: p.sizes.map((n) => get(m, n).lost * 100) })),
        },
      ],
      meaning: `All-to-all buys safety with memory and traffic (every node held all ${p.sessions} sessions and each write went to N-1 peers); primary-backup scales (about ${fmt(get('primary-backup', big).valuesPerNode, 0)} sessions per node at N = ${big}) but lost ${fmt(get('primary-backup', threePlus[0] ?? big).lost * 100, 0)} % of the sessions at N = ${threePlus[0] ?? big} when two nodes died together.`,
      checks,
      figures,
      ...(notes.length > 0 ? { notes } : {}),
    };
  },
};
