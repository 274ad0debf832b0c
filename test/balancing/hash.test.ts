import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fmix32, fnv1a32, hash32 } from '../../src/balancing/hash.js';

// Changing these values remaps every ip-hash client on upgrade: pinned on purpose.
test('hash: FNV-1a 32 matches the reference vectors', () => {
  assert.equal(fnv1a32(''), 0x811c9dc5);
  assert.equal(fnv1a32('a'), 0xe40c292c);
  assert.equal(fnv1a32('foobar'), 0xbf9cf968);
});

test('hash: fmix32 matches murmur3', () => {
  assert.equal(fmix32(0), 0);
  assert.equal(fmix32(1), 0x514e28b7);
});

test('hash: hash32 values are pinned, for IPv4, IPv6 and non-ASCII keys', () => {
  assert.equal(hash32(''), 2872998923);
  assert.equal(hash32('10.0.0.1'), 2931590574);
  assert.equal(hash32('2001:db8::1'), 3849813818);
  assert.equal(hash32('café-ü€'), 2499190454);
});

test('hash: neighbouring IPv4 keys spread over the high bits', () => {
  const buckets = new Array<number>(16).fill(0);
  for (let i = 0; i < 16_000; i++) {
    const h = hash32(`192.168.${i >> 8}.${i & 255}`);
    buckets[h >>> 28]!++;
  }
  for (const b of buckets) assert.ok(b > 800 && b < 1200, `bucket ${b} of 1000 expected`);
});
