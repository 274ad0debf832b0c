/**
 * Comparison of L4 (TCP) forwarding on this machine: connections per second and throughput
 * (MiB/s, each direction) straight to a backend, through Fulcrum (`protocol: tcp`) and through
 * HAProxy (`mode tcp`), with ratios to direct.
 *
 * Method: interleaved rounds, as in bench/session.ts. On a small shared machine the direct figures
 * alone drift 2–3× from one minute to the next, so measuring each target in one block and dividing
 * by a direct figure taken minutes earlier says little. Instead every target runs all the time
 * (idle ones cost nothing) and each round measures, per mode, every target in turn, rotating which
 * goes first, so slow drifts hit all targets alike. A ratio is taken within one round (target ÷
 * direct, same round and mode); the table shows the median over rounds of the figures and of the
 * ratios, with the ratios' min–max over rounds.
 *
 * Processes (this file runs in three roles):
 *   backend  one process listening on two ports; per connection, the client's first byte picks
 *            the behaviour: 'E' echo one byte and close (server closes first, so no client-side
 *            TIME_WAIT), 'D' send 64 KiB chunks until the client leaves, 'U' read and discard
 *   client   the load generator (a separate process, one per measurement): `--mode
 *            cps|download|upload`, N concurrent connections for the warm-up plus the measured
 *            seconds; prints one JSON line
 *   harness  (default) starts the backend and every proxy target once, waits for their ports,
 *            probes every target and mode once (a target failing its probe is reported FAILED, the
 *            others go on), runs the rounds, reads each proxy's peak RSS, then stops every process
 *            by PID (also on error or SIGINT/SIGTERM, through runHarness). Prints a table; writes
 *            JSON (every round's raw figures and the medians) under test-output/bench/.
 *
 *   direct   client → backend port 1 (the ceiling)
 *   fulcrum  node <out>/src/cli/main.js start -c fulcrum.yaml (round robin over both ports)
 *   haproxy  mode tcp, nbthread 1, round robin over both ports, default settings (no splice)
 *
 * Exit code: 0 when every target was measured, 1 when one could not be run, 2 on bad usage.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  FULCRUM_CLI,
  findBinary,
  findRoot,
  freePort,
  HOST,
  log,
  type Proc,
  runHarness,
  sleep,
  startProc,
  stopProc,
  tail,
  waitForPort,
} from './processes.js';

/** Removed on exit, also when interrupted, unless --keep-tmp. */
let tmpToRemove: string | undefined;
/** Load-generator processes still running, killed by PID if the harness is interrupted. */
const clientPids = new Set<number>();

const ALL_TARGETS = ['direct', 'fulcrum', 'haproxy'] as const;
type TargetName = (typeof ALL_TARGETS)[number];
const ALL_MODES = ['cps', 'download', 'upload'] as const;
type Mode = (typeof ALL_MODES)[number];

const CHUNK = 64 * 1024;
/** Pause after each measurement: TIME_WAIT and socket buffers settle. */
const SETTLE_MS = 500;
const here = path.dirname(fileURLToPath(import.meta.url));
const self = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------------------------------------
// Role: backend

