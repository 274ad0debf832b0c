import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { test } from 'node:test';
import type { Affinity } from '../../src/core/affinity.js';
import type { ExchangeRecord } from '../../src/core/observer.js';
import type { Pool } from '../../src/core/pool.js';
import type { UdpListener } from '../../src/proxy/udp/udpListener.js';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';

// ---------------------------------------------------------------------------------------------
// Helpers

interface UdpBackend {
  id: string;
  port: number;
  /** Datagrams received. */
  received: number;
  close(): Promise<void>;
}

/** Answers every datagram with `${id}:${datagram}`. */
async function udpBackend(id: string, host = '127.0.0.1'): Promise<UdpBackend> {
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const b: UdpBackend = {
    id,
    port: 0,
    received: 0,
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
  socket.on('message', (msg, rinfo) => {
    b.received++;
    socket.send(Buffer.concat([Buffer.from(`${id}:`), msg]), rinfo.port, rinfo.address);
  });
  socket.bind(0, host);
  await once(socket, 'listening');
  b.port = socket.address().port;
  return b;
}

interface Client {
  socket: Socket;
  /** Sends `msg`; resolves with the reply and where it came from, or undefined after `ms`. */
  ask(msg: string, ms?: number): Promise<{ text: string; from: RemoteInfo } | undefined>;
  close(): void;
}

async function client(port: number, opts: { localAddress?: string; host?: string } = {}): Promise<Client> {
  const host = opts.host ?? '127.0.0.1';
  const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  socket.on('error', () => {});
  socket.bind(0, opts.localAddress ?? (host.includes(':') ? '::1' : '127.0.0.1'));
  await once(socket, 'listening');
  return {
    socket,
    ask: (msg, ms = 2000) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => {
          socket.off('message', onMessage);
          resolve(undefined);
        }, ms);
        const onMessage = (reply: Buffer, from: RemoteInfo) => {
          clearTimeout(timer);
          socket.off('message', onMessage);
          resolve({ text: reply.toString(), from });
        };
        socket.on('message', onMessage);
        socket.send(msg, port, host);
      }),
    close: () => socket.close(),
  };
}

async function serverOf(c: Client, msg = 'who'): Promise<string | undefined> {
  const r = await c.ask(msg);
  return r?.text.split(':')[0];
}

async function balancer(
  list: Array<{ id: string; port: number }>,
  opts: { algorithm?: string; listener?: string; pool?: string; listen?: string } = {},
): Promise<TestBalancer> {
  return startBalancer(`
listeners:
  - { name: udp, protocol: udp, listen: "${opts.listen ?? '127.0.0.1:0'}", pool: p${opts.listener ? `, ${opts.listener}` : ''} }
pools:
  - name: p
    algorithm: ${opts.algorithm ?? 'round-robin'}
${opts.pool ?? ''}
    servers:
${list.map((b) => `      - { address: "127.0.0.1:${b.port}", name: ${b.id} }`).join('\n')}
`);
}

function udpListener(lb: TestBalancer): UdpListener {
  return lb.runtime.listeners.get('udp') as unknown as UdpListener;
}

function poolOf(lb: TestBalancer): Pool {
  return lb.runtime.pools.get('p')!;
}

function tally(ids: Array<string | undefined>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of ids) out[String(id)] = (out[String(id)] ?? 0) + 1;
  return out;
}

async function until(cond: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function closeAll(
  lb: TestBalancer | undefined,
  backends: UdpBackend[],
  clients: Client[] = [],
): Promise<void> {
  for (const c of clients) c.close();
  await lb?.stop();
  await Promise.all(backends.map((b) => b.close()));
}

// ---------------------------------------------------------------------------------------------

test('a datagram goes to a server and its reply comes back from the listener address', async () => {
  const a = await udpBackend('a');
  const lb = await balancer([a]);
  const c = await client(lb.port);
  try {
    const r = await c.ask('hello');
    assert.equal(r?.text, 'a:hello');
    assert.equal(r?.from.port, lb.port);
    assert.equal(r?.from.address, '127.0.0.1');
    // Many datagrams in one flow, all answered, in one flow.
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => c.ask(`m${i}`)));
    assert.ok(replies.every((x) => x !== undefined));
    assert.equal(udpListener(lb).connectionCount, 1);
    assert.equal(poolOf(lb).find('a')!.active, 1, 'one lease per flow');
  } finally {
    await closeAll(lb, [a], [c]);
  }
});

