/**
 * The JSON access log: its lines, its destinations, following the config on reload, and what it
 * costs the proxy (measured: throughput and CPU per request with and without it).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createAccessLog } from '../../src/admin/accessLog.js';
import { startAccessLog, startAdmin } from '../../src/admin/index.js';
import { Telemetry } from '../../src/admin/metrics.js';
import { addObserver } from '../../src/admin/observers.js';
import type { ExchangeRecord } from '../../src/core/observer.js';
import { request, serverList, startBackends, startBalancer } from '../helpers/balancer.js';
import { tempDir } from '../helpers/processes.js';
import { LOOPBACK, startFromFile, traffic, until } from './helpers.js';

const TIMEOUT = { timeout: 60_000 };

test(
  'one JSON line per request: time, client, method, path, status, bytes, server, duration, retries',
  TIMEOUT,
  async () => {
    const dir = tempDir('fulcrum-access-');
    const backends = await startBackends(2);
    const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    servers:
${serverList(backends)}
`);
    const file = join(dir.path, 'logs', 'access.log'); // the folder is created
    const log = await createAccessLog({ path: file });
    const remove = addObserver(lb.runtime, log);
    // The admin endpoint's metrics share the observer slot.
    const admin = await startAdmin(lb.runtime, LOOPBACK, lb.log);
    try {
      await request(lb.port, { path: '/whoami?q=1' });
      await request(lb.port, { method: 'POST', path: '/echo', body: 'hello' });
      for (const s of lb.runtime.pools.get('web')!.servers)
        lb.runtime.pools.get('web')!.setState(s, 'maintenance', 'test');
      await request(lb.port, { path: '/none' });
      await log.flush();
      const lines = readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.equal(lines.length, 3);
      const [first, second, third] = lines;
      assert.deepEqual(Object.keys(first), [
        'time',
        'client',
        'listener',
        'method',
        'host',
        'path',
        'query',
        'status',
        'bytesIn',
        'bytesOut',
        'pool',
        'server',
        'duration',
        'retries',
        'requestId',
        'userAgent',
      ]);
      assert.match(first.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(first.client, '127.0.0.1');
      assert.equal(first.method, 'GET');
      assert.equal(first.path, '/whoami');
      assert.equal(first.status, 200);
      assert.ok(first.bytesOut > 10);
      assert.ok(first.bytesIn > 10);
      assert.equal(first.query, 'q=1');
      assert.equal(first.server, 'a');
      assert.equal(typeof first.duration, 'number');
      assert.equal(first.retries, 0);
      assert.equal(second.method, 'POST');
      assert.equal(second.server, 'b');
      assert.equal(third.status, 503);
      assert.equal(third.server, null);
      // Metrics saw the same requests.
      const m = await (await fetch(`http://127.0.0.1:${admin.address.port}/metrics`)).text();
      assert.match(m, /fulcrum_requests_total\{listener="web",pool="web",server="",code="5xx"\} 1/);
    } finally {
      remove();
      await log.close();
      await admin.close();
      await lb.stop();
      await Promise.all(backends.map((b) => b.close()));
      dir.remove();
    }
  },
);

test(
  'lines reach the file within about a second, with host, query, user agent, request id and bytes',
  TIMEOUT,
  async () => {
    const dir = tempDir('fulcrum-access-');
    const backends = await startBackends(1);
    const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    servers:
${serverList(backends)}
`);
    const file = join(dir.path, 'access.log');
    const log = await createAccessLog({ path: file });
    const remove = addObserver(lb.runtime, log);
    try {
      // The sample backend echoes the headers it got: the generated id reached the server.
      const echo = await request(lb.port, {
        method: 'POST',
        path: '/echo?a=1&b=2',
        headers: { host: 'shop.example', 'user-agent': 'probe/1.0' },
        body: 'hello',
      });
      const sent = (JSON.parse(echo.body) as { headers: Record<string, string> }).headers['x-request-id'];
      assert.match(sent ?? '', /^[0-9a-f-]{36}$/);
      // A client's own id is passed on as it is.
      const own = await request(lb.port, { path: '/echo', headers: { 'x-request-id': 'abc-123' } });
      assert.equal(
        (JSON.parse(own.body) as { headers: Record<string, string> }).headers['x-request-id'],
        'abc-123',
      );
      // No flush(): the timer writes the lines (4 KiB would never fill with two).
      const started = Date.now();
      let text = '';
      while (Date.now() - started < 3000) {
        text = readFileSync(file, 'utf8');
        if (text.split('\n').length > 2) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const lines = text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.equal(lines.length, 2, text);
      assert.ok(Date.now() - started < 2000, `written after ${Date.now() - started} ms`);
      const [first, second] = lines;
      assert.equal(first.host, 'shop.example');
      assert.equal(first.path, '/echo');
      assert.equal(first.query, 'a=1&b=2');
      assert.equal(first.userAgent, 'probe/1.0');
      assert.equal(first.requestId, sent);
      assert.ok(first.bytesIn > 5, String(first.bytesIn));
      assert.ok(first.bytesOut > 5, String(first.bytesOut));
      assert.equal(second.requestId, 'abc-123');
      assert.equal(second.query, '');
    } finally {
      remove();
      await log.close();
      await lb.stop();
      await Promise.all(backends.map((b) => b.close()));
      dir.remove();
    }
  },
);

// pino.destination flushes at exit by itself: this guards it (it passed before issue 19 too).
test('process.exit without close still writes the buffered lines', TIMEOUT, async () => {
  const dir = tempDir('fulcrum-access-');
  try {
    const file = join(dir.path, 'exit.log');
    const module = new URL('../../src/admin/accessLog.js', import.meta.url).href;
    // One line, then an immediate exit: no timer tick, no close().
    const script = `const { createAccessLog } = await import(${JSON.stringify(module)});
const log = await createAccessLog({ path: ${JSON.stringify(file)} });
log.onExchange({ listener: 'web', protocol: 'http', pool: 'web', server: 'a', clientIp: '127.0.0.1',
  method: 'GET', path: '/', status: 200, bytesOut: 10, durationMs: 1, retries: 0, at: Date.now() });
process.exit(0);`;
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' });
      child.on('exit', resolve);
    });
    assert.equal(code, 0);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(lines.length, 1);
    assert.equal(JSON.parse(lines[0]!).server, 'a');
  } finally {
    dir.remove();
  }
});

test('an access log that cannot be opened is an error naming accessLog.path', TIMEOUT, async () => {
  const dir = tempDir('fulcrum-access-');
  try {
    const blocker = join(dir.path, 'file');
    writeFileSync(blocker, '');
    await assert.rejects(
      createAccessLog({ path: join(blocker, 'access.log') }),
      /^Error: accessLog\.path ".*file\/access\.log": /,
    );
    // stdout needs no opening.
    const out = await createAccessLog({ path: 'stdout' });
    await out.close();
  } finally {
    dir.remove();
  }
});

test('the access log follows the config: on, moved and off by reload, at once', TIMEOUT, async () => {
  const backends = await startBackends(1);
  const dir = tempDir('fulcrum-access-');
  const first = join(dir.path, 'first.log');
  const second = join(dir.path, 'second.log');
  const yaml = (accessLog: string) => `
${accessLog}
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools: [{ name: web, servers: [{ address: "127.0.0.1:${backends[0]!.port}", name: a }] }]
`;
  const lab = await startFromFile(yaml(`accessLog: { path: ${JSON.stringify(first)} }`));
  const handle = await startAccessLog(lab.runtime, lab.log);
  const port = lab.runtime.address('web').port;
  const open = () => handle.current?.path ?? null; // (a getter: TypeScript must not narrow it)
  try {
    assert.equal(open(), first);
    await traffic(port, 2);
    writeFileSync(lab.file, yaml(`accessLog: { path: ${JSON.stringify(second)} }`));
    await lab.runtime.reload();
    assert.equal(open(), second, 'moved by the reload itself');
    await traffic(port, 3);
    writeFileSync(lab.file, yaml(''));
    await lab.runtime.reload();
    assert.equal(open(), null);
    await traffic(port, 1);
    // A log turned off is flushed and closed in the background: wait for its last lines.
    const lines = (file: string) => readFileSync(file, 'utf8').trim().split('\n').length;
    await until(() => lines(first) === 2 && lines(second) === 3, 3000, 'both logs flushed');
    assert.equal(lines(first), 2);
    assert.equal(lines(second), 3);
    assert.ok(lab.log.lines.some((l) => l.includes('access log off')));
    writeFileSync(lab.file, yaml(`accessLog: { path: ${JSON.stringify(first)} }`));
    await lab.runtime.reload();
    assert.equal(open(), first, 'back on');

    // A file that cannot be opened refuses the whole reload: the log stays where it was.
    const blocker = join(dir.path, 'blocker');
    writeFileSync(blocker, '');
    const bad = join(blocker, 'access.log');
    writeFileSync(lab.file, yaml(`accessLog: { path: ${JSON.stringify(bad)} }`));
    await assert.rejects(lab.runtime.reload(), (err: Error) => {
      assert.match(
        err.message,
        new RegExp(`: accessLog\\.path: cannot open ${JSON.stringify(bad).replace(/[.]/g, '\\.')}: `),
      );
      return true;
    });
    assert.equal(open(), first);
    assert.equal(lab.runtime.config.accessLog?.path, first);
  } finally {
    await handle.close();
    await lab.runtime.shutdown(200);
    await backends[0]!.close();
    dir.remove();
  }
});

// ------------------------------------------------------------------------------------ overhead

/**
 * A child process that runs the backend and the load generator, so that this process runs only
 * the balancer and its CPU time is the balancer's.
 */
