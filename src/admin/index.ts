/**
 * The admin endpoint: REST API, Prometheus metrics, live event stream and dashboard, on its own
 * address (`admin.listen`). See docs/admin.md.
 *
 * Two ways to run it:
 * - `followAdmin` (what `fulcrum start` does): the endpoint follows the config's `admin` section
 *   through every reload, started, moved, re-keyed or stopped with it; the caller owns the
 *   `Control` that applies runtime changes and reloads.
 * - `startAdmin` (embedders, tests): one endpoint on a given address for a running runtime. It
 *   also makes runtime changes permanent: it applies the state file next to the config file, and
 *   takes over `runtime.reload()` so that every reload re-applies it on top of the file.
 */
import { adminTokenProblem } from '../config/checks.js';
import { ConfigError, formatPath } from '../config/errors.js';
import type { AdminConfig } from '../config/types.js';
import type { Logger } from '../core/log.js';
import type { Runtime } from '../runtime/runtime.js';
import { Control } from './control.js';
import { AdminEndpoint } from './endpoint.js';
import type { ExtraRoute } from './server.js';

export { type AccessLog, createAccessLog } from './accessLog.js';
export { AdminError, Control } from './control.js';
export { AdminEndpoint } from './endpoint.js';
export { type AccessLogHandle, type AdminHandle, followAdmin, startAccessLog } from './followers.js';
export { addObserver } from './observers.js';
export { type ExtraRoute, type RouteHandler, sendJson } from './server.js';
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
  /** Routes an embedder adds (the demo lab's controls), behind the same token. */
  extraRoutes?: readonly ExtraRoute[];
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
  const control = await Control.open(runtime, log, options.stateFile);
  // Every reload goes through the control, so that the state file is applied on top of the file.
  const originalReload = runtime.reload;
  runtime.reload = () => control.reload();
  const undo = () => {
    runtime.reload = originalReload;
    control.close();
  };
  let endpoint: AdminEndpoint;
  try {
    endpoint = await AdminEndpoint.start(runtime, control, config, log, options);
  } catch (err) {
    undo();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    address: endpoint.address,
    close(): Promise<void> {
      closing ??= (async () => {
        undo();
        await endpoint.close();
      })();
      return closing;
    },
  };
}
