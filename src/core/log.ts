/**
 * The process log: one line per event, to stderr, like HAProxy's and nginx's error logs: human
 * readable by default, one JSON object a line with `format: 'json'` (for log shippers). Nothing on
 * the per-request hot path logs unless something went wrong.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
/** The levels, least severe first (what `--log-level` accepts). */
export const LOG_LEVELS = Object.keys(ORDER) as readonly LogLevel[];

export type LogFormat = 'text' | 'json';
/** The line formats `--log-format` accepts. */
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

/** True for a name in LOG_LEVELS. */
export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && Object.hasOwn(ORDER, value);
}

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  level: LogLevel;
  format: LogFormat;
}

export type LogSink = (line: string) => void;

export function createLogger(
  level: LogLevel = 'info',
  sink: LogSink = (l) => process.stderr.write(l),
  format: LogFormat = 'text',
): Logger {
  const logger: Logger = {
    level,
    format,
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
  };
  function emit(lvl: LogLevel, msg: string): void {
    if (ORDER[lvl] < ORDER[logger.level]) return;
    const time = new Date().toISOString();
    sink(
      logger.format === 'json'
        ? `${JSON.stringify({ time, level: lvl, msg })}\n`
        : `${time} ${lvl.toUpperCase().padEnd(5)} ${msg}\n`,
    );
  }
  return logger;
}

/** Default logger; the CLI sets its level. Libraries take a Logger to stay testable. */
export const log: Logger = createLogger(
  isLogLevel(process.env.FULCRUM_LOG_LEVEL) ? process.env.FULCRUM_LOG_LEVEL : 'info',
  undefined,
  process.env.FULCRUM_LOG_FORMAT === 'json' ? 'json' : 'text',
);
