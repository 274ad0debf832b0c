import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server as NetServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/index.js';
import type { Affinity } from '../../src/core/affinity.js';
import type { ExchangeRecord } from '../../src/core/observer.js';
import type { Pool } from '../../src/core/pool.js';
import { encodeProxyV2 } from '../../src/proxy/proxyProtocol.js';
import type { TcpListener } from '../../src/proxy/tcp/tcpListener.js';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';

// ---------------------------------------------------------------------------------------------
// Helpers: small TCP servers, clients, and a balancer built from YAML.

interface Backend {
  id: string;
  port: number;
  /** Connections open right now. */
  readonly sockets: Set<Socket>;
  /** The first bytes each connection received (up to 256), in connection order. */
  readonly firsts: Buffer[];
  /** Accepted connections in total. */
  accepted: number;
  close(): Promise<void>;
}

interface BackendOptions {
  /** Write `${id}\n` first (after `greetDelayMs`), then echo. */
  greet?: boolean;
  greetDelayMs?: number;
  host?: string;
  /** Replace the echo: called with each connection. */
  handler?: (socket: Socket) => void;
}

/** An echo server (allowHalfOpen: it ends its side when the client has ended and all is echoed). */
async function backend(id: string, opts: BackendOptions = {}): Promise<Backend> {
  const sockets = new Set<Socket>();
  const firsts: Buffer[] = [];
  const b: Backend = {
    id,
    port: 0,
    sockets,
    firsts,
    accepted: 0,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server: NetServer = createServer({ allowHalfOpen: true }, (socket) => {
    b.accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const index = firsts.length;
    firsts.push(Buffer.alloc(0));
    socket.on('data', (c: Buffer) => {
      const f = firsts[index]!;
      if (f.length < 256) firsts[index] = Buffer.concat([f, c]).subarray(0, 256);
    });
    if (opts.handler) {
      opts.handler(socket);
      return;
    }
    if (opts.greet) {
      const greet = () => socket.destroyed || socket.write(`${id}\n`);
      if (opts.greetDelayMs) setTimeout(greet, opts.greetDelayMs);
      else greet();
    }
    socket.pipe(socket);
  });
  server.listen(0, opts.host ?? '127.0.0.1');
  await once(server, 'listening');
  b.port = (server.address() as { port: number }).port;
  return b;
}

function servers(list: Array<{ id: string; port: number }>, extra: (i: number) => string = () => ''): string {
  return list
    .map((b, i) => `      - { address: "127.0.0.1:${b.port}", name: ${b.id}${extra(i)} }`)
    .join('\n');
}

async function balancer(
  list: Array<{ id: string; port: number }>,
  opts: {
    algorithm?: string;
    listener?: string;
    pool?: string;
    extra?: (i: number) => string;
    listen?: string;
  } = {},
): Promise<TestBalancer> {
  return startBalancer(`
listeners:
  - { name: tcp, protocol: tcp, listen: "${opts.listen ?? '127.0.0.1:0'}", pool: p${opts.listener ? `, ${opts.listener}` : ''} }
pools:
  - name: p
    algorithm: ${opts.algorithm ?? 'round-robin'}
${opts.pool ?? ''}
    servers:
${servers(list, opts.extra)}
`);
}

function tcpListener(lb: TestBalancer): TcpListener {
  return lb.runtime.listeners.get('tcp') as unknown as TcpListener;
}

function poolOf(lb: TestBalancer): Pool {
  return lb.runtime.pools.get('p')!;
}

/** Connects; resolves with the socket once connected. */
async function open(port: number, opts: { host?: string; localAddress?: string } = {}): Promise<Socket> {
  const socket = connect({
    host: opts.host ?? '127.0.0.1',
    port,
    localAddress: opts.localAddress,
    allowHalfOpen: true,
  });
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

/** Reads one line (the greeting of a `greet` backend); rejects on close or after `ms`. */
function readLine(socket: Socket, ms = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => done(new Error('no line in time')), ms);
    const onData = (c: Buffer) => {
      buf += c.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(undefined, buf.slice(0, nl));
    };
    const onClose = () => done(new Error(`closed before a line (got ${JSON.stringify(buf)})`));
    function done(err?: Error, line?: string) {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (err) reject(err);
      else resolve(line!);
    }
    socket.on('data', onData);
    socket.on('close', onClose);
  });
}

