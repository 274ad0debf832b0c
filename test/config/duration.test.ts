import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDuration, parseDuration, ValueError } from '../../src/config/index.js';

test('parseDuration reads every unit into milliseconds', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('2s'), 2000);
  assert.equal(parseDuration('1m'), 60_000);
  assert.equal(parseDuration('30m'), 1_800_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('1d'), 86_400_000);
  assert.equal(parseDuration('0s'), 0);
});

test('parseDuration accepts fractions and compound durations', () => {
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('1.1s'), 1100);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('1h30m15s250ms'), 5_415_250);
  assert.equal(parseDuration('0.4ms'), 0, 'rounded to a whole millisecond');
});

test('a bare number means milliseconds, as in HAProxy', () => {
  assert.equal(parseDuration(250), 250);
  assert.equal(parseDuration('250'), 250);
  assert.equal(parseDuration(0), 0);
  assert.equal(parseDuration(2.6), 3);
});

test('parseDuration rejects what is not a duration, saying what it expected', () => {
  const expected = 'expected a duration like "500ms", "2s", "1m" or "1h", got';
  for (const [input, found] of [
    ['', '""'],
    ['-1s', '"-1s"'],
    ['abc', '"abc"'],
    ['5sec', '"5sec"'],
    ['2S', '"2S"'],
    ['s', '"s"'],
    ['1.5.5s', '"1.5.5s"'],
    ['2s ', '"2s "'],
    [-5, '-5'],
    [Number.NaN, 'NaN'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
  ] as const) {
    assert.throws(
      () => parseDuration(input),
      (error: unknown) => error instanceof ValueError && error.message === `${expected} ${found}`,
      `input ${String(input)}`,
    );
  }
});

test('a duration with a space is rejected with a hint', () => {
  assert.throws(() => parseDuration('2 s'), {
    message: 'expected a duration like "500ms", "2s", "1m" or "1h", got "2 s" (write it without spaces)',
  });
});

test('parseDuration rejects values of the wrong type coming from YAML', () => {
  assert.throws(() => parseDuration(true as unknown as string), {
    message: 'expected a duration like "500ms", "2s", "1m" or "1h", got true',
  });
});

test('formatDuration writes the shortest compound text', () => {
  assert.equal(formatDuration(0), '0ms');
  assert.equal(formatDuration(1500), '1s500ms');
  assert.equal(formatDuration(90_000), '1m30s');
  assert.equal(formatDuration(86_400_000), '1d');
  for (const text of ['30m', '1h30m', '2d3h', '750ms'])
    assert.equal(formatDuration(parseDuration(text)), text);
});
