import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/index.js';
import { startBalancer } from '../helpers/balancer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Connects from `localAddress`, writes "ping", and resolves with what came back before the
 * connection closed or `ms` passed: "ping" when served, "" when the balancer closed it.
 */
function tryEcho(port: number, localAddress: string, ms = 3000): Promise<{ reply: string; socket: Socket }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    let reply = '';
    const done = () => {
      clearTimeout(timer);
      resolve({ reply, socket });
    };
    const timer = setTimeout(done, ms);
    socket.on('error', () => {});
    socket.on('data', (c: Buffer) => {
      reply += c.toString();
      if (reply === 'ping') done();
    });
    socket.on('close', done);
    socket.write('ping');
  });
}

test('tcp protection: connections per source (count and rate) are refused at accept; allow-listed sources are not limited', async () => {
  const echo = createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  echo.listen(0, '127.0.0.1');
  await once(echo, 'listening');
  const echoPort = (echo.address() as { port: number }).port;
  const lb = await startBalancer(`
listeners:
  - name: t
    protocol: tcp
    listen: "127.0.0.1:0"
    pool: p
    protection:
      connections: { perClient: 2, rate: 5, per: 10s }
      allow: [127.0.0.72]
pools:
  - name: p
    servers: [ { address: "127.0.0.1:${echoPort}" } ]
`);
  const open: Socket[] = [];
  try {
    // Two connections held open: a third from the same source is closed at once.
    for (let i = 0; i < 2; i++) {
      const c = await tryEcho(lb.port, '127.0.0.70');
      assert.equal(c.reply, 'ping');
      open.push(c.socket);
    }
    const third = await tryEcho(lb.port, '127.0.0.70');
    assert.equal(third.reply, '', 'over perClient: closed');
    // Another source is not affected.
    const other = await tryEcho(lb.port, '127.0.0.71');
    assert.equal(other.reply, 'ping');
    other.socket.destroy();
    // The rate: 5 new connections per 10 s from a source (held open count aside).
    const served: string[] = [];
    for (let i = 0; i < 8; i++) {
      const c = await tryEcho(lb.port, '127.0.0.73');
      served.push(c.reply);
      c.socket.destroy();
      await sleep(20);
    }
    assert.deepEqual(served, ['ping', 'ping', 'ping', 'ping', 'ping', '', '', '']);
    // An allow-listed source has no limit.
    for (let i = 0; i < 8; i++) {
      const c = await tryEcho(lb.port, '127.0.0.72');
      assert.equal(c.reply, 'ping');
      open.push(c.socket);
    }
    const p = lb.runtime.listeners.get('t')!.protection!;
    assert.equal(p.rejected.connections, 1);
    assert.equal(p.rejected['connection-rate'], 3);
    // Top talkers count connections at L4, refused ones too.
    const top = p.topTalkers(10, Date.now());
    assert.deepEqual(
      top.find((t) => t.ip === '127.0.0.73'),
      { ip: '127.0.0.73', requests: 8, refused: 3, errors: 0 },
    );
    // Closed connections give their slot back.
    for (const s of open.splice(0, 2)) s.destroy();
    await sleep(200);
    assert.equal((await tryEcho(lb.port, '127.0.0.70')).reply, 'ping');
  } finally {
    for (const s of open) s.destroy();
    await lb.stop();
    await new Promise((r) => echo.close(r));
  }
});

test('udp protection: datagrams over a source packet rate are dropped; other sources are not affected', async () => {
  const backend = createSocket('udp4');
  let received = 0;
  backend.on('message', (msg, rinfo) => {
    received++;
    backend.send(msg, rinfo.port, rinfo.address);
  });
  backend.bind(0, '127.0.0.1');
  await once(backend, 'listening');
  const lb = await startBalancer(`
listeners:
  - name: u
    protocol: udp
    listen: "127.0.0.1:0"
    pool: p
    protection:
      packets: { rate: 10, per: 10s }
      deny: [127.0.0.79]
pools:
  - name: p
    servers: [ { address: "127.0.0.1:${backend.address().port}" } ]
`);
  /** Sends `n` datagrams from `address`, then waits for the echoes: how many came back. */
  const send = async (address: string, n: number) => {
    const s = createSocket('udp4');
    s.bind(0, address);
    await once(s, 'listening');
    let back = 0;
    s.on('message', () => back++);
    for (let i = 0; i < n; i++) s.send(`d${i}`, lb.port, '127.0.0.1');
    await sleep(500);
    s.close();
    return back;
  };
  try {
    assert.equal(await send('127.0.0.75', 30), 10, 'the burst, then dropped');
    assert.equal(await send('127.0.0.76', 5), 5);
    assert.equal(await send('127.0.0.79', 5), 0, 'denied');
    const p = lb.runtime.listeners.get('u')!.protection!;
    assert.equal(p.rejected.packets, 20);
    assert.deepEqual(p.topTalkers(1, Date.now())[0], {
      ip: '127.0.0.75',
      requests: 30,
      refused: 20,
      errors: 0,
    });
    assert.equal(p.rejected.deny, 5);
    assert.equal(received, 15);
  } finally {
    await lb.stop();
    backend.close();
  }
});

test('L4 protection config: the keys each protocol takes, with clear errors', () => {
  const yaml = (protocol: string, protection: string) => `
listeners:
  - name: l
    protocol: ${protocol}
    listen: "127.0.0.1:0"
    pool: p
    protection: ${protection}
pools:
  - name: p
    servers: [ { address: "127.0.0.1:1" } ]
`;
  const tcp = parseConfig(yaml('tcp', '{ connections: { rate: 20 } }'), 'c.yaml');
  assert.deepEqual(tcp.listeners[0]!.protection!.connections, { rate: 20, per: 1000, burst: 20 });
  const udp = parseConfig(yaml('udp', '{ packets: { rate: 100, per: 1s, burst: 200 } }'), 'c.yaml');
  assert.deepEqual(udp.listeners[0]!.protection!.packets, { rate: 100, per: 1000, burst: 200 });
  assert.throws(
    () => parseConfig(yaml('tcp', '{ rateLimit: { requests: 1, per: 1s } }'), 'c.yaml'),
    /c\.yaml.*listeners\[0\]\.protection\.rateLimit.*only allowed when protocol is http, got protocol "tcp" \(a tcp listener takes connections, allow, deny\)/s,
  );
  assert.throws(
    () => parseConfig(yaml('http', '{ packets: { rate: 1 } }'), 'c.yaml'),
    /listeners\[0\]\.protection\.packets.*only allowed when protocol is udp/s,
  );
  assert.throws(
    () => parseConfig(yaml('udp', '{ connections: { perClient: 1 } }'), 'c.yaml'),
    /listeners\[0\]\.protection\.connections.*a udp listener takes packets, allow, deny/s,
  );
});