/** Reads until `text` has arrived; resolves with everything read. */
function readUntil(socket: Socket, text: string, ms = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(
      () => reject(new Error(`no ${JSON.stringify(text)} in time (got ${JSON.stringify(buf)})`)),
      ms,
    );
    const onData = (c: Buffer) => {
      buf += c.toString('latin1');
      if (buf.includes(text)) {
        clearTimeout(timer);
        socket.off('data', onData);
        resolve(buf);
      }
    };
    socket.on('data', onData);
  });
}

/** The id of the server a new connection reaches (greeting backends). */
async function whoami(port: number, localAddress?: string): Promise<string> {
  const s = await open(port, localAddress ? { localAddress } : {});
  try {
    return await readLine(s);
  } finally {
    s.destroy();
  }
}

/**
 * Resolves true when the balancer has closed the connection (its end arrived, or the socket
 * closed), false after `ms`. Test clients are half-open capable, so an end is what they see.
 */
function closedWithin(socket: Socket, ms: number): Promise<boolean> {
  if (socket.destroyed || socket.readableEnded) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (value: boolean) => {
      clearTimeout(timer);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      resolve(value);
    };
    const onEnd = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.resume();
  });
}

/** Resolves when the socket receives the end of the other side (true) or after `ms` (false). */
function endedWithin(socket: Socket, ms: number): Promise<boolean> {
  if (socket.readableEnded) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once('end', () => {
      clearTimeout(timer);
      resolve(true);
    });
    socket.resume();
  });
}

async function until(cond: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function tally(ids: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of ids) out[id] = (out[id] ?? 0) + 1;
  return out;
}

async function closeAll(lb: TestBalancer | undefined, backends: Backend[]): Promise<void> {
  await lb?.stop();
  await Promise.all(backends.map((b) => b.close()));
}

// ---------------------------------------------------------------------------------------------
// Streams

test('200 MiB each way through the balancer arrive with identical checksums (half-close passed on)', async () => {
  const echo = await backend('echo');
  const lb = await balancer([echo]);
  try {
    const socket = await open(lb.port);
    const total = 200 * 1024 * 1024;
    const base = randomBytes(1024 * 1024);
    const sent = createHash('sha256');
    const got = createHash('sha256');
    let received = 0;
    socket.on('data', (c: Buffer) => {
      got.update(c);
      received += c.length;
    });
    const ended = once(socket, 'end');
    for (let i = 0; i < total / base.length; i++) {
      const chunk = Buffer.from(base);
      chunk.writeUInt32BE(i, 0); // every MiB differs
      sent.update(chunk);
      if (!socket.write(chunk)) await once(socket, 'drain');
    }
    socket.end(); // half-close: the echo server ends its side once it has echoed everything
    await ended;
    assert.equal(received, total);
    assert.equal(got.digest('hex'), sent.digest('hex'));
    assert.ok(await closedWithin(socket, 2000), 'the connection closes when both sides have ended');
    await until(() => tcpListener(lb).connectionCount === 0, 2000, 'the session to end');
    assert.equal(poolOf(lb).servers[0]!.active, 0, 'the lease is released');
  } finally {
    await closeAll(lb, [echo]);
  }
});

test('a slow reader: the balancer buffers a bounded amount while the server has much more to send', async (t) => {
  const total = 48 * 1024 * 1024;
  let written = 0;
  const chunk = randomBytes(64 * 1024);
  const source = await backend('source', {
    handler: (socket) => {
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          if (!socket.write(chunk)) {
            socket.once('drain', pump);
            return;
          }
        }
        socket.end();
      };
      pump();
    },
  });
  const lb = await balancer([source]);
  try {
    const socket = await open(lb.port);
    let received = 0;
    let maxBuffered = 0;
    let maxAhead = 0;
    const listener = tcpListener(lb);
    const sampler = setInterval(() => {
      for (const s of listener.sessions) maxBuffered = Math.max(maxBuffered, s.bufferedBytes);
    }, 5);
    // Read slowly for a while: one chunk, then a pause.
    socket.on('data', (c: Buffer) => {
      received += c.length;
      maxAhead = Math.max(maxAhead, written - received);
      if (received < 16 * 1024 * 1024) {
        socket.pause();
        setTimeout(() => socket.resume(), 2);
      }
    });
    await once(socket, 'end');
    clearInterval(sampler);
    socket.destroy();
    assert.equal(received, total);
    t.diagnostic(
      `balancer held at most ${maxBuffered} bytes; the server was at most ${maxAhead} bytes ahead`,
    );
    // Node's socket buffers (16 KiB high-water marks) plus one read chunk each way, at most.
    assert.ok(maxBuffered <= 512 * 1024, `the balancer held ${maxBuffered} bytes`);
    // What the server got ahead of the reader sits in kernel socket buffers, not in the balancer.
    assert.ok(maxAhead < total / 2, `the server got ${maxAhead} bytes ahead`);
  } finally {
    await closeAll(lb, [source]);
  }
});

