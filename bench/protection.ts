/**
 * What protection costs, measured in one run on this machine (see docs/benchmarks.md):
 *
 * (a) CPU per request: three `fulcrum start` processes in front of the same backend (bench/backend.ts),
 *     protection off, on with local counters (rateLimit + limits + detect + surge, never refusing),
 *     and on with Redis-shared counters (a redis-server of its own). wrk (keep-alive) loads each in
 *     turn, in interleaved rounds; CPU is the balancer's user+system time from /proc over the
 *     requests wrk counted. Printed as µs per request and as a ratio to "off".
 * (b) Slowloris: a balancer with `timeouts.header`; N connections each send one byte of a request
 *     head per second. Reported: when they were closed (vs the timeout), the p99 of ordinary
 *     requests before and during the attack (with their errors), and the balancer's RSS before and
 *     at its peak. Then slow POST: a quarter as many connections send a head and one body byte
 *     per second, cut by `bodyMinRate: 1KiB/s` (408, or a close when the backend answered first).
 *
 * Usage: node dist/bench/protection.js [--duration 5] [--rounds 2] [--connections 32]
 *        [--slowloris 2000] [--header-timeout 10] [--skip-cpu] [--json]
 * Every process started is stopped by its PID (also on failure or Ctrl-C).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
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

const TICK_US = 10_000;

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
    connections: { type: 'string', default: '32' },
    slowloris: { type: 'string', default: '2000' },
    'header-timeout': { type: 'string', default: '10' },
    json: { type: 'boolean', default: false },
    'skip-cpu': { type: 'boolean', default: false },
  },
});
const opts = {
  duration: Number(values.duration),
  rounds: Number(values.rounds),
  connections: Number(values.connections),
  slowloris: Number(values.slowloris),
  headerTimeout: Number(values['header-timeout']),
};

let tmp: string | undefined;

/** user + system CPU of a process, in clock ticks. */
function cpuTicks(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** Resident set size of a process, in MiB. */
function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? 0 : Number(m[1]) / 1024;
  } catch {
    return 0;
  }
}

/** Runs wrk against `port`: the requests it completed and its non-2xx/socket errors. */
function wrk(port: number, seconds: number): { requests: number; errors: number } {
  const r = spawnSync(
    'wrk',
    ['-t1', `-c${opts.connections}`, `-d${seconds}s`, '--latency', `http://${HOST}:${port}/`],
    { encoding: 'utf8', timeout: (seconds + 30) * 1000 },
  );
  const out = r.stdout ?? '';
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sock === null ? 0 : sock.slice(1).reduce((a, b) => a + Number(b), 0));
  return { requests, errors };
}

async function startBalancer(name: string, yaml: string): Promise<{ proc: Proc; port: number }> {
  const port = await freePort();
  const file = path.join(tmp!, `${name}.yaml`);
  fs.writeFileSync(file, yaml.replace('LISTEN_PORT', String(port)));
  const proc = startProc(
    name,
    process.execPath,
    [FULCRUM_CLI, 'start', '-c', file],
    path.join(tmp!, `${name}.log`),
  );
  await waitForPort(port, proc);
  return { proc, port };
}

function yamlFor(backendPort: number, protection: string): string {
  return `
listeners:
  - name: web
    protocol: http
    listen: "${HOST}:LISTEN_PORT"
    pool: p
${protection}
pools:
  - name: p
    servers: [ { address: "${HOST}:${backendPort}" } ]
`;
}

async function cpuCost(backendPort: number, redisUrl: string | null) {
  const never = 'rateLimit: { requests: 100000000, per: 1s }';
  const configs: Array<[string, string]> = [
    ['off', ''],
    [
      'local',
      `    protection:
      ${never}
      limits: { maxBodySize: 10MiB, maxUrlLength: 8KiB, maxHeaders: 100 }
      detect: { blockFor: 1m }
      surge: { floor: 100000000 }`,
    ],
  ];
  if (redisUrl !== null)
    configs.push([
      'shared',
      `    protection:
      ${never}
      shared: "${redisUrl}"`,
    ]);
  const lbs = new Map<string, { proc: Proc; port: number }>();
  for (const [name, protection] of configs)
    lbs.set(name, await startBalancer(`lb-${name}`, yamlFor(backendPort, protection)));
  const totals = new Map<string, { requests: number; ticks: number; errors: number }>();
  try {
    for (const [, lb] of lbs) wrk(lb.port, 1); // warm-up
    for (let round = 0; round < opts.rounds; round++) {
      for (const [name, lb] of lbs) {
        const before = cpuTicks(lb.proc.pid);
        const w = wrk(lb.port, opts.duration);
        const ticks = cpuTicks(lb.proc.pid) - before;
        const t = totals.get(name) ?? { requests: 0, ticks: 0, errors: 0 };
        t.requests += w.requests;
        t.ticks += ticks;
        t.errors += w.errors;
        totals.set(name, t);
        log(
          `round ${round + 1} ${name}: ${w.requests} requests, ${((ticks * TICK_US) / Math.max(1, w.requests)).toFixed(1)} µs CPU each, ${w.errors} errors`,
        );
      }
    }
  } finally {
    for (const [, lb] of lbs) await stopProc(lb.proc);
  }
  const us = (name: string) => {
    const t = totals.get(name)!;
    return (t.ticks * TICK_US) / Math.max(1, t.requests);
  };
  const off = us('off');
  return [...totals.entries()].map(([name, t]) => ({
    config: name,
    requests: t.requests,
    errors: t.errors,
    cpuUsPerRequest: Math.round(us(name) * 10) / 10,
    ratioToOff: Math.round((us(name) / off) * 1000) / 1000,
  }));
}

