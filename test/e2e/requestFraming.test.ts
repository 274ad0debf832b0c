/**
 * Request framing end to end: a balancer in front of a raw TCP server that records every byte it
 * receives, per connection. Malformed chunk-size lines must get the client a 400 and must never
 * hand the server any byte of the bad chunk; a valid request with extensions and trailers goes
 * through byte for byte.
 */
import assert from 'node:assert/strict';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';

/** One connection the raw server accepted: everything it received, and whether it has closed. */
interface Upstream {
  data: Buffer;
  closed: boolean;
  socket: Socket;
}

/**
 * A raw TCP server that records each connection's bytes and answers 200 once a request looks
 * complete: at its head when it is not chunked, else when the bytes after the head end in
 * CRLF CRLF (the last chunk and its trailers). It parses no more than that: what reached it is
 * what the tests check.
 */
function startRawServer(): Promise<{ server: Server; port: number; conns: Upstream[] }> {
  const conns: Upstream[] = [];
  const server = createServer((socket) => {
    const c: Upstream = { data: Buffer.alloc(0), closed: false, socket };
    let from = 0; // where the request being received starts
    conns.push(c);
    socket.on('data', (d: Buffer) => {
      c.data = Buffer.concat([c.data, d]);
      const text = c.data.toString('latin1', from);
      const headEnd = text.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const chunked = /\r\ntransfer-encoding: chunked\r\n/i.test(text.slice(0, headEnd + 2));
      if (chunked && !(text.length > headEnd + 4 && text.endsWith('\r\n\r\n'))) return;
      from = c.data.length;
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      c.closed = true;
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, port: (server.address() as AddressInfo).port, conns }),
    ),
  );
}

async function waitFor(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A client connection to the balancer that collects what it answers. */
async function client(port: number): Promise<{ socket: Socket; got: () => string; closed: Promise<void> }> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.on('close', () => r()));
  await new Promise((r) => socket.on('connect', r));
  return { socket, got: () => Buffer.concat(chunks).toString('latin1'), closed };
}

/** A chunked request head, to a path of the pool the test wants. */
const head = (path: string) => `POST ${path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n`;

/** The body bytes a server connection received after its last request head. */
function bodyOf(c: Upstream): string {
  const text = c.data.toString('latin1');
  const end = text.indexOf('\r\n\r\n', text.lastIndexOf('POST /'));
  return end < 0 ? '' : text.slice(end + 4);
}

/** What each server connection had received, and whether it was open, at some moment. */
function snapshot(conns: Upstream[]): Map<Upstream, { bytes: number; closed: boolean }> {
  return new Map(conns.map((u) => [u, { bytes: u.data.length, closed: u.closed }]));
}

/** Server connections opened, written to or closed since `snap`. */
function touchedSince(conns: Upstream[], snap: ReturnType<typeof snapshot>): Upstream[] {
  return conns.filter((u) => {
    const was = snap.get(u);
    return was === undefined || was.bytes !== u.data.length || was.closed !== u.closed;
  });
}

