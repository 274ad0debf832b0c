import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toRaw, validate } from '../../src/admin/state.js';
import { ConfigError, parseConfig } from '../../src/config/index.js';

const POOLS = `
pools:
  - name: web
    servers: [ { address: 127.0.0.1:3001 } ]
`;

function errorOf(text: string): string {
  try {
    parseConfig(text, 'fulcrum.yaml');
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.message;
  }
  return assert.fail('expected the config to be rejected');
}

test('dns: zones normalized (lower case, ms, defaults, record pools filled in) and round-tripped', () => {
  const config = parseConfig(
    `
listeners:
  - name: dns
    protocol: dns
    listen: 127.0.0.1:5353
    zones:
      - name: Example.TEST.
        records:
          - { name: WWW, pool: web }
          - { name: _http._tcp.www, type: SRV, pool: web, answers: 2, ttl: 5s }
${POOLS}`,
    'dns.yaml',
  );
  const l = config.listeners[0]!;
  assert.equal(l.pool, '');
  assert.deepEqual(l.zones, [
    {
      name: 'example.test',
      ttl: 30_000,
      records: [
        { name: 'www', pool: 'web', type: 'address' },
        { name: '_http._tcp.www', pool: 'web', type: 'SRV', answers: 2, ttl: 5000 },
      ],
    },
  ]);
  assert.equal(l.maxUdpSize, undefined);
  // Through the admin state file's round trip: the same config.
  assert.deepEqual(validate(toRaw(config), 'state'), config);
});

test("dns: a record without a pool takes the listener's", () => {
  const config = parseConfig(
    `
listeners:
  - { name: dns, protocol: dns, listen: 127.0.0.1:5353, pool: web, zones: [ { name: a.test, records: [ { name: www } ] } ] }
${POOLS}`,
    'dns.yaml',
  );
  assert.equal(config.listeners[0]!.zones![0]!.records[0]!.pool, 'web');
});

test('dns: what is refused, with its key path', () => {
  const listener = (body: string) => `
listeners:
  - name: dns
    protocol: dns
    listen: 127.0.0.1:5353
${body}
${POOLS}`;
  assert.match(errorOf(listener('')), /listeners\[0\]: missing required key "zones"/);
  assert.match(
    errorOf(listener('    zones: [ { name: a.test, records: [ { name: www } ] } ]')),
    /listeners\[0\]\.zones\[0\]\.records\[0\]: missing required key "pool"/,
  );
  assert.match(
    errorOf(listener('    zones: [ { name: a.test, records: [ { name: www, pool: nope } ] } ]')),
    /listeners\[0\]\.zones\[0\]\.records\[0\]\.pool: expected the name of a pool \(web\), got "nope"/,
  );
  assert.match(
    errorOf(listener('    zones: [ { name: "a..test", records: [] } ]')),
    /zones\[0\]\.name: expected a domain name/,
  );
  assert.match(
    errorOf(
      listener(
        '    zones: [ { name: a.test, records: [ { name: www, pool: web }, { name: WWW, pool: web, type: A } ] } ]',
      ),
    ),
    /zones\[0\]\.records\[1\]\.name: expected a name not already given a record of this type/,
  );
  assert.match(
    errorOf(listener('    zones: [ { name: a.test, records: [ { name: www, pool: web, type: MX } ] } ]')),
    /records\[0\]\.type: expected one of address, A, AAAA, SRV/,
  );
  assert.match(
    errorOf(listener('    zones: [ { name: a.test, records: [] } ]\n    routes: []')),
    /listeners\[0\]\.routes: only allowed when protocol is http/,
  );
  assert.match(
    errorOf(`
listeners:
  - { name: web, listen: 127.0.0.1:8080, pool: web, zones: [ { name: a.test } ] }
${POOLS}`),
    /listeners\[0\]\.zones: only allowed when protocol is dns/,
  );
  assert.match(
    errorOf(`
listeners:
  - { name: web, protocol: http, listen: 127.0.0.1:8080 }
${POOLS}`),
    /listeners\[0\]: missing required key "pool"/,
  );
});

test('dns: its port is taken for both UDP and TCP', () => {
  const zones = 'zones: [ { name: a.test, records: [ { name: www, pool: web } ] } ]';
  for (const other of ['udp', 'tcp', 'http']) {
    assert.match(
      errorOf(`
listeners:
  - { name: dns, protocol: dns, listen: 127.0.0.1:5353, ${zones} }
  - { name: other, protocol: ${other}, listen: 127.0.0.1:5353, pool: web }
${POOLS}`),
      /listeners\[1\]\.listen: expected an address no other listener uses/,
      other,
    );
  }
});
