import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Framing,
  headerValue,
  keepAliveTimeoutMs,
  newRequestHead,
  newResponseHead,
  parseRequestHead,
  parseResponseHead,
  rawLines,
  setUnparsedMethod,
} from '../../src/proxy/http/headParser.js';

function req(text: string) {
  const head = newRequestHead();
  const status = parseRequestHead(text.replaceAll('\n', '\r\n').replace(/\r\n$/, ''), head);
  return { status, head };
}

function rawReq(text: string) {
  const head = newRequestHead();
  return { status: parseRequestHead(text, head), head };
}

test('parses a simple GET with headers, host without port, path and query', () => {
  const { status, head } = req('GET /a/b?x=1 HTTP/1.1\nHost: Example.COM:8080\nX-Test:  v  \nAccept: */*');
  assert.equal(status, 0);
  assert.equal(head.method, 'GET');
  assert.equal(head.target, '/a/b?x=1');
  assert.equal(head.path, '/a/b');
  assert.equal(head.host, 'example.com');
  assert.equal(head.hostHeader, 'Example.COM:8080');
  assert.equal(headerValue(head, 'x-test'), 'v');
  // Lines are forwarded exactly as received (name case, spacing), in runs.
  assert.equal(rawLines(head, 1, 2), 'X-Test:  v  \r\n');
  assert.equal(rawLines(head, 0, head.count), 'Host: Example.COM:8080\r\nX-Test:  v  \r\nAccept: */*\r\n');
  assert.equal(head.framing, Framing.None);
  assert.equal(head.close, false);
});

test('Content-Length and chunked framing', () => {
  assert.equal(req('POST / HTTP/1.1\nHost: a\nContent-Length: 12').head.framing, Framing.Length);
  assert.equal(req('POST / HTTP/1.1\nHost: a\nContent-Length: 12').head.contentLength, 12);
  assert.equal(req('POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked').head.framing, Framing.Chunked);
  assert.equal(req('POST / HTTP/1.1\nHost: a\nTransfer-Encoding: Chunked').head.framing, Framing.Chunked);
  // OWS around the number is fine (RFC 9110 5.5), but for an HTAB after it (see below).
  assert.equal(rawReq('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \t7  ').head.contentLength, 7);
  // Identical repeated lengths are refused in requests (as Node does: a server behind could read
  // "5, 5" as invalid), and collapse to one in responses.
  for (const text of [
    'POST / HTTP/1.1\nHost: a\nContent-Length: 5\nContent-Length: 5',
    'POST / HTTP/1.1\nHost: a\nContent-Length: 5, 5',
  ]) {
    const same = req(text);
    assert.equal(same.status, 400, text);
    assert.match(same.head.error, /repeated Content-Length/);
  }
  const sameRes = res('HTTP/1.1 200 OK\nContent-Length: 5\nContent-Length: 5, 5');
  assert.equal(sameRes.status, 0);
  assert.equal(sameRes.head.contentLength, 5);
});

