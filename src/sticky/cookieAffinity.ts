/**
 * Cookie affinity, HAProxy's two ways:
 * - `insert`: the balancer sets its own cookie naming the chosen server by an opaque token
 *   (serverToken.ts), with the creation and last-use times when `ttl` or `idle` apply (HAProxy's
 *   maxlife and maxidle), and sends it only when needed: no valid cookie, a cookie for another
 *   server, or a last-use time worth refreshing.
 * - `learn`: the application's own session cookie (JSESSIONID, connect.sid): when a server's
 *   response sets it, the stick table remembers session → server (the session id hashed).
 * Either way a cookie that names nothing in the pool (forged, stale, of a removed server) is
 * ignored: the balancing policy chooses, as for a new client.
 */
import type { Affinity } from '../core/affinity.js';
import type { Pool } from '../core/pool.js';
import type { Server } from '../core/server.js';
import { findCookie, parseSetCookie } from './cookieHeader.js';
import { RequestNotes } from './requestNotes.js';
import { type Keyring, sessionKey, TokenMap } from './serverToken.js';
import type { StickTable } from './stickTable.js';

/** Session ids whose stick-table key is kept at hand (learn mode). */
const KEY_CACHE_SIZE = 10_000;

/** Cookie times from the future by more than this are made up: the cookie is ignored. */
const CLOCK_SKEW_MS = 60_000;

export interface InsertCookieOptions {
  cookie: string;
  /** ms the affinity lives after it is created (the cookie's Max-Age). */
  ttl: number | undefined;
  /** ms the affinity survives without a request. */
  idle: number | undefined;
}

/** The refresh of a cookie's last-use time is due once it is this old (a fraction of `idle`). */
export function refreshAfter(idle: number): number {
  return Math.min(idle / 2, Math.max(1000, idle / 8));
}

export class InsertCookieAffinity implements Affinity {
  private readonly pool: Pool;
  private readonly name: string;
  private readonly ttl: number | undefined;
  private readonly idle: number | undefined;
  private readonly timed: boolean;
  private readonly tokens: TokenMap<Server>;
  /** Requests whose cookie is due for a refresh: its creation time, by (client, server). */
  private readonly refresh = new RequestNotes<number>();
  private readonly attributes: string;
  private readonly accept = (value: string) => this.serverOf(value);
  /** Set by serverOf() for the pinned() call that runs it (synchronous, one at a time). */
  private now = 0;
  private created = 0;
  private due = false;

  /** The cookie it reads. */
  get cookie(): string {
    return this.name;
  }

  constructor(pool: Pool, options: InsertCookieOptions, ring: Keyring) {
    this.pool = pool;
    this.name = options.cookie;
    this.ttl = options.ttl;
    this.idle = options.idle;
    this.timed = options.ttl !== undefined || options.idle !== undefined;
    this.tokens = new TokenMap(ring, pool.name);
    this.attributes = '; Path=/; HttpOnly; SameSite=Lax';
  }

  /** Notes held for refreshes (tests, and a bound on memory). */
  get pendingRefreshes(): number {
    return this.refresh.size;
  }

  pinned(clientIp: string, cookieHeader: string | null): Server | undefined {
    if (cookieHeader === null) return undefined;
    this.now = Date.now();
    this.due = false;
    const server = findCookie(cookieHeader, this.name, this.accept);
    if (server !== undefined && this.due) this.refresh.add(clientIp, server.id, this.created);
    return server;
  }

  onResponse(
    clientIp: string,
    server: Server,
    pinned: Server | undefined,
    _setCookies: readonly string[],
    secure: boolean,
  ): string {
    if (pinned === server) {
      const created = this.refresh.take(clientIp, server.id);
      return created === undefined ? '' : this.setCookie(server, created, Date.now(), secure);
    }
    // No valid cookie, or it named a server that could not take the request: a new affinity.
    if (pinned !== undefined) this.refresh.take(clientIp, pinned.id);
    const now = Date.now();
    return this.setCookie(server, now, now, secure);
  }

  /** The `set-cookie` header line pinning a client to `server`. */
  setCookie(server: Server, created: number, now: number, secure: boolean): string {
    let value = this.tokens.token(server.id);
    let line = `set-cookie: ${this.name}=`;
    if (this.timed) value += `.${created.toString(36)}.${now.toString(36)}`;
    line += value + this.attributes;
    if (this.ttl !== undefined)
      line += `; Max-Age=${Math.max(1, Math.ceil((created + this.ttl - now) / 1000))}`;
    if (secure) line += '; Secure';
    return `${line}\r\n`;
  }

