import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { after, before, test } from 'node:test';
import { createServer as createTlsServer, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { Telemetry } from '../../src/admin/metrics.js';
import type { TcpListener } from '../../src/proxy/tcp/tcpListener.js';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { CertDir, type CertFiles } from '../helpers/certs.js';
import { captureHello, reframe } from '../helpers/clientHello.js';

/** `openssl s_client -servername NAME`, stdin closed at once: its output. */
function sClient(port: number, name: string, caFile: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', name, '-CAfile', caFile],
      { timeout: 10_000 },
      (err, stdout) => (err !== null && stdout === '' ? reject(err) : resolve(stdout)),
    );
    child.stdin?.end();
  });
}

interface TlsBackend {
  port: number;
  accepted: number;
  close(): Promise<void>;
}

/** A TLS server with its own certificate that answers `${id}\n` and closes. */
async function tlsBackend(id: string, files: CertFiles, certs: CertDir): Promise<TlsBackend> {
  const sockets = new Set<TLSSocket>();
  const b: TlsBackend = { port: 0, accepted: 0, close: async () => {} };
  const server = createTlsServer({ cert: certs.read(files.cert), key: certs.read(files.key) }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.end(`${id}\n`);
  });
  server.on('connection', () => b.accepted++);
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  b.port = (server.address() as { port: number }).port;
  b.close = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return b;
}

/** A raw TCP server keeping the bytes of its first connection. */
async function rawBackend(): Promise<{ port: number; bytes: () => Buffer; close(): Promise<void> }> {
  const got: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createNetServer((s) => {
    sockets.add(s);
    s.on('data', (c: Buffer) => got.push(c));
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    bytes: () => Buffer.concat(got),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

interface Seen {
  subject: string;
  authorized: boolean;
  data: string;
}

/** A TLS client through the balancer: the certificate it got and what the server said. */
function tlsClient(port: number, servername: string | undefined, ca: Buffer, socket?: Duplex): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({
      host: '127.0.0.1',
      port,
      ...(servername !== undefined ? { servername } : {}),
      ...(socket !== undefined ? { socket } : {}),
      ca,
      rejectUnauthorized: false,
    });
    let data = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (data += d));
    s.on('error', reject);
    s.on('end', () => {
      const cert = s.getPeerCertificate();
      resolve({ subject: String(cert.subject?.CN), authorized: s.authorized, data });
      s.destroy();
    });
  });
}

/** A socket to `port` whose writes leave `size` bytes at a time, a millisecond apart. */
function trickle(port: number, size: number): Duplex {
  const socket = connect({ host: '127.0.0.1', port, noDelay: true });
  const d = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      let i = 0;
      const step = () => {
        if (i >= chunk.length) return cb();
        socket.write(chunk.subarray(i, i + size));
        i += size;
        setTimeout(step, 1);
      };
      step();
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  socket.on('data', (c: Buffer) => d.push(c));
  socket.on('end', () => d.push(null));
  socket.on('error', (err) => d.destroy(err));
  return d;
}

/** Resolves when the balancer closes the connection; with what it sent (nothing expected). */
function closedBy(port: number, bytes?: Buffer): Promise<{ ms: number; got: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const s = connect({ host: '127.0.0.1', port });
    let got = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('not closed in time'));
    }, 5000);
    s.on('data', (c: Buffer) => (got += c.length));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ ms: Date.now() - started, got });
    });
    if (bytes !== undefined) s.write(bytes);
  });
}

const certs = new CertDir();
let ca: CertFiles;
let backends: TlsBackend[] = [];
let raw: Awaited<ReturnType<typeof rawBackend>>;
let lb: TestBalancer;

