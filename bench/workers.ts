/**
 * Fulcrum with `workers: 1` (one process) and `workers: 2` (a supervisor and two workers) under
 * node:cluster's two scheduling policies: round robin in the primary (SCHED_RR, Node's default on
 * Linux) and the kernel's accept in each worker (SCHED_NONE), measured with wrk.
 *
 * Per case: keep-alive requests (wrk -c 50), then a new connection per request (`Connection:
 * close`, what the scheduling costs per connection); req/s, CPU µs per request of the balancer's
 * process tree (supervisor and workers, from /proc), and how the requests spread over the
 * workers (their rows in GET /api/status). A last phase measures least-connections with one slow
 * and one fast backend, where each worker sees only its own in-flight counts.
 *
 * Everything shares this machine's cores: wrk, the two backends and the balancer. See
 * docs/workers.md and docs/benchmarks.md for figures and how to read them.
 *
 * Usage: node dist/bench/workers.js [--duration 5] [--connections 50]
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  BACKEND_JS,
  FULCRUM_CLI,
  findBinary,
  freePort,
  HOST,
  log,
  type Proc,
  runHarness,
  sleep,
  startProc,
  stopProc,
  waitForPort,
} from './processes.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '2' },
  },
});
const ROUNDS = Number(values.rounds);
const DURATION = Number(values.duration);
const CONNECTIONS = Number(values.connections);

let tmp: string | undefined;

interface Case {
  name: string;
  workers: number;
  policy?: 'rr' | 'none';
}

const CASES: Case[] = [
  { name: '1 process', workers: 1 },
  { name: '2 workers, SCHED_RR', workers: 2, policy: 'rr' },
  { name: '2 workers, SCHED_NONE', workers: 2, policy: 'none' },
];

interface Run {
  rps: number;
  requests: number;
  errors: number;
  cpuUsPerRequest: number;
  perWorker: number[];
}

/** CPU ticks (user + system) of a process and its descendants. */
function treeTicks(pid: number): number {
  const ticks = (p: number) => {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(f[11]) + Number(f[12]);
    } catch {
      return 0;
    }
  };
  let sum = ticks(pid);
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) sum += ticks(Number(e));
    } catch {}
  }
  return sum;
}

function wrk(
  url: string,
  seconds: number,
  connections: number,
  close: boolean,
): Promise<{ rps: number; requests: number; errors: number }> {
  const args = [
    '-t',
    '1',
    '-c',
    String(connections),
    '-d',
    `${seconds}s`,
    ...(close ? ['-H', 'Connection: close'] : []),
    url,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(findBinary('wrk')!, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.on('error', reject);
    child.on('exit', () => {
      const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
      const total = /^\s*(\d+) requests in/m.exec(out);
      const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
      if (!rps || !total) {
        reject(new Error(`could not parse wrk output:\n${out}`));
        return;
      }
      const errors =
        (sock ? sock.slice(1).reduce((n, x) => n + Number(x), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0);
      resolve({ rps: Number(rps[1]), requests: Number(total[1]), errors });
    });
  });
}

function getJson(port: number, p: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: HOST, port, path: p }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve(JSON.parse(body) as Record<string, unknown>));
      })
      .on('error', reject);
  });
}

type WorkerRows = { requests: number; state: string }[];

async function workerRequests(admin: number): Promise<number[]> {
  const s = await getJson(admin, '/api/status');
  return ((s.workers as WorkerRows | undefined) ?? []).map((w) => w.requests);
}

async function servingWorkers(admin: number, n: number, proc: Proc): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== undefined) throw new Error(`${proc.name} exited`);
    const s = await getJson(admin, '/api/status').catch(() => undefined);
    const rows = (s?.workers as WorkerRows | undefined) ?? [];
    if (n === 1 ? s !== undefined : rows.length === n && rows.every((w) => w.state === 'serving')) return;
    await sleep(100);
  }
  throw new Error('workers did not start serving');
}

