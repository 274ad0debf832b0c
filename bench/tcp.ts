/**
 * One-run comparison of L4 (TCP) forwarding on this machine: connections per second and
 * throughput (MiB/s, each direction) straight to a backend, through Fulcrum (`protocol: tcp`) and
 * through HAProxy (`mode tcp`), with ratios to direct.
 *
 * Processes (this file runs in three roles):
 *   backend  one process listening on two ports; per connection, the client's first byte picks
 *            the behaviour: 'E' echo one byte and close (server closes first, so no client-side
 *            TIME_WAIT), 'D' send 64 KiB chunks until the client leaves, 'U' read and discard
 *   client   the load generator (a separate process): `--mode cps|download|upload`, N concurrent
 *            connections for the warm-up plus the measured seconds; prints one JSON line
 *   harness  (default) starts the backend, then each target in turn: start it, wait for its port,
 *            probe every mode once, run the client per mode, read the proxy's peak RSS, stop it by
 *            PID. Prints a table; writes JSON under test-output/bench/.
 *
 *   direct   client → backend port 1 (the ceiling)
 *   fulcrum  node <dist>/src/cli/main.js start -c fulcrum.yaml (round robin over both ports)
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
  findBinary,
  findRoot,
  freePort,
  HOST,
  killPid,
  log,
  type Proc,
  running,
  sleep,
  startProc,
  stopProc,
  waitForPort,
} from './processes.js';

/** Removed on exit, also when interrupted, unless --keep-tmp. */
let tmpToRemove: string | undefined;

const ALL_TARGETS = ['direct', 'fulcrum', 'haproxy'] as const;
type TargetName = (typeof ALL_TARGETS)[number];
const ALL_MODES = ['cps', 'download', 'upload'] as const;
type Mode = (typeof ALL_MODES)[number];

const CHUNK = 64 * 1024;
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
  duration: number;
  warmup: number;
  connections: number;
  cpsConnections: number;
  keepTmp: boolean;
  json: boolean;
  fulcrumCli: string | undefined;
}

const USAGE = `Usage: node dist/bench/tcp.js [options]
  --targets LIST         comma list of ${ALL_TARGETS.join(',')} (default: all, in that order)
  --modes LIST           comma list of ${ALL_MODES.join(',')} (default: all)
  --duration S           measured seconds per target and mode (default 5)
  --warmup S             unmeasured seconds before each measurement (default 1)
  --connections N        concurrent connections for download/upload (default 4)
  --cps-connections N    concurrent connect-exchange-close loops for cps (default 32)
  --fulcrum-cli PATH     Fulcrum CLI (default: ../src/cli/main.js next to this file, else dist/)
  --keep-tmp             keep the generated configs and logs
  --json                 print the JSON result instead of the table
  -h, --help             this help`;

