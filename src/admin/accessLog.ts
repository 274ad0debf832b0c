/**
 * The optional JSON access log (`accessLog: { path: stdout | FILE }`), written with pino through
 * an asynchronous, buffered destination (sonic-boom: lines gather in memory and reach the file in
 * writes of at least 4 KiB, off the request path, and at least once a second). One line per HTTP
 * request or L4 connection:
 *
 *   {"time":"2025-01-01T12:00:00.000Z","client":"127.0.0.1","listener":"web","method":"GET",
 *    "host":"example.test","path":"/whoami","query":"a=1","status":200,"bytesIn":78,
 *    "bytesOut":161,"pool":"web","server":"a","duration":0.81,"retries":0,
 *    "requestId":"5b0c…","userAgent":"curl/8.5.0"}
 *
 * A request refused by the listener's protection has `refusedBy` (`rate`, `surge`, `blocked`,
 * `url-length`, `body-size`, `shared-down`).
 * `duration` is in milliseconds; L4 lines have no host, query, request id, user agent or bytesIn.
 * Lines still buffered are written on close (graceful stop) and on process exit; a crash may lose
 * the last second. The process log stays on stderr, so stdout carries only the access log.
 */
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type Logger as Pino, pino } from 'pino';
import type { AccessLogConfig } from '../config/types.js';
import type { ExchangeRecord, TrafficObserver } from '../core/observer.js';

type Destination = ReturnType<typeof pino.destination>;

/** Buffered lines reach the file at least this often. */
const FLUSH_INTERVAL_MS = 1000;

export interface AccessLog extends TrafficObserver {
  readonly path: string;
  /** Writes what is buffered. */
  flush(): Promise<void>;
  /** Re-opens the file (after logrotate moved it). */
  reopen(): void;
  /** Flushes and closes the file. */
  close(): Promise<void>;
}

/** Opens the access log; rejects when the file cannot be opened. */
export async function createAccessLog(config: AccessLogConfig): Promise<AccessLog> {
  const toStdout = config.path === 'stdout';
  if (!toStdout) {
    // Opened once here first, so that a bad path is an error now. (A sonic-boom whose file never
    // opens cannot be closed, and pino's exit hook would then throw.)
    try {
      await mkdir(dirname(config.path), { recursive: true });
      await (await open(config.path, 'a')).close();
    } catch (err) {
      throw new Error(`accessLog.path ${JSON.stringify(config.path)}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
  // Buffer mode: sonic-boom's string mode measures the byte length of its whole pending buffer on
  // every write, which made each line cost ~2 µs more here.
  const dest: Destination = pino.destination({
    dest: toStdout ? 1 : config.path,
    sync: false,
    minLength: 4096,
    contentMode: 'buffer',
  });
  if (!toStdout) {
    await new Promise<void>((resolve, reject) => {
      dest.once('error', reject);
      dest.once('ready', () => {
        dest.off('error', reject);
        resolve();
      });
    });
  }
  // Later write errors (disk full) must not crash the balancer.
  let failed = false;
  dest.on('error', (err: Error) => {
    if (!failed) process.stderr.write(`fulcrum: access log ${config.path}: ${err.message}\n`);
    failed = true;
  });
  // The ISO time, formatted once per millisecond (many lines share one at high rates).
  let lastMs = 0;
  let lastTime = '';
  const logger: Pino = pino(
    {
      base: null,
      // No level field (every line is the same kind): pino then starts the line with the time,
      // so the time fragment must not start with a comma.
      formatters: { level: () => ({}) },
      timestamp: () => {
        const now = Date.now();
        if (now !== lastMs) {
          lastMs = now;
          lastTime = `"time":"${new Date(now).toISOString()}"`;
        }
        return lastTime;
      },
    },
    { write: (line: string) => dest.write(Buffer.from(line) as unknown as string) },
  );
  let closed = false;
  // Lines written since the last flush: a quiet log costs no write a second.
  let pending = false;
  const flushSoon = setInterval(() => {
    if (!pending || closed) return;
    pending = false;
    dest.flush((err) => {
      if (err) failed = true;
    });
  }, FLUSH_INTERVAL_MS);
  // (process.exit() without close: pino.destination registers its own exit flush.)
  flushSoon.unref();
  const stop = () => {
    closed = true;
    clearInterval(flushSoon);
  };
  return {
    path: config.path,
    onExchange(r: ExchangeRecord): void {
      if (closed) return;
      pending = true;
      logger.info({
        client: r.clientIp,
        listener: r.listener,
        method: r.method,
        host: r.host,
        path: r.path,
        query: r.query,
        status: r.status,
        bytesIn: r.bytesIn,
        bytesOut: r.bytesOut,
        pool: r.pool,
        server: r.server,
        duration: Math.round(r.durationMs * 100) / 100,
        retries: r.retries,
        requestId: r.requestId,
        userAgent: r.userAgent,
        refusedBy: r.refusedBy,
      });
    },
    flush: () =>
      new Promise<void>((resolve) => {
        if (closed) return resolve();
        dest.flush((err) => {
          if (err) failed = true;
          resolve();
        });
      }),
    reopen: () => dest.reopen(),
    close: () =>
      new Promise<void>((resolve) => {
        if (closed) return resolve();
        stop();
        if (toStdout) {
          dest.flush(() => resolve());
          return;
        }
        dest.once('close', () => resolve());
        dest.once('error', () => resolve());
        dest.end();
      }),
  };
}