function runBackend(ports: number[]): void {
  const payload = Buffer.alloc(CHUNK, 0x61);
  for (const port of ports) {
    const server = net.createServer({ noDelay: true }, (socket) => {
      socket.on('error', () => {});
      let mode = 0;
      socket.on('data', (chunk: Buffer) => {
        if (mode !== 0) return; // 'U': discard
        mode = chunk[0]!;
        if (mode === 0x45 /* E */) {
          socket.end('e');
        } else if (mode === 0x44 /* D */) {
          const pump = (): void => {
            while (!socket.destroyed && socket.write(payload)) {}
          };
          socket.on('drain', pump);
          pump();
        }
      });
    });
    server.on('error', (err) => {
      console.error(`backend: ${err.message}`);
      process.exit(1);
    });
    server.listen(port, HOST);
  }
  process.on('SIGTERM', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------
// Role: client (load generator)

interface ClientResult {
  mode: Mode;
  /** cps: completed connections; download/upload: bytes. */
  count: number;
  seconds: number;
  errors: number;
}

async function runClient(
  mode: Mode,
  port: number,
  connections: number,
  warmupS: number,
  durationS: number,
): Promise<void> {
  let count = 0;
  let errors = 0;
  let stopped = false;
  let base = 0;
  let startedAt = 0;
  const sockets = new Set<net.Socket>();

  if (mode === 'cps') {
    const loop = async (): Promise<void> => {
      while (!stopped) {
        const ok = await new Promise<boolean>((resolve) => {
          const s = net.connect({ host: HOST, port, noDelay: true });
          let got = false;
          s.on('connect', () => s.write('E'));
          s.on('data', () => {
            got = true;
          });
          s.on('end', () => {
            s.destroy();
            resolve(got);
          });
          s.on('error', () => {
            s.destroy();
            resolve(false);
          });
        });
        if (ok) count++;
        else {
          errors++;
          await sleep(10);
        }
      }
    };
    const loops = Array.from({ length: connections }, loop);
    await sleep(warmupS * 1000);
    base = count;
    errors = 0;
    startedAt = performance.now();
    await sleep(durationS * 1000);
    const seconds = (performance.now() - startedAt) / 1000;
    const result = count - base;
    stopped = true;
    await Promise.all(loops);
    print({ mode, count: result, seconds, errors });
    return;
  }

  // Throughput: long-lived connections.
  const chunk = Buffer.alloc(CHUNK, 0x62);
  let bytes = 0;
  for (let i = 0; i < connections; i++) {
    const readBuf = Buffer.allocUnsafe(CHUNK);
    const s = net.connect({
      host: HOST,
      port,
      noDelay: true,
      // A static read buffer: the generator allocates nothing per chunk.
      onread: {
        buffer: readBuf,
        callback: (n: number) => {
          bytes += n;
          return true;
        },
      },
    });
    sockets.add(s);
    s.on('error', () => {
      errors++;
    });
    s.on('connect', () => {
      s.write(mode === 'download' ? 'D' : 'U');
      if (mode === 'upload') {
        const pump = (): void => {
          while (!s.destroyed && s.write(chunk)) {}
        };
        s.on('drain', pump);
        pump();
      }
    });
  }
  const total = (): number => {
    if (mode === 'download') return bytes;
    let n = 0;
    for (const s of sockets) n += s.bytesWritten - s.writableLength;
    return n;
  };
  await sleep(warmupS * 1000);
  base = total();
  errors = 0;
  startedAt = performance.now();
  await sleep(durationS * 1000);
  const seconds = (performance.now() - startedAt) / 1000;
  const result = total() - base;
  for (const s of sockets) s.destroy();
  print({ mode, count: result, seconds, errors });
}

function print(r: ClientResult): void {
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

// ---------------------------------------------------------------------------------------------
// Harness

interface Options {
  targets: TargetName[];
  modes: Mode[];
  rounds: number;
  duration: number;
  warmup: number;
  connections: number;
  cpsConnections: number;
  keepTmp: boolean;
  json: boolean;
  fulcrumCli: string | undefined;
  /** Proxies alone on core 0; the backend, the load generator and the harness on core 1. */
  pin: boolean;
}

/** taskset, when --pin. */
let tasksetBin: string | undefined;
const PROXY_CORE = 0;
const LOAD_CORE = 1;
/** `[cmd, args]` run on one CPU core with taskset when pinning, else unchanged. */
function onCore(core: number, cmd: string, args: string[]): [string, string[]] {
  return tasksetBin ? [tasksetBin, ['-c', String(core), cmd, ...args]] : [cmd, args];
}

/** CPU time (user + system) of one process, in clock ticks (USER_HZ, 100 on Linux). */
function cpuTicks(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return undefined;
  }
}

const USAGE = `Usage: node <out>/bench/tcp.js [options]
All targets run at once; each round measures, per mode, every target in turn (the first one
rotates each round). Figures are medians over rounds; ratios to direct are taken per round
(same round and mode), then their median, with the min–max over rounds.
  --targets LIST         comma list of ${ALL_TARGETS.join(',')} (default: all, in that order)
  --modes LIST           comma list of ${ALL_MODES.join(',')} (default: all)
  --rounds R             rounds (default 5)
  --duration S           measured seconds per target, mode and round (default 2)
  --warmup S             unmeasured seconds before each measurement (default 0.5)
  --connections N        concurrent connections for download/upload (default 4)
  --cps-connections N    concurrent connect-exchange-close loops for cps (default 32)
  --fulcrum-cli PATH     Fulcrum CLI (default: ../src/cli/main.js next to this file, else dist/)
  --pin                  proxies alone on core 0; backend, load generator, harness on core 1
  --keep-tmp             keep the generated configs and logs
  --json                 print the JSON result instead of the table
  -h, --help             this help
Run time is about rounds × modes × targets × (warmup + duration + ${SETTLE_MS / 1000} s).`;

class UsageError extends Error {}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      targets: { type: 'string' },
      modes: { type: 'string' },
      rounds: { type: 'string', default: '5' },
      duration: { type: 'string', default: '2' },
      warmup: { type: 'string', default: '0.5' },
      connections: { type: 'string', default: '4' },
      'cps-connections': { type: 'string', default: '32' },
      'fulcrum-cli': { type: 'string' },
      pin: { type: 'boolean', default: false },
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
  const list = <T extends string>(name: string, raw: string | undefined, all: readonly T[]): T[] => {
    const out: T[] = [];
    for (const t of (raw ?? all.join(',')).split(',')) {
      const v = t.trim();
      if (v === '') continue;
      if (!(all as readonly string[]).includes(v))
        throw new UsageError(`unknown ${name} "${v}" (known: ${all.join(', ')})`);
      if (!out.includes(v as T)) out.push(v as T);
    }
    if (out.length === 0) throw new UsageError(`--${name}s is empty`);
    return out;
  };
  return {
    targets: list('target', values.targets, ALL_TARGETS),
    modes: list('mode', values.modes, ALL_MODES),
    rounds: Math.floor(num('rounds', values.rounds, 1)),
    duration: num('duration', values.duration, 0.2),
    warmup: num('warmup', values.warmup, 0),
    connections: Math.floor(num('connections', values.connections, 1)),
    cpsConnections: Math.floor(num('cps-connections', values['cps-connections'], 1)),
    keepTmp: values['keep-tmp'] ?? false,
    json: values.json ?? false,
    fulcrumCli: values['fulcrum-cli'],
    pin: values.pin ?? false,
  };
}

function peakRssKb(pid: number): number | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    return hwm ? Number(hwm[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Runs the load generator as a child process; resolves with its JSON line. */
function runClientProc(
  mode: Mode,
  port: number,
  connections: number,
  warmup: number,
  duration: number,
): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const args = [self, '--role', 'client', '--mode', mode, '--port', String(port)];
    args.push(
      '--connections',
      String(connections),
      '--warmup',
      String(warmup),
      '--duration',
      String(duration),
    );
    const [cmd, cmdArgs] = tasksetBin ? onCore(LOAD_CORE, process.execPath, args) : [process.execPath, args];
    const child = spawn(cmd, cmdArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    const pid = child.pid;
    if (pid !== undefined) clientPids.add(pid);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), (warmup + duration + 30) * 1000);
    const fail = (msg: string): void => reject(new Error(`client (${mode}) failed: ${msg}\n${err}`));
    child.on('error', (e) => {
      clearTimeout(timer);
      if (pid !== undefined) clientPids.delete(pid);
      fail(e.message);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (pid !== undefined) clientPids.delete(pid);
      const line = out.trim().split('\n').pop() ?? '';
      try {
        if (code !== 0) throw new Error(`exit code ${code}`);
        resolve(JSON.parse(line) as ClientResult);
      } catch (e) {
        fail((e as Error).message);
      }
    });
  });
}

