import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClientHelloReader, MAX_CLIENT_HELLO } from '../../src/proxy/tcp/clientHello.js';
import { captureHello, reframe } from '../helpers/clientHello.js';

function readAll(chunks: Buffer[]) {
  const r = new ClientHelloReader();
  let result = r.push(Buffer.alloc(0));
  for (const c of chunks) result = r.push(c);
  return result;
}

test('reads the server name of a real ClientHello, whole, byte by byte, and over many records', async () => {
  const hello = await captureHello('A.Test');
  assert.deepEqual(readAll([hello]), { kind: 'done', sni: 'a.test' });
  const bytes = [...hello].map((b) => Buffer.from([b]));
  assert.deepEqual(readAll(bytes), { kind: 'done', sni: 'a.test' });
  const framed = reframe(hello, 37);
  assert.ok(framed.length > hello.length + 5 * 5, 'several records');
  assert.deepEqual(readAll([framed]), { kind: 'done', sni: 'a.test' });
  // Records split across reads at odd places.
  const pieces: Buffer[] = [];
  for (let i = 0; i < framed.length; i += 3) pieces.push(framed.subarray(i, i + 3));
  assert.deepEqual(readAll(pieces), { kind: 'done', sni: 'a.test' });
});

test('a ClientHello without SNI is done with sni null; until complete it is incomplete', async () => {
  const hello = await captureHello('');
  assert.deepEqual(readAll([hello]), { kind: 'done', sni: null });
  assert.deepEqual(readAll([hello.subarray(0, hello.length - 1)]), { kind: 'incomplete' });
});

test('bytes that are not a TLS ClientHello are invalid', () => {
  assert.equal(readAll([Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]).kind, 'invalid');
  assert.equal(readAll([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])]).kind, 'invalid'); // empty record
  assert.equal(readAll([Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0, 0, 0])]).kind, 'invalid'); // ServerHello
  const short = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x08, 0x01, 0, 0, 4, 3, 3, 0, 0]);
  assert.deepEqual(readAll([short]), { kind: 'invalid', reason: 'malformed ClientHello (too short)' });
  assert.equal(readAll([Buffer.from('SSH-2.0-OpenSSH_9.6\r\n')]).kind, 'invalid');
});

test('a ClientHello announced larger than the bound, or never complete within it, is invalid', () => {
  const big = Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x01, 0x00, 0x00]);
  assert.match((readAll([big]) as { reason: string }).reason, /more than 16384/);
  // Many records that keep a ClientHello of 16000 bytes coming, 1 byte each: past the bound.
  const r = new ClientHelloReader();
  let result = r.push(Buffer.from([0x16, 3, 1, 0, 4, 0x01, 0x00, 0x3e, 0x80]));
  for (let i = 0; i < MAX_CLIENT_HELLO && result.kind === 'incomplete'; i += 6) {
    result = r.push(Buffer.from([0x16, 3, 1, 0, 1, 0]));
  }
  assert.equal(result.kind, 'invalid');
});
