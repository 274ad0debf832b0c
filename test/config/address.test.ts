import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatAddress, parseAddress, parseCidr } from '../../src/config/index.js';

test('parseAddress reads IPv4, bracketed IPv6 and host names', () => {
  assert.deepEqual(parseAddress('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080, text: '127.0.0.1:8080' });
  assert.deepEqual(parseAddress('[::1]:8080'), { host: '::1', port: 8080, text: '[::1]:8080' });
  assert.deepEqual(parseAddress('localhost:3001'), { host: 'localhost', port: 3001, text: 'localhost:3001' });
  assert.deepEqual(parseAddress('my_service.internal:80'), {
    host: 'my_service.internal',
    port: 80,
    text: 'my_service.internal:80',
  });
  assert.equal(parseAddress('0.0.0.0:65535').port, 65535);
});

test('host names and IPv6 are lower-cased so that one server has one identity', () => {
  assert.equal(parseAddress('LocalHost:3001').text, 'localhost:3001');
  assert.equal(parseAddress('[FE80::1]:80').text, '[fe80::1]:80');
});

test('port 0 is accepted only where the caller allows it (listen addresses)', () => {
  assert.throws(() => parseAddress('127.0.0.1:0'), {
    message: 'expected host:port with a port from 1 to 65535, got "127.0.0.1:0"',
  });
  assert.deepEqual(parseAddress('127.0.0.1:0', { allowPortZero: true }), {
    host: '127.0.0.1',
    port: 0,
    text: '127.0.0.1:0',
  });
});

test('parseAddress says what it expected and what it got', () => {
  const cases: [string, string][] = [
    ['localhost', 'expected host:port, got "localhost"'],
    ['', 'expected host:port, got ""'],
    ['localhost:70000', 'expected host:port with a port from 1 to 65535, got "localhost:70000"'],
    ['localhost:http', 'expected host:port with a port from 1 to 65535, got "localhost:http"'],
    ['localhost:', 'expected host:port with a port from 1 to 65535, got "localhost:"'],
    ['::1:8080', 'expected host:port, got "::1:8080" (put an IPv6 address in brackets, like "[::1]:8080")'],
    [':8080', 'expected host:port, got ":8080" (use 0.0.0.0 to mean every interface)'],
    ['999.1.1.1:80', 'expected host:port with a valid host name or IP address, got "999.1.1.1:80"'],
    ['exa mple:80', 'expected host:port with a valid host name or IP address, got "exa mple:80"'],
    ['-bad-.com:80', 'expected host:port with a valid host name or IP address, got "-bad-.com:80"'],
    ['[::1]8080', 'expected [ipv6]:port, got "[::1]8080"'],
    ['[nope]:80', 'expected [ipv6]:port with a valid IPv6 address, got "[nope]:80"'],
  ];
  for (const [input, message] of cases) assert.throws(() => parseAddress(input), { message }, input);
});

test('formatAddress brackets IPv6 hosts', () => {
  assert.equal(formatAddress({ host: '::1', port: 80 }), '[::1]:80');
  assert.equal(formatAddress({ host: 'example.com', port: 443 }), 'example.com:443');
});

test('parseCidr reads blocks and single hosts', () => {
  assert.deepEqual(parseCidr('10.0.0.0/8'), {
    address: '10.0.0.0',
    prefix: 8,
    family: 'ipv4',
    text: '10.0.0.0/8',
  });
  assert.equal(parseCidr('10.1.2.3').text, '10.1.2.3/32');
  assert.equal(parseCidr('::1').text, '::1/128');
  assert.equal(parseCidr('FD00::/8').text, 'fd00::/8');
  assert.equal(parseCidr('0.0.0.0/0').prefix, 0);
});

test('parseCidr rejects bad addresses and prefixes', () => {
  assert.throws(() => parseCidr('10.0.0.0/33'), {
    message:
      'expected an IP address or CIDR block like "10.0.0.0/8" or "fd00::/8", with a prefix length from 0 to 32, got "10.0.0.0/33"',
  });
  assert.throws(() => parseCidr('10.0.0.0/'), /with a prefix length from 0 to 32, got "10.0.0.0\/"/);
  assert.throws(() => parseCidr('localhost'), {
    message: 'expected an IP address or CIDR block like "10.0.0.0/8" or "fd00::/8", got "localhost"',
  });
});
