/**
 * One-run comparison of TLS termination on this machine: Fulcrum and HAProxy (nbthread 1) on the
 * same certificates (ECDSA P-256 and RSA 2048, made here by openssl), in front of the same two
 * node:http backends (bench/backend.ts).
 *
 * Per target and key type:
 *   h1       HTTPS keep-alive req/s (h2load --h1, 20 connections) and the proxy's CPU µs per request
 *   h2 x1    HTTP/2 req/s over one connection (100 streams in flight)
 *   h2 x20   HTTP/2 req/s over 20 connections (10 streams each)
 *   full     new TLS handshakes per second (openssl s_time -new)
 *   resumed  resumed handshakes per second (openssl s_time -reuse)
 * Needs h2load (Debian nghttp2-client), openssl, and haproxy for the comparison. One run, no
 * spread: on a shared machine read the ratios, not the absolute numbers.
 *
 * Usage: node dist/bench/tls.js [--duration S] [--targets fulcrum,haproxy] [--keys ecdsa,rsa]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
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

interface Row {
  target: string;
  key: string;
  h1: number;
  cpuUsPerReq: number;
  h2one: number;
  h2many: number;
  full: number;
  resumed: number;
}

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

function h2load(args: string[], seconds: number): { rps: number; done: number } {
  const r = spawnSync('h2load', [...args, '-D', String(seconds), '--warm-up-time', '1'], {
    encoding: 'utf8',
    timeout: (seconds + 30) * 1000,
  });
  const rps = /finished in [^,]+, ([\d.]+) req\/s/.exec(r.stdout)?.[1];
  const done = /requests: \d+ total, \d+ started, (\d+) done/.exec(r.stdout)?.[1];
  const failed = /(\d+) failed/.exec(r.stdout)?.[1];
  if (rps === undefined || Number(failed) > 0)
    throw new Error(`h2load ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
  return { rps: Number(rps), done: Number(done) };
}

function sTime(port: number, mode: '-new' | '-reuse', seconds: number): number {
  const r = spawnSync('openssl', ['s_time', '-connect', `${HOST}:${port}`, mode, '-time', String(seconds)], {
    encoding: 'utf8',
    timeout: (seconds + 30) * 1000,
  });
  const m = /(\d+) connections in ([\d.]+) real seconds/.exec(r.stdout);
  if (m === null) throw new Error(`openssl s_time ${mode}:\n${r.stdout}${r.stderr}`);
  return Number(m[1]) / Number(m[2]);
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

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '5' },
      targets: { type: 'string', default: 'fulcrum,haproxy' },
      keys: { type: 'string', default: 'ecdsa,rsa' },
    },
  });
  const seconds = Number(values.duration);
  if (findBinary('h2load') === undefined) {
    console.error('h2load not found (apt-get install nghttp2-client)');
    return 2;
  }
  const haproxy = findBinary('haproxy');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-tls-'));
  const backends: number[] = [];
  const procs: Proc[] = [];
  for (const id of ['a', 'b']) {
    const port = await freePort();
    const p = startProc(
      `backend-${id}`,
      process.execPath,
      [path.join(here, 'backend.js'), '--port', String(port), '--id', id],
      path.join(tmp, `backend-${id}.log`),
    );
    await waitForPort(port, p);
    backends.push(port);
    procs.push(p);
  }
  const rows: Row[] = [];
  try {
    for (const kind of values.keys.split(',') as Array<'ecdsa' | 'rsa'>) {
      const files = makeCert(tmp, kind);
      for (const target of values.targets.split(',')) {
        if (target === 'haproxy' && haproxy === undefined) {
          log('haproxy not installed: skipped');
          continue;
        }
        const port = await freePort();
        const logFile = path.join(tmp, `${target}-${kind}.log`);
        let proc: Proc;
        if (target === 'haproxy') {
          const cfg = path.join(tmp, `haproxy-${kind}.cfg`);
          fs.writeFileSync(cfg, haproxyCfg(port, files.both, backends));
          proc = startProc('haproxy', haproxy!, ['-f', cfg, '-db'], logFile);
        } else {
          const cfg = path.join(tmp, `fulcrum-${kind}.yaml`);
          fs.writeFileSync(cfg, fulcrumYaml(port, files.cert, files.key, backends));
          proc = startProc(
            'fulcrum',
            process.execPath,
            [path.join(here, '../src/cli/main.js'), 'start', '-c', cfg],
            logFile,
          );
        }
        try {
          await waitForPort(port, proc);
          await sleep(200);
          const url = `https://${HOST}:${port}/`;
          log(`${target} ${kind}: h1`);
          const cpu0 = cpuSeconds(proc.pid);
          const h1 = h2load(['--h1', '-c', '20', url], seconds);
          const cpuUsPerReq = ((cpuSeconds(proc.pid) - cpu0) * 1e6) / Math.max(1, h1.done);
          log(`${target} ${kind}: h2`);
          const h2one = h2load(['-c', '1', '-m', '100', url], seconds).rps;
          const h2many = h2load(['-c', '20', '-m', '10', url], seconds).rps;
          log(`${target} ${kind}: handshakes`);
          const full = sTime(port, '-new', seconds);
          const resumed = sTime(port, '-reuse', seconds);
          rows.push({ target, key: kind, h1: h1.rps, cpuUsPerReq, h2one, h2many, full, resumed });
        } finally {
          await stopProc(proc);
        }
      }
    }
  } finally {
    for (const p of procs) await stopProc(p);
  }
  const fmt = (n: number) => n.toFixed(0).padStart(9);
  console.log(
    `\nTLS termination, ${seconds}s per figure, ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)}`,
  );
  console.log('target   key     h1 req/s  µs/req(h1)  h2x1 req/s  h2x20 req/s  full hs/s  resumed hs/s');
  for (const r of rows) {
    console.log(
      `${r.target.padEnd(8)} ${r.key.padEnd(6)}${fmt(r.h1)}  ${fmt(r.cpuUsPerReq)}   ${fmt(r.h2one)}    ${fmt(r.h2many)}  ${fmt(r.full)}     ${fmt(r.resumed)}`,
    );
  }
  for (const key of new Set(rows.map((r) => r.key))) {
    const f = rows.find((r) => r.key === key && r.target === 'fulcrum');
    const h = rows.find((r) => r.key === key && r.target === 'haproxy');
    if (f && h) {
      console.log(
        `${key}: fulcrum/haproxy  h1 ${(f.h1 / h.h1).toFixed(2)}x  h2x1 ${(f.h2one / h.h2one).toFixed(2)}x  h2x20 ${(f.h2many / h.h2many).toFixed(2)}x  full handshakes ${(f.full / h.full).toFixed(2)}x  resumed ${(f.resumed / h.resumed).toFixed(2)}x`,
      );
    }
  }
  return 0;
}

runHarness(main, { tmp: () => tmp });
