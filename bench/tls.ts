/**
 * TLS termination, Fulcrum vs HAProxy (nbthread 1) on the same certificates (ECDSA P-256 and
 * RSA 2048, made here by openssl), in front of the same two node:http backends (bench/backend.ts).
 *
 * Per target and key type, in each round:
 *   h1       HTTPS keep-alive req/s (h2load --h1, 20 connections) and the proxy's CPU µs per request
 *   h2 x1    HTTP/2 req/s over one connection (100 streams in flight)
 *   h2 x20   HTTP/2 req/s over 20 connections (10 streams each), and the proxy's CPU µs per request
 *   full     new full TLS handshakes: `--clients` parallel `openssl s_time -new` processes; the
 *            rate (handshakes/s, wall clock) and the rate per core (handshakes per CPU-second
 *            of the proxy: what the issue's 0.9x target is about, and what a loaded machine
 *            distorts least)
 *   resumed  resumed handshakes, the same way with `s_time -reuse`
 * The `node` target (bench/tlsOrigin.ts) is no proxy: a Node HTTPS/HTTP/2 server answering by
 * itself, the floor of what node:tls and node:http2 cost (a "direct" figure for Fulcrum's).
 * Method: the targets run side by side for one key type; rounds alternate them (the order
 * rotates each round) so that the drifts of a shared machine hit all alike. Figures are medians
 * over rounds with their min–max; ratios fulcrum/haproxy and fulcrum/node are taken per round (same round, same
 * figure), then their median and min–max.
 * Needs h2load (Debian nghttp2-client), openssl, and haproxy for the comparison.
 *
 * Usage: npm run bench:tls -- [--rounds R] [--duration S] [--clients N] [--targets fulcrum,haproxy,node]
 *        [--keys ecdsa,rsa]     (or node dist/bench/tls.js ... after a build)
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  BACKEND_JS,
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

const here = path.dirname(fileURLToPath(import.meta.url));
let tmp: string | undefined;
/** Handshake clients running (killed by the harness if it is interrupted). */
const clientPids = new Set<number>();

/** One round's figures for one target and key. */
interface Sample {
  h1: number;
  h1CpuUs: number;
  h2one: number;
  h2many: number;
  h2CpuUs: number;
  full: number;
  fullPerCore: number;
  resumed: number;
  resumedPerCore: number;
}

const FIGURES: Array<{ key: keyof Sample; label: string }> = [
  { key: 'h1', label: 'HTTPS h1 req/s' },
  { key: 'h1CpuUs', label: 'CPU µs/req (h1)' },
  { key: 'h2one', label: 'h2 ×1 req/s' },
  { key: 'h2many', label: 'h2 ×20 req/s' },
  { key: 'h2CpuUs', label: 'CPU µs/req (h2 ×20)' },
  { key: 'full', label: 'full handshakes/s' },
  { key: 'fullPerCore', label: 'full handshakes per CPU-s' },
  { key: 'resumed', label: 'resumed/s' },
  { key: 'resumedPerCore', label: 'resumed per CPU-s' },
];

function makeCert(dir: string, kind: 'ecdsa' | 'rsa'): { cert: string; key: string; both: string } {
  const key = path.join(dir, `${kind}.key`);
  const cert = path.join(dir, `${kind}.pem`);
  const alg =
    kind === 'ecdsa' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'] : ['-newkey', 'rsa:2048'];
  execFileSync(
    'openssl',
    ['req', '-x509', ...alg, '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=bench.test'],
    { stdio: 'ignore' },
  );
  const both = path.join(dir, `${kind}-both.pem`);
  fs.writeFileSync(both, fs.readFileSync(cert, 'utf8') + fs.readFileSync(key, 'utf8'));
  return { cert, key, both };
}

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100 Hz)
}

/** h2load's warm-up: its requests are not counted, nor is the proxy's CPU meanwhile. */
const WARM_UP_S = 1;

/**
 * One h2load run against the proxy `pid`: req/s, and the proxy's CPU µs per request over the
 * measured part (CPU is sampled once the warm-up is over).
 */
function h2load(pid: number, args: string[], seconds: number): Promise<{ rps: number; cpuUs: number }> {
  return new Promise((resolve, reject) => {
    let cpu0 = cpuSeconds(pid);
    const warm = setTimeout(() => {
      cpu0 = cpuSeconds(pid);
    }, WARM_UP_S * 1000);
    const child = execFile(
      'h2load',
      [...args, '-D', String(seconds), '--warm-up-time', String(WARM_UP_S)],
      { encoding: 'utf8', timeout: (seconds + 30) * 1000 },
      (err, stdout, stderr) => {
        clearTimeout(warm);
        if (child.pid !== undefined) clientPids.delete(child.pid);
        const cpu = cpuSeconds(pid) - cpu0;
        const rps = /finished in [^,]+, ([\d.]+) req\/s/.exec(stdout)?.[1];
        const done = /requests: \d+ total, \d+ started, (\d+) done/.exec(stdout)?.[1];
        const failed = /(\d+) failed/.exec(stdout)?.[1];
        if (rps === undefined || Number(failed) > 0) {
          reject(new Error(`h2load ${args.join(' ')}: ${err?.message ?? ''}\n${stdout}${stderr}`));
          return;
        }
        resolve({ rps: Number(rps), cpuUs: (cpu * 1e6) / Math.max(1, Number(done)) });
      },
    );
    if (child.pid !== undefined) clientPids.add(child.pid);
  });
}

