import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decode, encode } from 'dns-packet';
import type { Response } from '../../../src/proxy/dns/answers.js';
import { ResponseRateLimiter, subnetKey, Verdict } from '../../../src/proxy/dns/rateLimit.js';
import { decodeQuery, encodeTcp, encodeUdp, udpLimit } from '../../../src/proxy/dns/wire.js';

function bigResponse(n: number): Response {
  const answers = [];
  for (let i = 0; i < n; i++)
    answers.push({
      type: 'A' as const,
      name: 'www.example.test',
      ttl: 30,
      data: `10.0.${i >> 8}.${i & 255}`,
    });
  return {
    packet: {
      type: 'response',
      id: 9,
      flags: 0,
      questions: [{ name: 'www.example.test', type: 'A' }],
      answers,
    },
    rcode: 0,
    qtype: 'A',
    ednsSize: 0,
  };
}

test('a query is decoded only when it looks like one', () => {
  const good = encode({ type: 'query', id: 1, questions: [{ name: 'a.test', type: 'A' }] });
  assert.equal(decodeQuery(good)?.questions?.[0]?.name, 'a.test');
  assert.equal(decodeQuery(good.subarray(0, 11)), undefined, 'shorter than a header');
  assert.equal(decodeQuery(good.subarray(0, good.length - 3)), undefined, 'cut short');
  const response = encode({ type: 'response', id: 1, questions: [{ name: 'a.test', type: 'A' }] });
  assert.equal(decodeQuery(response), undefined, 'a response is never answered');
  const two = encode({
    type: 'query',
    id: 1,
    questions: [
      { name: 'a.test', type: 'A' },
      { name: 'b.test', type: 'A' },
    ],
  });
  assert.equal(decodeQuery(two), undefined);
  const loop = Buffer.from(good);
  loop[12] = 0xc0; // a compression pointer at the question's own name
  loop[13] = 12;
  assert.equal(decodeQuery(loop), undefined);
});

test('over UDP an answer too large for the client is truncated (TC), over TCP it is whole', () => {
  const small = encodeUdp(bigResponse(3), 512);
  assert.equal(small.truncated, false);
  assert.equal(decode(small.bytes).answers?.length, 3);
  const r = bigResponse(100);
  assert.equal(udpLimit(r, 1232), 512, 'no EDNS: 512 bytes');
  const big = encodeUdp(bigResponse(100), 512);
  assert.equal(big.truncated, true);
  assert.ok(big.bytes.length <= 512);
  const decoded = decode(big.bytes);
  assert.equal(decoded.flag_tc, true);
  assert.equal(decoded.answers?.length, 0);
  const tcp = encodeTcp(bigResponse(100))!;
  assert.equal(tcp.readUInt16BE(0), tcp.length - 2);
  assert.equal(decode(tcp.subarray(2)).answers?.length, 100);
  assert.equal(udpLimit({ ...r, ednsSize: 4096 }, 1232), 1232, 'EDNS: the smaller of both sizes');
  assert.equal(udpLimit({ ...r, ednsSize: 800 }, 1232), 800);
});

test('response-rate limiting counts per subnet and slips every second response over the limit', () => {
  const limiter = new ResponseRateLimiter({ responses: 3, per: 1000, ipv4Prefix: 24, ipv6Prefix: 56 });
  const verdicts = [];
  for (let i = 0; i < 7; i++) verdicts.push(limiter.check(`192.0.2.${i}`, 1000));
  assert.deepEqual(verdicts, [
    Verdict.Send,
    Verdict.Send,
    Verdict.Send,
    Verdict.Drop,
    Verdict.Slip,
    Verdict.Drop,
    Verdict.Slip,
  ]);
  assert.equal(limiter.check('192.0.3.1', 1000), Verdict.Send, 'another subnet has its own budget');
  assert.equal(limiter.check('192.0.2.1', 2000), Verdict.Send, 'a new window');
  assert.equal(limiter.limited, 4);
  const off = new ResponseRateLimiter({ responses: 0, per: 1000, ipv4Prefix: 24, ipv6Prefix: 56 });
  for (let i = 0; i < 1000; i++) assert.equal(off.check('192.0.2.1', 0), Verdict.Send);
});

test('subnet keys mask the host bits', () => {
  const p = { ipv4Prefix: 24, ipv6Prefix: 56 };
  assert.equal(subnetKey('192.0.2.77', p), subnetKey('192.0.2.1', p));
  assert.notEqual(subnetKey('192.0.3.1', p), subnetKey('192.0.2.1', p));
  assert.equal(subnetKey('2001:db8:0:12ff::1', p), subnetKey('2001:db8:0:1200::9', p));
  assert.notEqual(subnetKey('2001:db8:0:1300::1', p), subnetKey('2001:db8:0:1200::1', p));
  assert.equal(subnetKey('::1', p), subnetKey('::2', p));
});