/** Ordinary requests, one at a time, for `ms`: their p99 (ms) and errors. */
async function ordinary(
  port: number,
  ms: number,
): Promise<{ requests: number; errors: number; p99: number }> {
  const lat: number[] = [];
  let errors = 0;
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const t = performance.now();
    const ok = await new Promise<boolean>((resolve) => {
      const req = http.get({ host: HOST, port, path: '/', agent: false, timeout: 5000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
    });
    if (ok) lat.push(performance.now() - t);
    else errors++;
    await sleep(20);
  }
  lat.sort((a, b) => a - b);
  return {
    requests: lat.length + errors,
    errors,
    p99: Math.round((lat[Math.floor(lat.length * 0.99)] ?? 0) * 10) / 10,
  };
}

/**
 * Slow POST: `n` connections send a whole head announcing a 100 kB body, then one body byte per
 * second; `bodyMinRate: 1KiB/s` must cut them (408) after its first second of slack.
 */
async function slowPosts(port: number, n: number) {
  const closed: number[] = [];
  const statuses = new Map<string, number>();
  let ticking = true;
  const sockets: net.Socket[] = [];
  const head = 'POST /upload HTTP/1.1\r\nHost: slow.example\r\nContent-Length: 100000\r\n\r\n';
  let ticker: NodeJS.Timeout | undefined;
  try {
    await Promise.all(
      Array.from(
        { length: n },
        (_, i) =>
          new Promise<void>((resolve) => {
            const s = net.connect({ host: HOST, port, localAddress: `127.0.2.${1 + (i % 50)}` });
            let started = Date.now();
            s.on('error', () => resolve());
            s.on('connect', () => {
              started = Date.now();
              s.write(`${head}x`);
              resolve();
            });
            s.once('data', (c: Buffer) => {
              const status = c.toString('latin1').slice(9, 12);
              statuses.set(status, (statuses.get(status) ?? 0) + 1);
            });
            // Cut: closed by the balancer (the backend may have answered before the body ended).
            s.on('close', () => {
              if (ticking) closed.push((Date.now() - started) / 1000);
            });
            sockets.push(s);
          }),
      ),
    );
    ticker = setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write('x');
    }, 1000);
    const deadline = Date.now() + 15_000;
    while (closed.length < n && Date.now() < deadline) await sleep(200);
  } finally {
    ticking = false;
    if (ticker !== undefined) clearInterval(ticker);
    for (const s of sockets) s.destroy();
  }
  closed.sort((a, b) => a - b);
  return {
    connections: n,
    firstStatus: Object.fromEntries(statuses),
    cutByBalancer: closed.length,
    cutAfterS: {
      min: Math.round((closed[0] ?? 0) * 10) / 10,
      median: Math.round((closed[Math.floor(closed.length / 2)] ?? 0) * 10) / 10,
      max: Math.round((closed[closed.length - 1] ?? 0) * 10) / 10,
    },
  };
}

