import assert from 'node:assert/strict';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, createServer, type Server as NetServer } from 'node:net';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/index.js';
import { serverList, startBackends, startBalancer } from '../helpers/balancer.js';
import { Browser, installAffinity, reinstallAffinity, tally } from '../sticky/browser.js';

const ADDRESSES = Array.from({ length: 30 }, (_, i) => `127.0.0.${i + 2}`);

function httpYaml(servers: string) {
  return `
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    algorithm: round-robin
    servers:
${servers}
    sticky: { type: source, idle: 10m }
`;
}

test('source affinity over HTTP: 30 client addresses, each on one server, spread by round robin', async () => {
  const backends = await startBackends(3);
  const lb = await startBalancer(httpYaml(serverList(backends)));
  const { affinity } = installAffinity(lb, 'web');
  try {
    const seen = new Map<string, Set<string>>();
    for (let round = 0; round < 5; round++) {
      // A new address between rounds shifts round robin: without affinity, servers would change.
      const shift = new Browser(lb.port, `127.0.1.${round + 1}`);
      await shift.get();
      shift.close();
      await Promise.all(
        ADDRESSES.map(async (address) => {
          // A new connection and no cookie every time: only the address ties the requests.
          const b = new Browser(lb.port, address);
          const r = await b.get();
          b.close();
          const set = seen.get(address) ?? new Set();
          set.add(String(r.headers['x-served-by']));
          seen.set(address, set);
        }),
      );
    }
    for (const [address, servers] of seen) assert.equal(servers.size, 1, `${address}: ${[...servers]}`);
    const first = [...seen.values()].map((s) => [...s][0]!);
    assert.deepEqual(Object.values(tally(first)), [10, 10, 10]);
    assert.equal(affinity.stats().entries, 35, '30 clients and 5 shifting ones');
  } finally {
    await lb.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
});

test('source affinity: adding and removing other servers moves no client', async () => {
  const backends = await startBackends(4);
  const [a, b, c, d] = backends;
  const lb = await startBalancer(httpYaml(serverList([a!, b!, c!])));
  installAffinity(lb, 'web');
  const who = async (address: string) => {
    const br = new Browser(lb.port, address);
    await br.get();
    br.close();
    return br.servedBy[0]!;
  };
  try {
    const before = new Map<string, string>();
    for (const address of ADDRESSES) before.set(address, await who(address));
    await lb.runtime.apply(parseConfig(httpYaml(serverList([a!, b!, d!])), 'test.yaml'));
    await reinstallAffinity(lb, 'web');
    for (const address of ADDRESSES) {
      const now = await who(address);
      if (before.get(address) === 'c') assert.notEqual(now, 'c');
      else assert.equal(now, before.get(address), address);
    }
  } finally {
    await lb.stop();
    await Promise.all(backends.map((s) => s.close()));
  }
});

/** A TCP server that writes its name to every connection and closes. */
async function namedTcpServer(name: string): Promise<{ server: NetServer; port: number }> {
  const server = createServer((s) => {
    s.on('error', () => {});
    s.end(`${name}\n`);
  });
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  return { server, port: (server.address() as { port: number }).port };
}

function tcpAsk(port: number, localAddress: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, localAddress });
    let out = '';
    s.on('data', (c: Buffer) => {
      out += c.toString();
    });
    s.on('error', reject);
    s.on('close', () => resolve(out.trim()));
    s.setTimeout(3000, () => s.destroy(new Error('timeout')));
  });
}

test('source affinity over TCP: each client address keeps its server', async () => {
  const servers = await Promise.all(['a', 'b', 'c'].map(namedTcpServer));
  const lb = await startBalancer(`
listeners: [{ name: db, protocol: tcp, listen: "127.0.0.1:0", pool: db }]
pools:
  - name: db
    algorithm: round-robin
    servers:
${servers.map((s, i) => `      - { address: "127.0.0.1:${s.port}", name: ${'abc'[i]} }`).join('\n')}
    sticky: { type: source, idle: 10m }
`);
  const { pool } = installAffinity(lb, 'db');
  try {
    const seen = new Map<string, Set<string>>();
    for (let round = 0; round < 4; round++) {
      await tcpAsk(lb.port, `127.0.1.${round + 1}`); // shifts round robin, as above
      for (const address of ADDRESSES) {
        const name = await tcpAsk(lb.port, address);
        const set = seen.get(address) ?? new Set();
        set.add(name);
        seen.set(address, set);
      }
    }
    for (const [address, names] of seen) assert.equal(names.size, 1, `${address}: ${[...names]}`);
    assert.deepEqual(Object.values(tally([...seen.values()].map((s) => [...s][0]!))), [10, 10, 10]);
    // A pinned server down: its clients move once and stay.
    pool.setState(pool.find('a')!, 'down', 'test');
    const moved = new Map<string, string>();
    for (let round = 0; round < 3; round++) {
      await tcpAsk(lb.port, `127.0.2.${round + 1}`);
      for (const [address, names] of seen) {
        if (!names.has('a')) continue;
        const name = await tcpAsk(lb.port, address);
        assert.notEqual(name, 'a');
        assert.equal(moved.get(address) ?? name, name, 'stays on its new server');
        moved.set(address, name);
      }
    }
    assert.equal(pool.reassigned, 10);
  } finally {
    await lb.stop();
    await Promise.all(servers.map((s) => new Promise((r) => s.server.close(r))));
  }
});

/** A UDP server answering every datagram with its name. */
async function namedUdpServer(name: string): Promise<{ socket: DgramSocket; port: number }> {
  const socket = createSocket('udp4');
  socket.on('message', (_msg, rinfo) => socket.send(name, rinfo.port, rinfo.address));
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return { socket, port: socket.address().port };
}

/** One datagram from a new socket (a new flow) on `localAddress`; the answering server's name. */
async function udpAsk(port: number, localAddress: string): Promise<string> {
  const socket = createSocket('udp4');
  socket.on('error', () => {});
  socket.bind(0, localAddress);
  await once(socket, 'listening');
  try {
    const reply = once(socket, 'message') as Promise<[Buffer]>;
    socket.send('who', port, '127.0.0.1');
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('no answer')), 2000).unref(),
    );
    return (await Promise.race([reply, timeout]))[0].toString();
  } finally {
    socket.close();
  }
}

test('source affinity over UDP: every new flow of a client address goes to its server', async () => {
  const servers = await Promise.all(['a', 'b', 'c'].map(namedUdpServer));
  const lb = await startBalancer(`
listeners: [{ name: dns, protocol: udp, listen: "127.0.0.1:0", pool: dns }]
pools:
  - name: dns
    algorithm: round-robin
    servers:
${servers.map((s, i) => `      - { address: "127.0.0.1:${s.port}", name: ${'abc'[i]} }`).join('\n')}
    sticky: { type: source, idle: 10m }
`);
  installAffinity(lb, 'dns');
  try {
    const seen = new Map<string, Set<string>>();
    for (let round = 0; round < 3; round++) {
      await udpAsk(lb.port, `127.0.1.${round + 1}`); // shifts round robin
      for (const address of ADDRESSES.slice(0, 12)) {
        const set = seen.get(address) ?? new Set();
        set.add(await udpAsk(lb.port, address));
        seen.set(address, set);
      }
    }
    for (const [address, names] of seen) assert.equal(names.size, 1, `${address}: ${[...names]}`);
    assert.deepEqual(Object.values(tally([...seen.values()].map((s) => [...s][0]!))), [4, 4, 4]);
  } finally {
    await lb.stop();
    for (const s of servers) s.socket.close();
  }
});
