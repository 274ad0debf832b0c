/**
 * Workers are handed the supervisor's validated config over IPC (JSON) and never validate it
 * again: so a config must come out of that channel exactly as it went in, with every kind of
 * listener, pool and policy in it.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { parseConfig } from '../../src/config/load.js';
import { makeCertKit } from '../helpers/certificates.js';

const kit = makeCertKit();
after(() => kit.remove());

test('a config with every kind of listener and pool survives the IPC round trip unchanged', () => {
  const site = kit.leaf('site', ['site.test']);
  const client = kit.leaf('client', ['lb.test'], { client: true });
  const config = parseConfig(
    `
workers: 2
workerTimeout: 3s
admin: { listen: "127.0.0.1:9000" }
listeners:
  - name: web
    listen: "127.0.0.1:8443"
    pool: web
    tls:
      certificates: [ { cert: "${site.cert}", key: "${site.key}" } ]
      alpn: [h2, http/1.1]
    hsts: 31536000
    routes:
      - match: { host: "api.site.test", pathPrefix: "/v1/", method: POST, headers: { x-beta: "1" } }
        pool: api
        rateLimit: { requests: 10, per: 1s }
    protection:
      rateLimit: { requests: 100, per: 10s, burst: 20, key: "header:x-user" }
      connections: { perClient: 50 }
      timeouts: { header: 10s, bodyMinRate: 1KiB/s, idle: 60s }
      limits: { maxBodySize: 10MiB, maxUrlLength: 8KiB, maxHeaders: 100 }
      detect: { enabled: true, blockFor: 10m }
      allow: [10.0.0.0/8]
      deny: [203.0.113.0/24]
  - name: plain
    listen: "127.0.0.1:8080"
    redirectHttps: true
    pool: web
  - name: sni
    protocol: tcp
    listen: "127.0.0.1:9443"
    pool: raw
    routes: [ { match: { sni: "*.internal.test" }, pool: raw2 } ]
  - name: syslog
    protocol: udp
    listen: "127.0.0.1:5514"
    pool: raw2
pools:
  - name: web
    algorithm: least-response-time
    sticky: { type: cookie, mode: insert, cookie: SRV }
    healthCheck: { type: http, path: /health, interval: 2s }
    retries: { attempts: 2 }
    servers:
      - { address: "127.0.0.1:3001", weight: 3 }
      - { address: "127.0.0.1:3002", backup: true }
  - name: api
    algorithm: ip-hash
    tls: { serverName: api.internal, ca: "${kit.ca.cert}", cert: "${client.cert}", key: "${client.key}" }
    servers: [ { address: "127.0.0.1:4001" }, { address: "127.0.0.1:4002" } ]
  - name: raw
    algorithm: least-connections
    sticky: { type: source }
    servers: [ { address: "127.0.0.1:5001" } ]
  - name: raw2
    algorithm: weighted-round-robin
    servers: [ { address: "127.0.0.1:5002", weight: 2 }, { address: "127.0.0.1:5003" } ]
`,
    'rich.yaml',
  );
  assertPlainData(config, 'config');
  const sent = JSON.parse(JSON.stringify({ t: 'config', config }));
  // A key set to undefined is the same as a key left out; nothing else may differ.
  assert.deepStrictEqual(sent.config, withoutUndefined(config));
});

/** Only what JSON carries unchanged: no class instances, Buffers, Maps, dates or non-finite numbers. */
function assertPlainData(value: unknown, path: string): void {
  if (value === null || value === undefined || typeof value === 'string' || typeof value === 'boolean')
    return;
  if (typeof value === 'number') {
    assert.ok(Number.isFinite(value), `${path} is ${value}, which JSON turns into null`);
    return;
  }
  assert.equal(typeof value, 'object', `${path} is a ${typeof value}`);
  const proto = Object.getPrototypeOf(value);
  assert.ok(
    proto === Object.prototype || proto === Array.prototype,
    `${path} is a ${proto?.constructor?.name}`,
  );
  for (const [k, v] of Object.entries(value as object)) assertPlainData(v, `${path}.${k}`);
}

function withoutUndefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutUndefined);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = withoutUndefined(v);
  return out;
}
