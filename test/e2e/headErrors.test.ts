/**
 * Error answers of the balancer to HEAD requests have no body (issue 22, item 6), even when the
 * head was too large to be parsed and the method is known only from its first bytes; answers to
 * other methods keep theirs, whatever the previous request on the connection was.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { type RawServer, startRawServer } from '../helpers/rawServer.js';

/** Sends `bytes` on a new connection; everything the balancer answers until it closes. */
function exchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(new Error('no close within 5 s')), 5000);
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.write(Buffer.from(bytes, 'latin1'));
  });
}

/** The responses in `text`, each cut after its head and its Content-Length body. */
function responses(text: string, methods: string[]): Array<{ status: number; body: string }> {
  const out: Array<{ status: number; body: string }> = [];
  let at = 0;
  for (const method of methods) {
    const end = text.indexOf('\r\n\r\n', at);
    assert.ok(end >= 0, `a response to ${method} in ${JSON.stringify(text)}`);
    const head = text.slice(at, end);
    const length = method === 'HEAD' ? 0 : Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    out.push({ status: Number(head.split(' ')[1]), body: text.slice(end + 4, end + 4 + length) });
    at = end + 4 + length;
  }
  assert.equal(text.slice(at), '', `nothing after the last response (${methods.join(', ')})`);
  return out;
}

const big = `X-Big: ${'a'.repeat(20_000)}\r\n`; // over the default maxHeaderSize (16 KiB)

describe('error answers to HEAD have no body (issue 22, item 6)', { timeout: 30_000 }, () => {
  let raw: RawServer;
  let lb: TestBalancer;
  before(async () => {
    raw = await startRawServer();
    lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    servers: [{ address: "127.0.0.1:${raw.port}", name: raw }]
`);
  });
  after(async () => {
    await lb.stop();
    await raw.close();
  });

  const CASES: Array<
    [name: string, bytes: string, answers: Array<[method: string, status: number, body: boolean]>]
  > = [
    ['HEAD, head too large, complete', `HEAD / HTTP/1.1\r\nHost: x\r\n${big}\r\n`, [['HEAD', 431, false]]],
    ['HEAD, head too large, unfinished', `HEAD / HTTP/1.1\r\nHost: x\r\n${big}`, [['HEAD', 431, false]]],
    ['GET, head too large', `GET / HTTP/1.1\r\nHost: x\r\n${big}\r\n`, [['GET', 431, true]]],
    [
      'GET, then HEAD with a head too large',
      `GET / HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n${big}\r\n`,
      [
        ['GET', 200, true],
        ['HEAD', 431, false],
      ],
    ],
    [
      'HEAD, then GET with a head too large',
      `HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n${big}\r\n`,
      [
        ['HEAD', 200, false],
        ['GET', 431, true],
      ],
    ],
    ['HEAD, invalid header', `HEAD / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n`, [['HEAD', 400, false]]],
    ['HEAD, malformed request line', `HEAD /a b HTTP/1.1\r\nHost: x\r\n\r\n`, [['HEAD', 400, false]]],
    [
      'HEAD, then a malformed request line',
      `HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /a b HTTP/1.1\r\nHost: x\r\n\r\n`,
      [
        ['HEAD', 200, false],
        ['GET', 400, true],
      ],
    ],
  ];
  for (const [name, bytes, answers] of CASES) {
    test(name, async () => {
      const got = responses(
        await exchange(lb.port, bytes),
        answers.map(([m]) => m),
      );
      assert.deepEqual(
        got.map(({ status, body }) => [status, body !== '']),
        answers.map(([, status, body]) => [status, body]),
        name,
      );
    });
  }
});
