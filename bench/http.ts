/**
 * One-run comparison of HTTP reverse proxies on this machine, measured with wrk (keep-alive).
 *
 * Targets (all balance round robin over the same two node:http backends, bench/backend.ts):
 *   direct   wrk straight to one backend (the ceiling)
 *   fulcrum  node dist/src/cli/main.js start -c <tmp>/fulcrum.yaml
 *   haproxy  mode http, nbthread 1, http-reuse always, foreground (-db)
 *   nginx    1 worker, upstream keepalive 64, HTTP/1.1 to upstreams, foreground, tmp prefix
 *   fastify  fastify + @fastify/reply-from (undici pools), bench/peers/fastifyProxy.ts
 *   node-pipe  a bare Node TCP pipe per client connection (bench/peers/nodePipe.ts): the floor of
 *            any proxy written in Node, at L4 and L7 alike
 *
 *   fulcrum-base  a second Fulcrum build (--baseline), for before/after in the same run
 *
 * Per target: start it, wait for its port, probe a few requests (status + which backend answered),
 * warm up, measure, sample the proxy's RSS (process tree, /proc) and CPU time, and for Fulcrum the
 * V8 heap bytes allocated (heapProbe.ts), stop it by PID. --pin puts the proxy alone on core 0 and
 * everything else on core 1; --repeat interleaves rounds and reports medians with their spread.
 * Prints a table; writes the same as JSON under test-output/bench/. Exit code: 0 when every target
 * was measured (even if slow or with errors, which are flagged), 1 when a target could not be run,
 * 2 on bad usage or a missing wrk. See docs/benchmarks.md.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  BACKEND_JS,
  FULCRUM_CLI,
  findBinary,
  findRoot,
  freePort,
  HOST,
  killPid,
  log,
  type Proc,
  runHarness,
  sleep,
  startProc,
  stopProc,
  tail,
  waitForPort,
} from './processes.js';

const ALL_TARGETS = ['direct', 'fulcrum', 'haproxy', 'nginx', 'fastify', 'node-pipe'] as const;
/** `fulcrum-base`: the build given by --baseline, measured right after `fulcrum`. */
type TargetName = (typeof ALL_TARGETS)[number] | 'fulcrum-base';

const here = path.dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------------------------------------
// Options

interface Options {
  targets: TargetName[];
  duration: number;
  warmup: number;
  connections: number;
  threads: number;
  backends: number;
  cpuProf: boolean;
  keepTmp: boolean;
  json: boolean;
  fulcrumCli: string | undefined;
  /** Proxy alone on core 0; wrk, the backends and this harness on core 1 (taskset). */
  pin: boolean;
  /** A second Fulcrum CLI (another build) measured as `fulcrum-base` in the same run. */
  baseline: string | undefined;
  /** Rounds over all targets (interleaved: A B A B …); the table shows medians and spread. */
  repeat: number;
  /** Backend response body size in bytes (default 25). */
  bodySize: number | undefined;
  /** `tcp`: Fulcrum `protocol: tcp` and HAProxy `mode tcp` under the same HTTP load (L4). */
  mode: 'http' | 'tcp';
  /** Extra node options for `fulcrum` and for `fulcrum-base` (space-separated). */
  nodeArgs: string[];
  baselineNodeArgs: string[];
  /** Sample where Fulcrum allocates over the measured run (test-output/prof/alloc-*.heapprofile). */
  heapSample: boolean;
}

const USAGE = `Usage: node dist/bench/http.js [options]
  --targets LIST      comma list of ${ALL_TARGETS.join(',')} (default: all, in that order)
  --duration S        measured seconds per target (default 10)
  --warmup S          warm-up seconds per target, not measured (default 2; 0 to skip)
  --connections N     wrk connections, keep-alive (default 50)
  --threads N         wrk threads (default 1)
  --backends N        backend processes (default 2)
  --cpu-prof          run fulcrum under node --cpu-prof, profiles in test-output/prof/
  --heap-sample       sample fulcrum's allocations (garbage included) over the measured run, same dir
  --fulcrum-cli PATH  Fulcrum CLI to run (default: ../src/cli/main.js next to this file, else dist/)
  --baseline PATH     a second Fulcrum CLI (e.g. the parent commit built elsewhere), run as fulcrum-base
  --pin               proxy alone on core 0, wrk + backends + harness on core 1 (taskset)
  --repeat N          interleaved rounds over the targets; medians and min-max (default 1)
  --body-size N       backend response body in bytes (default 25)
  --node-args "A B"   extra node options for fulcrum (e.g. "--max-semi-space-size=2")
  --baseline-node-args "A B"  the same for fulcrum-base (with --baseline; may name the same CLI)
  --mode http|tcp     tcp: Fulcrum protocol tcp and HAProxy mode tcp (L4) under the same load
  --keep-tmp          keep the generated configs and logs
  --json              print the JSON result to stdout instead of the table
  -h, --help          this help`;

