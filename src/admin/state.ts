/**
 * Runtime changes that survive a reload and a restart: the admin API records them in a state file
 * next to the config file (`<config>.state.json`), and every load of the config file (start,
 * SIGHUP, `POST /api/reload`) applies that file on top of it. The YAML file is never rewritten, so
 * its comments, anchors and layout stay exactly as the operator wrote them.
 *
 * Every runtime change is validated the way the config file is: the running Config is turned back
 * into raw YAML data (`toRaw`), the change is made there with the caller's raw input, and the result
 * goes through `parseConfig`, so the errors are the loader's own ("pools[0].servers[3].weight:
 * expected an integer from 0 to 256, got 300").
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { describeValue } from '../config/errors.js';
import { ConfigError, type ConfigProblem, parseAddress } from '../config/index.js';
import { loadConfig, parseConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import type { Logger } from '../core/log.js';
import type { ServerState } from '../core/server.js';
import type { Runtime } from '../runtime/runtime.js';

/** What an operator can set a server to; the pool states behind them. */
export type AdminState = 'ready' | 'drain' | 'maintenance';
export const ADMIN_STATES: readonly AdminState[] = ['ready', 'drain', 'maintenance'];
export const POOL_STATE: Record<AdminState, ServerState> = {
  ready: 'up',
  drain: 'draining',
  maintenance: 'maintenance',
};

/** The raw (YAML-shaped) data of a config: what a file would hold. */
export type Raw = Record<string, unknown>;

export interface PoolState {
  /** Servers added at run time, as raw server mappings (`address`, `name`, `weight`, ...). */
  added?: Raw[];
  /** Identities of servers removed at run time. */
  removed?: string[];
  /** Weights set at run time, by server identity. */
  weights?: Record<string, number>;
  /** Servers drained or put in maintenance at run time (ready is the default and not stored). */
  states?: Record<string, Exclude<AdminState, 'ready'>>;
}

export interface StateFile {
  version: 1;
  pools: Record<string, PoolState>;
}

export function emptyState(): StateFile {
  return { version: 1, pools: {} };
}

/** Where the state of a config file lives. */
export function stateFileOf(configFile: string): string {
  return `${configFile}.state.json`;
}

// ---------------------------------------------------------------------------------------------
// Config ⇄ raw data

/**
 * A normalized Config back to raw data that `parseConfig` turns into the same Config: addresses
 * become their text, status ranges "200-399"; durations stay numbers (milliseconds, which the
 * loader accepts). Generic on purpose, so that keys added to the schema later round-trip too.
 */
export function toRaw(config: Config): Raw {
  const raw = rawValue(config, '') as Raw;
  // Defaults the loader fills in for every listener, health check and sticky mapping, but
  // rejects when written for another protocol or type (config/checks.ts).
  for (const l of (raw.listeners ?? []) as Raw[]) {
    if (l.protocol === 'http') continue;
    // A dns listener without a default pool is normalized to pool "" (its records name theirs).
    if (l.protocol === 'dns' && l.pool === '') delete l.pool;
    // tcp listeners route by sni; udp and dns ones have no routes.
    if (l.protocol !== 'tcp') delete l.routes;
    delete l.maxHeaderSize;
    if (l.timeouts !== undefined) delete (l.timeouts as Raw).requestHead;
  }
  for (const p of (raw.pools ?? []) as Raw[]) {
    const hc = p.healthCheck as Raw | undefined;
    if (hc?.type === 'tcp')
      for (const k of ['path', 'method', 'expectStatus', 'expectBody', 'host']) delete hc[k];
    const sticky = p.sticky as Raw | undefined;
    if (sticky?.type === 'source') for (const k of ['mode', 'cookie', 'secret']) delete sticky[k];
  }
  return raw;
}

/** One normalized value (a server's config, ...) back to raw data, as `toRaw` does. */
export function rawValue(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) {
    if (key === 'expectStatus' && value.length === 2 && value.every((n) => typeof n === 'number')) {
      return `${value[0]}-${value[1]}`;
    }
    return value.map((item) => rawValue(item, ''));
  }
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (isAddress(o)) return o.text;
    // A rate limit's key ({ from: 'header', name } → "header:NAME").
    if (key === 'key' && typeof o.from === 'string')
      return o.from === 'ip' ? 'ip' : `${o.from}:${String(o.name)}`;
    const out: Raw = {};
    for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = rawValue(v, k);
    return out;
  }
  return value;
}

function isAddress(o: Record<string, unknown>): boolean {
  const keys = Object.keys(o);
  return (
    keys.length === 3 &&
    typeof o.host === 'string' &&
    typeof o.port === 'number' &&
    typeof o.text === 'string'
  );
}

