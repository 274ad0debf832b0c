/**
 * The changes an operator makes through the admin API: add a server, set its weight or state,
 * remove it (draining it first), reload the config. One change at a time; each one is validated
 * like the config file, applied to the running balancer and recorded in the state file.
 */
import { access } from 'node:fs/promises';
import { describeValue } from '../config/errors.js';
import { ConfigError, type ConfigProblem } from '../config/index.js';
import { loadConfig } from '../config/load.js';
import { didYouMean } from '../config/suggest.js';
import type { Config } from '../config/types.js';
import type { Logger } from '../core/log.js';
import type { Pool } from '../core/pool.js';
import type { Server } from '../core/server.js';
import type { ReloadSummary, Runtime } from '../runtime/runtime.js';
import { type Focus, inRequestTerms, problemText } from './requestProblems.js';
import {
  ADMIN_STATES,
  type AdminState,
  type AppliedState,
  emptyState,
  overlay,
  POOL_STATE,
  type PoolState,
  type Raw,
  rawIdentity,
  rawPools,
  rawServers,
  rawValue,
  readState,
  restoreStates,
  type StateFile,
  stateFileOf,
  toRaw,
  validate,
  writeState,
} from './state.js';

/** An answer other than success: HTTP status, a one-line message, and the config problems. */
export class AdminError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly problems: ConfigProblem[] = [],
  ) {
    super(message);
  }

  static invalid(err: ConfigError): AdminError {
    return new AdminError(400, err.message, err.problems);
  }
}

/** Where problems in a request body are reported (the "file" of the config errors). */
const REQUEST = 'request';
/** How long a removal waits for in-flight work to finish before removing anyway. */
export const DEFAULT_REMOVE_TIMEOUT_MS = 30_000;

export interface ControlOptions {
  /** The state file; null keeps runtime changes in memory only (no config file to sit next to). */
  stateFile: string | null;
  log: Logger;
  /**
   * The config file and state file as the caller loaded them and the runtime runs them (`fulcrum
   * start` loads them before the runtime starts); absent, the control knows them at the first
   * `reload()` (or `Control.open`).
   */
  loaded?: Pick<AppliedState, 'base' | 'state'>;
}

export interface ReloadResult extends ReloadSummary {
  /** State file entries that did not apply. */
  ignored: string[];
}

interface Removal {
  done: Promise<void>;
  cancel(): void;
}

export class Control {
  readonly stateFile: string | null;
  private state: StateFile = emptyState();
  /** The config file as last loaded (without the state), to tell file servers from added ones. */
  private base: Config | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly removals = new Map<string, Removal>();
  private readonly log: Logger;
  private closed = false;
  private readonly reloadListeners = new Set<(ok: boolean) => void>();

  constructor(
    private readonly runtime: Runtime,
    options: ControlOptions,
  ) {
    this.stateFile = options.stateFile;
    this.log = options.log;
    if (options.loaded !== undefined) {
      this.base = options.loaded.base;
      this.state = options.loaded.state;
    }
  }

  /** Tells `listener` the outcome of every `reload()` (the metrics count them); returns the
   * function that stops telling it. */
  onReload(listener: (ok: boolean) => void): () => void {
    this.reloadListeners.add(listener);
    return () => this.reloadListeners.delete(listener);
  }

  /** `pool\0server` of the servers being removed. */
  get removing(): ReadonlySet<string> {
    return new Set(this.removals.keys());
  }

  /**
   * Loads the config file and the state file and applies them, so that runtime changes made
   * before a restart are back. Without a readable config file, changes stay in memory.
   */
  static async open(runtime: Runtime, log: Logger, stateFile?: string | null) {
    let file = stateFile;
    if (file === undefined) {
      file = (await exists(runtime.file)) ? stateFileOf(runtime.file) : null;
      if (file === null) {
        log.warn(
          `admin: no config file ${runtime.file} to keep runtime changes next to; they last until exit`,
        );
      }
    }
    const control = new Control(runtime, { stateFile: file, log });
    if (file !== null) await control.load(false);
    return control;
  }

  // ------------------------------------------------------------------------------ operations

  addServer(poolName: string, body: unknown): Promise<{ server: Server; pool: Pool }> {
    return this.serialize(async () => {
      this.poolOf(poolName);
      if (!isMapping(body)) {
        throw new AdminError(
          400,
          `expected a server mapping like {"address": "127.0.0.1:3004", "name": "d"}, got ${describeValue(body)}`,
        );
      }
      const raw = toRaw(this.runtime.config);
      const index = rawPools(raw).findIndex((p) => p.name === poolName);
      const servers = rawServers(rawPools(raw)[index]!);
      servers.push(body);
      const next = this.check(raw, { pool: index, server: servers.length - 1 });
      const added = next.pools[index]!.servers.at(-1)!;
      await this.runtime.apply(next);
      const ps = this.poolState(poolName);
      ps.added = (ps.added ?? []).filter((s) => rawIdentity(s) !== added.name);
      ps.added.push(rawValue(added) as Raw);
      delete ps.weights?.[added.name];
      delete ps.states?.[added.name];
      await this.save();
      const pool = this.poolOf(poolName);
      this.log.info(`admin: pool ${poolName}: server ${added.name} (${added.address.text}) added`);
      return { pool, server: pool.find(added.name)! };
    });
  }