test('smuggling vectors are refused with 400 (or 501 for unknown codings)', () => {
  const cases: Array<[string, number, RegExp]> = [
    ['POST / HTTP/1.1\nHost: a\nContent-Length: 5\nTransfer-Encoding: chunked', 400, /both Content-Length/],
    ['POST / HTTP/1.1\nHost: a\nContent-Length: 5\nContent-Length: 6', 400, /conflicting/],
    ['POST / HTTP/1.1\nHost: a\nContent-Length: 5, 6', 400, /conflicting/],
    ['POST / HTTP/1.1\nHost: a\nContent-Length: +5', 400, /invalid Content-Length/],
    ['POST / HTTP/1.1\nHost: a\nContent-Length: 0x5', 400, /invalid Content-Length/],
    ['POST / HTTP/1.1\nHost: a\nTransfer-Encoding : chunked', 400, /whitespace before colon/],
    ['POST / HTTP/1.1\nHost: a\nContent-Length : 5', 400, /whitespace before colon/],
    ['GET / HTTP/1.1\nHost: a\nX-A: 1\n continued', 400, /obs-fold/],
    ['POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked, chunked', 400, /invalid Transfer-Encoding/],
    ['POST / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip', 501, /unsupported Transfer-Encoding/],
    ['POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked, gzip', 400, /invalid Transfer-Encoding/],
    ['POST / HTTP/1.0\nTransfer-Encoding: chunked', 400, /HTTP\/1.0/],
    ['GET / HTTP/1.1\nHost: a\nHost: b', 400, /more than one Host/],
    ['GET / HTTP/1.1\nX: 1', 400, /missing Host/],
    ['GET / HTTP/1.1\nHost: a b', 400, /invalid Host/],
    ['GET  / HTTP/1.1\nHost: a', 400, /malformed request line/],
    ['GET / HTTP/1.1 \nHost: a', 400, /malformed request line|malformed HTTP version/],
    ['G@T / HTTP/1.1\nHost: a', 400, /invalid method/],
    ['GET / HTTP/2.0\nHost: a', 505, /unsupported version/],
    ['GET / HTTPS/1.1\nHost: a', 400, /malformed HTTP version/],
    ['GET /\u0001 HTTP/1.1\nHost: a', 400, /invalid character in request target/],
    ['GET / HTTP/1.1\nHost: a\nX-A: a\u0000b', 400, /control character/],
    ['GET / HTTP/1.1\nHost: a\n: empty', 400, /header name/],
    ['CONNECT a:443 HTTP/1.1\nHost: a:443', 501, /CONNECT/],
    // 0xA0 is NBSP to String.trim, nothing to HTTP: not a number, not "chunked".
    ['POST / HTTP/1.1\nHost: a\nContent-Length: 5\u00a0', 400, /invalid Content-Length/],
    ['POST / HTTP/1.1\nHost: a\nContent-Length: \u00a05', 400, /invalid Content-Length/],
    ['POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\u00a0', 501, /unsupported Transfer-Encoding/],
    ['POST / HTTP/1.1\nHost: a\nContent-Length: 5,', 400, /invalid Content-Length/],
    ['POST / HTTP/1.1\nHost: a\nContent-Length: 1234567890123456', 400, /invalid Content-Length/],
    ['POST / HTTP/1.1\nHost: a\nContent-Length: 1 2', 400, /invalid Content-Length/],
    ['POST / HTTP/1.1\nHost: a\nContent-Length:', 400, /invalid Content-Length/],
    // Node refuses an HTAB after the digits (found by the fuzz test); the line is forwarded as is.
    ['POST / HTTP/1.1\nHost: a\nContent-Length: 5\t', 400, /HTAB after the Content-Length/],
    ['POST / HTTP/1.1\nHost: a\nContent-Length: 5 \t \nX: 1', 400, /HTAB after the Content-Length/],
  ];
  for (const [text, status, why] of cases) {
    const r = req(text);
    assert.equal(r.status, status, `${JSON.stringify(text)} → ${r.status} ${r.head.error}`);
    assert.match(r.head.error, why, JSON.stringify(text));
  }
});

test('Connection may not list Content-Length (any message) or Host (requests): never stripped, refused', () => {
  // Found by the fuzz test: the field was stripped as a connection option while the body still
  // went out, so the server read the body as the next request.
  for (const [text, status] of [
    ['POST / HTTP/1.1\nHost: a\nConnection: content-length\nContent-Length: 2', 400],
    ['POST / HTTP/1.1\nHost: a\nConnection: keep-alive, Content-Length\nContent-Length: 2', 400],
    ['POST / HTTP/1.1\nHost: a\nConnection: x\nConnection: content-length\nContent-Length: 2', 400],
    ['GET / HTTP/1.1\nHost: a\nConnection: host', 400],
    ['GET / HTTP/1.1\nHost: a\nConnection: close,\tHOST', 400],
  ] as const) {
    const r = req(text);
    assert.equal(r.status, status, JSON.stringify(text));
    assert.match(r.head.error, /Connection lists (content-length|host)/, JSON.stringify(text));
  }
  const ok = req('GET / HTTP/1.1\nHost: a\nConnection: x-content-length, hosts, close');
  assert.equal(ok.status, 0, ok.head.error);
  assert.deepEqual(ok.head.connectionTokens, ['x-content-length', 'hosts']);
  assert.equal(res('HTTP/1.1 200 OK\nConnection: content-length\nContent-Length: 2').status, 502);
  assert.equal(res('HTTP/1.1 200 OK\nConnection: host\nContent-Length: 2').status, 0);
});

test('bare LF and bare CR are refused', () => {
  assert.equal(rawReq('GET / HTTP/1.1\r\nHost: a\nX: 1').status, 400);
  assert.equal(rawReq('GET / HTTP/1.1\r\nHost: a\rX: 1').status, 400);
  assert.equal(rawReq('GET / HTTP/1.1\nHost: a').status, 400);
});

