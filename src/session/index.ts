/**
 * `fulcrum/session`: keep sessions where every backend server can reach them, so any server can
 * serve any request and losing a server loses nobody's session. Stores (memory, Redis, Memcached,
 * and ReplicatedStore, sessions copied between the servers themselves), a middleware for
 * node:http, Express/Connect and Fastify, and signed session-id cookies. Every store is also an
 * express-session `Store`. Imports nothing from the balancer.
 */
export { BaseStore, type BaseStoreOptions, ttlFromCookie } from './baseStore.js';
export {
  type ClusterMemberStats,
  ReplicatedStore,
  type ReplicatedStoreOptions,
  type ReplicatedStoreStats,
  type ReplicationMode,
} from './cluster/replicatedStore.js';
export { getSession, type NextFunction, type SessionMiddleware, sessionMiddleware } from './connect.js';
export { type CookieOptions, readCookie, serializeCookie } from './cookie.js';
export { type FastifyLike, fastifySession } from './fastify.js';
export {
  type ErrorResponse,
  SessionManager,
  type SessionOptions,
  type UnavailableResponse,
} from './manager.js';
export { MemcachedStore, type MemcachedStoreOptions } from './memcachedStore.js';
export { MemoryStore, type MemoryStoreOptions } from './memoryStore.js';
export { openStore } from './openStore.js';
export {
  type RedisCommands,
  RedisStore,
  type RedisStoreOptions,
  type RedisTtl,
  redisBackoff,
} from './redisStore.js';
export { sealedSerializer } from './sealedSerializer.js';
export { Session } from './session.js';
export { generateSessionId } from './sessionId.js';
export { signCookie, type Unsigned, unsignCookie } from './signing.js';
export {
  isStoreUnavailable,
  jsonSerializer,
  type Logger,
  type Serializer,
  type SessionCookieData,
  type SessionData,
  type SessionStore,
  type StoreEvent,
  StoreUnavailableError,
} from './store.js';
