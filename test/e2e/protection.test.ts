import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { startAdmin } from '../../src/admin/index.js';
import { parseConfig } from '../../src/config/index.js';
import { api, LOOPBACK } from '../admin/helpers.js';
import { rawExchange, request, serverList, startBackends, startBalancer } from '../helpers/balancer.js';
import { startRedis } from '../helpers/redisServer.js';

function balancerYaml(port: number, protection: string): string {
  return `
listeners:
  - name: web
    protocol: http
    listen: "127.0.0.1:0"
    pool: p
    protection:
${protection}
pools:
  - name: p
    servers:
${serverList([{ id: 'a', port }])}
`;
}

test('rate limit: a flooding client gets 429 with Retry-After and RateLimit fields; others and the allow list are untouched', async () => {
  const [backend] = await startBackends(1);
  const lb = await startBalancer(
    balancerYaml(
      backend!.port,
      `      rateLimit: { requests: 10, per: 1s, burst: 5 }
      allow: [127.0.0.4]`,
    ),
  );
  try {
    const started = Date.now();
    const attacker = await Promise.all(
      Array.from({ length: 40 }, () => request(lb.port, { path: '/whoami', localAddress: '127.0.0.2' })),
    );
    const elapsedS = (Date.now() - started) / 1000;
    const ok = attacker.filter((r) => r.status === 200).length;
    const limited = attacker.filter((r) => r.status === 429);
    // At most the burst plus what refilled meanwhile.
    assert.ok(ok >= 5 && ok <= 5 + Math.ceil(10 * elapsedS) + 1, `${ok} allowed in ${elapsedS}s`);
    assert.equal(ok + limited.length, 40);
    const r = limited[0]!;
    assert.ok(Number(r.headers['retry-after']) >= 1);
    assert.equal(r.headers['ratelimit-policy'], '"default";q=10;w=1');
    assert.match(String(r.headers.ratelimit), /^"default";r=0;t=\d+$/);
    assert.equal(r.headers['x-served-by'], undefined, 'a 429 never reaches a server');

    // Another client has its own bucket; an allow-listed one has none.
    for (let i = 0; i < 5; i++)
      assert.equal((await request(lb.port, { localAddress: '127.0.0.3' })).status, 200);
    for (let i = 0; i < 30; i++)
      assert.equal((await request(lb.port, { localAddress: '127.0.0.4' })).status, 200);

    const rejected = lb.runtime.listeners.get('web')!.protection!.rejected;
    assert.equal(rejected.rate, limited.length);
    // The log sums refusals up instead of a line each.
    assert.ok(lb.log.lines.filter((l) => l.includes('refused by protection')).length <= 2);
  } finally {
    await lb.stop();
    await backend!.close();
  }
});

test('rate limit keyed by a header: each API key has its own bucket, whatever the address', async () => {
  const [backend] = await startBackends(1);
  const lb = await startBalancer(
    balancerYaml(
      backend!.port,
      '      rateLimit: { requests: 1, per: 10s, burst: 2, key: "header:X-Api-Key" }',
    ),
  );
  try {
    const statuses = async (key: string) => {
      const out: number[] = [];
      for (let i = 0; i < 3; i++)
        out.push((await request(lb.port, { headers: { 'x-api-key': key } })).status);
      return out;
    };
    assert.deepEqual(await statuses('k1'), [200, 200, 429]);
    assert.deepEqual(await statuses('k2'), [200, 200, 429]);
  } finally {
    await lb.stop();
    await backend!.close();
  }
});