before(async () => {
  ca = certs.ca('test-ca');
  const a = certs.leaf(ca, 'a', ['a.test']);
  const b = certs.leaf(ca, 'b', ['b.test', '*.wild.test']);
  const d = certs.leaf(ca, 'default', ['default.test']);
  backends = [
    await tlsBackend('A', a, certs),
    await tlsBackend('B', b, certs),
    await tlsBackend('D', d, certs),
  ];
  raw = await rawBackend();
  lb = await startBalancer(`
listeners:
  - name: sni
    protocol: tcp
    listen: 127.0.0.1:0
    pool: fallback
    timeouts: { clientHello: 300ms }
    routes:
      - match: { sni: a.test }
        pool: pa
      - match: { sni: b.test }
        pool: pb
      - match: { sni: "*.wild.test" }
        pool: pb
      - match: { sni: raw.test }
        pool: raw
pools:
  - name: pa
    servers: [ { address: "127.0.0.1:${backends[0]!.port}" } ]
  - name: pb
    servers: [ { address: "127.0.0.1:${backends[1]!.port}" } ]
  - name: fallback
    servers: [ { address: "127.0.0.1:${backends[2]!.port}" } ]
  - name: raw
    sendProxyProtocol: v1
    servers: [ { address: "127.0.0.1:${raw.port}" } ]
`);
});

after(async () => {
  await lb?.stop();
  for (const b of backends) await b.close();
  await raw?.close();
  certs.remove();
});

test('each server name reaches its pool and its certificate; no SNI goes to the default pool', async () => {
  const caPem = certs.read(ca.cert);
  assert.deepEqual(await tlsClient(lb.port, 'a.test', caPem), {
    subject: 'a.test',
    authorized: true,
    data: 'A\n',
  });
  assert.deepEqual(await tlsClient(lb.port, 'b.test', caPem), {
    subject: 'b.test',
    authorized: true,
    data: 'B\n',
  });
  assert.deepEqual(await tlsClient(lb.port, 'x.y.wild.test', caPem), {
    subject: 'b.test',
    authorized: false, // *.wild.test covers one label only: the routing is ours, the check the client's
    data: 'B\n',
  });
  const none = await tlsClient(lb.port, undefined, caPem);
  // (Not authorized: the client checks the name 127.0.0.1, which the certificate lacks.)
  assert.deepEqual([none.subject, none.data], ['default.test', 'D\n']);
  const other = await tlsClient(lb.port, 'unknown.test', caPem);
  assert.equal(other.data, 'D\n');
});

test('openssl s_client -servername sees the certificate of the backend the name routes to', async () => {
  for (const [name, cn] of [
    ['a.test', 'a.test'],
    ['b.test', 'b.test'],
  ]) {
    const stdout = await sClient(lb.port, name!, ca.cert);
    assert.match(stdout, new RegExp(`subject=CN ?= ?${cn!.replace('.', '\\.')}`));
    assert.match(stdout, /Verify return code: 0 \(ok\)/);
  }
});

test('a ClientHello written a few bytes at a time is read whole, and the handshake completes', async () => {
  const seen = await tlsClient(lb.port, 'a.test', certs.read(ca.cert), trickle(lb.port, 7));
  assert.deepEqual(seen, { subject: 'a.test', authorized: true, data: 'A\n' });
});

test('a ClientHello spread over many TLS records reaches the server byte for byte, after the PROXY header', async () => {
  const framed = reframe(await captureHello('raw.test'), 40);
  const s = connect({ host: '127.0.0.1', port: lb.port });
  s.on('error', () => {});
  for (let i = 0; i < framed.length; i += 50) {
    s.write(framed.subarray(i, i + 50));
    await new Promise((r) => setTimeout(r, 1));
  }
  const deadline = Date.now() + 3000;
  while (raw.bytes().length < framed.length && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 10));
  s.destroy();
  const got = raw.bytes();
  const eol = got.indexOf('\r\n');
  assert.match(got.subarray(0, eol).toString(), /^PROXY TCP4 127\.0\.0\.1 127\.0\.0\.1 \d+ \d+$/);
  assert.deepEqual(got.subarray(eol + 2), framed);
});

