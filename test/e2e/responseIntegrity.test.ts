/**
 * Response bytes arrive exactly as the server sent them while clients read slowly. A server
 * connection's reads are lent to the client side without a copy (its read buffer is read into
 * again after each read, unless a write to the client still holds it): a chunk overwritten before
 * its write is done would show here as a wrong digest. The bodies differ from one byte to the
 * next and are written in pieces of changing sizes, several downloads at once, so that read
 * buffers go back to the pool and are reused by other connections. The trickled bodies are the
 * sharpest case: small reads, each written to a client whose socket is already full, several
 * held before the writes signal backpressure.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { type AddressInfo, connect, type Server as NetServer, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { makeCertKit } from '../helpers/certificates.js';

const SIZE = 6 * 1024 * 1024;
/** The sizes the origin writes in, in turn. */
const PIECES = [1, 700, 16 * 1024, 70_000, 3000, 256 * 1024 + 3];

/** `size` bytes of xorshift32 output from `seed`: no two runs of it alike. */
function pattern(seed: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size + 3);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  return out.subarray(0, size);
}

/** The piece size of a trickled body, one piece per turn of the event loop. */
const TRICKLE = 2048;

const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Writes `body` to `out` in PIECES, with backpressure. */
function pump(
  out: { write(b: Buffer): boolean; end(): void; once(e: 'drain', f: () => void): unknown },
  body: Buffer,
): void {
  let at = 0;
  let turn = 0;
  const go = (): void => {
    while (at < body.length) {
      const n = Math.min(PIECES[turn++ % PIECES.length]!, body.length - at);
      const ok = out.write(body.subarray(at, at + n));
      at += n;
      if (!ok) {
        out.once('drain', go);
        return;
      }
    }
    out.end();
  };
  go();
}

/** Writes `body` to `out` in pieces of TRICKLE bytes, one per turn of the event loop. */
function trickle(out: { write(b: Buffer): boolean; end(): void }, body: Buffer): void {
  let at = 0;
  const go = (): void => {
    if (at >= body.length) return out.end();
    out.write(body.subarray(at, at + TRICKLE));
    at += TRICKLE;
    setImmediate(go);
  };
  go();
}

/**
 * Reads a stream as a slow client does: nothing for `stallMs` (the balancer's writes to it fill
 * the socket buffers and stay pending), then 20 ms pauses every 512 KiB. Resolves with its digest
 * and length.
 */
function slowRead(stream: Readable, stallMs = 300): Promise<{ sha: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let sincePause = 0;
    stream.pause();
    setTimeout(() => stream.resume(), stallMs);
    stream.on('data', (c: Buffer) => {
      hash.update(c);
      bytes += c.length;
      sincePause += c.length;
      if (sincePause >= 512 * 1024) {
        sincePause = 0;
        stream.pause();
        setTimeout(() => stream.resume(), 20);
      }
    });
    stream.on('end', () => resolve({ sha: hash.digest('hex'), bytes }));
    stream.on('error', reject);
  });
}

function listen(server: NetServer): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

