import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatAddress } from '../config/address.js';
import { bounded } from '../core/bounded.js';
import { listenError } from '../proxy/listener.js';
import {
  getSession,
  type Logger,
  openStore,
  ReplicatedStore,
  type ReplicationMode,
  type SessionStore,
  sessionMiddleware,
} from '../session/index.js';

export interface BackendOptions {
  port: number;
  host?: string;
  /** Name in `x-served-by` and the JSON answers; defaults to host:port. */
  id?: string;
  /** Added before every answer (ms), to play a slow server. */
  delayMs?: number;
  /** CPU time spent on every answer (ms of busy work), to play a server that computes. */
  cpuMs?: number;
  /** 'memory' (default), 'redis://H:P', 'memcached://H:P'; 'cluster' (or nothing) with `cluster`. */
  sessionStore?: string;
  /** Sessions replicated between the backends themselves (a ReplicatedStore) instead of `sessionStore`. */
  cluster?: BackendClusterOptions;
}

export interface BackendClusterOptions {
  mode: ReplicationMode;
  /** `host:port` this node listens on for its peers (also its id in the cluster). */
  listen: string;
  /** The other nodes, `host:port` each; a joining node needs only one. */
  peers: readonly string[];
  secret: string;
  /** Wait for the replicas' acknowledgement before a write resolves. */
  sync: boolean;
  /** Where membership changes and failures are reported (default console). */
  logger?: Logger;
}

export interface RunningBackend {
  /** With a cluster store: this node's id in the cluster (what its peers dial). */
  readonly clusterNode?: string;
  readonly id: string;
  readonly port: number;
  readonly host: string;
  readonly server: Server;
  close(): Promise<void>;
}

const SESSION_COOKIE = 'fulcrum.sid';
/** Longest wait for the session store's close when a backend closes. */
const STORE_CLOSE_WAIT_MS = 3000;

/**
 * The sample backend of the contract: every answer carries `x-served-by: ID`; `GET /health`,
 * `GET /whoami`, `GET /session` (a per-session counter), `GET /cluster` (the replicated store's
 * statistics, 404 with any other store), and a JSON echo of anything else.
 *
 * With `cluster`, the node joins its peers and pulls their sessions before the HTTP port opens,
 * so a backend that answers /health serves the cluster's existing sessions from its first request.
 */
export async function startBackend(options: BackendOptions): Promise<RunningBackend> {
  const host = options.host ?? '127.0.0.1';
  const delayMs = options.delayMs ?? 0;
  const cpuMs = options.cpuMs ?? 0;
  const sessions = createSessionHandler(openBackendStore(options));
  if (sessions.store instanceof ReplicatedStore) {
    try {
      await sessions.store.ready();
    } catch (err) {
      await sessions.close();
      throw err;
    }
  }
  let id = options.id ?? '';

  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    res.setHeader('x-served-by', id);
    const answer = () => {
      if (cpuMs > 0) burnCpu(cpuMs);
      route(req, res, id, sessions);
    };
    if (delayMs > 0) setTimeout(answer, delayMs);
    else answer();
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    // In the balancer's words ("address 127.0.0.1:3001 is already in use"), not a raw errno.
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(host, options.port, err)));
    server.listen({ host, port: options.port }, () => {
      server.removeAllListeners('error');
      resolve();
    });
  }).catch(async (err: unknown) => {
    await sessions.close();
    throw err;
  });
  const port = (server.address() as AddressInfo).port;
  if (id === '') id = formatAddress({ host, port });
  return {
    ...(sessions.store instanceof ReplicatedStore ? { clusterNode: sessions.store.node } : {}),
    id,
    port,
    host,
    server,
    // Resolves once the port is free and the store closed (a cluster node's port too, so a
    // restart can take them again), or after STORE_CLOSE_WAIT_MS should the store hang.
    close: () =>
      Promise.all([
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
        // Its failure, or no answer in time, is ignored: the backend closes anyway.
        bounded(sessions.close(), STORE_CLOSE_WAIT_MS).catch(() => {}),
      ]).then(() => {}),
  };
}

