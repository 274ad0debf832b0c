import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { request, startBalancer } from '../helpers/balancer.js';

interface Fake {
  name: string;
  port: number;
  /** Requests received, with the body length each carried. */
  hits: Array<{ method: string; bytes: number }>;
  close(): Promise<void>;
}

/** An HTTP server answering every request with `status` and a body naming it. */
async function fake(name: string, status: number): Promise<Fake> {
  const hits: Fake['hits'] = [];
  const server: Server = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
    });
    req.on('end', () => {
      hits.push({ method: req.method ?? '', bytes });
      const body = `${name}:${bytes}`;
      res.writeHead(status, {
        'content-type': 'text/plain',
        'content-length': body.length,
        'x-served-by': name,
      });
      res.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    name,
    port: (server.address() as AddressInfo).port,
    hits,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function config(servers: Fake[], on: string, attempts = 2): string {
  return `
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: p }]
pools:
  - name: p
    retries: { attempts: ${attempts}, on: [${on}] }
    servers:
${servers.map((s) => `      - { address: "127.0.0.1:${s.port}", name: ${s.name} }`).join('\n')}
`;
}

test('retries.on 5xx: an idempotent request answered 5xx goes to the next server; the 5xx never reaches the client', async () => {
  const servers = [await fake('bad1', 503), await fake('bad2', 500), await fake('good', 200)];
  const lb = await startBalancer(config(servers, 'connect-failure, 5xx'));
  try {
    for (let i = 0; i < 9; i++) {
      const r = await request(lb.port, { path: `/x${i}` });
      assert.equal(r.status, 200, `request ${i}`);
      assert.equal(r.body, 'good:0');
    }
    // Every request reached good once; the bad ones were tried on the way, never twice each.
    assert.equal(servers[2]!.hits.length, 9);
    assert.ok(servers[0]!.hits.length <= 9 && servers[1]!.hits.length <= 9);
    assert.ok(
      lb.log.lines.some((l) => /GET \/x\d from .* pool p: 50[03] from server bad[12], retrying/.test(l)),
    );
    // A small body is kept while it is sent, so a PUT is replayed whole.
    const body = 'x'.repeat(10_000);
    for (let i = 0; i < 3; i++) {
      const r = await request(lb.port, { method: 'PUT', path: '/put', body });
      assert.equal(r.status, 200);
      assert.equal(r.body, 'good:10000');
    }
  } finally {
    await lb.stop();
    await Promise.all(servers.map((s) => s.close()));
  }
});

test('retries.on 5xx: never for POST or a body too large to keep; the last answer is passed on when every try fails', async () => {
  const servers = [await fake('bad1', 503), await fake('bad2', 502)];
  const lb = await startBalancer(config(servers, '5xx'));
  try {
    // Every try fails: the client gets the last server's own answer, body and all.
    const r = await request(lb.port, { path: '/all-fail' });
    assert.ok(r.status === 503 || r.status === 502);
    const last = r.status === 503 ? 'bad1' : 'bad2';
    assert.equal(r.body, `${last}:0`);
    assert.equal(r.headers['x-served-by'], last);
    assert.equal(servers[0]!.hits.length + servers[1]!.hits.length, 2, 'each server tried once');

    const before = servers[0]!.hits.length + servers[1]!.hits.length;
    for (let i = 0; i < 4; i++) {
      const p = await request(lb.port, { method: 'POST', path: '/post', body: 'abc' });
      assert.ok(p.status >= 500, 'a POST answered 5xx is passed on');
    }
    assert.equal(servers[0]!.hits.length + servers[1]!.hits.length - before, 4, 'no POST was sent twice');

    const large = Buffer.alloc(200 * 1024, 0x61);
    const mid = servers[0]!.hits.length + servers[1]!.hits.length;
    const put = await request(lb.port, { method: 'PUT', path: '/large', body: large });
    assert.ok(put.status >= 500);
    assert.equal(put.body.endsWith(':204800'), true);
    assert.equal(servers[0]!.hits.length + servers[1]!.hits.length - mid, 1, 'a large body is not replayed');
  } finally {
    await lb.stop();
    await Promise.all(servers.map((s) => s.close()));
  }
});

test('without 5xx in retries.on, a 5xx is passed on as it is', async () => {
  const servers = [await fake('bad', 503), await fake('good', 200)];
  const lb = await startBalancer(config(servers, 'connect-failure, reset'));
  try {
    const statuses = new Set<number>();
    for (let i = 0; i < 4; i++) statuses.add((await request(lb.port, { path: '/' })).status);
    assert.deepEqual([...statuses].sort(), [200, 503]);
    assert.equal(servers[0]!.hits.length, 2);
  } finally {
    await lb.stop();
    await Promise.all(servers.map((s) => s.close()));
  }
});

test('a refused connect is tried once more on the same server, then on the next one', async () => {
  const good = await fake('good', 200);
  // A port with nothing listening: every connect is refused.
  const closed = await fake('gone', 200);
  const gonePort = closed.port;
  await closed.close();
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: p }]
pools:
  - name: p
    retries: { attempts: 1, on: [connect-failure] }
    servers:
      - { address: "127.0.0.1:${gonePort}", name: gone }
      - { address: "127.0.0.1:${good.port}", name: good }
`);
  try {
    for (let i = 0; i < 4; i++) assert.equal((await request(lb.port, { path: '/' })).status, 200);
    // Without health checks gone stays eligible, and the rotation offers it first each time
    // (the retry moved the rotation on to good): every request is retried once. The log says so
    // once at once and sums up the rest within a second, never a line per request.
    const retried = () =>
      lb.log.lines.filter((l) => l.includes('connect ECONNREFUSED (server gone), retrying'));
    assert.equal(retried().length, 1, lb.log.lines.join(''));
    const until = Date.now() + 3000;
    while (retried().length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.match(retried()[1] ?? '', /\(and 2 more like it\)/, lb.log.lines.join(''));
  } finally {
    await lb.stop();
    await good.close();
  }
});