describe('response bytes are relayed intact to slow clients', () => {
  const bodies = new Map<number, Buffer>();
  const body = (seed: number): Buffer => {
    let b = bodies.get(seed);
    if (b === undefined) {
      b = pattern(seed, SIZE);
      bodies.set(seed, b);
    }
    return b;
  };
  // GET /SEED/length, /SEED/chunked or /SEED/trickle; an Upgrade request gets a 101 and then the
  // body as tunnel bytes.
  const origin = createHttpServer((req, res) => {
    const [, seed, framing] = (req.url ?? '').split('/');
    const b = body(Number(seed));
    res.writeHead(200, framing === 'chunked' ? {} : { 'content-length': b.length });
    if (framing === 'trickle') trickle(res, b);
    else pump(res, b);
  });
  origin.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n');
    const [, seed, how] = (req.url ?? '').split('/');
    if (how === 'trickle') trickle(socket, body(Number(seed)));
    else pump(socket, body(Number(seed)));
  });
  const kit = makeCertKit();
  const site = kit.leaf('site', ['site.test']);
  let lb: TestBalancer;
  let tlsPort = 0;
  before(async () => {
    const port = await listen(origin as unknown as NetServer);
    lb = await startBalancer(`
listeners:
  - { name: web, protocol: http, listen: "127.0.0.1:0", pool: p, http2: true }
  - { name: secure, listen: "127.0.0.1:0", pool: p, tls: { certificates: [{ cert: "${site.cert}", key: "${site.key}" }] } }
pools: [{ name: p, servers: [{ address: "127.0.0.1:${port}" }] }]
`);
    tlsPort = lb.runtime.address('secure').port;
  });
  after(async () => {
    await lb.stop();
    origin.close();
    kit.remove();
  });

  const http1 = (path: string, stallMs?: number) =>
    new Promise<{ sha: string; bytes: number }>((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port: lb.port, path, agent: false }, (res) => {
        assert.equal(res.statusCode, 200);
        slowRead(res, stallMs).then(resolve, reject);
      })
        .on('error', reject)
        .end();
    });

  test('HTTP/1.1, content-length and chunked, six downloads at once', async () => {
    const paths = [1, 2, 3, 4, 5, 6].map((seed) => `/${seed}/${seed % 2 === 0 ? 'length' : 'chunked'}`);
    const got = await Promise.all(paths.map(http1));
    got.forEach((g, i) => {
      assert.equal(g.bytes, SIZE, paths[i]);
      assert.equal(g.sha, digest(body(i + 1)), `${paths[i]}: the bytes differ from what the server sent`);
    });
  });

  test('HTTP/1.1, small reads trickling in while the client is full, two at once', async () => {
    const got = await Promise.all([7, 8].map((seed) => http1(`/${seed}/trickle`, 1500)));
    got.forEach((g, i) => {
      assert.equal(g.bytes, SIZE);
      assert.equal(g.sha, digest(body(i + 7)), 'the bytes differ from what the server sent');
    });
  });

  test('HTTPS (HTTP/1.1 over TLS), content-length and trickled, two at once', async () => {
    const ca = readFileSync(kit.ca.cert);
    const get = (path: string) =>
      new Promise<{ sha: string; bytes: number }>((resolve, reject) => {
        httpsRequest(
          { host: '127.0.0.1', port: tlsPort, path, servername: 'site.test', ca, agent: false },
          (res) => {
            assert.equal(res.statusCode, 200);
            slowRead(res, 1000).then(resolve, reject);
          },
        )
          .on('error', reject)
          .end();
      });
    const got = await Promise.all([get('/31/length'), get('/32/trickle')]);
    got.forEach((g, i) => {
      assert.equal(g.bytes, SIZE);
      assert.equal(g.sha, digest(body(31 + i)), 'the bytes differ from what the server sent');
    });
  });

  test('HTTP/2 (h2c) streams, three at once on one connection, one of them trickled', async () => {
    const session = h2connect(`http://127.0.0.1:${lb.port}`);
    session.on('error', () => {});
    try {
      const seeds = [11, 12, 13];
      const framing = ['length', 'chunked', 'trickle'];
      const got = await Promise.all(
        seeds.map((seed, i) => slowRead(session.request({ ':path': `/${seed}/${framing[i]}` }), 1000)),
      );
      got.forEach((g, i) => {
        assert.equal(g.bytes, SIZE);
        assert.equal(
          g.sha,
          digest(body(seeds[i]!)),
          `stream ${seeds[i]}: the bytes differ from what the server sent`,
        );
      });
    } finally {
      session.close();
    }
  });

  test('tunnels after 101 Switching Protocols, two at once, one of them trickled', async () => {
    const tunnel = (seed: number, how: string) =>
      new Promise<{ sha: string; bytes: number }>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: lb.port });
        socket.on('error', reject);
        socket.write(
          `GET /${seed}/${how} HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n`,
        );
        let head = Buffer.alloc(0);
        const onHead = (c: Buffer) => {
          head = Buffer.concat([head, c]);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          socket.off('data', onHead);
          assert.match(head.toString('latin1', 0, end), /^HTTP\/1\.1 101 /);
          const rest = head.subarray(end + 4);
          if (rest.length > 0) socket.unshift(rest);
          slowRead(socket, 1000).then(resolve, reject);
        };
        socket.on('data', onHead);
      });
    const got = await Promise.all([tunnel(21, 'pump'), tunnel(22, 'trickle')]);
    assert.equal(got[0]!.bytes, SIZE);
    assert.equal(got[0]!.sha, digest(body(21)), 'tunnel 21: the bytes differ from what the server sent');
    assert.equal(got[1]!.bytes, SIZE);
    assert.equal(got[1]!.sha, digest(body(22)), 'tunnel 22: the bytes differ from what the server sent');
  });
});