test('a slow server reading a fast client: bounded in the balancer too', async (t) => {
  const total = 48 * 1024 * 1024;
  let received = 0;
  let ended: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    ended = resolve;
  });
  const sink = await backend('sink', {
    handler: (socket) => {
      socket.on('data', (c: Buffer) => {
        received += c.length;
        if (received < 16 * 1024 * 1024) {
          socket.pause();
          setTimeout(() => socket.resume(), 2);
        }
      });
      socket.on('end', () => {
        socket.end();
        ended();
      });
    },
  });
  const lb = await balancer([sink]);
  try {
    const socket = await open(lb.port);
    let maxBuffered = 0;
    const listener = tcpListener(lb);
    const sampler = setInterval(() => {
      for (const s of listener.sessions) maxBuffered = Math.max(maxBuffered, s.bufferedBytes);
    }, 5);
    const chunk = randomBytes(64 * 1024);
    for (let sent = 0; sent < total; sent += chunk.length) {
      if (!socket.write(chunk)) await once(socket, 'drain');
    }
    socket.end();
    await finished;
    clearInterval(sampler);
    socket.destroy();
    assert.equal(received, total);
    t.diagnostic(`balancer held at most ${maxBuffered} bytes`);
    assert.ok(maxBuffered <= 512 * 1024, `the balancer held ${maxBuffered} bytes`);
  } finally {
    await closeAll(lb, [sink]);
  }
});

test('half-close: a client that ends its side still gets the whole answer', async () => {
  // Answers only after the client's end: the byte count, then ends.
  const counter = await backend('counter', {
    handler: (socket) => {
      let n = 0;
      socket.on('data', (c: Buffer) => {
        n += c.length;
      });
      socket.on('end', () => socket.end(`got ${n} bytes\n`));
    },
  });
  const lb = await balancer([counter]);
  try {
    const socket = await open(lb.port);
    socket.end('hello, world');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await once(socket, 'end');
    assert.equal(Buffer.concat(chunks).toString(), 'got 12 bytes\n');
    socket.destroy();
  } finally {
    await closeAll(lb, [counter]);
  }
});

test('bytes a client sends before the server connection is up are held and delivered in order', async () => {
  const echo = await backend('echo');
  const lb = await balancer([echo]);
  try {
    const socket = connect({ host: '127.0.0.1', port: lb.port, allowHalfOpen: true });
    socket.on('error', () => {});
    const data = randomBytes(200 * 1024); // beyond the hold limit: the client is paused, not buffered
    socket.end(data);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await once(socket, 'end');
    assert.ok(Buffer.concat(chunks).equals(data));
    socket.destroy();
  } finally {
    await closeAll(lb, [echo]);
  }
});

test('an IPv6 listener on [::1] to an IPv6 server', async () => {
  const echo = await backend('v6', { greet: true, host: '::1' });
  const lb = await startBalancer(`
listeners: [{ name: tcp, protocol: tcp, listen: "[::1]:0", pool: p }]
pools: [{ name: p, servers: [{ address: "[::1]:${echo.port}" }] }]
`);
  try {
    const s = await open(lb.port, { host: '::1' });
    assert.equal(await readLine(s), 'v6');
    s.write('ping');
    const [echoed] = (await once(s, 'data')) as [Buffer];
    assert.equal(echoed.toString(), 'ping');
    s.destroy();
  } finally {
    await closeAll(lb, [echo]);
  }
});

// ---------------------------------------------------------------------------------------------
// The five algorithms over TCP

test('round-robin over TCP: connections take turns', async () => {
  const bs = [
    await backend('a', { greet: true }),
    await backend('b', { greet: true }),
    await backend('c', { greet: true }),
  ];
  const lb = await balancer(bs);
  try {
    const ids: string[] = [];
    for (let i = 0; i < 9; i++) ids.push(await whoami(lb.port));
    assert.equal(ids.join(''), 'abcabcabc');
  } finally {
    await closeAll(lb, bs);
  }
});

