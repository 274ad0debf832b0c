/**
 * Queries per second and CPU per query of the dns listener, against PowerDNS (`pdns_server` with
 * its bind backend) serving the same zone, measured with dnsperf (Debian `dnsperf`,
 * `pdns-server`, `pdns-backend-bind`). Interleaved rounds, the order rotating each round, so
 * slow drifts of a shared machine hit both alike; the table shows medians over rounds.
 *
 * Both servers answer `www.example.test A` (three addresses), `api.example.test A` (one) and
 * `nope.example.test A` (NXDOMAIN), from one process: Fulcrum is single-threaded, so PowerDNS
 * runs with one receiver and one distributor thread; its packet cache stays on (its default).
 * CPU per query: the server process's utime + stime over a run (from /proc), divided by the
 * queries answered. Every process is stopped by PID; the temporary folder is removed.
 *
 * Usage: node dist/bench/dns.js [--seconds 10] [--rounds 3] [--clients 10]
 * Exit code: 0 when both were measured, 1 when one could not be run.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
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
} from './processes.js';

let tmp: string | undefined;
const clientPids = new Set<number>();

interface Figures {
  qps: number;
  cpuUsPerQuery: number;
  lost: number;
}

/** utime + stime of a process, in clock ticks (100 per second on Linux). */
function cpuTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function dnsperf(
  bin: string,
  port: number,
  queries: string,
  seconds: number,
  clients: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      bin,
      [
        '-s',
        HOST,
        '-p',
        String(port),
        '-d',
        queries,
        '-l',
        String(seconds),
        '-c',
        String(clients),
        '-q',
        '200',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    if (child.pid !== undefined) clientPids.add(child.pid);
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.on('error', reject);
    child.on('exit', () => {
      clearTimeout(timer);
      if (child.pid !== undefined) clientPids.delete(child.pid);
      resolve(out);
    });
  });
}

async function measure(
  bin: string,
  proc: Proc,
  port: number,
  queries: string,
  seconds: number,
  clients: number,
): Promise<Figures> {
  const before = cpuTicks(proc.pid);
  const out = await dnsperf(bin, port, queries, seconds, clients);
  const ticks = cpuTicks(proc.pid) - before;
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN);
  const completed = Number(/Queries completed:\s+(\d+)/.exec(out)?.[1] ?? Number.NaN);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(out)?.[1] ?? Number.NaN);
  if (!Number.isFinite(qps)) throw new Error(`dnsperf gave no figures:\n${out}`);
  return { qps, cpuUsPerQuery: (ticks * 10_000) / completed, lost };
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '10' },
      rounds: { type: 'string', default: '3' },
      clients: { type: 'string', default: '10' },
    },
  });
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  const clients = Number(values.clients);
  const perf = findBinary('dnsperf');
  const pdns = findBinary('pdns_server');
  if (perf === undefined || pdns === undefined) {
    log('needs dnsperf and pdns_server (Debian: apt-get install dnsperf pdns-server pdns-backend-bind)');
    return 1;
  }
  const root = findRoot(path.dirname(fileURLToPath(import.meta.url)));
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-dns-'));
  const [fulcrumPort, pdnsPort] = [await freePort(), await freePort()];
  fs.writeFileSync(
    path.join(tmp, 'fulcrum.yaml'),
    `listeners:
  - name: dns
    protocol: dns
    listen: ${HOST}:${fulcrumPort}
    responseRateLimit: { responses: 0 }
    zones:
      - name: example.test
        ttl: 30s
        records: [ { name: www, pool: web }, { name: api, pool: api } ]
pools:
  - name: web
    servers: [ { address: 10.0.0.1:80 }, { address: 10.0.0.2:80 }, { address: 10.0.0.3:80 } ]
  - name: api
    servers: [ { address: 10.0.1.1:80 } ]
`,
  );
  fs.writeFileSync(
    path.join(tmp, 'example.test.zone'),
    `$TTL 30
@ IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 30
@ IN NS ns.example.test.
www IN A 10.0.0.1
www IN A 10.0.0.2
www IN A 10.0.0.3
api IN A 10.0.1.1
`,
  );
  fs.writeFileSync(
    path.join(tmp, 'named.conf'),
    `zone "example.test" { type master; file "${tmp}/example.test.zone"; };\n`,
  );
  fs.writeFileSync(
    path.join(tmp, 'pdns.conf'),
    [
      'launch=bind',
      `bind-config=${tmp}/named.conf`,
      `local-address=${HOST}`,
      `local-port=${pdnsPort}`,
      `socket-dir=${tmp}`,
      'guardian=no',
      'daemon=no',
      'disable-syslog=yes',
      'write-pid=no',
      'receiver-threads=1',
      'distributor-threads=1',
      'loglevel=3',
      '',
    ].join('\n'),
  );
  const queries = path.join(tmp, 'queries.txt');
  fs.writeFileSync(queries, `${'www.example.test A\n'.repeat(8)}api.example.test A\nnope.example.test A\n`);

  const fulcrum = startProc(
    'fulcrum',
    process.execPath,
    [path.join(root, 'dist/src/cli/main.js'), 'start', '-c', path.join(tmp, 'fulcrum.yaml')],
    path.join(tmp, 'fulcrum.log'),
  );
  const powerdns = startProc('pdns', pdns, [`--config-dir=${tmp}`], path.join(tmp, 'pdns.log'));
  await sleep(1500);
  const targets = [
    { name: 'fulcrum', proc: fulcrum, port: fulcrumPort },
    { name: 'powerdns', proc: powerdns, port: pdnsPort },
  ];
  for (const t of targets) {
    if (t.proc.exitCode !== undefined) {
      log(`${t.name} exited:\n${fs.readFileSync(t.proc.logFile, 'utf8')}`);
      return 1;
    }
  }
  const results = new Map<string, Figures[]>(targets.map((t) => [t.name, []]));
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? targets : [...targets].reverse();
    const round = new Map<string, Figures>();
    for (const t of order) {
      const f = await measure(perf, t.proc, t.port, queries, seconds, clients);
      log(
        `round ${r + 1} ${t.name}: ${f.qps.toFixed(0)} q/s, ${f.cpuUsPerQuery.toFixed(1)} µs CPU/query, ${f.lost} lost`,
      );
      round.set(t.name, f);
      results.get(t.name)!.push(f);
    }
    ratios.push(round.get('fulcrum')!.qps / round.get('powerdns')!.qps);
  }
  console.log(`\n| server | queries/s (median of ${rounds}) | CPU µs per query | lost |`);
  console.log('|---|---|---|---|');
  for (const t of targets) {
    const f = results.get(t.name)!;
    console.log(
      `| ${t.name} | ${median(f.map((x) => x.qps)).toFixed(0)} | ${median(f.map((x) => x.cpuUsPerQuery)).toFixed(1)} | ${f.reduce((n, x) => n + x.lost, 0)} |`,
    );
  }
  console.log(
    `\nfulcrum / powerdns: ${median(ratios).toFixed(2)} (rounds: ${ratios.map((x) => x.toFixed(2)).join(', ')}); dnsperf -c ${clients} -q 200, ${seconds} s per run, ${os.cpus().length} cores shared with dnsperf`,
  );
  await Promise.all(targets.map((t) => stopProc(t.proc)));
  return 0;
}

runHarness(main, { tmp: () => tmp, extraPids: () => clientPids });
