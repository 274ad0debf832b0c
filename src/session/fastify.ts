/**
 * The session middleware as a Fastify plugin: `app.register(fastifySession, { secret, store })`,
 * then `getSession(request)` (or `request.session`) in handlers. The session is loaded in
 * `onRequest` and saved in `onSend`, where the cookie is added and where a failed save can still
 * turn the answer into the 503. Fastify's own types are not imported: the library does not
 * depend on Fastify.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { type ErrorResponse, SessionManager, type SessionOptions } from './manager.js';
import type { Session } from './session.js';
import { isStoreUnavailable } from './store.js';

interface RequestLike {
  headers: IncomingHttpHeaders;
  session?: Session | null;
}

interface ReplyLike {
  code(status: number): ReplyLike;
  header(name: string, value: unknown): ReplyLike;
  send(payload?: unknown): ReplyLike;
}

/** The slice of a Fastify instance the plugin uses. */
export interface FastifyLike {
  decorateRequest(name: string, value: unknown): unknown;
  addHook(name: 'onRequest', hook: (request: RequestLike, reply: ReplyLike) => Promise<unknown>): unknown;
  addHook(
    name: 'onSend',
    hook: (request: RequestLike, reply: ReplyLike, payload: unknown) => Promise<unknown>,
  ): unknown;
  addHook(name: 'onClose', hook: () => Promise<void>): unknown;
}

function answer(reply: ReplyLike, response: ErrorResponse): string {
  reply.code(response.status);
  for (const [name, value] of Object.entries(response.headers)) reply.header(name, value);
  return response.body;
}

export async function fastifySession(fastify: FastifyLike, options: SessionOptions): Promise<void> {
  const manager = new SessionManager(options);
  fastify.decorateRequest('session', null);

  fastify.addHook('onRequest', async (request, reply) => {
    try {
      request.session = await manager.load(request.headers.cookie);
    } catch (err) {
      if (!isStoreUnavailable(err)) throw err;
      reply.send(answer(reply, manager.unavailableResponse));
      return reply;
    }
    return undefined;
  });

  fastify.addHook('onSend', async (request, reply, payload) => {
    const session = request.session;
    if (!session) return payload;
    try {
      await manager.commit(session);
    } catch (err) {
      if (!isStoreUnavailable(err)) throw err;
      request.session = null; // the 503 carries no session cookie
      return answer(reply, manager.unavailableResponse);
    }
    const cookie = manager.setCookie(session);
    // Fastify appends to Set-Cookie values already set rather than replacing them.
    if (cookie) reply.header('set-cookie', cookie);
    return payload;
  });
}

// Like fastify-plugin: the hooks apply to the whole app, not only to routes registered inside it.
Object.assign(fastifySession, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'fulcrum-session',
});
