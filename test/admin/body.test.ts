/** The admin body bounds: JSON depth counted without recursion, brackets in strings ignored. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsonDepth, MAX_JSON_DEPTH } from '../../src/admin/body.js';

test('jsonDepth counts nesting of objects and arrays, not brackets inside strings', () => {
  const cases: Array<[string, number]> = [
    ['1', 0],
    ['"{[{["', 0],
    ['{}', 1],
    ['{"a":[1,{"b":"}}]]"}]}', 3],
    ['{"a\\"{{{":1}', 1], // an escaped quote does not end the string
    ['["\\\\",[[]]]', 3], // an escaped backslash does not escape the closing quote
    [`${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`, 5000],
    ['[[[', 3], // malformed: an upper bound is enough
  ];
  for (const [text, depth] of cases) assert.equal(jsonDepth(text), depth, text);
  assert.ok(MAX_JSON_DEPTH >= 8);
});
