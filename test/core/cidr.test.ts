import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CidrSet, unmapIPv4 } from '../../src/core/cidr.js';

test('matches IPv4 and IPv6 ranges, bare addresses as single hosts, mapped IPv4 as IPv4', () => {
  const set = new CidrSet(['10.0.0.0/8', '192.168.1.7', 'fd00::/8', '::1']);
  assert.equal(set.has('10.200.3.4'), true);
  assert.equal(set.has('11.0.0.1'), false);
  assert.equal(set.has('192.168.1.7'), true);
  assert.equal(set.has('192.168.1.8'), false);
  assert.equal(set.has('::ffff:10.1.1.1'), true);
  assert.equal(set.has('fd12::1'), true);
  assert.equal(set.has('fe80::1'), false);
  assert.equal(set.has('::1'), true);
  assert.equal(set.has('not an ip'), false);
  assert.equal(unmapIPv4('::ffff:127.0.0.1'), '127.0.0.1');
  assert.equal(unmapIPv4('::1'), '::1');
});