  /** Sets a server's weight and/or state (`ready`, `drain`, `maintenance`). */
  updateServer(
    poolName: string,
    id: string,
    body: unknown,
  ): Promise<{ server: Server; pool: Pool; note?: string }> {
    return this.serialize(async () => {
      const pool = this.poolOf(poolName);
      const server = this.serverOf(pool, id);
      if (!isMapping(body)) {
        throw new AdminError(400, `expected a mapping with weight and/or state, got ${describeValue(body)}`);
      }
      const problems: ConfigProblem[] = [];
      for (const key of Object.keys(body)) {
        if (key !== 'weight' && key !== 'state') {
          problems.push({
            path: '',
            message: `unknown key ${JSON.stringify(key)}${didYouMean(key, ['weight', 'state'])}`,
          });
        }
      }
      if (!('weight' in body) && !('state' in body) && problems.length === 0) {
        problems.push({ path: '', message: 'expected at least one of weight, state, got an empty mapping' });
      }
      const state = body.state;
      if (state !== undefined && !ADMIN_STATES.includes(state as AdminState)) {
        const hint = typeof state === 'string' ? didYouMean(state, ADMIN_STATES) : '';
        problems.push({
          path: 'state',
          message: `expected one of ${ADMIN_STATES.join(', ')}, got ${describeValue(state)}${hint}`,
        });
      }
      if (problems.length > 0) throw new AdminError(400, problemText(problems), problems);
      const key = `${poolName}\0${id}`;
      if (state !== undefined && this.removals.has(key)) {
        throw new AdminError(409, `server ${id} of pool ${poolName} is being removed`);
      }

      const ps = this.poolState(poolName);
      if ('weight' in body) {
        const raw = toRaw(this.runtime.config);
        const index = rawPools(raw).findIndex((p) => p.name === poolName);
        const servers = rawServers(rawPools(raw)[index]!);
        const at = servers.findIndex((s) => rawIdentity(s) === id);
        servers[at]!.weight = body.weight;
        const next = this.check(raw, { pool: index, server: at });
        const weight = next.pools[index]!.servers.find((s) => s.name === id)!.weight;
        if (weight !== server.weight) {
          await this.runtime.apply(next);
          this.log.info(`admin: pool ${poolName}: server ${id} weight ${weight}`);
        }
        const added = ps.added?.find((s) => rawIdentity(s) === id);
        const fileWeight = this.base?.pools
          .find((p) => p.name === poolName)
          ?.servers.find((s) => s.name === id)?.weight;
        if (added !== undefined) added.weight = weight;
        else if (fileWeight === weight) delete ps.weights?.[id];
        else {
          ps.weights ??= {};
          ps.weights[id] = weight;
        }
      }
      let note: string | undefined;
      if (state !== undefined) {
        const want = state as AdminState;
        if (want === 'ready' && server.state === 'down') {
          note = 'the server is down by its health checks: it comes back when they pass';
        } else if (want === 'ready') {
          if (server.state !== 'up') pool.setState(server, 'up', 'admin: ready');
        } else {
          pool.setState(server, POOL_STATE[want], `admin: ${want}`);
        }
        if (want === 'ready') delete ps.states?.[id];
        else {
          ps.states ??= {};
          ps.states[id] = want;
        }
      }
      await this.save();
      return { pool, server, ...(note === undefined ? {} : { note }) };
    });
  }

  /**
   * Drains a server, then removes it from its pool once its in-flight work is done (or after
   * `timeoutMs`). The removal is recorded at once. Resolves when the drain has begun; `done`
   * resolves when the server is gone.
   */
  removeServer(
    poolName: string,
    id: string,
    timeoutMs = DEFAULT_REMOVE_TIMEOUT_MS,
  ): Promise<{ server: Server; done: Promise<void> }> {
    return this.serialize(async () => {
      const pool = this.poolOf(poolName);
      const server = this.serverOf(pool, id);
      const key = `${poolName}\0${id}`;
      const pending = this.removals.get(key);
      if (pending !== undefined) return { server, done: pending.done };
      // Would the pool still be valid without it? (Not the last server, ...)
      this.check(this.without(poolName, id), this.focusOn(poolName), `cannot remove server ${id}`);

      pool.setState(server, 'draining', 'admin: remove (draining first)');
      const ps = this.poolState(poolName);
      const wasAdded = ps.added?.some((s) => rawIdentity(s) === id) ?? false;
      ps.added = ps.added?.filter((s) => rawIdentity(s) !== id);
      const inFile = this.base?.pools.find((p) => p.name === poolName)?.servers.some((s) => s.name === id);
      if (inFile ?? !wasAdded) {
        ps.removed = [...new Set([...(ps.removed ?? []), id])];
      }
      delete ps.weights?.[id];
      delete ps.states?.[id];
      await this.save();
      this.log.info(`admin: pool ${poolName}: removing server ${id} (draining ${server.active} in flight)`);

      let cancel = () => {};
      const drained = new Promise<void>((resolve) => {
        const deadline = Date.now() + timeoutMs;
        const timer = setInterval(() => {
          if (server.active > 0 && Date.now() < deadline && !this.closed) return;
          clearInterval(timer);
          resolve();
        }, 50);
        cancel = () => {
          clearInterval(timer);
          resolve();
        };
      });
      const done = drained.then(() =>
        this.serialize(async () => {
          this.removals.delete(key);
          if (this.closed) return;
          const current = this.runtime.pools.get(poolName);
          if (current?.find(id) === undefined) return; // a reload removed it already
          await this.runtime.apply(
            this.check(this.without(poolName, id), this.focusOn(poolName), `cannot remove server ${id}`),
          );
          this.log.info(`admin: pool ${poolName}: server ${id} removed`);
        }),
      );
      this.removals.set(key, { done, cancel });
      return { server, done };
    });
  }