class UsageError extends Error {}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      targets: { type: 'string' },
      modes: { type: 'string' },
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      connections: { type: 'string', default: '4' },
      'cps-connections': { type: 'string', default: '32' },
      'fulcrum-cli': { type: 'string' },
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
    duration: num('duration', values.duration, 1),
    warmup: num('warmup', values.warmup, 0),
    connections: Math.floor(num('connections', values.connections, 1)),
    cpsConnections: Math.floor(num('cps-connections', values['cps-connections'], 1)),
    keepTmp: values['keep-tmp'] ?? false,
    json: values.json ?? false,
    fulcrumCli: values['fulcrum-cli'],
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
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), (warmup + duration + 30) * 1000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      try {
        if (code !== 0) throw new Error(`exit code ${code}`);
        resolve(JSON.parse(line) as ClientResult);
      } catch (e) {
        reject(new Error(`client (${mode}) failed: ${(e as Error).message}\n${err}`));
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

interface TargetResult {
  target: TargetName;
  ok: boolean;
  error?: string;
  describe?: string;
  cps?: number;
  cpsErrors?: number;
  downloadMiBs?: number;
  uploadMiBs?: number;
  throughputErrors?: number;
  peakRssMb?: number;
}

async function measureTarget(
  name: TargetName,
  opts: Options,
  ctx: { tmp: string; backendPorts: number[]; fulcrumCli?: string; haproxy?: string },
): Promise<TargetResult> {
  let proc: Proc | undefined;
  let port = ctx.backendPorts[0]!;
  let describe = `client → backend 127.0.0.1:${port}`;
  const dir = path.join(ctx.tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  try {
    if (name === 'fulcrum') {
      if (!ctx.fulcrumCli)
        throw new Error('Fulcrum CLI not found (dist/src/cli/main.js): build first, or pass --fulcrum-cli');
      port = await freePort();
      const cfg = path.join(dir, 'fulcrum.yaml');
      fs.writeFileSync(cfg, fulcrumYaml(port, ctx.backendPorts));
      proc = startProc(
        name,
        process.execPath,
        [ctx.fulcrumCli, 'start', '-c', cfg],
        path.join(dir, 'fulcrum.log'),
        { env: { ...process.env, FULCRUM_LOG_LEVEL: 'warn' } },
      );
      describe = 'fulcrum start -c fulcrum.yaml (protocol: tcp, round-robin)';
    } else if (name === 'haproxy') {
      if (!ctx.haproxy) throw new Error('haproxy not installed (apt-get install haproxy)');
      port = await freePort();
      const cfg = path.join(dir, 'haproxy.cfg');
      fs.writeFileSync(cfg, haproxyCfg(port, ctx.backendPorts));
      const check = spawnSync(ctx.haproxy, ['-c', '-f', cfg], { encoding: 'utf8', timeout: 10_000 });
      if (check.status !== 0)
        throw new Error(`haproxy -c rejected the config:\n${check.stdout}${check.stderr}`);
      proc = startProc(name, ctx.haproxy, ['-f', cfg, '-db'], path.join(dir, 'haproxy.log'));
      describe = 'haproxy -f haproxy.cfg -db (mode tcp, nbthread 1)';
    }
    if (proc) await waitForPort(port, proc);
    // Probe: every mode works once through this target.
    for (const mode of opts.modes) {
      const r = await runClientProc(mode, port, 1, 0, 0.3);
      if (r.count === 0) throw new Error(`probe: ${mode} moved nothing through ${name}`);
    }
    const result: TargetResult = { target: name, ok: true, describe };
    for (const mode of opts.modes) {
      const conns = mode === 'cps' ? opts.cpsConnections : opts.connections;
      log(`${name}: ${mode}, ${conns} connections, ${opts.warmup}s warm-up + ${opts.duration}s`);
      const r = await runClientProc(mode, port, conns, opts.warmup, opts.duration);
      if (mode === 'cps') {
        result.cps = r.count / r.seconds;
        result.cpsErrors = r.errors;
      } else {
        const mibs = r.count / r.seconds / (1024 * 1024);
        if (mode === 'download') result.downloadMiBs = mibs;
        else result.uploadMiBs = mibs;
        result.throughputErrors = (result.throughputErrors ?? 0) + r.errors;
      }
      // Let TIME_WAIT and socket buffers settle between modes.
      await sleep(500);
    }
    if (proc) {
      const kb = peakRssKb(proc.pid);
      if (kb !== undefined) result.peakRssMb = kb / 1024;
    }
    return result;
  } catch (err) {
    return { target: name, ok: false, error: (err as Error).message, describe };
  } finally {
    if (proc) await stopProc(proc);
  }
}

function fmt(n: number | undefined, digits = 0): string {
  return n === undefined ? '-' : n.toFixed(digits);
}

function ratio(n: number | undefined, base: number | undefined): string {
  return n === undefined || base === undefined || base === 0 ? '' : ` (${Math.round((100 * n) / base)}%)`;
}

function printTable(results: TargetResult[], opts: Options): void {
  const direct = results.find((r) => r.target === 'direct' && r.ok);
  const rows = [['target', 'conn/s', 'download MiB/s', 'upload MiB/s', 'peak RSS MB']];
  for (const r of results) {
    if (!r.ok) {
      rows.push([r.target, `FAILED: ${r.error?.split('\n')[0]}`, '', '', '']);
      continue;
    }
    const self = r === direct;
    rows.push([
      r.target,
      `${fmt(r.cps)}${self ? '' : ratio(r.cps, direct?.cps)}${r.cpsErrors ? ` [${r.cpsErrors} errors]` : ''}`,
      `${fmt(r.downloadMiBs)}${self ? '' : ratio(r.downloadMiBs, direct?.downloadMiBs)}`,
      `${fmt(r.uploadMiBs)}${self ? '' : ratio(r.uploadMiBs, direct?.uploadMiBs)}${r.throughputErrors ? ` [${r.throughputErrors} errors]` : ''}`,
      r.peakRssMb === undefined ? '-' : fmt(r.peakRssMb, 1),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  for (const [i, row] of rows.entries()) {
    console.log(
      row
        .map((c, j) => c.padEnd(widths[j]!))
        .join('  ')
        .trimEnd(),
    );
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  console.log(
    `\n${opts.duration}s per mode after ${opts.warmup}s warm-up; throughput with ${opts.connections} connections, ` +
      `conn/s with ${opts.cpsConnections} concurrent connect-exchange-close loops; ${os.cpus().length} CPUs shared by ` +
      'the load generator, the proxy and the backend. Percentages are of direct.',
  );
}

async function harness(argv: string[]): Promise<number> {
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
    path.join(root, 'dist', 'src', 'cli', 'main.js'),
  ].find((p): p is string => p !== undefined && fs.existsSync(p));
  if (opts.fulcrumCli && fulcrumCli !== path.resolve(opts.fulcrumCli)) {
    console.error(`bench: --fulcrum-cli ${opts.fulcrumCli} not found`);
    return 2;
  }
  const haproxy = findBinary('haproxy');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-tcp-'));
  if (!opts.keepTmp) tmpToRemove = tmp;

  const backendPorts = [await freePort(), await freePort()];
  const backend = startProc(
    'backend',
    process.execPath,
    [self, '--role', 'backend', '--ports', backendPorts.join(',')],
    path.join(tmp, 'backend.log'),
  );
  const results: TargetResult[] = [];
  try {
    await waitForPort(backendPorts[0]!, backend);
    await waitForPort(backendPorts[1]!, backend);
    const ctx: { tmp: string; backendPorts: number[]; fulcrumCli?: string; haproxy?: string } = {
      tmp,
      backendPorts,
    };
    if (fulcrumCli) ctx.fulcrumCli = fulcrumCli;
    if (haproxy) ctx.haproxy = haproxy;
    for (const t of opts.targets) {
      const r = await measureTarget(t, opts, ctx);
      if (!r.ok) log(`${t}: ${r.error}`);
      results.push(r);
    }
  } finally {
    await stopProc(backend);
  }

  const doc = {
    benchmark: 'tcp',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
    options: opts,
    results,
  };
  const outDir = path.join(root, 'test-output', 'bench');
  fs.mkdirSync(outDir, { recursive: true });
  const outFile = path.join(outDir, `tcp-${doc.date.replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(outFile, `${JSON.stringify(doc, null, 2)}\n`);
  if (opts.json) console.log(JSON.stringify(doc, null, 2));
  else {
    printTable(results, opts);
    console.log(`JSON: ${path.relative(process.cwd(), outFile)}`);
  }
  return results.every((r) => r.ok) ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------

function cleanup(): void {
  for (const p of running) killPid(p.pid, 'SIGKILL');
  if (tmpToRemove) fs.rmSync(tmpToRemove, { recursive: true, force: true });
  tmpToRemove = undefined;
}

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
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  process.on('SIGTERM', () => {
    cleanup();
    process.exit(143);
  });
  harness(process.argv.slice(2)).then(
    (code) => {
      cleanup();
      process.exitCode = code;
    },
    (err: Error) => {
      console.error(err.stack ?? err.message);
      cleanup();
      process.exitCode = 1;
    },
  );
}