test('connections per client and the deny list: refused at accept', async () => {
  const [backend] = await startBackends(1);
  const lb = await startBalancer(
    balancerYaml(
      backend!.port,
      `      connections: { perClient: 2 }
      deny: [127.0.0.9]`,
    ),
  );
  const open = (localAddress: string) =>
    new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: lb.port, localAddress });
      s.on('connect', () => resolve(s));
      s.on('error', reject);
    });
  /** Resolves true when the balancer closes the connection within `ms`. */
  const closedWithin = (s: Socket, ms: number) =>
    new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      s.on('error', () => {});
      s.on('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  const sockets: Socket[] = [];
  try {
    sockets.push(await open('127.0.0.5'), await open('127.0.0.5'));
    const third = await open('127.0.0.5');
    sockets.push(third);
    assert.equal(await closedWithin(third, 1000), true, 'a third connection from one client is refused');
    const other = await open('127.0.0.6');
    sockets.push(other);
    assert.equal(await closedWithin(other, 200), false, 'another client connects');
    // Once one of the two closes, the client may connect again.
    sockets[0]!.destroy();
    await new Promise((r) => setTimeout(r, 50));
    const again = await open('127.0.0.5');
    sockets.push(again);
    assert.equal(await closedWithin(again, 200), false);
    const denied = await open('127.0.0.9');
    assert.equal(await closedWithin(denied, 1000), true, 'a denied address is closed at accept');
    const rejected = lb.runtime.listeners.get('web')!.protection!.rejected;
    assert.equal(rejected.connections, 1);
    assert.equal(rejected.deny, 1);
  } finally {
    for (const s of sockets) s.destroy();
    await lb.stop();
    await backend!.close();
  }
});

test('limits: 414 for a long target, 413 for a large body (declared or streamed), 431 for too many fields', async () => {
  const [backend] = await startBackends(1);
  const lb = await startBalancer(
    balancerYaml(backend!.port, '      limits: { maxBodySize: 1KiB, maxUrlLength: 64, maxHeaders: 10 }'),
  );
  try {
    assert.equal((await request(lb.port, { path: `/${'a'.repeat(100)}` })).status, 414);
    assert.equal((await request(lb.port, { path: `/${'a'.repeat(40)}` })).status, 200);
    assert.equal((await request(lb.port, { method: 'POST', body: 'x'.repeat(2000) })).status, 413);
    assert.equal((await request(lb.port, { method: 'POST', body: 'x'.repeat(1000) })).status, 200);
    const chunk = 'x'.repeat(800);
    const chunked = await rawExchange(
      lb.port,
      `POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n${chunk}\r\n320\r\n${chunk}\r\n0\r\n\r\n`,
    );
    assert.match(chunked, /^HTTP\/1\.1 413 /);
    const headers: Record<string, string> = {};
    for (let i = 0; i < 12; i++) headers[`x-h${i}`] = '1';
    assert.equal((await request(lb.port, { headers })).status, 431);
    const rejected = lb.runtime.listeners.get('web')!.protection!.rejected;
    assert.equal(rejected['url-length'], 1);
    assert.equal(rejected['body-size'], 2);
  } finally {
    await lb.stop();
    await backend!.close();
  }
});

test('protection config: defaults, units, and clear errors', () => {
  const cfg = parseConfig(
    `
listeners:
  - name: web
    listen: "127.0.0.1:0"
    pool: p
    protection:
      rateLimit: { requests: 100, per: 10s }
      limits: { maxBodySize: 10MiB, maxUrlLength: 8KiB }
      deny: [203.0.113.0/24]
pools: [{ name: p, servers: [{ address: "127.0.0.1:1" }] }]
`,
    'p.yaml',
  );
  const p = cfg.listeners[0]!.protection!;
  assert.deepEqual(p.rateLimit, { requests: 100, per: 10_000, burst: 100, key: { from: 'ip' } });
  assert.deepEqual(p.limits, { maxBodySize: 10 * 1024 * 1024, maxUrlLength: 8192 });
  assert.deepEqual(p.deny, ['203.0.113.0/24']);
  const bad =
    (protection: string, protocol = 'http') =>
    () =>
      parseConfig(
        `
listeners:
  - { name: web, protocol: ${protocol}, listen: "127.0.0.1:0", pool: p, protection: ${protection} }
pools: [{ name: p, servers: [{ address: "127.0.0.1:1" }] }]
`,
        'p.yaml',
      );
  assert.throws(
    bad('{ rateLimit: { requests: 1, per: 1s, key: "query:x" } }'),
    /rateLimit\.key: expected ip, header:NAME or cookie:NAME, got "query:x"/,
  );
  assert.throws(bad('{ limits: { maxBodySize: "10 parsecs" } }'), /limits\.maxBodySize: expected a size/);
  // tcp and udp take the L4 keys (protectionL4.test.ts); a tcp listener refuses the HTTP ones.
  assert.throws(
    bad('{ limits: { maxUrlLength: 1KiB } }', 'tcp'),
    /protection\.limits: only allowed when protocol is http/,
  );
});

