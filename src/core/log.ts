/**
 * The process log: one human-readable line per event, to stderr, like HAProxy's and nginx's
 * error logs. Nothing on the per-request hot path logs unless something went wrong.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  level: LogLevel;
}

export type LogSink = (line: string) => void;

export function createLogger(
  level: LogLevel = 'info',
  sink: LogSink = (l) => process.stderr.write(l),
): Logger {
  const logger: Logger = {
    level,
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
  };
  function emit(lvl: LogLevel, msg: string): void {
    if (ORDER[lvl] < ORDER[logger.level]) return;
    sink(`${new Date().toISOString()} ${lvl.toUpperCase().padEnd(5)} ${msg}\n`);
  }
  return logger;
}

/** Default logger; the CLI sets its level. Libraries take a Logger to stay testable. */
export const log: Logger = createLogger((process.env.FULCRUM_LOG_LEVEL as LogLevel | undefined) ?? 'info');
