import assert from 'node:assert/strict';
import { type AddressInfo, createServer, type Server as NetServer, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Server } from '../../src/core/server.js';
import {
  type IdleSettings,
  KEEP_ALIVE_MARGIN_MS,
  keepAliveFor,
  type UpstreamConnection,
  type UpstreamOwner,
  UpstreamPool,
} from '../../src/proxy/http/upstreamPool.js';

/** An owner that resolves once its connection is open. */
function owner(): UpstreamOwner & { connected: Promise<void> } {
  let resolve!: () => void;
  const connected = new Promise<void>((r) => {
    resolve = r;
  });
  return {
    connected,
    onUpstreamConnect: () => resolve(),
    onUpstreamData: () => false,
    onUpstreamDrain: () => {},
    onUpstreamClose: () => {},
  };
}

function waitFor(check: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (check()) return resolve();
      if (Date.now() > until) return reject(new Error('condition not met in time'));
      setTimeout(tick, 10);
    };
    tick();
  });
}

describe('UpstreamPool', () => {
  let raw: NetServer;
  const open = new Set<Socket>();
  let target: Server;
  const settings: IdleSettings = { maxIdlePerServer: 4, timeouts: { idle: 30_000 } };

  before(async () => {
    raw = createServer((s) => {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => {});
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    const port = (raw.address() as AddressInfo).port;
    target = new Server({
      id: 'a',
      host: '127.0.0.1',
      port,
      address: `127.0.0.1:${port}`,
      weight: 1,
      backup: false,
    });
  });
  after(() => {
    for (const s of open) s.destroy();
    return new Promise<void>((r) => raw.close(() => r()));
  });

  async function connected(
    pool: UpstreamPool,
    server = target,
    using = settings,
  ): Promise<UpstreamConnection> {
    const o = owner();
    const up = pool.listFor(server, using).open(o);
    await o.connected;
    return up;
  }

  test('one idle list per server; a returned connection is reused', async () => {
    const pool = new UpstreamPool();
    const list = pool.listFor(target, settings);
    assert.equal(pool.listFor(target, settings), list);
    const up = await connected(pool);
    list.put(up);
    assert.equal(pool.idleCount(target), 1);
    assert.equal(list.take(owner()), up);
    assert.equal(pool.idleCount(target), 0);
    list.put(up);
    pool.close();
  });

  test('closeServer closes its idle connections, and those in use when they come back', async () => {
    const pool = new UpstreamPool();
    const idle = await connected(pool);
    const busy = await connected(pool);
    pool.listFor(target, settings).put(idle);
    await waitFor(() => open.size === 2);
    pool.closeServer(target);
    await waitFor(() => open.size === 1);
    // The exchange on `busy` ends after the server left: it is closed, not kept.
    pool.listFor(target, settings).put(busy);
    assert.equal(pool.idleCount(target), 0);
    await waitFor(() => open.size === 0);
    pool.close();
  });

  test('a connection opened before the server was readdressed is not kept', async () => {
    const pool = new UpstreamPool();
    const moved = new Server({ ...target, id: 'm', backup: false });
    const up = await connected(pool, moved);
    moved.port = 1; // a reload gave the same server another address
    pool.listFor(moved, settings).put(up);
    assert.equal(pool.idleCount(moved), 0);
    assert.equal(up.socket.destroyed, true);
    pool.close();
  });

  test('close() ends every idle connection; exchanges finishing later keep nothing', async () => {
    const pool = new UpstreamPool();
    const idle = await connected(pool);
    const late = await connected(pool);
    pool.listFor(target, settings).put(idle);
    pool.close();
    await waitFor(() => open.size === 1);
    pool.listFor(target, settings).put(late);
    assert.equal(pool.idleCount(target), 0);
    await waitFor(() => open.size === 0);
  });

  test('idle connections are closed after the idle timeout, and never reused past it', async () => {
    const pool = new UpstreamPool();
    const short: IdleSettings = { maxIdlePerServer: 4, timeouts: { idle: 50 } };
    const list = pool.listFor(target, short);
    const up = await connected(pool, target, short);
    list.put(up);
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(list.take(owner()), null, 'expired: not handed out even before the sweep ran');
    const swept = await connected(pool, target, short);
    list.put(swept);
    await waitFor(() => swept.socket.destroyed, 2000);
    assert.equal(pool.idleCount(target), 0);
    pool.close();
  });

  test('no more than maxIdlePerServer are kept', async () => {
    const pool = new UpstreamPool();
    const two: IdleSettings = { maxIdlePerServer: 2, timeouts: { idle: 30_000 } };
    const conns = await Promise.all([1, 2, 3].map(() => connected(pool)));
    for (const up of conns) pool.listFor(target, two).put(up);
    assert.equal(pool.idleCount(target), 2);
    assert.equal(conns[2]!.socket.destroyed, true);
    pool.close();
  });

  test("a server's keep-alive hint shortens the keep time: a margin below it, never past it", async () => {
    assert.equal(KEEP_ALIVE_MARGIN_MS, 1000);
    assert.equal(keepAliveFor(-1), Number.POSITIVE_INFINITY);
    assert.equal(keepAliveFor(5000), 4000);
    assert.equal(keepAliveFor(2000), 1000);
    assert.equal(keepAliveFor(1000), 500);
    assert.equal(keepAliveFor(0), 0);
    const pool = new UpstreamPool();
    const list = pool.listFor(target, settings);
    const kept = await connected(pool);
    list.put(kept, 5000);
    assert.ok(kept.idleUntil - kept.idleSince === 4000);
    assert.equal(list.take(owner()), kept);
    // timeout=0: the server closes at once, so the connection is not kept.
    list.put(kept, 0);
    assert.equal(kept.socket.destroyed, true);
    const short = await connected(pool);
    list.put(short, 100); // kept 50 ms
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(list.take(owner()), null);
    assert.equal(short.socket.destroyed, true);
    pool.close();
  });
});