const CHILD = `
import { createServer, request, Agent } from 'node:http';
const body = Buffer.from('{"ok":true}');
const server = createServer((req, res) => { res.writeHead(200, {'content-type':'application/json','content-length':body.length}); res.end(body); });
server.listen(0, '127.0.0.1', () => process.stdout.write('port ' + server.address().port + '\\n'));
process.stdin.setEncoding('utf8');
process.stdin.on('data', (line) => {
  const [cmd, port, ms, conc] = line.trim().split(' ');
  if (cmd !== 'load') return process.exit(0);
  const agent = new Agent({ keepAlive: true, maxSockets: Number(conc) });
  const end = Date.now() + Number(ms);
  let done = 0, errors = 0;
  const one = () => new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: Number(port), path: '/bench?x=1', agent }, (res) => { res.resume(); res.on('end', () => { done++; resolve(); }); });
    req.on('error', () => { errors++; resolve(); });
    req.end();
  });
  const loop = async () => { while (Date.now() < end) await one(); };
  Promise.all(Array.from({ length: Number(conc) }, loop)).then(() => { agent.destroy(); process.stdout.write('done ' + done + ' ' + errors + '\\n'); });
});
`;

function startChild(): Promise<{
  child: ChildProcess;
  port: number;
  load(target: number, ms: number): Promise<number>;
}> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let buffer = '';
  const waiters: Array<(line: string) => void> = [];
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buffer += chunk;
    let nl = buffer.indexOf('\n');
    while (nl >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      waiters.shift()?.(line);
      nl = buffer.indexOf('\n');
    }
  });
  const next = () => new Promise<string>((resolve) => waiters.push(resolve));
  return next().then((line) => ({
    child,
    port: Number(line.split(' ')[1]),
    async load(target: number, ms: number) {
      const reply = next();
      child.stdin!.write(`load ${target} ${ms} 16\n`);
      const [, done, errors] = (await reply).split(' ');
      assert.equal(Number(errors), 0);
      return Number(done);
    },
  }));
}

