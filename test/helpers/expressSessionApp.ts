/**
 * An Express app on express-session with a Fulcrum store, as its own process, as an application
 * moving from connect-redis or connect-memcached would be after its one-line switch. No error
 * handler of its own: a store outage reaches Express's final handler, which answers the
 * StoreUnavailableError's 503.
 *
 *   node expressSessionApp.js --store redis://H:P | redis-client://H:P | memcached://H:P [--max-age MS]
 *
 * `redis-client://` passes a node-redis client the app connected itself (connect-redis's form).
 * Prints `listening PORT` once it serves. Two express-session instances, each with its own store
 * (express-session installs its session factory on its store, so one store serves one
 * instance): `/f/...` with `rolling: false`, cookie `fsid`, keys `sess:ID`, `--max-age` (default
 * 1.5 s); `/r/...` with `rolling: true`, cookie `rsid`, keys `rsess:ID`, one minute. Each has
 * `GET count` (changes the session), `GET read` (does not), `POST login` (regenerate),
 * `POST logout` (destroy). `GET /health` never touches a session.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import express from 'express';
import session from 'express-session';
import { createClient } from 'redis';
import { MemcachedStore, RedisStore } from '../../src/session/index.js';

declare module 'express-session' {
  interface SessionData {
    count: number;
    user: string;
  }
}

const { values } = parseArgs({
  options: { store: { type: 'string' }, 'max-age': { type: 'string', default: '1500' } },
});
const spec = values.store ?? '';
const maxAge = Number(values['max-age']);
const logger = { warn: (message: string) => process.stderr.write(`${message}\n`) };

async function openStore(prefix: string): Promise<RedisStore | MemcachedStore> {
  if (spec.startsWith('redis://')) return new RedisStore({ url: spec, prefix, logger });
  if (spec.startsWith('redis-client://')) {
    const client = createClient({ url: spec.replace('redis-client://', 'redis://') });
    client.on('error', () => {}); // as any app on node-redis must, or an outage crashes it
    await client.connect();
    return new RedisStore({ client, prefix, logger });
  }
  if (spec.startsWith('memcached://')) return new MemcachedStore({ hosts: spec.slice(12), prefix, logger });
  throw new Error(`--store redis://H:P, redis-client://H:P or memcached://H:P, not "${spec}"`);
}

const stores = [await openStore('sess:'), await openStore('rsess:')];
const app = express();
app.set('env', 'production');
app.get('/health', (_req, res) => {
  res.json({ pid: process.pid });
});

for (const [mount, rolling, name, store, age] of [
  ['/f', false, 'fsid', stores[0]!, maxAge],
  ['/r', true, 'rsid', stores[1]!, 60_000],
] as const) {
  const router = express.Router();
  router.use(
    session({
      store,
      name,
      secret: 'e2e-secret',
      resave: false,
      saveUninitialized: false,
      rolling,
      cookie: { maxAge: age, path: mount },
    }),
  );
  router.get('/count', (req, res) => {
    req.session.count = (req.session.count ?? 0) + 1;
    res.json({ count: req.session.count, id: req.sessionID });
  });
  router.get('/read', (req, res) => {
    res.json({ count: req.session.count ?? null, user: req.session.user ?? null, id: req.sessionID });
  });
  router.post('/login', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = 'ada';
      res.json({ id: req.sessionID });
    });
  });
  router.post('/logout', (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.json({ ok: true })));
  });
  app.use(mount, router);
}

const server = app.listen(0, '127.0.0.1');
await once(server, 'listening');
process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
process.once('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  void Promise.all(stores.map((s) => s.close())).then(() => process.exit(0));
});