/**
 * Raw data through the config loader. Problems keep their key paths and messages but lose their
 * line numbers (they would point into a generated text), and are reported under `source`.
 */
export function validate(raw: Raw, source: string): Config {
  try {
    return parseConfig(JSON.stringify(raw), source);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(
      source,
      err.problems.map(({ path, message }) => ({ path, message })),
    );
  }
}

/** A raw server mapping's identity, as the loader computes it: its name, else its address. */
export function rawIdentity(server: unknown): string | undefined {
  if (server === null || typeof server !== 'object') return undefined;
  const s = server as Raw;
  if (typeof s.name === 'string') return s.name;
  if (typeof s.address !== 'string') return undefined;
  try {
    return parseAddress(s.address).text;
  } catch {
    return s.address;
  }
}

export function rawPools(raw: Raw): Raw[] {
  return raw.pools as Raw[];
}

export function rawServers(pool: Raw): Raw[] {
  return pool.servers as Raw[];
}

// ---------------------------------------------------------------------------------------------
// The state file

/** Reads a state file; a missing file is an empty state, an invalid one a ConfigError. */
export async function readState(file: string): Promise<StateFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw new ConfigError(file, [{ path: '', message: `cannot read the file (${(err as Error).message})` }]);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `invalid JSON: ${(err as Error).message}` }]);
  }
  return checkState(data, file);
}

/** Writes the state atomically (a temporary file renamed over the old one). */
export async function writeState(file: string, state: StateFile): Promise<void> {
  const pools: Record<string, PoolState> = {};
  for (const [name, p] of Object.entries(state.pools)) {
    const clean: PoolState = {};
    if (p.added !== undefined && p.added.length > 0) clean.added = p.added;
    if (p.removed !== undefined && p.removed.length > 0) clean.removed = p.removed;
    if (p.weights !== undefined && Object.keys(p.weights).length > 0) clean.weights = p.weights;
    if (p.states !== undefined && Object.keys(p.states).length > 0) clean.states = p.states;
    if (Object.keys(clean).length > 0) pools[name] = clean;
  }
  const doc = {
    comment:
      'Runtime changes made through the Fulcrum admin API, applied on top of the config file at start and on every reload. Edit with care, or delete to go back to the file alone.',
    version: 1,
    pools,
  };
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
}