  /** The pool's server a cookie value names, if valid and live; notes whether a refresh is due. */
  private serverOf(value: string): Server | undefined {
    const dot = value.indexOf('.');
    const token = dot < 0 ? value : value.slice(0, dot);
    const server = this.tokens.serverOf(token, this.pool.servers);
    if (server === undefined || !this.timed) return server;
    const now = this.now;
    if (dot < 0) {
      // A cookie from before ttl/idle were configured: kept, and given its times now.
      this.created = now;
      this.due = true;
      return server;
    }
    const dot2 = value.indexOf('.', dot + 1);
    if (dot2 < 0) return undefined;
    const created = parseTime(value.slice(dot + 1, dot2));
    const seen = parseTime(value.slice(dot2 + 1));
    if (created > now + CLOCK_SKEW_MS || seen > now + CLOCK_SKEW_MS || seen < created) return undefined;
    if (this.ttl !== undefined && now >= created + this.ttl) return undefined;
    if (this.idle !== undefined) {
      const idleFor = now - seen;
      if (idleFor >= this.idle) return undefined;
      if (idleFor >= refreshAfter(this.idle)) {
        this.created = created;
        this.due = true;
      }
    }
    return server;
  }
}

/** A base-36 time; +Infinity (never valid) when malformed. */
function parseTime(text: string): number {
  if (text.length === 0 || text.length > 11 || !/^[0-9a-z]+$/.test(text)) return Number.POSITIVE_INFINITY;
  return Number.parseInt(text, 36);
}

/**
 * Learn mode: follows the application's session cookie. A response that sets it pins that session
 * to the server that answered; a request carrying it goes back there. The stick table holds a
 * keyed hash of the session id, never the id.
 */
export class LearnCookieAffinity implements Affinity {
  private readonly pool: Pool;
  private readonly name: string;
  private readonly ring: Keyring;
  readonly table: StickTable;
  /** Requests whose session's server cannot take them: their key, by (client, pinned server). */
  private readonly moving = new RequestNotes<string>();
  /** Session id → its key, for the ids seen lately (hashing costs microseconds per request). */
  private readonly keys = new Map<string, string>();
  private readonly keyOf = (value: string): string | undefined => {
    if (value === '') return undefined;
    let key = this.keys.get(value);
    if (key === undefined) {
      key = sessionKey(this.ring, this.pool.name, value);
      if (this.keys.size >= KEY_CACHE_SIZE) this.keys.clear();
      this.keys.set(value, key);
    }
    return key;
  };
  private readonly usable = (id: string) => {
    const s = this.pool.find(id);
    return s !== undefined && this.pool.eligibleServers().includes(s);
  };

  /** The cookie it reads. */
  get cookie(): string {
    return this.name;
  }

  constructor(pool: Pool, cookie: string, ring: Keyring, table: StickTable) {
    this.pool = pool;
    this.name = cookie;
    this.ring = ring;
    this.table = table;
  }

  pinned(clientIp: string, cookieHeader: string | null): Server | undefined | Promise<Server | undefined> {
    if (cookieHeader === null) return undefined;
    const key = findCookie(cookieHeader, this.name, this.keyOf);
    if (key === undefined) return undefined;
    const found = this.table.lookup(key, this.usable);
    if (found instanceof Promise) return found.then((id) => this.resolve(clientIp, key, id));
    return this.resolve(clientIp, key, found);
  }

  onResponse(
    clientIp: string,
    server: Server,
    pinned: Server | undefined,
    setCookies: readonly string[],
    _secure: boolean,
  ): string {
    let learned: string | undefined;
    for (const text of setCookies) {
      const cookie = parseSetCookie(text);
      if (cookie === undefined || cookie.name !== this.name || cookie.value === '') continue;
      const key = this.keyOf(cookie.value)!;
      if (cookie.deleted) this.table.remove(key);
      else {
        // The server that issued the session has it: it wins over whatever was there.
        this.table.assign(key, server.id);
        learned = key;
      }
    }
    if (pinned !== undefined && pinned !== server) {
      // The session's server could not take it: the session now lives where it went.
      const key = this.moving.take(clientIp, pinned.id);
      if (key !== undefined && key !== learned) this.table.assign(key, server.id, pinned.id);
    }
    return '';
  }

  private resolve(clientIp: string, key: string, id: string | undefined): Server | undefined {
    if (id === undefined) return undefined;
    const server = this.pool.find(id);
    if (server === undefined) return undefined; // removed from the pool: a stale entry
    if (!this.pool.eligibleServers().includes(server)) this.moving.add(clientIp, id, key);
    return server;
  }
}
