/**
 * The admin endpoint: REST API, Prometheus metrics, live event stream and dashboard, on its own
 * address (`admin.listen`). See docs/admin.md.
 *
 * `startAdmin` also makes runtime changes permanent: it applies the state file next to the config
 * file at start, and takes over `runtime.reload()` so that every reload (SIGHUP as well as
 * `POST /api/reload`) re-applies it on top of the file.
 */
import type { AddressInfo } from 'node:net';
import { adminTokenProblem } from '../config/checks.js';
import { ConfigError, formatPath } from '../config/errors.js';
import type { AdminConfig } from '../config/types.js';
import type { Logger } from '../core/log.js';
import type { Runtime } from '../runtime/runtime.js';
import { Auth } from './auth.js';
import { Control } from './control.js';
import { EventStream } from './events.js';
import { Telemetry } from './metrics.js';
import { addObserver } from './observers.js';
import { createAdminServer } from './server.js';
import { statusView, type ViewContext } from './snapshot.js';

export { type AccessLog, type AccessLogHandle, createAccessLog, startAccessLog } from './accessLog.js';
export { AdminError } from './control.js';
export { addObserver } from './observers.js';
export {
  type AppliedState,
  applyState,
  loadWithState,
  restoreStates,
  stateFileOf,
} from './state.js';

export interface AdminOptions {
  /**
   * Where runtime changes are kept. Default: `<config file>.state.json` when the config file
   * exists, else none (changes then last until exit). null: none.
   */
  stateFile?: string | null;
  /** Snapshot period of the event stream, ms (default 1000). */
  intervalMs?: number;
}

export interface RunningAdmin {
  address: { host: string; port: number };
  close(): Promise<void>;
}

export async function startAdmin(
  runtime: Runtime,
  config: AdminConfig,
  log: Logger,
  options: AdminOptions = {},
): Promise<RunningAdmin> {
  // The config file's own rule, for an AdminConfig that did not come through loadConfig.
  const missingToken = adminTokenProblem(config.listen, config.token);
  if (missingToken !== undefined) {
    throw new ConfigError(runtime.file, [
      { path: formatPath(missingToken.path), message: missingToken.message },
    ]);
  }
  const startedAt = Date.now();
  const events = new EventStream();
  const telemetry = new Telemetry(runtime, (pool, server, from, reason) => {
    events.broadcast('transition', {
      pool: pool.name,
      server: server.id,
      from,
      to: server.state,
      reason,
      at: new Date().toISOString(),
    });
  });
  const removeObserver = addObserver(runtime, telemetry);
  let control: Control;
  try {
    control = await Control.open(runtime, log, options.stateFile, (ok) => telemetry.countReload(ok));
  } catch (err) {
    removeObserver();
    telemetry.close();
    throw err;
  }

  // Every reload goes through the control, so that the state file is applied on top of the file.
  const originalReload = runtime.reload;
  runtime.reload = () => control.reload();

  const view = (): ViewContext => ({
    runtime,
    telemetry,
    removing: control.removing,
    stateFile: control.stateFile,
    startedAt,
  });
  const auth = new Auth(config.token);
  const server = createAdminServer({ auth, control, telemetry, events, view, log });

  const undo = () => {
    runtime.reload = originalReload;
    control.close();
    removeObserver();
    telemetry.close();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: config.listen.host, port: config.listen.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    undo();
    throw new ConfigError(runtime.file, [{ path: 'admin.listen', message: (err as Error).message }]);
  }
  const a = server.address() as AddressInfo;
  const address = { host: a.address, port: a.port };
  const where = address.host.includes(':')
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
  log.info(
    `admin: API, /metrics and dashboard on http://${where}/${config.token === undefined ? '' : ' (bearer token required)'}`,
  );

  const timer = setInterval(() => {
    telemetry.tick();
    if (events.size > 0) {
      try {
        events.broadcast('snapshot', statusView(view()));
      } catch (err) {
        log.error(`admin: snapshot: ${(err as Error).message}`);
      }
    }
  }, options.intervalMs ?? 1000);
  timer.unref();

  let closing: Promise<void> | undefined;
  return {
    address,
    close(): Promise<void> {
      closing ??= (async () => {
        clearInterval(timer);
        undo();
        events.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      })();
      return closing;
    },
  };
}
