/**
 * The admin endpoint of a running balancer: the HTTP server of the REST API, /metrics, the event
 * stream and the dashboard, with the metrics behind it. It follows `admin` through reloads: a new
 * address is bound before the old one is let go (the metrics carry on), and a new token applies
 * to the next request.
 */
import type { Server as HttpServer, RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AdminChanges } from '../config/diff.js';
import { ConfigError } from '../config/errors.js';
import type { AdminConfig } from '../config/types.js';
import type { Logger } from '../core/log.js';
import { listenError } from '../proxy/listener.js';
import type { PreparedChange } from '../runtime/follower.js';
import type { Runtime } from '../runtime/runtime.js';
import { Auth } from './auth.js';
import type { ClusterView } from './clusterView.js';
import type { Control } from './control.js';
import { EventStream } from './events.js';
import { Telemetry } from './metrics.js';
import { addObserver } from './observers.js';
import { createAdminHandler, createAdminServer, type ExtraRoute } from './server.js';
import { statusView, type ViewContext } from './snapshot.js';

/** How long a closing admin server lets requests in flight finish (a reload that removed it
 * answers on it) before it closes their connections. */
const CLOSE_GRACE_MS = 2000;

export interface EndpointOptions {
  /** Snapshot period of the event stream, ms (default 1000). */
  intervalMs?: number;
  /** A supervisor's workers (src/cluster/): their figures merged, one row each. */
  cluster?: ClusterView;
  /** Routes an embedder adds (the demo lab's controls); see `ExtraRoute`. */
  extraRoutes?: readonly ExtraRoute[];
}

export class AdminEndpoint {
  private server: HttpServer;
  private config: AdminConfig;
  private auth: Auth;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly file: string,
    private readonly handler: RequestListener,
    private readonly log: Logger,
    config: AdminConfig,
    auth: Auth,
    server: HttpServer,
    private readonly stop: () => void,
  ) {
    this.config = config;
    this.auth = auth;
    this.server = server;
  }

  /**
   * Starts the endpoint of `runtime` on `config.listen`; the operations go through `control`.
   * A bind failure is a ConfigError on `admin.listen`, and then nothing is left running.
   */
  static async start(
    runtime: Runtime,
    control: Control,
    config: AdminConfig,
    log: Logger,
    options: EndpointOptions = {},
  ): Promise<AdminEndpoint> {
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
    const stopCounting = control.onReload((ok) => telemetry.countReload(ok));
    const detach = options.cluster?.attach(telemetry);
    const view = (): ViewContext => ({
      runtime,
      telemetry,
      removing: control.removing,
      stateFile: control.stateFile,
      startedAt,
      ...(options.cluster === undefined ? {} : { cluster: options.cluster }),
    });
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
    const stop = () => {
      clearInterval(timer);
      stopCounting();
      detach?.();
      removeObserver();
      telemetry.close();
      events.close();
    };

    // The handler reads the endpoint's current Auth: a reload's new token applies at once.
    let endpoint: AdminEndpoint | undefined;
    const auth = new Auth(config.token);
    const handler = createAdminHandler({
      auth: () => endpoint?.auth ?? auth,
      control,
      telemetry,
      events,
      view,
      log,
      ...(options.cluster === undefined ? {} : { cluster: options.cluster }),
      ...(options.extraRoutes === undefined ? {} : { extraRoutes: options.extraRoutes }),
    });
    let server: HttpServer;
    try {
      server = await listen(handler, config, runtime.file, log);
    } catch (err) {
      stop();
      throw err;
    }
    endpoint = new AdminEndpoint(runtime.file, handler, log, config, auth, server, stop);
    log.info(
      `admin: API, /metrics and dashboard on http://${endpoint.where}/${config.token === undefined ? '' : ' (bearer token required)'}`,
    );
    return endpoint;
  }

  /** Where it listens (the real port when 0 was asked for). */
  get address(): { host: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  private get where(): string {
    const { host, port } = this.address;
    return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  }

  /**
   * Gets ready for a reload's `admin` section: binds the new address first (a failure refuses the
   * reload and this endpoint serves on), and switches address and token on commit.
   */
  async prepare(next: AdminConfig, changes: AdminChanges): Promise<PreparedChange | undefined> {
    if (!changes.listen && !changes.token) return undefined;
    const server =
      changes.listen && !this.listensOn(next) ? await listen(this.handler, next, this.file, this.log) : null;
    const auth = changes.token ? new Auth(next.token) : null;
    return {
      commit: () => {
        this.config = next;
        if (auth !== null) this.auth = auth;
        if (server !== null) {
          const old = this.server;
          this.server = server;
          void closeServer(old);
          this.log.info(`admin: now on http://${this.where}/`);
        }
        if (auth !== null) {
          this.log.info(`admin: ${next.token === undefined ? 'no bearer token' : 'new bearer token'}`);
        }
      },
      abort: async () => {
        if (server !== null) await closeServer(server, 0);
      },
    };
  }

  /** Stops listening; requests in flight get a short while to finish. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stop();
      await closeServer(this.server);
    })();
    return this.closing;
  }

  /** Whether the running socket already serves `next.listen` (port 0 then the port it got). */
  private listensOn(next: AdminConfig): boolean {
    const running = this.config.listen;
    if (next.listen.host !== running.host) return false;
    return next.listen.port === running.port || next.listen.port === this.address.port;
  }
}

/** A new admin server on `config.listen`; a bind failure is a ConfigError on `admin.listen`. */
function listen(
  handler: RequestListener,
  config: AdminConfig,
  file: string,
  log: Logger,
): Promise<HttpServer> {
  const server = createAdminServer(handler);
  const { host, port } = config.listen;
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(
        new ConfigError(file, [{ path: 'admin.listen', message: listenError(host, port, err).message }]),
      );
    };
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      // Errors after binding (accept failures such as EMFILE) are logged, not thrown.
      server.on('error', (err) => log.error(`admin: ${err.message}`));
      resolve(server);
    });
  });
}

/** Stops accepting, closes idle connections, and the rest after `graceMs`. */
function closeServer(server: HttpServer, graceMs = CLOSE_GRACE_MS): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
