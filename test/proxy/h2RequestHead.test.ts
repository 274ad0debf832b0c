import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type ForwardedFor, writeUpstreamRequestHead } from '../../src/proxy/headerRules.js';
import { Framing, newRequestHead, type RequestHead } from '../../src/proxy/http/headParser.js';
import { HeadWriter } from '../../src/proxy/http/headWriter.js';
import { h2RequestHead } from '../../src/proxy/http2/requestHead.js';

/** The head the forwarding path would write to the server, as a string. */
function upstreamRequestHead(r: RequestHead, from: ForwardedFor, serverAddress: string): string {
  const w = new HeadWriter();
  writeUpstreamRequestHead(r, from, serverAddress, w);
  return w.takeString();
}

const from: ForwardedFor = { peerIp: '10.0.0.9', trustedPeer: false, proto: 'https' };

function head(raw: string[], hasBody = false, max = 16384) {
  const h = newRequestHead();
  const status = h2RequestHead(raw, hasBody, h, max, 100);
  return { h, status };
}

test('pseudo headers become the request line and Host; regular fields follow as raw lines', () => {
  const { h, status } = head([
    ':method',
    'GET',
    ':path',
    '/a/b?c=1',
    ':scheme',
    'https',
    ':authority',
    'Example.com:8443',
    'cookie',
    'a=1',
    'cookie',
    'b=2',
    'te',
    'trailers',
    'x-one',
    'v',
  ]);
  assert.equal(status, 0);
  assert.equal(h.method, 'GET');
  assert.equal(h.path, '/a/b');
  assert.equal(h.target, '/a/b?c=1');
  assert.equal(h.host, 'example.com');
  assert.equal(h.hostHeader, 'Example.com:8443');
  assert.equal(h.framing, Framing.None);
  const sent = upstreamRequestHead(h, from, 'x');
  assert.match(h.requestId, /^[0-9a-f-]{36}$/, 'a request id is made for the server');
  assert.equal(
    sent,
    'GET /a/b?c=1 HTTP/1.1\r\nhost: Example.com:8443\r\ncookie: a=1\r\ncookie: b=2\r\nx-one: v\r\n' +
      'x-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: https\r\nx-forwarded-host: Example.com:8443\r\n' +
      `x-request-id: ${h.requestId}\r\nvia: 2 fulcrum\r\n\r\n`,
  );
});

test(':authority wins over a Host field; without either the request is refused', () => {
  const { h } = head([':method', 'GET', ':path', '/', ':authority', 'a.test', 'host', 'b.test']);
  assert.equal(h.host, 'a.test');
  assert.equal(h.count, 1);
  assert.equal(head([':method', 'GET', ':path', '/']).status, 400);
});

test('a body without content-length goes chunked; with one, by its length', () => {
  const chunked = head([':method', 'POST', ':path', '/', ':authority', 'a'], true).h;
  assert.equal(chunked.framing, Framing.Chunked);
  assert.match(upstreamRequestHead(chunked, from, 'x'), /\r\ntransfer-encoding: chunked\r\n/);
  const sized = head([':method', 'POST', ':path', '/', ':authority', 'a', 'content-length', '5'], true).h;
  assert.equal(sized.framing, Framing.Length);
  assert.equal(sized.contentLength, 5);
  const empty = head([':method', 'POST', ':path', '/', ':authority', 'a', 'content-length', '0'], true).h;
  assert.equal(empty.framing, Framing.None);
  assert.doesNotMatch(upstreamRequestHead(empty, from, 'x'), /transfer-encoding/);
});

test('what HTTP/1.1 refuses is refused: CONNECT, bad targets, too large, too many fields', () => {
  assert.equal(head([':method', 'CONNECT', ':authority', 'a:443']).status, 400);
  assert.equal(head([':method', 'GET', ':path', '/a b', ':authority', 'a']).status, 400);
  assert.equal(
    head([':method', 'GET', ':path', '/', ':authority', 'a', 'x', 'y'.repeat(500)], false, 256).status,
    431,
  );
  const many = [':method', 'GET', ':path', '/', ':authority', 'a'];
  for (let i = 0; i < 120; i++) many.push(`x-${i}`, 'v');
  assert.equal(head(many).status, 431);
});