/** One `openssl s_time` client: connections made and the real seconds they took. */
function sTimeOnce(
  port: number,
  mode: '-new' | '-reuse',
  seconds: number,
): Promise<{ n: number; secs: number }> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'openssl',
      ['s_time', '-connect', `${HOST}:${port}`, mode, '-time', String(seconds)],
      { encoding: 'utf8', timeout: (seconds + 30) * 1000 },
      (err, stdout, stderr) => {
        if (child.pid !== undefined) clientPids.delete(child.pid);
        const m = /(\d+) connections in ([\d.]+) real seconds/.exec(stdout);
        if (m === null)
          reject(new Error(`openssl s_time ${mode}: ${err?.message ?? ''}\n${stdout}${stderr}`));
        else resolve({ n: Number(m[1]), secs: Number(m[2]) });
      },
    );
    if (child.pid !== undefined) clientPids.add(child.pid);
  });
}

/**
 * `clients` parallel s_time clients against the proxy `pid`: handshakes per second (wall clock)
 * and per CPU-second of the proxy.
 */
async function handshakes(
  pid: number,
  port: number,
  mode: '-new' | '-reuse',
  seconds: number,
  clients: number,
): Promise<{ rate: number; perCore: number }> {
  const cpu0 = cpuSeconds(pid);
  const runs = await Promise.all(Array.from({ length: clients }, () => sTimeOnce(port, mode, seconds)));
  const cpu = cpuSeconds(pid) - cpu0;
  const n = runs.reduce((sum, r) => sum + r.n, 0);
  const secs = Math.max(...runs.map((r) => r.secs));
  return { rate: n / secs, perCore: n / Math.max(cpu, 0.01) };
}

function haproxyCfg(port: number, pem: string, backends: number[]): string {
  return [
    'global',
    '  nbthread 1',
    '  tune.ssl.default-dh-param 2048',
    'defaults',
    '  mode http',
    '  option http-keep-alive',
    '  http-reuse always',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    'frontend fe',
    `  bind ${HOST}:${port} ssl crt ${pem} alpn h2,http/1.1`,
    '  http-request set-header X-Forwarded-Proto https',
    '  default_backend be',
    'backend be',
    '  balance roundrobin',
    ...backends.map((b, i) => `  server b${i + 1} ${HOST}:${b}`),
    '',
  ].join('\n');
}

function fulcrumYaml(port: number, cert: string, key: string, backends: number[]): string {
  return [
    'listeners:',
    '  - name: web',
    `    listen: "${HOST}:${port}"`,
    '    pool: p',
    `    tls: { certificates: [ { cert: "${cert}", key: "${key}" } ] }`,
    'pools:',
    '  - name: p',
    `    servers: [${backends.map((b) => `{ address: "${HOST}:${b}" }`).join(', ')}]`,
    '',
  ].join('\n');
}

/** One round of every figure against one running proxy. */
async function measure(proc: Proc, port: number, seconds: number, clients: number): Promise<Sample> {
  const url = `https://${HOST}:${port}/`;
  const h1 = await h2load(proc.pid, ['--h1', '-c', '20', url], seconds);
  const h2one = (await h2load(proc.pid, ['-c', '1', '-m', '100', url], seconds)).rps;
  const many = await h2load(proc.pid, ['-c', '20', '-m', '10', url], seconds);
  const full = await handshakes(proc.pid, port, '-new', seconds, clients);
  const resumed = await handshakes(proc.pid, port, '-reuse', seconds, clients);
  return {
    h1: h1.rps,
    h1CpuUs: h1.cpuUs,
    h2one,
    h2many: many.rps,
    h2CpuUs: many.cpuUs,
    full: full.rate,
    fullPerCore: full.perCore,
    resumed: resumed.rate,
    resumedPerCore: resumed.perCore,
  };
}