test('slow clients: a head slower than timeouts.header gets 408, a body below bodyMinRate gets 408; a steady client is untouched', async () => {
  const [backend] = await startBackends(1);
  const lb = await startBalancer(
    balancerYaml(backend!.port, '      timeouts: { header: 300ms, bodyMinRate: 1KiB/s }'),
  );
  const client = () =>
    new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: lb.port });
      s.on('connect', () => resolve(s));
      s.on('error', reject);
    });
  /** Everything the balancer sends until it closes (or `ms` passes). */
  const answer = (s: Socket, ms: number) =>
    new Promise<string>((resolve) => {
      let got = '';
      const timer = setTimeout(() => resolve(got), ms);
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1');
      });
      s.on('close', () => {
        clearTimeout(timer);
        resolve(got);
      });
    });
  try {
    // Slowloris: a head that never ends.
    const loris = await client();
    const lorisAnswer = answer(loris, 3000);
    loris.write('GET / HTTP/1.1\r\nHost: a\r\n');
    const t0 = Date.now();
    assert.match(await lorisAnswer, /^HTTP\/1\.1 408 /);
    assert.ok(Date.now() - t0 < 2000, 'closed near the header timeout');

    // Slow POST: 10 bytes a second against 1 KiB/s.
    const slow = await client();
    const slowAnswer = answer(slow, 8000);
    slow.write('POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n');
    const drip = setInterval(() => slow.write('x'.repeat(10)), 100);
    const text = await slowAnswer;
    clearInterval(drip);
    slow.destroy();
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.equal(lb.runtime.listeners.get('web')!.protection!.rejected['slow-body'], 1);

    // A body sent at once goes through.
    assert.equal((await request(lb.port, { method: 'POST', body: 'y'.repeat(50_000) })).status, 200);
  } finally {
    await lb.stop();
    await backend!.close();
  }
});

/** A server answering 404 under /scan and 200 elsewhere. */
async function scanTarget() {
  const { createServer } = await import('node:http');
  const server = createServer((req, res) => {
    res.writeHead(req.url?.startsWith('/scan') ? 404 : 200, { 'content-length': 2 });
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

async function statuses(port: number, from: string, n: number, path = '/'): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      await request(port, { path, localAddress: from }).then(
        (r) => r.status,
        () => 0,
      ),
    );
  }
  return out;
}

test('detection: a client far over its rate limit for two windows in a row is blocked: 403, then refused at accept', async () => {
  const target = await scanTarget();
  const lb = await startBalancer(
    balancerYaml(
      target.port,
      `      rateLimit: { requests: 20, per: 1s, burst: 5 }
      detect: { enabled: true, blockFor: 1m, window: 300ms, sustain: 2 }`,
    ),
  );
  try {
    const until = Date.now() + 1500;
    const flood: number[] = [];
    while (Date.now() < until) flood.push(...(await statuses(lb.port, '127.0.0.7', 5)));
    assert.ok(flood.includes(429), 'rate-limited first');
    assert.ok(flood.includes(403) || flood.includes(0), `then blocked: ${flood.length} requests`);
    const after = await statuses(lb.port, '127.0.0.7', 3);
    assert.ok(
      after.every((s) => s === 403 || s === 0),
      `still blocked: ${after}`,
    );
    assert.ok(lb.log.lines.some((l) => /client 127\.0\.0\.7 blocked for 60s: over its rate limit/.test(l)));
    assert.deepEqual(await statuses(lb.port, '127.0.0.10', 3), [200, 200, 200], 'others are served');
    assert.ok((lb.runtime.listeners.get('web')!.protection!.rejected.blocked ?? 0) > 0);
  } finally {
    await lb.stop();
    target.close();
  }
});

