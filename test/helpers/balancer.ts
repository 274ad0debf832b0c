import { type Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { parseConfig } from '../../src/config/index.js';
import { createLogger, type Logger } from '../../src/core/log.js';
import { type RunningBackend, startBackend } from '../../src/demo/backend.js';
import { Runtime } from '../../src/runtime/runtime.js';

/** A logger that keeps lines in memory, so tests can assert on them and keep output clean. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger('info', (l) => lines.push(l));
  return Object.assign(logger, { lines });
}

/** Sample backends on loopback, named a, b, c, ... */
export async function startBackends(n: number, delayMs = 0): Promise<RunningBackend[]> {
  const out: RunningBackend[] = [];
  for (let i = 0; i < n; i++) {
    out.push(await startBackend({ port: 0, id: String.fromCharCode(97 + i), delayMs }));
  }
  return out;
}

/** The YAML lines of a pool's server list. */
export function serverList(backends: ReadonlyArray<{ id: string; port: number }>, extra = ''): string {
  return backends.map((b) => `      - { address: "127.0.0.1:${b.port}", name: ${b.id}${extra} }`).join('\n');
}

export interface TestBalancer {
  runtime: Runtime;
  port: number;
  log: Logger & { lines: string[] };
  stop(): Promise<void>;
}

/** A balancer in this process, from YAML; listener "web" on a free port unless the YAML says. */
export async function startBalancer(yaml: string): Promise<TestBalancer> {
  const log = memoryLogger();
  const runtime = new Runtime(parseConfig(yaml, 'test.yaml'), { file: 'test.yaml', log });
  await runtime.start();
  const first = [...runtime.listeners.keys()][0]!;
  return { runtime, port: runtime.address(first).port, log, stop: () => runtime.shutdown(500) };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  agent?: Agent | false;
  localAddress?: string;
  timeoutMs?: number;
}

/** One HTTP request with node:http; resolves with status, headers and the whole body. */
export function request(port: number, opts: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: opts.headers,
        agent: opts.agent ?? false,
        localAddress: opts.localAddress,
        timeout: opts.timeoutMs ?? 5000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * Sends raw bytes and collects everything the balancer answers until it closes the connection
 * (or `waitMs` passes, whichever is first).
 */
export function rawExchange(port: number, bytes: string | Buffer, waitMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), waitMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.write(bytes);
  });
}

export function json<T = Record<string, unknown>>(reply: Reply): T {
  return JSON.parse(reply.body) as T;
}
