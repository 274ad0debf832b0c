import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LARGE_READ, ReadBuffer, SMALL_READ } from '../../src/proxy/readBuffer.js';

test('read buffer: small while reads are small, large once a read fills it, small again after a run of small reads', () => {
  const rb = new ReadBuffer();
  let buf = rb.next();
  assert.equal(buf.length, SMALL_READ);
  rb.afterRead(100, buf.length);
  assert.equal(rb.next(), buf, 'reused while reads fit');

  rb.afterRead(SMALL_READ, buf.length); // filled: a bulk transfer
  buf = rb.next();
  assert.equal(buf.length, LARGE_READ);
  for (let i = 0; i < 7; i++) rb.afterRead(1000, buf.length);
  assert.equal(rb.next(), buf, 'a few small reads keep the large buffer');
  rb.afterRead(SMALL_READ, buf.length); // a medium read breaks the run
  for (let i = 0; i < 7; i++) rb.afterRead(1000, buf.length);
  assert.equal(rb.next().length, LARGE_READ);
  rb.afterRead(1000, buf.length); // the eighth small read in a row
  assert.equal(rb.next().length, SMALL_READ);
  rb.release();
});

test('read buffer: a chunk still held by a pending write is never read into again', () => {
  const rb = new ReadBuffer();
  const first = rb.next();
  rb.afterRead(10, first.length, { held: true });
  const second = rb.next();
  assert.notEqual(second, first);
  rb.afterRead(10, second.length, { held: false });
  assert.equal(rb.next(), second);
  rb.release();
  // Released buffers are reused by other connections; a held one only once its write is done.
  const other = new ReadBuffer();
  assert.equal(other.next(), second);
  assert.notEqual(new ReadBuffer().next(), first);
  rb.written(); // the held write completes
  rb.written(); // the other one (written in order)
  assert.equal(new ReadBuffer().next(), first, 'back in the pool');
});

test("read buffer: the large size is the reader's; a kept chunk leaves its buffer to the reader", () => {
  const rb = new ReadBuffer(64 * 1024);
  const first = rb.next();
  assert.equal(first.length, SMALL_READ);
  rb.afterRead(SMALL_READ, first.length); // filled
  const large = rb.next();
  assert.equal(large.length, 64 * 1024);
  rb.afterRead(17_000, large.length);
  assert.equal(rb.next(), large, 'reused while not kept');
  rb.keep(); // the chunk just read stays with a pending write, which has no callback
  rb.afterRead(17_000, large.length);
  const next = rb.next();
  assert.notEqual(next, large, 'a kept buffer is never read into again');
  assert.equal(next.length, 64 * 1024);
  rb.release();
  // The released buffer is reused by the next reader of that size; the kept one is not there.
  const again = new ReadBuffer(64 * 1024);
  again.afterRead(SMALL_READ, SMALL_READ); // filled: large from now on
  assert.equal(again.next(), next);
  again.afterRead(SMALL_READ, SMALL_READ);
  again.keep();
  again.afterRead(SMALL_READ, SMALL_READ);
  assert.notEqual(again.next(), large, 'the kept buffer never came back to the pool');
  again.release();
});