class UsageError extends Error {}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      targets: { type: 'string' },
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      connections: { type: 'string', default: '50' },
      threads: { type: 'string', default: '1' },
      backends: { type: 'string', default: '2' },
      'cpu-prof': { type: 'boolean', default: false },
      'heap-sample': { type: 'boolean', default: false },
      'fulcrum-cli': { type: 'string' },
      baseline: { type: 'string' },
      pin: { type: 'boolean', default: false },
      repeat: { type: 'string', default: '1' },
      'body-size': { type: 'string' },
      mode: { type: 'string', default: 'http' },
      'node-args': { type: 'string', default: '' },
      'baseline-node-args': { type: 'string', default: '' },
      'keep-tmp': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const num = (name: string, raw: string | undefined, min: number): number => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number >= ${min}`);
    return n;
  };
  const targets: TargetName[] = [];
  for (const t of (values.targets ?? ALL_TARGETS.join(',')).split(',')) {
    const name = t.trim();
    if (name === '') continue;
    if (!(ALL_TARGETS as readonly string[]).includes(name)) {
      throw new UsageError(`unknown target "${name}" (known: ${ALL_TARGETS.join(', ')})`);
    }
    if (!targets.includes(name as TargetName)) targets.push(name as TargetName);
  }
  if (targets.length === 0) throw new UsageError('--targets is empty');
  const mode = values.mode;
  if (mode !== 'http' && mode !== 'tcp') throw new UsageError('--mode must be http or tcp');
  if (mode === 'tcp') {
    const l7 = targets.filter((t) => t === 'nginx' || t === 'fastify');
    if (l7.length > 0) throw new UsageError(`--mode tcp: ${l7.join(', ')} has no L4 configuration here`);
  }
  if (values.baseline !== undefined) {
    const at = targets.indexOf('fulcrum');
    targets.splice(at < 0 ? targets.length : at + 1, 0, 'fulcrum-base');
  }
  const connections = Math.floor(num('connections', values.connections, 1));
  const threads = Math.floor(num('threads', values.threads, 1));
  if (connections < threads) throw new UsageError('--connections must be >= --threads');
  return {
    targets,
    duration: Math.max(1, Math.round(num('duration', values.duration, 1))),
    warmup: Math.round(num('warmup', values.warmup, 0)),
    connections,
    threads,
    backends: Math.floor(num('backends', values.backends, 1)),
    cpuProf: values['cpu-prof'] ?? false,
    heapSample: values['heap-sample'] ?? false,
    keepTmp: values['keep-tmp'] ?? false,
    json: values.json ?? false,
    fulcrumCli: values['fulcrum-cli'],
    pin: values.pin ?? false,
    baseline: values.baseline,
    repeat: Math.floor(num('repeat', values.repeat, 1)),
    bodySize:
      values['body-size'] === undefined ? undefined : Math.floor(num('body-size', values['body-size'], 0)),
    mode,
    nodeArgs: (values['node-args'] ?? '').split(' ').filter(Boolean),
    baselineNodeArgs: (values['baseline-node-args'] ?? '').split(' ').filter(Boolean),
  };
}

// ---------------------------------------------------------------------------------------------
// Small utilities

function versionOf(bin: string, args: string[]): string {
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 5000 });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  return text.split('\n')[0] ?? '';
}

// ---------------------------------------------------------------------------------------------
// Child processes: every one is tracked and stopped by PID, also when the harness is interrupted.

/** wrk runs (not Procs: their output is captured, not logged). */
const wrkPids = new Set<number>();
/** Removed on exit, also when interrupted, unless --keep-tmp. */
let tmpToRemove: string | undefined;

// ---------------------------------------------------------------------------------------------
// Memory: RSS of the proxy's process tree from /proc

interface ProcMem {
  rssKb: number;
  hwmKb: number;
}

function readMem(pid: number): ProcMem | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    const hwm = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    if (!rss) return undefined;
    return { rssKb: Number(rss[1]), hwmKb: Number(hwm?.[1] ?? rss[1]) };
  } catch {
    return undefined;
  }
}

/** All descendants of `root` (scan of /proc/<pid>/stat parent ids). */
function descendantsOf(root: number): number[] {
  const parentOf = new Map<number, number>();
  let entries: string[] = [];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parentOf.set(Number(e), Number(after[1]));
    } catch {}
  }
  const out: number[] = [];
  const want = new Set([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parentOf) {
      if (want.has(ppid) && !want.has(pid)) {
        want.add(pid);
        out.push(pid);
        grew = true;
      }
    }
  }
  return out;
}

/** CPU time (user + system) of a process tree, in clock ticks (USER_HZ, 100 on Linux). */
function treeCpuTicks(root: number): number {
  let ticks = 0;
  for (const pid of [root, ...descendantsOf(root)]) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // After the command: state(0) ppid(1) ... utime(11) stime(12).
      ticks += Number(f[11]) + Number(f[12]);
    } catch {}
  }
  return ticks;
}
const TICK_US = 10_000;

class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private ticks = 0;
  private pids: number[];
  peakKb = 0;
  private readonly hwm = new Map<number, number>();

  constructor(private readonly proc: Proc) {
    this.pids = [proc.pid];
  }

  start(intervalMs = 100): void {
    this.refreshTree();
    this.sample();
    this.timer = setInterval(() => {
      if (++this.ticks % 20 === 0) this.refreshTree();
      this.sample();
    }, intervalMs);
  }

  private refreshTree(): void {
    const kids = descendantsOf(this.proc.pid);
    for (const k of kids) this.proc.descendants.add(k);
    this.pids = [this.proc.pid, ...kids];
  }

  private sample(): void {
    let sum = 0;
    for (const pid of this.pids) {
      const m = readMem(pid);
      if (!m) continue;
      sum += m.rssKb;
      this.hwm.set(pid, Math.max(this.hwm.get(pid) ?? 0, m.hwmKb));
    }
    this.peakKb = Math.max(this.peakKb, sum);
  }

  /** Stop sampling; returns polled peak of the tree's summed VmRSS and the sum of VmHWM. */
  stop(): { polledPeakMb: number; hwmMb: number; processes: number } {
    this.refreshTree();
    this.sample();
    if (this.timer) clearInterval(this.timer);
    let hwmKb = 0;
    for (const v of this.hwm.values()) hwmKb += v;
    return { polledPeakMb: this.peakKb / 1024, hwmMb: hwmKb / 1024, processes: this.hwm.size };
  }
}

// ---------------------------------------------------------------------------------------------
// wrk

interface WrkResult {
  requestsPerSec: number;
  requests: number;
  seconds: number;
  latencyAvgMs: number | null;
  p50Ms: number | null;
  p75Ms: number | null;
  p90Ms: number | null;
  p99Ms: number | null;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  non2xx3xx: number;
  raw: string;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function toMs(value: string, unit: string): number | null {
  const f = UNIT_MS[unit];
  return f === undefined ? null : Number(value) * f;
}

export function parseWrk(raw: string): WrkResult {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(raw);
  if (!rps) throw new Error(`could not parse wrk output:\n${raw}`);
  const pct = (p: string): number | null => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm').exec(raw);
    return m ? toMs(m[1]!, m[2]!) : null;
  };
  const avg = /^\s*Latency\s+([\d.]+)(us|ms|s|m|h)\s/m.exec(raw);
  const total = /^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)/m.exec(raw);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(raw);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(raw);
  return {
    requestsPerSec: Number(rps[1]),
    requests: total ? Number(total[1]) : 0,
    seconds: total ? (toMs(total[2]!, total[3]!) ?? 0) / 1000 : 0,
    latencyAvgMs: avg ? toMs(avg[1]!, avg[2]!) : null,
    p50Ms: pct('50'),
    p75Ms: pct('75'),
    p90Ms: pct('90'),
    p99Ms: pct('99'),
    socketErrors: {
      connect: sock ? Number(sock[1]) : 0,
      read: sock ? Number(sock[2]) : 0,
      write: sock ? Number(sock[3]) : 0,
      timeout: sock ? Number(sock[4]) : 0,
    },
    non2xx3xx: non2xx ? Number(non2xx[1]) : 0,
    raw,
  };
}

/** `[cmd, args]` run on one CPU core with taskset when pinning, else unchanged. */
function onCore(core: number | undefined, cmd: string, args: string[]): [string, string[]] {
  if (core === undefined || !tasksetBin) return [cmd, args];
  return [tasksetBin, ['-c', String(core), cmd, ...args]];
}
let tasksetBin: string | undefined;
/** Core of the proxy under test and core of everything else, when --pin. */
const PROXY_CORE = 0;
const LOAD_CORE = 1;

function runWrk(wrk: string, url: string, seconds: number, opts: Options): Promise<WrkResult> {
  const wrkArgs = [
    '-t',
    String(opts.threads),
    '-c',
    String(opts.connections),
    '-d',
    `${seconds}s`,
    '--latency',
    url,
  ];
  const [cmd, args] = onCore(opts.pin ? LOAD_CORE : undefined, wrk, wrkArgs);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = child.pid;
    if (pid !== undefined) wrkPids.add(pid);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    const timer = setTimeout(
      () => {
        if (child.pid !== undefined) killPid(child.pid, 'SIGKILL');
      },
      (seconds + 30) * 1000,
    );
    child.on('error', (e) => {
      clearTimeout(timer);
      if (pid !== undefined) wrkPids.delete(pid);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (pid !== undefined) wrkPids.delete(pid);
      if (code !== 0) {
        reject(new Error(`wrk exited with ${code ?? signal}: ${err || out}`));
        return;
      }
      try {
        resolve(parseWrk(out));
      } catch (e) {
        reject(e);
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers: probe a target, read backend counters

function httpGet(
  port: number,
  urlPath: string,
  agent: http.Agent,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: HOST, port, path: urlPath, agent, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

interface Probe {
  statuses: Record<string, number>;
  servedBy: Record<string, number>;
  error?: string;
}

/** A few sequential requests on one keep-alive connection: status codes and which backend answered. */
async function probe(port: number, n = 8): Promise<Probe> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const result: Probe = { statuses: {}, servedBy: {} };
  try {
    for (let i = 0; i < n; i++) {
      const r = await httpGet(port, '/', agent);
      result.statuses[r.status] = (result.statuses[r.status] ?? 0) + 1;
      const by = String(r.headers['x-served-by'] ?? '(none)');
      result.servedBy[by] = (result.servedBy[by] ?? 0) + 1;
    }
  } catch (e) {
    result.error = (e as Error).message;
  } finally {
    agent.destroy();
  }
  return result;
}

async function backendCounts(ports: number[]): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: false });
  try {
    return await Promise.all(
      ports.map(async (p) => {
        const r = await httpGet(p, '/__bench/stats', agent);
        return Number((JSON.parse(r.body) as { requests: number }).requests);
      }),
    );
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Targets: how to start each one

interface Started {
  port: number;
  proc: Proc | undefined; // undefined for direct
  stopGraceMs: number;
  describe: string;
  /** Where the heap probe writes its JSON (Fulcrum only). */
  heapOut?: string;
}

interface Ctx {
  opts: Options;
  tmp: string;
  root: string;
  backendPorts: number[];
  fulcrumCli: string | undefined;
  baselineCli: string | undefined;
  heapProbe: string | undefined;
  /** Counts started targets, for unique file names over rounds. */
  starts: number;
  haproxy: string | undefined;
  nginx: string | undefined;
}

function fulcrumYaml(port: number, backends: number[], mode: 'http' | 'tcp'): string {
  return [
    'listeners:',
    '  - name: bench',
    `    protocol: ${mode}`,
    `    listen: ${HOST}:${port}`,
    '    pool: backends',
    'pools:',
    '  - name: backends',
    '    algorithm: round-robin',
    '    servers:',
    ...backends.map((b) => `      - address: ${HOST}:${b}`),
    '',
  ].join('\n');
}

function haproxyCfg(port: number, backends: number[], mode: 'http' | 'tcp'): string {
  const l7 = mode === 'http';
  return [
    'global',
    '  nbthread 1',
    '',
    'defaults',
    `  mode ${mode}`,
    ...(l7 ? ['  option http-keep-alive', '  option forwardfor', '  http-reuse always'] : []),
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    ...(l7 ? ['  timeout http-keep-alive 60s'] : []),
    '',
    'frontend fe',
    `  bind ${HOST}:${port}`,
    ...(l7 ? ['  http-request set-header X-Forwarded-Proto http'] : []),
    '  default_backend be',
    '',
    'backend be',
    '  balance roundrobin',
    ...backends.map((b, i) => `  server b${i + 1} ${HOST}:${b}`),
    '',
  ].join('\n');
}

function nginxConf(dir: string, port: number, backends: number[]): string {
  return [
    'worker_processes 1;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/nginx-error.log warn;`,
    'events {',
    '  worker_connections 4096;',
    '}',
    'http {',
    '  access_log off;',
    `  client_body_temp_path ${dir}/client_body;`,
    `  proxy_temp_path ${dir}/proxy;`,
    `  fastcgi_temp_path ${dir}/fastcgi;`,
    `  uwsgi_temp_path ${dir}/uwsgi;`,
    `  scgi_temp_path ${dir}/scgi;`,
    '  keepalive_timeout 60s;',
    '  keepalive_requests 1000000;',
    '  upstream backends {',
    ...backends.map((b) => `    server ${HOST}:${b};`),
    '    keepalive 64;',
    '    keepalive_requests 1000000;',
    '    keepalive_timeout 60s;',
    '  }',
    '  server {',
    `    listen ${HOST}:${port};`,
    '    location / {',
    '      proxy_pass http://backends;',
    '      proxy_http_version 1.1;',
    '      proxy_set_header Connection "";',
    '      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
    '      proxy_set_header X-Forwarded-Proto $scheme;',
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');
}