function checkState(data: unknown, file: string): StateFile {
  const problems: ConfigProblem[] = [];
  const bad = (path: string, expected: string, found: unknown) =>
    problems.push({ path, message: `expected ${expected}, got ${describeValue(found)}` });
  if (!isMapping(data)) {
    throw new ConfigError(file, [
      { path: '', message: `expected a JSON object, got ${describeValue(data)}` },
    ]);
  }
  if (data.version !== 1) bad('version', '1', data.version);
  const pools: Record<string, PoolState> = {};
  if (data.pools !== undefined && !isMapping(data.pools)) bad('pools', 'a mapping', data.pools);
  for (const [name, p] of Object.entries(isMapping(data.pools) ? data.pools : {})) {
    const at = `pools.${name}`;
    if (!isMapping(p)) {
      bad(at, 'a mapping', p);
      continue;
    }
    const out: PoolState = {};
    for (const key of Object.keys(p)) {
      if (!['added', 'removed', 'weights', 'states'].includes(key)) {
        problems.push({ path: at, message: `unknown key ${JSON.stringify(key)}` });
      }
    }
    if (p.added !== undefined) {
      if (!Array.isArray(p.added) || !p.added.every((s) => isMapping(s) && rawIdentity(s) !== undefined)) {
        bad(`${at}.added`, 'a list of server mappings', p.added);
      } else out.added = p.added as Raw[];
    }
    if (p.removed !== undefined) {
      if (!Array.isArray(p.removed) || !p.removed.every((s) => typeof s === 'string')) {
        bad(`${at}.removed`, 'a list of server names', p.removed);
      } else out.removed = p.removed as string[];
    }
    if (p.weights !== undefined) {
      if (!isMapping(p.weights)) bad(`${at}.weights`, 'a mapping of server name to weight', p.weights);
      else {
        out.weights = {};
        for (const [id, w] of Object.entries(p.weights)) {
          if (typeof w === 'number' && Number.isInteger(w) && w >= 0 && w <= 256) out.weights[id] = w;
          else bad(`${at}.weights.${id}`, 'an integer from 0 to 256', w);
        }
      }
    }
    if (p.states !== undefined) {
      if (!isMapping(p.states)) bad(`${at}.states`, 'a mapping of server name to state', p.states);
      else {
        out.states = {};
        for (const [id, s] of Object.entries(p.states)) {
          if (s === 'drain' || s === 'maintenance') out.states[id] = s;
          else bad(`${at}.states.${id}`, 'one of drain, maintenance', s);
        }
      }
    }
    pools[name] = out;
  }
  if (problems.length > 0) throw new ConfigError(file, problems);
  return { version: 1, pools };
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------
// Applying the state to a config

/** An operator's state for one server, to set once the config is running. */
export interface ServerAdminState {
  pool: string;
  server: string;
  state: Exclude<AdminState, 'ready'>;
}

export interface AppliedState {
  /** The config file's config with the runtime changes applied, validated. */
  config: Config;
  /** The config file's config alone. */
  base: Config;
  /** The runtime changes that were applied. */
  state: StateFile;
  /** Servers to drain or put in maintenance (see `restoreStates`). */
  states: ServerAdminState[];
  /** Entries that did not apply, in words (logged by the caller). */
  ignored: string[];
}

/**
 * The state on top of a config, in this order for each pool: removals, then additions (an added
 * server whose identity the pool still has is ignored: the file wins), then weights, then states.
 * Entries naming a pool or server that is not there are ignored (and reported in `ignored`). The
 * result is validated like a config file; problems are reported under `source`.
 */
export function overlay(base: Config, state: StateFile, source: string): AppliedState {
  const raw = toRaw(base);
  const ignored: string[] = [];
  const states: ServerAdminState[] = [];
  for (const [poolName, ps] of Object.entries(state.pools)) {
    const pool = rawPools(raw).find((p) => p.name === poolName);
    if (pool === undefined) {
      ignored.push(`pool ${poolName}: not in the config file; its runtime changes are ignored`);
      continue;
    }
    let servers = rawServers(pool);
    for (const id of ps.removed ?? []) {
      const before = servers.length;
      servers = servers.filter((s) => rawIdentity(s) !== id);
      if (servers.length === before)
        ignored.push(`pool ${poolName}: removed server ${id} is not in the file`);
    }
    for (const added of ps.added ?? []) {
      const id = rawIdentity(added);
      if (servers.some((s) => rawIdentity(s) === id)) {
        ignored.push(`pool ${poolName}: server ${id} added at run time is now in the file, which wins`);
        continue;
      }
      servers.push(structuredClone(added));
    }
    for (const [id, weight] of Object.entries(ps.weights ?? {})) {
      const s = servers.find((x) => rawIdentity(x) === id);
      if (s === undefined) ignored.push(`pool ${poolName}: weight of unknown server ${id}`);
      else s.weight = weight;
    }
    for (const [id, st] of Object.entries(ps.states ?? {})) {
      if (servers.some((x) => rawIdentity(x) === id)) states.push({ pool: poolName, server: id, state: st });
      else ignored.push(`pool ${poolName}: state of unknown server ${id}`);
    }
    pool.servers = servers;
  }
  return { config: validate(raw, source), base, state, states, ignored };
}

/** Reads `stateFile` (absent: nothing to apply) and applies it to `config` (see `overlay`). */
export async function applyState(config: Config, stateFile: string): Promise<AppliedState> {
  return overlay(config, await readState(stateFile), stateFile);
}

/**
 * The config file with its state file applied: what `fulcrum start` should run. After
 * `runtime.start()`, call `restoreStates(runtime, result.states)`.
 */
export async function loadWithState(file: string, log?: Logger): Promise<AppliedState> {
  const applied = await applyState(await loadConfig(file), stateFileOf(file));
  for (const line of applied.ignored) log?.warn(`${stateFileOf(file)}: ${line}`);
  return applied;
}

/**
 * Sets the operator's server states of the state file: the listed servers are drained or put in
 * maintenance, and servers in drain or maintenance that it does not list are made ready again
 * (the state file is the record of what the operator wants). A server that health checks hold
 * down stays down.
 */
export function restoreStates(
  runtime: Runtime,
  states: readonly ServerAdminState[],
  except?: Set<string>,
): void {
  const wanted = new Map(states.map((s) => [`${s.pool}\0${s.server}`, s.state]));
  for (const pool of runtime.pools.values()) {
    for (const server of pool.servers) {
      const key = `${pool.name}\0${server.id}`;
      if (except?.has(key)) continue;
      const want = wanted.get(key) ?? 'ready';
      const target = POOL_STATE[want];
      if (server.state === target) continue;
      if (want === 'ready') {
        if (server.state === 'draining' || server.state === 'maintenance') {
          pool.setState(server, 'up', 'admin: ready (state file)');
        }
      } else {
        pool.setState(server, target, `admin: ${want} (state file)`);
      }
    }
  }
}
