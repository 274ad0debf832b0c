/**
 * Session store benchmark, in one run, against real redis-server and memcached processes it
 * starts on free loopback ports (and stops by PID).
 *
 * Part 1, store: one operation = load + save of a ~1 KB session (get, then set with a TTL), as a
 * request that changes its session costs. Fulcrum's MemoryStore, RedisStore and MemcachedStore,
 * and connect-redis (express-session's usual Redis store) on the same redis-server as the peer.
 * Part 2, adapter: what express-session asks of its store for a request that changes its
 * session (get with a callback, createSession, set with a callback), without HTTP: connect-redis
 * and RedisStore on the same client (the store's own work, nothing else differs), and RedisStore
 * on its own client.
 * Part 3, HTTP: the same Express app incrementing a counter in the session, each variant in a
 * process of its own (as an application runs, with one store; in one shared process the
 * variants would also share, and skew, each other's JIT feedback and garbage), measured with
 * keep-alive requests from this process: express-session + connect-redis (the peer),
 * express-session + Fulcrum's RedisStore on a client made as for connect-redis (the one-line
 * switch, `client` kept) and on its own (`url`), Fulcrum's own middleware + RedisStore. CPU/op
 * is then the app process's CPU time per request.
 *
 * Rounds alternate the contenders, in rotating order, so machine noise spreads evenly. ops/s is
 * the median of the rounds' rates; p50/p99 are per operation; CPU/op is this process's CPU time
 * (the client, and for HTTP also the app) per operation, steadier than wall time on a busy host.
 * "vs" is the median over rounds of each round's ratio to the peer's rate in the same round,
 * with the lowest and highest round (the spread), and how many rounds were at least 1.0x.
 * Usage: node <out>/bench/session.js [--seconds 0.5] [--rounds 12] [--concurrency 16]
 *        [--parts store,adapter,http]
 * (`--serve KIND --redis URL` runs one of the HTTP apps: how the benchmark starts them.)
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Agent, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { RedisStore as ConnectRedisStore } from 'connect-redis';
import express from 'express';
import session from 'express-session';
import { createClient } from 'redis';
import {
  getSession,
  MemcachedStore,
  MemoryStore,
  RedisStore,
  type SessionStore,
  sessionMiddleware,
} from '../src/session/index.js';
import { startMemcached } from '../test/helpers/memcachedServer.js';
import { startRedis } from '../test/helpers/redisServer.js';

declare module 'express-session' {
  interface SessionData {
    count: number;
  }
}

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '0.5' },
    rounds: { type: 'string', default: '12' },
    concurrency: { type: 'string', default: '16' },
    parts: { type: 'string', default: 'store,adapter,http' },
    serve: { type: 'string' },
    redis: { type: 'string' },
  },
});
const PARTS = new Set(values.parts.split(',').map((p) => p.trim()));
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const CONCURRENCY = Number(values.concurrency);
const SESSIONS = 1000;

/** One contender: `op` is one measured operation. */
interface Contender {
  name: string;
  op: () => Promise<void>;
  ops: number;
  elapsedMs: number;
  /** CPU time (user + system) spent while it ran, µs: steadier than wall time. */
  cpuMicros: number;
  /** Whose CPU time: this process's by default; an HTTP contender's app process reports its own. */
  cpu?: () => Promise<NodeJS.CpuUsage>;
  /** ops/s of each round: the table shows their median, robust to a burst of noise in one round. */
  rates: number[];
  latencies: number[];
}

