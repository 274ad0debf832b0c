import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_BODY_BYTES, type ProbeConfig, probe } from '../../src/health/probe.js';
import { checkConfig, closedPort, startHttp, startTcp, waitFor } from './fixtures.js';

function target(port: number) {
  return { host: '127.0.0.1', port, address: `127.0.0.1:${port}` };
}

function cfg(overrides: Partial<ProbeConfig> = {}): ProbeConfig {
  return { ...checkConfig({ timeout: 2000 }), ...overrides };
}

test('http probe: sends method, path, Host (the server address by default), keep-alive', async () => {
  const http = await startHttp();
  try {
    const r = await probe(target(http.port), cfg());
    assert.deepEqual([r.ok, r.reason], [true, 'status 200']);
    const [req] = http.requests;
    assert.equal(req?.method, 'GET');
    assert.equal(req?.url, '/health');
    assert.equal(req?.headers.host, `127.0.0.1:${http.port}`);
    // The probe closes the connection itself, not the server (no TIME_WAIT left on the server).
    assert.equal(req?.headers.connection, 'keep-alive');

    const r2 = await probe(
      target(http.port),
      cfg({ method: 'HEAD', path: '/ready?x=1', host: 'api.example.com' }),
    );
    assert.equal(r2.ok, true);
    assert.equal(http.requests[1]?.method, 'HEAD');
    assert.equal(http.requests[1]?.url, '/ready?x=1');
    assert.equal(http.requests[1]?.headers.host, 'api.example.com');
  } finally {
    await http.close();
  }
});

test('http probe: passes only on a status in the expected range', async () => {
  let status = 500;
  const http = await startHttp((_req, res) => {
    res.statusCode = status;
    res.end();
  });
  try {
    assert.deepEqual(pick(await probe(target(http.port), cfg())), [false, 'status 500']);
    status = 302;
    assert.deepEqual(pick(await probe(target(http.port), cfg())), [true, 'status 302']);
    assert.deepEqual(pick(await probe(target(http.port), cfg({ expectStatus: [200, 299] }))), [
      false,
      'status 302',
    ]);
    status = 204;
    assert.deepEqual(pick(await probe(target(http.port), cfg({ expectStatus: [204, 204] }))), [
      true,
      'status 204',
    ]);
  } finally {
    await http.close();
  }
});

test('http and tcp probes: a closed port fails with connect ECONNREFUSED', async () => {
  const port = await closedPort();
  assert.deepEqual(pick(await probe(target(port), cfg())), [false, 'connect ECONNREFUSED']);
  assert.deepEqual(pick(await probe(target(port), cfg({ type: 'tcp' }))), [false, 'connect ECONNREFUSED']);
});

test('tcp probe: passes when the connection is accepted, and closes it', async () => {
  const tcp = await startTcp();
  try {
    assert.deepEqual(pick(await probe(target(tcp.port), cfg({ type: 'tcp' }))), [true, 'connected']);
    assert.equal(tcp.accepted, 1);
    await waitFor(() => tcp.open.size === 0, 'the probe connection to close');
  } finally {
    await tcp.close();
  }
});

test('http probe: expectBody must appear in the body', async () => {
  let body = 'status: fine';
  const http = await startHttp((_req, res) => res.end(body));
  try {
    assert.deepEqual(pick(await probe(target(http.port), cfg({ expectBody: 'ok' }))), [
      false,
      'body does not contain "ok"',
    ]);
    body = '{"status":"ok"}';
    assert.deepEqual(pick(await probe(target(http.port), cfg({ expectBody: '"ok"' }))), [true, 'status 200']);
    // The status is checked first.
    http.respond = (_req, res) => {
      res.statusCode = 503;
      res.end('ok');
    };
    assert.deepEqual(pick(await probe(target(http.port), cfg({ expectBody: 'ok' }))), [false, 'status 503']);
  } finally {
    await http.close();
  }
});

test('http probe: reads at most MAX_BODY_BYTES looking for expectBody', async () => {
  // An endless body without the text: the probe gives up at the cap, not at the timeout.
  const http = await startHttp((_req, res) => {
    const chunk = Buffer.alloc(16 * 1024, 'x');
    const pump = (): void => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump);
    };
    pump();
  });
  try {
    const r = await probe(target(http.port), cfg({ expectBody: 'ok', timeout: 60_000 }));
    assert.deepEqual(pick(r), [false, `body does not contain "ok" (first ${MAX_BODY_BYTES} bytes)`]);
    // Found at the very end of the allowed bytes: passes.
    http.respond = (_req, res) => res.end(`${'x'.repeat(MAX_BODY_BYTES - 2)}ok${'x'.repeat(1000)}`);
    assert.deepEqual(pick(await probe(target(http.port), cfg({ expectBody: 'ok' }))), [true, 'status 200']);
  } finally {
    await http.close();
  }
});

test('http probe: a server that accepts and never answers times out, and the socket is closed', async () => {
  const tcp = await startTcp();
  try {
    const r = await probe(target(tcp.port), cfg({ timeout: 150 }));
    assert.deepEqual(pick(r), [false, 'timeout after 150ms']);
    assert.ok(r.durationMs >= 140, `took ${r.durationMs}ms`);
    await waitFor(() => tcp.accepted === 1 && tcp.open.size === 0, 'the probe connection to close');
  } finally {
    await tcp.close();
  }
});

test('http probe: closed without an answer, or answered with garbage', async () => {
  const closing = await startTcp((socket) => socket.once('data', () => socket.end()));
  const garbage = await startTcp((socket) =>
    socket.once('data', () => socket.end('SSH-2.0-OpenSSH\r\n\r\n')),
  );
  try {
    assert.deepEqual(pick(await probe(target(closing.port), cfg())), [
      false,
      'connection closed without a response',
    ]);
    const r = await probe(target(garbage.port), cfg());
    assert.equal(r.ok, false);
    assert.match(r.reason, /^invalid response \(HPE_[A-Z_]+\)$/);
  } finally {
    await closing.close();
    await garbage.close();
  }
});

test('probe: aborting ends it at once and closes its socket', async () => {
  const tcp = await startTcp();
  try {
    const abort = new AbortController();
    const pending = probe(target(tcp.port), cfg({ timeout: 60_000 }), abort.signal);
    await waitFor(() => tcp.accepted === 1, 'the probe to connect');
    abort.abort();
    assert.deepEqual(pick(await pending), [false, 'cancelled']);
    await waitFor(() => tcp.open.size === 0, 'the probe connection to close');
    assert.deepEqual(pick(await probe(target(tcp.port), cfg(), abort.signal)), [false, 'cancelled']);
  } finally {
    await tcp.close();
  }
});

function pick(r: { ok: boolean; reason: string }): [boolean, string] {
  return [r.ok, r.reason];
}
