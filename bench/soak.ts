/**
 * Long-run memory check: Fulcrum under steady wrk load for many minutes, its RSS and V8 heap
 * sampled all along, to show whether memory stays flat (a leak grows with requests served; a
 * healthy process levels off once its pools, caches and young generation have grown).
 *
 * Each minute: 50 s of keep-alive load, then 10 s of `Connection: close` load (a new connection per
 * request: accept, upstream reuse, socket teardown), so per-request and per-connection state are
 * both exercised. The RSS of the Fulcrum process is read from /proc every 5 s; its V8 heap and
 * external (Buffer) memory come from its own /metrics at the end of each minute.
 *
 * Usage: node dist/bench/soak.js [--minutes 30] [--pin] [--body-size N] [--connections 50]
 *                                [--fulcrum-cli PATH] [--node-args "A B"] [--json]
 * Prints one line per minute and a summary: RSS over the first and the last fifth of the run,
 * its slope over the second half (MB per 10 minutes) and requests served.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
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
  startProc,
  stopProc,
  waitForPort,
} from './processes.js';

interface Minute {
  minute: number;
  requests: number;
  errors: number;
  rssMb: number;
  heapUsedMb?: number | undefined;
  externalMb?: number | undefined;
}

const USAGE = `Usage: node dist/bench/soak.js [options]
  --minutes N         length of the run (default 30)
  --pin               Fulcrum alone on core 0; wrk and the backends on core 1 (taskset)
  --body-size N       backend response body in bytes (default 25)
  --connections N     wrk connections (default 50)
  --fulcrum-cli PATH  Fulcrum CLI to run (default: dist/src/cli/main.js)
  --node-args "A B"   extra node options for Fulcrum
  --json              print the samples as JSON`;

let tmp: string | undefined;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '30' },
      pin: { type: 'boolean', default: false },
      'body-size': { type: 'string' },
      connections: { type: 'string', default: '50' },
      'fulcrum-cli': { type: 'string' },
      'node-args': { type: 'string', default: '' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const minutes = Number(values.minutes);
  const connections = Number(values.connections);
  if (!Number.isInteger(minutes) || minutes < 1 || !Number.isInteger(connections) || connections < 1) {
    console.error(`soak: --minutes and --connections take positive integers\n${USAGE}`);
    return 2;
  }
  const wrk = findBinary('wrk');
  if (!wrk) {
    console.error('soak: wrk not found (apt-get install wrk)');
    return 2;
  }
  const taskset = values.pin ? findBinary('taskset') : undefined;
  const onCore = (core: number, cmd: string, args: string[]): [string, string[]] =>
    taskset ? [taskset, ['-c', String(core), cmd, ...args]] : [cmd, args];
  const cli = path.resolve(values['fulcrum-cli'] ?? FULCRUM_CLI);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-soak-'));

  const backendPorts: number[] = [];
  const procs: Proc[] = [];
  for (const id of ['b1', 'b2']) {
    const port = await freePort();
    const args = [BACKEND_JS, '--port', String(port), '--id', id];
    if (values['body-size'] !== undefined) args.push('--size', values['body-size']);
    const proc = startProc(
      `backend ${id}`,
      ...onCore(1, process.execPath, args),
      path.join(tmp, `${id}.log`),
    );
    procs.push(proc);
    await waitForPort(port, proc);
    backendPorts.push(port);
  }
  const port = await freePort();
  const adminPort = await freePort();
  const cfg = path.join(tmp, 'fulcrum.yaml');
  fs.writeFileSync(
    cfg,
    [
      `admin: { listen: "${HOST}:${adminPort}" }`,
      'listeners:',
      `  - { name: soak, listen: "${HOST}:${port}", pool: p }`,
      'pools:',
      '  - name: p',
      '    servers:',
      ...backendPorts.map((p) => `      - address: ${HOST}:${p}`),
      '',
    ].join('\n'),
  );
  const nodeArgs = values['node-args'].split(' ').filter((a) => a !== '');
  const fulcrum = startProc(
    'fulcrum',
    ...onCore(0, process.execPath, [...nodeArgs, cli, 'start', '-c', cfg]),
    path.join(tmp, 'fulcrum.log'),
  );
  procs.push(fulcrum);
  await waitForPort(port, fulcrum);
  const fulcrumPid = taskset ? childOf(fulcrum.pid) : fulcrum.pid;
  const idleMb = rssMb(fulcrumPid);
  log(`fulcrum pid ${fulcrumPid} on :${port}, idle RSS ${idleMb} MB; ${minutes} min of load`);

  const url = `http://${HOST}:${port}/`;
  const samples: { at: number; rssMb: number }[] = [];
  const sampler = setInterval(() => samples.push({ at: Date.now(), rssMb: rssMb(fulcrumPid) }), 5000);
  const rows: Minute[] = [];
  try {
    for (let m = 1; m <= minutes; m++) {
      const keep = await runWrk(onCore(1, wrk, ['-t1', `-c${connections}`, '-d50s', url]));
      const close = await runWrk(
        onCore(1, wrk, ['-t1', `-c${Math.min(connections, 10)}`, '-d10s', '-H', 'Connection: close', url]),
      );
      const heap = await readHeap(adminPort);
      const row: Minute = {
        minute: m,
        requests: keep.requests + close.requests,
        errors: keep.errors + close.errors,
        rssMb: rssMb(fulcrumPid),
        ...heap,
      };
      rows.push(row);
      if (fulcrum.exitCode !== undefined) throw new Error(`fulcrum exited (code ${fulcrum.exitCode})`);
      if (!values.json)
        console.log(
          `minute ${String(m).padStart(3)}  ${String(row.requests).padStart(9)} req  ${row.errors} errors  RSS ${row.rssMb} MB  heap ${row.heapUsedMb ?? '-'} MB  external ${row.externalMb ?? '-'} MB`,
        );
    }
  } finally {
    clearInterval(sampler);
    for (const p of procs.reverse()) await stopProc(p, 5000);
  }
  const summary = summarize(samples, rows, idleMb);
  if (values.json) console.log(JSON.stringify({ idleMb, rows, samples, summary }, null, 2));
  else console.log(summary.text);
  return 0;
}

/** The Node process under `taskset` (taskset execs, so it is usually the same pid). */
function childOf(pid: number): number {
  try {
    const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/);
    return kids[0] ? Number(kids[0]) : pid;
  } catch {
    return pid;
  }
}