test('round-robin: each client socket gets a flow on one server; flows spread across servers', async () => {
  const bs = [await udpBackend('a'), await udpBackend('b'), await udpBackend('c')];
  const lb = await balancer(bs);
  const clients: Client[] = [];
  try {
    for (let i = 0; i < 6; i++) clients.push(await client(lb.port));
    const first: Array<string | undefined> = [];
    for (const c of clients) first.push(await serverOf(c));
    assert.deepEqual(first, ['a', 'b', 'c', 'a', 'b', 'c']);
    // The same socket keeps its server.
    for (let round = 0; round < 3; round++) {
      for (const [i, c] of clients.entries()) assert.equal(await serverOf(c), first[i]);
    }
  } finally {
    await closeAll(lb, bs, clients);
  }
});

test('ip-hash: affinity by client address across sockets (127.0.0.x), clients spread', async () => {
  const bs = [await udpBackend('a'), await udpBackend('b'), await udpBackend('c')];
  const lb = await balancer(bs, { algorithm: 'ip-hash' });
  const clients: Client[] = [];
  try {
    const placement = new Map<string, string | undefined>();
    for (let i = 2; i < 32; i++) {
      const local = `127.0.0.${i}`;
      // Two sockets (two ports, two flows) per address: same server.
      const c1 = await client(lb.port, { localAddress: local });
      const c2 = await client(lb.port, { localAddress: local });
      clients.push(c1, c2);
      const s1 = await serverOf(c1);
      const s2 = await serverOf(c2);
      assert.equal(s1, s2, `${local}: both sockets on one server`);
      placement.set(local, s1);
    }
    assert.equal(udpListener(lb).connectionCount, 60);
    const spread = tally([...placement.values()]);
    assert.equal(Object.keys(spread).length, 3, JSON.stringify(spread));
    for (const n of Object.values(spread)) assert.ok(n >= 3, JSON.stringify(spread));
  } finally {
    await closeAll(lb, bs, clients);
  }
});

test('least-connections counts flows', async () => {
  const bs = [await udpBackend('a'), await udpBackend('b'), await udpBackend('c')];
  const lb = await balancer(bs, { algorithm: 'least-connections' });
  const clients: Client[] = [];
  try {
    const ids: Array<string | undefined> = [];
    for (let i = 0; i < 6; i++) {
      const c = await client(lb.port);
      clients.push(c);
      ids.push(await serverOf(c));
    }
    assert.deepEqual(tally(ids), { a: 2, b: 2, c: 2 });
  } finally {
    await closeAll(lb, bs, clients);
  }
});

test('flows expire after the idle timeout and release their server', async () => {
  const a = await udpBackend('a');
  const lb = await balancer([a], { listener: 'timeouts: { idle: 200ms }' });
  const c = await client(lb.port);
  try {
    assert.equal(await serverOf(c), 'a');
    assert.equal(udpListener(lb).connectionCount, 1);
    await until(() => udpListener(lb).connectionCount === 0, 2000, 'the flow to expire');
    assert.equal(poolOf(lb).find('a')!.active, 0);
    // The client is welcome back: a new flow.
    assert.equal(await serverOf(c), 'a');
  } finally {
    await closeAll(lb, [a], [c]);
  }
});

test('maxFlows: while the table is full, new clients are dropped (and logged), existing flows work', async () => {
  const a = await udpBackend('a');
  const lb = await balancer([a], { listener: 'maxFlows: 2' });
  const clients = [await client(lb.port), await client(lb.port), await client(lb.port)];
  try {
    assert.equal(await serverOf(clients[0]!), 'a');
    assert.equal(await serverOf(clients[1]!), 'a');
    assert.equal(await clients[2]!.ask('x', 300), undefined, 'the third client gets no flow');
    assert.equal(await serverOf(clients[0]!), 'a', 'existing flows keep working');
    assert.ok(
      lb.log.lines.some((l) => l.includes('dropped: maxFlows (2) reached')),
      lb.log.lines.join(''),
    );
  } finally {
    await closeAll(lb, [a], clients);
  }
});

test('a server marked down: its flows move to another server on the next datagram', async () => {
  const a = await udpBackend('a');
  const b = await udpBackend('b');
  const lb = await balancer([a, b]);
  const c = await client(lb.port);
  try {
    assert.equal(await serverOf(c), 'a');
    const pool = poolOf(lb);
    pool.setState(pool.find('a')!, 'down', 'health check');
    assert.equal(await serverOf(c), 'b');
    assert.equal(await serverOf(c), 'b');
    assert.equal(pool.find('a')!.active, 0, 'the old flow released its lease');
  } finally {
    await closeAll(lb, [a, b], [c]);
  }
});

