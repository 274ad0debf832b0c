/**
 * The session middleware in the `(req, res, next)` shape, which is Connect's and Express's, and
 * which plain `node:http` handlers call directly. The session is loaded before `next`, and saved
 * when the response ends (the end is held until the store has it, as express-session does); the
 * cookie goes out with the headers. An unreachable store gets the configured 503.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { appendSetCookie } from './cookie.js';
import { type ErrorResponse, SessionManager, type SessionOptions } from './manager.js';
import { Session } from './session.js';
import { isStoreUnavailable } from './store.js';

export type NextFunction = (err?: unknown) => void;

export interface SessionMiddleware {
  (req: IncomingMessage, res: ServerResponse, next: NextFunction): void;
  readonly manager: SessionManager;
}

/** The session the middleware attached to a request (Express, Connect, node:http or Fastify). */
export function getSession(req: object): Session {
  const session = (req as { session?: unknown }).session;
  if (!(session instanceof Session)) {
    throw new Error(
      'no Fulcrum session on this request: is the session middleware installed before this handler?',
    );
  }
  return session;
}

type Writer = (...args: unknown[]) => unknown;
interface Hookable {
  writeHead: Writer;
  write: Writer;
  end: Writer;
  flushHeaders: Writer;
}

/** Headers that describe the body: wrong for an error answer that replaces it. */
const BODY_HEADERS = /^(content-|etag$|last-modified$|transfer-encoding$|set-cookie$)/;

function sendError(res: ServerResponse, end: Writer, response: ErrorResponse): void {
  for (const name of res.getHeaderNames()) if (BODY_HEADERS.test(name)) res.removeHeader(name);
  res.statusCode = response.status;
  for (const [name, value] of Object.entries(response.headers)) res.setHeader(name, value);
  res.setHeader('content-length', Buffer.byteLength(response.body));
  end.call(res, response.body);
}

const INTERNAL_ERROR: ErrorResponse = {
  status: 500,
  headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
  body: JSON.stringify({ error: 'session_save_failed', message: 'The session could not be saved.' }),
};

/** What `writeHead(status[, reason][, headers])` would set, applied with setHeader so it can still change. */
function absorbWriteHead(res: ServerResponse, status: unknown, rest: unknown[]): void {
  res.statusCode = Number(status);
  let headers = rest[0];
  if (typeof headers === 'string') {
    res.statusMessage = headers;
    headers = rest[1];
  }
  if (Array.isArray(headers)) {
    // Raw form: [name, value, name, value, ...] or [[name, value], ...].
    const pairs: unknown[][] = Array.isArray(headers[0])
      ? (headers as unknown[][])
      : headers.flatMap((_, i) => (i % 2 === 0 ? [[headers[i], headers[i + 1]]] : []));
    for (const [name, value] of pairs) {
      const key = String(name);
      const current = res.getHeader(key);
      res.setHeader(key, current === undefined ? (value as string) : [current, value].flat().map(String));
    }
  } else if (headers && typeof headers === 'object') {
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value as string);
  }
}

/**
 * Hooks the response so the session is saved before the response ends and the cookie goes out
 * with the headers. A `writeHead` by the handler is held (applied with setHeader) until the body
 * starts, so a failed save can still turn the answer into the 503.
 */
function hookResponse(manager: SessionManager, session: Session, res: ServerResponse): void {
  const hooked = res as unknown as Hookable;
  const { writeHead, write, end, flushHeaders } = hooked;
  let flushing = false; // the headers may go out now: the body has started or the save is done
  let cookieDone = false;
  let ending = false;

  hooked.writeHead = function (this: ServerResponse, status: unknown, ...rest: unknown[]) {
    if (!flushing) {
      absorbWriteHead(this, status, rest);
      return this;
    }
    if (!cookieDone) {
      cookieDone = true;
      const cookie = manager.setCookie(session);
      if (cookie) this.setHeader('set-cookie', appendSetCookie(this.getHeader('set-cookie'), cookie));
    }
    return writeHead.call(this, status, ...rest);
  };
  hooked.write = function (this: ServerResponse, ...args: unknown[]) {
    flushing = true; // streaming: the headers go now, the save happens at the end
    return write.apply(this, args);
  };
  hooked.flushHeaders = function (this: ServerResponse, ...args: unknown[]) {
    flushing = true;
    return flushHeaders.apply(this, args);
  };
  hooked.end = function (this: ServerResponse, ...args: unknown[]) {
    if (ending) return this;
    ending = true;
    manager.commit(session).then(
      () => {
        flushing = true;
        end.apply(res, args);
      },
      (err: unknown) => {
        flushing = true;
        if (res.headersSent) {
          // Too late to change the answer; the client keeps its previous session state.
          manager.logger.warn(
            `session ${session.id} could not be saved after the response started: ${String(err)}`,
          );
          end.apply(res, args);
          return;
        }
        cookieDone = true; // the error answer carries no session cookie
        if (!isStoreUnavailable(err))
          manager.logger.warn(`session ${session.id} could not be saved: ${String(err)}`);
        sendError(res, end, isStoreUnavailable(err) ? manager.unavailableResponse : INTERNAL_ERROR);
      },
    );
    return this;
  };
}

/**
 * `app.use(sessionMiddleware({ secret, store }))` in Express/Connect; in plain node:http,
 * `middleware(req, res, () => handler(req, res))`. Then `getSession(req)` (or `req.session`).
 */
export function sessionMiddleware(options: SessionOptions): SessionMiddleware {
  const manager = new SessionManager(options);
  const middleware = (req: IncomingMessage, res: ServerResponse, next: NextFunction): void => {
    const carrier = req as IncomingMessage & { session?: unknown };
    if (carrier.session instanceof Session) {
      next(); // mounted twice: the first one wins
      return;
    }
    manager.load(req.headers.cookie).then(
      (session) => {
        carrier.session = session;
        hookResponse(manager, session, res);
        // Outside the promise chain, so a throwing handler is not taken for a store failure.
        process.nextTick(next);
      },
      (err: unknown) => {
        if (isStoreUnavailable(err)) sendError(res, res.end as Writer, manager.unavailableResponse);
        else process.nextTick(next, err);
      },
    );
  };
  return Object.assign(middleware, { manager });
}
