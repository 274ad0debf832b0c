/**
 * The admin endpoint's HTTP server (node:http): the REST API under /api, Prometheus /metrics,
 * the event stream and the dashboard. It listens on its own address (`admin.listen`), never on a
 * proxy listener, so no admin route is reachable through the balancer.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import {
  createServer,
  type Server as HttpServer,
  type IncomingMessage,
  type RequestListener,
  type ServerResponse,
} from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDuration } from '../config/duration.js';
import { ConfigError } from '../config/errors.js';
import type { Logger } from '../core/log.js';
import { type Auth, loginPage, SESSION_COOKIE } from './auth.js';
import { answerAfterBody, BodyTooLarge, readBody, readJson } from './body.js';
import type { ClusterView } from './clusterView.js';
import { AdminError, type Control, DEFAULT_REMOVE_TIMEOUT_MS, noPool, noServer } from './control.js';
import type { EventStream } from './events.js';
import type { Telemetry } from './metrics.js';
import { protectionJson, protectionReports } from './protectionReport.js';
import { readiness } from './readiness.js';
import { listenerViews, poolView, serverView, statusView, type ViewContext } from './snapshot.js';

export interface AdminDeps {
  /** Who may use the endpoint: read per request, so a reload's new token applies at once. */
  auth: () => Auth;
  control: Control;
  telemetry: Telemetry;
  events: EventStream;
  view: () => ViewContext;
  log: Logger;
  /** A supervisor's workers: asked for fresh figures before /metrics and /api/status answer. */
  cluster?: ClusterView;
  /** Routes added by an embedder (the demo lab's controls), behind the same token. */
  extraRoutes?: readonly ExtraRoute[];
}

type Params = string[];
/** An admin route's handler: `params` are the path's ":" segments, decoded. Throw AdminError for 4xx. */
export type RouteHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  params: Params,
  url: URL,
) => Promise<void> | void;
type Handler = RouteHandler;

/**
 * A route an embedder adds to the admin endpoint (the demo lab's kill, restart and strategy
 * switch), so that the admin layer never imports what uses it. Listed by `GET /api`.
 */
export interface ExtraRoute {
  method: string;
  /** `/api/...`; ":" marks a parameter. */
  path: string;
  /** One line for `GET /api`. */
  what: string;
  handler: RouteHandler;
}

interface Route {
  method: string;
  /** Segments; ":" marks a parameter. */
  pattern: string[];
  handler: Handler;
}

/** The admin routes, for the 404 and 405 answers and `GET /api`. */
export const ROUTES: ReadonlyArray<[string, string, string]> = [
  ['GET', '/api/status', 'listeners, pools and servers with their state and traffic'],
  ['GET', '/api/listeners', 'listeners'],
  ['GET', '/api/pools', 'pools with their servers'],
  ['GET', '/api/pools/:pool', 'one pool'],
  ['GET', '/api/pools/:pool/servers', "a pool's servers"],
  [
    'POST',
    '/api/pools/:pool/servers',
    'add a server: {"address": "host:port", "name"?, "weight"?, "backup"?}',
  ],
  ['GET', '/api/pools/:pool/servers/:server', 'one server'],
  [
    'PATCH',
    '/api/pools/:pool/servers/:server',
    'set {"weight": N} and/or {"state": "ready|drain|maintenance"}',
  ],
  [
    'DELETE',
    '/api/pools/:pool/servers/:server',
    'drain, then remove (?wait=true to answer once removed; ?timeout=30s)',
  ],
  ['POST', '/api/reload', 'reload the config file (and the state file)'],
  ['GET', '/api/protection', 'per listener: refusals by reason, blocked clients, top talkers, surge state'],
  ['DELETE', '/api/protection/:listener/blocked/:ip', 'unblock a client blocked by detection'],
  ['GET', '/api/events', 'server-sent events: snapshot (every second), transition'],
  ['GET', '/metrics', 'Prometheus metrics'],
  ['GET', '/ready', 'readiness: 200 or 503 with the reason (?minServers=N; no token needed)'],
  ['GET', '/', 'the dashboard'],
];

