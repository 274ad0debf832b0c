import assert from 'node:assert/strict';
import { once } from 'node:events';
import { copyFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { parseConfig } from '../../src/config/index.js';
import { healthOf } from '../../src/health/index.js';
import { request, startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { CertDir, type CertFiles } from '../helpers/certs.js';

interface HttpsBackend {
  port: number;
  /** TLS connections accepted, and how many of them resumed a session. */
  connections: number;
  resumed: number;
  /** The connection each path was asked on. */
  socketOf: Map<string, TLSSocket>;
  server: HttpsServer;
  close(): Promise<void>;
}

/**
 * An HTTPS server answering `{ id, client }` (client: the CN of the client certificate, if any);
 * with `clientCa` it requires a client certificate signed by that CA.
 */
async function httpsBackend(
  id: string,
  files: CertFiles,
  certs: CertDir,
  clientCa?: CertFiles,
): Promise<HttpsBackend> {
  const server = createHttpsServer(
    {
      cert: certs.read(files.cert),
      key: certs.read(files.key),
      ...(clientCa !== undefined
        ? { ca: certs.read(clientCa.cert), requestCert: true, rejectUnauthorized: true }
        : {}),
    },
    (req, res) => {
      const socket = req.socket as TLSSocket;
      b.socketOf.set(req.url ?? '', socket);
      const client = socket.getPeerCertificate()?.subject?.CN ?? null;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ id, client, path: req.url }));
    },
  );
  const b: HttpsBackend = {
    port: 0,
    connections: 0,
    resumed: 0,
    socketOf: new Map(),
    server,
    close: async () => {},
  };
  server.on('secureConnection', (s: TLSSocket) => {
    b.connections++;
    if (s.isSessionReused()) b.resumed++;
  });
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  b.port = (server.address() as { port: number }).port;
  b.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return b;
}

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const certs = new CertDir();
let app: HttpsBackend;
let mtls: HttpsBackend;
let lb: TestBalancer;
let yamlText = '';

before(async () => {
  const ca = certs.ca('internal-ca');
  certs.ca('other-ca');
  const site = certs.leaf(ca, 'app', ['app.internal', '127.0.0.1']);
  certs.leaf(ca, 'client', ['balancer.internal']);
  app = await httpsBackend('app', site, certs);
  mtls = await httpsBackend('mtls', site, certs, ca);
  const d = certs.dir;
  const route = (path: string, pool: string) => `      - { match: { pathPrefix: /${path} }, pool: ${pool} }`;
  const pool = (name: string, port: number, tls: string, extra = '') =>
    `  - name: ${name}\n    servers: [ { address: "127.0.0.1:${port}" } ]\n    retries: { attempts: 0 }\n    tls: ${tls}\n${extra}`;
  yamlText = `
listeners:
  - name: web
    listen: 127.0.0.1:0
    pool: verified
    routes:
${route('wrong-ca', 'wrongca')}
${route('no-verify', 'noverify')}
${route('mtls-none', 'mtlsnone')}
${route('mtls', 'mtls')}
${route('by-ip', 'byip')}
pools:
${pool('verified', app.port, `{ serverName: app.internal, ca: ${d}/internal-ca.pem }`)}
${pool('wrongca', app.port, `{ serverName: app.internal, ca: ${d}/other-ca.pem }`)}
${pool('noverify', app.port, `{ serverName: wrong.name, verify: false }`)}
${pool('mtls', mtls.port, `{ serverName: app.internal, ca: ${d}/internal-ca.pem, cert: ${d}/client.pem, key: ${d}/client.key }`)}
${pool('mtlsnone', mtls.port, `{ serverName: app.internal, ca: ${d}/internal-ca.pem }`)}
${pool('byip', app.port, `{ ca: ${d}/internal-ca.pem }`)}
${pool('checked', app.port, `{ serverName: app.internal, ca: ${d}/internal-ca.pem }`, '    healthCheck: { type: http, path: /health, interval: 100ms, rise: 1, fall: 1, startDown: true }')}
${pool('checkedtcp', app.port, `{ serverName: app.internal, ca: ${d}/internal-ca.pem }`, '    healthCheck: { type: tcp, interval: 100ms, rise: 1, fall: 1, startDown: true }')}
${pool('checkedbad', app.port, `{ serverName: app.internal, ca: ${d}/other-ca.pem }`, '    healthCheck: { type: http, interval: 100ms, rise: 1, fall: 1 }')}
`;
  lb = await startBalancer(yamlText);
});

after(async () => {
  await lb?.stop();
  await app?.close();
  await mtls?.close();
  certs.remove();
});

test('requests reach an https server whose certificate chains to the pool ca and names serverName', async () => {
  const r = await request(lb.port, { path: '/hello' });
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { id: 'app', client: null, path: '/hello' });
  // The certificate's IP SAN, without serverName: checked against the address.
  assert.equal((await request(lb.port, { path: '/by-ip' })).status, 200);
});

