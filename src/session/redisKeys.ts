/**
 * Listing a store's sessions in Redis for express-session's optional `all`, `ids`, `length` and
 * `clear`: SCAN with `MATCH prefix*` (never KEYS, which blocks the server for the whole keyspace),
 * on a single server or on every master of a Redis Cluster, batch by batch, each round trip bounded
 * like any other store command.
 */

/** What the listing needs from a node-redis client or cluster (all optional: checked at run time). */
export interface RedisScanClient {
  scan?(
    cursor: string,
    options: { MATCH: string; COUNT: number },
  ): PromiseLike<{ cursor: unknown; keys: unknown[] }>;
  mGet?(keys: string[]): PromiseLike<unknown[]>;
  get(key: string): PromiseLike<unknown>;
  del(keys: string | string[]): PromiseLike<unknown>;
  /** A cluster's masters, and a client for one of them (node-redis' RedisCluster). */
  masters?: readonly unknown[];
  nodeClient?(node: unknown): PromiseLike<RedisScanClient> | RedisScanClient;
  /** node-redis: a `keyPrefix` the client adds to every key, and that SCAN replies include. */
  options?: { keyPrefix?: string };
}

/** `text` matched literally by a SCAN pattern: glob characters escaped. */
export function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/** Bounds one round trip (the store's `run`). */
export type Bound = <T>(op: () => PromiseLike<T>) => Promise<T>;

export function isCluster(client: RedisScanClient): boolean {
  return Array.isArray(client.masters) && typeof client.nodeClient === 'function';
}

/**
 * Every key under `prefix`, in batches as SCAN returns them, on every master of a cluster. Keys
 * come without the client's own `keyPrefix`, ready for the client's commands. A key can appear
 * twice (SCAN guarantees every key at least once); callers that count deduplicate.
 */
export async function* scanKeys(
  client: RedisScanClient,
  prefix: string,
  count: number,
  bound: Bound,
): AsyncGenerator<string[]> {
  const clientPrefix = client.options?.keyPrefix ?? '';
  const match = `${globEscape(clientPrefix + prefix)}*`;
  const nodes: RedisScanClient[] = [];
  if (isCluster(client)) {
    for (const master of client.masters!) nodes.push(await bound(async () => client.nodeClient!(master)));
  } else {
    nodes.push(client);
  }
  for (const node of nodes) {
    if (typeof node.scan !== 'function')
      throw new TypeError('this Redis client has no scan(): use node-redis 5 or later');
    let cursor = '0';
    do {
      const reply = await bound(() => node.scan!(cursor, { MATCH: match, COUNT: count }));
      cursor = String(reply.cursor);
      const keys = reply.keys.map(String);
      if (keys.length > 0) yield clientPrefix ? keys.map((k) => k.slice(clientPrefix.length)) : keys;
    } while (cursor !== '0');
  }
}

/** The values of `keys`: one MGET on a single server; one GET each on a cluster (no cross-slot). */
export function readMany(client: RedisScanClient, keys: string[], bound: Bound): Promise<unknown[]> {
  if (!isCluster(client) && typeof client.mGet === 'function') return bound(() => client.mGet!(keys));
  return Promise.all(keys.map((key) => bound(() => client.get(key))));
}

/** Deletes `keys`: one DEL on a single server; one DEL each on a cluster (no cross-slot). */
export async function removeMany(client: RedisScanClient, keys: string[], bound: Bound): Promise<void> {
  if (!isCluster(client)) {
    await bound(() => client.del(keys));
    return;
  }
  await Promise.all(keys.map((key) => bound(() => client.del(key))));
}
