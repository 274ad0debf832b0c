/**
 * What it takes for a Fulcrum store to be a drop-in express-session `Store` without depending on
 * express-session: express-session calls `createSession`, `load` and `regenerate` on its store,
 * which its own base class implements with its `Session` and `Cookie` classes. We borrow those
 * from the express-session instance that is using the store (through the `generate` function it
 * installs on every store): its own `Store.prototype.createSession` when its module can be found,
 * else its classes, so the objects are exactly the ones it expects, built the way it builds them.
 */
import { createRequire } from 'node:module';
import type { SessionData } from './store.js';

/** The parts of an Express request that express-session's store protocol touches. */
export interface ExpressRequestLike {
  sessionID: string;
  session?: unknown;
  sessionStore?: unknown;
}

type CookieLike = { expires?: unknown; originalMaxAge?: unknown; [key: string]: unknown };
interface SessionClasses {
  Session: new (req: ExpressRequestLike, data: object) => object;
  /** Cookie.prototype: express-session replaces it wholesale, so it has no usable `constructor`. */
  cookieProto: object;
  /** express-session's own `Store.prototype.createSession`, when its module was found. */
  createSession?: (this: unknown, req: ExpressRequestLike, sess: SessionData) => object;
}

type CreateSession = NonNullable<SessionClasses['createSession']>;
const require = createRequire(import.meta.url);

/**
 * express-session's `Store.prototype.createSession`, found next to the module that exports
 * `Session` (express-session is CommonJS, so its modules are in require's cache).
 */
function ownCreateSession(Session: unknown): CreateSession | undefined {
  try {
    for (const mod of Object.values(require.cache)) {
      if (!mod || mod.exports !== Session) continue;
      const Store = createRequire(mod.filename)('./store.js') as { prototype?: { createSession?: unknown } };
      const create = Store.prototype?.createSession;
      return typeof create === 'function' ? (create as CreateSession) : undefined;
    }
  } catch {
    // not found where expected: makeCookie below does the same
  }
  return undefined;
}

const byGenerate = new WeakMap<object, SessionClasses>();

/** express-session's classes: from its `generate` when installed, else from a resolvable copy. */
export function expressSessionClasses(generate: ((req: object) => void) | undefined): SessionClasses {
  if (generate) {
    const cached = byGenerate.get(generate);
    if (cached) return cached;
    try {
      // generate() only assigns req.sessionID and req.session; the stub satisfies its lookups.
      const probe: { session?: { cookie?: object } } = { headers: {}, connection: {}, url: '/' } as object;
      generate(probe);
      const session = probe.session;
      if (session?.cookie) {
        const classes: SessionClasses = {
          Session: session.constructor as SessionClasses['Session'],
          cookieProto: Object.getPrototypeOf(session.cookie) as object,
          createSession: ownCreateSession(session.constructor),
        };
        byGenerate.set(generate, classes);
        return classes;
      }
    } catch {
      // fall through to resolving the package
    }
  }
  const mod = require('express-session') as {
    Session: SessionClasses['Session'];
    Cookie: { prototype: object };
    Store: { prototype: { createSession: CreateSession } };
  };
  return {
    Session: mod.Session,
    cookieProto: mod.Cookie.prototype,
    createSession: mod.Store.prototype.createSession,
  };
}

/** What express-session's `new Cookie(options)` does, on its prototype. */
function makeCookie(proto: object, options: object): CookieLike {
  const cookie = Object.create(proto) as CookieLike;
  cookie.path = '/';
  cookie.maxAge = null;
  cookie.httpOnly = true;
  for (const key in options) {
    if (key !== 'data') cookie[key] = (options as Record<string, unknown>)[key];
  }
  if (cookie.originalMaxAge === undefined || cookie.originalMaxAge === null)
    cookie.originalMaxAge = cookie.maxAge;
  return cookie;
}

/** express-session's Store.prototype.createSession, with its classes. */
export function createExpressSession(
  generate: ((req: object) => void) | undefined,
  req: ExpressRequestLike,
  sess: SessionData,
): object {
  const { Session, cookieProto, createSession } = expressSessionClasses(generate);
  if (createSession) {
    sess.cookie ??= {}; // express-session's own would fail on a session stored without one
    return createSession.call(undefined, req, sess);
  }
  const stored = sess.cookie ?? {};
  const expires = stored.expires;
  const originalMaxAge = stored.originalMaxAge;
  const cookie = makeCookie(cookieProto, stored);
  if (typeof expires === 'string') cookie.expires = new Date(expires);
  // keep originalMaxAge intact, as express-session does
  cookie.originalMaxAge = originalMaxAge;
  sess.cookie = cookie as SessionData['cookie'];
  const session = new Session(req, sess);
  req.session = session;
  return session;
}
