import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CHUNKED_ERROR, CHUNKED_MORE, ChunkedDecoder } from '../../src/proxy/http/chunkedDecoder.js';

function feedAll(text: string, split = 0): { end: number; data: string; error: string } {
  const d = new ChunkedDecoder();
  const buf = Buffer.from(text, 'latin1');
  let data = '';
  const sink = (b: Buffer, s: number, e: number) => {
    data += b.toString('latin1', s, e);
  };
  if (split === 0) {
    const end = d.feed(buf, 0, sink);
    return { end, data, error: d.error };
  }
  // feed byte ranges of `split` bytes to exercise every state boundary
  let offset = 0;
  while (offset < buf.length) {
    const part = buf.subarray(offset, offset + split);
    const r = d.feed(part, 0, sink);
    if (r === CHUNKED_ERROR) return { end: r, data, error: d.error };
    if (r !== CHUNKED_MORE) return { end: offset + r, data, error: '' };
    offset += part.length;
  }
  return { end: CHUNKED_MORE, data, error: '' };
}

test('finds the end of a chunked body and yields its data, whole or byte by byte', () => {
  const body = '5\r\nhello\r\n6;ext=1\r\n world\r\nA\r\n0123456789\r\n0\r\n\r\nNEXT';
  for (const split of [0, 1, 2, 3, 7]) {
    const r = feedAll(body, split);
    assert.equal(r.end, body.length - 4, `split ${split}`);
    assert.equal(r.data, 'hello world0123456789');
  }
});

test('trailers are accepted', () => {
  const body = '3\r\nabc\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n';
  assert.equal(feedAll(body).end, body.length);
  assert.equal(feedAll(body, 1).end, body.length);
});

test('incomplete bodies ask for more', () => {
  assert.equal(feedAll('5\r\nhel').end, CHUNKED_MORE);
  assert.equal(feedAll('0\r\n').end, CHUNKED_MORE);
});

test('malformed chunked framing is refused', () => {
  for (const [text, why] of [
    ['x\r\n', /size missing/],
    ['5 \r\nhello\r\n0\r\n\r\n', /after chunk size/],
    ['5\nhello\r\n0\r\n\r\n', /after chunk size/],
    ['5\r\nhello!\r\n0\r\n\r\n', /longer than its size/],
    ['5\r\nhello\n0\r\n\r\n', /longer than its size|LF/],
    ['-5\r\n', /size missing/],
    ['fffffffffffffff\r\n', /too large/],
    ['3;a\u0000\r\nabc\r\n0\r\n\r\n', /invalid character in chunk extension name/],
    ['0\r\nX: a\nb\r\n\r\n', /trailer/],
    ['0\r\n\rx', /LF after last chunk/],
  ] as const) {
    const r = feedAll(text);
    assert.equal(r.end, CHUNKED_ERROR, JSON.stringify(text));
    assert.match(r.error, why, JSON.stringify(text));
  }
});

test('reset makes a decoder reusable', () => {
  const d = new ChunkedDecoder();
  assert.equal(d.feed(Buffer.from('0\r\n\r\n'), 0), 5);
  d.reset();
  assert.equal(d.feed(Buffer.from('1\r\na\r\n0\r\n\r\n'), 0), 11);
});

/** Every way to cut `text` in two, and one byte at a time: the verdict must not change. */
function everySplit(text: string): Array<{ end: number; data: string; error: string }> {
  const out = [feedAll(text, 1)];
  const buf = Buffer.from(text, 'latin1');
  for (let cut = 1; cut < buf.length; cut++) {
    const d = new ChunkedDecoder();
    let r = d.feed(buf.subarray(0, cut), 0);
    if (r === CHUNKED_MORE) {
      r = d.feed(buf.subarray(cut), 0);
      if (r >= 0) r += cut;
    }
    out.push({ end: r, data: '', error: d.error });
  }
  return out;
}

