/**
 * Issue 22, items 5 and 7, from their exact bytes, through a balancer to a recording raw server:
 * an absolute-form request is forwarded with its target's authority as Host (and as
 * X-Forwarded-Host), an invalid Host is refused even when the target names another; a complete
 * request followed at once by the client's FIN still gets its answer, on a new upstream
 * connection as on a pooled one.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { type RawServer, startRawServer } from '../helpers/rawServer.js';

/** Sends `bytes`, half-closes when asked, and collects the answer until the balancer closes. */
function exchange(port: number, bytes: string, halfClose: boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error('no close within 5 s')), 5000);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => socket.end());
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    if (halfClose) socket.end(Buffer.from(bytes, 'latin1'));
    else socket.write(Buffer.from(bytes, 'latin1'));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('issue 22 forwarding vectors, end to end (items 5 and 7)', { timeout: 30_000 }, () => {
  let raw: RawServer;
  let lb: TestBalancer;
  before(async () => {
    raw = await startRawServer();
    lb = await startBalancer(`
listeners:
  - name: web
    protocol: http
    listen: "127.0.0.1:0"
    pool: pooled
    routes:
      - { match: { host: example.test }, pool: routed }
      - { match: { pathPrefix: /fresh }, pool: fresh }
pools:
  - name: fresh
    maxIdlePerServer: 0
    servers: [{ address: "127.0.0.1:${raw.port}", name: raw }]
  - name: pooled
    servers: [{ address: "127.0.0.1:${raw.port}", name: raw }]
  - name: routed
    maxIdlePerServer: 0
    servers: [{ address: "127.0.0.1:${raw.port}", name: raw }]
`);
  });
  after(async () => {
    await lb.stop();
    await raw.close();
  });

  /** The head the server received for the last request, lower-cased names. */
  const lastHead = () => {
    const text = raw.conns.findLast((c) => c.data.length > 0)!.data.toString('latin1');
    const start = text.lastIndexOf('GET ');
    return text.slice(start, text.indexOf('\r\n\r\n', start));
  };
  const field = (head: string, name: string) =>
    head
      .split('\r\n')
      .filter((l) => l.toLowerCase().startsWith(`${name}:`))
      .map((l) => l.slice(name.length + 1).trim());

  const ABSOLUTE: Array<[name: string, bytes: string, status: number, host: string | undefined]> = [
    [
      'absolute-form with another Host',
      'GET http://example.test/abs HTTP/1.1\r\nHost: other.internal\r\nConnection: close\r\n\r\n',
      200,
      'example.test',
    ],
    [
      'absolute-form with a port, Host without',
      'GET http://example.test:8080/abs?q=1 HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n',
      200,
      'example.test:8080',
    ],
    [
      'absolute-form with an invalid Host',
      'GET http://example.test/abs HTTP/1.1\r\nHost: exa}ple test\r\nConnection: close\r\n\r\n',
      400,
      undefined,
    ],
    [
      'origin-form with an invalid Host (control)',
      'GET /abs HTTP/1.1\r\nHost: exa}ple test\r\nConnection: close\r\n\r\n',
      400,
      undefined,
    ],
  ];
  for (const [name, bytes, status, host] of ABSOLUTE) {
    test(`item 5: ${name}`, async () => {
      const before = raw.received();
      const answer = await exchange(lb.port, bytes, false);
      assert.match(answer, new RegExp(`^HTTP/1\\.1 ${status} `), answer);
      await sleep(30);
      if (host === undefined) {
        assert.equal(raw.received(), before, 'nothing of a refused request reaches the server');
        return;
      }
      const head = lastHead();
      assert.match(head, /^GET \/abs(\?q=1)? HTTP\/1\.1\r\n/, 'origin-form to the server');
      assert.deepEqual(field(head, 'host'), [host], head);
      assert.deepEqual(field(head, 'x-forwarded-host'), [host], head);
    });
  }

  for (const path of ['/fresh', '/pooled']) {
    test(`item 7: a complete request then FIN gets its answer (${path})`, async () => {
      if (path === '/pooled') {
        const warm = await exchange(
          lb.port,
          'GET /pooled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
          false,
        );
        assert.match(warm, /^HTTP\/1\.1 200 /);
        await sleep(20);
      }
      const answer = await exchange(
        lb.port,
        `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd`,
        true,
      );
      assert.match(answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/, JSON.stringify(answer));
    });
  }
});