/** The admin requests' handler: built once, served by one server per address (see createAdminServer). */
export function createAdminHandler(deps: AdminDeps): RequestListener {
  const { control, telemetry, events, view } = deps;
  const routes: Route[] = [];
  const route = (method: string, path: string, handler: Handler) =>
    routes.push({ method, pattern: path.split('/').slice(1), handler });
  const assets = loadAssets(deps.log);

  const extras = deps.extraRoutes ?? [];
  route('GET', '/api', (_req, res) =>
    sendJson(res, 200, {
      routes: [
        ...ROUTES.map(([method, path, what]) => ({ method, path, what })),
        ...extras.map(({ method, path, what }) => ({ method, path, what })),
      ],
    }),
  );
  route('GET', '/api/status', async (_req, res) => {
    await deps.cluster?.refresh();
    sendJson(res, 200, statusView(view()));
  });
  route('GET', '/api/protection', async (_req, res) => {
    const reports =
      deps.cluster === undefined
        ? protectionReports(view().runtime.listeners.values(), Date.now())
        : await deps.cluster.protection();
    sendJson(res, 200, { listeners: reports.map(protectionJson) });
  });
  route('DELETE', '/api/protection/:listener/blocked/:ip', async (_req, res, [listener, ip]) => {
    let outcome: 'unblocked' | 'not-blocked' | 'no-listener';
    if (deps.cluster !== undefined) outcome = await deps.cluster.unblock(listener!, ip!);
    else {
      const p = view().runtime.listeners.get(listener!)?.protection;
      outcome = p == null ? 'no-listener' : p.detector?.unblock(ip!) === true ? 'unblocked' : 'not-blocked';
    }
    if (outcome === 'no-listener') throw new AdminError(404, `no listener "${listener}" with protection`);
    if (outcome === 'not-blocked') throw new AdminError(404, `client ${ip} is not blocked on ${listener}`);
    sendJson(res, 200, { listener, ip, unblocked: true });
  });
  route('GET', '/api/listeners', (_req, res) => sendJson(res, 200, { listeners: listenerViews(view()) }));
  route('GET', '/api/pools', (_req, res) => {
    const ctx = view();
    sendJson(res, 200, { pools: [...ctx.runtime.pools.values()].map((p) => poolView(ctx, p)) });
  });
  route('GET', '/api/pools/:pool', (_req, res, [pool]) =>
    sendJson(res, 200, poolView(view(), poolOf(pool!))),
  );
  route('GET', '/api/pools/:pool/servers', (_req, res, [pool]) =>
    sendJson(res, 200, { servers: poolView(view(), poolOf(pool!)).servers }),
  );
  route('GET', '/api/pools/:pool/servers/:server', (_req, res, [pool, server]) => {
    const p = poolOf(pool!);
    const s = p.find(server!);
    if (s === undefined) throw noServer(p, server!);
    sendJson(res, 200, serverView(view(), p, s));
  });
  route('POST', '/api/pools/:pool/servers', async (req, res, [pool]) => {
    const body = await readJson(req);
    const { pool: p, server } = await control.addServer(pool!, body);
    sendJson(res, 201, serverView(view(), p, server));
  });
  route('PATCH', '/api/pools/:pool/servers/:server', async (req, res, [pool, server]) => {
    const body = await readJson(req);
    const { pool: p, server: s, note } = await control.updateServer(pool!, server!, body);
    sendJson(res, 200, { ...serverView(view(), p, s), ...(note === undefined ? {} : { note }) });
  });
  route('DELETE', '/api/pools/:pool/servers/:server', async (_req, res, [pool, server], url) => {
    const wait = ['true', '1', 'yes'].includes(url.searchParams.get('wait') ?? '');
    const timeoutText = url.searchParams.get('timeout');
    let timeout = DEFAULT_REMOVE_TIMEOUT_MS;
    if (timeoutText !== null) {
      try {
        timeout = parseDuration(timeoutText);
      } catch (err) {
        throw new AdminError(400, `timeout: ${(err as Error).message}`, [
          { path: 'timeout', message: (err as Error).message },
        ]);
      }
    }
    const { server: s, done } = await control.removeServer(pool!, server!, timeout);
    if (wait) {
      await done;
      sendJson(res, 200, { pool, server: s.id, removed: true });
    } else {
      sendJson(res, 202, { pool, server: s.id, removed: false, state: s.state, active: s.active });
    }
  });
  route('POST', '/api/reload', async (req, res) => {
    await readJson(req); // a body, if any, must be JSON; it is not used
    sendJson(res, 200, await control.reload());
  });
  route('GET', '/api/events', (req, res) =>
    events.add(req, res, { event: 'snapshot', data: statusView(view()) }),
  );
  route('GET', '/metrics', async (_req, res) => {
    await deps.cluster?.refresh();
    telemetry.sync();
    const text = await telemetry.registry.metrics();
    res.writeHead(200, { 'content-type': telemetry.registry.contentType, 'cache-control': 'no-store' });
    res.end(text);
  });
  route('GET', '/', (req, res) => assets.serve(req, res, 'index.html'));
  route('GET', '/dashboard/:file', (req, res, [file]) => assets.serve(req, res, file!));
  for (const r of extras) route(r.method, r.path, r.handler);

  function poolOf(name: string) {
    const pool = view().runtime.pools.get(name);
    if (pool === undefined) throw noPool(view().runtime, name);
    return pool;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.headers.host === undefined && req.httpVersion === '1.1') {
      throw new AdminError(400, 'missing Host header (RFC 9112 3.2)');
    }
    const url = requestUrl(req.url ?? '/');
    if (req.method === 'POST' && url.pathname === '/login') return login(req, res);
    // Readiness answers without the token: probes (keepalived, systemd, containers) carry none,
    // and it tells no more than whether the balancer serves.
    if (url.pathname === '/ready' && (req.method === 'GET' || req.method === 'HEAD')) {
      return ready(res, url);
    }
    const verdict = deps.auth().check(req);
    if (verdict === 'cross-origin') {
      throw new AdminError(403, 'cross-origin request refused (send it from the dashboard, curl or the CLI)');
    }
    if (verdict === 'bad-host') {
      throw new AdminError(
        403,
        'the Host header must be an IP address or localhost (DNS rebinding protection)',
      );
    }
    if (verdict === 'unauthorized') {
      const html = (req.headers.accept ?? '').includes('text/html') && req.method === 'GET';
      res.setHeader('www-authenticate', 'Bearer realm="fulcrum admin"');
      if (html) {
        res.writeHead(401, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(loginPage(false));
        return;
      }
      throw new AdminError(401, 'missing or wrong bearer token (Authorization: Bearer <admin.token>)');
    }

    let segments: string[];
    try {
      segments = url.pathname.split('/').slice(1).map(decodeURIComponent);
    } catch {
      throw new AdminError(400, `invalid percent-encoding in ${url.pathname}`);
    }
    // One trailing slash is ignored ("/api/pools/"); "//" is no route, not the dashboard.
    if (segments.length > 1 && segments.at(-1) === '' && segments.at(-2) !== '') segments.pop();
    const allowed: string[] = [];
    for (const r of routes) {
      const params = match(r.pattern, segments);
      if (params === undefined) continue;
      const method = req.method === 'HEAD' ? 'GET' : req.method;
      if (r.method !== method) {
        allowed.push(r.method);
        continue;
      }
      return r.handler(req, res, params, url);
    }
    if (allowed.length > 0) {
      res.setHeader('allow', allowed.join(', '));
      throw new AdminError(
        405,
        `${req.method} is not allowed on ${url.pathname} (allowed: ${allowed.join(', ')})`,
      );
    }
    throw new AdminError(404, `no admin route ${url.pathname} (GET /api lists them)`);
  }

  function ready(res: ServerResponse, url: URL): void {
    const text = url.searchParams.get('minServers');
    let minServers: number | undefined;
    if (text !== null) {
      minServers = Number(text);
      if (text.trim() === '' || !Number.isInteger(minServers) || minServers < 0) {
        throw new AdminError(400, `minServers: expected an integer >= 0, got ${JSON.stringify(text)}`, [
          { path: 'minServers', message: `expected an integer >= 0, got ${JSON.stringify(text)}` },
        ]);
      }
    }
    const cluster = deps.cluster;
    const verdict = readiness(view().runtime, {
      ...(minServers === undefined ? {} : { minServers }),
      // A supervisor binds nothing: a listener counts as bound when a serving worker reports it.
      ...(cluster === undefined
        ? {}
        : {
            bound: (name: string) =>
              cluster.workers().some((w) => w.state === 'serving') && cluster.listener(name) !== undefined,
          }),
    });
    sendJson(res, verdict.ready ? 200 : 503, verdict);
  }

  async function login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = (await readBody(req)).toString('utf8');
    const token = new URLSearchParams(body).get('token') ?? '';
    const auth = deps.auth();
    if (!auth.required) {
      res.writeHead(303, { location: '/' }).end();
      return;
    }
    if (!auth.matches(token)) {
      res.writeHead(401, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(loginPage(true));
      return;
    }
    res.writeHead(303, {
      location: '/',
      'set-cookie': `${SESSION_COOKIE}=${auth.session}; Path=/; HttpOnly; SameSite=Strict`,
    });
    res.end();
  }

  return (req, res) => {
    res.setHeader('x-content-type-options', 'nosniff');
    Promise.resolve()
      .then(() => handle(req, res))
      .catch((err: unknown) => {
        if (err instanceof ConfigError) err = AdminError.invalid(err);
        if (res.headersSent) {
          res.destroy();
          return;
        }
        if (err instanceof BodyTooLarge) {
          const text = jsonText({ error: err.message });
          answerAfterBody(req, res, 413, jsonHeaders(text), text);
        } else if (err instanceof AdminError) {
          const body: Record<string, unknown> = { error: err.message };
          if (err.problems.length > 0)
            body.problems = err.problems.map(({ path, message }) => ({ path, message }));
          sendJson(res, err.status, body);
        } else {
          deps.log.error(`admin: ${req.method} ${req.url}: ${(err as Error).stack ?? String(err)}`);
          sendJson(res, 500, { error: `internal error: ${(err as Error).message}` });
        }
      });
  };
}