async function startTarget(name: TargetName, ctx: Ctx): Promise<Started> {
  const { tmp, backendPorts } = ctx;
  if (name === 'direct') {
    return {
      port: backendPorts[0]!,
      proc: undefined,
      stopGraceMs: 0,
      describe: `backend b1 :${backendPorts[0]}`,
    };
  }
  const port = await freePort();
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, `${name}.log`);
  let proc: Proc;
  let stopGraceMs = 5000;
  let describe: string;
  let heapOut: string | undefined;
  const core = ctx.opts.pin ? PROXY_CORE : undefined;
  const start = (cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) =>
    startProc(name, ...onCore(core, cmd, args), logFile, options);
  switch (name) {
    case 'fulcrum':
    case 'fulcrum-base': {
      const cli = name === 'fulcrum' ? ctx.fulcrumCli : ctx.baselineCli;
      if (!cli) {
        throw new Error(
          'Fulcrum CLI not found (dist/src/cli/main.js): run `npm run build`, or pass --fulcrum-cli',
        );
      }
      const cfg = path.join(dir, 'fulcrum.yaml');
      fs.writeFileSync(cfg, fulcrumYaml(port, backendPorts, ctx.opts.mode));
      const nodeArgs: string[] = [...(name === 'fulcrum' ? ctx.opts.nodeArgs : ctx.opts.baselineNodeArgs)];
      let env: NodeJS.ProcessEnv | undefined;
      if (ctx.heapProbe) {
        heapOut = path.join(dir, `heap-${++ctx.starts}.json`);
        nodeArgs.push('--import', ctx.heapProbe);
        env = { ...process.env, FULCRUM_BENCH_HEAP_OUT: heapOut };
        if (ctx.opts.heapSample && name === 'fulcrum') {
          const profDir = path.join(ctx.root, 'test-output', 'prof');
          fs.mkdirSync(profDir, { recursive: true });
          env.FULCRUM_BENCH_HEAP_SAMPLE = path.join(profDir, `alloc-${Date.now()}.heapprofile`);
        }
      }
      if (ctx.opts.cpuProf) {
        const profDir = path.join(ctx.root, 'test-output', 'prof');
        fs.mkdirSync(profDir, { recursive: true });
        nodeArgs.push('--cpu-prof', '--cpu-prof-dir', profDir);
        stopGraceMs = 20_000; // the profile is written on exit
      }
      proc = start(process.execPath, [...nodeArgs, cli, 'start', '-c', cfg], { env });
      describe = `node ${nodeArgs.join(' ')} ${path.relative(ctx.root, cli)} start -c fulcrum.yaml`;
      break;
    }
    case 'haproxy': {
      if (!ctx.haproxy) throw new Error('haproxy not installed (apt-get install haproxy)');
      const cfg = path.join(dir, 'haproxy.cfg');
      fs.writeFileSync(cfg, haproxyCfg(port, backendPorts, ctx.opts.mode));
      const check = spawnSync(ctx.haproxy, ['-c', '-f', cfg], { encoding: 'utf8', timeout: 10_000 });
      if (check.status !== 0)
        throw new Error(`haproxy -c rejected the config:\n${check.stdout}${check.stderr}`);
      proc = start(ctx.haproxy, ['-f', cfg, '-db']);
      describe = 'haproxy -f haproxy.cfg -db';
      break;
    }
    case 'nginx': {
      if (!ctx.nginx) throw new Error('nginx not installed (apt-get install nginx)');
      const cfg = path.join(dir, 'nginx.conf');
      fs.writeFileSync(cfg, nginxConf(dir, port, backendPorts));
      // -e: the startup error log, before the config is read (the default is under /var/log).
      const base = ['-p', `${dir}/`, '-c', cfg, '-e', `${dir}/nginx-error.log`];
      const check = spawnSync(ctx.nginx, [...base, '-t'], { encoding: 'utf8', timeout: 10_000 });
      if (check.status !== 0)
        throw new Error(`nginx -t rejected the config:\n${check.stdout}${check.stderr}`);
      proc = start(ctx.nginx, [...base, '-g', 'daemon off;']);
      describe = `nginx -p <tmp> -c nginx.conf -g 'daemon off;'`;
      break;
    }
    case 'fastify': {
      const script = path.join(here, 'peers', 'fastifyProxy.js');
      if (!fs.existsSync(script)) throw new Error(`${script} not found (build bench/ first)`);
      const upstreams = backendPorts.map((b) => `${HOST}:${b}`).join(',');
      proc = start(process.execPath, [script, '--port', String(port), '--upstreams', upstreams], {
        cwd: ctx.root,
      });
      describe = 'node bench/peers/fastifyProxy.js';
      break;
    }
    case 'node-pipe': {
      const script = path.join(here, 'peers', 'nodePipe.js');
      const upstreams = backendPorts.map((b) => `${HOST}:${b}`).join(',');
      proc = start(process.execPath, [script, '--port', String(port), '--upstreams', upstreams]);
      describe = 'node bench/peers/nodePipe.js';
      break;
    }
  }
  try {
    await waitForPort(port, proc);
  } catch (e) {
    await stopProc(proc, 2000);
    throw e;
  }
  return { port, proc, stopGraceMs, describe, ...(heapOut ? { heapOut } : {}) };
}