test('Connection semantics: keep-alive defaults, close wins, tokens to strip, upgrade', () => {
  assert.equal(req('GET / HTTP/1.1\nHost: a').head.close, false);
  assert.equal(req('GET / HTTP/1.0').head.close, true);
  assert.equal(req('GET / HTTP/1.0\nConnection: keep-alive').head.close, false);
  assert.equal(req('GET / HTTP/1.1\nHost: a\nConnection: keep-alive, close').head.close, true);
  const t = req('GET / HTTP/1.1\nHost: a\nConnection: X-Secret, keep-alive');
  assert.deepEqual(t.head.connectionTokens, ['x-secret']);
  const u = req('GET /ws HTTP/1.1\nHost: a\nConnection: Upgrade\nUpgrade: websocket');
  assert.equal(u.head.upgrade, true);
  assert.equal(req('GET /ws HTTP/1.1\nHost: a\nConnection: Upgrade').head.upgrade, false);
});

test('absolute-form target becomes origin-form with its authority as host', () => {
  const { status, head } = req('GET http://API.example.com:81/x?y HTTP/1.1\nHost: other');
  assert.equal(status, 0);
  assert.equal(head.target, '/x?y');
  assert.equal(head.host, 'api.example.com');
  assert.equal(req('GET http://a.example.com HTTP/1.1\nHost: a').head.target, '/');
  // The Host it replaces must still be valid (RFC 9112 3.2; issue 22, item 5); an empty one is.
  for (const host of ['exa}ple test', 'a b', 'a/b', '[::1', 'a:b:c']) {
    const r = req(`GET http://example.test/abs HTTP/1.1\nHost: ${host}`);
    assert.equal(r.status, 400, host);
    assert.match(r.head.error, /invalid Host/, host);
  }
  assert.equal(req('GET http://example.test/abs HTTP/1.1\nHost:').status, 0);
  assert.equal(req('GET http://example.test/abs HTTP/1.1\nHost: other.internal:8080').status, 0);
});

test('Expect: 100-continue is recognised', () => {
  assert.equal(
    req('PUT /u HTTP/1.1\nHost: a\nContent-Length: 3\nExpect: 100-continue').head.expectContinue,
    true,
  );
});

test('leading empty lines are ignored', () => {
  assert.equal(rawReq('\r\n\r\nGET / HTTP/1.1\r\nHost: a').status, 0);
});

test('too many headers → 431', () => {
  let text = 'GET / HTTP/1.1\r\nHost: a';
  for (let i = 0; i < 150; i++) text += `\r\nX-${i}: v`;
  const r = rawReq(text);
  assert.equal(r.status, 431);
});

function res(text: string) {
  const head = newResponseHead();
  return { status: parseResponseHead(text.replaceAll('\n', '\r\n'), head), head };
}

test('a refused request never keeps the previous method: HEAD known from its first bytes (issue 22, item 6)', () => {
  const head = newRequestHead();
  // Refused before or while the request line is read: HEAD when it starts so, else unknown.
  for (const [text, method] of [
    ['HEAD /a b HTTP/1.1\r\nHost: a', 'HEAD'],
    ['\r\nHEAD / HTTP/9.9\r\nHost: a', 'HEAD'],
    ['HEADX / HTTP/1.1\r\nHost: a b', 'HEADX'], // the method was read: its own
    ['GET /a b HTTP/1.1\r\nHost: a', ''],
    ['HEA', ''],
  ] as const) {
    head.method = 'HEAD'; // a stale HEAD must not survive, nor a stale GET below
    assert.notEqual(parseRequestHead(text, head), 0, text);
    assert.equal(head.method, method, JSON.stringify(text));
    head.method = 'GET';
    parseRequestHead(text, head);
    assert.equal(head.method, method, JSON.stringify(text));
  }
  // A head too large to parse: only its first bytes are looked at.
  for (const [text, method] of [
    ['HEAD / HTTP/1.1\r\nX: aaaa', 'HEAD'],
    ['\r\n\r\nHEAD / HTTP/1.1\r\n', 'HEAD'],
    ['HEAD ', 'HEAD'],
    ['HEAD', ''],
    ['HEADER / HTTP/1.1', ''],
    ['head / HTTP/1.1', ''],
    ['GET / HTTP/1.1\r\n', ''],
    ['', ''],
  ] as const) {
    for (const stale of ['GET', 'HEAD']) {
      head.method = stale;
      setUnparsedMethod(head, Buffer.from(text, 'latin1'));
      assert.equal(head.method, method, `${JSON.stringify(text)} after ${stale}`);
    }
  }
});