test('a client that sends no ClientHello in time is closed, counted and logged', async () => {
  const listener = lb.runtime.listeners.get('sni') as TcpListener;
  const before = listener.helloRejections.timeout;
  const accepted = backends.map((b) => b.accepted);
  const { ms, got } = await closedBy(lb.port);
  assert.equal(got, 0);
  assert.ok(ms >= 250 && ms < 2000, `closed after ${ms}ms`);
  assert.equal(listener.helloRejections.timeout, before + 1);
  assert.ok(lb.log.lines.some((l) => l.includes('no TLS ClientHello within 300ms')));
  assert.deepEqual(
    backends.map((b) => b.accepted),
    accepted,
    'no server was connected',
  );
});

test('bytes that are not TLS are closed at once', async () => {
  const listener = lb.runtime.listeners.get('sni') as TcpListener;
  const before = listener.helloRejections.invalid;
  const { ms, got } = await closedBy(lb.port, Buffer.from('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n'));
  assert.equal(got, 0);
  assert.ok(ms < 250, `closed after ${ms}ms`);
  assert.equal(listener.helloRejections.invalid, before + 1);
  assert.ok(lb.log.lines.some((l) => l.includes('closed: not a TLS handshake')));
  const telemetry = new Telemetry(lb.runtime);
  const text = await telemetry.registry.metrics();
  telemetry.close();
  assert.match(text, /fulcrum_tls_client_hello_rejected_total\{listener="sni",reason="invalid"\} [1-9]/);
  assert.match(text, /fulcrum_tls_client_hello_rejected_total\{listener="sni",reason="timeout"\} [1-9]/);
});

test('behind acceptProxyProtocol the ClientHello after the PROXY header is routed; without sni routes nothing is read', async () => {
  const other = await rawBackend();
  const second = await startBalancer(`
listeners:
  - name: behind
    protocol: tcp
    listen: 127.0.0.1:0
    pool: fallback
    acceptProxyProtocol: true
    trustedProxies: [127.0.0.1/32]
    routes:
      - match: { sni: raw.test }
        pool: raw
  - name: plain
    protocol: tcp
    listen: 127.0.0.1:0
    pool: raw
pools:
  - name: raw
    servers: [ { address: "127.0.0.1:${other.port}" } ]
  - name: fallback
    servers: [ { address: "127.0.0.1:${backends[2]!.port}" } ]
`);
  try {
    const hello = await captureHello('raw.test');
    const s = connect({ host: '127.0.0.1', port: second.runtime.address('behind').port });
    s.on('error', () => {});
    s.write(Buffer.concat([Buffer.from('PROXY TCP4 198.51.100.7 127.0.0.1 40000 443\r\n'), hello]));
    await until(() => other.bytes().length >= hello.length);
    assert.deepEqual(other.bytes(), hello);
    s.destroy();
    // A tcp listener without sni routes forwards anything, never looking at it.
    assert.equal((second.runtime.listeners.get('plain') as TcpListener).sni, null);
    const p = connect({ host: '127.0.0.1', port: second.runtime.address('plain').port });
    p.on('error', () => {});
    p.write('not TLS at all\n');
    await until(() => other.bytes().toString('latin1').endsWith('not TLS at all\n'));
    p.destroy();
  } finally {
    await second.stop();
    await other.close();
  }
});

test('a reload changes where a name goes', async () => {
  const caPem = certs.read(ca.cert);
  const config = lb.runtime.config;
  const next = structuredClone(config);
  next.listeners[0]!.routes[0]!.pool = 'pb';
  await lb.runtime.apply(next);
  try {
    assert.equal((await tlsClient(lb.port, 'a.test', caPem)).data, 'B\n');
  } finally {
    await lb.runtime.apply(config);
  }
  assert.equal((await tlsClient(lb.port, 'a.test', caPem)).data, 'A\n');
});

async function until(check: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