test('a killed server: its flow ends on the ICMP refusal, outlier detection ejects it, clients move on', async () => {
  const a = await udpBackend('a');
  const b = await udpBackend('b');
  const lb = await balancer([a, b], {
    pool: '    outlierDetection: { consecutiveFailures: 1, maxEjectedPercent: 50 }',
  });
  const c = await client(lb.port);
  try {
    assert.equal(await serverOf(c), 'a');
    await a.close();
    // This datagram hits a closed port; the refusal closes the flow (a failure for server a).
    await c.ask('lost', 300);
    const pool = poolOf(lb);
    await until(() => pool.find('a')!.failures >= 1, 2000, 'the failure to be recorded');
    for (let i = 0; i < 5; i++) assert.equal(await serverOf(c), 'b');
  } finally {
    await closeAll(lb, [b], [c]);
  }
});

test('a draining server keeps its flows until drainTimeout; new clients go elsewhere', async () => {
  const a = await udpBackend('a');
  const b = await udpBackend('b');
  const lb = await balancer([a, b], { pool: '    drainTimeout: 300ms' });
  const onA = await client(lb.port);
  const later = await client(lb.port);
  try {
    assert.equal(await serverOf(onA), 'a');
    const pool = poolOf(lb);
    pool.setState(pool.find('a')!, 'draining', 'admin');
    assert.equal(await serverOf(later), 'b');
    assert.equal(await serverOf(onA), 'a', 'still on the draining server');
    await until(() => pool.find('a')!.active === 0, 2000, 'the drain timeout');
    assert.equal(await serverOf(onA), 'b');
  } finally {
    await closeAll(lb, [a, b], [onA, later]);
  }
});

test('the traffic observer gets one record per flow; an affinity pins flows (sync and async)', async () => {
  const bs = [await udpBackend('a'), await udpBackend('b'), await udpBackend('c')];
  const lb = await balancer(bs, { listener: 'timeouts: { idle: 200ms }' });
  const pool = poolOf(lb);
  const records: ExchangeRecord[] = [];
  lb.runtime.setObserver({ onExchange: (r) => records.push(r) });
  const recorded: string[] = [];
  const affinity: Affinity = {
    pinned: () => pool.find('c'),
    onResponse: () => '',
    onConnection: (_ip, server) => {
      recorded.push(server.id);
    },
  };
  pool.affinity = affinity;
  const clients = [await client(lb.port), await client(lb.port)];
  try {
    assert.equal((await clients[0]!.ask('x'))?.text, 'c:x');
    assert.equal((await clients[0]!.ask('yz'))?.text, 'c:yz');
    affinity.pinned = () => new Promise((resolve) => setTimeout(() => resolve(pool.find('b')), 50));
    assert.equal((await clients[1]!.ask('held'))?.text, 'b:held', 'held until the lookup answers');
    assert.deepEqual(recorded, ['c', 'b']);
    await until(() => records.length === 2, 2000, 'the flows to expire');
    const first = records.find((r) => r.server === 'c')!;
    assert.equal(first.protocol, 'udp');
    assert.equal(first.listener, 'udp');
    assert.equal(first.clientIp, '127.0.0.1');
    assert.equal(first.bytesOut, 'c:x'.length + 'c:yz'.length);
  } finally {
    await closeAll(lb, bs, clients);
  }
});

test('an IPv6 listener on [::1]', async () => {
  const a = await udpBackend('a', '::1');
  const lb = await startBalancer(`
listeners: [{ name: udp, protocol: udp, listen: "[::1]:0", pool: p }]
pools: [{ name: p, servers: [{ address: "[::1]:${a.port}", name: a }] }]
`);
  const c = await client(lb.port, { host: '::1' });
  try {
    const r = await c.ask('six');
    assert.equal(r?.text, 'a:six');
    assert.equal(r?.from.address, '::1');
    assert.equal(r?.from.port, lb.port);
  } finally {
    await closeAll(lb, [a], [c]);
  }
});

test('shutdown closes every flow and the socket', async () => {
  const a = await udpBackend('a');
  const lb = await balancer([a]);
  const c = await client(lb.port);
  try {
    assert.equal(await serverOf(c), 'a');
    const listener = udpListener(lb);
    await lb.runtime.shutdown(100);
    assert.equal(listener.connectionCount, 0);
    assert.equal(poolOf(lb).find('a')!.active, 0);
    assert.equal(await c.ask('after', 200), undefined);
  } finally {
    c.close();
    await a.close();
  }
});
