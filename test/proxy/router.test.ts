import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Pool } from '../../src/core/pool.js';
import { newRequestHead, parseRequestHead } from '../../src/proxy/http/headParser.js';
import { type RouteMatch, Router } from '../../src/proxy/http/router.js';

/** Pools are only compared by identity here. */
const pool = (name: string) => ({ name }) as Pool;
const pools = {
  web: pool('web'),
  api: pool('api'),
  apiGet: pool('apiGet'),
  canary: pool('canary'),
  static: pool('static'),
  exact: pool('exact'),
  admin: pool('admin'),
};

/** The routes, in order: the first match wins. */
const routes: Array<{ match: RouteMatch; pool: Pool }> = [
  {
    match: { host: 'api.example.com', pathPrefix: '/api', method: 'GET', headers: { 'x-canary': '1' } },
    pool: pools.canary,
  },
  { match: { host: 'api.example.com', method: 'GET' }, pool: pools.apiGet },
  { match: { host: 'api.example.com' }, pool: pools.api },
  { match: { host: '*.static.example.com' }, pool: pools.static },
  { match: { host: 'example.com', pathPrefix: '/exact' }, pool: pools.exact },
  { match: { pathPrefix: '/admin', headers: { 'X-Role': 'ops', 'x-team': 'core' } }, pool: pools.admin },
];

/** [request head as text, expected pool, why]. */
const cases: Array<[string, keyof typeof pools, string]> = [
  [
    'GET /api/v1 HTTP/1.1\nHost: api.example.com\nX-Canary: 1',
    'canary',
    'every condition of the first route holds',
  ],
  ['GET /api/v1 HTTP/1.1\nHost: api.example.com\nX-Canary: 2', 'apiGet', 'header value differs: next route'],
  ['GET /api/v1 HTTP/1.1\nHost: api.example.com', 'apiGet', 'header missing: next route'],
  [
    'POST /api/v1 HTTP/1.1\nHost: api.example.com\nX-Canary: 1\nContent-Length: 0',
    'api',
    'method differs twice',
  ],
  ['GET /other HTTP/1.1\nHost: api.example.com\nX-Canary: 1', 'apiGet', 'path prefix differs'],
  [
    'GET /api HTTP/1.1\nHost: API.Example.COM:8443\nX-Canary: 1',
    'canary',
    'host matched without case and port',
  ],
  [
    'GET http://api.example.com/api/x HTTP/1.1\nHost: ignored.example\nX-Canary: 1',
    'canary',
    'absolute-form authority wins over Host',
  ],
  ['GET / HTTP/1.1\nHost: img.static.example.com', 'static', 'one-label wildcard'],
  ['GET / HTTP/1.1\nHost: a.b.static.example.com', 'static', 'wildcard at any depth'],
  ['GET / HTTP/1.1\nHost: static.example.com', 'web', 'a wildcard does not match the bare domain'],
  ['GET / HTTP/1.1\nHost: xstatic.example.com', 'web', 'a wildcard matches whole labels only'],
  ['GET /exact/1 HTTP/1.1\nHost: example.com', 'exact', 'host and prefix'],
  ['GET /exactly HTTP/1.1\nHost: example.com', 'exact', 'a prefix is text, not a path segment'],
  ['GET /Exact HTTP/1.1\nHost: example.com', 'web', 'paths are case-sensitive'],
  ['GET /exact HTTP/1.1\nHost: www.example.com', 'web', 'exact host only'],
  [
    'GET /admin/x HTTP/1.1\nHost: any\nX-Role: ops\nX-Team: core',
    'admin',
    'several headers, names without case',
  ],
  ['GET /admin/x HTTP/1.1\nHost: any\nX-Role: ops', 'web', 'every header must be there'],
  ['GET /admin/x HTTP/1.1\nHost: any\nX-Role: Ops\nX-Team: core', 'web', 'header values are exact'],
  [
    'GET /admin?x=/api HTTP/1.1\nHost: any\nX-Role: ops\nX-Team: core',
    'admin',
    'the query is not part of the path',
  ],
  ['GET /x HTTP/1.0', 'web', 'no host at all: the default pool'],
];

function head(text: string) {
  const h = newRequestHead();
  const status = parseRequestHead(text.replaceAll('\n', '\r\n'), h);
  assert.equal(status, 0, `${text}: ${h.error}`);
  return h;
}

test('routes: the first route whose every condition holds picks the pool, else the default', () => {
  const router = new Router(routes, pools.web);
  for (const [text, expected, why] of cases) {
    assert.equal(router.select(head(text)).name, expected, `${why}: ${text.split('\n')[0]}`);
  }
});

test('routes: no routes means the default pool for everything', () => {
  const router = new Router([], pools.web);
  for (const [text] of cases) assert.equal(router.select(head(text)), pools.web);
});