/** Summed VmRSS of a process and its descendants now, in MB. */
function treeRssMb(root: number): number | undefined {
  let kb = 0;
  let seen = false;
  for (const pid of [root, ...descendantsOf(root)]) {
    const m = readMem(pid);
    if (m) {
      kb += m.rssKb;
      seen = true;
    }
  }
  return seen ? round(kb / 1024, 1) : undefined;
}

interface HeapWindow {
  allocatedBytes: number;
  gcs: number;
  scavenges: number;
  markSweeps: number;
  gcMs: number;
}

/** Second SIGUSR2 to the heap probe: waits (≤ 5 s) for the JSON it writes. */
async function readHeapWindow(proc: Proc, file: string): Promise<HeapWindow | undefined> {
  killPid(proc.pid, 'SIGUSR2');
  for (let i = 0; i < 100; i++) {
    try {
      const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as HeapWindow;
      fs.rmSync(file, { force: true });
      return doc;
    } catch {}
    await sleep(50);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Running one target

interface TargetResult {
  target: TargetName;
  status: 'ok' | 'failed';
  failure?: string;
  command?: string;
  flags: string[];
  requestsPerSec?: number;
  requests?: number;
  latencyAvgMs?: number | null;
  p50Ms?: number | null;
  p75Ms?: number | null;
  p90Ms?: number | null;
  p99Ms?: number | null;
  errors?: {
    connect: number;
    read: number;
    write: number;
    timeout: number;
    non2xx3xx: number;
    total: number;
  };
  peakRssMb?: number | null;
  polledPeakRssMb?: number | null;
  /** Proxy CPU time (user + system, whole process tree) per request, in microseconds. */
  cpuUsPerRequest?: number;
  /** RSS of the proxy tree after the probe, before any load. */
  idleRssStartMb?: number;
  /** RSS of the proxy tree 2 s after the measured run ended. */
  idleRssAfterMb?: number;
  /** V8 heap bytes allocated per request over the measured run (Fulcrum only, bench/heapProbe.ts). */
  heapBytesPerRequest?: number;
  /** Garbage collections over the measured run (Fulcrum only). */
  gcs?: { scavenges: number; markSweeps: number; ms: number };
  /** Which round (1-based) of --repeat. */
  round?: number;
  processes?: number;
  backendShare?: number[];
  backendRequests?: number[];
  probe?: Probe;
  loadavgBefore?: number[];
  ratioToHaproxy?: number | null;
}

async function runTarget(name: TargetName, ctx: Ctx, wrk: string): Promise<TargetResult> {
  const { opts } = ctx;
  const result: TargetResult = { target: name, status: 'ok', flags: [] };
  let started: Started | undefined;
  let sampler: RssSampler | undefined;
  try {
    log(`${name}: starting`);
    started = await startTarget(name, ctx);
    result.command = started.describe;
    if (started.proc) {
      sampler = new RssSampler(started.proc);
      sampler.start();
    }
    const url = `http://${HOST}:${started.port}/`;

    result.probe = await probe(started.port);
    const badStatus = Object.keys(result.probe.statuses).filter((s) => s !== '200');
    if (result.probe.error) result.flags.push(`probe failed: ${result.probe.error}`);
    if (badStatus.length > 0) result.flags.push(`probe got status ${badStatus.join(',')}`);
    const seen = Object.keys(result.probe.servedBy).filter((s) => s !== '(none)');
    // L4 (and the node pipe) balances connections: the probe's one keep-alive connection sees
    // one backend.
    const perRequest = opts.mode === 'http' && name !== 'direct' && name !== 'node-pipe';
    const balanced = perRequest && ctx.backendPorts.length > 1;
    if (balanced && seen.length < ctx.backendPorts.length) {
      result.flags.push(`probe: only ${seen.join(',') || 'no backend'} answered (not balanced?)`);
    }

    if (started.proc) {
      const idle = treeRssMb(started.proc.pid);
      if (idle !== undefined) result.idleRssStartMb = idle;
    }
    if (opts.warmup > 0) {
      log(`${name}: warm-up ${opts.warmup}s`);
      await runWrk(wrk, url, opts.warmup, opts);
    }
    if (started.proc && started.heapOut) killPid(started.proc.pid, 'SIGUSR2');
    const before = await backendCounts(ctx.backendPorts);
    result.loadavgBefore = os.loadavg().map((l) => Math.round(l * 100) / 100);
    log(`${name}: measuring ${opts.duration}s (load average ${result.loadavgBefore.join(' ')})`);
    const cpuBefore = started.proc ? treeCpuTicks(started.proc.pid) : 0;
    const w = await runWrk(wrk, url, opts.duration, opts);
    // CPU the proxy spent per request: a figure the rest of the machine's load hardly moves.
    if (started.proc && w.requests > 0) {
      result.cpuUsPerRequest = round(
        ((treeCpuTicks(started.proc.pid) - cpuBefore) * TICK_US) / w.requests,
        1,
      );
    }
    if (started.proc && started.heapOut) {
      const heap = await readHeapWindow(started.proc, started.heapOut);
      if (heap && w.requests > 0) {
        result.heapBytesPerRequest = Math.round(heap.allocatedBytes / w.requests);
        result.gcs = { scavenges: heap.scavenges, markSweeps: heap.markSweeps, ms: round(heap.gcMs, 1) };
      } else result.flags.push('heap probe: no answer');
    }
    if (sampler) {
      const mem = sampler.stop();
      sampler = undefined;
      result.peakRssMb = round(mem.hwmMb, 1);
      result.polledPeakRssMb = round(mem.polledPeakMb, 1);
      result.processes = mem.processes;
    } else {
      result.peakRssMb = null;
      result.polledPeakRssMb = null;
    }
    const after = await backendCounts(ctx.backendPorts);
    result.backendRequests = after.map((a, i) => a - (before[i] ?? 0));
    const sum = result.backendRequests.reduce((a, b) => a + b, 0);
    result.backendShare = result.backendRequests.map((n) => (sum > 0 ? round((100 * n) / sum, 1) : 0));

    result.requestsPerSec = round(w.requestsPerSec, 0);
    result.requests = w.requests;
    result.latencyAvgMs = w.latencyAvgMs;
    result.p50Ms = w.p50Ms;
    result.p75Ms = w.p75Ms;
    result.p90Ms = w.p90Ms;
    result.p99Ms = w.p99Ms;
    const e = w.socketErrors;
    const total = e.connect + e.read + e.write + e.timeout + w.non2xx3xx;
    result.errors = { ...e, non2xx3xx: w.non2xx3xx, total };
    if (total > 0) {
      const parts = Object.entries(result.errors)
        .filter(([k, v]) => k !== 'total' && v > 0)
        .map(([k, v]) => `${k} ${v}`);
      result.flags.push(`wrk errors: ${parts.join(', ')}`);
    }
    if (w.requests === 0) result.flags.push('no request completed');
    if (started.proc) {
      await sleep(2000);
      const idle = treeRssMb(started.proc.pid);
      if (idle !== undefined) result.idleRssAfterMb = idle;
    }
  } catch (e) {
    result.status = 'failed';
    result.failure = (e as Error).message;
    log(`${name}: FAILED: ${result.failure}`);
  } finally {
    sampler?.stop();
    if (started?.proc) {
      await stopProc(started.proc, started.stopGraceMs);
      // haproxy/nginx/node exit 0 (or by the signal) on SIGTERM; anything else is worth a look.
      const code = started.proc.exitCode;
      if (typeof code === 'number' && code > 0 && code !== 130 && code !== 143) {
        result.flags.push(`exited with code ${code} on SIGTERM`);
      }
    }
  }
  return result;
}

const round = (n: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};

// ---------------------------------------------------------------------------------------------
// Output

function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1) return `${(ms * 1000).toFixed(0)} us`;
  if (ms < 100) return `${ms.toFixed(2)} ms`;
  return `${ms.toFixed(0)} ms`;
}