/** One HTTP server for the admin handler; not listening yet. */
export function createAdminServer(handler: RequestListener): HttpServer {
  // requireHostHeader off: Node would answer a missing Host with an empty 400; handle() answers it
  // in JSON like every other bad request.
  const server = createServer(
    { requestTimeout: 30_000, headersTimeout: 10_000, requireHostHeader: false },
    handler,
  );
  // A client that half-closes after its request still gets the answer: by default Node's server
  // ends the connection at the client's FIN, before an answer that takes a tick is written.
  // The property is undocumented (but there since Node 0.x); test/admin/hostile.test.ts notices
  // if it stops working.
  (server as HttpServer & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  // Requests Node's parser refuses get a JSON error too, like every other bad request.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const [status, reason, what] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'request head too large']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', 'request not received in time']
          : [400, 'Bad Request', `malformed HTTP request (${err.code ?? err.message})`];
    const text = jsonText({ error: what });
    const head = Object.entries({ ...jsonHeaders(text), connection: 'close' })
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    socket.end(`HTTP/1.1 ${status} ${reason}\r\n${head}\r\n${text}`);
  });
  return server;
}

/**
 * The request target as a URL. Origin-form targets are appended to the base rather than
 * resolved against it, so that "//x" is the path "//x" and not a URL of host x; an absolute-form
 * target that is no valid URL is a 400.
 */
