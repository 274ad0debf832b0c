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
import type { Logger } from '../core/log.js';
import type { ExchangeRecord, TrafficObserver } from '../core/observer.js';
import type { Runtime } from '../runtime/runtime.js';
import { addObserver } from './observers.js';

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
      throw new Error(`accessLog.path ${JSON.stringify(config.path)}: ${(err as Error).message}`);
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

export interface AccessLogHandle {
  /** The open log, if the config has one. */
  readonly current: AccessLog | null;
  /**
   * Follows `runtime.config.accessLog` after a reload: opens, re-opens elsewhere or closes the
   * log. Also checked once a second, so a reload by any path is picked up.
   */
  update(): Promise<void>;
  /** Re-opens the file (SIGUSR1 after logrotate). */
  reopen(): void;
  close(): Promise<void>;
}

/**
 * Starts the access log of a runtime (from `runtime.config.accessLog`; nothing while it is
 * absent) and keeps it in step with the config. Rejects when the file cannot be opened at start.
 */
export async function startAccessLog(runtime: Runtime, log: Logger): Promise<AccessLogHandle> {
  let current: AccessLog | null = null;
  let remove: (() => void) | null = null;
  let path: string | undefined;
  let busy: Promise<void> = Promise.resolve();
  let stopped = false;

  const apply = async (strict: boolean): Promise<void> => {
    const wanted = runtime.config.accessLog?.path;
    if (wanted === path || stopped) return;
    let next: AccessLog | null = null;
    if (wanted !== undefined) {
      try {
        next = await createAccessLog({ path: wanted });
      } catch (err) {
        if (strict) throw err;
        log.error(
          `${(err as Error).message}; the access log stays ${path === undefined ? 'off' : `on ${path}`}`,
        );
        path = wanted; // do not retry every second; the next config change tries again
        return;
      }
    }
    const old = current;
    remove?.();
    current = next;
    remove = next === null ? null : addObserver(runtime, next);
    path = wanted;
    if (old !== null) await old.close();
    log.info(
      wanted === undefined ? 'access log off' : `access log: ${wanted === 'stdout' ? 'stdout' : wanted}`,
    );
  };
  const update = (strict = false) => {
    busy = busy.then(() => apply(strict));
    return busy;
  };

  await update(true);
  const timer = setInterval(() => {
    if (runtime.config.accessLog?.path !== path) void update().catch(() => {});
  }, 1000);
  timer.unref();

  return {
    get current() {
      return current;
    },
    update: () => update(),
    reopen: () => current?.reopen(),
    close: async () => {
      clearInterval(timer);
      await busy.catch(() => {});
      stopped = true;
      remove?.();
      remove = null;
      await current?.close();
      current = null;
    },
  };
}
