import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Config, ConfigError, isLoopback, loadConfig, parseConfig } from '../../src/config/index.js';

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

/** The ConfigError message for `text`, failing the test when it parses. */
function errorOf(text: string): string {
  try {
    parseConfig(text, 'fulcrum.yaml');
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.message;
  }
  return assert.fail('expected the config to be rejected');
}

/** A valid config with one listener and pool, with `extra` lines added to the first server. */
const MINIMAL = yaml`
  listeners:
    - name: web
      listen: 127.0.0.1:8080
      pool: web
  pools:
    - name: web
      servers:
        - address: 127.0.0.1:3001
`;

const DESIGN_CONTRACT = yaml`
  admin:                         # optional: REST API, /metrics, dashboard
    listen: 127.0.0.1:9000
  listeners:
    - name: web
      protocol: http             # http | tcp | udp
      listen: 127.0.0.1:8080
      pool: web                  # default pool
      routes:                    # http only; first match wins
        - match: { host: api.example.com, pathPrefix: /api, method: GET, headers: { x-canary: "1" } }
          pool: api
  pools:
    - name: web
      algorithm: round-robin     # round-robin | weighted-round-robin | ip-hash | least-connections | least-response-time
      servers:
        - address: 127.0.0.1:3001
          name: a                # optional; defaults to the address
          weight: 1              # default 1
          backup: false
      healthCheck: { type: http, path: /health, interval: 2s, timeout: 1s, rise: 2, fall: 3 }
      retries: { attempts: 2 }
      sticky: { type: cookie, cookie: fulcrum_srv, ttl: 30m, store: memory }   # or type: source
`;

test('the contract example of design.md parses (with the api pool it routes to)', () => {
  const text = `${DESIGN_CONTRACT}  - name: api\n    servers: [{ address: 127.0.0.1:3002 }]\n`;
  const config = parseConfig(text, 'fulcrum.yaml');
  assert.deepEqual(config.admin, { listen: { host: '127.0.0.1', port: 9000, text: '127.0.0.1:9000' } });
  assert.deepEqual(config.listeners[0]?.routes, [
    {
      match: { host: 'api.example.com', pathPrefix: '/api', method: 'GET', headers: { 'x-canary': '1' } },
      pool: 'api',
    },
  ]);
  const web = config.pools[0]!;
  assert.deepEqual(web.servers, [
    {
      address: { host: '127.0.0.1', port: 3001, text: '127.0.0.1:3001' },
      name: 'a',
      weight: 1,
      backup: false,
    },
  ]);
  assert.equal(web.healthCheck?.interval, 2000);
  assert.deepEqual(web.retries, { attempts: 2, on: ['connect-failure', 'reset'] });
  assert.deepEqual(web.sticky, {
    type: 'cookie',
    mode: 'insert',
    cookie: 'fulcrum_srv',
    ttl: 1_800_000,
    store: 'memory',
    maxEntries: 100_000,
  });
});

test('the contract example verbatim routes to a pool it does not define', () => {
  assert.equal(
    errorOf(DESIGN_CONTRACT),
    'fulcrum.yaml:10: listeners[0].routes[0].pool: expected the name of a pool (web), got "api"',
  );
});