describe('request framing, end to end', () => {
  let raw: Awaited<ReturnType<typeof startRawServer>>;
  let lb: TestBalancer;
  before(async () => {
    raw = await startRawServer();
    // Two pools on the same raw server: one never keeps idle connections (every request opens
    // one), the other reuses them (a request is written at once to a pooled connection).
    lb = await startBalancer(`
listeners:
  - name: web
    protocol: http
    listen: "127.0.0.1:0"
    pool: pooled
    routes:
      - { match: { pathPrefix: /fresh }, pool: fresh }
pools:
  - name: fresh
    maxIdlePerServer: 0
    servers: [{ address: "127.0.0.1:${raw.port}", name: raw }]
  - name: pooled
    servers: [{ address: "127.0.0.1:${raw.port}", name: raw }]
`);
  });
  after(async () => {
    await lb.stop();
    for (const c of raw.conns) c.socket.destroy();
    raw.server.close();
  });

  /** Sends `bytes` on a new client connection; resolves with the answer once it closes. */
  async function exchange(bytes: string): Promise<string> {
    const c = await client(lb.port);
    c.socket.write(bytes);
    await c.closed;
    return c.got();
  }

  const BAD_LINES: Array<[string, string, RegExp]> = [
    ['"2;" (no extension after ";")', '2;\r\naa\r\n0\r\n\r\n', /without a name/],
    ['an unterminated quoted extension', '5;a="abc\r\nhello\r\n0\r\n\r\n', /quoted/],
  ];

  for (const [name, body, why] of BAD_LINES) {
    test(`${name} with its head, new upstream connection: 400, the server gets nothing`, async () => {
      const snap = snapshot(raw.conns);
      const answer = await exchange(head('/fresh') + body);
      assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.match(answer, /connection: close\r\n/);
      assert.ok(
        lb.log.lines.some((l) => why.test(l)),
        lb.log.lines.join(''),
      );
      // The body that came with the head is checked before the exchange starts: no server is
      // chosen, no connection opened, nothing sent.
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(touchedSince(raw.conns, snap), [], 'no upstream connection was opened');
    });

    test(`${name} with its head, pooled upstream connection: 400, the server gets nothing`, async () => {
      assert.match(await exchange('GET /warm HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'), / 200 OK/);
      await waitFor(() => lb.runtime.pools.get('pooled')!.servers[0]!.active === 0, 'the lease to end');
      const snap = snapshot(raw.conns);
      const answer = await exchange(head('/pooled') + body);
      assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
      // Refused before the exchange started: the idle connection was not touched, and the next
      // request is sent on it.
      assert.deepEqual(touchedSince(raw.conns, snap), [], 'no upstream connection was touched');
      assert.match(await exchange('GET /again HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'), / 200 OK/);
      const used = touchedSince(raw.conns, snap);
      assert.equal(used.length, 1);
      assert.equal(snap.has(used[0]!), true, 'the idle connection served the next request');
      assert.doesNotMatch(used[0]!.data.toString('latin1'), /POST \/pooled/, 'no byte of the bad request');
    });

    test(`${name} after the head went out: 400, no byte of the bad chunk, upstream closed`, async (t) => {
      for (const path of ['/fresh', '/pooled']) {
        const snap = snapshot(raw.conns);
        const c = await client(lb.port);
        c.socket.write(`${head(path)}5;ok=1\r\nhello\r\n`);
        await waitFor(
          () => touchedSince(raw.conns, snap).some((u) => bodyOf(u) === '5;ok=1\r\nhello\r\n'),
          'the first chunk',
        );
        const up = touchedSince(raw.conns, snap).find((u) => bodyOf(u) === '5;ok=1\r\nhello\r\n')!;
        c.socket.write(body);
        await c.closed;
        assert.match(c.got(), /^HTTP\/1\.1 400 Bad Request\r\n/);
        // The head was on its way already: the only way to stop the request is to drop the
        // connection, so the server sees an unfinished body and the connection is never reused.
        await waitFor(() => up.closed, 'the upstream connection to close');
        assert.equal(bodyOf(up), '5;ok=1\r\nhello\r\n');
      }

      // Cut inside the bad line: what looked valid so far was forwarded, never a data byte.
      const snap = snapshot(raw.conns);
      const c = await client(lb.port);
      c.socket.write(`${head('/fresh')}5\r\nhello\r\n`);
      await waitFor(
        () => touchedSince(raw.conns, snap).some((u) => bodyOf(u) === '5\r\nhello\r\n'),
        'a chunk',
      );
      const up = touchedSince(raw.conns, snap).find((u) => bodyOf(u) === '5\r\nhello\r\n')!;
      const cut = body.indexOf('\r');
      c.socket.write(body.slice(0, cut));
      await waitFor(() => bodyOf(up).length > '5\r\nhello\r\n'.length, 'the start of the size line');
      c.socket.write(body.slice(cut));
      await c.closed;
      assert.match(c.got(), /^HTTP\/1\.1 400 Bad Request\r\n/);
      await waitFor(() => up.closed, 'the upstream connection to close');
      assert.equal(bodyOf(up), `5\r\nhello\r\n${body.slice(0, cut)}`);
      t.diagnostic(`cut inside the bad line: the server got ${JSON.stringify(bodyOf(up))}, then a close`);
    });
  }

  test('a valid body with extensions and trailers goes through byte for byte', async () => {
    const body = '5;name=value;q="a\\"b"\r\nhello\r\n6;x\r\n world\r\n0;last="\\\\"\r\nX-Sum: 11\r\n\r\n';
    for (const path of ['/fresh', '/pooled']) {
      const snap = snapshot(raw.conns);
      const answer = await exchange(head(path).replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n') + body);
      assert.match(answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/);
      const used = touchedSince(raw.conns, snap).filter((u) => bodyOf(u) === body);
      assert.equal(used.length, 1, path);
    }
  });
});