function median(values: number[]): number {
  const v = [...values].sort((x, y) => x - y);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** "median (min–max)" of `values`, with `digits` decimals. */
function spread(values: number[], digits = 0): string {
  const f = (n: number) => n.toFixed(digits);
  if (values.length === 1) return f(values[0]!);
  return `${f(median(values))} (${f(Math.min(...values))}–${f(Math.max(...values))})`;
}

/** Starts one target on `port` for the certificate `files`. */
function startTarget(
  target: string,
  kind: string,
  port: number,
  files: { cert: string; key: string; both: string },
  backends: number[],
  haproxy: string,
): Proc {
  const logFile = path.join(tmp!, `${target}-${kind}.log`);
  if (target === 'haproxy') {
    const cfg = path.join(tmp!, `haproxy-${kind}.cfg`);
    fs.writeFileSync(cfg, haproxyCfg(port, files.both, backends));
    return startProc('haproxy', haproxy, ['-f', cfg, '-db'], logFile);
  }
  if (target === 'node') {
    const args = ['--port', String(port), '--cert', files.cert, '--key', files.key];
    return startProc('node', process.execPath, [path.join(here, 'tlsOrigin.js'), ...args], logFile);
  }
  const cfg = path.join(tmp!, `fulcrum-${kind}.yaml`);
  fs.writeFileSync(cfg, fulcrumYaml(port, files.cert, files.key, backends));
  return startProc(
    'fulcrum',
    process.execPath,
    [path.join(here, '../src/cli/main.js'), 'start', '-c', cfg],
    logFile,
  );
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '3' },
      clients: { type: 'string', default: '4' },
      targets: { type: 'string', default: 'fulcrum,haproxy,node' },
      keys: { type: 'string', default: 'ecdsa,rsa' },
    },
  });
  const seconds = Number(values.duration);
  const rounds = Number(values.rounds);
  const clients = Number(values.clients);
  if (findBinary('h2load') === undefined) {
    console.error('h2load not found (apt-get install nghttp2-client)');
    return 2;
  }
  const haproxy = findBinary('haproxy');
  let targets = values.targets.split(',');
  if (haproxy === undefined && targets.includes('haproxy')) {
    log('haproxy not installed: skipped');
    targets = targets.filter((t) => t !== 'haproxy');
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-tls-'));
  const backends: number[] = [];
  const procs: Proc[] = [];
  const load: number[] = [];
  /** samples[key][target]: one per round. */
  const samples = new Map<string, Map<string, Sample[]>>();
  const started = Date.now();
  try {
    for (const id of ['a', 'b']) {
      const port = await freePort();
      const p = startProc(
        `backend-${id}`,
        process.execPath,
        [BACKEND_JS, '--port', String(port), '--id', id],
        path.join(tmp, `backend-${id}.log`),
      );
      await waitForPort(port, p);
      backends.push(port);
      procs.push(p);
    }
    for (const kind of values.keys.split(',') as Array<'ecdsa' | 'rsa'>) {
      const files = makeCert(tmp, kind);
      const running = new Map<string, { proc: Proc; port: number }>();
      const byTarget = new Map<string, Sample[]>(targets.map((t) => [t, []]));
      samples.set(kind, byTarget);
      try {
        for (const target of targets) {
          const port = await freePort();
          const proc = startTarget(target, kind, port, files, backends, haproxy ?? '');
          running.set(target, { proc, port });
          await waitForPort(port, proc);
        }
        await sleep(200);
        // Not counted: JIT and caches warm (a cold Node is several times slower at first).
        for (const { proc, port } of running.values()) {
          await h2load(proc.pid, ['-c', '20', '-m', '10', `https://${HOST}:${port}/`], seconds);
        }
        for (let r = 0; r < rounds; r++) {
          const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
          for (const target of order) {
            const { proc, port } = running.get(target)!;
            log(`${kind} round ${r + 1}/${rounds}: ${target}`);
            load.push(os.loadavg()[0]!);
            byTarget.get(target)!.push(await measure(proc, port, seconds, clients));
          }
        }
      } finally {
        for (const { proc } of running.values()) await stopProc(proc);
      }
    }
  } finally {
    for (const p of procs) await stopProc(p);
  }
  report(samples, targets, { seconds, rounds, clients, load, minutes: (Date.now() - started) / 60_000 });
  return 0;
}

/** The tables, as Markdown (ready for docs/benchmarks.md). */
function report(
  samples: Map<string, Map<string, Sample[]>>,
  targets: string[],
  run: { seconds: number; rounds: number; clients: number; load: number[]; minutes: number },
): void {
  console.log(
    `\nTLS termination, ${new Date().toISOString().slice(0, 10)}: ${run.rounds} rounds, ${run.seconds} s per figure, ${run.clients} s_time clients, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load average ${Math.min(...run.load).toFixed(1)}–${Math.max(...run.load).toFixed(1)} during the run, ${run.minutes.toFixed(1)} min`,
  );
  console.log('Figures: median over rounds (min–max); ratios per round, then their median (min–max).\n');
  // Fulcrum against each other target present.
  const peers = targets.includes('fulcrum') ? targets.filter((t) => t !== 'fulcrum') : [];
  console.log(`| figure | key | ${[...targets, ...peers.map((p) => `fulcrum / ${p}`)].join(' | ')} |`);
  console.log(`|---|---|${[...targets, ...peers].map(() => '---|').join('')}`);
  for (const f of FIGURES) {
    for (const [kind, byTarget] of samples) {
      const cells = targets.map((t) => spread(byTarget.get(t)!.map((x) => x[f.key])));
      const fu = byTarget.get('fulcrum');
      for (const p of peers) {
        const other = byTarget.get(p)!;
        cells.push(
          `${spread(
            fu!.map((x, i) => x[f.key] / other[i]![f.key]),
            2,
          )}x`,
        );
      }
      console.log(`| ${f.label} | ${kind} | ${cells.join(' | ')} |`);
    }
  }
}

runHarness(main, { tmp: () => tmp, extraPids: () => clientPids });
