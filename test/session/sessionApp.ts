/**
 * A plain node:http app using the session middleware, with the routes the middleware tests
 * drive, and a MemoryStore that counts what reaches it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getSession, MemoryStore, type SessionOptions, sessionMiddleware } from '../../src/session/index.js';

/** A real MemoryStore that also counts writes and touches, and remembers the last TTL. */
export class CountingStore extends MemoryStore {
  writes = 0;
  touches = 0;
  lastTtl = 0;
  protected override async write(key: string, text: string, ttlSeconds: number): Promise<void> {
    this.writes++;
    this.lastTtl = ttlSeconds;
    return super.write(key, text, ttlSeconds);
  }
  protected override async extend(key: string, ttlSeconds: number): Promise<boolean> {
    this.touches++;
    this.lastTtl = ttlSeconds;
    return super.extend(key, ttlSeconds);
  }
}

export interface TestApp {
  port: number;
  close(): Promise<void>;
}

function json(res: ServerResponse, body: unknown): void {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
}

/** Routes: /count, /count-writehead, /raw-headers, /read, /slow-read, /noop, /login, /logout, /whoami, /stream. */
export async function startSessionApp(
  options: SessionOptions,
  hooks: { beforeChange?: () => Promise<void>; duringRead?: () => Promise<void> } = {},
): Promise<TestApp> {
  const sessions = sessionMiddleware(options);
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const session = getSession(req);
    switch (req.url) {
      case '/count':
        await hooks.beforeChange?.();
        session.count = (Number(session.count) || 0) + 1;
        return json(res, { count: session.count, id: session.id });
      case '/count-writehead': {
        await hooks.beforeChange?.();
        session.count = (Number(session.count) || 0) + 1;
        const body = JSON.stringify({ count: session.count });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
        return;
      }
      case '/raw-headers':
        session.raw = true;
        res.writeHead(201, 'Made', ['x-a', '1', 'x-b', '2']);
        res.end('ok');
        return;
      case '/slow-read':
        await hooks.duringRead?.();
        return json(res, { count: session.count ?? null });
      case '/read':
        return json(res, { count: session.count ?? null, id: session.id });
      case '/noop':
        res.end('ok');
        return;
      case '/login':
        await session.regenerate();
        session.user = 'ada';
        return json(res, { id: session.id });
      case '/logout':
        await session.destroy();
        return json(res, { ok: true });
      case '/whoami':
        return json(res, { user: session.user ?? null, id: session.id });
      case '/stream':
        session.streamed = true;
        res.write('part one;');
        res.end('part two');
        return;
      default:
        res.statusCode = 404;
        res.end();
    }
  };
  const server = createServer((req, res) =>
    sessions(req, res, (err) => {
      if (err) {
        res.statusCode = 500;
        res.end(String(err));
        return;
      }
      handle(req, res).catch((e: unknown) => {
        res.statusCode = 500;
        res.end(String(e));
      });
    }),
  );
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
