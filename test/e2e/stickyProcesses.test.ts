/**
 * Issue 5's proof with real OS processes: two `fulcrum start` balancers sharing one redis-server
 * route every client the same way, whichever balancer it reaches first.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from '../helpers/balancer.js';
import { type CliProcess, freePort, spawnBackend, spawnCli, tempDir } from '../helpers/processes.js';
import { startRedis } from '../helpers/redisServer.js';

test('two balancer processes sharing one Redis agree on each client (source affinity)', {
  timeout: 60_000,
}, async (t) => {
  const redis = await startRedis();
  const dir = tempDir();
  const procs: CliProcess[] = [];
  try {
    const backends = await Promise.all(['a', 'b', 'c'].map((id) => spawnBackend(id)));
    procs.push(...backends.map((b) => b.proc));
    const ports = [await freePort(), await freePort()];
    const balancers = ports.map((port, i) => {
      const file = dir.write(
        `lb${i}.yaml`,
        `
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:${port}", pool: web }]
pools:
  - name: web
    algorithm: round-robin
    sticky: { type: source, store: "${redis.url}", ttl: 10m }
    servers:
${backends.map((b, k) => `      - { address: "127.0.0.1:${b.port}", name: ${'abc'[k]} }`).join('\n')}
`,
      );
      return spawnCli(['start', '-c', file]);
    });
    procs.push(...balancers);
    await Promise.all(balancers.map((b, i) => b.waitForPort(ports[i]!, 10_000)));
    // Put the second balancer's rotation one step ahead, so that without a shared table the two
    // would choose differently for the same new client.
    await request(ports[1]!, { path: '/whoami', localAddress: '127.0.0.200' });
    // Each client first meets one balancer (alternating), then both, several times.
    let agreed = 0;
    for (let k = 0; k < 12; k++) {
      const localAddress = `127.0.0.${10 + k}`;
      const first = ports[k % 2]!;
      const other = ports[(k + 1) % 2]!;
      const pinned = (await request(first, { path: '/whoami', localAddress })).headers['x-served-by'];
      // A new client's server is written to Redis just after its first response leaves (not
      // before): give that write a moment, as a real client's next request would (docs/sessions.md).
      await new Promise((r) => setTimeout(r, 20));
      for (let round = 0; round < 3; round++) {
        for (const port of [other, first]) {
          const r = await request(port, { path: '/whoami', localAddress });
          assert.equal(r.headers['x-served-by'], pinned, `${localAddress} via :${port}`);
          agreed++;
        }
      }
    }
    t.diagnostic(`${agreed} requests from 12 clients over 2 balancer processes: all on their pinned server`);
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await redis.stop();
    dir.remove();
  }
});
