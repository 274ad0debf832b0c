import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/index.js';

/** Strips the indentation common to all lines, so that YAML can be indented with the test. */
function yaml(strings: TemplateStringsArray, ...values: unknown[]): string {
  const text = String.raw({ raw: strings }, ...values).replace(/^\n/, '');
  const indent = Math.min(
    ...text
      .split('\n')
      .filter((line) => line.trim())
      .map((line) => /^ */.exec(line)![0].length),
  );
  return text
    .split('\n')
    .map((line) => line.slice(indent))
    .join('\n');
}

function errorOf(text: string): string {
  try {
    parseConfig(text, 'fulcrum.yaml');
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.message;
  }
  return assert.fail('expected the config to be rejected');
}

test('L4 keys are normalized: durations in ms, queue defaults filled in', () => {
  const config = parseConfig(
    yaml`
      listeners:
        - name: db
          protocol: tcp
          listen: 127.0.0.1:5432
          pool: db
          maxConnections: 500
          queue: { size: 50 }
          acceptProxyProtocol: true
          trustedProxies: [10.0.0.0/8]
          timeouts: { idle: 1h }
        - name: dns
          protocol: udp
          listen: 127.0.0.1:53
          pool: dns
          maxFlows: 2000
          timeouts: { idle: 30s }
      pools:
        - name: db
          algorithm: least-connections
          drainTimeout: 2m
          sendProxyProtocol: v2
          servers:
            - { address: 10.0.0.21:5432, maxConnections: 100 }
            - { address: 10.0.0.22:5432, sendProxyProtocol: none }
            - { address: 10.0.0.23:5432, sendProxyProtocol: v1 }
        - name: dns
          algorithm: ip-hash
          drainTimeout: 0s
          servers: [{ address: 10.0.0.53:53, maxConnections: 1000 }]
    `,
    'fulcrum.yaml',
  );
  const [db, dns] = config.listeners;
  assert.equal(db?.maxConnections, 500);
  assert.deepEqual(db?.queue, { size: 50, timeout: 5000 });
  assert.equal(db?.acceptProxyProtocol, true);
  assert.equal(db?.timeouts.idle, 3_600_000);
  assert.equal(dns?.maxFlows, 2000);
  assert.equal(dns?.timeouts.idle, 30_000);
  const [dbPool, dnsPool] = config.pools;
  assert.equal(dbPool?.drainTimeout, 120_000);
  assert.equal(dbPool?.sendProxyProtocol, 'v2');
  assert.equal(dbPool?.servers[0]?.maxConnections, 100);
  assert.equal(dbPool?.servers[0]?.sendProxyProtocol, undefined);
  assert.equal(dbPool?.servers[1]?.sendProxyProtocol, 'none');
  assert.equal(dbPool?.servers[2]?.sendProxyProtocol, 'v1');
  assert.equal(dnsPool?.drainTimeout, 0);
});

test('absent L4 keys stay absent (their defaults are documented and applied by the listeners)', () => {
  const config = parseConfig(
    yaml`
      listeners: [{ name: db, protocol: tcp, listen: 127.0.0.1:5432, pool: db }]
      pools: [{ name: db, servers: [{ address: 10.0.0.21:5432 }] }]
    `,
    'fulcrum.yaml',
  );
  const l = config.listeners[0]!;
  assert.ok(!('queue' in l) && !('acceptProxyProtocol' in l) && !('maxFlows' in l));
  const p = config.pools[0]!;
  assert.ok(!('drainTimeout' in p) && !('sendProxyProtocol' in p));
  assert.deepEqual(Object.keys(p.servers[0]!).sort(), ['address', 'backup', 'name', 'weight']);
});