test('weighted-round-robin over TCP: weights 5,1,1 give a a b a c a a', async () => {
  const bs = [
    await backend('a', { greet: true }),
    await backend('b', { greet: true }),
    await backend('c', { greet: true }),
  ];
  const weights = [5, 1, 1];
  const lb = await balancer(bs, {
    algorithm: 'weighted-round-robin',
    extra: (i) => `, weight: ${weights[i]}`,
  });
  try {
    const ids: string[] = [];
    for (let i = 0; i < 14; i++) ids.push(await whoami(lb.port));
    assert.equal(ids.join(''), 'aabacaaaabacaa');
  } finally {
    await closeAll(lb, bs);
  }
});

test('ip-hash over TCP: each client address (127.0.0.x) stays on one server; clients spread', async () => {
  const bs = [
    await backend('a', { greet: true }),
    await backend('b', { greet: true }),
    await backend('c', { greet: true }),
  ];
  const lb = await balancer(bs, { algorithm: 'ip-hash' });
  try {
    const placement = new Map<string, string>();
    for (let round = 0; round < 2; round++) {
      for (let i = 2; i < 32; i++) {
        const local = `127.0.0.${i}`;
        const id = await whoami(lb.port, local);
        if (round === 0) placement.set(local, id);
        else assert.equal(id, placement.get(local), `${local} moved`);
      }
    }
    const spread = tally([...placement.values()]);
    assert.equal(Object.keys(spread).length, 3, JSON.stringify(spread));
    for (const n of Object.values(spread)) assert.ok(n >= 3, JSON.stringify(spread));
  } finally {
    await closeAll(lb, bs);
  }
});

test('least-connections over TCP: counts open connections, a freed server gets the next one', async () => {
  const bs = [
    await backend('a', { greet: true }),
    await backend('b', { greet: true }),
    await backend('c', { greet: true }),
  ];
  const lb = await balancer(bs, { algorithm: 'least-connections' });
  const held: Socket[] = [];
  try {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await open(lb.port);
      held.push(s);
      ids.push(await readLine(s));
    }
    assert.deepEqual([...ids].sort(), ['a', 'b', 'c'], 'one open connection each');
    const pool = poolOf(lb);
    assert.deepEqual(
      pool.servers.map((s) => s.active),
      [1, 1, 1],
    );
    // Free the server of the second connection: every next connection goes there first.
    const freed = ids[1]!;
    held[1]!.destroy();
    await until(() => pool.find(freed)!.active === 0, 2000, 'the lease to end');
    const s = await open(lb.port);
    held.push(s);
    assert.equal(await readLine(s), freed);
    // Now 1,1,1 again; two more each go to distinct servers.
    const next = [await open(lb.port), await open(lb.port)];
    held.push(...next);
    const more = [await readLine(next[0]!), await readLine(next[1]!)];
    assert.notEqual(more[0], more[1]);
  } finally {
    for (const s of held) s.destroy();
    await closeAll(lb, bs);
  }
});

test('least-response-time over TCP: a server slow to its first byte gets few connections', async () => {
  const slow = await backend('slow', { greet: true, greetDelayMs: 120 });
  const fast = [await backend('a', { greet: true }), await backend('b', { greet: true })];
  const bs = [slow, ...fast];
  const lb = await balancer(bs, { algorithm: 'least-response-time' });
  try {
    const ids: string[] = [];
    const pool = poolOf(lb);
    for (let i = 0; i < 40; i++) {
      const s = await open(lb.port);
      ids.push(await readLine(s));
      s.destroy();
      // One at a time: the lease (and its sample) is back before the next pick.
      await until(() => pool.servers.every((x) => x.active === 0), 2000, 'the lease to end');
    }
    const t = tally(ids);
    assert.ok((t.slow ?? 0) <= 8, `slow server got ${t.slow} of 40: ${JSON.stringify(t)}`);
    assert.ok((t.a ?? 0) + (t.b ?? 0) >= 32, JSON.stringify(t));
  } finally {
    await closeAll(lb, bs);
  }
});

// ---------------------------------------------------------------------------------------------
// Failures, backups, drain

test('kill a server: new connections go to the others at once, none fails', async () => {
  const a = await backend('a', { greet: true });
  const b = await backend('b', { greet: true });
  const lb = await balancer([a, b]);
  try {
    const onA = await open(lb.port);
    assert.equal(await readLine(onA), 'a');
    await a.close(); // its connections are cut, its port refuses
    assert.ok(await endedWithin(onA, 2000), 'the server side of the connection to the killed server ends');
    onA.destroy();
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await whoami(lb.port));
    assert.deepEqual(tally(ids), { b: 10 });
    assert.ok(poolOf(lb).find('a')!.failures >= 1, 'the refused connects are counted as failures');
  } finally {
    await closeAll(lb, [b]);
  }
});