function requestUrl(target: string): URL {
  try {
    return target.startsWith('/') ? new URL(`http://admin${target}`) : new URL(target, 'http://admin');
  } catch {
    throw new AdminError(400, 'invalid request target');
  }
}

function match(pattern: string[], segments: string[]): Params | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: Params = [];
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const s = segments[i]!;
    if (p.startsWith(':')) {
      if (s === '') return undefined;
      params.push(s);
    } else if (p !== s) return undefined;
  }
  return params;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = jsonText(body);
  res.writeHead(status, jsonHeaders(text));
  res.end(text);
}

function jsonText(body: unknown): string {
  return `${JSON.stringify(body, null, 2)}\n`;
}

function jsonHeaders(text: string): Record<string, string | number> {
  return {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  };
}

// ------------------------------------------------------------------------------ dashboard files

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/**
 * Where the dashboard's files are: `src/admin/dashboard` of the package, found by walking up
 * from this compiled module (`<package>/<outDir>/src/admin/`, with an outDir of any depth;
 * package.json "files" ships the folder), or a `dashboard` folder next to this module (running
 * from the sources). uPlot comes from its own package.
 */
export function dashboardDir(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  if (existsSync(join(here, 'dashboard', 'index.html'))) return join(here, 'dashboard');
  let dir = here;
  for (let i = 0; i < 8; i++) {
    const candidate = join(dir, 'src', 'admin', 'dashboard');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return undefined;
}

function loadAssets(log: Logger) {
  const files = new Map<string, { body: Buffer; type: string; etag: string }>();
  const add = (name: string, path: string) => {
    try {
      const body = readFileSync(path);
      const ext = name.slice(name.lastIndexOf('.') + 1);
      const etag = `"${createHash('sha1').update(body).digest('base64url').slice(0, 16)}"`;
      files.set(name, { body, type: TYPES[ext] ?? 'application/octet-stream', etag });
    } catch (err) {
      log.warn(`admin: dashboard file ${name} unavailable: ${(err as Error).message}`);
    }
  };
  const dir = dashboardDir();
  if (dir === undefined) log.warn('admin: dashboard files not found; the dashboard is unavailable');
  else
    for (const name of ['index.html', 'app.js', 'style.css', 'protection.js', 'lab.js'])
      add(name, join(dir, name));
  try {
    const uplot = dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));
    add('uPlot.iife.min.js', join(uplot, 'uPlot.iife.min.js'));
    add('uPlot.min.css', join(uplot, 'uPlot.min.css'));
  } catch (err) {
    log.warn(`admin: uPlot not found (${(err as Error).message}); the dashboard has no charts`);
  }
  return {
    serve(req: IncomingMessage, res: ServerResponse, name: string): void {
      const f = files.get(name);
      if (f === undefined) throw new AdminError(404, `no dashboard file ${name}`);
      if (req.headers['if-none-match'] === f.etag) {
        res.writeHead(304, { etag: f.etag }).end();
        return;
      }
      res.writeHead(200, {
        'content-type': f.type,
        'content-length': f.body.length,
        etag: f.etag,
        'cache-control': 'no-cache',
        ...(name === 'index.html'
          ? {
              'content-security-policy':
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            }
          : {}),
      });
      res.end(req.method === 'HEAD' ? undefined : f.body);
    },
  };
}
