import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { test } from 'node:test';
import { serverList, startBackends, startBalancer } from '../helpers/balancer.js';

interface Tally {
  ok: number;
  /** Answers that announced the connection's end (the drain telling the client to go). */
  closing: number;
  /** Sent on an open keep-alive connection and never answered: what a drain must avoid. */
  failed: string[];
  /** New connections refused once the listener stopped accepting: the client's cue to stop. */
  refused: number;
}

/** One keep-alive client: requests one after another with a short pause, until refused or told to stop. */
async function client(port: number, tally: Tally, stop: () => boolean): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    while (!stop()) {
      const outcome = await new Promise<'ok' | 'refused'>((resolve) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: '/whoami', agent, timeout: 5000 }, (res) => {
          res.resume();
          res.on('end', () => {
            tally.ok++;
            if (res.headers.connection === 'close') tally.closing++;
            resolve('ok');
          });
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', (err: NodeJS.ErrnoException) => {
          if (err.code === 'ECONNREFUSED') {
            tally.refused++;
            resolve('refused');
          } else {
            tally.failed.push(err.code ?? err.message);
            resolve('ok');
          }
        });
        req.end();
      });
      if (outcome === 'refused') return;
      // A pause leaves the connection idle now and then, as real clients do.
      await new Promise((r) => setTimeout(r, Math.random() * 4));
    }
  } finally {
    agent.destroy();
  }
}

test('SIGTERM-style shutdown under keep-alive load: no request sent on an open connection is lost', async () => {
  const backends = await startBackends(2);
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: p }]
pools:
  - name: p
    servers:
${serverList(backends)}
`);
  const tally: Tally = { ok: 0, closing: 0, failed: [], refused: 0 };
  let stopping = false;
  const deadline = Date.now() + 10_000;
  try {
    const clients = Array.from({ length: 32 }, () =>
      client(lb.port, tally, () => stopping || Date.now() > deadline),
    );
    while (tally.ok < 2000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const before = tally.ok;
    await lb.runtime.shutdown(5000);
    stopping = true;
    await Promise.all(clients);
    assert.ok(before >= 500, `load before the shutdown: ${before} requests`);
    assert.deepEqual(tally.failed, [], `lost requests (of ${tally.ok} answered)`);
    assert.ok(
      tally.closing > 0,
      'requests that arrived during the drain were answered with Connection: close',
    );
  } finally {
    stopping = true;
    await Promise.all(backends.map((b) => b.close()));
  }
});
