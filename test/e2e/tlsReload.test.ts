/**
 * Reloads (SIGHUP) that change how an http listener speaks, on the same address: tls.alpn,
 * http2 and maxConcurrentStreams for the next connections; TLS turned on and off without the
 * socket being closed (no connection refused across the switch). A protocol change on the same
 * address is refused with a hint.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { type ClientHttp2Session, connect as h2connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { parseConfig } from '../../src/config/index.js';
import { request, startBackends, startBalancer } from '../helpers/balancer.js';
import { makeCertKit } from '../helpers/certificates.js';
import { type CliProcess, freePort, spawnCli } from '../helpers/processes.js';

const run = promisify(execFile);
const kit = makeCertKit();
const site = kit.leaf('site', ['site.test']);
const caPem = readFileSync(kit.ca.cert);
after(() => kit.remove());

/** `curl` to the balancer: "status version" ("200 2", "200 1.1"), or the error's text. */
async function curl(port: number, scheme: 'http' | 'https', flag: string, maxTime = 10): Promise<string> {
  try {
    const { stdout } = await run(
      'curl',
      [
        '-sS',
        flag,
        '--cacert',
        kit.ca.cert,
        '--resolve',
        `site.test:${port}:127.0.0.1`,
        '-o',
        '/dev/null',
        '-w',
        '%{http_code} %{http_version}',
        '--max-time',
        String(maxTime),
        `${scheme}://site.test:${port}/whoami`,
      ],
      { timeout: 15_000 },
    );
    return stdout;
  } catch (err) {
    return `failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`;
  }
}

/** Writes the config and sends SIGHUP; resolves once the `n`th reload is logged. */
async function reload(proc: CliProcess, file: string, yaml: string, n: number): Promise<void> {
  writeFileSync(file, yaml);
  proc.signal('SIGHUP');
  // The runtime's line once the reload is applied ("INFO  reloaded FILE: what changed"), not the
  // admin follower's ("admin: reloaded FILE and STATE").
  await proc.waitFor(new RegExp(`(INFO {2}reloaded \\S+: [^\\n]*\\n[\\s\\S]*){${n}}`), { timeoutMs: 20_000 });
}

/** An HTTP/2 session over TLS, once its SETTINGS have come. */
async function h2session(port: number): Promise<ClientHttp2Session> {
  const s = h2connect(`https://127.0.0.1:${port}`, { ca: caPem, servername: 'site.test' });
  s.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    s.once('remoteSettings', () => resolve());
    s.once('error', reject);
  });
  return s;
}

function h2status(s: ClientHttp2Session): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = s.request({ ':path': '/whoami' });
    let status = 0;
    stream.on('response', (h) => {
      status = Number(h[':status']);
    });
    stream.resume();
    stream.on('end', () => resolve(status));
    stream.on('error', reject);
  });
}

test('a reload applies tls.alpn, http2 and maxConcurrentStreams to new connections (curl --http2 before and after SIGHUP)', async () => {
  const backends = await startBackends(1);
  const tlsPort = await freePort();
  const plainPort = await freePort();
  const file = join(kit.dir, 'alpn.yaml');
  const yaml = (alpn: string, streams: number, h2c: boolean) => `listeners:
  - name: web
    listen: "127.0.0.1:${tlsPort}"
    pool: p
    maxConcurrentStreams: ${streams}
    tls: { certificates: [ { cert: "${site.cert}", key: "${site.key}" } ], alpn: [${alpn}] }
  - name: plain
    listen: "127.0.0.1:${plainPort}"
    pool: p
    http2: ${h2c}
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`;
  writeFileSync(file, yaml('http/1.1', 100, false));
  const proc = spawnCli(['start', '-c', file]);
  const sessions: ClientHttp2Session[] = [];
  try {
    await proc.waitForPort(tlsPort);
    await proc.waitForPort(plainPort);
    assert.equal(await curl(tlsPort, 'https', '--http2'), '200 1.1');
    assert.match(await curl(plainPort, 'http', '--http2-prior-knowledge'), /^failed|^000/);

    await reload(proc, file, yaml('h2, http/1.1', 7, true), 1);
    assert.equal(await curl(tlsPort, 'https', '--http2'), '200 2');
    assert.equal(await curl(plainPort, 'http', '--http2-prior-knowledge'), '200 2');
    const first = await h2session(tlsPort);
    sessions.push(first);
    assert.equal(first.remoteSettings.maxConcurrentStreams, 7);

    await reload(proc, file, yaml('h2, http/1.1', 3, true), 2);
    const second = await h2session(tlsPort);
    sessions.push(second);
    assert.equal(second.remoteSettings.maxConcurrentStreams, 3);
    // The session opened before keeps its settings.
    assert.equal(first.remoteSettings.maxConcurrentStreams, 7);
    assert.equal(await h2status(first), 200);

    await reload(proc, file, yaml('http/1.1', 3, false), 3);
    assert.equal(await curl(tlsPort, 'https', '--http2'), '200 1.1');
    assert.match(await curl(plainPort, 'http', '--http2-prior-knowledge'), /^failed|^000/);
    // HTTP/2 connections open before the reload are still served.
    assert.equal(await h2status(first), 200);
    assert.equal(await h2status(second), 200);
  } finally {
    for (const s of sessions) s.destroy();
    await proc.stop();
    for (const b of backends) await b.close();
  }
});

