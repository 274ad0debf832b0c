import assert from 'node:assert/strict';
import { Agent, createServer as createHttpServer, request as httpRequest } from 'node:http';
import {
  type AddressInfo,
  connect,
  createServer as createNetServer,
  type Server as NetServer,
} from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { RunningBackend } from '../../src/demo/backend.js';
import {
  json,
  rawExchange,
  request,
  serverList,
  startBackends,
  startBalancer,
  type TestBalancer,
} from '../helpers/balancer.js';

function listen(server: NetServer): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

describe('HTTP proxy, one pool of three sample backends', () => {
  let backends: RunningBackend[];
  let lb: TestBalancer;
  before(async () => {
    backends = await startBackends(3);
    lb = await startBalancer(`
listeners:
  - { name: web, protocol: http, listen: "127.0.0.1:0", pool: web }
pools:
  - name: web
    algorithm: round-robin
    servers:
${serverList(backends)}
`);
  });
  after(async () => {
    await lb.stop();
    await Promise.all(backends.map((b) => b.close()));
  });

  test('round robin cycles a b c in order, over keep-alive and new connections', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(json(await request(lb.port, { path: '/whoami' })).id as string);
    assert.deepEqual(seen, ['a', 'b', 'c', 'a', 'b', 'c']);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const kept: string[] = [];
    for (let i = 0; i < 6; i++)
      kept.push((await request(lb.port, { path: '/whoami', agent })).headers['x-served-by'] as string);
    agent.destroy();
    assert.deepEqual(kept, ['a', 'b', 'c', 'a', 'b', 'c']);
  });

  test('adds X-Forwarded-For/Proto/Host and Via, keeps Host, drops hop-by-hop headers', async () => {
    const reply = await request(lb.port, {
      path: '/echo?q=1',
      headers: {
        host: 'shop.example.com',
        'x-forwarded-for': '203.0.113.9',
        'x-forwarded-proto': 'https',
        connection: 'keep-alive, x-private',
        'x-private': 'secret',
        'keep-alive': 'timeout=5',
        te: 'trailers',
        'x-kept': 'yes',
      },
    });
    const echo = json<{ path: string; headers: Record<string, string> }>(reply);
    assert.equal(echo.path, '/echo?q=1');
    assert.equal(echo.headers.host, 'shop.example.com');
    assert.equal(echo.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    assert.equal(echo.headers['x-forwarded-proto'], 'http', 'untrusted clients cannot set the proto');
    assert.equal(echo.headers['x-forwarded-host'], 'shop.example.com');
    assert.equal(echo.headers.via, '1.1 fulcrum');
    assert.equal(echo.headers['x-kept'], 'yes');
    for (const h of ['x-private', 'keep-alive', 'te']) assert.equal(echo.headers[h], undefined, h);
  });

  test('request bodies: content-length and chunked are streamed to the server', async () => {
    const body = 'x'.repeat(100_000);
    const r1 = json(await request(lb.port, { method: 'POST', path: '/up', body }));
    assert.equal(r1.bodyLength, 100_000);
    const r2 = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port: lb.port, method: 'PUT', path: '/chunked', agent: false },
        (res) => {
          let text = '';
          res.on('data', (c) => {
            text += c;
          });
          res.on('end', () => resolve(JSON.parse(text)));
        },
      );
      req.on('error', reject);
      for (let i = 0; i < 10; i++) req.write('0123456789');
      req.end();
    });
    assert.equal(r2.bodyLength, 100);
    assert.equal((r2.headers as Record<string, string>)['transfer-encoding'], 'chunked');
  });

  test('HEAD gets headers and no body, the connection stays usable', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const head = await request(lb.port, { method: 'HEAD', path: '/whoami', agent });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.ok(Number(head.headers['content-length']) > 0);
    const next = await request(lb.port, { path: '/whoami', agent });
    assert.equal(next.status, 200);
    agent.destroy();
  });

  test('Expect: 100-continue is relayed and the body follows', async () => {
    const result = await new Promise<{ continued: boolean; body: Record<string, unknown> }>(
      (resolve, reject) => {
        let continued = false;
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port: lb.port,
            method: 'POST',
            path: '/expect',
            agent: false,
            headers: { expect: '100-continue', 'content-length': '5' },
          },
          (res) => {
            let text = '';
            res.on('data', (c) => {
              text += c;
            });
            res.on('end', () => resolve({ continued, body: JSON.parse(text) }));
          },
        );
        req.on('continue', () => {
          continued = true;
          req.end('hello');
        });
        req.on('error', reject);
      },
    );
    assert.equal(result.continued, true);
    assert.equal(result.body.bodyLength, 5);
  });

  test('pipelined requests are answered in order', async () => {
    const raw = await rawExchange(
      lb.port,
      'GET /whoami HTTP/1.1\r\nHost: a\r\n\r\nGET /p2 HTTP/1.1\r\nHost: a\r\n\r\nGET /whoami HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    const statuses = raw.match(/HTTP\/1\.1 \d{3}/g);
    assert.deepEqual(statuses, ['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200']);
    assert.ok(raw.indexOf('"path":"/p2"') > raw.indexOf('{"id"'), 'second answer after the first');
  });

  test('HTTP/1.0 clients: the connection closes after the answer', async () => {
    const raw = await rawExchange(lb.port, 'GET /whoami HTTP/1.0\r\n\r\n');
    assert.match(raw, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(raw, /connection: close/i);
    assert.match(raw, /\{"id":"[abc]"\}$/);
  });

  test('upstream keep-alive connections are reused', async () => {
    let connections = 0;
    for (const b of backends) b.server.on('connection', () => connections++);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 30; i++) await request(lb.port, { path: '/whoami', agent });
    agent.destroy();
    assert.ok(connections <= 3, `30 sequential requests opened ${connections} new upstream connections`);
  });

  test('malformed and smuggling requests get 400/431/501/505 and never reach a server', async () => {
    const cases: Array<[string, number]> = [
      ['POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
      ['POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd', 400],
      ['POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n', 400],
      ['POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400],
      ['POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n', 501],
      ['GET / HTTP/1.1\r\n\r\n', 400],
      ['GET / HTTP/3.0\r\nHost: a\r\n\r\n', 505],
      ['\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003garbage\r\n\r\n', 400],
      [`GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`, 431],
    ];
    let reached = 0;
    const count = () => reached++;
    for (const b of backends) b.server.on('request', count);
    for (const [bytes, status] of cases) {
      const raw = await rawExchange(lb.port, bytes);
      assert.match(raw, new RegExp(`^HTTP/1\\.1 ${status} `), JSON.stringify(bytes.slice(0, 60)));
      assert.match(raw, /connection: close/);
    }
    for (const b of backends) b.server.off('request', count);
    assert.equal(reached, 0);
  });

  test('a client that aborts mid-body frees its server lease', async () => {
    const pool = lb.runtime.pools.get('web')!;
    const socket = connect({ host: '127.0.0.1', port: lb.port });
    await new Promise((r) => socket.on('connect', r));
    socket.write('POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n');
    socket.write('x'.repeat(10_000));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(
      pool.servers.reduce((n, s) => n + s.active, 0),
      1,
    );
    socket.destroy();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(
      pool.servers.reduce((n, s) => n + s.active, 0),
      0,
    );
  });
});

describe('HTTP proxy, errors a user can act on', () => {
  const servers: NetServer[] = [];
  after(() => {
    for (const s of servers) s.close();
  });

  test('502 when the server refuses, with retry on another server first', async () => {
    const [good] = await startBackends(1);
    const dead = createNetServer();
    const deadPort = await listen(dead);
    dead.close();
    const lb = await startBalancer(`
listeners:
  - { name: web, protocol: http, listen: "127.0.0.1:0", pool: p }
pools:
  - name: p
    retries: { attempts: 1 }
    servers:
      - { address: "127.0.0.1:${deadPort}", name: dead }
      - { address: "127.0.0.1:${good!.port}", name: good }
  - name: only-dead
    retries: { attempts: 0 }
    servers:
      - { address: "127.0.0.1:${deadPort}", name: dead }
`);
    try {
      for (let i = 0; i < 4; i++) assert.equal((await request(lb.port, { path: '/whoami' })).status, 200);
      assert.ok(lb.log.lines.some((l) => /connect ECONNREFUSED \(server dead\), retrying/.test(l)));
    } finally {
      await lb.stop();
    }
    const lb2 = await startBalancer(`
listeners:
  - { name: web, protocol: http, listen: "127.0.0.1:0", pool: only-dead }
pools:
  - name: only-dead
    retries: { attempts: 0 }
    servers:
      - { address: "127.0.0.1:${deadPort}", name: dead }
`);
    try {
      const r = await request(lb2.port, { path: '/x' });
      assert.equal(r.status, 502);
      assert.equal(r.body, '502 Bad Gateway\n');
      assert.ok(
        lb2.log.lines.some((l) => /502: connect ECONNREFUSED \(server dead\)/.test(l)),
        lb2.log.lines.join(''),
      );
    } finally {
      await lb2.stop();
      await good!.close();
    }
  });

  test('503 with Retry-After when the pool has no available server', async () => {
    const [b] = await startBackends(1);
    const lb = await startBalancer(`
listeners:
  - { name: web, protocol: http, listen: "127.0.0.1:0", pool: p }
pools:
  - name: p
    servers:
${serverList([b!])}
`);
    try {
      const server = lb.runtime.pools.get('p')!.servers[0]!;
      server.state = 'maintenance';
      lb.runtime.pools.get('p')!.invalidate();
      const r = await request(lb.port);
      assert.equal(r.status, 503);
      assert.equal(r.headers['retry-after'], '1');
    } finally {
      await lb.stop();
      await b!.close();
    }
  });

  test('504 when the server accepts but never answers; 502 when it answers garbage', async () => {
    const silent = createNetServer((s) => s.on('error', () => {}));
    const garbage = createNetServer((s) => {
      s.on('error', () => {});
      s.once('data', () => s.end('SPEAKING NONSENSE\r\n\r\n'));
    });
    servers.push(silent, garbage);
    const silentPort = await listen(silent);
    const garbagePort = await listen(garbage);
    const lb = await startBalancer(`
listeners:
  - name: web
    protocol: http
    listen: "127.0.0.1:0"
    pool: silent
    routes:
      - { match: { pathPrefix: /garbage }, pool: garbage }
pools:
  - name: silent
    timeouts: { response: 300ms }
    servers: [{ address: "127.0.0.1:${silentPort}" }]
  - name: garbage
    servers: [{ address: "127.0.0.1:${garbagePort}" }]
`);
    try {
      const started = Date.now();
      const r = await request(lb.port, { path: '/x' });
      assert.equal(r.status, 504);
      assert.ok(Date.now() - started >= 290);
      const g = await request(lb.port, { path: '/garbage' });
      assert.equal(g.status, 502);
      assert.ok(lb.log.lines.some((l) => /malformed status line/.test(l)));
    } finally {
      await lb.stop();
    }
  });

  test('slow clients: 408 when the request head does not arrive in time', async () => {
    const [b] = await startBackends(1);
    const lb = await startBalancer(`
listeners:
  - { name: web, protocol: http, listen: "127.0.0.1:0", pool: p, timeouts: { requestHead: 300ms, idle: 5s } }
pools:
  - name: p
    servers:
${serverList([b!])}
`);
    try {
      const raw = await rawExchange(lb.port, 'GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ', 3000);
      assert.match(raw, /^HTTP\/1\.1 408 /);
    } finally {
      await lb.stop();
      await b!.close();
    }
  });
});

describe('HTTP proxy, routing', () => {
  test('host (exact and wildcard), path prefix, method and header, first match wins', async () => {
    const backends = await startBackends(6);
    const [dflt, api, wild, post, canary, admin] = backends;
    const pool = (name: string, b: RunningBackend) =>
      `  - name: ${name}\n    servers: [{ address: "127.0.0.1:${b.port}", name: ${b.id} }]`;
    const lb = await startBalancer(`
listeners:
  - name: web
    protocol: http
    listen: "127.0.0.1:0"
    pool: default
    routes:
      - { match: { host: api.example.com, headers: { x-canary: "1" } }, pool: canary }
      - { match: { host: api.example.com }, pool: api }
      - { match: { host: "*.example.com", pathPrefix: /admin }, pool: admin }
      - { match: { host: "*.example.com" }, pool: wild }
      - { match: { method: POST }, pool: post }
pools:
${pool('default', dflt!)}
${pool('api', api!)}
${pool('wild', wild!)}
${pool('post', post!)}
${pool('canary', canary!)}
${pool('admin', admin!)}
`);
    const who = async (
      host: string,
      opts: { method?: string; path?: string; headers?: Record<string, string> } = {},
    ) => (await request(lb.port, { ...opts, headers: { host, ...opts.headers } })).headers['x-served-by'];
    try {
      assert.equal(await who('api.example.com'), 'b');
      assert.equal(await who('API.example.com:8080'), 'b');
      assert.equal(await who('api.example.com', { headers: { 'x-canary': '1' } }), 'e');
      assert.equal(await who('api.example.com', { headers: { 'x-canary': '2' } }), 'b');
      assert.equal(await who('shop.example.com'), 'c');
      assert.equal(await who('a.b.example.com'), 'c');
      assert.equal(await who('shop.example.com', { path: '/admin/users' }), 'f');
      assert.equal(await who('example.com'), 'a', 'the wildcard does not match the bare domain');
      assert.equal(await who('other.test', { method: 'POST' }), 'd');
      assert.equal(await who('other.test'), 'a');
    } finally {
      await lb.stop();
      await Promise.all(backends.map((b) => b.close()));
    }
  });
});

describe('HTTP proxy, streaming and upgrades', () => {
  test('large downloads and uploads stream with flat memory', async () => {
    const size = 256 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 7);
    const origin = createHttpServer((req, res) => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-length': size });
        let sent = 0;
        const pump = () => {
          while (sent < size) {
            sent += chunk.length;
            if (!res.write(chunk)) return res.once('drain', pump);
          }
          res.end();
        };
        pump();
      } else {
        let n = 0;
        req.on('data', (c: Buffer) => {
          n += c.length;
        });
        req.on('end', () => res.end(String(n)));
      }
    });
    const originPort = await listen(origin as unknown as NetServer);
    const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: p }]