test('response heads: status, reason, framing', () => {
  const ok = res('HTTP/1.1 200 OK\nContent-Length: 3');
  assert.equal(ok.status, 0);
  assert.equal(ok.head.status, 200);
  assert.equal(ok.head.reason, 'OK');
  assert.equal(ok.head.framing, Framing.Length);
  assert.equal(res('HTTP/1.1 204 No Content').head.status, 204);
  assert.equal(res('HTTP/1.1 200 OK').head.framing, Framing.UntilClose);
  assert.equal(res('HTTP/1.1 200 OK\nTransfer-Encoding: chunked').head.framing, Framing.Chunked);
  assert.equal(res('HTTP/1.1 200 OK\nTransfer-Encoding: gzip').head.framing, Framing.UntilClose);
  assert.equal(res('HTTP/1.1 200').head.reason, '');
  assert.equal(res('HTTP/1.0 200 OK\nContent-Length: 1').head.close, true);
});

test('garbage responses are refused with 502', () => {
  for (const text of [
    'HTTP/1.1 2000 OK',
    'HTTP/1.1 20 OK',
    'HTTP/2 200 OK',
    'hello world',
    'HTTP/1.1 200 OK\nContent-Length: 1\nContent-Length: 2',
    'HTTP/1.1 200 OK\nContent-Length: 1\nTransfer-Encoding: chunked',
    'HTTP/1.1 200 OK\nBad Header: x',
    'HTTP/1.1 099 Weird',
  ]) {
    assert.equal(res(text).status, 502, text);
  }
});

test("a response's Keep-Alive timeout hint, in ms; -1 without one", () => {
  const parse = (text: string) => {
    const head = newResponseHead();
    assert.equal(parseResponseHead(text.replaceAll('\n', '\r\n'), head), 0);
    return head.keepAliveMs;
  };
  assert.equal(parse('HTTP/1.1 200 OK\nKeep-Alive: timeout=5\nContent-Length: 0'), 5000);
  assert.equal(parse('HTTP/1.1 200 OK\nkeep-alive: max=100, timeout=65\nContent-Length: 0'), 65_000);
  assert.equal(parse('HTTP/1.1 200 OK\nKeep-Alive: Timeout = "2"; max=3\nContent-Length: 0'), 2000);
  assert.equal(parse('HTTP/1.1 200 OK\nKeep-Alive: max=100\nContent-Length: 0'), -1);
  assert.equal(parse('HTTP/1.1 200 OK\nKeep-Alive: mytimeout=5\nContent-Length: 0'), -1);
  assert.equal(parse('HTTP/1.1 200 OK\nContent-Length: 0'), -1);
  assert.equal(keepAliveTimeoutMs('timeout=0'), 0);
});

test('names and short values stay right over many spellings (name table full, value slots reused)', () => {
  const res = newResponseHead();
  for (let i = 0; i < 1500; i++) {
    const text = `HTTP/1.1 200 R${i % 7}\r\nX-H${i}: v${i}\r\nContent-Type: t${i % 3}\r\nCONNECTION: Keep-Alive, X-H${i}`;
    assert.equal(parseResponseHead(text, res), 0);
    assert.equal(res.reason, `R${i % 7}`);
    assert.deepEqual(res.names.slice(0, res.count), [`x-h${i}`, 'content-type', 'connection']);
    assert.deepEqual(res.values.slice(0, res.count), [`v${i}`, `t${i % 3}`, `Keep-Alive, X-H${i}`]);
    assert.deepEqual(res.connectionTokens, [`x-h${i}`]);
    assert.equal(res.close, false);
  }
  const r = newRequestHead();
  for (const [target, host] of [
    ['/a', 'One.example:80'],
    ['/b', 'two.example'],
    ['/c', 'One.example:80'],
  ] as const) {
    assert.equal(parseRequestHead(`DELETE ${target} HTTP/1.1\r\nHost: ${host}`, r), 0);
    assert.equal(r.method, 'DELETE');
    assert.equal(r.host, host.startsWith('One') ? 'one.example' : 'two.example');
  }
  assert.equal(parseRequestHead('BREW /pot HTTP/1.0', r), 0);
  assert.equal(r.method, 'BREW');
  assert.equal(r.minor, 0);
});
