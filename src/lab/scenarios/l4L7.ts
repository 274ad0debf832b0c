/**
 * Scenario 8: L4 vs L7. The same backends behind a `tcp` listener (bytes forwarded, the request
 * never read) and an `http` listener (each request parsed): the balancer's CPU time per request
 * and the requests per second of each; then what only L7 can do, shown by sending the requests
 * that need it: a path route, a retry on another server when one closes without answering, a
 * sticky cookie, forwarding headers added to the request.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { ConfigError, parseConfig } from '../../config/index.js';
import { startBackend, startBalancer } from '../fleet.js';
import { CookieClient, closedLoop, request } from '../load.js';
import { cpuSeconds, cpuTimesUnavailable, HOST } from '../processes.js';
import { check, type Findings, type LabContext, type Scenario } from '../scenario.js';
import { fmt, fmtSpread, spread } from '../stats.js';

const CONCURRENCY = 8;
const KINDS = ['l4', 'l7'] as const;
const LABEL: Record<(typeof KINDS)[number], string> = { l4: 'L4 (tcp)', l7: 'L7 (http)' };
/** Requests sent for each capability. */
const PROBES = 12;

function plan(quick: boolean) {
  return { reps: quick ? 2 : 3, seconds: quick ? 1.5 : 5 };
}

/**
 * A server that accepts a connection, reads the request and closes without answering (a worker
 * that crashed on it), in the lab's process; `close` ends it and every connection it holds.
 */
async function startBrokenServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    socket.once('data', () => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve());
  });
  server.on('error', () => {});
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** What the config checker answers when asked for `listener` as a tcp listener: its first problem. */
function configVerdict(listener: Record<string, unknown>, pools: Record<string, unknown>[]): string {
  const config = {
    listeners: [{ name: 'l4', protocol: 'tcp', listen: '127.0.0.1:0', ...listener }],
    pools,
  };
  try {
    parseConfig(JSON.stringify(config, null, 2), 'l4.yaml');
    return 'accepted';
  } catch (err) {
    const problem = err instanceof ConfigError ? err.problems[0] : undefined;
    if (problem === undefined) return `refused: ${(err as Error).message}`;
    return `refused: ${problem.path}: ${problem.message}`;
  }
}

