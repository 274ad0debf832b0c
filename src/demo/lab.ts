import { formatAddress, parseConfig } from '../config/index.js';
import { type Logger, log } from '../core/log.js';
import { Runtime } from '../runtime/runtime.js';
import type { RunningBackend } from './backend.js';
import { DemoControl } from './demoControl.js';
import { demoRoutes } from './demoRoutes.js';
import { demoConfigYaml } from './sessionStrategy.js';

export interface LabOptions {
  /** Port of the balancer; 0 picks a free one. */
  port: number;
  host: string;
  backends: number;
  log?: Logger;
  /** Where `fulcrum lab` wrote its report, served at /lab/ (default ./lab-report). */
  reportDir?: string;
  /** Simulated users of the Lab panel (default 6) and their pause between requests (default 200 ms). */
  users?: number;
  pauseMs?: number;
}

export interface RunningLab {
  balancer: Runtime;
  /** The backends running now (one killed from the dashboard is missing until restarted). */
  readonly backends: RunningBackend[];
  /** Kill, restart, session strategy and simulated users (the dashboard's Lab panel). */
  control: DemoControl;
  url: string;
  /** The admin API and live dashboard. */
  adminUrl: string;
  stop(): Promise<void>;
}

/**
 * The demo lab: sample backends on loopback behind one balancer, all in this process, so that a
 * newcomer sees balancing work with nothing to set up. The dashboard's Lab panel kills and
 * restarts backends and switches the session strategy while simulated users count lost sessions.
 */
export async function startLab(options: LabOptions): Promise<RunningLab> {
  const logger = options.log ?? log;
  // The backends replicate sessions among themselves (session clustering, all-to-all, acknowledged
  // writes): `GET /session` counts on whichever backend round robin picks. The first one seeds
  // the cluster; the others join it.
  const ids = Array.from({ length: options.backends }, (_, i) => `backend-${String.fromCharCode(97 + i)}`);
  const { backends, attach } = await DemoControl.startBackends(options.host, ids, logger);
  const yaml = demoConfigYaml(
    formatAddress({ host: options.host, port: options.port }),
    backends.map((b) => ({ address: formatAddress(b), name: b.id })),
    false,
  );
  const balancer = new Runtime(parseConfig(yaml, 'demo'), {
    file: 'demo',
    ...(options.log ? { log: options.log } : {}),
  });
  try {
    await balancer.start();
  } catch (err) {
    await Promise.all(backends.map((b) => b.close()));
    throw err;
  }
  const control = attach({
    balancer,
    log: logger,
    ...(options.reportDir === undefined ? {} : { reportDir: options.reportDir }),
    ...(options.users === undefined ? {} : { users: options.users }),
    ...(options.pauseMs === undefined ? {} : { pauseMs: options.pauseMs }),
  });
  const { startAdmin } = await import('../admin/index.js');
  let admin: Awaited<ReturnType<typeof startAdmin>>;
  try {
    admin = await startAdmin(
      balancer,
      { listen: { host: options.host, port: 0, text: formatAddress({ host: options.host, port: 0 }) } },
      logger,
      { stateFile: null, extraRoutes: demoRoutes(control) },
    );
  } catch (err) {
    await balancer.shutdown(1000);
    await control.close();
    throw err;
  }
  const a = balancer.address('web');
  return {
    balancer,
    get backends() {
      return control.backends;
    },
    control,
    url: `http://${formatAddress(a)}`,
    adminUrl: `http://${formatAddress(admin.address)}`,
    async stop() {
      await control.users.stop();
      await admin.close();
      await balancer.shutdown(1000);
      await control.close();
    },
  };
}