function rssMb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** V8 heap used and external memory now, in MB, from the balancer's own /metrics. */
async function readHeap(adminPort: number): Promise<{ heapUsedMb?: number; externalMb?: number }> {
  try {
    const text = await (await fetch(`http://${HOST}:${adminPort}/metrics`)).text();
    const mb = (name: string) => {
      const v = new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1];
      return v === undefined ? undefined : Math.round(Number(v) / 104857.6) / 10;
    };
    return { heapUsedMb: mb('nodejs_heap_size_used_bytes'), externalMb: mb('nodejs_external_memory_bytes') };
  } catch {
    return {};
  }
}

function runWrk([cmd, args]: [string, string[]]): Promise<{ requests: number; errors: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', reject);
    child.on('close', () => {
      const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
      const e = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
      const errors = (e ? e.slice(1).reduce((n, x) => n + Number(x), 0) : 0) + non2xx;
      resolve({ requests, errors });
    });
  });
}

function summarize(samples: { at: number; rssMb: number }[], rows: Minute[], idleMb: number) {
  const n = samples.length;
  const fifth = Math.max(1, Math.floor(n / 5));
  const range = (xs: number[]) => `${Math.min(...xs)}-${Math.max(...xs)} MB`;
  const first = samples.slice(0, fifth).map((s) => s.rssMb);
  const last = samples.slice(n - fifth).map((s) => s.rssMb);
  // Least-squares slope of RSS over the second half, in MB per 10 minutes.
  const half = samples.slice(Math.floor(n / 2));
  const t0 = half[0]?.at ?? 0;
  const xs = half.map((s) => (s.at - t0) / 600_000);
  const ys = half.map((s) => s.rssMb);
  const mx = xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const my = ys.reduce((a, b) => a + b, 0) / Math.max(1, ys.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < xs.length; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  const slope = den > 0 ? Math.round((num / den) * 10) / 10 : 0;
  const requests = rows.reduce((a, r) => a + r.requests, 0);
  const errors = rows.reduce((a, r) => a + r.errors, 0);
  const text = [
    `idle RSS before load: ${idleMb} MB`,
    `RSS, first fifth of the run: ${range(first)}; last fifth: ${range(last)}`,
    `RSS slope over the second half: ${slope} MB per 10 min`,
    `requests: ${requests} (${errors} errors) in ${rows.length} min`,
  ].join('\n');
  return { first: range(first), last: range(last), slopeMbPer10Min: slope, requests, errors, text };
}

runHarness(main, { tmp: () => tmp });