pools: [{ name: p, servers: [{ address: "127.0.0.1:${originPort}" }] }]
`);
    try {
      const before = process.memoryUsage().rss;
      let peak = before;
      const sample = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage().rss);
      }, 20);
      const received = await new Promise<number>((resolve, reject) => {
        httpRequest({ host: '127.0.0.1', port: lb.port, path: '/big', agent: false }, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => {
            n += c.length;
          });
          res.on('end', () => resolve(n));
        })
          .on('error', reject)
          .end();
      });
      const uploaded = await new Promise<string>((resolve, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port: lb.port,
            method: 'POST',
            path: '/up',
            agent: false,
            headers: { 'content-length': size },
          },
          (res) => {
            let text = '';
            res.on('data', (c) => {
              text += c;
            });
            res.on('end', () => resolve(text));
          },
        );
        req.on('error', reject);
        let sent = 0;
        const pump = () => {
          while (sent < size) {
            sent += chunk.length;
            if (!req.write(chunk)) return req.once('drain', pump);
          }
          req.end();
        };
        pump();
      });
      clearInterval(sample);
      assert.equal(received, size);
      assert.equal(uploaded, String(size));
      const growthMb = (peak - before) / 1024 / 1024;
      assert.ok(growthMb < 96, `memory grew by ${growthMb.toFixed(0)} MB while moving 2 × 256 MB`);
    } finally {
      await lb.stop();
      origin.close();
    }
  });

  test('chunked responses pass through, and are de-chunked for HTTP/1.0 clients', async () => {
    const origin = createHttpServer((_req, res) => {
      res.write('hello ');
      setTimeout(() => res.end('world'), 20);
    });
    const originPort = await listen(origin as unknown as NetServer);
    const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: p }]
pools: [{ name: p, servers: [{ address: "127.0.0.1:${originPort}" }] }]
`);
    try {
      const r = await request(lb.port);
      assert.equal(r.headers['transfer-encoding'], 'chunked');
      assert.equal(r.body, 'hello world');
      const raw = await rawExchange(lb.port, 'GET / HTTP/1.0\r\n\r\n');
      assert.doesNotMatch(raw, /transfer-encoding/i);
      assert.match(raw, /\r\n\r\nhello world$/);
    } finally {
      await lb.stop();
      origin.close();
    }
  });

  test('connection upgrades (WebSocket handshake) become a two-way tunnel', async () => {
    const origin = createHttpServer();
    origin.on('upgrade', (req, socket) => {
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${req.headers.upgrade}\r\nConnection: Upgrade\r\n\r\n`,
      );
      socket.on('data', (d: Buffer) => socket.write(`echo:${d}`));
    });
    const originPort = await listen(origin as unknown as NetServer);
    const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: p }]
pools: [{ name: p, servers: [{ address: "127.0.0.1:${originPort}" }] }]
`);
    try {
      const socket = connect({ host: '127.0.0.1', port: lb.port });
      const got: string[] = [];
      socket.write('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
      await new Promise<void>((resolve) => {
        socket.on('data', (d: Buffer) => {
          got.push(d.toString());
          const all = got.join('');
          if (all.includes('\r\n\r\n') && !all.includes('echo:')) socket.write('ping');
          if (all.includes('echo:ping')) resolve();
        });
      });
      assert.match(got.join(''), /^HTTP\/1\.1 101 Switching Protocols\r\n/);
      socket.destroy();
    } finally {
      await lb.stop();
      origin.close();
    }
  });
});

