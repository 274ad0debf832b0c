/** GET /api/events: server-sent events, a snapshot at once and every interval, transitions live. */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { test } from 'node:test';
import { api, startLab, until } from './helpers.js';

interface Event {
  event: string;
  data: Record<string, unknown>;
  at: number;
}

/** Opens the stream; events accumulate in `events` until `close()`. */
function subscribe(port: number) {
  const events: Event[] = [];
  let headers: Record<string, unknown> = {};
  let buffer = '';
  const req = httpRequest({ host: '127.0.0.1', port, path: '/api/events', agent: false }, (res) => {
    headers = res.headers;
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event !== undefined && data !== undefined)
          events.push({ event, data: JSON.parse(data), at: Date.now() });
        end = buffer.indexOf('\n\n');
      }
    });
    res.on('error', () => {});
  });
  req.on('error', () => {});
  req.end();
  return { events, headers: () => headers, close: () => req.destroy() };
}

test('the event stream sends a snapshot at once, then every interval, and each transition as it happens', {
  timeout: 30_000,
}, async () => {
  const lab = await startLab(2, { adminOptions: { intervalMs: 150 } });
  const stream = subscribe(lab.port);
  try {
    await until(() => stream.events.length >= 1, 3000, 'the first snapshot');
    assert.equal(stream.headers()['content-type'], 'text/event-stream; charset=utf-8');
    const first = stream.events[0]!;
    assert.equal(first.event, 'snapshot');
    assert.deepEqual(
      (first.data.pools as Array<{ servers: Array<{ id: string }> }>)[0]!.servers.map((s) => s.id),
      ['a', 'b'],
    );
    await until(
      () => stream.events.filter((e) => e.event === 'snapshot').length >= 4,
      3000,
      'periodic snapshots',
    );
    const snaps = stream.events.filter((e) => e.event === 'snapshot');
    const gaps = snaps.slice(2).map((s, i) => s.at - snaps[i + 1]!.at);
    assert.ok(
      gaps.every((g) => g < 1000),
      `at least once a second: ${gaps.join(', ')} ms`,
    );

    await api(lab.port, 'PATCH', '/api/pools/web/servers/b', { state: 'drain' });
    await until(() => stream.events.some((e) => e.event === 'transition'), 2000, 'a transition event');
    const t = stream.events.find((e) => e.event === 'transition')!.data;
    assert.equal(t.pool, 'web');
    assert.equal(t.server, 'b');
    assert.equal(t.from, 'up');
    assert.equal(t.to, 'draining');
    assert.equal(t.reason, 'admin: drain');
  } finally {
    stream.close();
    await lab.stop();
  }
});

test('closing the admin endpoint ends open event streams', { timeout: 30_000 }, async () => {
  const lab = await startLab(1);
  const stream = subscribe(lab.port);
  await until(() => stream.events.length >= 1, 3000, 'the first snapshot');
  const started = Date.now();
  await lab.stop();
  assert.ok(Date.now() - started < 2000, 'close does not wait for the stream');
  stream.close();
});