async function measure(
  c: Case,
  backends: number[],
  algorithm = 'round-robin',
): Promise<{ keepAlive: Run; close: Run }> {
  const [web, admin] = [await freePort(), await freePort()];
  const file = path.join(tmp!, `fulcrum-${c.workers}-${c.policy ?? 'x'}-${algorithm}.yaml`);
  fs.writeFileSync(
    file,
    `workers: ${c.workers}
admin: { listen: "${HOST}:${admin}" }
listeners: [{ name: web, protocol: http, listen: "${HOST}:${web}", pool: web }]
pools:
  - name: web
    algorithm: ${algorithm}
    servers:
${backends.map((p, i) => `      - { address: "${HOST}:${p}", name: s${i} }`).join('\n')}
`,
  );
  const env = { ...process.env, ...(c.policy ? { NODE_CLUSTER_SCHED_POLICY: c.policy } : {}) };
  const proc = startProc(
    `fulcrum (${c.name})`,
    process.execPath,
    [FULCRUM_CLI, 'start', '-c', file],
    path.join(tmp!, 'fulcrum.log'),
    {
      env,
    },
  );
  try {
    await waitForPort(web, proc, 60_000);
    await servingWorkers(admin, c.workers, proc);
    const url = `http://${HOST}:${web}/`;
    await wrk(url, 2, CONNECTIONS, false); // warm-up
    const run = async (close: boolean): Promise<Run> => {
      const before = await workerRequests(admin);
      const t0 = treeTicks(proc.pid);
      const r = await wrk(url, DURATION, close ? 20 : CONNECTIONS, close);
      const ticks = treeTicks(proc.pid) - t0;
      const after = await workerRequests(admin);
      const hz = 100; // USER_HZ on Linux
      return {
        ...r,
        cpuUsPerRequest: r.requests > 0 ? Math.round(((ticks / hz) * 1e6) / r.requests) : 0,
        perWorker: after.map((n, i) => n - (before[i] ?? 0)),
      };
    };
    return { keepAlive: await run(false), close: await run(true) };
  } finally {
    await stopProc(proc);
  }
}

/** An in-process backend answering after `delayMs`, counting its requests. */
async function delayedBackend(
  delayMs: number,
): Promise<{ port: number; count: () => number; close: () => void }> {
  let n = 0;
  const server = http.createServer((req, res) => {
    n++;
    req.resume();
    setTimeout(() => res.end('ok'), delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  return {
    port: (server.address() as { port: number }).port,
    count: () => n,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** Share of requests that went to the fast server under least-connections (one slow, one fast). */
async function leastConnectionsShare(c: Case): Promise<number> {
  const fast = await delayedBackend(2);
  const slow = await delayedBackend(20);
  try {
    await measure(c, [fast.port, slow.port], 'least-connections');
    return fast.count() / (fast.count() + slow.count());
  } finally {
    fast.close();
    slow.close();
  }
}

async function main(): Promise<number> {
  if (findBinary('wrk') === undefined) {
    log('wrk not found (apt-get install wrk)');
    return 2;
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-workers-'));
  const ports = [await freePort(), await freePort()];
  const backends = ports.map((port, i) =>
    startProc(
      `backend ${i}`,
      process.execPath,
      [BACKEND_JS, '--port', String(port), '--id', `b${i}`],
      path.join(tmp!, `b${i}.log`),
    ),
  );
  await Promise.all(backends.map((b, i) => waitForPort(ports[i]!, b)));
  log(
    `${os.cpus().length} CPUs, load average ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}; wrk, backends and balancer share them`,
  );
  const rows: string[] = [];
  // Rounds interleave the cases, so that a change in the machine's load hits them all.
  for (let round = 1; round <= ROUNDS; round++) {
    for (const c of CASES) {
      log(`round ${round}: ${c.name}`);
      const { keepAlive, close } = await measure(c, ports);
      const spread = (r: Run) => (r.perWorker.length > 1 ? r.perWorker.join(' / ') : '-');
      rows.push(
        `| ${round} | ${c.name} | ${Math.round(keepAlive.rps)} | ${keepAlive.cpuUsPerRequest} | ${spread(keepAlive)} | ${Math.round(close.rps)} | ${close.cpuUsPerRequest} | ${spread(close)} | ${keepAlive.errors + close.errors} |`,
      );
    }
  }
  // Least connections, one fast (2 ms) and one slow (20 ms) server, in this process.
  const shares: string[] = [];
  for (const c of [CASES[0]!, CASES[1]!]) {
    log(`least-connections: ${c.name}`);
    const share = await leastConnectionsShare(c);
    shares.push(`${c.name}: ${(share * 100).toFixed(1)}% to the fast server`);
  }
  for (const b of backends) await stopProc(b);
  process.stdout.write(
    [
      `wrk -t1, keep-alive -c ${CONNECTIONS}, close -c 20, ${DURATION} s each; load average after: ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}`,
      '',
      '| round | case | keep-alive req/s | CPU µs/req | requests per worker | new connection per request: req/s | CPU µs/req | requests per worker | errors |',
      '|---|---|---|---|---|---|---|---|---|',
      ...rows,
      '',
      `least-connections, one fast (2 ms) and one slow (20 ms) server: ${shares.join('; ')}`,
      '',
    ].join('\n'),
  );
  return 0;
}

runHarness(main, { tmp: () => tmp });
