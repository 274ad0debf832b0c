/**
 * The optional JSON access log (`accessLog: { path: stdout | FILE }`), written with pino through
 * an asynchronous, buffered destination (sonic-boom: lines gather in memory and reach the file in
 * writes of at least 4 KiB, off the request path). One line per HTTP request or L4 connection:
 *
 *   {"time":"2025-01-01T12:00:00.000Z","client":"127.0.0.1","listener":"web","method":"GET",
 *    "path":"/whoami","status":200,"bytes":161,"pool":"web","server":"a","duration":0.81,"retries":0}
 *
 * `duration` is in milliseconds. Lines still buffered are written on close (graceful stop); a
 * crash may lose the last few KiB. The process log stays on stderr, so stdout carries only the
 * access log.
 */
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type Logger as Pino, pino } from 'pino';
import type { AccessLogConfig } from '../config/types.js';
import type { ExchangeRecord, TrafficObserver } from '../core/observer.js';

type Destination = ReturnType<typeof pino.destination>;

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
  return {
    path: config.path,
    onExchange(r: ExchangeRecord): void {
      if (closed) return;
      logger.info({
        client: r.clientIp,
        listener: r.listener,
        method: r.method,
        path: r.path,
        status: r.status,
        bytes: r.bytesOut,
        pool: r.pool,
        server: r.server,
        duration: Math.round(r.durationMs * 100) / 100,
        retries: r.retries,
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
        closed = true;
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
