/**
 * Memory with slow clients: Fulcrum's RSS while many clients stall in the middle of large
 * downloads, and after they have read everything. What a proxy holds per stalled download (its
 * read buffers and pending writes) shows here, not under wrk, whose clients read at once.
 *
 * One origin (node:http, in this process) answers every GET with the same body; `--clients`
 * downloads start at once through a Fulcrum listener, read nothing for `--stall` seconds, then
 * read to the end. Each Fulcrum CLI given is measured in turn (a build per path: compare commits).
 *
 * Usage: node dist/bench/slowDownloads.js [--clients 200] [--size-mib 8] [--stall 3]
 *                                         [--fulcrum-cli PATH[,PATH...]] [--json]
 */

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  FULCRUM_CLI,
  freePort,
  HOST,
  runHarness,
  sleep,
  startProc,
  stopProc,
  waitForPort,
} from './processes.js';

const USAGE = `Usage: node dist/bench/slowDownloads.js [options]
  --clients N             downloads at once (default 200)
  --size-mib N            body size in MiB (default 8)
  --stall S               seconds the clients read nothing (default 3)
  --fulcrum-cli P[,P...]  Fulcrum CLIs to measure in turn (default: dist/src/cli/main.js)
  --json                  print the results as JSON`;

interface Result {
  cli: string;
  idleMb: number;
  stalledMb: number;
  afterMb: number;
  bytesEach: number;
}

let tmp: string | undefined;

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

async function measure(cli: string, clients: number, stallS: number, originPort: number): Promise<Result> {
  const port = await freePort();
  const cfg = path.join(tmp!, 'fulcrum.yaml');
  fs.writeFileSync(
    cfg,
    `listeners: [{ name: web, listen: "${HOST}:${port}", pool: p }]\npools: [{ name: p, servers: [{ address: "${HOST}:${originPort}" }] }]\n`,
  );
  const proc = startProc(
    'fulcrum',
    process.execPath,
    [cli, 'start', '-c', cfg],
    path.join(tmp!, 'fulcrum.log'),
  );
  try {
    await waitForPort(port, proc);
    await sleep(500);
    const idleMb = rssMb(proc.pid);
    const agent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
    const responses = await Promise.all(
      Array.from(
        { length: clients },
        () =>
          new Promise<http.IncomingMessage>((resolve, reject) => {
            http
              .get({ host: HOST, port, path: '/', agent }, (res) => {
                res.pause();
                resolve(res);
              })
              .on('error', reject);
          }),
      ),
    );
    await sleep(stallS * 1000);
    const stalledMb = rssMb(proc.pid);
    let bytes = 0;
    await Promise.all(
      responses.map(
        (res) =>
          new Promise<void>((resolve, reject) => {
            res.on('data', (c: Buffer) => {
              bytes += c.length;
            });
            res.on('end', resolve);
            res.on('error', reject);
            res.resume();
          }),
      ),
    );
    await sleep(500);
    return { cli, idleMb, stalledMb, afterMb: rssMb(proc.pid), bytesEach: bytes / clients };
  } finally {
    await stopProc(proc);
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      clients: { type: 'string', default: '200' },
      'size-mib': { type: 'string', default: '8' },
      stall: { type: 'string', default: '3' },
      'fulcrum-cli': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const clients = Number(values.clients);
  const sizeMib = Number(values['size-mib']);
  const stall = Number(values.stall);
  if (!Number.isInteger(clients) || clients < 1 || !(sizeMib > 0) || !(stall >= 0)) {
    console.error(
      `slowDownloads: --clients takes a positive integer, --size-mib and --stall numbers\n${USAGE}`,
    );
    return 2;
  }
  const clis = (values['fulcrum-cli'] ?? FULCRUM_CLI).split(',').map((c) => path.resolve(c));
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-slow-'));
  const body = Buffer.alloc(Math.round(sizeMib * 1024 * 1024), 'x');
  const origin = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  const originPort = await freePort();
  await new Promise<void>((resolve) => origin.listen(originPort, HOST, resolve));
  const results: Result[] = [];
  try {
    for (const cli of clis) results.push(await measure(cli, clients, stall, originPort));
  } finally {
    origin.close();
  }
  if (values.json) console.log(JSON.stringify({ clients, sizeMib, stall, results }, null, 2));
  else {
    console.log(
      `${clients} downloads of ${sizeMib} MiB, stalled ${stall} s, then read to the end; Fulcrum's RSS:`,
    );
    for (const r of results) {
      console.log(
        `  ${path.relative(process.cwd(), r.cli) || r.cli}: idle ${r.idleMb.toFixed(1)} MB, stalled ${r.stalledMb.toFixed(1)} MB, after ${r.afterMb.toFixed(1)} MB (${(r.bytesEach / 1048576).toFixed(1)} MiB read each)`,
      );
    }
  }
  return results.every((r) => r.bytesEach === body.length) ? 0 : 1;
}

runHarness(main, { tmp: () => tmp });
