/**
 * A store from a one-line spec, as the CLI's `--session-store` takes it:
 * `memory`, `redis://H:P[/db]` (also `rediss://`, with credentials), `memcached://H:P[,H:P...]`.
 */
import type { BaseStoreOptions } from './baseStore.js';
import { MemcachedStore } from './memcachedStore.js';
import { MemoryStore } from './memoryStore.js';
import { RedisStore } from './redisStore.js';
import type { SessionStore } from './store.js';

export function openStore(spec: string, options: BaseStoreOptions = {}): SessionStore {
  const text = spec.trim();
  if (text === 'memory') return new MemoryStore(options);
  if (/^rediss?:\/\//i.test(text)) {
    new URL(text); // a malformed URL fails here, with the URL in the message
    return new RedisStore({ ...options, url: text });
  }
  const memcached = /^memcached:\/\/(.+)$/i.exec(text);
  if (memcached) {
    const servers = memcached[1]!.replace(/\/+$/, '');
    if (!servers.split(',').every((s) => /^([^@]+@)?[^:@]+(:\d+)?$/.test(s.trim()))) {
      throw new TypeError(`invalid memcached server list in session store spec: ${spec}`);
    }
    return new MemcachedStore({ ...options, servers });
  }
  throw new TypeError(
    `unknown session store "${spec}": use memory, redis://HOST:PORT[/DB] or memcached://HOST:PORT[,HOST:PORT]`,
  );
}
