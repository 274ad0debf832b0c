import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  constants,
  connect as h2connect,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { type AddressInfo, connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { createAccessLog } from '../../src/admin/accessLog.js';
import { addObserver } from '../../src/admin/observers.js';
import { request, startBackends, startBalancer } from '../helpers/balancer.js';
import { makeCertKit } from '../helpers/certificates.js';
import { freePort, spawnCli, tempDir } from '../helpers/processes.js';

const run = promisify(execFile);
const kit = makeCertKit();
const site = kit.leaf('site', ['site.test']);
const caPem = readFileSync(kit.ca.cert);
after(() => kit.remove());

interface H2Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request on an HTTP/2 session; resolves with the whole response. */
function h2request(
  session: ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  body?: Buffer,
): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let status = 0;
    let got: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      got = h;
      status = Number(h[':status']);
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ status, headers: got, body: Buffer.concat(chunks) }));
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

function connectTls(port: number): ClientHttp2Session {
  const s = h2connect(`https://127.0.0.1:${port}`, { ca: caPem, servername: 'site.test' });
  s.on('error', () => {});
  return s;
}

function connectH2c(port: number): ClientHttp2Session {
  const s = h2connect(`http://127.0.0.1:${port}`);
  s.on('error', () => {});
  return s;
}