test('L4 listener keys on the wrong protocol are errors, not ignored', () => {
  assert.equal(
    errorOf(yaml`
      listeners:
        - name: web
          listen: 127.0.0.1:8080
          pool: web
          acceptProxyProtocol: false
          queue: { size: 1 }
          maxFlows: 10
        - name: dns
          protocol: udp
          listen: 127.0.0.1:53
          pool: web
          maxConnections: 10
          queue: { timeout: 1s }
      pools: [{ name: web, servers: [{ address: 127.0.0.1:3001 }] }]
    `),
    [
      'fulcrum.yaml:5: listeners[0].acceptProxyProtocol: only allowed when protocol is tcp, got protocol "http"',
      'fulcrum.yaml:6: listeners[0].queue: only allowed when protocol is tcp, got protocol "http"',
      'fulcrum.yaml:7: listeners[0].maxFlows: only allowed when protocol is udp, got protocol "http"',
      'fulcrum.yaml:12: listeners[1].maxConnections: only allowed when protocol is http or tcp, got protocol "udp" (a udp listener limits flows with maxFlows)',
      'fulcrum.yaml:13: listeners[1].queue: only allowed when protocol is tcp, got protocol "udp"',
    ].join('\n'),
  );
});

test('acceptProxyProtocol needs trustedProxies', () => {
  assert.equal(
    errorOf(yaml`
      listeners:
        - { name: db, protocol: tcp, listen: 127.0.0.1:5432, pool: db, acceptProxyProtocol: true }
      pools: [{ name: db, servers: [{ address: 127.0.0.1:5433 }] }]
    `),
    'fulcrum.yaml:2: listeners[0].acceptProxyProtocol: expected trustedProxies to list the balancers allowed to send PROXY headers, got none (anyone could claim any address)',
  );
});

test('L4 values are checked: versions, sizes, durations, unknown queue keys', () => {
  const message = errorOf(yaml`
    listeners:
      - name: db
        protocol: tcp
        listen: 127.0.0.1:5432
        pool: db
        acceptProxyProtocol: yes
        queue: { size: -1, timeout: 0s, length: 3 }
      - { name: dns, protocol: udp, listen: 127.0.0.1:53, pool: db, maxFlows: 0 }
    pools:
      - name: db
        sendProxyProtocol: v3
        drainTimeout: soon
        servers:
          - { address: 127.0.0.1:5433, maxConnections: 0, sendProxyProtocol: V2 }
  `);
  const lines = message.split('\n');
  const expected = [
    'listeners[0].acceptProxyProtocol: expected true or false, got "yes"',
    'listeners[0].queue.size: expected a non-negative integer, got -1',
    'listeners[0].queue.timeout: expected a duration above 0, got "0s"',
    'listeners[0].queue: unknown key "length"',
    'listeners[1].maxFlows: expected a positive integer, got 0',
    'pools[0].sendProxyProtocol: expected one of v1, v2, got "v3"',
    'pools[0].drainTimeout: expected a duration',
    'pools[0].servers[0].maxConnections: expected a positive integer, got 0',
    'pools[0].servers[0].sendProxyProtocol: expected one of v1, v2, none, got "V2"',
  ];
  for (const text of expected) {
    assert.ok(
      lines.some((l) => l.includes(text)),
      `missing ${JSON.stringify(text)} in:\n${message}`,
    );
  }
});

test('pool keys only tcp (or udp) listeners apply are rejected in pools other protocols use', () => {
  assert.equal(
    errorOf(yaml`
      listeners:
        - name: web
          listen: 127.0.0.1:8080
          pool: web
          routes: [{ match: { pathPrefix: /db }, pool: db }]
        - { name: dns, protocol: udp, listen: 127.0.0.1:53, pool: dns }
        - { name: db, protocol: tcp, listen: 127.0.0.1:5432, pool: db }
      pools:
        - name: web
          servers: [{ address: 127.0.0.1:3001, maxConnections: 10 }]
        - name: dns
          sendProxyProtocol: v2
          servers: [{ address: 127.0.0.1:5353, maxConnections: 10 }]
        - name: db
          servers: [{ address: 127.0.0.1:5433, sendProxyProtocol: v1 }, { address: 127.0.0.1:5434, sendProxyProtocol: none }]
    `),
    [
      'fulcrum.yaml:10: pools[0].servers[0].maxConnections: only allowed in pools that only tcp or udp listeners use, got pool "web" used by http listener "web"',
      'fulcrum.yaml:12: pools[1].sendProxyProtocol: only allowed in pools that only tcp listeners use, got pool "dns" used by udp listener "dns"',
      'fulcrum.yaml:15: pools[2].servers[0].sendProxyProtocol: only allowed in pools that only tcp listeners use, got pool "db" used by http listener "web"',
    ].join('\n'),
  );
});
