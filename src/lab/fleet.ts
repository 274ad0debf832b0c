/**
 * The lab's parts, started for real: sample backends (`fulcrum backend`), balancers (`fulcrum
 * start` on a generated config file, with an admin API to watch), redis-server and memcached on
 * free loopback ports with their own folders.
 */
import fs from 'node:fs';
import path from 'node:path';
import { request } from './load.js';
import {
  findBinary,
  freePort,
  HOST,
  type LabProcess,
  type ProcessGroup,
  sleep,
  waitForPort,
} from './processes.js';

/** A running sample backend. */
export interface Backend {
  id: string;
  port: number;
  proc: LabProcess;
  /** The `fulcrum backend` arguments after --port, to start it again on the same port. */
  args: string[];
}

/**
 * Starts `fulcrum backend` as `id` on a free port (or `port`) of `host` with extra arguments
 * (`--delay`, `--session-store`...). Loopback addresses other than 127.0.0.1 may share a port.
 */
export async function startBackend(
  procs: ProcessGroup,
  id: string,
  args: string[] = [],
  port?: number,
  host = HOST,
): Promise<Backend> {
  const p = port ?? (await freePort());
  const all = ['--id', id, ...(host === HOST ? [] : ['--host', host]), ...args];
  const proc = procs.fulcrum(`backend-${id}`, ['backend', '--port', String(p), ...all]);
  await waitForPort(p, proc, 60_000, host);
  return { id, port: p, proc, args: all };
}

/** Starts a stopped or killed backend again on its port, with its arguments. */
export async function restartBackend(procs: ProcessGroup, b: Backend): Promise<Backend> {
  const proc = procs.fulcrum(`backend-${b.id}`, ['backend', '--port', String(b.port), ...b.args]);
  await waitForPort(b.port, proc);
  b.proc = proc;
  return b;
}

/** A running balancer: its listeners' ports by name and its admin API port. */
export interface Balancer {
  proc: LabProcess;
  ports: Record<string, number>;
  adminPort: number;
  configFile: string;
}

/** A pool of the generated config (the config file's keys, as JSON). */
export type PoolConfig = Record<string, unknown> & { name: string };

/** A listener of the generated config given by its keys (`protocol`, `pool`, `routes`, `zones`...), without `name` and `listen`. */
export type ListenerConfig = Record<string, unknown>;

/**
 * Writes a config (JSON is YAML) with one listener per entry of `listeners` on free ports (name →
 * pool: an http listener; name → keys: that listener, http unless `protocol` says otherwise), the
 * given pools and an admin API, starts `fulcrum start` on it and waits until every listener
 * accepts connections (a dns listener's TCP side).
 */
export async function startBalancer(
  procs: ProcessGroup,
  workDir: string,
  name: string,
  listeners: Record<string, string | ListenerConfig>,
  pools: PoolConfig[],
): Promise<Balancer> {
  const ports: Record<string, number> = {};
  for (const l of Object.keys(listeners)) ports[l] = await freePort();
  const adminPort = await freePort();
  const config = {
    admin: { listen: `${HOST}:${adminPort}` },
    shutdownTimeout: '2s',
    listeners: Object.entries(listeners).map(([l, spec]) => ({
      name: l,
      protocol: 'http',
      listen: `${HOST}:${ports[l]}`,
      ...(typeof spec === 'string' ? { pool: spec } : spec),
    })),
    pools,
  };
  const configFile = path.join(workDir, `${name}.yaml`);
  fs.writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
  const proc = procs.fulcrum(`balancer-${name}`, ['start', '-c', configFile]);
  for (const port of Object.values(ports)) await waitForPort(port, proc);
  await waitForPort(adminPort, proc);
  return { proc, ports, adminPort, configFile };
}

/** The servers of `pool` as the admin API shows them (id, state, ejected...). */
export async function serverStates(b: Balancer, pool: string): Promise<Map<string, string>> {
  const s = await request(b.adminPort, {
    path: `/api/pools/${encodeURIComponent(pool)}/servers`,
    timeoutMs: 3000,
  });
  const states = new Map<string, string>();
  if (s.status !== 200) return states;
  const body = JSON.parse(s.body) as { servers: { id: string; state: string; ejected: boolean }[] };
  for (const v of body.servers) states.set(v.id, v.ejected ? 'ejected' : v.state);
  return states;
}

/** Polls the admin API until `server` of `pool` is in `state`; the ms it took, or NaN at the timeout. */
export async function waitForServerState(
  b: Balancer,
  pool: string,
  server: string,
  state: string,
  timeoutMs = 15_000,
  pollMs = 25,
): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    const states = await serverStates(b, pool).catch(() => new Map<string, string>());
    if (states.get(server) === state) return Date.now() - started;
    await sleep(pollMs);
  }
  return Number.NaN;
}

/** A redis-server or memcached started by the lab. */
export interface StoreServer {
  kind: 'redis' | 'memcached';
  port: number;
  url: string;
  proc: LabProcess;
  dir: string;
}

/** Why redis-server or memcached cannot be started here, or undefined when both can. */
export function storesUnavailable(): string | undefined {
  const missing = ['redis-server', 'memcached'].filter((b) => findBinary(b) === undefined);
  if (missing.length === 0) return undefined;
  return `${missing.join(' and ')} not installed (Debian: apt-get install ${missing.join(' ')})`;
}

/**
 * Starts redis-server (append-only file fsync'd every second, in its own folder, so a restart
 * finds the sessions again) or memcached (memory only) on a free port, or on `port` for a restart.
 */
export async function startStore(
  procs: ProcessGroup,
  workDir: string,
  kind: 'redis' | 'memcached',
  port?: number,
): Promise<StoreServer> {
  const p = port ?? (await freePort());
  const dir = path.join(workDir, `${kind}-${p}`);
  fs.mkdirSync(dir, { recursive: true });
  let proc: LabProcess;
  if (kind === 'redis') {
    const bin = findBinary('redis-server');
    if (bin === undefined) throw new Error('redis-server is not installed');
    proc = procs.start(kind, bin, [
      '--port',
      String(p),
      '--bind',
      HOST,
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--daemonize',
      'no',
    ]);
  } else {
    const bin = findBinary('memcached');
    if (bin === undefined) throw new Error('memcached is not installed');
    const user = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
    proc = procs.start(kind, bin, ['-l', HOST, '-p', String(p), '-U', '0', '-m', '64', ...user]);
  }
  await waitForPort(p, proc);
  return { kind, port: p, url: `${kind}://${HOST}:${p}`, proc, dir };
}
