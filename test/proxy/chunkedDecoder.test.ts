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
    ['3;a\u0000\r\nabc\r\n0\r\n\r\n', /control character/],
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