test(
  'the access log costs the proxy little: throughput and CPU per request, with and without',
  TIMEOUT,
  async (t) => {
    const { child, port, load } = await startChild();
    const dir = tempDir('fulcrum-access-');
    const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools: [{ name: web, servers: [{ address: "127.0.0.1:${port}", name: a }] }]
`);
    const modes = {
      off: async () => () => {},
      accessLog: async () => {
        const log = await createAccessLog({ path: join(dir.path, 'bench.log') });
        const remove = addObserver(lb.runtime, log);
        return async () => {
          remove();
          await log.close();
        };
      },
      metrics: async () => {
        const telemetry = new Telemetry(lb.runtime);
        const remove = addObserver(lb.runtime, telemetry);
        return () => {
          remove();
          telemetry.close();
        };
      },
    };
    type Mode = keyof typeof modes;
    const results: Record<Mode, Array<{ rps: number; cpuUs: number }>> = {
      off: [],
      accessLog: [],
      metrics: [],
    };
    const RUN_MS = 1000;
    const ROUNDS = 5;
    try {
      // 1. The cost of one line, alone: formatting on this thread plus the buffered writes.
      const micro = await createAccessLog({ path: join(dir.path, 'micro.log') });
      const record: ExchangeRecord = {
        listener: 'web',
        protocol: 'http',
        pool: 'web',
        server: 'a',
        clientIp: '127.0.0.1',
        method: 'GET',
        path: '/bench',
        status: 200,
        bytesOut: 180,
        durationMs: 0.734,
        retries: 0,
        at: Date.now(),
      };
      const LINES = 200_000;
      const cpu0 = process.cpuUsage();
      for (let i = 0; i < LINES; i++) micro.onExchange(record);
      await micro.close();
      const microCpu = process.cpuUsage(cpu0);
      const perLineUs = (microCpu.user + microCpu.system) / LINES;

      // 2. End to end, interleaved: the balancer alone, with the access log, with the metrics.
      await load(lb.port, 500); // warm up
      for (let round = 0; round < ROUNDS; round++) {
        for (const mode of ['off', 'accessLog', 'metrics'] as Mode[]) {
          const stop = await modes[mode]();
          const cpu = process.cpuUsage();
          const started = performance.now();
          const n = await load(lb.port, RUN_MS);
          const elapsed = performance.now() - started;
          const used = process.cpuUsage(cpu);
          await stop();
          results[mode].push({ rps: (n * 1000) / elapsed, cpuUs: (used.user + used.system) / n });
        }
      }
      // Best of the rounds: on a shared machine, interference only ever makes a run worse.
      const best = (mode: Mode) => ({
        rps: Math.max(...results[mode].map((r) => r.rps)),
        cpuUs: Math.min(...results[mode].map((r) => r.cpuUs)),
      });
      const off = best('off');
      const on = best('accessLog');
      const metrics = best('metrics');
      const throughput = on.rps / off.rps;
      const cpu = on.cpuUs / off.cpuUs;
      t.diagnostic(`one access log line: ${perLineUs.toFixed(2)} µs CPU (${LINES} lines to a file)`);
      t.diagnostic(
        `balancer, access log off: ${off.rps.toFixed(0)} req/s, ${off.cpuUs.toFixed(1)} µs CPU/request (16 keep-alive clients; backend and load generator in another process)`,
      );
      t.diagnostic(
        `balancer, access log on:  ${on.rps.toFixed(0)} req/s, ${on.cpuUs.toFixed(1)} µs CPU/request`,
      );
      t.diagnostic(
        `balancer, metrics only:   ${metrics.rps.toFixed(0)} req/s, ${metrics.cpuUs.toFixed(1)} µs CPU/request`,
      );
      t.diagnostic(
        `ratio on/off: throughput ${throughput.toFixed(3)}, CPU per request ${cpu.toFixed(3)}; one line is ${((100 * perLineUs) / off.cpuUs).toFixed(1)}% of a request's CPU (best of ${ROUNDS} runs of ${RUN_MS} ms per mode)`,
      );
      const lines = readFileSync(join(dir.path, 'bench.log'), 'utf8').split('\n').length - 1;
      assert.ok(lines > 1000, `${lines} lines written`);
      // Loose bounds: the machine is shared and noisy; the figures above are the measurement.
      assert.ok(perLineUs < 10, `${perLineUs} µs per line`);
      assert.ok(throughput > 0.5, `throughput ratio ${throughput}`);
    } finally {
      child.stdin!.write('exit\n');
      child.kill();
      await lb.stop();
      dir.remove();
    }
  },
);