test('upstream TLS connections are kept alive and reused', async () => {
  for (let i = 0; i < 5; i++) assert.equal((await request(lb.port, { path: `/again${i}` })).status, 200);
  const used = new Set([0, 1, 2, 3, 4].map((i) => app.socketOf.get(`/again${i}`)));
  assert.equal(used.size, 1, 'one TLS connection for requests in sequence');
});

test('a server certificate from another CA: 502, and the reason in the log', async () => {
  const r = await request(lb.port, { path: '/wrong-ca' });
  assert.equal(r.status, 502);
  const line = lb.log.lines.find((l) => l.includes('/wrong-ca'));
  assert.ok(line, lb.log.lines.join('\n'));
  assert.match(line, /TLS handshake: unable to verify the first certificate/);
});

test('a server that does not speak TLS: 502, and the reason in the log', async () => {
  const plain = createHttpServer((_req, res) => res.end('plain'));
  plain.listen(0, '127.0.0.1');
  await once(plain, 'listening');
  const port = (plain.address() as { port: number }).port;
  const second = await startBalancer(`
listeners: [ { name: web, listen: "127.0.0.1:0", pool: p } ]
pools:
  - name: p
    servers: [ { address: "127.0.0.1:${port}" } ]
    tls: { verify: false }
`);
  try {
    assert.equal((await request(second.port, { path: '/plain' })).status, 502);
    const line = second.log.lines.find((l) => l.includes('/plain'));
    assert.match(line ?? '', /TLS handshake: .*wrong version number/);
  } finally {
    await second.stop();
    plain.closeAllConnections();
    await new Promise<void>((r) => plain.close(() => r()));
  }
});

test('a server that accepts but never completes the handshake: the connect timeout covers it (504)', async () => {
  const held = new Set<Socket>();
  const silent = createNetServer((s) => {
    held.add(s);
    s.on('error', () => {});
  });
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const port = (silent.address() as { port: number }).port;
  const second = await startBalancer(`
listeners: [ { name: web, listen: "127.0.0.1:0", pool: p } ]
pools:
  - name: p
    servers: [ { address: "127.0.0.1:${port}" } ]
    retries: { attempts: 0 }
    timeouts: { connect: 300ms }
    tls: { verify: false }
`);
  try {
    const started = Date.now();
    assert.equal((await request(second.port, { path: '/silent' })).status, 504);
    assert.ok(Date.now() - started < 2000);
  } finally {
    await second.stop();
    for (const s of held) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  }
});

test('verify: false accepts any certificate and name', async () => {
  const r = await request(lb.port, { path: '/no-verify' });
  assert.equal(r.status, 200);
});

test('mTLS: the pool client certificate is presented to a server that requires one', async () => {
  const r = await request(lb.port, { path: '/mtls' });
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { id: 'mtls', client: 'balancer.internal', path: '/mtls' });
  const refused = await request(lb.port, { path: '/mtls-none' });
  assert.equal(refused.status, 502);
});

test('health checks use TLS: http and tcp checks bring a TLS server up; a wrong CA takes it down', async () => {
  const server = (pool: string) => lb.runtime.pools.get(pool)!.servers[0]!;
  await until('checked up', () => server('checked').state === 'up');
  assert.equal(healthOf(server('checked'))?.lastResult, 'status 200');
  await until('checkedtcp up', () => server('checkedtcp').state === 'up');
  assert.equal(healthOf(server('checkedtcp'))?.lastResult, 'TLS handshake completed');
  await until('checkedbad down', () => server('checkedbad').state === 'down');
  assert.match(
    healthOf(server('checkedbad'))!.lastResult,
    /^TLS handshake: unable to verify the first certificate/,
  );
});

test('later connections resume the TLS session', async () => {
  // Each health check opens a fresh connection; the balancer's own connections resume.
  const pool = lb.runtime.pools.get('verified')!;
  lb.runtime.upstreams.closeServer(pool.servers[0]!);
  const before = app.resumed;
  assert.equal((await request(lb.port, { path: '/resume' })).status, 200);
  assert.ok(app.resumed > before, `resumed ${app.resumed - before}`);
});

test('a reload with new contents in a ca file applies them to new connections', async () => {
  assert.equal((await request(lb.port, { path: '/wrong-ca' })).status, 502);
  copyFileSync(join(certs.dir, 'internal-ca.pem'), join(certs.dir, 'other-ca.pem'));
  const summary = await lb.runtime.apply(parseConfig(yamlText, 'test.yaml'));
  assert.ok(summary.pools.updated.includes('wrongca'), JSON.stringify(summary));
  assert.equal((await request(lb.port, { path: '/wrong-ca' })).status, 200);
});
