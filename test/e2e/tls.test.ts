import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { type AddressInfo, connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { startBackends, startBalancer } from '../helpers/balancer.js';
import { type CertFiles, makeCertKit } from '../helpers/certificates.js';
import { freePort, spawnCli } from '../helpers/processes.js';

const run = promisify(execFile);
const kit = makeCertKit();
const site = kit.leaf('site', ['site.test', 'www.site.test']);
const api = kit.leaf('api', ['api.test', '*.api.test']);
const client = kit.leaf('client', ['client.test'], { client: true });
const caPem = readFileSync(kit.ca.cert);
after(() => kit.remove());

function tlsListener(name: string, extra = '', certs: CertFiles[] = [site, api]): string {
  return `  - name: ${name}
    listen: "127.0.0.1:0"
    pool: p
    tls:
      certificates: [${certs.map((c) => `{ cert: "${c.cert}", key: "${c.key}" }`).join(', ')}]
${extra}`;
}

interface HttpsReply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  cert: X509Certificate | null;
  reused: boolean;
}

function get(
  port: number,
  opts: {
    servername?: string;
    path?: string;
    agent?: Agent | false;
    cert?: CertFiles;
    headers?: Record<string, string>;
  } = {},
): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path: opts.path ?? '/',
        servername: opts.servername ?? 'site.test',
        headers: { host: opts.servername ?? 'site.test', ...opts.headers },
        ca: caPem,
        agent: opts.agent ?? false,
        cert: opts.cert ? readFileSync(opts.cert.cert) : undefined,
        key: opts.cert ? readFileSync(opts.cert.key) : undefined,
        timeout: 5000,
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const raw = socket.getPeerX509Certificate?.();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            cert: raw ?? null,
            reused: socket.isSessionReused(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

function subjectCn(cert: X509Certificate | null): string {
  return /CN=([^\n]+)/.exec(cert?.subject ?? '')?.[1] ?? '';
}

test('HTTPS with curl over HTTP/1.1 and HTTP/2: X-Forwarded-Proto https, HSTS, balanced over the pool', async () => {
  const backends = await startBackends(2);
  const lb = await startBalancer(`
listeners:
${tlsListener('web', '    hsts: 31536000')}
pools: [{ name: p, servers: [${backends.map((b) => `{ address: "127.0.0.1:${b.port}", name: ${b.id} }`).join(', ')}] }]
`);
  try {
    const served = new Set<string>();
    for (const version of ['--http1.1', '--http2', '--http2', '--http1.1']) {
      const { stdout } = await run(
        'curl',
        [
          '-sS',
          version,
          '--cacert',
          kit.ca.cert,
          '--resolve',
          `site.test:${lb.port}:127.0.0.1`,
          '-D',
          '-',
          '-w',
          '\nversion=%{http_version}\n',
          `https://site.test:${lb.port}/echo?x=1`,
        ],
        { timeout: 10_000 },
      );
      const wanted = version === '--http2' ? '2' : '1.1';
      assert.match(stdout, new RegExp(`version=${wanted.replace('.', '\\.')}\\n`));
      assert.match(stdout, /strict-transport-security: max-age=31536000/i);
      const servedBy = /x-served-by: (\w+)/i.exec(stdout)?.[1];
      assert.ok(servedBy);
      served.add(servedBy);
      const body = JSON.parse(stdout.slice(stdout.indexOf('{'), stdout.lastIndexOf('}') + 1));
      assert.equal(body.headers['x-forwarded-proto'], 'https');
      assert.equal(body.path, '/echo?x=1');
      assert.equal(body.headers.host, `site.test:${lb.port}`);
    }
    assert.deepEqual([...served].sort(), ['a', 'b']);
  } finally {
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('alpn [http/1.1] turns HTTP/2 off: curl --http2 gets HTTP/1.1', async () => {
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners:
${tlsListener('web', '      alpn: [http/1.1]')}
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`);
  try {
    const { stdout } = await run(
      'curl',
      [
        '-sS',
        '--http2',
        '--cacert',
        kit.ca.cert,
        '--resolve',
        `site.test:${lb.port}:127.0.0.1`,
        '-o',
        '/dev/null',
        '-w',
        '%{http_code} %{http_version}',
        `https://site.test:${lb.port}/whoami`,
      ],
      { timeout: 10_000 },
    );
    assert.equal(stdout, '200 1.1');
  } finally {
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('SNI picks the certificate by its names (openssl s_client); the first is the default', async () => {
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners:
${tlsListener('web')}
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`);
  try {
    const subjectFor = async (servername: string | null) => {
      const args = ['s_client', '-connect', `127.0.0.1:${lb.port}`, '-CAfile', kit.ca.cert];
      if (servername !== null) args.push('-servername', servername);
      else args.push('-noservername');
      const child = execFile('openssl', args, { timeout: 10_000 });
      child.stdin?.end('');
      let out = '';
      child.stdout?.on('data', (d) => {
        out += d;
      });
      await new Promise((r) => child.on('close', r));
      assert.match(out, /Verify return code: 0 \(ok\)|Verification: OK/);
      return /subject=.*CN ?= ?([^\s,/]+)/.exec(out)?.[1];
    };
    assert.equal(await subjectFor('site.test'), 'site.test');
    assert.equal(await subjectFor('www.site.test'), 'site.test');
    assert.equal(await subjectFor('api.test'), 'api.test');
    assert.equal(await subjectFor('x.api.test'), 'api.test');
    assert.equal(await subjectFor('other.test'), 'site.test');
    assert.equal(await subjectFor(null), 'site.test');
  } finally {
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('session resumption: a second connection resumes the first one’s session (ticket)', async () => {
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners:
${tlsListener('web')}
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`);
  try {
    const agent = new Agent({ keepAlive: false, maxCachedSessions: 10 });
    const first = await get(lb.port, { agent });
    assert.equal(first.status, 200);
    assert.equal(first.reused, false);
    const second = await get(lb.port, { agent });
    assert.equal(second.reused, true);
    agent.destroy();
  } finally {
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('redirectHttps: 308 to https:// on the TLS listener’s port, same host and target', async () => {
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners:
  - { name: plain, listen: "127.0.0.1:0", pool: p, redirectHttps: true }
${tlsListener('web')}
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`);
  try {
    const tlsPort = lb.runtime.address('web').port;
    const { stdout } = await run(
      'curl',
      [
        '-sS',
        '-D',
        '-',
        '-o',
        '/dev/null',
        '-H',
        'host: site.test:8080',
        `http://127.0.0.1:${lb.port}/a/b?c=d`,
      ],
      { timeout: 10_000 },
    );
    assert.match(stdout, /^HTTP\/1\.1 308 /);
    assert.match(stdout, new RegExp(`location: https://site\\.test:${tlsPort}/a/b\\?c=d`, 'i'));
    // Following it lands on the TLS listener.
    const followed = await run(
      'curl',
      [
        '-sS',
        '-L',
        '--cacert',
        kit.ca.cert,
        '--resolve',
        `site.test:${tlsPort}:127.0.0.1`,
        '--resolve',
        `site.test:${lb.port}:127.0.0.1`,
        '-w',
        '\n%{http_code} %{url_effective}',
        `http://site.test:${lb.port}/whoami`,
      ],
      { timeout: 10_000 },
    );
    assert.match(followed.stdout, new RegExp(`200 https://site\\.test:${tlsPort}/whoami$`));
  } finally {
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('mTLS: a client without a certificate is refused; one signed by clientCa is served', async () => {
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners:
${tlsListener('web', `      clientCa: "${kit.ca.cert}"`)}
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`);
  try {
    await assert.rejects(get(lb.port));
    const ok = await get(lb.port, { cert: client, path: '/whoami' });
    assert.equal(ok.status, 200);
    assert.deepEqual(JSON.parse(ok.body), { id: 'a' });
  } finally {
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('sticky cookie gets Secure on a TLS listener', async () => {
  const backends = await startBackends(2);
  const lb = await startBalancer(`
listeners:
${tlsListener('web')}
pools:
  - name: p
    sticky: { type: cookie, cookie: srv }
    servers: [${backends.map((b) => `{ address: "127.0.0.1:${b.port}", name: ${b.id} }`).join(', ')}]
`);
  try {
    const reply = await get(lb.port);
    const cookie = String(reply.headers['set-cookie']);
    assert.match(cookie, /^srv=/);
    assert.match(cookie, /; Secure/);
  } finally {
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('WebSocket over TLS (wss): the upgrade is tunnelled both ways', async () => {
  // An upgrade-echo server: answers 101 and echoes every byte back.
  const server = createServer((_req, res) => res.end('no upgrade'));
  server.on('upgrade', (_req, socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
    socket.on('data', (d: Buffer) => socket.write(d));
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const lb = await startBalancer(`
listeners:
${tlsListener('web', '', [site])}
pools: [{ name: p, servers: [{ address: "127.0.0.1:${(server.address() as AddressInfo).port}" }] }]
`);
  try {
    const socket = tlsConnect({ host: '127.0.0.1', port: lb.port, servername: 'site.test', ca: caPem });
    await new Promise<void>((r, j) => {
      socket.once('secureConnect', () => r());
      socket.once('error', j);
    });
    assert.equal(socket.alpnProtocol, false);
    socket.write('GET /ws HTTP/1.1\r\nhost: site.test\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n') && !got.includes('ping-pong')) socket.write('ping-pong');
    });
    const deadline = Date.now() + 5000;
    while (!got.includes('ping-pong') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.match(got, /^HTTP\/1\.1 101 /);
    assert.ok(got.endsWith('ping-pong'));
    socket.destroy();
  } finally {
    await lb.stop();
    server.closeAllConnections();
    server.close();
  }
});

test('certificate swap under load (SIGHUP, new files): 0 failed requests, new handshakes get the new certificate', async (t) => {
  const backends = await startBackends(2);
  const port = await freePort();
  const cert = join(kit.dir, 'live.pem');
  const key = join(kit.dir, 'live.key');
  const old = kit.leaf('old-live', ['site.test']);
  const fresh = kit.leaf('new-live', ['site.test']);
  copyFileSync(old.cert, cert);
  copyFileSync(old.key, key);
  const file = join(kit.dir, 'swap.yaml');
  writeFileSync(
    file,
    `listeners:
  - name: web
    listen: "127.0.0.1:${port}"
    pool: p
    tls: { certificates: [ { cert: live.pem, key: live.key } ] }
pools: [{ name: p, servers: [${backends.map((b) => `{ address: "127.0.0.1:${b.port}", name: ${b.id} }`).join(', ')}] }]
`,
  );
  const proc = spawnCli(['start', '-c', file]);
  try {
    await proc.waitForPort(port);
    const serialOf = (f: string) => new X509Certificate(readFileSync(f)).serialNumber;
    assert.equal(subjectCn((await get(port)).cert), 'site.test');
    assert.equal((await get(port)).cert?.serialNumber, serialOf(old.cert));
    let ok = 0;
    let failed = 0;
    const errors = new Set<string>();
    let stop = false;
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 4 });
    const loop = async (agent: Agent | false) => {
      while (!stop) {
        try {
          const r = await get(port, { agent, path: '/whoami' });
          if (r.status === 200) ok++;
          else failed++;
        } catch (err) {
          failed++;
          errors.add((err as Error).message);
        }
      }
    };
    const loops = [loop(false), loop(false), loop(false), loop(keepAlive), loop(keepAlive)];
    // Requests before and after the swap, counted rather than timed (a loaded machine is slow).
    const served = async (n: number) => {
      const limit = Date.now() + 30_000;
      while (ok < n && Date.now() < limit) await new Promise((r) => setTimeout(r, 20));
    };
    await served(30);
    // New files in place atomically (a reload never sees a certificate without its key).
    copyFileSync(fresh.cert, `${cert}.tmp`);
    copyFileSync(fresh.key, `${key}.tmp`);
    renameSync(`${key}.tmp`, key);
    renameSync(`${cert}.tmp`, cert);
    proc.signal('SIGHUP');
    await proc.waitFor('certificates reloaded');
    await served(ok + 30);
    stop = true;
    await Promise.all(loops);
    keepAlive.destroy();
    assert.equal(failed, 0, [...errors].join('; '));
    assert.ok(ok > 50, `only ${ok} requests`);
    t.diagnostic(`${ok} requests, ${failed} failed, across the swap`);
    assert.equal((await get(port)).cert?.serialNumber, serialOf(fresh.cert));
  } finally {
    await proc.stop();
    for (const b of backends) await b.close();
  }
});

test('a reload with a broken certificate keeps the running config (and the running certificate)', async () => {
  const backends = await startBackends(1);
  const port = await freePort();
  const live = kit.leaf('keep', ['site.test']);
  const other = kit.leaf('keep-other', ['site.test']);
  const file = join(kit.dir, 'keep.yaml');
  const yaml = (keyFile: string) => `listeners:
  - name: web
    listen: "127.0.0.1:${port}"
    pool: p
    tls: { certificates: [ { cert: "${live.cert}", key: "${keyFile}" } ] }
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`;
  writeFileSync(file, yaml(live.key));
  const proc = spawnCli(['start', '-c', file]);
  try {
    await proc.waitForPort(port);
    writeFileSync(file, yaml(other.key));
    proc.signal('SIGHUP');
    await proc.waitFor(/certificates\[0\]\.key: .*keep-other\.key is not the private key/);
    const reply = await get(port, { path: '/whoami' });
    assert.equal(reply.status, 200);
    assert.equal(reply.cert?.serialNumber, new X509Certificate(readFileSync(live.cert)).serialNumber);
  } finally {
    await proc.stop();
    for (const b of backends) await b.close();
  }
});

test('a client that closes before its TLS handshake is closed at once, not kept for the handshake timeout', async () => {
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners:
${tlsListener('web', '', [site])}
    timeouts: { requestHead: 60s }
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`);
  const probe = netConnect(lb.port, '127.0.0.1');
  probe.on('error', () => {});
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((r) => probe.on('connect', () => r()));
    const closed = new Promise<string>((r) => probe.on('close', () => r('closed')));
    probe.end();
    // The handshake timeout (requestHead) is 60 s: well before it, the balancer has closed.
    const late = new Promise<string>((r) => {
      timer = setTimeout(() => r('still open after 20 s'), 20_000);
    });
    assert.equal(await Promise.race([closed, late]), 'closed');
  } finally {
    clearTimeout(timer);
    probe.destroy();
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('a TLS client that sends its request and shuts down its side still gets the whole response', async () => {
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners:
${tlsListener('web', '', [site])}
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`);
  try {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = tlsConnect(
        {
          // Half-open as the connection it wraps: the response is read after our end().
          socket: netConnect({ host: '127.0.0.1', port: lb.port, allowHalfOpen: true }),
          servername: 'site.test',
          ca: caPem,
          ALPNProtocols: ['http/1.1'],
        },
        () => socket.end('GET /whoami HTTP/1.1\r\nhost: site.test\r\nconnection: close\r\n\r\n'),
      );
      let got = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => {
        got += d;
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(got));
    });
    assert.match(answer, /^HTTP\/1\.1 200 /);
  } finally {
    await lb.stop();
    for (const b of backends) await b.close();
  }
});

test('shutdown: a client stuck before its TLS handshake is cut after the idle grace, not kept for the handshake timeout', async () => {
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners:
${tlsListener('web', '', [site])}
    timeouts: { requestHead: 60s }
pools: [{ name: p, servers: [{ address: "127.0.0.1:${backends[0]!.port}" }] }]
`);
  const silent = netConnect(lb.port, '127.0.0.1');
  silent.on('error', () => {});
  const closed = new Promise<void>((r) => silent.on('close', () => r()));
  try {
    await new Promise<void>((r) => silent.on('connect', () => r()));
    assert.equal((await get(lb.port, { path: '/whoami' })).status, 200);
    const started = Date.now();
    await lb.runtime.shutdown(60_000);
    await closed;
    // The grace is 1 s; the handshake timeout (60 s) and the shutdown timeout (60 s) are far.
    assert.ok(Date.now() - started < 30_000, `shutdown took ${Date.now() - started} ms`);
  } finally {
    silent.destroy();
    for (const b of backends) await b.close();
  }
});