/** Median and spread of one figure over the rounds of a target. */
interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

function spread(values: (number | null | undefined)[]): Spread | undefined {
  const v = values.filter((x): x is number => typeof x === 'number').sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

/** One target over all its rounds: medians with min-max. */
interface Summary {
  target: TargetName;
  rounds: number;
  failed: number;
  flagged: number;
  requestsPerSec?: Spread;
  p50Ms?: Spread;
  p99Ms?: Spread;
  errors: number;
  cpuUsPerRequest?: Spread;
  peakRssMb?: Spread;
  idleRssStartMb?: Spread;
  idleRssAfterMb?: Spread;
  heapBytesPerRequest?: Spread;
  ratioToHaproxy?: number | null;
}

function summarize(results: TargetResult[], targets: TargetName[]): Summary[] {
  const out: Summary[] = targets.map((target) => {
    const rs = results.filter((r) => r.target === target);
    const ok = rs.filter((r) => r.status === 'ok');
    const s: Summary = {
      target,
      rounds: rs.length,
      failed: rs.length - ok.length,
      flagged: ok.filter((r) => r.flags.length > 0).length,
      errors: ok.reduce((a, r) => a + (r.errors?.total ?? 0), 0),
    };
    const put = <K extends keyof Summary>(key: K, v: Spread | undefined): void => {
      if (v) (s as unknown as Record<string, Spread>)[key] = v;
    };
    put('requestsPerSec', spread(ok.map((r) => r.requestsPerSec)));
    put('p50Ms', spread(ok.map((r) => r.p50Ms)));
    put('p99Ms', spread(ok.map((r) => r.p99Ms)));
    put('cpuUsPerRequest', spread(ok.map((r) => r.cpuUsPerRequest)));
    put('peakRssMb', spread(ok.map((r) => r.peakRssMb)));
    put('idleRssStartMb', spread(ok.map((r) => r.idleRssStartMb)));
    put('idleRssAfterMb', spread(ok.map((r) => r.idleRssAfterMb)));
    put('heapBytesPerRequest', spread(ok.map((r) => r.heapBytesPerRequest)));
    return s;
  });
  const hap = out.find((s) => s.target === 'haproxy')?.requestsPerSec?.median;
  for (const s of out) {
    s.ratioToHaproxy = hap && s.requestsPerSec ? round(s.requestsPerSec.median / hap, 3) : null;
  }
  return out;
}

function table(summaries: Summary[]): string {
  const header = [
    'target',
    'req/s',
    'p50',
    'p99',
    'errors',
    'CPU/req',
    'peak RSS',
    'idle RSS',
    'heap/req',
    'vs HAProxy',
  ];
  const fmt = (v: Spread | undefined, f: (n: number) => string): string => {
    if (!v) return '-';
    return v.n > 1 && v.min !== v.max ? `${f(v.median)} (${f(v.min)}-${f(v.max)})` : f(v.median);
  };
  const rows = summaries.map((r) => {
    if (r.failed === r.rounds) return [r.target, 'FAILED', '-', '-', '-', '-', '-', '-', '-', '-'];
    return [
      r.flagged > 0 || r.failed > 0 ? `${r.target} !` : r.target,
      fmt(r.requestsPerSec, (n) => Math.round(n).toLocaleString('en-US')),
      fmt(r.p50Ms, fmtMs),
      fmt(r.p99Ms, fmtMs),
      String(r.errors),
      fmt(r.cpuUsPerRequest, (n) => `${n.toFixed(1)} us`),
      fmt(r.peakRssMb, (n) => `${n.toFixed(0)} MB`),
      `${fmt(r.idleRssStartMb, (n) => n.toFixed(0))} / ${fmt(r.idleRssAfterMb, (n) => `${n.toFixed(0)} MB`)}`,
      fmt(r.heapBytesPerRequest, (n) => `${Math.round(n)} B`),
      r.ratioToHaproxy === null || r.ratioToHaproxy === undefined ? '-' : `${r.ratioToHaproxy.toFixed(2)}x`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (e) {
    console.error(`bench: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const wrk = findBinary('wrk');
  if (!wrk) {
    console.error('bench: wrk not found (apt-get install wrk)');
    return 2;
  }
  const backendScript = BACKEND_JS;
  if (!fs.existsSync(backendScript)) {
    console.error(`bench: ${backendScript} not found (build bench/ first)`);
    return 2;
  }
  const root = findRoot(here);
  const fulcrumCli = [
    opts.fulcrumCli ? path.resolve(opts.fulcrumCli) : undefined,
    path.join(here, '..', 'src', 'cli', 'main.js'),
    FULCRUM_CLI,
  ].find((p): p is string => p !== undefined && fs.existsSync(p));
  if (opts.fulcrumCli && fulcrumCli !== path.resolve(opts.fulcrumCli)) {
    console.error(`bench: --fulcrum-cli ${opts.fulcrumCli} not found`);
    return 2;
  }

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-'));
  // nginx workers run as `nobody` when started by root: let them traverse into the temp paths.
  fs.chmodSync(tmp, 0o755);
  if (!opts.keepTmp) tmpToRemove = tmp;

  let baselineCli: string | undefined;
  if (opts.baseline !== undefined) {
    baselineCli = path.resolve(opts.baseline);
    if (!fs.existsSync(baselineCli)) {
      console.error(`bench: --baseline ${opts.baseline} not found`);
      return 2;
    }
  }
  if (opts.pin) {
    tasksetBin = findBinary('taskset');
    if (!tasksetBin || os.cpus().length < 2) {
      console.error('bench: --pin needs taskset (util-linux) and at least 2 CPUs');
      return 2;
    }
    // The harness itself (RSS polling, wrk output parsing) stays off the proxy's core.
    spawnSync(tasksetBin, ['-a', '-p', '-c', String(LOAD_CORE), String(process.pid)], { stdio: 'ignore' });
  }
  const heapProbe = path.join(here, 'heapProbe.js');
  const haproxy = findBinary('haproxy');
  const nginx = findBinary('nginx');
  const env = {
    node: process.version,
    wrk: versionOf(wrk, ['-v']),
    haproxy: haproxy ? versionOf(haproxy, ['-v']) : null,
    nginx: nginx ? versionOf(nginx, ['-v']) : null,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '',
    loadavg: os.loadavg().map((l) => round(l, 2)),
    platform: `${os.type()} ${os.release()}`,
  };
  log(`tmp dir ${tmp}; ${env.cpus} CPUs; load average ${env.loadavg.join(' ')}`);
  if (env.loadavg[0]! > env.cpus * 0.5) {
    log(`WARNING: 1-min load average ${env.loadavg[0]} on ${env.cpus} CPUs: other work may skew the figures`);
  }

  const backends: Proc[] = [];
  const results: TargetResult[] = [];
  let harnessError: string | undefined;
  try {
    const backendPorts: number[] = [];
    for (let i = 0; i < opts.backends; i++) {
      const port = await freePort();
      const id = `b${i + 1}`;
      const backendArgs = [backendScript, '--port', String(port), '--id', id];
      if (opts.bodySize !== undefined) backendArgs.push('--size', String(opts.bodySize));
      const proc = startProc(
        `backend ${id}`,
        ...onCore(opts.pin ? LOAD_CORE : undefined, process.execPath, backendArgs),
        path.join(tmp, `backend-${id}.log`),
      );
      backends.push(proc);
      backendPorts.push(port);
    }
    for (let i = 0; i < backends.length; i++) await waitForPort(backendPorts[i]!, backends[i]!);
    log(`backends on ${backendPorts.map((p) => `${HOST}:${p}`).join(', ')}`);

    const ctx: Ctx = {
      opts,
      tmp,
      root,
      backendPorts,
      fulcrumCli,
      baselineCli,
      heapProbe: fs.existsSync(heapProbe) ? heapProbe : undefined,
      starts: 0,
      haproxy,
      nginx,
    };
    for (let round = 1; round <= opts.repeat; round++) {
      for (const name of opts.targets) {
        if (opts.repeat > 1) log(`round ${round}/${opts.repeat}`);
        const r = await runTarget(name, ctx, wrk);
        r.round = round;
        results.push(r);
        for (const b of backends) {
          if (b.exitCode !== undefined) throw new Error(`${b.name} died:\n${tail(b.logFile)}`);
        }
        await sleep(500);
      }
    }
  } catch (e) {
    harnessError = (e as Error).message;
    log(`harness failure: ${harnessError}`);
  } finally {
    for (const b of backends) await stopProc(b, 3000);
  }

  const summaries = summarize(results, opts.targets);
  const hap = results.find((r) => r.target === 'haproxy' && r.status === 'ok');
  for (const r of results) {
    r.ratioToHaproxy =
      hap?.requestsPerSec && r.requestsPerSec !== undefined
        ? round(r.requestsPerSec / hap.requestsPerSec, 3)
        : null;
  }

  const doc = {
    kind: 'fulcrum-http-bench',
    date: new Date().toISOString(),
    options: {
      targets: opts.targets,
      durationS: opts.duration,
      warmupS: opts.warmup,
      connections: opts.connections,
      threads: opts.threads,
      backends: opts.backends,
      cpuProf: opts.cpuProf,
      pin: opts.pin,
      baseline: opts.baseline ?? null,
      repeat: opts.repeat,
      nodeArgs: opts.nodeArgs,
      baselineNodeArgs: opts.baselineNodeArgs,
      bodySize: opts.bodySize ?? 25,
      mode: opts.mode,
    },
    environment: env,
    summaries,
    results,
    harnessError: harnessError ?? null,
  };
  const outDir = path.join(root, 'test-output', 'bench');
  fs.mkdirSync(outDir, { recursive: true });
  const outFile = path.join(outDir, `http-${doc.date.replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(outFile, `${JSON.stringify(doc, null, 2)}\n`);

  if (opts.json) {
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  } else {
    const out: string[] = [];
    out.push(
      `${opts.mode === 'tcp' ? 'L4 (tcp mode)' : 'HTTP'} proxy comparison: wrk -t${opts.threads} -c${opts.connections} -d${opts.duration}s --latency (keep-alive),` +
        ` ${opts.warmup}s warm-up, ${opts.backends} node:http backends, ${env.cpus} CPUs, node ${env.node}`,
    );
    out.push('');
    out.push(table(summaries));
    const notes = results.flatMap((r) => [
      ...(r.status === 'failed' ? [`${r.target}: FAILED: ${r.failure}`] : []),
      ...r.flags.map((f) => `${r.target}: ${f}`),
    ]);
    if (notes.length > 0) {
      out.push('');
      out.push('Flags (a flagged row is not a clean measurement):');
      for (const n of notes) out.push(`  ! ${n}`);
    }
    out.push('');
    out.push('peak RSS = VmHWM of the proxy process tree (nginx: master + worker); direct has no proxy.');
    out.push('CPU/req = user+system CPU time of the proxy process tree per request during the measured run.');
    out.push('idle RSS = before any load / 2 s after the measured run; heap/req = V8 heap bytes allocated');
    out.push(
      '  per request over the measured run (Fulcrum: bench/heapProbe.ts; Buffer backing stores not counted).',
    );
    if (opts.repeat > 1) out.push(`${opts.repeat} interleaved rounds: median (min-max).`);
    if (opts.pin) out.push('pinned: proxy alone on core 0; wrk, backends and harness on core 1.');
    out.push(`JSON: ${path.relative(process.cwd(), outFile) || outFile}`);
    if (opts.cpuProf && opts.targets.includes('fulcrum')) {
      out.push(`CPU profile: ${path.join(root, 'test-output', 'prof')}/*.cpuprofile`);
    }
    process.stdout.write(`${out.join('\n')}\n`);
  }

  if (opts.keepTmp) log(`kept ${tmp}`);

  if (harnessError) return 1;
  return results.some((r) => r.status === 'failed') ? 1 : 0;
}

runHarness(main, { tmp: () => tmpToRemove, extraPids: () => wrkPids });
