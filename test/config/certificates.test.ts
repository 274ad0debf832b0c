import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readCertificatePair } from '../../src/config/certificates.js';
import { ConfigError, parseConfig } from '../../src/config/index.js';
import { makeCertKit } from '../helpers/certificates.js';

const kit = makeCertKit();
after(() => kit.remove());

function tlsConfig(certs: Array<{ cert: string; key: string }>, extra = ''): string {
  return `
listeners:
  - name: web
    listen: "127.0.0.1:0"
    pool: p
    tls:
      certificates: [${certs.map((c) => `{ cert: "${c.cert}", key: "${c.key}" }`).join(', ')}]${extra}
pools: [{ name: p, servers: [{ address: "127.0.0.1:1" }] }]
`;
}

function problems(yaml: string, file = 'test.yaml'): string {
  try {
    parseConfig(yaml, file);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.message;
  }
  assert.fail('expected a ConfigError');
}

test('a good certificate and key load, with their DNS names; defaults filled in', () => {
  const site = kit.leaf('site', ['site.test', '*.site.test']);
  const pair = readCertificatePair(site.cert, site.key);
  assert.deepEqual(pair.names, ['site.test', '*.site.test']);
  const config = parseConfig(tlsConfig([site]), 'test.yaml');
  const tls = config.listeners[0]!.tls!;
  assert.equal(tls.minVersion, 'TLSv1.2');
  assert.deepEqual(tls.alpn, ['h2', 'http/1.1']);
});

test('a key that is not the certificate’s: a config error naming the key path and both files', () => {
  const a = kit.leaf('a', ['a.test']);
  const b = kit.leaf('b', ['b.test']);
  const msg = problems(tlsConfig([{ cert: a.cert, key: b.key }]));
  assert.match(
    msg,
    /listeners\[0\]\.tls\.certificates\[0\]\.key: .*b\.key is not the private key of the certificate in .*a\.pem/,
  );
});

test('an unreadable file: the key path, the file and the reason', () => {
  const a = kit.leaf('c', ['c.test']);
  const msg = problems(tlsConfig([{ cert: join(kit.dir, 'missing.pem'), key: a.key }]));
  assert.match(
    msg,
    /listeners\[0\]\.tls\.certificates\[0\]\.cert: cannot read .*missing\.pem \(no such file\)/,
  );
});

test('an expired certificate is refused, saying when it expired', () => {
  const old = kit.expired('old', 'old.test');
  const msg = problems(tlsConfig([old]));
  assert.match(
    msg,
    /listeners\[0\]\.tls\.certificates\[0\]\.cert: .*old\.pem expired on Jan {1,2}2 00:00:00 2020 GMT/,
  );
});

test('a file that is not PEM is refused', () => {
  const a = kit.leaf('d', ['d.test']);
  copyFileSync(join(kit.dir, 'd.ext'), join(kit.dir, 'junk.pem'));
  assert.match(
    problems(tlsConfig([{ cert: join(kit.dir, 'junk.pem'), key: a.key }])),
    /junk\.pem is not a PEM certificate/,
  );
  assert.match(
    problems(tlsConfig([{ cert: a.cert, key: join(kit.dir, 'junk.pem') }])),
    /junk\.pem is not a PEM private key/,
  );
});

test('a certificate no client can reach (every name held by an earlier one) is refused', () => {
  const first = kit.leaf('first', ['a.test', 'b.test']);
  const shadowed = kit.leaf('shadowed', ['b.test']);
  const other = kit.leaf('other', ['b.test', 'c.test']);
  const msg = problems(tlsConfig([first, shadowed]));
  assert.match(
    msg,
    /listeners\[0\]\.tls\.certificates\[1\]\.cert: .*shadowed\.pem can never be chosen: every name it holds \(b\.test\) is served by an earlier certificate/,
  );
  // One name of its own is enough.
  parseConfig(tlsConfig([first, other]), 'test.yaml');
});

test('relative paths are resolved against the config file’s folder', () => {
  const a = kit.leaf('rel', ['rel.test']);
  const config = parseConfig(tlsConfig([{ cert: 'rel.pem', key: 'rel.key' }]), join(kit.dir, 'fulcrum.yaml'));
  assert.equal(config.listeners[0]!.tls!.certificates[0]!.cert, a.cert);
});

test('tls keys only where they mean something', () => {
  const a = kit.leaf('e', ['e.test']);
  assert.match(
    problems(tlsConfig([a], '\n    redirectHttps: true')),
    /redirectHttps: only allowed on a listener without tls/,
  );
  assert.match(
    problems(`
listeners: [{ name: web, listen: "127.0.0.1:0", pool: p, hsts: 100 }]
pools: [{ name: p, servers: [{ address: "127.0.0.1:1" }] }]
`),
    /hsts: only allowed on a listener with tls/,
  );
  assert.match(
    problems(`
listeners: [{ name: web, listen: "127.0.0.1:0", pool: p, redirectHttps: true }]
pools: [{ name: p, servers: [{ address: "127.0.0.1:1" }] }]
`),
    /redirectHttps: expected an http listener with tls to redirect to, got none/,
  );
  assert.match(
    problems(`
listeners: [{ name: t, protocol: tcp, listen: "127.0.0.1:0", pool: p, http2: true }]
pools: [{ name: p, servers: [{ address: "127.0.0.1:1" }] }]
`),
    /http2: only allowed when protocol is http/,
  );
});
