import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { stringify } from 'yaml';
import { toRaw } from '../../src/admin/state.js';
import { ConfigError, diffConfig, parseConfig, tlsMaterial } from '../../src/config/index.js';
import { CertDir } from '../helpers/certs.js';

const certs = new CertDir();
const ca = certs.ca('ca');
const a = certs.leaf(ca, 'a', ['a.test']);
const b = certs.leaf(ca, 'b', ['b.test']);
after(() => certs.remove());

function config(tls: string, protocol = 'http'): string {
  return `
listeners:
  - { name: web, protocol: ${protocol}, listen: 127.0.0.1:8080, pool: web }
pools:
  - name: web
    servers: [ { address: 127.0.0.1:3001 } ]
    tls: ${tls}
`;
}

function errorOf(text: string): string {
  try {
    parseConfig(text, 'fulcrum.yaml');
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message;
  }
  return assert.fail('expected the config to be rejected');
}

test('a pool tls parses with its defaults; the files are read but not part of the config', () => {
  const c = parseConfig(
    config(`{ serverName: App.Internal, ca: ${ca.cert}, cert: ${a.cert}, key: ${a.key} }`),
    'fulcrum.yaml',
  );
  const tls = c.pools[0]!.tls!;
  assert.deepEqual(tls, { serverName: 'app.internal', ca: ca.cert, verify: true, cert: a.cert, key: a.key });
  assert.deepEqual(tlsMaterial(tls).key, certs.read(a.key));
  assert.ok(!JSON.stringify(c).includes('PRIVATE KEY'));
  // The admin API's round trip through raw data gives the same config.
  assert.deepEqual(parseConfig(stringify(toRaw(c)), 'again.yaml'), c);
  assert.deepEqual(parseConfig(config('{ verify: false }'), 'f').pools[0]!.tls, { verify: false });
});

test('unreadable files, a key that does not match, half a client certificate: errors naming key and file', () => {
  const missing = join(certs.dir, 'nope.pem');
  assert.equal(
    errorOf(config(`{ ca: ${missing} }`)),
    `fulcrum.yaml:7: pools[0].tls.ca: cannot read "${missing}" (no such file)`,
  );
  assert.equal(
    errorOf(config(`{ ca: ${a.key} }`)),
    `fulcrum.yaml:7: pools[0].tls.ca: "${a.key}" holds no PEM certificate`,
  );
  assert.equal(
    errorOf(config(`{ cert: ${a.cert}, key: ${b.key} }`)),
    `fulcrum.yaml:7: pools[0].tls.key: "${b.key}" is not the private key of the certificate in "${a.cert}"`,
  );
  assert.equal(
    errorOf(config(`{ cert: ${a.cert} }`)),
    'fulcrum.yaml:7: pools[0].tls.cert: expected "key" with it (a client certificate needs both), got none',
  );
  assert.match(
    errorOf(config(`{ cert: ${a.cert}, key: ${a.cert} }`)),
    /pools\[0\]\.tls\.key: ".*a\.pem" is not a PEM private key/,
  );
  assert.match(
    errorOf(config('{ serverName: 10.0.0.1 }')),
    /pools\[0\]\.tls\.serverName: expected a DNS name/,
  );
});

test('an expired client certificate, or a ca file of expired certificates only, is refused', () => {
  const old = certs.expired(ca, 'old');
  assert.equal(
    errorOf(config(`{ cert: ${old.cert}, key: ${old.key} }`)),
    `fulcrum.yaml:7: pools[0].tls.cert: "${old.cert}" expired on Jan  2 00:00:00 2020 GMT`,
  );
  assert.equal(
    errorOf(config(`{ ca: ${old.cert} }`)),
    `fulcrum.yaml:7: pools[0].tls.ca: every certificate in "${old.cert}" has expired`,
  );
  // One expired certificate among valid ones is fine (system bundles hold some).
  const bundle = join(certs.dir, 'bundle.pem');
  writeFileSync(bundle, Buffer.concat([certs.read(old.cert), certs.read(ca.cert)]));
  assert.equal(parseConfig(config(`{ ca: ${bundle} }`), 'f').pools[0]!.tls!.ca, bundle);
});

test('a pool with tls used by a tcp listener is refused', () => {
  assert.equal(
    errorOf(config(`{ ca: ${ca.cert} }`, 'tcp')),
    'fulcrum.yaml:7: pools[0].tls: only allowed in pools that only http listeners use, got pool "web" used by tcp listener "web"',
  );
});

test('a reload sees new contents under the same file name', () => {
  const file = join(certs.dir, 'rotating.pem');
  copyFileSync(ca.cert, file);
  const before = parseConfig(config(`{ ca: ${file} }`), 'f');
  const same = parseConfig(config(`{ ca: ${file} }`), 'f');
  assert.deepEqual(diffConfig(before, same).pools.changed, []);
  writeFileSync(file, Buffer.concat([certs.read(ca.cert), certs.read(a.cert)]));
  const after = parseConfig(config(`{ ca: ${file} }`), 'f');
  const diff = diffConfig(before, after);
  assert.deepEqual(diff.pools.changed, ['web']);
  assert.equal(diff.unchanged, false);
});
