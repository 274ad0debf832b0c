/** Shared pieces of the health tests: real Pool/Server objects and tiny real servers on loopback. */
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createPolicy } from '../../src/balancing/index.js';
import type {
  Algorithm,
  HealthCheckConfig,
  OutlierDetectionConfig,
  PoolConfig,
} from '../../src/config/types.js';
import { createLogger, type Logger } from '../../src/core/log.js';
import { Pool } from '../../src/core/pool.js';
import { Server } from '../../src/core/server.js';

export type MemoryLogger = Logger & { lines: string[] };

/** Keeps log lines (without timestamp and level) in memory. */
export function memoryLogger(level: Logger['level'] = 'debug'): MemoryLogger {
  const lines: string[] = [];
  const logger = createLogger(level, (l) => lines.push(l.replace(/^\S+ \S+\s+/, '').trimEnd()));
  return Object.assign(logger, { lines });
}

export function makeServer(id: string, port = 1, weight = 1): Server {
  return new Server({ id, host: '127.0.0.1', port, address: `127.0.0.1:${port}`, weight, backup: false });
}

export function makePool(
  servers: Server[],
  algorithm: Algorithm = 'round-robin',
  name = 'p',
): Pool & {
  log: MemoryLogger;
} {
  const pool = new Pool(name, createPolicy(algorithm), servers);
  pool.log = memoryLogger();
  return pool as Pool & { log: MemoryLogger };
}

export function checkConfig(overrides: Partial<HealthCheckConfig> = {}): HealthCheckConfig {
  return {
    type: 'http',
    path: '/health',
    method: 'GET',
    expectStatus: [200, 399],
    interval: 30,
    timeout: 200,
    rise: 2,
    fall: 3,
    startDown: false,
    ...overrides,
  };
}

export function outlierConfig(overrides: Partial<OutlierDetectionConfig> = {}): OutlierDetectionConfig {
  return {
    consecutiveFailures: 5,
    on5xx: false,
    ejectFor: 30_000,
    maxEjectFor: 300_000,
    maxEjectedPercent: 50,
    ...overrides,
  };
}

export function poolConfig(pool: Pool, overrides: Partial<PoolConfig> = {}): PoolConfig {
  return {
    name: pool.name,
    algorithm: 'round-robin',
    servers: pool.servers.map((s) => ({
      address: { host: s.host, port: s.port, text: s.address },
      name: s.id,
      weight: s.weight,
      backup: s.backup,
    })),
    retries: { attempts: 1, on: ['connect-failure', 'reset'] },
    slowStart: 0,
    timeouts: { connect: 5000, response: 60_000, idle: 30_000 },
    maxIdlePerServer: 64,
    ...overrides,
  };
}

export interface TinyHttp {
  port: number;
  /** Requests received, in order. */
  requests: Array<{ method: string; url: string; headers: IncomingMessage['headers']; at: number }>;
  /** What the next requests get; change it at any time. */
  respond: (req: IncomingMessage, res: ServerResponse) => void;
  close(): Promise<void>;
}

export async function startHttp(
  respond: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end('ok'),
): Promise<TinyHttp> {
  const server = createHttpServer((req, res) => {
    tiny.requests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      at: Date.now(),
    });
    tiny.respond(req, res);
  });
  const tiny: TinyHttp = {
    port: 0,
    requests: [],
    respond,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  tiny.port = await listen(server);
  return tiny;
}

export interface TinyTcp {
  port: number;
  /** Connections accepted so far. */
  accepted: number;
  /** Sockets currently open. */
  open: Set<Socket>;
  close(): Promise<void>;
}

/** Accepts connections and never says a word (or runs `onConnection`). */
export async function startTcp(onConnection: (socket: Socket) => void = () => {}): Promise<TinyTcp> {
  const tiny: TinyTcp = {
    port: 0,
    accepted: 0,
    open: new Set(),
    close: async () => {
      for (const s of tiny.open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createNetServer((socket) => {
    tiny.accepted++;
    tiny.open.add(socket);
    socket.on('close', () => tiny.open.delete(socket));
    socket.on('error', () => {});
    // Flowing, so that the peer's FIN is seen and the socket closes.
    socket.resume();
    onConnection(socket);
  });
  tiny.port = await listen(server);
  return tiny;
}

/** A port nothing listens on (bound once, then closed). */
export async function closedPort(): Promise<number> {
  const server = createNetServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function listen(server: NetServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? a.port : 0);
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `cond` until it holds; fails after `timeoutMs` (generous: machines are loaded). */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}
