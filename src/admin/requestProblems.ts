/**
 * Config problems met while applying one admin change, re-said in the request's terms: the
 * admin API validates the whole config with the change in it, so the validator speaks of
 * `pools[0].servers[4].address`; the user asked about pool "web" and sent `{"address": ...}`.
 * Problems on the server being changed get paths relative to the request body (`address`,
 * `weight`); others name their pool, server or listener instead of an index.
 */
import type { ConfigProblem } from '../config/errors.js';
import { type Raw, rawIdentity, rawPools, rawServers } from './state.js';

/** Which part of the config a change is about: a pool, and maybe one of its servers, by index. */
export interface Focus {
  pool: number;
  server?: number;
}

const SERVER_PATH = /^pools\[(\d+)\]\.servers\[(\d+)\](?:\.(.+))?$/;
const POOL_PATH = /^pools\[(\d+)\](?:\.(.+))?$/;
const LISTENER_PATH = /^listeners\[(\d+)\](?:\.(.+))?$/;

/** `problems` of `raw` (the config with the change), with paths in the request's terms. */
export function inRequestTerms(problems: readonly ConfigProblem[], raw: Raw, focus: Focus): ConfigProblem[] {
  const pools = rawPools(raw);
  const poolName = (i: number) => String(pools[i]?.name ?? i);
  const join = (where: string, rest: string | undefined) =>
    rest === undefined ? where : `${where}: ${rest}`;
  const listeners = Array.isArray(raw.listeners) ? (raw.listeners as Raw[]) : [];
  const reword = (path: string): string => {
    const server = SERVER_PATH.exec(path);
    if (server !== null) {
      const [pool, index] = [Number(server[1]), Number(server[2])];
      if (pool === focus.pool && index === focus.server) return server[3] ?? '';
      const raws = pools[pool] === undefined ? [] : rawServers(pools[pool]);
      const id = rawIdentity(raws[index]) ?? String(index);
      return join(`pool ${poolName(pool)}, server ${id}`, server[3]);
    }
    const pool = POOL_PATH.exec(path);
    if (pool !== null) return join(`pool ${poolName(Number(pool[1]))}`, pool[2]);
    const listener = LISTENER_PATH.exec(path);
    if (listener !== null) {
      return join(`listener ${String(listeners[Number(listener[1])]?.name ?? listener[1])}`, listener[2]);
    }
    return path;
  };
  // Messages may point at another entry too ("already used by pools[0].servers[0]").
  const inMessage = (message: string) =>
    message.replace(/\b(?:pools|listeners)\[\d+\](?:\.servers\[\d+\])?/g, (path) => reword(path) || path);
  return problems.map((p) => ({ ...p, path: reword(p.path), message: inMessage(p.message) }));
}

/** The one-line-per-problem message of an answer: `path: message`, or the message alone. */
export function problemText(problems: readonly ConfigProblem[], lead?: string): string {
  return problems
    .map((p) => {
      const line = p.path === '' ? p.message : `${p.path}: ${p.message}`;
      return lead === undefined ? line : `${lead}: ${line}`;
    })
    .join('\n');
}