function route(req: IncomingMessage, res: ServerResponse, id: string, sessions: SessionHandler): void {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/health') return send(res, 200, { status: 'ok', id });
  if (req.method === 'GET' && path === '/whoami') return send(res, 200, { id });
  if (req.method === 'GET' && path === '/cluster') {
    if (sessions.store instanceof ReplicatedStore) return send(res, 200, sessions.store.stats());
    return send(res, 404, { error: 'no cluster: this backend does not use --session-store cluster' });
  }
  if (req.method === 'GET' && path === '/session') {
    sessions
      .handle(req, res, id)
      .catch((err: Error) => send(res, 503, { error: `session store: ${err.message}` }));
    return;
  }
  // Echo: method, path, headers and the body's length (counted, never held).
  let bodyLength = 0;
  req.on('data', (chunk: Buffer) => {
    bodyLength += chunk.length;
  });
  req.on('end', () =>
    send(res, 200, { id, method: req.method, path: req.url, headers: req.headers, bodyLength }),
  );
  req.on('error', () => res.destroy());
}

/** Keeps this process's CPU busy for `ms` (the work a computing server does per request). */
function burnCpu(ms: number): void {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x = (x * 31 + 7) % 1_000_003;
  if (x < 0) throw new Error('unreachable');
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

interface SessionHandler {
  readonly store: SessionStore;
  handle(req: IncomingMessage, res: ServerResponse, id: string): Promise<void>;
  close(): Promise<void>;
}

/** `--session-store`: memory, redis://, memcached:// through openStore; `cluster` a ReplicatedStore. */
function openBackendStore(options: BackendOptions): SessionStore {
  const spec = options.sessionStore;
  const cluster = options.cluster;
  if (cluster === undefined) {
    if (spec?.trim() === 'cluster') throw new TypeError('session store "cluster" needs the cluster options');
    return openStore(spec ?? 'memory');
  }
  if (spec !== undefined && spec.trim() !== 'cluster') {
    throw new TypeError(`cluster options given with session store "${spec}": use "cluster" or leave it out`);
  }
  return new ReplicatedStore({
    mode: cluster.mode,
    listen: cluster.listen,
    peers: cluster.peers,
    secret: cluster.secret,
    sync: cluster.sync,
    ...(cluster.logger === undefined ? {} : { logger: cluster.logger }),
  });
}

/**
 * The session counter of `GET /session`, on the session library: the store is `--session-store`
 * (`memory` keeps sessions in this process; `redis://` and `memcached://` share them between
 * servers; `cluster` replicates them between the backends). Every backend must sign cookies with
 * the same secret for a shared store to help.
 *
 * With a ReplicatedStore the answer also tells where the session lives (`primary`, `backup`).
 * That is known only once the session is written (the write picks them), so the handler saves
 * explicitly first; the middleware's own save when the response ends then finds nothing left to
 * do. Should that early save fail, the answer goes without them and the middleware's save at the
 * end decides, as with any other store (its 503 when the store cannot take the session).
 */
function createSessionHandler(store: SessionStore): SessionHandler {
  const cluster = store instanceof ReplicatedStore ? store : undefined;
  const sessions = sessionMiddleware({
    store,
    name: SESSION_COOKIE,
    secret: process.env.FULCRUM_SESSION_SECRET ?? 'fulcrum-demo-session-secret',
  });
  return {
    handle: (req, res, id) =>
      new Promise<void>((resolve) => {
        // The middleware answers 503 itself when the store is unreachable.
        res.once('close', resolve);
        sessions(req, res, (err) => {
          if (err) {
            send(res, 500, { error: `session: ${String(err)}` });
            return;
          }
          const session = getSession(req);
          const count = (Number(session.count) || 0) + 1;
          session.count = count;
          if (cluster === undefined) {
            send(res, 200, { server: id, count, sessionId: session.id });
            return;
          }
          session.save().then(
            () => {
              const where = cluster.locate(session.id);
              send(res, 200, {
                server: id,
                count,
                sessionId: session.id,
                primary: where?.primary ?? null,
                backup: where?.backup ?? null,
              });
            },
            () => send(res, 200, { server: id, count, sessionId: session.id }),
          );
        });
      }),
    store,
    close: () => store.close(),
  };
}