test('a reload turns TLS on and off on the same address: the socket stays bound (no connection refused), open connections keep their protocol', async (t) => {
  const backends = await startBackends(1);
  const port = await freePort();
  const file = join(kit.dir, 'switch.yaml');
  const yaml = (tls: boolean) => `listeners:
  - name: web
    listen: "127.0.0.1:${port}"
    pool: p
${tls ? `    tls: { certificates: [ { cert: "${site.cert}", key: "${site.key}" } ] }\n` : ''}pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`;
  writeFileSync(file, yaml(false));
  const proc = spawnCli(['start', '-c', file]);
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
  let stop = false;
  let connected = 0;
  const refused = new Set<string>();
  // TCP connects in a loop across the switches (one every 10 ms at most): each must be accepted.
  const connects = async () => {
    while (!stop) {
      await new Promise((r) => setTimeout(r, 10));
      await new Promise<void>((resolve) => {
        const socket = netConnect(port, '127.0.0.1');
        socket.on('connect', () => {
          connected++;
          socket.destroy();
          resolve();
        });
        socket.on('error', (err) => {
          refused.add(err.message);
          resolve();
        });
      });
    }
  };
  /** A request on the plaintext keep-alive connection: status, reused, X-Forwarded-Proto seen. */
  const plainGet = () =>
    new Promise<{ status: number; reused: boolean; proto: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/echo', agent: keepAlive }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const proto = JSON.parse(Buffer.concat(chunks).toString()).headers['x-forwarded-proto'];
          resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket, proto });
        });
      });
      req.on('error', reject);
      req.end();
    });
  /** X-Forwarded-Proto as the server sees it for a new HTTPS connection. */
  const httpsProto = () =>
    new Promise<string>((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port, path: '/echo', servername: 'site.test', ca: caPem, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve(JSON.parse(Buffer.concat(chunks).toString()).headers['x-forwarded-proto']),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });
  let loop: Promise<void> | undefined;
  try {
    await proc.waitForPort(port);
    assert.equal((await plainGet()).status, 200);
    assert.equal(await curl(port, 'http', '--http1.1'), '200 1.1');
    loop = connects();

    await reload(proc, file, yaml(true), 1);
    assert.equal(await curl(port, 'https', '--http2'), '200 2');
    assert.equal(await curl(port, 'https', '--http1.1'), '200 1.1');
    assert.match(await curl(port, 'http', '--http1.1'), /^failed|^000/);
    // The plaintext keep-alive connection opened before the switch is still served, as http.
    const kept = await plainGet();
    assert.deepEqual(kept, { status: 200, reused: true, proto: 'http' });
    assert.equal(await httpsProto(), 'https');

    await reload(proc, file, yaml(false), 2);
    assert.equal(await curl(port, 'http', '--http1.1'), '200 1.1');
    // A ClientHello to the plaintext listener is no request head: it waits for one (requestHead
    // timeout, 10 s); 2 s are enough to see that no TLS answers.
    assert.match(await curl(port, 'https', '--http1.1', 2), /^failed|^000/);
    stop = true;
    await loop;
    assert.deepEqual([...refused], []);
    assert.ok(connected > 10, `only ${connected} connects`);
    t.diagnostic(`${connected} TCP connects across two switches, ${refused.size} refused`);
    assert.doesNotMatch(proc.output, /already in use/);
  } finally {
    stop = true;
    await loop;
    keepAlive.destroy();
    await proc.stop();
    for (const b of backends) await b.close();
  }
});

test('a protocol change on the same address is refused with a hint, and the running listener goes on', async () => {
  const backends = await startBackends(1);
  const yaml = (port: number, protocol: string) => `listeners:
  - { name: web, protocol: ${protocol}, listen: "127.0.0.1:${port}", pool: p }
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`;
  const lb = await startBalancer(yaml(0, 'http'));
  try {
    const refused = await lb.runtime
      .apply(parseConfig(yaml(lb.port, 'tcp'), 'test.yaml'))
      .catch((e: Error) => e);
    assert.ok(refused instanceof Error);
    assert.match(
      refused.message,
      /listeners\[0\]\.listen: address 127\.0\.0\.1:\d+ is already in use \(the running listener web holds it: a protocol change on the same address needs another address or a restart\)/,
    );
    assert.equal(lb.runtime.listeners.get('web')!.protocol, 'http');
    assert.equal((await request(lb.port, { path: '/whoami' })).status, 200);
  } finally {
    await lb.stop();
    for (const b of backends) await b.close();
  }
});