test('connect timeout: a server that never answers the handshake is left for another before any byte', async (t) => {
  let hole: ChildProcess | undefined;
  let holePort = 0;
  let filler: Socket | undefined;
  try {
    // A listening socket with a full backlog that never accepts: SYNs go unanswered.
    hole = spawn('python3', [
      '-c',
      "import socket,time\ns=socket.socket();s.bind(('127.0.0.1',0));s.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)",
    ]);
    hole.on('error', () => {});
    holePort = await new Promise<number>((resolve, reject) => {
      hole!.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      hole!.once('error', reject);
      hole!.once('exit', () => reject(new Error('python3 exited')));
    });
  } catch {
    hole?.kill();
    t.skip('python3 is not available to make an unresponsive server');
    return;
  }
  filler = connect({ host: '127.0.0.1', port: holePort });
  filler.on('error', () => {});
  await once(filler, 'connect');
  const b = await backend('b', { greet: true });
  const lb = await startBalancer(`
listeners: [{ name: tcp, protocol: tcp, listen: "127.0.0.1:0", pool: p }]
pools:
  - name: p
    timeouts: { connect: 300ms }
    servers:
      - { address: "127.0.0.1:${holePort}", name: hole }
      - { address: "127.0.0.1:${b.port}", name: b }
`);
  try {
    const started = Date.now();
    const s = await open(lb.port);
    s.write('early bytes');
    assert.equal(await readUntil(s, 'early bytes'), 'b\nearly bytes', 'greeting, then the held bytes echoed');
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 2000, `took ${took}ms`);
    s.destroy();
    assert.equal(poolOf(lb).find('hole')!.failures, 1);
  } finally {
    filler.destroy();
    hole.kill();
    await closeAll(lb, [b]);
  }
});

test('no server left to try: the client connection is closed and the failure logged', async () => {
  const a = await backend('a');
  const port = a.port;
  await a.close();
  const lb = await startBalancer(`
listeners: [{ name: tcp, protocol: tcp, listen: "127.0.0.1:0", pool: p }]
pools: [{ name: p, retries: { attempts: 0 }, servers: [{ address: "127.0.0.1:${port}", name: a }] }]
`);
  try {
    const s = await open(lb.port);
    assert.ok(await closedWithin(s, 2000));
    assert.ok(
      lb.log.lines.some((l) => l.includes('server a of pool p') && l.includes('ECONNREFUSED')),
      lb.log.lines.join(''),
    );
  } finally {
    await lb.stop();
  }
});

test('backup servers take connections only while no primary is available', async () => {
  const a = await backend('a', { greet: true });
  const spare = await backend('spare', { greet: true });
  const lb = await balancer([a, spare], { extra: (i) => (i === 1 ? ', backup: true' : '') });
  try {
    assert.equal(await whoami(lb.port), 'a');
    assert.equal(await whoami(lb.port), 'a');
    const pool = poolOf(lb);
    pool.setState(pool.find('a')!, 'down', 'test');
    assert.equal(await whoami(lb.port), 'spare');
    pool.setState(pool.find('a')!, 'up', 'test');
    assert.equal(await whoami(lb.port), 'a');
  } finally {
    await closeAll(lb, [a, spare]);
  }
});

test('drain: a draining server keeps its connections until drainTimeout, new ones go elsewhere', async () => {
  const a = await backend('a', { greet: true });
  const b = await backend('b', { greet: true });
  const lb = await balancer([a, b], { pool: '    drainTimeout: 400ms' });
  try {
    const onA = await open(lb.port);
    assert.equal(await readLine(onA), 'a');
    const pool = poolOf(lb);
    pool.setState(pool.find('a')!, 'draining', 'admin');
    const started = Date.now();
    for (let i = 0; i < 4; i++) assert.equal(await whoami(lb.port), 'b');
    // Still usable while draining.
    onA.write('still here');
    const [echoed] = (await once(onA, 'data')) as [Buffer];
    assert.equal(echoed.toString(), 'still here');
    assert.ok(await closedWithin(onA, 3000), 'closed after the drain timeout');
    const took = Date.now() - started;
    assert.ok(took >= 350, `closed after ${took}ms`);
    assert.ok(lb.log.lines.some((l) => l.includes('draining server a closed after drainTimeout')));
    await until(() => pool.find('a')!.active === 0, 1000, 'the lease to end');
  } finally {
    await closeAll(lb, [a, b]);
  }
});