test('detection: a 404 scan is blocked; an allow-listed scanner never is', async () => {
  const target = await scanTarget();
  const lb = await startBalancer(
    balancerYaml(
      target.port,
      `      detect: { enabled: true, blockFor: 1m, window: 5s }
      allow: [127.0.0.8]`,
    ),
  );
  try {
    const scan = await statuses(lb.port, '127.0.0.9', 25, '/scan');
    assert.deepEqual(scan.slice(0, 20), Array(20).fill(404));
    assert.ok(
      scan.slice(20).every((s) => s === 403 || s === 0),
      `the scanner is blocked: ${scan}`,
    );
    assert.ok(
      lb.log.lines.some((l) => /client 127\.0\.0\.9 blocked .*100% of 20 answers were 401\/403\/404/.test(l)),
    );
    assert.ok((await statuses(lb.port, '127.0.0.8', 30, '/scan')).every((s) => s === 404));
    assert.deepEqual(await statuses(lb.port, '127.0.0.10', 3), [200, 200, 200]);

    // The admin API lists the block and lifts it.
    const admin = await startAdmin(lb.runtime, LOOPBACK, lb.log);
    try {
      const listed = await api(admin.address.port, 'GET', '/api/protection');
      const web = (
        listed.data.listeners as Array<{ listener: string; blocked: Array<{ ip: string; reason: string }> }>
      )[0]!;
      assert.equal(web.listener, 'web');
      assert.deepEqual(
        web.blocked.map((b) => b.ip),
        ['127.0.0.9'],
      );
      assert.match(web.blocked[0]!.reason, /401\/403\/404/);
      assert.equal(
        (await api(admin.address.port, 'DELETE', '/api/protection/web/blocked/127.0.0.9')).status,
        200,
      );
      assert.equal(
        (await api(admin.address.port, 'DELETE', '/api/protection/web/blocked/127.0.0.9')).status,
        404,
      );
      assert.deepEqual(await statuses(lb.port, '127.0.0.9', 1), [200]);
    } finally {
      await admin.close();
    }
  } finally {
    await lb.stop();
    target.close();
  }
});

test('shared counters: two balancers on one Redis enforce one limit together; Redis killed, they count locally, and share again once it is back', async (t) => {
  const redis = await startRedis();
  const [backend] = await startBackends(1);
  const yaml = balancerYaml(
    backend!.port,
    `      rateLimit: { requests: 40, per: 3s }
      shared: "${redis.url}"`,
  );
  const lb1 = await startBalancer(yaml);
  const lb2 = await startBalancer(yaml);
  const sharedUp = () =>
    [lb1, lb2].every((lb) => lb.runtime.listeners.get('web')!.protection!.shared!.shared === true);
  const waitFor = async (cond: () => boolean, what: string) => {
    const until = Date.now() + 5000;
    while (!cond()) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  /** One client alternating between the balancers, ~25 ms apart, for `ms`: the 200s. */
  const alternate = async (ms: number) => {
    let ok = 0;
    const until = Date.now() + ms;
    for (let i = 0; Date.now() < until; i++) {
      const r = await request(i % 2 === 0 ? lb1.port : lb2.port, { localAddress: '127.0.0.11' });
      if (r.status === 200) ok++;
      await new Promise((r) => setTimeout(r, 25));
    }
    return ok;
  };
  try {
    // Wait for a first sync (a request is needed for one to happen).
    await request(lb1.port, { localAddress: '127.0.0.12' });
    await request(lb2.port, { localAddress: '127.0.0.12' });
    await waitFor(sharedUp, 'both balancers to reach Redis');
    // Start at a window boundary, then one window's worth of requests: about 100, limit 40.
    await new Promise((r) => setTimeout(r, 3000 - (Date.now() % 3000) + 20));
    const ok = await alternate(2800);
    // Counted apart, each balancer would allow 40 (80 in all); together about 40 (a sync
    // period's worth of slack).
    t.diagnostic(`${ok} allowed across both balancers in one window, limit 40`);
    assert.ok(ok >= 36 && ok <= 48, `${ok} allowed across both balancers, limit 40`);

    await redis.stop('SIGKILL');
    // Requests keep being answered (by local counting) while Redis is gone.
    await alternate(300);
    await waitFor(
      () => lb1.log.lines.some((l) => l.includes('shared counters unavailable')),
      'the unavailability to be logged',
    );
    assert.equal(
      lb1.log.lines.filter((l) => l.includes('shared counters unavailable')).length,
      1,
      'said once',
    );
    await redis.restart();
    await alternate(200);
    await waitFor(sharedUp, 'shared counting to resume');
    assert.ok(lb1.log.lines.some((l) => l.includes('shared counters back')));
  } finally {
    await lb1.stop();
    await lb2.stop();
    await backend!.close();
    await redis.stop();
  }
});