describe('HTTP proxy, client address', () => {
  test('trustedProxies: the client IP comes from X-Forwarded-For only when the peer is trusted', async () => {
    const backends = await startBackends(3);
    const yaml = (trusted: string) => `
listeners:
  - { name: web, protocol: http, listen: "127.0.0.1:0", pool: p, trustedProxies: [${trusted}] }
pools:
  - name: p
    algorithm: ip-hash
    servers:
${serverList(backends)}
`;
    const trusted = await startBalancer(yaml('"127.0.0.0/8"'));
    const untrusted = await startBalancer(yaml('"10.0.0.0/8"'));
    try {
      const spread = async (lb: TestBalancer) => {
        const seen = new Set<string>();
        for (let i = 1; i <= 30; i++) {
          const h = { 'x-forwarded-for': `198.51.100.${i}` };
          seen.add((await request(lb.port, { headers: h })).headers['x-served-by'] as string);
        }
        return seen.size;
      };
      assert.equal(await spread(untrusted), 1, 'untrusted peer: all from 127.0.0.1, one server');
      assert.ok((await spread(trusted)) >= 2, 'trusted peer: 30 client IPs spread over servers');
    } finally {
      await trusted.stop();
      await untrusted.stop();
      await Promise.all(backends.map((b) => b.close()));
    }
  });
});
