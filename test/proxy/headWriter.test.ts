import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { HeadWriter } from '../../src/proxy/http/headWriter.js';

/** A Writable that keeps every chunk it is given and completes its writes only when told. */
function holdingSink(): { sink: Writable; chunks: Buffer[]; complete: () => void } {
  const chunks: Buffer[] = [];
  const pending: (() => void)[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      pending.push(cb);
    },
  });
  const complete = (): void => {
    for (const cb of pending.splice(0)) cb();
  };
  return { sink, chunks, complete };
}

test('text, char ranges and byte ranges, short and long, come out byte for byte', () => {
  const w = new HeadWriter();
  const long = 'x'.repeat(300);
  const src = Buffer.from(`..${'y'.repeat(700)}..`, 'latin1');
  w.text('HTTP/1.1 200 OK\r\n');
  w.chars('__a: b\r\n__', 2, 8);
  w.chars(`(${long})`, 1, 301);
  w.bytes(Buffer.from('[body]'), 1, 5);
  w.bytes(src, 2, 702);
  w.text('\xe9\r\n');
  assert.equal(w.takeString(), `HTTP/1.1 200 OK\r\na: b\r\n${long}body${'y'.repeat(700)}\xe9\r\n`);
  assert.equal(w.length, 0);
});

test('a head larger than the initial buffer grows it and keeps what was written', () => {
  const w = new HeadWriter();
  const lines: string[] = [];
  for (let i = 0; i < 500; i++) lines.push(`x-field-${i}: ${'v'.repeat(i % 40)}\r\n`);
  for (const line of lines) w.text(line);
  assert.equal(w.takeString(), lines.join(''));
});

test('a flushed head the socket still holds is never overwritten by the next one', () => {
  const w = new HeadWriter();
  const { sink, chunks, complete } = holdingSink();
  w.text('first head\r\n\r\n');
  w.flush(sink);
  // Built while the first is still queued: not in the memory the sink holds.
  w.text('SECOND HEAD\r\n\r\n');
  assert.equal(chunks[0]!.toString('latin1'), 'first head\r\n\r\n');
  w.flush(sink);
  complete();
  assert.deepEqual(
    chunks.map((c) => c.toString('latin1')),
    ['first head\r\n\r\n', 'SECOND HEAD\r\n\r\n'],
  );
});

test('a head whose write completed at once leaves the buffer to be reused', () => {
  const w = new HeadWriter();
  const seen: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      seen.push(chunk);
      cb();
    },
  });
  w.text('one\r\n\r\n');
  w.flush(sink);
  const first = seen[0]!.toString('latin1');
  w.text('two\r\n\r\n');
  w.flush(sink);
  assert.equal(first, 'one\r\n\r\n');
  assert.equal(seen[1]!.toString('latin1'), 'two\r\n\r\n');
  // The same memory: the first view now shows the second head.
  assert.equal(seen[0]!.buffer, seen[1]!.buffer);
});

test('after a held write completes, a head of the same length goes out with its own bytes', () => {
  const w = new HeadWriter();
  const { sink, chunks, complete } = holdingSink();
  w.text('head A\r\n\r\n');
  w.flush(sink);
  complete();
  w.text('head B\r\n\r\n');
  w.flush(sink);
  complete();
  assert.deepEqual(
    chunks.map((c) => c.toString('latin1')),
    ['head A\r\n\r\n', 'head B\r\n\r\n'],
  );
});