test('idle timeout: a connection without traffic either way is closed', async () => {
  const a = await backend('a');
  const lb = await balancer([a], { listener: 'timeouts: { idle: 300ms }' });
  try {
    const s = await open(lb.port);
    // Traffic keeps it open...
    for (let i = 0; i < 4; i++) {
      s.write('x');
      await once(s, 'data');
      await new Promise((r) => setTimeout(r, 150));
    }
    assert.ok(!s.destroyed);
    // ...silence closes it.
    assert.ok(await closedWithin(s, 2000));
  } finally {
    await closeAll(lb, [a]);
  }
});

// ---------------------------------------------------------------------------------------------
// maxConnections and the queue

test('listener maxConnections: excess connections queue, then are served; beyond the queue they are refused', async () => {
  const a = await backend('a', { greet: true });
  const lb = await balancer([a], { listener: 'maxConnections: 2, queue: { size: 1, timeout: 3s }' });
  const held: Socket[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      held.push(await open(lb.port));
      assert.equal(await readLine(held[i]!), 'a');
    }
    // Third: accepted by the kernel, queued by the balancer (no greeting yet).
    const queued = await open(lb.port);
    held.push(queued);
    const greeting = readLine(queued, 5000);
    // Fourth: the queue is full, refused at once.
    const refused = await open(lb.port);
    held.push(refused);
    assert.ok(await closedWithin(refused, 1000), 'refused when the queue is full');
    assert.equal(a.accepted, 2, 'the queued connection has not reached the server');
    held[0]!.destroy();
    assert.equal(await greeting, 'a', 'served once a slot is free');
    assert.ok(
      lb.log.lines.some((l) => l.includes('queued: maxConnections (2) reached')),
      lb.log.lines.join(''),
    );
    assert.ok(
      lb.log.lines.some((l) => l.includes('refused: maxConnections (2) reached and the queue is full (1)')),
    );
  } finally {
    for (const s of held) s.destroy();
    await closeAll(lb, [a]);
  }
});

test('queue timeout: a connection that waits too long is refused', async () => {
  const a = await backend('a', { greet: true });
  const lb = await balancer([a], { listener: 'maxConnections: 1, queue: { size: 5, timeout: 300ms }' });
  const held: Socket[] = [];
  try {
    held.push(await open(lb.port));
    await readLine(held[0]!);
    const waiting = await open(lb.port);
    held.push(waiting);
    const started = Date.now();
    assert.ok(await closedWithin(waiting, 3000));
    assert.ok(Date.now() - started >= 250);
    assert.ok(lb.log.lines.some((l) => l.includes('refused: waited too long in the queue')));
    await until(() => tcpListener(lb).connectionCount === 1, 1000, 'the queued connection to go');
  } finally {
    for (const s of held) s.destroy();
    await closeAll(lb, [a]);
  }
});

test('server maxConnections: connections wait for a server slot, other servers are used first', async () => {
  const a = await backend('a', { greet: true });
  const b = await backend('b', { greet: true });
  const lb = await balancer([a, b], {
    extra: () => ', maxConnections: 1',
    listener: 'queue: { size: 4, timeout: 3s }',
  });
  const held: Socket[] = [];
  try {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      held.push(await open(lb.port));
      ids.push(await readLine(held[i]!));
    }
    assert.deepEqual(ids.sort(), ['a', 'b']);
    const waiting = await open(lb.port);
    held.push(waiting);
    const greeting = readLine(waiting, 5000);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(a.accepted + b.accepted, 2, 'both servers are full: the third waits');
    held[0]!.destroy();
    assert.equal(await greeting, ids[0] === 'a' ? 'a' : 'b');
    assert.ok(lb.log.lines.some((l) => l.includes('every server is at its maxConnections')));
  } finally {
    for (const s of held) s.destroy();
    await closeAll(lb, [a, b]);
  }
});

// ---------------------------------------------------------------------------------------------
// PROXY protocol

