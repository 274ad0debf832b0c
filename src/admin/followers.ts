/**
 * The admin endpoint and the access log as the config says, through start and every reload
 * (runtime followers, see runtime/follower.ts): a reload that adds, changes or removes `admin` or
 * `accessLog` applies it, and one that cannot (an address in use, a file that cannot be opened) is
 * refused as a whole while the running ones carry on.
 *
 * This module stays light: the endpoint (prom-client) and the access log (pino) are loaded the
 * first time a config asks for them.
 */
import { ConfigError } from '../config/errors.js';
import type { Logger } from '../core/log.js';
import type { ConfigFollower, PreparedChange } from '../runtime/follower.js';
import type { Runtime } from '../runtime/runtime.js';
import type { AccessLog } from './accessLog.js';
import type { Control } from './control.js';
import type { AdminEndpoint, EndpointOptions } from './endpoint.js';
import { addObserver } from './observers.js';

export interface AdminHandle {
  /** The endpoint while the config has an `admin` section. */
  readonly current: AdminEndpoint | undefined;
  /** Stops following the config and closes the endpoint. */
  close(): Promise<void>;
}

/**
 * Runs the admin endpoint of `runtime` as its config's `admin` section says, now (on a running
 * runtime; before start(), start() does it first) and after every reload. Operations and reloads
 * through the API go through `control`.
 */
export async function followAdmin(
  runtime: Runtime,
  control: Control,
  log: Logger,
  options: EndpointOptions = {},
): Promise<AdminHandle> {
  let endpoint: AdminEndpoint | undefined;
  const follower: ConfigFollower = {
    async prepare(next, changes): Promise<PreparedChange | undefined> {
      const admin = changes?.admin ?? { listen: true, token: true };
      if (!admin.listen && !admin.token) return undefined;
      const old = endpoint;
      if (next.admin === undefined) {
        if (old === undefined) return undefined;
        return {
          commit: () => {
            endpoint = undefined;
            // In the background: a reload through the API still answers on it.
            old.close().catch((err: Error) => log.error(`admin: ${err.message}`));
            log.info('admin: stopped (no admin section any more)');
          },
          abort: async () => {},
        };
      }
      if (old !== undefined) return old.prepare(next.admin, admin);
      const { AdminEndpoint } = await import('./endpoint.js');
      const started = await AdminEndpoint.start(runtime, control, next.admin, log, options);
      return {
        commit: () => {
          endpoint = started;
        },
        abort: () => started.close(),
      };
    },
  };
  const unfollow = await runtime.follow(follower);
  return {
    get current() {
      return endpoint;
    },
    async close() {
      unfollow();
      const old = endpoint;
      endpoint = undefined;
      await old?.close();
    },
  };
}

export interface AccessLogHandle {
  /** The open log while the config has an `accessLog` section. */
  readonly current: AccessLog | null;
  /** Re-opens the file (SIGUSR1 after logrotate). */
  reopen(): void;
  /** Stops following the config; writes what is buffered and closes the file. */
  close(): Promise<void>;
}

/**
 * Runs the access log of `runtime` as its config's `accessLog` section says, now (on a running
 * runtime; before start(), start() does it first) and after every reload. A file that cannot be
 * opened is a ConfigError on `accessLog.path`.
 */
export async function startAccessLog(runtime: Runtime, log: Logger): Promise<AccessLogHandle> {
  let current: AccessLog | null = null;
  let removeObserver: (() => void) | null = null;
  const follower: ConfigFollower = {
    async prepare(next, changes): Promise<PreparedChange | undefined> {
      if (changes !== undefined && !changes.accessLog) return undefined;
      const path = next.accessLog?.path;
      if (path === undefined && current === null) return undefined;
      let opened: AccessLog | null = null;
      if (path !== undefined) {
        const { createAccessLog } = await import('./accessLog.js');
        try {
          opened = await createAccessLog({ path });
        } catch (err) {
          const reason = ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message;
          throw new ConfigError(runtime.file, [
            { path: 'accessLog.path', message: `cannot open ${JSON.stringify(path)}: ${reason}` },
          ]);
        }
      }
      return {
        commit: () => {
          const old = current;
          removeObserver?.();
          current = opened;
          removeObserver = opened === null ? null : addObserver(runtime, opened);
          // What the old log was handed is written before it closes; new lines go to the new one.
          old?.close().catch((err: Error) => log.error(`access log: ${err.message}`));
          log.info(path === undefined ? 'access log off' : `access log: ${path}`);
        },
        abort: async () => {
          await opened?.close();
        },
      };
    },
  };
  const unfollow = await runtime.follow(follower);
  return {
    get current() {
      return current;
    },
    reopen: () => current?.reopen(),
    async close() {
      unfollow();
      removeObserver?.();
      removeObserver = null;
      const old = current;
      current = null;
      await old?.close();
    },
  };
}
