/**
 * The entry point of a worker process (forked by the supervisor through node:cluster): a
 * WorkerAgent on the IPC channel. Its log lines name the worker; what every worker would say
 * alike (listeners bound, states applied) is logged at debug level, the supervisor says it once.
 */
import { createLogger, type Logger, log as processLog } from '../core/log.js';
import type { WorkerMessage } from './messages.js';
import { WorkerAgent } from './workerAgent.js';

const slot = process.env.FULCRUM_WORKER_SLOT ?? '?';
const base = createLogger(processLog.level, undefined, processLog.format);
const log: Logger = {
  get level() {
    return base.level;
  },
  set level(level) {
    base.level = level;
  },
  get format() {
    return base.format;
  },
  set format(format) {
    base.format = format;
  },
  debug: (m) => base.debug(`worker ${slot}: ${m}`),
  info: (m) => base.debug(`worker ${slot}: ${m}`),
  warn: (m) => base.warn(`worker ${slot}: ${m}`),
  error: (m) => base.error(`worker ${slot}: ${m}`),
};

const send = (message: WorkerMessage) => {
  if (process.connected) process.send?.(message);
};
const agent = new WorkerAgent({
  file: process.env.FULCRUM_CONFIG_FILE ?? 'config',
  log,
  send,
  exit: (code) => process.exit(code),
});
process.on('message', (m) => agent.onMessage(m));
send({ t: 'hello' });
// The supervisor is gone (killed): nobody heals or reloads us any more; finish and go.
process.on('disconnect', () => void agent.stop(0));
// Ctrl-C reaches the whole process group: the supervisor sends `stop` with the grace period.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => void agent.stop(5000));
process.on('SIGUSR1', () => agent.reopen());
// A bug in the proxy path must not take the worker down silently: say it, then let the
// supervisor replace us.
process.on('uncaughtException', (err) => {
  log.error(`uncaught: ${err.stack ?? err.message}`);
  process.exit(70);
});
