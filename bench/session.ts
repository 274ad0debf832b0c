/**
 * Session store benchmark, in one run, against real redis-server and memcached processes it
 * starts on free loopback ports (and stops by PID).
 *
 * Part 1, store: one operation = load + save of a ~1 KB session (get, then set with a TTL), as a
 * request that changes its session costs. Fulcrum's MemoryStore, RedisStore and MemcachedStore,
 * and connect-redis (express-session's usual Redis store) on the same redis-server as the peer.
 * Part 2, HTTP: the same Express app incrementing a counter in the session, measured with
 * keep-alive requests: express-session + connect-redis (the peer), express-session + Fulcrum's
 * RedisStore (the one-line switch), Fulcrum's own middleware + RedisStore.
 *
 * Rounds alternate the contenders, in rotating order, so machine noise spreads evenly. ops/s is
 * the median of the rounds' rates; p50/p99 are per operation; CPU/op is this process's CPU time
 * (the client, and for HTTP also the app) per operation, steadier than wall time on a busy host.
 * Usage: node <out>/bench/session.js [--seconds 0.5] [--rounds 12] [--concurrency 16]
 */
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
  },
});
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
  /** CPU time of this process (user + system) spent while it ran, µs: steadier than wall time. */
  cpuMicros: number;
  /** ops/s of each round: the table shows their median, robust to a burst of noise in one round. */
  rates: number[];
  latencies: number[];
}

/** Runs `op` from CONCURRENCY loops for `seconds`; adds to the contender's totals. */
async function measure(c: Contender, seconds: number, record: boolean): Promise<void> {
  const until = performance.now() + seconds * 1000;
  const start = performance.now();
  const cpu = process.cpuUsage();
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
    const used = process.cpuUsage(cpu);
    const elapsed = performance.now() - start;
    c.ops += ops;
    c.elapsedMs += elapsed;
    c.rates.push((ops * 1000) / elapsed);
    c.cpuMicros += used.user + used.system;
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function race(title: string, contenders: Contender[], peer: string): Promise<void> {
  for (const c of contenders) await measure(c, 0.5, false); // warm-up: JIT, connections
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate who goes first, so no contender always follows the same one (and its garbage).
    for (let k = 0; k < contenders.length; k++) {
      await measure(contenders[(round + k) % contenders.length]!, SECONDS, true);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  const peerRate = median(contenders.find((c) => c.name === peer)?.rates ?? []);
  console.log(`\n${title} (concurrency ${CONCURRENCY}, ${ROUNDS} x ${SECONDS} s each)`);
  const rows = contenders.map((c) => {
    const sorted = c.latencies.sort((a, b) => a - b);
    const rate = median(c.rates);
    return [
      c.name,
      Math.round(rate).toLocaleString('en-US'),
      `${percentile(sorted, 50).toFixed(2)} ms`,
      `${percentile(sorted, 99).toFixed(2)} ms`,
      `${(c.cpuMicros / c.ops).toFixed(1)} µs`,
      `${(rate / peerRate).toFixed(2)}x`,
    ];
  });
  const header = ['store', 'ops/s', 'p50', 'p99', 'CPU/op', `vs ${peer}`];
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

async function listen(app: express.Express): Promise<Server> {
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

/** An HTTP contender: each op is one request of one of SESSIONS browsers (cookie jars). */
function httpContender(name: string, server: Server, cookieName: string): Contender {
  const port = (server.address() as AddressInfo).port;
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

const redis = await startRedis();
const memcached = await startMemcached();
const quiet = { warn: () => {} };
const peerClient = createClient({ url: redis.url });
peerClient.on('error', () => {});
await peerClient.connect();
const memory = new MemoryStore({ maxEntries: 100_000 });
const fulcrumRedis = new RedisStore({ url: redis.url, logger: quiet });
const fulcrumMemcached = new MemcachedStore({ servers: memcached.address, logger: quiet });
const connectRedis = new ConnectRedisStore({ client: peerClient });
const servers: Server[] = [];
try {
  await fulcrumRedis.ready(5000);
  await fulcrumMemcached.ready(5000);
  console.log(`session benchmark: node ${process.version}, redis-server and memcached on loopback`);
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

  const peerHttp = await listen(expressSessionApp(connectRedis));
  const switched = await listen(expressSessionApp(fulcrumRedis));
  const own = await listen(fulcrumApp(fulcrumRedis));
  servers.push(peerHttp, switched, own);
  await race(
    'HTTP: Express app, GET /count changes the session (keep-alive, 1000 browsers)',
    [
      httpContender('express-session + connect-redis', peerHttp, 'connect.sid'),
      httpContender('express-session + fulcrum redis', switched, 'connect.sid'),
      httpContender('fulcrum middleware + redis', own, 'fulcrum.sid'),
    ],
    'express-session + connect-redis',
  );
} finally {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
  await Promise.all([memory.close(), fulcrumRedis.close(), fulcrumMemcached.close()]);
  await peerClient.close();
  await redis.stop();
  await memcached.stop();
}