test('chunk extensions: names, token and quoted values, whole or cut anywhere', () => {
  for (const ext of [
    ';a',
    ';a=b',
    ';name=value;q="a\\"b"',
    ';a=""',
    ';a="\\\\"',
    ';a;b=c;d="e f";g',
    ';a="semi;colon=inside"',
    ';a="tab\there"',
    ';a="\\\t"',
    ";!#$%&'*+-.^_`|~09AZaz=!#$%&'*+-.^_`|~",
    ';a="obs-text \u00e9\u00ff"',
  ]) {
    const body = `5${ext}\r\nhello\r\n0${ext}\r\n\r\n`;
    const whole = feedAll(body);
    assert.equal(whole.end, body.length, `${JSON.stringify(ext)}: ${whole.error}`);
    assert.equal(whole.data, 'hello');
    for (const r of everySplit(body))
      assert.equal(r.end, body.length, `${JSON.stringify(ext)} cut: ${r.error}`);
  }
});

test('malformed chunk extensions are refused, wherever the buffer is cut', () => {
  for (const [line, why] of [
    ['2;', /without a name/], // RFC 9112 7.1.1: a name must follow ";"
    ['2;;a', /without a name/],
    ['2;=a', /without a name/],
    ['2;a=', /invalid chunk extension value/],
    ['2;a=b;', /without a name/],
    ['2;a="b', /quoted/], // unterminated: CR is no qdtext
    ['2;a="b\\', /quoted-pair/], // backslash, then CR
    ['2;a="b"c', /after quoted/],
    ['2;a="b" ', /after quoted/],
    ['2 ;a', /after chunk size/], // BWS: refused, as llhttp does
    ['2; a', /without a name/],
    ['2;a =b', /extension name/],
    ['2;a= b', /invalid chunk extension value/],
    ['2;a=b c', /extension value/],
    ['2;a@b', /extension name/],
    ['2;a=b@', /extension value/],
    ['2;a="\u007f"', /quoted/],
    ['2;a="b\u0000"', /quoted/],
    ['2;a="\\\u0001"', /quoted-pair/],
    ['2;a=b\n', /extension value/],
    ['2;a\n', /extension name/],
    ['2;a="b"\n', /after quoted/],
  ] as const) {
    const body = `${line}\r\nab\r\n0\r\n\r\n`;
    const whole = feedAll(body);
    assert.equal(whole.end, CHUNKED_ERROR, JSON.stringify(line));
    assert.match(whole.error, why, JSON.stringify(line));
    // The chunk's data is never reached: no byte of it is handed on.
    assert.equal(whole.data, '', JSON.stringify(line));
    for (const r of everySplit(body)) {
      assert.equal(r.end, CHUNKED_ERROR, `${JSON.stringify(line)} cut`);
      assert.match(r.error, why, `${JSON.stringify(line)} cut`);
    }
  }
});

test('chunk sizes: hex digits only, at most 13 of them, no sign, no prefix', () => {
  assert.equal(feedAll('000\r\n\r\n').end, 7);
  assert.equal(feedAll('0000000000001\r\nx\r\n0\r\n\r\n').data, 'x');
  // 13 digits: 2^52 - 1, exact in a double; one more digit is refused before any overflow.
  assert.equal(feedAll('fffffffffffff\r\n').end, CHUNKED_MORE);
  assert.match(feedAll('10000000000000\r\n').error, /too large/);
  assert.match(feedAll('00000000000001\r\n').error, /too large/);
  for (const line of ['0x5', '+5', '5g', '5.0', ' 5', '\t5']) {
    assert.equal(feedAll(`${line}\r\nhello\r\n0\r\n\r\n`).end, CHUNKED_ERROR, line);
  }
});

test('a never-ending chunk-size line is cut off at 16 KiB', () => {
  for (const [start, filler] of [
    ['5;a=', 'b'],
    ['5;a="', 'b'],
    ['5;a="', '\\b'],
    ['5', ';a'],
  ] as const) {
    const d = new ChunkedDecoder();
    let r = d.feed(Buffer.from(start), 0);
    const piece = Buffer.from(filler.repeat(512), 'latin1');
    let fed = start.length;
    while (r === CHUNKED_MORE && fed < 64 * 1024) {
      r = d.feed(piece, 0);
      fed += piece.length;
    }
    assert.equal(r, CHUNKED_ERROR, start);
    assert.match(d.error, /extensions too long/);
    assert.ok(fed <= 16 * 1024 + 2 * piece.length, `refused only after ${fed} bytes`);
  }
  // The bound is per message: extensions over many chunks count together.
  assert.match(feedAll(`${'1;abcdefghijklmno=x\r\nz\r\n'.repeat(1000)}0\r\n\r\n`).error, /too long/);
});