test('sendProxyProtocol v1: the server sees the client address in a PROXY line, then the data', async () => {
  const a = await backend('a');
  const lb = await balancer([a], { pool: '    sendProxyProtocol: v1' });
  try {
    const s = await open(lb.port, { localAddress: '127.0.0.7' });
    s.write('payload');
    await once(s, 'data');
    const expected = `PROXY TCP4 127.0.0.7 127.0.0.1 ${s.localPort} ${lb.port}\r\n`;
    assert.equal(a.firsts[0]!.toString('latin1'), `${expected}payload`);
    s.destroy();
  } finally {
    await closeAll(lb, [a]);
  }
});

test('sendProxyProtocol v2 (per-server override), IPv6 listener: a TCP6 binary header', async () => {
  const a = await backend('a');
  const lb = await startBalancer(`
listeners: [{ name: tcp, protocol: tcp, listen: "[::1]:0", pool: p }]
pools:
  - name: p
    sendProxyProtocol: v1
    servers: [{ address: "127.0.0.1:${a.port}", name: a, sendProxyProtocol: v2 }]
`);
  try {
    const s = await open(lb.port, { host: '::1' });
    s.write('x');
    await once(s, 'data');
    const header = encodeProxyV2({
      sourceAddress: '::1',
      sourcePort: s.localPort!,
      destAddress: '::1',
      destPort: lb.port,
    });
    assert.equal(header[13], 0x21, 'TCP over IPv6');
    assert.equal(header.length, 16 + 36);
    assert.deepEqual(a.firsts[0], Buffer.concat([header, Buffer.from('x')]));
    s.destroy();
  } finally {
    await closeAll(lb, [a]);
  }
});

test('acceptProxyProtocol: a trusted peer’s header gives the client address (and is passed on)', async () => {
  const a = await backend('a');
  const lb = await balancer([a], {
    listener: 'acceptProxyProtocol: true, trustedProxies: [127.0.0.1]',
    pool: '    sendProxyProtocol: v1',
  });
  try {
    const s = await open(lb.port);
    // The header in two pieces, with payload right behind it.
    s.write('PROXY TCP4 203.0.113.7 198.51');
    await new Promise((r) => setTimeout(r, 30));
    s.write('.100.2 40000 5432\r\nhello');
    await once(s, 'data');
    assert.equal(a.firsts[0]!.toString('latin1'), 'PROXY TCP4 203.0.113.7 198.51.100.2 40000 5432\r\nhello');
    s.destroy();
    // v2 too.
    const v2 = await open(lb.port);
    const header = encodeProxyV2({
      sourceAddress: '2001:db8::1',
      sourcePort: 1234,
      destAddress: '2001:db8::2',
      destPort: 443,
    });
    v2.write(Buffer.concat([header, Buffer.from('hi')]));
    await once(v2, 'data');
    assert.equal(a.firsts[1]!.toString('latin1'), 'PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\nhi');
    v2.destroy();
  } finally {
    await closeAll(lb, [a]);
  }
});

test('acceptProxyProtocol: untrusted peers, missing and malformed headers are rejected', async () => {
  const a = await backend('a');
  const lb = await balancer([a], { listener: 'acceptProxyProtocol: true, trustedProxies: [127.0.0.1]' });
  try {
    // An untrusted source (127.0.0.9) is closed without a byte reaching the server.
    const spoof = await open(lb.port, { localAddress: '127.0.0.9' });
    spoof.write('PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\nGET / HTTP/1.0\r\n\r\n');
    assert.ok(await closedWithin(spoof, 2000));
    // A trusted peer without a header (the header is required).
    const bare = await open(lb.port);
    bare.write('GET / HTTP/1.0\r\n\r\n');
    assert.ok(await closedWithin(bare, 2000));
    // A malformed one (leading zero).
    const bad = await open(lb.port);
    bad.write('PROXY TCP4 10.0.0.01 10.0.0.2 1 2\r\n');
    assert.ok(await closedWithin(bad, 2000));
    assert.equal(a.accepted, 0);
    const text = lb.log.lines.join('');
    assert.match(text, /127\.0\.0\.9:\d+ refused: not in trustedProxies/);
    assert.match(text, /closed: not a PROXY protocol header/);
    // Logged at most once a second per kind: the second bad header is reported a second later.
    await until(
      () => lb.log.lines.some((l) => l.includes('closed: v1 line: invalid TCP4 address')),
      3000,
      'the log',
    );
  } finally {
    await closeAll(lb, [a]);
  }
});

// ---------------------------------------------------------------------------------------------
// Seams: traffic observer and affinity (sticky source)

