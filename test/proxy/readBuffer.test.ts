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