/** The repository root, found from this file wherever the build put it. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

test('the examples of docs/configuration.md parse', async () => {
  const doc = await readFile(join(repoRoot(), 'docs', 'configuration.md'), 'utf8');
  const examples = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1]!);
  // The first two are whole files (the complete example and the smallest one).
  assert.ok(examples.length >= 2);
  const complete = parseConfig(examples[0]!, 'complete.yaml');
  assert.deepEqual(
    complete.pools.map((pool) => pool.name),
    ['web', 'api', 'db'],
  );
  assert.equal(parseConfig(examples[1]!, 'smallest.yaml').listeners[0]?.name, 'web');
});

test('a minimal config gets every default filled in', () => {
  const expected: Config = {
    shutdownTimeout: 30_000,
    workers: 1,
    workerTimeout: 5000,
    listeners: [
      {
        name: 'web',
        protocol: 'http',
        listen: { host: '127.0.0.1', port: 8080, text: '127.0.0.1:8080' },
        pool: 'web',
        routes: [],
        trustedProxies: [],
        maxHeaderSize: 16_384,
        timeouts: { requestHead: 10_000, idle: 60_000 },
      },
    ],
    pools: [
      {
        name: 'web',
        algorithm: 'round-robin',
        servers: [
          {
            address: { host: '127.0.0.1', port: 3001, text: '127.0.0.1:3001' },
            name: '127.0.0.1:3001',
            weight: 1,
            backup: false,
          },
        ],
        retries: { attempts: 1, on: ['connect-failure', 'reset'] },
        slowStart: 0,
        timeouts: { connect: 5000, response: 60_000, idle: 30_000 },
        maxIdlePerServer: 64,
      },
    ],
  };
  assert.deepEqual(parseConfig(MINIMAL, 'fulcrum.yaml'), expected);
});

test('a config using every key round-trips into the normalized shape', () => {
  const text = yaml`
    admin: { listen: "[::1]:0", token: s3cret }
    shutdownTimeout: 10s
    listeners:
      - name: front
        protocol: http
        listen: 0.0.0.0:0
        pool: web
        routes:
          - match: { host: "*.Example.COM", pathPrefix: /api, method: post, headers: { X-Canary: 1 } }
            pool: api
        trustedProxies: [10.0.0.0/8, 192.168.1.1, "::1"]
        maxHeaderSize: 32768
        maxConnections: 1000
        timeouts: { requestHead: 5s, idle: 2m }
      - name: db
        protocol: tcp
        listen: 127.0.0.1:5432
        pool: api
        timeouts: { idle: 1h }
    pools:
      - name: web
        algorithm: least-response-time
        servers:
          - { address: "localhost:3001", name: a, weight: 3 }
          - { address: "[::1]:3002", backup: true, weight: 0 }
        healthCheck:
          type: http
          path: /ready
          method: head
          expectStatus: 200
          expectBody: ok
          host: example.com
          interval: 5s
          timeout: 500ms
          rise: 1
          fall: 2
          startDown: true
        outlierDetection: { consecutiveFailures: 3, on5xx: true, ejectFor: 10s, maxEjectFor: 1m, maxEjectedPercent: 25 }
        retries: { attempts: 0, on: [timeout, 5xx, timeout] }
        sticky: { type: cookie, mode: learn, cookie: JSESSIONID, ttl: 30d, idle: 1h, store: "redis://127.0.0.1:6379/2", secret: 0123456789abcdef, maxEntries: 10 }
        slowStart: 30s
        timeouts: { connect: 1s, response: 30s, idle: 10s }
        maxIdlePerServer: 0
      - name: api
        algorithm: ip-hash
        servers: [{ address: 10.0.0.5:9000 }]
        healthCheck: { type: tcp }
        outlierDetection: {}
        sticky: { type: source }
  `;
  const expected: Config = {
    admin: { listen: { host: '::1', port: 0, text: '[::1]:0' }, token: 's3cret' },
    shutdownTimeout: 10_000,
    workers: 1,
    workerTimeout: 5000,
    listeners: [
      {
        name: 'front',
        protocol: 'http',
        listen: { host: '0.0.0.0', port: 0, text: '0.0.0.0:0' },
        pool: 'web',
        routes: [
          {
            match: {
              host: '*.example.com',
              pathPrefix: '/api',
              method: 'POST',
              headers: { 'x-canary': '1' },
            },
            pool: 'api',
          },
        ],
        trustedProxies: ['10.0.0.0/8', '192.168.1.1/32', '::1/128'],
        maxHeaderSize: 32_768,
        maxConnections: 1000,
        timeouts: { requestHead: 5000, idle: 120_000 },
      },
      {
        name: 'db',
        protocol: 'tcp',
        listen: { host: '127.0.0.1', port: 5432, text: '127.0.0.1:5432' },
        pool: 'api',
        routes: [],
        trustedProxies: [],
        maxHeaderSize: 16_384,
        timeouts: { requestHead: 10_000, idle: 3_600_000 },
      },
    ],
    pools: [
      {
        name: 'web',
        algorithm: 'least-response-time',
        servers: [
          {
            address: { host: 'localhost', port: 3001, text: 'localhost:3001' },
            name: 'a',
            weight: 3,
            backup: false,
          },
          {
            address: { host: '::1', port: 3002, text: '[::1]:3002' },
            name: '[::1]:3002',
            weight: 0,
            backup: true,
          },
        ],
        healthCheck: {
          type: 'http',
          path: '/ready',
          method: 'HEAD',
          expectStatus: [200, 200],
          expectBody: 'ok',
          host: 'example.com',
          interval: 5000,
          timeout: 500,
          rise: 1,
          fall: 2,
          startDown: true,
        },
        outlierDetection: {
          consecutiveFailures: 3,
          on5xx: true,
          ejectFor: 10_000,
          maxEjectFor: 60_000,
          maxEjectedPercent: 25,
        },
        retries: { attempts: 0, on: ['timeout', '5xx'] },
        sticky: {
          type: 'cookie',
          mode: 'learn',
          cookie: 'JSESSIONID',
          ttl: 2_592_000_000,
          idle: 3_600_000,
          store: 'redis://127.0.0.1:6379/2',
          secret: '0123456789abcdef',
          maxEntries: 10,
        },
        slowStart: 30_000,
        timeouts: { connect: 1000, response: 30_000, idle: 10_000 },
        maxIdlePerServer: 0,
      },
      {
        name: 'api',
        algorithm: 'ip-hash',
        servers: [
          {
            address: { host: '10.0.0.5', port: 9000, text: '10.0.0.5:9000' },
            name: '10.0.0.5:9000',
            weight: 1,
            backup: false,
          },
        ],
        healthCheck: {
          type: 'tcp',
          path: '/health',
          method: 'GET',
          expectStatus: [200, 399],
          interval: 2000,
          timeout: 1000,
          rise: 2,
          fall: 3,
          startDown: false,
        },
        outlierDetection: {
          consecutiveFailures: 5,
          on5xx: false,
          ejectFor: 30_000,
          maxEjectFor: 300_000,
          maxEjectedPercent: 50,
        },
        retries: { attempts: 1, on: ['connect-failure', 'reset'] },
        sticky: {
          type: 'source',
          mode: 'insert',
          cookie: 'fulcrum_srv',
          store: 'memory',
          maxEntries: 100_000,
        },
        slowStart: 0,
        timeouts: { connect: 5000, response: 60_000, idle: 30_000 },
        maxIdlePerServer: 64,
      },
    ],
  };
  assert.deepEqual(parseConfig(text, 'fulcrum.yaml'), expected);
});

test('YAML merge keys share settings', () => {
  const config = parseConfig(
    yaml`
      listeners: [{ name: web, listen: 127.0.0.1:8080, pool: web }]
      pools:
        - name: web
          servers:
            - &base { address: 127.0.0.1:3001, weight: 5 }
            - { <<: *base, address: 127.0.0.1:3002 }
    `,
    'fulcrum.yaml',
  );
  assert.deepEqual(
    config.pools[0]?.servers.map((server) => [server.name, server.weight]),
    [
      ['127.0.0.1:3001', 5],
      ['127.0.0.1:3002', 5],
    ],
  );
});

test('an ejectFor above the default cap raises maxEjectFor instead of failing', () => {
  const config = parseConfig(`${MINIMAL}    outlierDetection: { ejectFor: 10m }\n`, 'fulcrum.yaml');
  assert.equal(config.pools[0]?.outlierDetection?.maxEjectFor, 600_000);
});

// ── error reports ──────────────────────────────────────────────────────────────────────────────

test('a YAML syntax error gives line and column', () => {
  assert.equal(
    errorOf(yaml`
      listeners:
        - name: web
          listen: a: b
    `),
    'fulcrum.yaml:3:13: invalid YAML: Nested mappings are not allowed in compact mappings',
  );
  // An unclosed quote is noticed at the end of the file.
  assert.equal(
    errorOf('listeners:\n  - name: "web\n'),
    'fulcrum.yaml:2:14: invalid YAML: Missing closing "quote',
  );
});

test('a duplicate YAML key is a syntax error', () => {
  assert.equal(
    errorOf(yaml`
      listeners: []
      listeners: []
    `),
    'fulcrum.yaml:2:1: invalid YAML: Map keys must be unique',
  );
});

test('an empty file, a comment-only file and a list are rejected', () => {
  const empty = 'fulcrum.yaml: expected a mapping with "listeners" and "pools", got an empty file';
  assert.equal(errorOf(''), empty);
  assert.equal(errorOf('# just a comment\n'), empty);
  assert.equal(
    errorOf('- web\n'),
    'fulcrum.yaml: expected a mapping with "listeners" and "pools", got a list',
  );
  assert.equal(
    errorOf('hello\n'),
    'fulcrum.yaml: expected a mapping with "listeners" and "pools", got "hello"',
  );
});

test('missing required keys are reported on their mapping', () => {
  assert.equal(
    errorOf('pools: []\n'),
    [
      'fulcrum.yaml: missing required key "listeners"',
      'fulcrum.yaml:1: pools: expected at least one pool, got an empty list',
    ].join('\n'),
  );
  assert.equal(
    errorOf(MINIMAL.replace('- address: 127.0.0.1:3001', '- name: a')),
    'fulcrum.yaml:8: pools[0].servers[0]: missing required key "address"',
  );
});

test('a wrong type says what was expected and what was found', () => {
  assert.equal(
    errorOf(MINIMAL.replace('    pool: web', '    pool: web\n    maxConnections: -3')),
    'fulcrum.yaml:5: listeners[0].maxConnections: expected a positive integer, got -3',
  );
  assert.equal(
    errorOf(`${MINIMAL}        weight: "abc"\n`),
    'fulcrum.yaml:9: pools[0].servers[0].weight: expected an integer from 0 to 256, got "abc"',
  );
  assert.equal(
    errorOf(`${MINIMAL}        backup: yes\n`),
    'fulcrum.yaml:9: pools[0].servers[0].backup: expected true or false, got "yes"',
  );
  assert.equal(
    errorOf(
      MINIMAL.replace('pools:\n', 'pools:\n  web:\n').replace(/ {2}- name: web\n {4}servers:\n.*\n$/, ''),
    ),
    'fulcrum.yaml:6: pools: expected a list, got a mapping',
  );
  assert.equal(
    errorOf(MINIMAL.replace('listen: 127.0.0.1:8080', 'listen:')),
    'fulcrum.yaml:3: listeners[0].listen: expected host:port, got null',
  );
});

test('an unknown key is reported at its own line, with a suggestion when one is close', () => {
  assert.equal(
    errorOf(`${MINIMAL}        wieght: 2\n`),
    'fulcrum.yaml:9: pools[0].servers[0]: unknown key "wieght"; did you mean "weight"?',
  );
  assert.equal(errorOf(`${MINIMAL}colour: blue\n`), 'fulcrum.yaml:9: unknown key "colour"');
  assert.equal(
    errorOf(
      MINIMAL.replace('    pool: web', '    pool: web\n    routes: [{ match: { path: /x }, pool: web }]'),
    ),
    'fulcrum.yaml:5: listeners[0].routes[0].match: unknown key "path"; did you mean "pathPrefix"?',
  );
});

test('a bad enum value lists the allowed values', () => {
  assert.equal(
    errorOf(MINIMAL.replace('  - name: web\n    servers', '  - name: web\n    algorithm: rr\n    servers')),
    'fulcrum.yaml:7: pools[0].algorithm: expected one of round-robin, weighted-round-robin, ip-hash, least-connections, least-response-time, got "rr"',
  );
  assert.equal(
    errorOf(MINIMAL.replace('    pool: web', '    pool: web\n    protocol: HTTP')),
    'fulcrum.yaml:5: listeners[0].protocol: expected one of http, tcp, udp, dns, got "HTTP"; did you mean "http"?',
  );
});

test('bad durations, addresses and ports are rejected', () => {
  assert.equal(
    errorOf(`${MINIMAL}    healthCheck: { type: http, interval: 2 s, timeout: 0 }\n`),
    [
      'fulcrum.yaml:9: pools[0].healthCheck.interval: expected a duration like "500ms", "2s", "1m" or "1h", got "2 s" (write it without spaces)',
      'fulcrum.yaml:9: pools[0].healthCheck.timeout: expected a duration above 0, got 0',
    ].join('\n'),
  );
  assert.equal(
    errorOf(`${MINIMAL}    timeouts: { connect: 30d }\n`),
    'fulcrum.yaml:9: pools[0].timeouts.connect: expected a duration of at most 24d, got "30d"',
  );
  assert.equal(
    errorOf(MINIMAL.replace('address: 127.0.0.1:3001', 'address: localhost')),
    'fulcrum.yaml:8: pools[0].servers[0].address: expected host:port, got "localhost"',
  );
  assert.equal(
    errorOf(MINIMAL.replace('address: 127.0.0.1:3001', 'address: 127.0.0.1:0')),
    'fulcrum.yaml:8: pools[0].servers[0].address: expected host:port with a port from 1 to 65535, got "127.0.0.1:0"',
  );
  assert.equal(
    errorOf(MINIMAL.replace('listen: 127.0.0.1:8080', 'listen: 127.0.0.1:65536')),
    'fulcrum.yaml:3: listeners[0].listen: expected host:port with a port from 0 to 65535, got "127.0.0.1:65536"',
  );
});

test('duplicate listener and pool names are rejected', () => {
  assert.equal(
    errorOf(yaml`
      listeners:
        - { name: web, listen: 127.0.0.1:8080, pool: web }
        - { name: web, listen: 127.0.0.1:8081, pool: web }
      pools:
        - { name: web, servers: [{ address: 127.0.0.1:3001 }] }
        - { name: web, servers: [{ address: 127.0.0.1:3002 }] }
    `),
    [
      'fulcrum.yaml:3: listeners[1].name: expected a unique listener name, got "web" (already used by listeners[0])',
      'fulcrum.yaml:6: pools[1].name: expected a unique pool name, got "web" (already used by pools[0])',
    ].join('\n'),
  );
});

test('two servers of a pool may not share an identity (name, else address)', () => {
  assert.equal(
    errorOf(yaml`
      listeners: [{ name: web, listen: 127.0.0.1:8080, pool: web }]
      pools:
        - name: web
          servers:
            - address: 127.0.0.1:3001
            - address: 127.0.0.1:3001
            - { address: 127.0.0.1:3002, name: b }
            - { address: 127.0.0.1:3003, name: b }
            - { address: 127.0.0.1:3001, name: other }
    `),
    [
      'fulcrum.yaml:6: pools[0].servers[1].address: expected a server not already in the pool, got "127.0.0.1:3001" (already used by pools[0].servers[0]; give each a name to have both)',
      'fulcrum.yaml:8: pools[0].servers[3].name: expected a server not already in the pool, got "b" (already used by pools[0].servers[2])',
    ].join('\n'),
  );
});

test('two listeners may not bind the same address of the same transport', () => {
  assert.equal(
    errorOf(yaml`
      admin: { listen: 127.0.0.1:9000 }
      listeners:
        - { name: a, listen: 127.0.0.1:8080, pool: web }
        - { name: b, listen: 127.0.0.1:8080, pool: web, protocol: tcp }
        - { name: c, listen: 127.0.0.1:8080, pool: web, protocol: udp }
        - { name: d, listen: 0.0.0.0:9000, pool: web }
        - { name: e, listen: 127.0.0.1:0, pool: web }
        - { name: f, listen: 127.0.0.1:0, pool: web }
      pools:
        - { name: web, servers: [{ address: 127.0.0.1:3001 }] }
    `),
    [
      'fulcrum.yaml:4: listeners[1].listen: expected an address no other listener uses, got "127.0.0.1:8080" (already used by listeners[0])',
      'fulcrum.yaml:6: listeners[3].listen: expected an address no other listener uses, got "0.0.0.0:9000" (already used by admin)',
    ].join('\n'),
  );
});

test('an admin address off loopback needs admin.token; on loopback it does not', () => {
  const admin = (lines: string) => yaml`
    admin:
    ${lines}
    listeners: [{ name: web, listen: 127.0.0.1:8080, pool: web }]
    pools: [{ name: web, servers: [{ address: 127.0.0.1:3001 }] }]
  `;
  assert.equal(
    errorOf(admin('  listen: 0.0.0.0:9000')),
    'fulcrum.yaml:2: admin.token: expected a bearer token, required because admin.listen "0.0.0.0:9000" is not a loopback address, got nothing',
  );
  assert.match(errorOf(admin('  listen: "[::]:9000"')), /^fulcrum\.yaml:2: admin\.token: .*"\[::\]:9000"/);
  assert.match(errorOf(admin('  listen: 10.1.2.3:9000')), /admin\.token: expected a bearer token/);
  for (const listen of ['127.0.0.1:9000', '127.8.9.10:9000', '"[::1]:9000"', 'localhost:9000']) {
    assert.deepEqual(parseConfig(admin(`  listen: ${listen}`), 'fulcrum.yaml').admin?.token, undefined);
  }
  const withToken = parseConfig(admin('  listen: 0.0.0.0:9000\n      token: s3cret'), 'fulcrum.yaml');
  assert.equal(withToken.admin?.token, 's3cret');
  assert.ok(isLoopback('::ffff:127.0.0.1') && !isLoopback('0.0.0.0') && !isLoopback('example.com'));
});

test('a listener or route naming no pool lists the pools there are', () => {
  assert.equal(
    errorOf(yaml`
      listeners:
        - name: web
          listen: 127.0.0.1:8080
          pool: webb
          routes:
            - { match: { pathPrefix: / }, pool: api }
            - { match: { pathPrefix: /v2 }, pool: apii }
      pools:
        - { name: web, servers: [{ address: 127.0.0.1:3001 }] }
        - { name: api, servers: [{ address: 127.0.0.1:3002 }] }
    `),
    [
      'fulcrum.yaml:4: listeners[0].pool: expected the name of a pool (web, api), got "webb"',
      'fulcrum.yaml:7: listeners[0].routes[1].pool: expected the name of a pool (web, api), got "apii"',
    ].join('\n'),
  );
});

test('http-only keys on a tcp listener are rejected; its routes match sni only', () => {
  assert.equal(
    errorOf(yaml`
      listeners:
        - name: db
          protocol: tcp
          listen: 127.0.0.1:5432
          pool: web
          maxHeaderSize: 8192
          timeouts: { requestHead: 1s }
          routes:
            - { match: { pathPrefix: / }, pool: web }
            - { match: {}, pool: web }
      pools:
        - { name: web, servers: [{ address: 127.0.0.1:3001 }] }
    `),
    [
      'fulcrum.yaml:6: listeners[0].maxHeaderSize: only allowed when protocol is http, got protocol "tcp"',
      'fulcrum.yaml:7: listeners[0].timeouts.requestHead: only allowed when protocol is http, got protocol "tcp"',
      'fulcrum.yaml:9: listeners[0].routes[0].match.pathPrefix: only allowed when protocol is http, got protocol "tcp" (tcp routes match sni)',
      'fulcrum.yaml:10: listeners[0].routes[1].match: expected sni, got an empty mapping',
    ].join('\n'),
  );
});

test('sni routes on a tcp listener parse; sni and clientHello are refused elsewhere', () => {
  const config = parseConfig(
    yaml`
      listeners:
        - name: sni
          protocol: tcp
          listen: 127.0.0.1:9443
          pool: web
          timeouts: { clientHello: 2s }
          routes:
            - { match: { sni: "*.Internal.Example" }, pool: internal }
      pools:
        - { name: web, servers: [{ address: 127.0.0.1:3001 }] }
        - { name: internal, servers: [{ address: 127.0.0.1:3002 }] }
    `,
    'fulcrum.yaml',
  );
  assert.deepEqual(config.listeners[0]?.routes, [{ match: { sni: '*.internal.example' }, pool: 'internal' }]);
  assert.equal(config.listeners[0]?.timeouts.clientHello, 2000);
  assert.equal(
    errorOf(yaml`
      listeners:
        - name: web
          listen: 127.0.0.1:8080
          pool: web
          timeouts: { clientHello: 2s }
          routes:
            - { match: { sni: a.test, host: a.test }, pool: web }
        - name: dns
          protocol: udp
          listen: 127.0.0.1:5353
          pool: web
          routes:
            - { match: { sni: "a b" }, pool: web }
      pools:
        - { name: web, servers: [{ address: 127.0.0.1:3001 }] }
    `),
    [
      'fulcrum.yaml:5: listeners[0].timeouts.clientHello: only allowed when protocol is tcp, got protocol "http"',
      'fulcrum.yaml:7: listeners[0].routes[0].match.sni: only allowed when protocol is tcp, got protocol "http"',
      'fulcrum.yaml:12: listeners[1].routes: only allowed when protocol is http or tcp, got protocol "udp"',
      'fulcrum.yaml:13: listeners[1].routes[0].match.sni: expected a host name like "api.example.com" or "*.example.com" (no port), got "a b"',
    ].join('\n'),
  );
});

test('a route must match on something', () => {
  assert.equal(
    errorOf(MINIMAL.replace('    pool: web', '    pool: web\n    routes: [{ match: {}, pool: web }]')),
    'fulcrum.yaml:5: listeners[0].routes[0].match: expected at least one of host, pathPrefix, method, headers, got an empty mapping',
  );
  assert.equal(
    errorOf(
      MINIMAL.replace(
        '    pool: web',
        '    pool: web\n    routes: [{ match: { pathPrefix: api, host: "a b" }, pool: web }]',
      ),
    ),
    [
      'fulcrum.yaml:5: listeners[0].routes[0].match.pathPrefix: expected a path starting with "/", got "api"',
      'fulcrum.yaml:5: listeners[0].routes[0].match.host: expected a host name like "api.example.com" or "*.example.com" (no port), got "a b"',
    ].join('\n'),
    'problems on one line come in the order they are written',
  );
});

test('route header names are lower-cased, so the same header twice is an error', () => {
  assert.equal(
    errorOf(
      MINIMAL.replace(
        '    pool: web',
        '    pool: web\n    routes: [{ match: { headers: { X-Canary: 1, x-canary: 2, "bad header": x } }, pool: web }]',
      ),
    ),
    [
      'fulcrum.yaml:5: listeners[0].routes[0].match.headers.x-canary: expected each header once (names ignore case), got "x-canary"',
      'fulcrum.yaml:5: listeners[0].routes[0].match.headers["bad header"]: expected an HTTP header name, got "bad header"',
    ].join('\n'),
  );
});

test('trusted proxies must be IPs or CIDR blocks', () => {
  assert.equal(
    errorOf(
      MINIMAL.replace('    pool: web', '    pool: web\n    trustedProxies: [10.0.0.0/40, 10.0.0.1, nope]'),
    ),
    [
      'fulcrum.yaml:5: listeners[0].trustedProxies[0]: expected an IP address or CIDR block like "10.0.0.0/8" or "fd00::/8", with a prefix length from 0 to 32, got "10.0.0.0/40"',
      'fulcrum.yaml:5: listeners[0].trustedProxies[2]: expected an IP address or CIDR block like "10.0.0.0/8" or "fd00::/8", got "nope"',
    ].join('\n'),
  );
});

test('an empty servers list is rejected', () => {
  assert.equal(
    errorOf(MINIMAL.replace(/servers:\n.*\n$/, 'servers: []\n')),
    'fulcrum.yaml:7: pools[0].servers: expected at least one server, got an empty list',
  );
});

test('type-specific keys of health checks and stickiness are checked', () => {
  assert.equal(
    errorOf(
      `${MINIMAL}    healthCheck: { type: tcp, path: /health }\n    sticky: { type: source, cookie: srv }\n`,
    ),
    [
      'fulcrum.yaml:9: pools[0].healthCheck.path: only allowed when type is http, got type "tcp"',
      'fulcrum.yaml:10: pools[0].sticky.cookie: only allowed when type is cookie, got type "source"',
    ].join('\n'),
  );
  assert.equal(
    errorOf(`${MINIMAL}    sticky: { type: cookie, mode: learn }\n`),
    'fulcrum.yaml:9: pools[0].sticky: missing required key "cookie" (mode learn follows a cookie the application sets, e.g. JSESSIONID)',
  );
  assert.equal(
    errorOf(`${MINIMAL}    sticky: { type: source, store: "redis:/nohost" }\n`),
    'fulcrum.yaml:9: pools[0].sticky.store: expected "memory" or a URL like "redis://127.0.0.1:6379/0", got "redis:/nohost"',
  );
});

test('a tcp listener cannot use a pool with cookie stickiness', () => {
  assert.equal(
    errorOf(
      `${MINIMAL.replace('    pool: web', '    pool: web\n    protocol: tcp')}    sticky: { type: cookie }\n`,
    ),
    'fulcrum.yaml:4: listeners[0].pool: expected a pool without cookie stickiness (a tcp listener cannot set cookies), got "web"',
  );
});

test('secrets are never echoed in messages', () => {
  const message = errorOf(`${MINIMAL}    sticky: { type: cookie, secret: hunter2 }\n`);
  assert.equal(
    message,
    'fulcrum.yaml:9: pools[0].sticky.secret: expected a string of at least 16 characters, got 7 characters',
  );
  assert.ok(!message.includes('hunter2'));
});

test('outlier detection: maxEjectFor below ejectFor is rejected', () => {
  assert.equal(
    errorOf(`${MINIMAL}    outlierDetection: { ejectFor: 1m, maxEjectFor: 30s }\n`),
    'fulcrum.yaml:9: pools[0].outlierDetection.maxEjectFor: expected at least ejectFor (1m), got 30s',
  );
});

test('every problem of a file is reported at once, in file order', () => {
  const text = yaml`
    listeners:
      - name: web
        protocol: htp
        listen: localhost
        pool: web
    pools:
      - name: web
        algorithm: rr
        servers:
          - address: 127.0.0.1:3001
            wieght: 2
          - address: 127.0.0.1:3001
        healthCheck: { type: http, interval: abc }
  `;
  let caught: unknown;
  try {
    parseConfig(text, 'fulcrum.yaml');
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError);
  assert.equal(caught.file, 'fulcrum.yaml');
  assert.deepEqual(caught.problems, [
    {
      path: 'listeners[0].protocol',
      message: 'expected one of http, tcp, udp, dns, got "htp"; did you mean "http"?',
      line: 3,
    },
    { path: 'listeners[0].listen', message: 'expected host:port, got "localhost"', line: 4 },
    {
      path: 'pools[0].algorithm',
      message:
        'expected one of round-robin, weighted-round-robin, ip-hash, least-connections, least-response-time, got "rr"',
      line: 8,
    },
    { path: 'pools[0].servers[0]', message: 'unknown key "wieght"; did you mean "weight"?', line: 11 },
    {
      path: 'pools[0].servers[1].address',
      message:
        'expected a server not already in the pool, got "127.0.0.1:3001" (already used by pools[0].servers[0]; give each a name to have both)',
      line: 12,
    },
    {
      path: 'pools[0].healthCheck.interval',
      message: 'expected a duration like "500ms", "2s", "1m" or "1h", got "abc"',
      line: 13,
    },
  ]);
  assert.equal(caught.message.split('\n').length, 6);
  assert.ok(
    caught.message.startsWith('fulcrum.yaml:3: listeners[0].protocol: expected one of http, tcp, udp'),
  );
});

test('loadConfig reads a file, and a missing file is a ConfigError', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'fulcrum.yaml');
  await writeFile(file, MINIMAL);
  assert.equal((await loadConfig(file)).pools[0]?.name, 'web');

  const missing = join(dir, 'nope.yaml');
  await assert.rejects(loadConfig(missing), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.message, `${missing}: cannot read the file (no such file)`);
    assert.equal(error.file, missing);
    return true;
  });
  await assert.rejects(loadConfig(dir), { message: `${dir}: cannot read the file (it is a directory)` });

  await writeFile(file, 'listeners: [\n');
  await assert.rejects(
    loadConfig(file),
    (error: unknown) => error instanceof ConfigError && error.file === file,
  );
});
