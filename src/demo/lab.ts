import { randomBytes } from 'node:crypto';
import { formatAddress, parseConfig } from '../config/index.js';
import { type Logger, log } from '../core/log.js';
import { Runtime } from '../runtime/runtime.js';
import { type RunningBackend, startBackend } from './backend.js';

export interface LabOptions {
  /** Port of the balancer; 0 picks a free one. */
  port: number;
  host: string;
  backends: number;
  log?: Logger;
}

export interface RunningLab {
  balancer: Runtime;
  backends: RunningBackend[];
  url: string;
  /** The admin API and live dashboard. */
  adminUrl: string;
  stop(): Promise<void>;
}

/**
 * The demo lab: sample backends on loopback behind one balancer, all in this process, so that a
 * newcomer sees balancing work with nothing to set up.
 */
export async function startLab(options: LabOptions): Promise<RunningLab> {
  const backends: RunningBackend[] = [];
  // The backends replicate sessions among themselves (session clustering, all-to-all, acknowledged
  // writes): `GET /session` counts on whichever backend round robin picks. The first one seeds
  // the cluster; the others join it.
  const secret = randomBytes(16).toString('hex');
  for (let i = 0; i < options.backends; i++) {
    const seed = backends[0]?.clusterNode;
    backends.push(
      await startBackend({
        port: 0,
        host: options.host,
        id: `backend-${String.fromCharCode(97 + i)}`,
        cluster: {
          mode: 'all-to-all',
          listen: formatAddress({ host: options.host, port: 0 }),
          peers: seed === undefined ? [] : [seed],
          secret,
          sync: true,
          logger: options.log ?? log,
        },
      }),
    );
  }
  const yaml = `
listeners:
  - name: web
    protocol: http
    listen: ${formatAddress({ host: options.host, port: options.port })}
    pool: web
pools:
  - name: web
    algorithm: round-robin
    healthCheck: { type: http, path: /health, interval: 1s, timeout: 500ms }
    retries: { attempts: 2 }
    servers:
${backends.map((b) => `      - address: ${formatAddress(b)}\n        name: ${b.id}`).join('\n')}
`;
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
  const { startAdmin } = await import('../admin/index.js');
  const admin = await startAdmin(
    balancer,
    { listen: { host: options.host, port: 0, text: formatAddress({ host: options.host, port: 0 }) } },
    options.log ?? log,
    { stateFile: null },
  );
  const a = balancer.address('web');
  return {
    balancer,
    backends,
    url: `http://${formatAddress(a)}`,
    adminUrl: `http://${formatAddress(admin.address)}`,
    async stop() {
      await admin.close();
      await balancer.shutdown(1000);
      await Promise.all(backends.map((b) => b.close()));
    },
  };
}
