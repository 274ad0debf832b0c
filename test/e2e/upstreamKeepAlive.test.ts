import assert from 'node:assert/strict';
import { Agent, createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { request, startBalancer, type TestBalancer } from '../helpers/balancer.js';

/** A node:http server that records, for each connection, which side closed it first. */
interface Recorded {
  server: HttpServer;
  port: number;
  /** Every connection accepted, in order; `peerClosed` once the balancer's FIN arrived. */
  conns: { socket: Socket; peerClosed: boolean; closed: boolean }[];
  /** Connections that carried traffic (not health probes). */
  dataConns(): number;
  close(): Promise<void>;
}

async function recordingServer(keepAliveTimeout: number): Promise<Recorded> {
  const conns: Recorded['conns'] = [];
  const probes = new WeakSet<Socket>();
  const server = createServer({ keepAliveTimeout }, (req, res) => {
    if (req.headers['user-agent'] === 'fulcrum-health-check') probes.add(req.socket);
    res.setHeader('content-type', 'text/plain');
    res.end('ok');
  });
  server.on('connection', (socket: Socket) => {
    const c = { socket, peerClosed: false, closed: false };
    conns.push(c);
    socket.on('end', () => {
      c.peerClosed = true;
    });
    socket.on('close', () => {
      c.closed = true;
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    conns,
    dataConns: () => conns.filter((c) => !probes.has(c.socket)).length,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("a server's Keep-Alive: timeout hint", () => {
  let backend: Recorded;
  let lb: TestBalancer;
  before(async () => {
    // Node answers every request with `Keep-Alive: timeout=1` and closes idle sockets after 1 s.
    backend = await recordingServer(1000);
    lb = await startBalancer(`
listeners:
  - { name: web, protocol: http, listen: "127.0.0.1:0", pool: web }
pools:
  - name: web
    servers: [ { address: "127.0.0.1:${backend.port}", name: a } ]
`);
  });
  after(async () => {
    await lb.stop();
    await backend.close();
  });

  test('the balancer closes the idle connection before the server does, then opens a fresh one', async () => {
    const first = await request(lb.port, { path: '/one' });
    assert.equal(first.status, 200);
    assert.equal(backend.conns.length, 1);
    const conn = backend.conns[0]!;
    await sleep(900);
    // Within the server's second, the balancer has closed its side (the server saw its FIN).
    assert.equal(conn.peerClosed, true, 'the balancer closed the idle connection before 1 s');
    await sleep(300);
    const second = await request(lb.port, { path: '/two' });
    assert.equal(second.status, 200);
    assert.equal(backend.conns.length, 2, 'the next request opened a fresh connection');
    assert.deepEqual(
      lb.log.lines.filter((l) => /retrying|502|closed the connection/.test(l)),
      [],
      'no error and no retry',
    );
  });

  test('requests spaced around the server timeout never meet a closing connection', async () => {
    // Without the hint, a request sent just as the server times the connection out races its
    // close; with it, such a connection is never reused.
    for (const gap of [400, 700, 950, 1000, 1050]) {
      await sleep(gap);
      const r = await request(lb.port, { path: `/gap-${gap}`, method: 'POST', body: 'x' });
      assert.equal(r.status, 200, `after ${gap} ms idle`);
    }
  });
});

describe('a steady load keeps a steady set of upstream connections', () => {
  let backend: Recorded;
  let lb: TestBalancer;
  before(async () => {
    // The sample backend's keep-alive (65 s): the server never times a connection out here.
    backend = await recordingServer(65_000);
    lb = await startBalancer(`
listeners:
  - { name: web, protocol: http, listen: "127.0.0.1:0", pool: web }
pools:
  - name: web
    algorithm: least-connections
    servers: [ { address: "127.0.0.1:${backend.port}", name: a } ]
    healthCheck: { type: http, path: /health, interval: 50ms, timeout: 1s }
`);
  });
  after(async () => {
    await lb.stop();
    await backend.close();
  });

  test('N keep-alive clients open at most N connections; probes are closed by the balancer', async () => {
    const clients = 8;
    const agents = Array.from({ length: clients }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
    await Promise.all(
      agents.map(async (agent) => {
        for (let i = 0; i < 40; i++) assert.equal((await request(lb.port, { agent })).status, 200);
      }),
    );
    for (const a of agents) a.destroy();
    assert.ok(
      backend.dataConns() <= clients,
      `${backend.dataConns()} upstream connections for ${clients} clients`,
    );
    const probes = backend.conns.length - backend.dataConns();
    assert.ok(probes >= 2, 'health probes ran');
    await sleep(100);
    // Every finished probe was closed by the balancer first (no TIME_WAIT left on the server).
    const closedProbes = backend.conns.filter((c) => c.closed);
    assert.ok(closedProbes.length >= 2);
    assert.deepEqual(
      closedProbes.filter((c) => !c.peerClosed).length,
      0,
      'the server closed none of the probe connections itself',
    );
  });
});

test('stopping the runtime closes its pool of idle upstream connections', async () => {
  const backend = await recordingServer(65_000);
  const lb = await startBalancer(`
listeners:
  - { name: web, protocol: http, listen: "127.0.0.1:0", pool: web }
pools:
  - name: web
    servers: [ { address: "127.0.0.1:${backend.port}", name: a } ]
`);
  try {
    assert.equal((await request(lb.port)).status, 200);
    const server = lb.runtime.pools.get('web')!.servers[0]!;
    assert.equal(lb.runtime.upstreams.idleCount(server), 1);
    await lb.stop();
    assert.equal(lb.runtime.upstreams.idleCount(server), 0);
    const until = Date.now() + 2000;
    while (!backend.conns.every((c) => c.closed) && Date.now() < until) await sleep(10);
    assert.ok(
      backend.conns.every((c) => c.peerClosed),
      'the balancer closed every upstream connection',
    );
  } finally {
    await backend.close();
  }
});