test('the traffic observer gets one record per connection: server, bytes to the client, retries', async () => {
  const gone = await backend('gone');
  const port = gone.port;
  await gone.close();
  const b = await backend('b', { greet: true });
  const lb = await startBalancer(`
listeners: [{ name: tcp, protocol: tcp, listen: "127.0.0.1:0", pool: p }]
pools:
  - name: p
    servers: [{ address: "127.0.0.1:${port}", name: gone }, { address: "127.0.0.1:${b.port}", name: b }]
`);
  const records: ExchangeRecord[] = [];
  lb.runtime.setObserver({ onExchange: (r) => records.push(r) });
  try {
    const s = await open(lb.port);
    assert.equal(await readLine(s), 'b');
    s.write('12345');
    await readUntil(s, '12345');
    s.destroy();
    await until(() => records.length === 1, 2000, 'the record');
    const r = records[0]!;
    assert.equal(r.listener, 'tcp');
    assert.equal(r.protocol, 'tcp');
    assert.equal(r.pool, 'p');
    assert.equal(r.server, 'b');
    assert.equal(r.clientIp, '127.0.0.1');
    assert.equal(r.status, 0);
    assert.equal(r.bytesOut, 2 + 5, 'the greeting and the echo');
    assert.equal(r.retries, 1, 'the refused server was tried first');
    assert.ok(r.durationMs >= 0 && r.at > 0);
  } finally {
    await closeAll(lb, [b]);
  }
});

test('a pool affinity pins connections (sync and async lookups), records them, and counts reassignments', async () => {
  const bs = [
    await backend('a', { greet: true }),
    await backend('b', { greet: true }),
    await backend('c', { greet: true }),
  ];
  const lb = await balancer(bs);
  const pool = poolOf(lb);
  const recorded: Array<[string, string]> = [];
  const affinity: Affinity = {
    pinned: () => pool.find('c'),
    onResponse: () => '',
    onConnection: (ip, server) => {
      recorded.push([ip, server.id]);
    },
  };
  pool.affinity = affinity;
  try {
    for (let i = 0; i < 3; i++) assert.equal(await whoami(lb.port), 'c');
    assert.deepEqual(recorded[0], ['127.0.0.1', 'c']);
    assert.equal(recorded.length, 3);
    pool.setState(pool.find('c')!, 'down', 'test');
    assert.notEqual(await whoami(lb.port), 'c');
    assert.equal(pool.reassigned, 1);
    pool.setState(pool.find('c')!, 'up', 'test');
    // A shared store answers later; the client's early bytes wait.
    affinity.pinned = () => new Promise((resolve) => setTimeout(() => resolve(pool.find('b')), 50));
    const s = await open(lb.port);
    s.write('early');
    assert.equal(await readUntil(s, 'early'), 'b\nearly');
    s.destroy();
  } finally {
    await closeAll(lb, bs);
  }
});

// ---------------------------------------------------------------------------------------------
// Reload and shutdown

test('reload: a new pool applies to new connections, open ones keep their server', async () => {
  const a = await backend('a', { greet: true });
  const b = await backend('b', { greet: true });
  const lb = await balancer([a]);
  try {
    const onA = await open(lb.port);
    assert.equal(await readLine(onA), 'a');
    const port = tcpListener(lb).address.port;
    await lb.runtime.apply(
      parseConfig(
        `
listeners: [{ name: tcp, protocol: tcp, listen: "127.0.0.1:${port}", pool: q }]
pools:
  - { name: p, servers: [{ address: "127.0.0.1:${a.port}", name: a }] }
  - { name: q, servers: [{ address: "127.0.0.1:${b.port}", name: b }] }
`,
        'reload.yaml',
      ),
    );
    assert.equal(await whoami(port), 'b');
    onA.write('same');
    const [echoed] = (await once(onA, 'data')) as [Buffer];
    assert.equal(echoed.toString(), 'same');
    onA.destroy();
  } finally {
    await closeAll(lb, [a, b]);
  }
});

test('shutdown: stops accepting, lets open connections run until the timeout, then closes them', async () => {
  const a = await backend('a', { greet: true });
  const lb = await balancer([a]);
  const s = await open(lb.port);
  await readLine(s);
  const started = Date.now();
  const stopping = lb.runtime.shutdown(400);
  await new Promise((r) => setTimeout(r, 100));
  s.write('during');
  const [echoed] = (await once(s, 'data')) as [Buffer];
  assert.equal(echoed.toString(), 'during');
  await stopping;
  assert.ok(Date.now() - started >= 350);
  assert.ok(await closedWithin(s, 1000));
  await a.close();
});