test('trailers: field lines only, checked like header lines', () => {
  for (const trailers of ['X-Sum: 1\r\n', 'Y:\r\n', 'Y:  a b\t \r\n', 'A: 1\r\nb: \u00e9\r\n']) {
    const body = `1\r\nx\r\n0\r\n${trailers}\r\n`;
    for (const r of everySplit(body))
      assert.equal(r.end, body.length, `${JSON.stringify(trailers)}: ${r.error}`);
  }
  for (const [trailers, why] of [
    ['foo\r\n', /trailer name/], // no colon
    ['GET / HTTP/1.1\r\n', /trailer name/], // a request line hidden as a trailer
    [': x\r\n', /invalid trailer line/],
    ['X : y\r\n', /whitespace in trailer name/],
    [' x: y\r\n', /obs-fold/],
    ['X: a\r\n\tb\r\n', /obs-fold/],
    ['X: a\u0000b\r\n', /control character/],
    ['X: a\rb\r\n', /LF after trailer/],
    ['X: a\nb\r\n', /control character/],
    ['X\u00e9: a\r\n', /trailer name/],
    [`X: ${'v'.repeat(17_000)}\r\n`, /trailers too long/],
  ] as const) {
    const body = `0\r\n${trailers}\r\n`;
    const r = feedAll(body);
    assert.equal(r.end, CHUNKED_ERROR, JSON.stringify(trailers));
    assert.match(r.error, why, JSON.stringify(trailers));
    assert.equal(feedAll(body, 1).end, CHUNKED_ERROR, JSON.stringify(trailers));
  }
});

test('trailers: fields only a header section may carry are refused, whatever their case; look-alikes pass (issue 22, item 4)', () => {
  for (const trailers of [
    'Content-Length: 4\r\n',
    'content-length: 4\r\n',
    'CONTENT-LENGTH:4\r\n',
    'X: 1\r\nTransfer-Encoding: chunked\r\n',
    'transfer-encoding:\r\n',
    'Connection: close\r\n', // Node's parser honours it: the next request would be refused
    'host: x\r\n',
  ]) {
    const body = `4\r\nabcd\r\n0\r\n${trailers}\r\n`;
    for (const r of everySplit(body)) {
      assert.equal(r.end, CHUNKED_ERROR, JSON.stringify(trailers));
      assert.match(
        r.error,
        /(content-length|transfer-encoding|connection|host) in trailers/,
        JSON.stringify(trailers),
      );
    }
  }
  for (const trailers of [
    'Content-Lengths: 4\r\n',
    'Content-Lengt: 4\r\n',
    'X-Content-Length: 4\r\n',
    'Transfer-Encodin: x\r\n',
    'Content-Type: text/plain\r\n',
    'Content-length0: 1\r\n',
    'Content_Length: 1\r\n', // "_" | 0x20 is no "-"
    'Connections: x\r\n',
    'Hos: x\r\n',
    'Keep-Alive: x\r\n',
  ]) {
    const body = `4\r\nabcd\r\n0\r\n${trailers}\r\n`;
    for (const r of everySplit(body))
      assert.equal(r.end, body.length, `${JSON.stringify(trailers)}: ${r.error}`);
  }
});

test('after the end or an error, feed keeps its answer', () => {
  const d = new ChunkedDecoder();
  assert.equal(d.feed(Buffer.from('0\r\n\r\nNEXT'), 0), 5);
  assert.equal(d.done, true);
  assert.equal(d.feed(Buffer.from('NEXT'), 0), 0);
  const e = new ChunkedDecoder();
  assert.equal(e.feed(Buffer.from('2;\r'), 0), CHUNKED_ERROR);
  assert.equal(e.feed(Buffer.from('\naa'), 0), CHUNKED_ERROR);
});
