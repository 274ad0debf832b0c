/**
 * The lab's HTTP client: one request with its latency, a cookie jar for session clients, and a
 * closed-loop load generator (N workers, each sending its next request when the last one
 * answered) over a keep-alive agent, recording every request.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { CookieJar } from './cookieJar.js';

/** One request as the client saw it. */
export interface Sample {
  /** When it was sent, ms since the run began. */
  at: number;
  /** Latency in ms (until the whole body arrived, or the failure). */
  ms: number;
  /** HTTP status; 0 when the request failed without an answer. */
  status: number;
  /** The backend's `x-served-by`, '' when none. */
  servedBy: string;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** What one request needs besides the port. */
export interface RequestOptions {
  path?: string;
  agent?: http.Agent;
  headers?: http.OutgoingHttpHeaders;
  /** Source address (127.0.0.x on loopback, to play distinct clients). */
  localAddress?: string;
  timeoutMs?: number;
  host?: string;
}

/** Sends one GET and resolves with its sample; never rejects (a failure is status 0). */
export function request(
  port: number,
  options: RequestOptions = {},
  origin = performance.now(),
): Promise<Sample> {
  const started = performance.now();
  return new Promise<Sample>((resolve) => {
    let settled = false;
    const finish = (status: number, servedBy: string, body: string, headers: http.IncomingHttpHeaders) => {
      if (settled) return;
      settled = true;
      resolve({ at: started - origin, ms: performance.now() - started, status, servedBy, body, headers });
    };
    const req = http.request(
      {
        host: options.host ?? '127.0.0.1',
        port,
        path: options.path ?? '/',
        method: 'GET',
        agent: options.agent ?? false,
        ...(options.headers === undefined ? {} : { headers: options.headers }),
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          finish(
            res.statusCode ?? 0,
            String(res.headers['x-served-by'] ?? ''),
            Buffer.concat(chunks).toString(),
            res.headers,
          ),
        );
        res.on('error', () => finish(0, '', '', {}));
      },
    );
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error('timeout')));
    req.on('error', () => finish(0, '', '', {}));
    req.end();
  });
}

/** A keep-alive agent sized for `sockets` concurrent requests. */
export function keepAliveAgent(sockets: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets });
}

/** A client that keeps the cookies it is given, as a browser would (names and values only). */
export class CookieClient {
  readonly cookies = new CookieJar();

  constructor(
    readonly port: number,
    readonly agent?: http.Agent,
  ) {}

  /** GET `path` with the cookies held; keeps the cookies the answer sets. */
  async get(path: string, origin?: number): Promise<Sample> {
    const cookie = this.cookies.header();
    const sample = await request(
      this.port,
      { path, ...(this.agent === undefined ? {} : { agent: this.agent }), headers: cookie ? { cookie } : {} },
      origin,
    );
    this.cookies.keep(sample.headers['set-cookie']);
    return sample;
  }
}

/** A closed-loop run: `concurrency` workers, each sending a request as soon as its last one answered. */
export interface ClosedLoopOptions extends RequestOptions {
  concurrency: number;
  durationMs: number;
  /** Ends the run early (before `durationMs`). */
  signal?: AbortSignal;
  /** The time 0 of the samples' `at` (performance.now()); default: the start of this run. */
  origin?: number;
  /** Called as each request ends (per-request, no logging). */
  onSample?: (s: Sample) => void;
}

/** Runs a closed loop against `port` and returns every request's sample (bodies dropped). */
export async function closedLoop(port: number, options: ClosedLoopOptions): Promise<Sample[]> {
  const agent = options.agent ?? keepAliveAgent(options.concurrency);
  const origin = options.origin ?? performance.now();
  const end = performance.now() + options.durationMs;
  const samples: Sample[] = [];
  const worker = async () => {
    while (performance.now() < end && options.signal?.aborted !== true) {
      const s = await request(port, { ...options, agent }, origin);
      s.body = '';
      samples.push(s);
      options.onSample?.(s);
      // A refused connection fails at once: pause a little so one dead server cannot spin a worker.
      if (s.status === 0) await new Promise((r) => setTimeout(r, 5));
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  if (options.agent === undefined) agent.destroy();
  return samples;
}

/** Where one request of a paced client goes. */
export interface Target {
  host: string;
  port: number;
}

/** A paced client: one request every `intervalMs` (or as soon as the last answered, when slower). */
export interface PacedOptions extends RequestOptions {
  intervalMs: number;
  durationMs: number;
  /** Ends the run early (before `durationMs`). */
  signal?: AbortSignal;
  /** The time 0 of the samples' `at` (performance.now()); default: the start of this run. */
  origin?: number;
  /**
   * Where each request goes, asked before each one (a client that resolves a name and caches the
   * answer); a rejection counts as a failed request. Default: `port` on 127.0.0.1.
   */
  target?: () => Promise<Target>;
}

/** Runs one paced client against `port` (or its `target`) and returns every request's sample (bodies dropped). */
export async function pacedLoop(port: number, options: PacedOptions): Promise<Sample[]> {
  const origin = options.origin ?? performance.now();
  const end = performance.now() + options.durationMs;
  const samples: Sample[] = [];
  let next = performance.now();
  while (performance.now() < end && options.signal?.aborted !== true) {
    const sentAt = performance.now();
    const target = await (options.target?.() ?? Promise.resolve({ host: '127.0.0.1', port })).catch(
      () => undefined,
    );
    const s: Sample =
      target === undefined
        ? {
            at: sentAt - origin,
            ms: performance.now() - sentAt,
            status: 0,
            servedBy: '',
            body: '',
            headers: {},
          }
        : await request(target.port, { ...options, host: target.host }, origin);
    s.body = '';
    samples.push(s);
    next += options.intervalMs;
    const wait = next - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    else next = performance.now();
  }
  return samples;
}
