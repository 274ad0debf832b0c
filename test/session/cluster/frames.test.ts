import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeFrame, FrameDecoder, FrameError, FrameType } from '../../../src/session/cluster/frames.js';

test('frames: a frame survives being cut into single bytes, and several arrive in one chunk', () => {
  const a = encodeFrame(FrameType.update, { id: 'sess:x', v: 1 }, '{"n":1,"é":"ü"}');
  const b = encodeFrame(FrameType.ping, {});
  const decoder = new FrameDecoder();
  const frames = [];
  for (const byte of Buffer.concat([a, b])) frames.push(...decoder.push(Buffer.from([byte])));
  assert.equal(frames.length, 2);
  assert.equal(frames[0]!.type, FrameType.update);
  assert.deepEqual(frames[0]!.header, { id: 'sess:x', v: 1 });
  assert.equal(frames[0]!.body.toString('utf8'), '{"n":1,"é":"ü"}');
  assert.equal(frames[1]!.type, FrameType.ping);
  assert.equal(frames[1]!.body.length, 0);
  assert.equal(decoder.buffered, 0);

  const both = new FrameDecoder().push(Buffer.concat([a, b, a.subarray(0, 7)]));
  assert.equal(both.length, 2, 'two whole frames, the third waits for its rest');
});

test('frames: layout is length, type, header length, JSON header, raw body', () => {
  const frame = encodeFrame(FrameType.fetch, { id: 'k' }, 'body');
  const header = '{"id":"k"}';
  assert.equal(frame.readUInt32BE(0), frame.length - 4);
  assert.equal(frame[4], FrameType.fetch);
  assert.equal(frame.readUInt32BE(5), header.length);
  assert.equal(frame.toString('utf8', 9, 9 + header.length), header);
  assert.equal(frame.toString('utf8', 9 + header.length), 'body');
});

test('frames: malformed input is refused with a reason', () => {
  const cases: [string, Buffer, RegExp][] = [
    ['too short', Buffer.from([0, 0, 0, 2, 1, 0]), /shorter than a frame's prefix/],
    ['too long', Buffer.from([0x7f, 0, 0, 0]), /exceeds the 1024-byte limit/],
    ['unknown type', Buffer.from([0, 0, 0, 5, 99, 0, 0, 0, 0]), /unknown type 99/],
    ['header overflow', Buffer.from([0, 0, 0, 6, 3, 0, 0, 0, 9, 0x7b]), /header length 9 exceeds/],
    ['header not JSON', Buffer.from([0, 0, 0, 7, 3, 0, 0, 0, 2, 0x7b, 0x7b]), /not JSON/],
    ['header not an object', Buffer.from([0, 0, 0, 6, 3, 0, 0, 0, 1, 0x31]), /not a JSON object/],
  ];
  for (const [name, bytes, reason] of cases) {
    assert.throws(
      () => new FrameDecoder(1024).push(bytes),
      (err: unknown) => err instanceof FrameError && reason.test(err.message),
      name,
    );
  }
});
