import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatAddress } from '../config/address.js';
import { getSession, openStore, sessionMiddleware } from '../session/index.js';

export interface BackendOptions {
  port: number;
  host?: string;
  /** Name in `x-served-by` and the JSON answers; defaults to host:port. */
  id?: string;
  /** Added before every answer (ms), to play a slow server. */
  delayMs?: number;
  /** 'memory' (default), 'redis://H:P', 'memcached://H:P'. */
  sessionStore?: string;
}

export interface RunningBackend {
  readonly id: string;
  readonly port: number;
  readonly host: string;
  readonly server: Server;
  close(): Promise<void>;
}

const SESSION_COOKIE = 'fulcrum.sid';

/**
 * The sample backend of the contract: every answer carries `x-served-by: ID`; `GET /health`,
 * `GET /whoami`, `GET /session` (a per-session counter), and a JSON echo of anything else.
 */
export async function startBackend(options: BackendOptions): Promise<RunningBackend> {
  const host = options.host ?? '127.0.0.1';
  const delayMs = options.delayMs ?? 0;
  const sessions = createSessionHandler(options.sessionStore ?? 'memory');
  let id = options.id ?? '';

  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    res.setHeader('x-served-by', id);
    const answer = () => route(req, res, id, sessions);
    if (delayMs > 0) setTimeout(answer, delayMs);
    else answer();
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: options.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  if (id === '') id = formatAddress({ host, port });
  return {
    id,
    port,
    host,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        void sessions.close();
      }),
  };
}

function route(req: IncomingMessage, res: ServerResponse, id: string, sessions: SessionHandler): void {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/health') return send(res, 200, { status: 'ok', id });
  if (req.method === 'GET' && path === '/whoami') return send(res, 200, { id });
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

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

interface SessionHandler {
  handle(req: IncomingMessage, res: ServerResponse, id: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * The session counter of `GET /session`, on the session library: the store is `--session-store`
 * (`memory` keeps sessions in this process; `redis://` and `memcached://` share them between
 * servers). Every backend must sign cookies with the same secret for a shared store to help.
 */
function createSessionHandler(spec: string): SessionHandler {
  const store = openStore(spec);
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
          send(res, 200, { server: id, count, sessionId: session.id });
        });
      }),
    close: () => store.close(),
  };
}