/** The L4 vs L7 scenario. */
export const l4L7: Scenario = {
  name: 'l4-l7',
  number: 8,
  title: 'L4 vs L7: CPU per request and capabilities',
  claim:
    'An L4 (tcp) balancer forwards bytes without reading them, so it costs less CPU per request; an L7 (http) balancer parses every request, which is what lets it route by path, retry on another server, pin clients by cookie and rewrite headers.',
  setup: (quick) => {
    const p = plan(quick);
    return `Three sample backends: a and b in pool "web", c alone in pool "api". One balancer (one process) with a tcp listener and an http listener on pool web; the http one also routes /api to pool api and /sticky to the same servers with a sticky cookie. CPU: a closed-loop client with ${CONCURRENCY} keep-alive connections sends GET / for ${p.seconds} s to each listener in turn, ${p.reps} repetition(s); the balancer's CPU time (utime + stime of /proc/PID/stat) over each run divided by the requests answered. Capabilities: ${PROBES} requests each through both listeners: GET /api/orders (path route); GET / through a second tcp and http listener pair on a pool of a, b and a server that reads each request and closes without answering (retries: attempts 2 on connect-failure and reset); GET /sticky with a cookie jar; GET / echoed by the backend (forwarding headers). And what the config checker says when asked for a path route or a cookie-sticky pool on a tcp listener.`;
  },
  unavailable: cpuTimesUnavailable,
  async run(ctx: LabContext): Promise<Findings> {
    const p = plan(ctx.quick);
    ctx.progress('starting 3 backends, a server that closes without answering, and the balancer');
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((id) => startBackend(ctx.procs, id)));
    const broken = await startBrokenServer();
    try {
      const server = (x: { port: number; id: string }) => ({ address: `${HOST}:${x.port}`, name: x.id });
      const web = [server(a!), server(b!)];
      const lb = await startBalancer(
        ctx.procs,
        ctx.workDir,
        'l4-l7',
        {
          l4: { protocol: 'tcp', pool: 'web' },
          l7: {
            pool: 'web',
            routes: [
              { match: { pathPrefix: '/api' }, pool: 'api' },
              { match: { pathPrefix: '/sticky' }, pool: 'sticky' },
            ],
          },
          l4flaky: { protocol: 'tcp', pool: 'flaky' },
          l7flaky: 'flaky',
        },
        [
          { name: 'web', algorithm: 'round-robin', servers: web },
          { name: 'api', servers: [server(c!)] },
          { name: 'sticky', algorithm: 'round-robin', servers: web, sticky: { type: 'cookie' } },
          {
            name: 'flaky',
            algorithm: 'round-robin',
            servers: [...web, { address: `${HOST}:${broken.port}`, name: 'broken' }],
            retries: { attempts: 2, on: ['connect-failure', 'reset'] },
          },
        ],
      );

      // CPU per request and requests per second, the listeners taking turns.
      const cpuUs = new Map<string, number[]>(KINDS.map((k) => [k, []]));
      const rate = new Map<string, number[]>(KINDS.map((k) => [k, []]));
      let loadErrors = 0;
      for (let rep = 0; rep < p.reps; rep++) {
        for (const k of KINDS) {
          ctx.progress(`${LABEL[k]}, repetition ${rep + 1}/${p.reps}`);
          const before = cpuSeconds(lb.proc.pid);
          const started = performance.now();
          const samples = await closedLoop(lb.ports[k]!, {
            concurrency: CONCURRENCY,
            durationMs: p.seconds * 1000,
            path: '/',
          });
          const seconds = (performance.now() - started) / 1000;
          const cpu = cpuSeconds(lb.proc.pid) - before;
          const ok = samples.filter((s) => s.status === 200).length;
          loadErrors += samples.length - ok;
          cpuUs.get(k)!.push(ok === 0 ? Number.NaN : (cpu * 1e6) / ok);
          rate.get(k)!.push(ok / seconds);
        }
      }

      ctx.progress('capabilities: path route, retry, cookie, headers');
      const routed: Record<string, number> = {};
      const failed: Record<string, number> = {};
      const stickyServers: Record<string, number> = {};
      const cookieSet: Record<string, boolean> = {};
      const forwarded: Record<string, string[]> = {};
      for (const k of KINDS) {
        const api = await Promise.all(
          Array.from({ length: PROBES }, () => request(lb.ports[k]!, { path: '/api/orders' })),
        );
        routed[k] = api.filter((s) => s.status === 200 && s.servedBy === 'c').length;
        // One request at a time on a new connection each: round robin meets the broken server in turn.
        let bad = 0;
        for (let i = 0; i < PROBES; i++) {
          const s = await request(lb.ports[`${k}flaky`]!, { path: '/' });
          if (s.status !== 200) bad++;
        }
        failed[k] = bad;
        const jar = new CookieClient(lb.ports[k]!);
        const seen = new Set<string>();
        for (let i = 0; i < PROBES; i++) seen.add((await jar.get('/sticky/cart')).servedBy);
        stickyServers[k] = seen.size;
        cookieSet[k] = jar.cookies.size > 0;
        const echo = await request(lb.ports[k]!, { path: '/echo' });
        const headers =
          echo.status === 200 ? (JSON.parse(echo.body) as { headers: Record<string, string> }).headers : {};
        forwarded[k] = Object.keys(headers).filter(
          (h) => h.startsWith('x-forwarded-') || h === 'x-request-id',
        );
      }
      const routeVerdict = configVerdict(
        { pool: 'web', routes: [{ match: { pathPrefix: '/api' }, pool: 'api' }] },
        [
          { name: 'web', servers: web },
          { name: 'api', servers: [server(c!)] },
        ],
      );
      const cookieVerdict = configVerdict({ pool: 'sticky' }, [
        { name: 'sticky', servers: web, sticky: { type: 'cookie' } },
      ]);

      const cpu = (k: string) => spread(cpuUs.get(k)!);
      const rps = (k: string) => spread(rate.get(k)!);
      const checks = [
        check(
          'L7 routes by path: every /api request reached the api server',
          routed.l7 === PROBES,
          `${routed.l7} of ${PROBES} through L7`,
        ),
        check(
          'L4 cannot route by path: it never reads the request, so /api goes to its one pool',
          routed.l4 === 0,
          `${routed.l4} of ${PROBES} through L4 reached the api server; a path route on a tcp listener is ${routeVerdict}`,
        ),
        check(
          'L7 retries a request on another server when one closes without answering; L4 cannot replay the bytes it forwarded',
          failed.l7 === 0 && failed.l4! > 0,
          `failed: ${failed.l4} of ${PROBES} through L4, ${failed.l7} through L7`,
        ),
        check(
          'L7 pins a client by cookie; L4 sets none',
          cookieSet.l7 === true && stickyServers.l7 === 1 && cookieSet.l4 === false,
          `L7: ${stickyServers.l7} server(s) for one client, cookie ${cookieSet.l7 ? 'set' : 'not set'}; L4: ${stickyServers.l4} server(s), cookie ${cookieSet.l4 ? 'set' : 'not set'}`,
        ),
        check(
          'L7 adds forwarding headers; L4 passes the request untouched',
          forwarded.l7!.includes('x-forwarded-for') && forwarded.l4!.length === 0,
          `L7 added ${forwarded.l7!.join(', ') || 'none'}; L4 added ${forwarded.l4!.join(', ') || 'none'}`,
        ),
        check('no request failed while measuring CPU', loadErrors === 0, `${loadErrors} failed`),
      ];
      const yes = (ok: boolean) => (ok ? 'yes' : 'no');
      return {
        tables: [
          {
            caption: `Cost of each, median (min–max) over ${p.reps} repetition(s) of ${p.seconds} s`,
            columns: ['listener', 'balancer CPU µs per request', 'requests per second'],
            rows: KINDS.map((k) => [LABEL[k], fmtSpread(cpu(k), 0), fmtSpread(rps(k), 0)]),
          },
          {
            caption: `What each can do, shown by ${PROBES} requests through each listener`,
            columns: ['capability', 'L4 (tcp)', 'L7 (http)'],
            rows: [
              [
                'routing by path (GET /api/orders to pool api)',
                `${yes(routed.l4 === PROBES)}: ${routed.l4} of ${PROBES} reached the api server (config: a path route on tcp is ${routeVerdict})`,
                `${yes(routed.l7 === PROBES)}: ${routed.l7} of ${PROBES}`,
              ],
              [
                'retry on another server (one server closes without answering)',
                `${yes(failed.l4 === 0)}: ${failed.l4} of ${PROBES} failed`,
                `${yes(failed.l7 === 0)}: ${failed.l7} of ${PROBES} failed`,
              ],
              [
                'cookie stickiness',
                `${yes(cookieSet.l4 === true)}: ${stickyServers.l4} server(s) for one client (config: a cookie-sticky pool on tcp is ${cookieVerdict})`,
                `${yes(cookieSet.l7 === true && stickyServers.l7 === 1)}: ${stickyServers.l7} server for one client`,
              ],
              [
                'header rewriting (forwarding headers)',
                `${yes(forwarded.l4!.length > 0)}: ${forwarded.l4!.join(', ') || 'none added'}`,
                `${yes(forwarded.l7!.length > 0)}: ${forwarded.l7!.join(', ')}`,
              ],
            ],
          },
        ],
        charts: [
          {
            kind: 'bar',
            title: 'Balancer CPU time per request',
            yLabel: 'µs per request',
            categories: KINDS.map((k) => LABEL[k]),
            series: [
              {
                name: 'CPU µs per request',
                values: KINDS.map((k) => cpu(k).median),
                low: KINDS.map((k) => cpu(k).min),
                high: KINDS.map((k) => cpu(k).max),
              },
            ],
          },
          {
            kind: 'bar',
            title: 'Requests per second',
            yLabel: 'requests per second',
            categories: KINDS.map((k) => LABEL[k]),
            series: [
              {
                name: 'requests per second',
                values: KINDS.map((k) => rps(k).median),
                low: KINDS.map((k) => rps(k).min),
                high: KINDS.map((k) => rps(k).max),
              },
            ],
          },
        ],
        meaning: `Here the balancer spent ${fmt(cpu('l4').median, 0)} µs of CPU per request as L4 and ${fmt(cpu('l7').median, 0)} µs as L7 (keep-alive clients; the load generator and backends share the same cores): L4 is the cheaper pipe, and L7 is what pays for reading the request, which is the only way to route by path, retry a request elsewhere, pin by cookie or add headers.`,
        checks,
        figures: {
          'l4.cpuUsPerRequest': cpu('l4').median,
          'l7.cpuUsPerRequest': cpu('l7').median,
          'l4.requestsPerSecond': rps('l4').median,
          'l7.requestsPerSecond': rps('l7').median,
          'l4.pathRouted': routed.l4!,
          'l7.pathRouted': routed.l7!,
          'l4.failedWithBrokenServer': failed.l4!,
          'l7.failedWithBrokenServer': failed.l7!,
          'l4.stickyServers': stickyServers.l4!,
          'l7.stickyServers': stickyServers.l7!,
          'l4.forwardingHeaders': forwarded.l4!.length,
          'l7.forwardingHeaders': forwarded.l7!.length,
        },
      };
    } finally {
      await broken.close();
    }
  },
};
