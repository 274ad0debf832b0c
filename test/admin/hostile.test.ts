/**
 * Hostile requests to the admin endpoint, from raw bytes (issue 22, items 9–11): every one gets a
 * complete 4xx answer with a JSON error, never a 500 and never a reset.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ask, parseResponse as parse, type RawAnswer } from '../helpers/rawHttp.js';
import { type Lab, startLab } from './helpers.js';

/** Asserts a complete 4xx answer with a JSON `{"error": "..."}` body and no socket error. */
function assertJsonError(a: RawAnswer, status: number, what: string): void {
  assert.equal(a.error, undefined, `${what}: socket error after ${a.status} ${a.body.slice(0, 200)}`);
  assert.equal(a.status, status, `${what}: ${a.status} ${a.body.slice(0, 200)}`);
  assert.match(a.headers['content-type'] ?? '', /^application\/json/, what);
  const data = JSON.parse(a.body) as { error?: unknown };
  assert.equal(typeof data.error, 'string', what);
}

const H = 'Host: 127.0.0.1\r\n';
const withBody = (method: string, path: string, body: string, type = 'application/json') =>
  `${method} ${path} HTTP/1.1\r\n${H}Content-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const chunked = (method: string, path: string, body: string) =>
  `${method} ${path} HTTP/1.1\r\n${H}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n` +
  `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;

/** `{"a":` 5,000 times, closed: 30 KB of valid JSON nested 5,000 deep (the fuzzer's case). */
const nestedObject = `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`;
const nestedArray = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
/** Over 64 KiB, valid JSON. */
const big = (n: number) => JSON.stringify({ address: '127.0.0.1:1', name: 'x'.repeat(n) });

const SERVERS = '/api/pools/web/servers';
const SERVER = '/api/pools/web/servers/a';

describe('admin API: hostile requests get a JSON 4xx (issue 22)', { timeout: 60_000 }, () => {
  let lab: Lab;
  before(async () => {
    lab = await startLab(1);
  });
  after(async () => {
    await lab.stop();
  });

  const cases: Array<[what: string, bytes: string, status: number]> = [
    // Item 9: paths that are no valid relative URL once resolved against a base.
    ['GET //', `GET // HTTP/1.1\r\n${H}\r\n`, 404],
    ['GET ///', `GET /// HTTP/1.1\r\n${H}\r\n`, 404],
    ['GET //api/status', `GET //api/status HTTP/1.1\r\n${H}\r\n`, 404],
    ['GET //x:y', `GET //x:y HTTP/1.1\r\n${H}\r\n`, 404],
    ['GET http://[::1/ (absolute form, bad authority)', `GET http://[::1/ HTTP/1.1\r\n${H}\r\n`, 400],
    ['POST //', withBody('POST', '//', '{}'), 404],
    // Item 10: nesting deep enough to overflow a recursive walk.
    ['POST servers, {"a": ×5000', withBody('POST', SERVERS, nestedObject), 400],
    ['POST servers, [ ×20000', withBody('POST', SERVERS, nestedArray), 400],
    ['POST servers, {"a": ×5000 unclosed', withBody('POST', SERVERS, '{"a":'.repeat(5000)), 400],
    ['PATCH server, {"a": ×5000', withBody('PATCH', SERVER, nestedObject), 400],
    ['POST reload, {"a": ×5000', withBody('POST', '/api/reload', nestedObject), 400],
    // Item 11: bodies over 64 KiB, declared or chunked, small or far larger.
    ['POST servers, 70 KB', withBody('POST', SERVERS, big(70_000)), 413],
    ['POST servers, 4 MB', withBody('POST', SERVERS, big(4_000_000)), 413],
    ['POST servers, 70 KB chunked', chunked('POST', SERVERS, big(70_000)), 413],
    ['PATCH server, 70 KB', withBody('PATCH', SERVER, big(70_000)), 413],
    ['POST reload, 70 KB', withBody('POST', '/api/reload', big(70_000)), 413],
    ['POST /login, 70 KB', withBody('POST', '/login', `token=${'x'.repeat(70_000)}`, 'text/plain'), 413],
    // Malformed HTTP, refused by Node's parser: the answer is JSON too.
    ['bad Content-Length', `POST ${SERVERS} HTTP/1.1\r\n${H}Content-Length: x\r\n\r\n`, 400],
    ['bad chunk size', `POST ${SERVERS} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\n`, 400],
    ['HTTP/1.1 without Host', `GET /api/status HTTP/1.1\r\n\r\n`, 400],
    ['head too large', `GET / HTTP/1.1\r\n${H}x-big: ${'x'.repeat(20_000)}\r\n\r\n`, 431],
  ];
  for (const [what, bytes, status] of cases) {
    test(what, async () => {
      assertJsonError(await ask(lab.port, bytes), status, what);
    });
  }

  test('a 413 comes at once, while the client is still sending; the connection closes once it is done', async () => {
    const socket = connect({ host: '127.0.0.1', port: lab.port });
    const chunks: Buffer[] = [];
    let error: string | undefined;
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code;
    });
    const closed = new Promise((r) => socket.on('close', r));
    const body = big(200_000);
    const bytes = Buffer.from(withBody('POST', SERVERS, body));
    socket.write(bytes.subarray(0, 100_000)); // more than 64 KiB, but not the whole body
    const deadline = Date.now() + 3000;
    while (parse(Buffer.concat(chunks)) === undefined && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    const answer = parse(Buffer.concat(chunks));
    assert.equal(answer?.status, 413, 'answered before the body is complete');
    assert.equal(answer.headers.connection, 'close');
    socket.end(bytes.subarray(100_000));
    await closed;
    assert.equal(error, undefined);
  });

  test('a request followed at once by the client FIN still gets its answer', async () => {
    const cases: Array<[string, string, number]> = [
      ['POST reload', `POST /api/reload HTTP/1.1\r\n${H}\r\n`, 400],
      ['POST reload with a body', withBody('POST', '/api/reload', '{}'), 400],
      ['PATCH a server', withBody('PATCH', SERVER, '{"weight": 0.5}'), 400],
      ['GET status', `GET /api/status HTTP/1.1\r\n${H}\r\n`, 200],
      ['POST servers, 70 KB', withBody('POST', SERVERS, big(70_000)), 413],
      ['a head cut short', `GET /api/status HTTP/1.1\r\n${H}`, 400],
    ];
    for (const [what, bytes, status] of cases) {
      const a = await ask(lab.port, bytes, { halfClose: true });
      assert.equal(a.error, undefined, what);
      assert.equal(a.status, status, `${what}: ${a.body}`);
      assert.match(a.headers['content-type'] ?? '', /^application\/json/, what);
    }
  });

  test('the endpoint still answers afterwards', async () => {
    const a = await ask(lab.port, `GET /api/status HTTP/1.1\r\n${H}\r\n`);
    assert.equal(a.status, 200);
    assert.equal(a.error, undefined);
  });
});
