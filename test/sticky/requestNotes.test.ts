import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RequestNotes } from '../../src/sticky/requestNotes.js';

test('notes come back by (client, server), oldest first, once', () => {
  const notes = new RequestNotes<number>();
  notes.add('1.1.1.1', 'a', 1);
  notes.add('1.1.1.1', 'a', 2);
  notes.add('1.1.1.1', 'b', 3);
  assert.equal(notes.take('1.1.1.1', 'a'), 1);
  assert.equal(notes.take('2.2.2.2', 'a'), undefined);
  assert.equal(notes.take('1.1.1.1', 'a'), 2);
  assert.equal(notes.take('1.1.1.1', 'a'), undefined);
  assert.equal(notes.take('1.1.1.1', 'b'), 3);
  assert.equal(notes.size, 0);
});

test('old notes are dropped, and the whole is bounded', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  const notes = new RequestNotes<number>();
  notes.add('1.1.1.1', 'a', 1);
  t.mock.timers.tick(121_000);
  notes.add('1.1.1.1', 'a', 2);
  assert.equal(notes.take('1.1.1.1', 'a'), 2, 'the one whose response never came is skipped');
  for (let i = 0; i < 25_000; i++) notes.add(`10.0.${i >> 8}.${i & 255}`, 'a', i);
  assert.ok(notes.size <= 10_000, `${notes.size} pairs held`);
  for (let i = 0; i < 100; i++) notes.add('9.9.9.9', 'a', i);
  assert.equal(notes.take('9.9.9.9', 'a'), 68, 'at most 32 per pair');
});