/** Runs `op` from CONCURRENCY loops for `seconds`; adds to the contender's totals. */
async function measure(c: Contender, seconds: number, record: boolean): Promise<void> {
  const until = performance.now() + seconds * 1000;
  const start = performance.now();
  const cpuNow = c.cpu ?? (async () => process.cpuUsage());
  const cpu = await cpuNow();
  let ops = 0;
  const loop = async () => {
    while (performance.now() < until) {
      const t = performance.now();
      await c.op();
      if (record) c.latencies.push(performance.now() - t);
      ops++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
  if (record) {
    const elapsed = performance.now() - start;
    const end = await cpuNow();
    const used = { user: end.user - cpu.user, system: end.system - cpu.system };
    c.ops += ops;
    c.elapsedMs += elapsed;
    c.rates.push((ops * 1000) / elapsed);
    c.cpuMicros += used.user + used.system;
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function race(title: string, contenders: Contender[], peer: string): Promise<void> {
  for (const c of contenders) await measure(c, 0.5, false); // warm-up: JIT, connections
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate who goes first, so no contender always follows the same one (and its garbage).
    for (let k = 0; k < contenders.length; k++) {
      await measure(contenders[(round + k) % contenders.length]!, SECONDS, true);
    }
  }
  const peerRates = contenders.find((c) => c.name === peer)?.rates ?? [];
  console.log(`\n${title} (concurrency ${CONCURRENCY}, ${ROUNDS} x ${SECONDS} s each)`);
  const rows = contenders.map((c) => {
    const sorted = c.latencies.sort((a, b) => a - b);
    // Each round's ratio to the peer's rate in the same round: noise that hits a whole round
    // hits both, and the spread shows how far single rounds stray.
    const ratios = c.rates.map((rate, i) => rate / peerRates[i]!);
    const atLeastOne = ratios.filter((r) => r >= 1).length;
    return [
      c.name,
      Math.round(median(c.rates)).toLocaleString('en-US'),
      `${percentile(sorted, 50).toFixed(2)} ms`,
      `${percentile(sorted, 99).toFixed(2)} ms`,
      `${(c.cpuMicros / c.ops).toFixed(1)} µs`,
      `${median(ratios).toFixed(2)}x`,
      `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}x`,
      `${atLeastOne}/${ratios.length}`,
    ];
  });
  const header = ['store', 'ops/s', 'p50', 'p99', 'CPU/op', `vs ${peer}`, 'spread', '>=1.0x'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}

/** A ~1 KB session, like a signed-in user with a little state. */
function sessionData(i: number): Record<string, unknown> {
  return {
    cookie: {
      originalMaxAge: 86_400_000,
      expires: new Date(Date.now() + 86_400_000).toISOString(),
      path: '/',
    },
    user: { id: i, name: `user-${i}`, email: `user-${i}@example.com`, roles: ['reader', 'writer'] },
    cart: Array.from({ length: 8 }, (_, k) => ({ sku: `SKU-${i}-${k}`, qty: (k % 3) + 1, price: 9.99 + k })),
    csrf: 'x'.repeat(43),
    views: 0,
  };
}

function storeContender(name: string, store: SessionStore): Contender {
  let next = 0;
  return {
    name,
    ops: 0,
    elapsedMs: 0,
    cpuMicros: 0,
    rates: [],
    latencies: [],
    op: async () => {
      const id = `bench-${next++ % SESSIONS}`;
      const data = (await store.get(id)) ?? sessionData(0);
      data.views = Number(data.views) + 1;
      await store.set(id, data, 86_400);
    },
  };
}

function connectRedisContender(store: ConnectRedisStore): Contender {
  let next = 0;
  return {
    name: 'connect-redis',
    ops: 0,
    elapsedMs: 0,
    cpuMicros: 0,
    rates: [],
    latencies: [],
    op: async () => {
      const id = `bench-${next++ % SESSIONS}`;
      const data = ((await store.get(id)) ?? sessionData(0)) as unknown as Record<string, unknown>;
      data.views = Number(data.views) + 1;
      await store.set(id, data as never);
    },
  };
}

/** Fake request objects for the adapter part: what express-session's store protocol touches. */
interface AdapterRequest {
  sessionID: string;
  session?: { count?: number; touch?(): void };
  headers: object;
  connection: object;
  url: string;
}

/**
 * One request's worth of express-session's store protocol, without HTTP: get (callback),
 * createSession (or generate for a new session), a change, set (callback) — for `store` as
 * express-session installed on it.
 */
function adapterContender(name: string, store: session.Store): Contender {
  let next = 0;
  const generate = (store as unknown as { generate: (req: AdapterRequest) => void }).generate;
  const one = (id: string) =>
    new Promise<void>((resolve, reject) => {
      const req: AdapterRequest = { sessionID: id, headers: {}, connection: {}, url: '/' };
      store.get(id, (err, sess) => {
        if (err) return reject(err);
        if (sess) store.createSession(req as never, sess);
        else {
          generate(req);
          req.sessionID = id;
        }
        req.session!.count = (req.session!.count ?? 0) + 1;
        req.session!.touch?.();
        store.set(id, req.session as never, (error) => (error ? reject(error) : resolve()));
      });
    });
  return {
    name,
    ops: 0,
    elapsedMs: 0,
    cpuMicros: 0,
    rates: [],
    latencies: [],
    op: () => one(`adapter-${next++ % SESSIONS}`),
  };
}

async function listen(app: express.Express): Promise<Server> {
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** An HTTP contender: each op is one request of one of SESSIONS browsers (cookie jars). */
function httpContender(name: string, port: number, cookieName: string): Contender {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const jars: string[] = Array.from({ length: SESSIONS }, () => '');
  let next = 0;
  return {
    name,
    ops: 0,
    elapsedMs: 0,
    cpuMicros: 0,
    rates: [],
    latencies: [],
    cpu: () =>
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/__cpu', agent }, (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve(JSON.parse(body) as NodeJS.CpuUsage));
        });
        req.on('error', reject);
        req.end();
      }),
    op: () =>
      new Promise<void>((resolve, reject) => {
        const browser = next++ % SESSIONS;
        const cookie = jars[browser]!;
        const req = request(
          { host: '127.0.0.1', port, path: '/count', agent, headers: cookie ? { cookie } : {} },
          (res) => {
            const set = res.headers['set-cookie']?.find((c) => c.startsWith(`${cookieName}=`));
            if (set) jars[browser] = set.split(';')[0]!;
            res.resume();
            res.on('end', () =>
              res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`)),
            );
          },
        );
        req.on('error', reject);
        req.end();
      }),
  };
}

function expressSessionApp(store: session.Store): express.Express {
  const app = express();
  app.use(session({ store, secret: 'bench', resave: false, saveUninitialized: false }));
  app.get('/count', (req, res) => {
    req.session.count = (req.session.count ?? 0) + 1;
    res.json({ count: req.session.count });
  });
  return app;
}

function fulcrumApp(store: SessionStore): express.Express {
  const app = express();
  app.use(sessionMiddleware({ store, secret: 'bench' }));
  app.get('/count', (req, res) => {
    const s = getSession(req);
    s.count = (Number(s.count) || 0) + 1;
    res.json({ count: s.count });
  });
  return app;
}

/** The HTTP apps, by the name `--serve` takes: how each opens its store. */
const APPS: Record<string, (url: string) => Promise<express.Express>> = {
  'connect-redis': async (url) => {
    const client = createClient({ url });
    client.on('error', () => {});
    await client.connect();
    return expressSessionApp(new ConnectRedisStore({ client }));
  },
  'fulcrum-client': async (url) => {
    // The one-line switch that keeps the app's client, made as for connect-redis.
    const client = createClient({ url });
    client.on('error', () => {});
    await client.connect();
    return expressSessionApp(
      new RedisStore({ client, logger: { warn: () => {} } }) as unknown as session.Store,
    );
  },
  'fulcrum-url': async (url) =>
    expressSessionApp(new RedisStore({ url, logger: { warn: () => {} } }) as unknown as session.Store),
  'fulcrum-middleware': async (url) => fulcrumApp(new RedisStore({ url, logger: { warn: () => {} } })),
};

/** `--serve KIND`: one app, in this process; prints its port. */
async function serve(kind: string, url: string): Promise<void> {
  const make = APPS[kind];
  if (!make) throw new Error(`--serve ${Object.keys(APPS).join('|')}`);
  const app = await make(url);
  app.get('/__cpu', (_req, res) => {
    res.json(process.cpuUsage());
  });
  const server = await listen(app);
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
}

/** Starts `--serve KIND` as a child process; resolves with its port and a way to stop it. */
async function startApp(kind: string, url: string): Promise<{ port: number; stop(): void }> {
  const child = spawn(process.execPath, [process.argv[1]!, '--serve', kind, '--redis', url], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`app ${kind} exited (${code})`)));
  });
  return { port, stop: () => child.kill('SIGKILL') };
}

if (values.serve) {
  await serve(values.serve, values.redis ?? '');
} else {
  await main();
}

async function main(): Promise<void> {
  const redis = await startRedis();
  const memcached = await startMemcached();
  const quiet = { warn: () => {} };
  // The peer's client as a connect-redis app creates it: node-redis' defaults.
  const peerClient = createClient({ url: redis.url });
  peerClient.on('error', () => {});
  await peerClient.connect();
  const memory = new MemoryStore({ maxEntries: 100_000 });
  const fulcrumRedis = new RedisStore({ url: redis.url, logger: quiet });
  const fulcrumMemcached = new MemcachedStore({ servers: memcached.address, logger: quiet });
  const connectRedis = new ConnectRedisStore({ client: peerClient });
  /** The one-line switch that keeps the app's client: `new RedisStore({ client })`. */
  const onPeerClient = (): RedisStore => new RedisStore({ client: peerClient, logger: quiet });
  const children: Array<{ stop(): void }> = [];
  try {
    await fulcrumRedis.ready(5000);
    await fulcrumMemcached.ready(5000);
    console.log(`session benchmark: node ${process.version}, redis-server and memcached on loopback`);
    if (PARTS.has('store')) {
      await race(
        'Store: load + save of a ~1 KB session',
        [
          storeContender('fulcrum memory', memory),
          storeContender('fulcrum redis', fulcrumRedis),
          storeContender('fulcrum memcached', fulcrumMemcached),
          connectRedisContender(connectRedis),
        ],
        'connect-redis',
      );
    }

    if (PARTS.has('adapter')) {
      // Each store needs its own express-session (which installs its factory on the store).
      const peer = new ConnectRedisStore({ client: peerClient });
      const same = onPeerClient();
      const own = new RedisStore({ url: redis.url, logger: quiet });
      await own.ready(5000);
      // Both on a client without node-redis' per-command timer: only the stores' own work differs.
      const untimed = createClient({ url: redis.url, commandOptions: { timeout: 0 } });
      untimed.on('error', () => {});
      await untimed.connect();
      const peerUntimed = new ConnectRedisStore({ client: untimed });
      const sameUntimed = new RedisStore({ client: untimed, logger: quiet });
      for (const store of [peer, same, own, peerUntimed, sameUntimed]) {
        session({ store, secret: 'bench', resave: false, saveUninitialized: false });
      }
      await race(
        "Adapter: express-session's store calls for one request that changes its session, no HTTP",
        [
          adapterContender('connect-redis', peer),
          adapterContender('fulcrum redis, same client', same as unknown as session.Store),
          adapterContender('fulcrum redis, own client', own as unknown as session.Store),
          adapterContender('connect-redis, untimed client', peerUntimed),
          adapterContender('fulcrum redis, untimed client', sameUntimed as unknown as session.Store),
        ],
        'connect-redis',
      );
      await own.close();
      await untimed.close();
    }

    if (PARTS.has('http')) {
      const kinds = ['connect-redis', 'fulcrum-client', 'fulcrum-url', 'fulcrum-middleware'];
      const started = await Promise.all(kinds.map((kind) => startApp(kind, redis.url)));
      children.push(...started);
      const [peerHttp, switchedClient, switched, own] = started.map((a) => a.port);
      await race(
        'HTTP: Express app, GET /count changes the session (keep-alive, 1000 browsers, one process per app)',
        [
          httpContender('express-session + connect-redis', peerHttp!, 'connect.sid'),
          httpContender('express-session + fulcrum redis { client }', switchedClient!, 'connect.sid'),
          httpContender('express-session + fulcrum redis { url }', switched!, 'connect.sid'),
          httpContender('fulcrum middleware + redis', own!, 'fulcrum.sid'),
        ],
        'express-session + connect-redis',
      );
    }
  } finally {
    for (const child of children) child.stop();
    await Promise.all([memory.close(), fulcrumRedis.close(), fulcrumMemcached.close()]);
    await peerClient.close();
    await redis.stop();
    await memcached.stop();
  }
}
