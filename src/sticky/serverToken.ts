/**
 * The opaque ids that sticky cookies and stick tables use instead of server names or addresses:
 * HMAC-SHA256 with the pool's sticky secret, so a cookie neither reveals the server behind it nor
 * can be made up for a server by a client that does not know the secret. Stable: the same secret,
 * pool name and server identity give the same id in every process, after every restart, and
 * whatever other servers the pool has.
 */
import { createHmac } from 'node:crypto';

/**
 * The key used when `sticky.secret` is absent: the same in every Fulcrum, so affinities still
 * survive restarts and are understood by every instance, but public: cookie values can then be
 * matched against guessed server names. Set a secret.
 */
const DERIVED_KEY = 'fulcrum sticky default key v1 (set sticky.secret)';

/** Characters of a cookie's server id: 16 base64url characters are 96 bits. */
const TOKEN_LENGTH = 16;

export interface Keyring {
  /** The configured secret, or the public default. */
  readonly key: string;
  /** True when no secret was configured. */
  readonly derived: boolean;
}

export function keyring(secret: string | undefined): Keyring {
  return secret === undefined ? { key: DERIVED_KEY, derived: true } : { key: secret, derived: false };
}

/** The cookie value that names `serverId` of `pool`: 16 base64url characters. */
export function serverToken(ring: Keyring, pool: string, serverId: string): string {
  return createHmac('sha256', ring.key)
    .update(`server\n${pool}\n${serverId}`)
    .digest('base64url')
    .slice(0, TOKEN_LENGTH);
}

/**
 * The stick-table key of an application session id (learn mode): a keyed hash, so that the
 * table (and a shared Redis) never holds session ids, which are credentials.
 */
export function sessionKey(ring: Keyring, pool: string, sessionId: string): string {
  return createHmac('sha256', ring.key)
    .update(`session\n${pool}\n${sessionId}`)
    .digest('base64url')
    .slice(0, 22);
}

/** Server id → token and back for one pool, rebuilt when its server list changes. */
export class TokenMap<S extends { readonly id: string }> {
  private readonly ring: Keyring;
  private readonly pool: string;
  private readonly byServer = new Map<string, string>();
  private byToken = new Map<string, S>();
  private source: readonly S[] | null = null;

  constructor(ring: Keyring, pool: string) {
    this.ring = ring;
    this.pool = pool;
  }

  /** The token of a server (cached). */
  token(serverId: string): string {
    let t = this.byServer.get(serverId);
    if (t === undefined) {
      t = serverToken(this.ring, this.pool, serverId);
      this.byServer.set(serverId, t);
    }
    return t;
  }

  /** The server of `servers` that `token` names, if any. */
  serverOf(token: string, servers: readonly S[]): S | undefined {
    if (servers !== this.source) {
      // The pool replaces its array when membership changes: rebuild then, and only then.
      const next = new Map<string, S>();
      for (const s of servers) next.set(this.token(s.id), s);
      for (const id of this.byServer.keys()) if (!servers.some((s) => s.id === id)) this.byServer.delete(id);
      this.byToken = next;
      this.source = servers;
    }
    return this.byToken.get(token);
  }
}