function fulcrumYaml(port: number, backends: number[]): string {
  return `listeners:
  - { name: tcp, protocol: tcp, listen: "${HOST}:${port}", pool: b, timeouts: { idle: 60s } }
pools:
  - name: b
    algorithm: round-robin
    servers:
${backends.map((p, i) => `      - { address: "${HOST}:${p}", name: b${i + 1} }`).join('\n')}
`;
}

function haproxyCfg(port: number, backends: number[]): string {
  return `global
  nbthread 1
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind ${HOST}:${port}
  default_backend b
backend b
  balance roundrobin
${backends.map((p, i) => `  server b${i + 1} ${HOST}:${p}`).join('\n')}
`;
}

/** One target, started once for the whole run. */
interface Target {
  name: TargetName;
  port: number;
  proc: Proc | undefined;
  describe: string;
  ok: boolean;
  error?: string;
  peakRssMb?: number;
}

interface Ctx {
  tmp: string;
  backendPorts: number[];
  fulcrumCli: string | undefined;
  haproxy: string | undefined;
}

/** Starts the target's process, if it has one (does not wait for its port). */
async function startTarget(name: TargetName, ctx: Ctx): Promise<Target> {
  const t: Target = {
    name,
    port: ctx.backendPorts[0]!,
    proc: undefined,
    describe: `client → backend ${HOST}:${ctx.backendPorts[0]}`,
    ok: true,
  };
  const dir = path.join(ctx.tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  try {
    if (name === 'fulcrum') {
      t.describe = 'fulcrum start -c fulcrum.yaml (protocol: tcp, round-robin)';
      if (!ctx.fulcrumCli)
        throw new Error('Fulcrum CLI not found (dist/src/cli/main.js): build first, or pass --fulcrum-cli');
      t.port = await freePort();
      const cfg = path.join(dir, 'fulcrum.yaml');
      fs.writeFileSync(cfg, fulcrumYaml(t.port, ctx.backendPorts));
      t.proc = startProc(
        name,
        ...onCore(PROXY_CORE, process.execPath, [ctx.fulcrumCli, 'start', '-c', cfg]),
        path.join(dir, 'fulcrum.log'),
        { env: { ...process.env, FULCRUM_LOG_LEVEL: 'warn' } },
      );
    } else if (name === 'haproxy') {
      t.describe = 'haproxy -f haproxy.cfg -db (mode tcp, nbthread 1)';
      if (!ctx.haproxy) throw new Error('haproxy not installed (apt-get install haproxy)');
      t.port = await freePort();
      const cfg = path.join(dir, 'haproxy.cfg');
      fs.writeFileSync(cfg, haproxyCfg(t.port, ctx.backendPorts));
      const check = spawnSync(ctx.haproxy, ['-c', '-f', cfg], { encoding: 'utf8', timeout: 10_000 });
      if (check.status !== 0)
        throw new Error(`haproxy -c rejected the config:\n${check.stdout}${check.stderr}`);
      t.proc = startProc(
        name,
        ...onCore(PROXY_CORE, ctx.haproxy, ['-f', cfg, '-db']),
        path.join(dir, 'haproxy.log'),
      );
    }
  } catch (err) {
    t.ok = false;
    t.error = (err as Error).message;
  }
  return t;
}

/** Waits for the target's port, then runs every mode once through it; on failure marks it FAILED. */
async function probeTarget(t: Target, modes: Mode[]): Promise<void> {
  if (!t.ok) return;
  try {
    if (t.proc) await waitForPort(t.port, t.proc);
    for (const mode of modes) {
      const r = await runClientProc(mode, t.port, 1, 0, 0.3);
      if (r.count === 0) throw new Error(`probe: ${mode} moved nothing through ${t.name}`);
    }
  } catch (err) {
    t.ok = false;
    t.error = (err as Error).message;
  }
}

/** One measurement: one target, one mode, one round. `value` is conn/s or MiB/s. */
interface Measurement {
  target: TargetName;
  /** 0: measured first in its round and mode. */
  position: number;
  value: number | null;
  count?: number;
  seconds?: number;
  errors?: number;
  error?: string;
  /**
   * Proxy CPU µs per connection (cps) or per MiB (download/upload), over the client's whole run
   * (warm-up included, so the count is scaled from the measured rate to the whole run).
   */
  cpuUs?: number;
}

interface RoundMode {
  round: number;
  mode: Mode;
  measurements: Measurement[];
}

function toValue(mode: Mode, r: ClientResult): number {
  return mode === 'cps' ? r.count / r.seconds : r.count / r.seconds / (1024 * 1024);
}

interface Spread {
  median: number;
  min: number;
  max: number;
}

interface ModeStats extends Spread {
  /** Per round, in round order; null where the measurement failed. */
  values: (number | null)[];
  /** Per round target ÷ direct (same round and mode); absent for direct or without direct. */
  ratioToDirect?: Spread & { perRound: (number | null)[] };
  /** Connection errors summed over rounds (the client's count, excluding warm-up). */
  errors: number;
  failedRounds: number;
  /** Median proxy CPU µs per connection (cps) or per MiB over rounds, when measured. */
  cpuUs?: number;
}

interface TargetResult {
  target: TargetName;
  ok: boolean;
  error?: string;
  describe: string;
  /** Medians over rounds, as the sequential version reported them. */
  cps?: number;
  downloadMiBs?: number;
  uploadMiBs?: number;
  peakRssMb?: number;
  stats: Partial<Record<Mode, ModeStats>>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function spread(xs: number[]): Spread | undefined {
  if (xs.length === 0) return undefined;
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

function summarize(targets: Target[], rounds: RoundMode[], modes: Mode[]): TargetResult[] {
  const hasDirect = targets.some((t) => t.name === 'direct' && t.ok);
  return targets.map((t) => {
    const result: Omit<TargetResult, 'stats'> = { target: t.name, ok: t.ok, describe: t.describe };
    if (t.error !== undefined) result.error = t.error;
    if (t.peakRssMb !== undefined) result.peakRssMb = t.peakRssMb;
    const stats: Partial<Record<Mode, ModeStats>> = {};
    for (const mode of modes) {
      const values: (number | null)[] = [];
      const ratios: (number | null)[] = [];
      let errors = 0;
      let failedRounds = 0;
      for (const rm of rounds.filter((x) => x.mode === mode)) {
        const m = rm.measurements.find((x) => x.target === t.name);
        const d = rm.measurements.find((x) => x.target === 'direct');
        const v = m?.value ?? null;
        values.push(v);
        if (m && v === null) failedRounds++;
        errors += m?.errors ?? 0;
        ratios.push(v !== null && d?.value ? v / d.value : null);
      }
      const s = spread(values.filter((v): v is number => v !== null));
      if (!s) continue;
      const ms: ModeStats = { ...s, values, errors, failedRounds };
      const cpu = spread(
        rounds
          .filter((x) => x.mode === mode)
          .map((rm) => rm.measurements.find((x) => x.target === t.name)?.cpuUs)
          .filter((v): v is number => v !== undefined),
      );
      if (cpu) ms.cpuUs = Math.round(cpu.median * 10) / 10;
      const r = spread(ratios.filter((v): v is number => v !== null));
      if (hasDirect && t.name !== 'direct' && r) ms.ratioToDirect = { ...r, perRound: ratios };
      stats[mode] = ms;
      if (mode === 'cps') result.cps = s.median;
      else if (mode === 'download') result.downloadMiBs = s.median;
      else result.uploadMiBs = s.median;
    }
    return { ...result, stats }; // stats last, so the medians come first in the JSON
  });
}

function fmt(n: number | undefined, digits = 0): string {
  return n === undefined ? '-' : n.toFixed(digits);
}

const pct = (x: number): string => `${Math.round(100 * x)}%`;

function printTable(results: TargetResult[], opts: Options, runSeconds: number): void {
  const titles: Record<Mode, string> = { cps: 'conn/s', download: 'download MiB/s', upload: 'upload MiB/s' };
  const modes = ALL_MODES.filter((m) => opts.modes.includes(m));
  // A cell is [median, ratio, range, errors], aligned part by part within its column.
  type Cell = [string, string, string, string];
  const cellOf = (s: ModeStats | undefined): Cell => {
    if (!s) return ['-', '', '', ''];
    const notes = [
      s.errors ? `${s.errors} errors` : '',
      s.failedRounds ? `${s.failedRounds} rounds failed` : '',
    ];
    const err = notes.filter(Boolean).join(', ');
    const errCell = err ? ` [${err}]` : '';
    const q = s.ratioToDirect;
    if (q) return [fmt(s.median), pct(q.median), `(${pct(q.min).slice(0, -1)}–${pct(q.max)})`, errCell];
    // Direct (or nothing to compare with): the figure's own min–max over rounds.
    return [fmt(s.median), '', `(${fmt(s.min)}–${fmt(s.max)})`, errCell];
  };
  const cells = new Map(results.filter((r) => r.ok).map((r) => [r, modes.map((m) => cellOf(r.stats[m]))]));
  const partWidth = (col: number, part: number): number =>
    Math.max(0, ...[...cells.values()].map((row) => row[col]![part]!.length));
  const render = ([m, q, range, e]: Cell, col: number): string => {
    const ratio = partWidth(col, 1) > 0 ? ` ${q.padStart(partWidth(col, 1))}` : '';
    return `${m.padStart(partWidth(col, 0))}${ratio} ${range.padEnd(partWidth(col, 2))}${e}`.trimEnd();
  };
  const header = ['target', ...modes.map((m) => titles[m]), 'peak RSS MB'];
  const rows = results.map((r) => {
    const row = cells.get(r);
    if (!row) return [r.target, `FAILED: ${r.error?.split('\n')[0]}`];
    return [r.target, ...row.map(render), r.peakRssMb === undefined ? '-' : fmt(r.peakRssMb, 1)];
  });
  // A FAILED row's message runs across the columns, so it does not set their widths.
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.filter((row) => row.length === header.length).map((row) => row[i]!.length)),
  );
  for (const row of [header, widths.map((w) => '-'.repeat(w)), ...rows]) {
    console.log(
      row
        .map((c, j) => c.padEnd(widths[j]!))
        .join('   ')
        .trimEnd(),
    );
  }
  const m = Math.floor(runSeconds / 60);
  const s = Math.round(runSeconds - 60 * m);
  console.log(
    [
      '',
      `${opts.rounds} rounds; per round, mode and target: ${opts.warmup} s warm-up + ${opts.duration} s measured;`,
      'targets interleaved, the first one rotating each round. Figures: medians over rounds.',
      'Percentages: median over rounds of target ÷ direct in the same round and mode, (min–max) over',
      'rounds; direct shows its own (min–max). Throughput with ' +
        `${opts.connections} connections, conn/s with ${opts.cpsConnections}`,
      `connect-exchange-close loops; ${os.cpus().length} CPUs shared by the load generator, the proxy and ` +
        'the backend.',
      `Peak RSS read at the end. Run time ${m} min ${String(s).padStart(2, '0')} s.`,
    ].join('\n'),
  );
}

async function harness(argv: string[]): Promise<number> {
  const startedAt = performance.now();
  let opts: Options;
  try {
    opts = parseOptions(argv);
  } catch (err) {
    console.error(`bench: ${(err as Error).message}\n${USAGE}`);
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
  if (opts.pin) {
    tasksetBin = findBinary('taskset');
    if (!tasksetBin || os.cpus().length < 2) {
      console.error('bench: --pin needs taskset (util-linux) and at least 2 CPUs');
      return 2;
    }
    spawnSync(tasksetBin, ['-a', '-p', '-c', String(LOAD_CORE), String(process.pid)], { stdio: 'ignore' });
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-tcp-'));
  if (!opts.keepTmp) tmpToRemove = tmp;
  else log(`configs and logs in ${tmp}`);

  const backendPorts = [await freePort(), await freePort()];
  const ctx: Ctx = { tmp, backendPorts, fulcrumCli, haproxy: findBinary('haproxy') };
  const backendCmd = [self, '--role', 'backend', '--ports', backendPorts.join(',')];
  const backend = startProc(
    'backend',
    ...(tasksetBin
      ? onCore(LOAD_CORE, process.execPath, backendCmd)
      : ([process.execPath, backendCmd] as const)),
    path.join(tmp, 'backend.log'),
  );
  const targets: Target[] = [];
  const rounds: RoundMode[] = [];
  try {
    await waitForPort(backendPorts[0]!, backend);
    await waitForPort(backendPorts[1]!, backend);
    // Every target up at once, then each probed once.
    for (const name of opts.targets) targets.push(await startTarget(name, ctx));
    for (const t of targets) {
      await probeTarget(t, opts.modes);
      if (!t.ok) {
        log(`${t.name}: FAILED: ${t.error}`);
        if (t.proc) await stopProc(t.proc);
      }
    }
    const live = targets.filter((t) => t.ok);
    const per = opts.warmup + opts.duration + SETTLE_MS / 1000;
    log(
      `${live.map((t) => t.name).join(', ') || 'no target'} up; ${opts.rounds} rounds × ` +
        `${opts.modes.length} modes × ${live.length} targets × ~${per}s ≈ ` +
        `${Math.round(opts.rounds * opts.modes.length * live.length * per)}s`,
    );
    for (let round = 0; round < opts.rounds && live.length > 0; round++) {
      for (const mode of opts.modes) {
        const conns = mode === 'cps' ? opts.cpsConnections : opts.connections;
        const rm: RoundMode = { round: round + 1, mode, measurements: [] };
        rounds.push(rm);
        // Rotate who goes first, so no target always follows the same one.
        const order = live.map((_, k) => live[(round + k) % live.length]!);
        for (const [position, t] of order.entries()) {
          if (!t.ok) continue;
          const m: Measurement = { target: t.name, position, value: null };
          rm.measurements.push(m);
          try {
            const cpu0 = t.proc ? cpuTicks(t.proc.pid) : undefined;
            const r = await runClientProc(mode, t.port, conns, opts.warmup, opts.duration);
            const cpu1 = t.proc ? cpuTicks(t.proc.pid) : undefined;
            m.value = toValue(mode, r);
            if (cpu0 !== undefined && cpu1 !== undefined && m.value && r.seconds > 0) {
              const units = m.value * (opts.warmup + opts.duration);
              m.cpuUs = Math.round(((cpu1 - cpu0) * 10_000 * 10) / units) / 10;
            }
            m.count = r.count;
            m.seconds = r.seconds;
            m.errors = r.errors;
          } catch (err) {
            m.error = (err as Error).message;
          }
          if (t.proc && t.proc.exitCode !== undefined) {
            t.ok = false;
            t.error = `exited (code ${t.proc.exitCode}) in round ${round + 1}, ${mode}:\n${tail(t.proc.logFile)}`;
            log(`${t.name}: ${t.error}`);
          }
          await sleep(SETTLE_MS);
        }
        const unit = mode === 'cps' ? 'conn/s' : 'MiB/s';
        log(
          `round ${round + 1}/${opts.rounds} ${mode}: ` +
            rm.measurements
              .map(
                (x) =>
                  `${x.target} ${x.value === null ? `failed (${x.error?.split('\n')[0]})` : fmt(x.value)}`,
              )
              .join(', ') +
            ` ${unit}`,
        );
      }
    }
    for (const t of targets) {
      if (t.proc && t.ok) {
        const kb = peakRssKb(t.proc.pid);
        if (kb !== undefined) t.peakRssMb = kb / 1024;
      }
    }
  } finally {
    for (const t of targets) if (t.proc) await stopProc(t.proc);
    await stopProc(backend);
  }

  const results = summarize(targets, rounds, opts.modes);
  const runSeconds = (performance.now() - startedAt) / 1000;
  const doc = {
    benchmark: 'tcp',
    method: 'interleaved rounds',
    date: new Date().toISOString(),
    runSeconds,
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
    options: opts,
    units: { cps: 'conn/s', download: 'MiB/s', upload: 'MiB/s' },
    results,
    rounds,
  };
  const outDir = path.join(root, 'test-output', 'bench');
  fs.mkdirSync(outDir, { recursive: true });
  const outFile = path.join(outDir, `tcp-${doc.date.replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(outFile, `${JSON.stringify(doc, null, 2)}\n`);
  if (opts.json) console.log(JSON.stringify(doc, null, 2));
  else {
    printTable(results, opts, runSeconds);
    for (const r of results) {
      const parts = opts.modes
        .map((m) => (r.stats[m]?.cpuUs === undefined ? '' : `${m} ${r.stats[m]?.cpuUs} us`))
        .filter(Boolean);
      if (parts.length > 0) console.log(`${r.target} CPU per conn (cps) / per MiB: ${parts.join(', ')}`);
    }
    console.log(`JSON: ${path.relative(process.cwd(), outFile)}`);
  }
  return results.every((r) => r.ok) ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------

const roleIndex = process.argv.indexOf('--role');
const role = roleIndex >= 0 ? process.argv[roleIndex + 1] : 'harness';
if (role === 'backend') {
  const ports = (process.argv[process.argv.indexOf('--ports') + 1] ?? '').split(',').map(Number);
  runBackend(ports);
} else if (role === 'client') {
  const arg = (name: string): string => process.argv[process.argv.indexOf(`--${name}`) + 1] ?? '';
  runClient(
    arg('mode') as Mode,
    Number(arg('port')),
    Number(arg('connections')),
    Number(arg('warmup')),
    Number(arg('duration')),
  ).then(
    () => process.exit(0),
    (err: Error) => {
      console.error(err.message);
      process.exit(1);
    },
  );
} else {
  // Exit as soon as the harness is done (runHarness has set the exit code by then): stopProc's
  // grace-period timer would otherwise keep the process alive for seconds after the table.
  const main = (): Promise<number> =>
    harness(process.argv.slice(2)).finally(() => setImmediate(() => process.exit()));
  runHarness(main, {
    tmp: () => tmpToRemove,
    extraPids: () => clientPids,
  });
}