async function slowloris(backendPort: number) {
  // /upload goes to a server that answers once the whole body is in (as an upload handler does).
  const uploads = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end('stored'));
  });
  uploads.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((r) => uploads.listen(0, HOST, r));
  const uploadPort = (uploads.address() as net.AddressInfo).port;
  const lb = await startBalancer(
    'lb-slowloris',
    yamlFor(
      backendPort,
      `    protection:\n      timeouts: { header: ${opts.headerTimeout}s, bodyMinRate: 1KiB/s }
    routes: [ { match: { pathPrefix: /upload }, pool: uploads } ]`,
    ).replace(
      'pools:\n',
      `pools:\n  - { name: uploads, servers: [ { address: "${HOST}:${uploadPort}" } ] }\n`,
    ),
  );
  const sockets: net.Socket[] = [];
  let ticker: NodeJS.Timeout | undefined;
  try {
    const before = await ordinary(lb.port, 3000);
    const rssBefore = rssMiB(lb.proc.pid);
    const head = Buffer.from(
      'GET / HTTP/1.1\r\nHost: slow.example\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n',
    );
    const lifetimes: number[] = [];
    const answered: number[] = [];
    let refused = 0;
    const sent = new Map<net.Socket, number>();
    const started = Date.now();
    for (let i = 0; i < opts.slowloris; i++) {
      // Spread over a few loopback addresses, as distinct attackers.
      const s = net.connect({ host: HOST, port: lb.port, localAddress: `127.0.1.${1 + (i % 50)}` });
      let opened = Date.now();
      s.on('error', () => {});
      s.on('connect', () => {
        // From the connection's establishment, as the balancer's timeout counts.
        opened = Date.now();
        sent.set(s, 1);
        s.write(head.subarray(0, 1));
      });
      s.once('data', (c: Buffer) => {
        // The balancer's answer (408) arrives before it closes (after a short linger).
        if (c.toString('latin1').startsWith('HTTP/1.1 408')) answered.push((Date.now() - opened) / 1000);
      });
      s.on('close', () => {
        if (sent.has(s)) lifetimes.push((Date.now() - opened) / 1000);
        else refused++;
        sent.delete(s);
      });
      sockets.push(s);
      if (i % 200 === 199) await sleep(10);
    }
    ticker = setInterval(() => {
      for (const [s, n] of sent) {
        if (n < head.length) {
          s.write(head.subarray(n, n + 1));
          sent.set(s, n + 1);
        }
      }
    }, 1000);
    let rssPeak = 0;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssMiB(lb.proc.pid));
    }, 200);
    const during = await ordinary(lb.port, Math.max(3000, opts.headerTimeout * 1000 - 2000));
    // Wait for every slow connection to be closed (bounded: twice the timeout).
    const deadline = started + opts.headerTimeout * 2000 + 5000;
    while (sent.size > 0 && Date.now() < deadline) await sleep(200);
    clearInterval(sampler);
    clearInterval(ticker);
    lifetimes.sort((a, b) => a - b);
    answered.sort((a, b) => a - b);
    const spread = (xs: number[]) => ({
      min: Math.round((xs[0] ?? 0) * 10) / 10,
      median: Math.round((xs[Math.floor(xs.length / 2)] ?? 0) * 10) / 10,
      max: Math.round((xs[xs.length - 1] ?? 0) * 10) / 10,
    });
    const slowPost = await slowPosts(lb.port, Math.max(1, Math.floor(opts.slowloris / 4)));
    return {
      slowPost,
      connections: opts.slowloris,
      headerTimeoutS: opts.headerTimeout,
      closedByBalancer: lifetimes.length,
      stillOpen: sent.size,
      refusedOrFailed: refused,
      answered408: answered.length,
      answered408AfterS: spread(answered),
      closedAfterS: spread(lifetimes),
      ordinaryBefore: before,
      ordinaryDuring: during,
      rssMiB: { before: Math.round(rssBefore), peak: Math.round(rssPeak) },
    };
  } finally {
    if (ticker !== undefined) clearInterval(ticker);
    for (const s of sockets) s.destroy();
    await stopProc(lb.proc);
    uploads.closeAllConnections();
    await new Promise((r) => uploads.close(r));
  }
}

async function main(): Promise<number> {
  if (findBinary('wrk') === undefined) {
    log('wrk is required (apt-get install wrk)');
    return 2;
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-protection-'));
  const backendPort = await freePort();
  const backend = startProc(
    'backend',
    process.execPath,
    [BACKEND_JS, '--port', String(backendPort)],
    path.join(tmp, 'backend.log'),
  );
  let redis: Proc | null = null;
  try {
    await waitForPort(backendPort, backend);
    let redisUrl: string | null = null;
    if (findBinary('redis-server') !== undefined) {
      const redisPort = await freePort();
      redis = startProc(
        'redis',
        'redis-server',
        ['--port', String(redisPort), '--bind', HOST, '--save', '', '--appendonly', 'no', '--dir', tmp],
        path.join(tmp, 'redis.log'),
      );
      await waitForPort(redisPort, redis);
      redisUrl = `redis://${HOST}:${redisPort}`;
    } else log('redis-server not found: the shared case is left out');
    const cost = values['skip-cpu'] ? [] : await cpuCost(backendPort, redisUrl);
    const slow = await slowloris(backendPort);
    const result = {
      machine: {
        cpus: os.cpus().length,
        load: os.loadavg().map((l) => Math.round(l * 10) / 10),
        node: process.version,
      },
      options: opts,
      cpu: cost,
      slowloris: slow,
    };
    if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else {
      console.log('\nCPU per request (balancer process, user+system)');
      for (const c of cost)
        console.log(
          `  ${c.config.padEnd(7)} ${String(c.cpuUsPerRequest).padStart(7)} µs  ×${c.ratioToOff.toFixed(3)}  (${c.requests} requests, ${c.errors} errors)`,
        );
      console.log(`\nSlowloris: ${JSON.stringify(slow, null, 2)}`);
      console.log(`load average at the end: ${result.machine.load.join(' ')}`);
    }
    return cost.every((c) => c.errors === 0) ? 0 : 1;
  } finally {
    if (redis !== null) await stopProc(redis);
    await stopProc(backend);
  }
}

runHarness(main, { tmp: () => tmp });