  /** Re-reads the config file and the state file and applies both; on error nothing changes. */
  reload(): Promise<ReloadResult> {
    return this.serialize(async () => {
      let ok = false;
      try {
        const result = await this.load(true);
        ok = true;
        return result;
      } finally {
        for (const listener of this.reloadListeners) listener(ok);
      }
    });
  }

  close(): void {
    this.closed = true;
    for (const r of this.removals.values()) r.cancel();
  }

  // --------------------------------------------------------------------------------- helpers

  private async load(report: boolean): Promise<ReloadResult> {
    const base = await loadConfig(this.runtime.file);
    const state = this.stateFile === null ? this.state : await readState(this.stateFile);
    const applied = overlay(base, state, this.stateFile ?? 'state');
    for (const line of applied.ignored) this.log.warn(`${this.stateFile}: ${line}`);
    const summary = await this.runtime.apply(applied.config);
    restoreStates(this.runtime, applied.states, new Set(this.removals.keys()));
    this.base = base;
    this.state = state;
    if (report)
      this.log.info(`admin: reloaded ${this.runtime.file}${this.stateFile ? ` and ${this.stateFile}` : ''}`);
    return { ...summary, ignored: applied.ignored };
  }

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => {});
    return run;
  }

  /**
   * Validates the config with a change in it; its problems are re-said in the request's terms
   * (`focus`: what the change is about; `lead`: what the answer starts with).
   */
  private check(raw: Raw, focus: Focus, lead?: string): Config {
    try {
      return validate(raw, REQUEST);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      // The running config itself must round-trip; if it does not, that is our bug, not the input.
      try {
        validate(toRaw(this.runtime.config), REQUEST);
      } catch (inner) {
        throw new AdminError(500, `the running config does not validate again: ${(inner as Error).message}`);
      }
      const problems = inRequestTerms(err.problems, raw, focus);
      throw new AdminError(400, problemText(problems, lead), problems);
    }
  }

  private focusOn(poolName: string): Focus {
    return { pool: rawPools(toRaw(this.runtime.config)).findIndex((p) => p.name === poolName) };
  }

  private without(poolName: string, id: string): Raw {
    const raw = toRaw(this.runtime.config);
    const pool = rawPools(raw).find((p) => p.name === poolName)!;
    pool.servers = rawServers(pool).filter((s) => rawIdentity(s) !== id);
    return raw;
  }

  private poolOf(name: string): Pool {
    const pool = this.runtime.pools.get(name);
    if (pool !== undefined) return pool;
    throw noPool(this.runtime, name);
  }

  private serverOf(pool: Pool, id: string): Server {
    const server = pool.find(id);
    if (server !== undefined) return server;
    throw noServer(pool, id);
  }

  private poolState(name: string): PoolState {
    let ps = this.state.pools[name];
    if (ps === undefined) this.state.pools[name] = ps = {};
    return ps;
  }

  /** Writes the state file (entries of pools no longer running are dropped). */
  private async save(): Promise<void> {
    for (const name of Object.keys(this.state.pools)) {
      if (!this.runtime.pools.has(name)) delete this.state.pools[name];
    }
    if (this.stateFile === null) return;
    try {
      await writeState(this.stateFile, this.state);
    } catch (err) {
      throw new AdminError(
        500,
        `the change is applied but could not be saved to ${this.stateFile}: ${(err as Error).message}`,
      );
    }
  }
}

export function noPool(runtime: Runtime, name: string): AdminError {
  const names = [...runtime.pools.keys()];
  return new AdminError(
    404,
    `no pool named ${JSON.stringify(name)} (pools: ${names.join(', ')})${didYouMean(name, names)}`,
  );
}

export function noServer(pool: Pool, id: string): AdminError {
  const ids = pool.servers.map((s) => s.id);
  return new AdminError(
    404,
    `no server ${JSON.stringify(id)} in pool ${pool.name} (servers: ${ids.join(', ')})`,
  );
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}