/** A server of our own for a test: `handler` answers. */
async function fake(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function tlsYaml(servers: string, extra = '', pool = ''): string {
  return `
listeners:
  - name: web
    listen: "127.0.0.1:0"
    pool: p
    tls: { certificates: [ { cert: "${site.cert}", key: "${site.key}" } ] }
${extra}
pools:
  - name: p
${pool}
    servers: [${servers}]
`;
}

test('h2c with prior knowledge (http2: true), and HTTP/1.1 still served on the same listener', async () => {
  const backends = await startBackends(2);
  const lb = await startBalancer(`
listeners: [{ name: web, listen: "127.0.0.1:0", pool: p, http2: true }]
pools: [{ name: p, servers: [${backends.map((b) => `{ address: "127.0.0.1:${b.port}", name: ${b.id} }`).join(', ')}] }]
`);
  const session = connectH2c(lb.port);
  try {
    const r = await h2request(session, { ':path': '/echo?q=1', 'x-test': 'yes', cookie: ['a=1', 'b=2'] });
    assert.equal(r.status, 200);
    const echo = JSON.parse(r.body.toString());
    assert.equal(echo.method, 'GET');
    assert.equal(echo.path, '/echo?q=1');
    assert.equal(echo.headers['x-test'], 'yes');
    assert.equal(echo.headers['x-forwarded-proto'], 'http');
    assert.equal(echo.headers.host, `127.0.0.1:${lb.port}`);
    assert.equal(echo.headers.cookie, 'a=1; b=2');
    assert.equal(echo.headers.via, '2 fulcrum');
    assert.ok(r.headers['x-served-by']);
    assert.equal(r.headers.connection, undefined);
    const h1 = await request(lb.port, { path: '/whoami' });
    assert.equal(h1.status, 200);
  } finally {
    session.close();
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('the access log has a line for every stream, refused ones included, with the fields an HTTP/1.1 line has', async () => {
  const dir = tempDir('fulcrum-h2log-');
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners:
  - name: web
    listen: "127.0.0.1:0"
    pool: p
    http2: true
    protection: { rateLimit: { requests: 2, per: 10m } }
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`);
  const log = await createAccessLog({ path: join(dir.path, 'access.log') });
  const remove = addObserver(lb.runtime, log);
  const session = connectH2c(lb.port);
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await h2request(session, {
        ':path': `/whoami?n=${i}`,
        'user-agent': 'h2-test',
        'x-request-id': `id-${i}`,
      });
      statuses.push(r.status);
    }
    assert.deepEqual(statuses, [200, 200, 429, 429]);
    await log.flush();
    type Line = {
      status: number;
      path: string;
      query: string;
      host: string;
      userAgent: string;
      requestId: string;
      refusedBy?: string;
      pool: string;
    };
    const lines = readFileSync(join(dir.path, 'access.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line);
    assert.equal(lines.length, 4);
    lines.forEach((l, i) => {
      assert.equal(l.path, '/whoami');
      assert.equal(l.query, `n=${i}`);
      assert.equal(l.host, `127.0.0.1:${lb.port}`);
      assert.equal(l.userAgent, 'h2-test');
      assert.equal(l.requestId, `id-${i}`);
    });
    assert.deepEqual(
      lines.map((l) => [l.status, l.pool, l.refusedBy]),
      [
        [200, 'p', undefined],
        [200, 'p', undefined],
        [429, '', 'rate'],
        [429, '', 'rate'],
      ],
    );
  } finally {
    session.close();
    remove();
    await log.close();
    await lb.stop();
    for (const b of backends) await b.close();
    dir.remove();
  }
});

test('many concurrent streams on one TLS connection (ALPN h2) are spread over the servers', async () => {
  const backends = await startBackends(3);
  const lb = await startBalancer(
    tlsYaml(
      backends.map((b) => `{ address: "127.0.0.1:${b.port}", name: ${b.id} }`).join(', '),
      '    maxConcurrentStreams: 50',
    ),
  );
  const session = connectTls(lb.port);
  try {
    // Before the server's SETTINGS arrive a client may exceed the bound; those streams are refused.
    await new Promise((r) => session.once('remoteSettings', r));
    const replies = await Promise.all(
      Array.from({ length: 300 }, (_, i) => h2request(session, { ':path': `/whoami?i=${i}` })),
    );
    const counts = new Map<string, number>();
    for (const r of replies) {
      assert.equal(r.status, 200);
      const id = String(r.headers['x-served-by']);
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    assert.deepEqual([...counts.keys()].sort(), ['a', 'b', 'c']);
    for (const n of counts.values()) assert.equal(n, 100);
    assert.equal(session.remoteSettings.maxConcurrentStreams, 50);
  } finally {
    session.close();
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('a large upload (no length: chunked to the server; and with content-length) and a large download with backpressure', async () => {
  const size = 24 * 1024 * 1024;
  let wroteBeforeStall = 0;
  const server = await fake((req, res) => {
    if (req.method === 'POST') {
      const hash = createHash('sha256');
      let bytes = 0;
      req.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      req.on('end', () =>
        res.end(
          JSON.stringify({ bytes, sha: hash.digest('hex'), te: req.headers['transfer-encoding'] ?? null }),
        ),
      );
      return;
    }
    // A download written as fast as the balancer takes it: how far it gets while the client
    // does not read shows that nothing buffers the whole body.
    res.writeHead(200, { 'content-length': size });
    const block = Buffer.alloc(64 * 1024, 7);
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        sent += block.length;
        if (!res.write(block)) {
          wroteBeforeStall = sent;
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  });
  const lb = await startBalancer(tlsYaml(`{ address: "127.0.0.1:${server.port}" }`));
  const session = connectTls(lb.port);
  try {
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) body[i] = i & 0xff;
    const sha = createHash('sha256').update(body).digest('hex');
    const chunked = await h2request(session, { ':method': 'POST', ':path': '/up' }, body);
    assert.deepEqual(JSON.parse(chunked.body.toString()), { bytes: size, sha, te: 'chunked' });
    const sized = await h2request(
      session,
      { ':method': 'POST', ':path': '/up', 'content-length': size },
      body,
    );
    assert.deepEqual(JSON.parse(sized.body.toString()), { bytes: size, sha, te: null });

    const stream: ClientHttp2Stream = session.request({ ':path': '/down' });
    stream.pause();
    await new Promise((r) => setTimeout(r, 700));
    // The client read nothing: the server is held back well before the end of the body.
    assert.ok(wroteBeforeStall > 0 && wroteBeforeStall < size / 2, `server wrote ${wroteBeforeStall} bytes`);
    let got = 0;
    stream.on('data', (c: Buffer) => {
      got += c.length;
    });
    stream.resume();
    await new Promise((r) => stream.on('end', r));
    assert.equal(got, size);
  } finally {
    session.close();
    await lb.stop();
    await server.close();
  }
});

test('sticky cookie over HTTP/2: set with Secure, and the cookie sent back pins the server', async () => {
  const backends = await startBackends(3);
  const lb = await startBalancer(
    tlsYaml(
      backends.map((b) => `{ address: "127.0.0.1:${b.port}", name: ${b.id} }`).join(', '),
      '',
      '    sticky: { type: cookie, cookie: srv }',
    ),
  );
  const session = connectTls(lb.port);
  try {
    const first = await h2request(session, { ':path': '/whoami' });
    const setCookie = first.headers['set-cookie'];
    assert.ok(Array.isArray(setCookie) && setCookie.length === 1);
    assert.match(setCookie[0]!, /^srv=[^;]+;.*Secure/);
    const cookie = setCookie[0]!.split(';')[0]!;
    for (let i = 0; i < 6; i++) {
      const r = await h2request(session, { ':path': '/whoami', cookie });
      assert.equal(r.headers['x-served-by'], first.headers['x-served-by']);
    }
  } finally {
    session.close();
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('retries over HTTP/2: a 503 goes to the next server, the client sees the good answer', async () => {
  const bad = await fake((_req, res) => {
    res.writeHead(503, { 'content-length': 3 });
    res.end('bad');
  });
  const good = await fake((_req, res) => {
    res.writeHead(200, { 'content-length': 4, 'x-served-by': 'good' });
    res.end('good');
  });
  const lb = await startBalancer(
    tlsYaml(
      `{ address: "127.0.0.1:${bad.port}" }, { address: "127.0.0.1:${good.port}" }`,
      '',
      '    retries: { attempts: 2, on: [connect-failure, 5xx] }',
    ),
  );
  const session = connectTls(lb.port);
  try {
    for (let i = 0; i < 4; i++) {
      const r = await h2request(session, { ':path': '/x' });
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'good');
    }
  } finally {
    session.close();
    await lb.stop();
    await bad.close();
    await good.close();
  }
});

test('failures over HTTP/2: a server too slow → 504; a server gone → 502', async () => {
  const silent = await fake(() => {});
  const lb = await startBalancer(
    tlsYaml(
      `{ address: "127.0.0.1:${silent.port}" }`,
      '',
      '    timeouts: { response: 300ms }\n    retries: { attempts: 0 }',
    ),
  );
  const session = connectTls(lb.port);
  try {
    const slow = await h2request(session, { ':path': '/slow' });
    assert.equal(slow.status, 504);
    await silent.close();
    const none = await h2request(session, { ':path': '/none' });
    assert.equal(none.status, 502);
  } finally {
    session.close();
    await lb.stop();
  }
});

test('rapid reset (CVE-2023-44487): a client resetting streams past the bound is cut; others are served', async () => {
  const backends = await startBackends(1, 20);
  const lb = await startBalancer(tlsYaml(`{ address: "127.0.0.1:${backends[0]!.port}" }`));
  const attacker = connectTls(lb.port);
  const other = connectTls(lb.port);
  try {
    await new Promise((r) => attacker.once('connect', r));
    assert.equal((await h2request(other, { ':path': '/whoami' })).status, 200);
    const listener = lb.runtime.listeners.get('web')!;
    assert.equal(listener.connectionCount, 2);
    let opened = 0;
    for (let i = 0; i < 2000 && !attacker.destroyed && !attacker.closed; i++) {
      try {
        const s = attacker.request({ ':path': `/echo?${i}` });
        s.on('error', () => {});
        s.close(constants.NGHTTP2_CANCEL);
        opened++;
      } catch {
        break;
      }
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    // The attacker's connection is gone on the balancer's side; the other one is not.
    const deadline = Date.now() + 3000;
    while (listener.connectionCount > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(listener.connectionCount, 1);
    assert.ok(opened > 200);
    assert.ok(lb.log.lines.some((l) => /reset more than 200 streams in 10s, disconnected/.test(l)));
    const r = await h2request(other, { ':path': '/whoami' });
    assert.equal(r.status, 200);
    // Every lease given back: nothing is left in flight on the server.
    await new Promise((r) => setTimeout(r, 300));
    const pool = lb.runtime.pools.get('p')!;
    assert.equal(pool.servers[0]!.active, 0);
  } finally {
    attacker.destroy();
    other.close();
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('timeouts: a TLS handshake that never comes is cut after timeouts.requestHead; an idle HTTP/2 connection after timeouts.idle', async () => {
  const backends = await startBackends(1);
  const lb = await startBalancer(
    tlsYaml(
      `{ address: "127.0.0.1:${backends[0]!.port}" }`,
      '    timeouts: { requestHead: 300ms, idle: 400ms }',
    ),
  );
  try {
    const silent = netConnect({ host: '127.0.0.1', port: lb.port });
    silent.on('error', () => {});
    const t0 = Date.now();
    await new Promise((r) => silent.once('close', r));
    const waited = Date.now() - t0;
    assert.ok(waited >= 250 && waited < 2000, `closed after ${waited} ms`);

    const session = connectTls(lb.port);
    assert.equal((await h2request(session, { ':path': '/whoami' })).status, 200);
    const t1 = Date.now();
    await new Promise((r) => session.once('close', r));
    const idle = Date.now() - t1;
    assert.ok(idle >= 350 && idle < 3000, `idle connection closed after ${idle} ms`);
  } finally {
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('protection over HTTP/2: rate limit per client (429 with Retry-After), body size limit while streaming (413)', async () => {
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners:
  - name: web
    listen: "127.0.0.1:0"
    pool: p
    http2: true
    protection: { rateLimit: { requests: 3, per: 10s }, limits: { maxBodySize: 1000 } }
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`);
  const session = connectH2c(lb.port);
  try {
    const statuses: number[] = [];
    const headers: IncomingHttpHeaders[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await h2request(session, { ':path': '/whoami' });
      statuses.push(r.status);
      headers.push(r.headers);
    }
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.ok(Number(headers[3]!['retry-after']) >= 1);
    assert.match(String(headers[3]!.ratelimit), /r=0/);
  } finally {
    session.close();
    await lb.stop();
  }
  const lb2 = await startBalancer(`
listeners:
  - name: web
    listen: "127.0.0.1:0"
    pool: p
    http2: true
    protection: { limits: { maxBodySize: 1000 } }
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`);
  const s2 = connectH2c(lb2.port);
  try {
    const big = await h2request(s2, { ':method': 'POST', ':path': '/up' }, Buffer.alloc(5000));
    assert.equal(big.status, 413);
    const sized = await h2request(
      s2,
      { ':method': 'POST', ':path': '/up', 'content-length': 5000 },
      Buffer.alloc(5000),
    ).catch((e: Error) => e);
    if (!(sized instanceof Error)) assert.equal(sized.status, 413);
    const small = await h2request(s2, { ':method': 'POST', ':path': '/up' }, Buffer.alloc(500));
    assert.equal(small.status, 200);
    assert.equal(JSON.parse(small.body.toString()).bodyLength, 500);
  } finally {
    s2.close();
    await lb2.stop();
    for (const b of backends) await b.close();
  }
});

test('shutdown: an HTTP/2 connection gets GOAWAY, its stream in flight finishes', async () => {
  const backends = await startBackends(1, 300);
  const lb = await startBalancer(tlsYaml(`{ address: "127.0.0.1:${backends[0]!.port}" }`));
  const session = connectTls(lb.port);
  try {
    const goaway = new Promise((r) => session.once('goaway', r));
    const inFlight = h2request(session, { ':path': '/whoami' });
    await new Promise((r) => setTimeout(r, 100));
    const stopped = lb.runtime.shutdown(5000);
    await goaway;
    const reply = await inFlight;
    assert.equal(reply.status, 200);
    await stopped;
  } finally {
    session.destroy();
    for (const b of backends) await b.close();
  }
});

/** An HTTP/2 frame: 9-byte header and payload. */
function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

test('CONTINUATION flood: a header block that never ends is cut by a bound; the balancer serves others', async (t) => {
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners: [{ name: web, listen: "127.0.0.1:0", pool: p, http2: true }]
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`);
  try {
    const socket = netConnect({ host: '127.0.0.1', port: lb.port });
    socket.on('error', () => {});
    await new Promise((r) => socket.once('connect', r));
    let closed = false;
    socket.resume();
    socket.on('close', () => {
      closed = true;
    });
    socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    socket.write(frame(4, 0, 0, Buffer.alloc(0))); // SETTINGS
    // HEADERS without END_HEADERS: :method GET, :path /, :scheme http (indexed), then
    // CONTINUATION frames of literal fields, never ending the block.
    socket.write(frame(1, 0x4 ^ 0x4, 1, Buffer.from([0x82, 0x84, 0x86])));
    const literal = Buffer.concat([
      Buffer.from([0x40, 0x05]),
      Buffer.from('x-pad'),
      Buffer.from([0x7f, 0x00]),
      Buffer.alloc(127, 97),
    ]);
    let sent = 0;
    for (let i = 0; i < 20_000 && !closed; i++) {
      socket.write(frame(9, 0, 1, literal));
      sent++;
      if (sent % 20 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    const deadline = Date.now() + 3000;
    while (!closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(closed, `connection still open after ${sent} CONTINUATION frames`);
    assert.ok(sent < 20_000, 'the flood ran its course without being cut');
    t.diagnostic(`connection closed after ${sent} CONTINUATION frames written`);
    // Others are served, over HTTP/2 and HTTP/1.1.
    const session = connectH2c(lb.port);
    const r = await h2request(session, { ':path': '/whoami' });
    session.close();
    assert.equal(r.status, 200);
    assert.equal((await request(lb.port, { path: '/whoami' })).status, 200);
  } finally {
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('header limits: more fields than allowed, or a head larger than maxHeaderSize, is refused', async (t) => {
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners: [{ name: web, listen: "127.0.0.1:0", pool: p, http2: true, maxHeaderSize: 2048 }]
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`);
  const session = connectH2c(lb.port);
  try {
    const many: OutgoingHttpHeaders = { ':path': '/' };
    for (let i = 0; i < 150; i++) many[`x-h${i}`] = 'v';
    const tooMany = await h2request(session, many).catch((e: Error) => e);
    // nghttp2's bound (maxHeaderListPairs) resets the stream, or ours answers 431.
    if (!(tooMany instanceof Error)) assert.equal(tooMany.status, 431);
    t.diagnostic(`150 fields: ${tooMany instanceof Error ? tooMany.message : tooMany.status}`);
    const fresh = connectH2c(lb.port);
    const big = await h2request(fresh, { ':path': '/', 'x-big': 'y'.repeat(3000) }).catch((e: Error) => e);
    if (!(big instanceof Error)) assert.equal(big.status, 431);
    t.diagnostic(`3000-byte field: ${big instanceof Error ? big.message : big.status}`);
    const ok = await h2request(fresh, { ':path': '/whoami' });
    assert.equal(ok.status, 200);
    fresh.close();
  } finally {
    session.destroy();
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('interim responses over HTTP/2: 103 Early Hints and 100 Continue reach the client before the final answer', async () => {
  const server = await fake((req, res) => {
    if (req.url === '/hints') {
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      setTimeout(() => res.end('final'), 50);
      return;
    }
    // /upload: node:http answers "Expect: 100-continue" with 100 Continue by itself.
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
    });
    req.on('end', () => res.end(`got ${n}`));
  });
  const lb = await startBalancer(`
listeners: [{ name: web, listen: "127.0.0.1:0", pool: p, http2: true }]
pools: [{ name: p, servers: [{ address: "127.0.0.1:${server.port}" }] }]
`);
  const session = connectH2c(lb.port);
  try {
    // 103 then 200, on the stream, in that order.
    const seen: string[] = [];
    let link = '';
    const body = await new Promise<string>((resolve, reject) => {
      const stream = session.request({ ':path': '/hints' });
      stream.on('headers', (h) => {
        seen.push(String(h[':status']));
        link = String(h.link);
      });
      stream.on('response', (h) => seen.push(String(h[':status'])));
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve(Buffer.concat(chunks).toString()));
      stream.on('error', reject);
    });
    assert.deepEqual(seen, ['103', '200']);
    assert.equal(link, '</style.css>; rel=preload; as=style');
    assert.equal(body, 'final');
    // 100 Continue: the client waits for it before sending the body.
    const uploaded = await new Promise<string>((resolve, reject) => {
      const stream = session.request(
        { ':method': 'POST', ':path': '/upload', expect: '100-continue', 'content-length': 5 },
        { endStream: false },
      );
      let continued = false;
      stream.on('continue', () => {
        continued = true;
        stream.end('hello');
      });
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () =>
        continued ? resolve(Buffer.concat(chunks).toString()) : reject(new Error('no 100')),
      );
      stream.on('error', reject);
    });
    assert.equal(uploaded, 'got 5');
    // curl sees the 103 too (h2c with prior knowledge).
    const { stderr } = await run(
      'curl',
      ['-sS', '-v', '--http2-prior-knowledge', '-o', '/dev/null', `http://127.0.0.1:${lb.port}/hints`],
      { timeout: 10_000 },
    );
    assert.match(stderr, /< HTTP\/2 103/);
    assert.match(stderr, /< HTTP\/2 200/);
  } finally {
    session.close();
    await lb.stop();
    await server.close();
  }
});

test('timeouts.bodyMinRate over HTTP/2: a slow body gets 408 on its stream (then RST_STREAM NO_ERROR); the connection’s other streams go on', async () => {
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners:
  - name: web
    listen: "127.0.0.1:0"
    pool: p
    http2: true
    protection: { timeouts: { bodyMinRate: 1KiB/s } }
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`);
  const session = connectH2c(lb.port);
  try {
    const started = Date.now();
    const slow = new Promise<{ status: number; rst: number }>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': '/up' }, { endStream: false });
      stream.write(Buffer.alloc(10));
      let status = 0;
      stream.on('response', (h) => {
        status = Number(h[':status']);
      });
      stream.resume();
      stream.on('close', () => resolve({ status, rst: stream.rstCode ?? -1 }));
      stream.on('error', reject);
    });
    // Meanwhile the same connection serves other streams.
    const other = await h2request(session, { ':path': '/whoami' });
    assert.equal(other.status, 200);
    const r = await slow;
    assert.equal(r.status, 408);
    assert.equal(r.rst, constants.NGHTTP2_NO_ERROR);
    assert.ok(Date.now() - started >= 1000, 'cut before the first second of slack');
    assert.ok(!session.closed && !session.destroyed, 'the connection was closed');
    // A body sent at once is fine on the same connection.
    const quick = await h2request(session, { ':method': 'POST', ':path': '/up' }, Buffer.alloc(4000));
    assert.equal(quick.status, 200);
    assert.equal(JSON.parse(quick.body.toString()).bodyLength, 4000);
    const refused = lb.runtime.listeners.get('web')!.protection!.rejected as Record<string, number>;
    assert.equal(refused['slow-body'], 1);
  } finally {
    session.close();
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

/**
 * A raw HTTP/2 client over TLS that opens `streams` GET streams, then ends its side of the
 * connection (FIN) without waiting for the answers: it reads on but sends nothing more, no
 * WINDOW_UPDATE either, so answers larger than the 64 KiB window wait on flow control forever.
 * Returned at once, with the bytes read so far: the caller destroys the socket.
 */
function requestsThenFin(port: number, streams: number): { socket: TLSSocket; read: number } {
  const socket = tlsConnect({
    host: '127.0.0.1',
    port,
    ca: caPem,
    servername: 'site.test',
    ALPNProtocols: ['h2'],
  });
  const client = { socket, read: 0 };
  socket.on('error', () => {});
  socket.on('data', (c: Buffer) => {
    client.read += c.length;
  });
  socket.once('secureConnect', () => {
    // :method GET, :scheme https, :path / (static table); :authority as a literal.
    const authority = Buffer.from('site.test');
    const block = Buffer.concat([Buffer.from([0x82, 0x87, 0x84, 0x01, authority.length]), authority]);
    const frames = [Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0))];
    // HEADERS with END_STREAM | END_HEADERS on streams 1, 3, 5 …
    for (let i = 0; i < streams; i++) frames.push(frame(1, 0x1 | 0x4, 1 + 2 * i, block));
    socket.end(Buffer.concat(frames));
  });
  return client;
}

/** Polls `done` every 20 ms until it holds or `ms` pass; returns whether it held. */
async function until(done: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return done();
}

/** A server whose every answer is 100 KiB, more than an HTTP/2 client's initial window. */
function bigAnswers(): ReturnType<typeof fake> {
  const body = Buffer.alloc(100 * 1024, 7);
  return fake((_req, res) => {
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
}

/**
 * Waits until each client has its connection's whole window of answers (the rest waits on flow
 * control), or was cut; each had a session (its SETTINGS came at least).
 */
async function answered(clients: ReturnType<typeof requestsThenFin>[]): Promise<void> {
  await until(() => clients.every((c) => c.read >= 65_535 || c.socket.closed), 10_000);
  assert.ok(
    clients.every((c) => c.read > 0),
    `bytes read by the clients: ${clients.map((c) => c.read).join(', ')}`,
  );
}

test('a client that ends its connection (FIN) with streams in flight: its session goes, and a shutdown does not wait for it', async () => {
  // Answers larger than the client's window: its streams are still in flight when it has gone.
  const server = await bigAnswers();
  const lb = await startBalancer(tlsYaml(`{ address: "127.0.0.1:${server.port}" }`));
  const listener = lb.runtime.listeners.get('web')!;
  const clients: ReturnType<typeof requestsThenFin>[] = [];
  let stopped = false;
  try {
    for (let i = 0; i < 5; i++) clients.push(requestsThenFin(lb.port, 10));
    await answered(clients);
    assert.ok(
      await until(() => listener.connectionCount === 0, 5000),
      `${listener.connectionCount} sessions still listed after their clients ended the connection`,
    );
    // Nothing left to wait for: the shutdown ends long before its timeout.
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'waited'>((r) => {
      timer = setTimeout(() => r('waited'), 10_000);
    });
    const shutdown = lb.runtime.shutdown(30_000).then(() => 'done' as const);
    const outcome = await Promise.race([shutdown, bound]);
    clearTimeout(timer);
    assert.equal(outcome, 'done', 'the shutdown waited on connections their clients had ended');
    stopped = true;
  } finally {
    for (const c of clients) c.socket.destroy();
    if (!stopped) await lb.stop();
    await server.close();
  }
});

test('fulcrum start: SIGTERM after HTTP/2 traffic (and clients gone with streams in flight) exits 0, well within its shutdownTimeout', async (t) => {
  const server = await bigAnswers();
  const port = await freePort();
  const file = join(kit.dir, 'h2-exit.yaml');
  writeFileSync(
    file,
    `shutdownTimeout: 60s
${tlsYaml(`{ address: "127.0.0.1:${server.port}" }`).replace('127.0.0.1:0', `127.0.0.1:${port}`)}`,
  );
  const proc = spawnCli(['start', '-c', file]);
  const sessions: ClientHttp2Session[] = [];
  const clients: ReturnType<typeof requestsThenFin>[] = [];
  try {
    await proc.waitForPort(port);
    for (let i = 0; i < 8; i++) sessions.push(connectTls(port));
    const replies = await Promise.all(
      sessions.flatMap((s) => Array.from({ length: 20 }, () => h2request(s, { ':path': '/whoami' }))),
    );
    assert.ok(replies.every((r) => r.status === 200));
    for (const s of sessions) s.close();
    // Clients that end their connection with streams in flight (waiting on flow control), and
    // SIGTERM right after.
    for (let i = 0; i < 4; i++) clients.push(requestsThenFin(port, 10));
    await answered(clients);
    const sent = Date.now();
    proc.signal('SIGTERM');
    // A bound, not a measure: a session left behind would hold the exit for the whole 60 s.
    assert.deepEqual(await proc.waitForExit(10_000), { code: 0, signal: null }, proc.output);
    assert.match(proc.stderr, /stopped/);
    t.diagnostic(`exited ${Date.now() - sent} ms after SIGTERM`);
  } finally {
    for (const s of sessions) s.destroy();
    for (const c of clients) c.socket.destroy();
    await proc.stop('SIGKILL');
    await server.close();
  }
});
