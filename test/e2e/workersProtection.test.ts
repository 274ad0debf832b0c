/**
 * Protection seen as one balancer with `workers: 2` (issue 14, docs/workers.md): a supervisor and
 * two worker processes in front of a real backend. A client flooded over the rate limit is refused
 * and blocked by whichever worker accepts it; the supervisor's `GET /api/protection`, `/metrics`
 * and `fulcrum protection` show the workers' figures merged, and one DELETE unblocks it everywhere.
 * A worker SIGKILLed and replaced takes none of its refusals out of the totals.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request, serverList, startBackends } from '../helpers/balancer.js';
import { type CliProcess, freePort, runCli, spawnCli, tempDir } from '../helpers/processes.js';

const FLOODER = '127.0.0.7';
const OTHER = '127.0.0.10';

interface ProtectionView {
  listeners: {
    listener: string;
    rejected: Record<string, number>;
    blocked: { ip: string; until: string; reason: string }[];
    top: { ip: string; requests: number; refused: number }[];
  }[];
}

async function protection(admin: number): Promise<ProtectionView['listeners'][number]> {
  const view = JSON.parse((await request(admin, { path: '/api/protection' })).body) as ProtectionView;
  const web = view.listeners.find((l) => l.listener === 'web');
  assert.ok(web !== undefined, JSON.stringify(view));
  return web;
}

async function status(port: number, from: string): Promise<number> {
  return request(port, { path: '/', localAddress: from, timeoutMs: 5000 }).then(
    (r) => r.status,
    () => 0,
  );
}

/**
 * `fulcrum start` with `workers: 2`, an admin endpoint and one http listener with `protection`
 * (YAML lines under `protection:`); `body` runs once both workers serve, and everything is
 * stopped after it, failed or not.
 */
async function withWorkers(
  protection: string,
  body: (lb: { web: number; admin: number; lb: CliProcess }) => Promise<void>,
): Promise<void> {
  const dir = tempDir();
  const [backend] = await startBackends(1);
  let lb: CliProcess | undefined;
  try {
    const [web, admin] = [await freePort(), await freePort()];
    const file = dir.write(
      'fulcrum.yaml',
      `
workers: 2
workerTimeout: 3s
shutdownTimeout: 2s
admin: { listen: "127.0.0.1:${admin}" }
listeners:
  - name: web
    protocol: http
    listen: "127.0.0.1:${web}"
    pool: p
    protection:
${protection}pools:
  - name: p
    servers:
${serverList([{ id: 'a', port: backend!.port }])}
`,
    );
    lb = spawnCli(['start', '-c', file]);
    await lb.waitFor('2 workers serving', { timeoutMs: 30_000 });
    await body({ web, admin, lb });
  } finally {
    await lb?.stop('SIGTERM', 8000).catch(() => {});
    await backend!.close();
    dir.remove();
  }
}

test('workers: 2: GET /api/protection, /metrics and DELETE see every worker', {
  timeout: 90_000,
}, async (t) => {
  await withWorkers(
    `      rateLimit: { requests: 20, per: 1s, burst: 5 }
      detect: { enabled: true, blockFor: 1m, window: 300ms, sustain: 2 }
`,
    async ({ web, admin }) => {
      // Flood from one address (new connections: the kernel spreads them over both workers) until
      // the merged view shows it blocked.
      const seen = new Set<number>();
      const deadline = Date.now() + 30_000;
      let view = await protection(admin);
      while (!view.blocked.some((b) => b.ip === FLOODER)) {
        assert.ok(Date.now() < deadline, `never blocked: ${JSON.stringify(view)}`);
        for (let i = 0; i < 20; i++) seen.add(await status(web, FLOODER));
        view = await protection(admin);
      }
      // A little more, so that the other worker likely blocks it too (not required: DELETE is
      // checked through the merged view, which asks every worker).
      for (let i = 0; i < 40; i++) seen.add(await status(web, FLOODER));
      view = await protection(admin);
      t.diagnostic(`flooder saw ${[...seen].join(', ')}; view: ${JSON.stringify(view)}`);
      assert.ok(seen.has(429), 'rate-limited first');
      assert.ok((view.rejected.rate ?? 0) > 0, JSON.stringify(view.rejected));
      assert.equal(view.blocked.filter((b) => b.ip === FLOODER).length, 1, 'one row for the client');
      assert.equal(view.top[0]?.ip, FLOODER, JSON.stringify(view.top));
      assert.equal(await status(web, OTHER), 200, 'others are served');

      // /metrics on the supervisor: the workers' refusals, summed (the view came after them).
      const text = (await request(admin, { path: '/metrics' })).body;
      const metric = (reason: string) =>
        Number(
          new RegExp(
            `^fulcrum_protection_rejected_total\\{listener="web",reason="${reason}"\\} (\\d+)`,
            'm',
          ).exec(text)?.[1] ?? 0,
        );
      const after = await protection(admin);
      assert.ok(metric('rate') > 0 && metric('rate') <= after.rejected.rate!, text);
      assert.ok(metric('rate') >= view.rejected.rate!, `${metric('rate')} < ${view.rejected.rate}`);
      assert.match(text, /^fulcrum_protection_blocked_clients\{listener="web"\} 1$/m);
      // The request of the other client left its upstream connection idle in one worker.
      const idle = Number(/^fulcrum_server_idle_connections\{pool="p",server="a"\} (\d+)$/m.exec(text)?.[1]);
      assert.ok(
        idle >= 1,
        text
          .split('\n')
          .filter((l) => l.includes('idle_connections'))
          .join('\n'),
      );

      // The CLI works against the supervisor unchanged.
      const cli = await runCli(['protection', '--admin', `http://127.0.0.1:${admin}`]);
      assert.equal(cli.code, 0, cli.stderr);
      assert.match(cli.stdout, new RegExp(FLOODER.replaceAll('.', '\\.')));

      // One DELETE unblocks it in every worker; a second finds nothing.
      const del = await request(admin, { method: 'DELETE', path: `/api/protection/web/blocked/${FLOODER}` });
      assert.equal(del.status, 200, del.body);
      assert.deepEqual((await protection(admin)).blocked, []);
      const again = await request(admin, {
        method: 'DELETE',
        path: `/api/protection/web/blocked/${FLOODER}`,
      });
      assert.equal(again.status, 404, again.body);
      const none = await request(admin, {
        method: 'DELETE',
        path: `/api/protection/nope/blocked/${FLOODER}`,
      });
      assert.equal(none.status, 404, none.body);

      // Served again once its rate-limit bucket refilled (a few requests: under the burst anywhere).
      await new Promise((r) => setTimeout(r, 1200));
      const served: number[] = [];
      for (let i = 0; i < 4; i++) served.push(await status(web, FLOODER));
      assert.deepEqual(served, [200, 200, 200, 200]);
    },
  );
});

interface WorkerRow {
  id: number;
  pid: number;
  restarts: number;
  state: string;
}

async function workerRows(admin: number): Promise<WorkerRow[]> {
  const body = JSON.parse((await request(admin, { path: '/api/status' })).body) as { workers?: WorkerRow[] };
  return body.workers ?? [];
}

test('workers: 2: the refusals of a replaced worker stay in /api/protection and /metrics', {
  timeout: 120_000,
}, async (t) => {
  await withWorkers(
    `      rateLimit: { requests: 5, per: 1m, burst: 2 }
`,
    async ({ web, admin }) => {
      // Refused by the rate limit (new connections: the kernel spreads them over both workers).
      const seen: number[] = [];
      for (let i = 0; i < 40; i++) seen.push(await status(web, FLOODER));
      assert.ok(seen.includes(429), seen.join(', '));
      const refused = seen.filter((s) => s === 429).length;

      // The refused total, as /api/protection and /metrics show it; it must never go down.
      const metric = async () => {
        const text = (await request(admin, { path: '/metrics' })).body;
        return Number(
          /^fulcrum_protection_rejected_total\{listener="web",reason="rate"\} (\d+)/m.exec(text)?.[1] ?? 0,
        );
      };
      const api = async () => (await protection(admin)).rejected.rate ?? 0;
      let highest = { api: 0, metric: 0 };
      const check = async (when: string) => {
        const now = { api: await api(), metric: await metric() };
        assert.ok(
          now.api >= highest.api && now.metric >= highest.metric,
          `${when}: ${JSON.stringify(now)} after ${JSON.stringify(highest)}`,
        );
        highest = now;
        return now;
      };
      // Every refusal is counted (the /metrics read also asked each worker for its figures); a request
      // that timed out here may have been refused too.
      const before = await check('before');
      t.diagnostic(`flooder saw ${seen.join(', ')}; refused total ${JSON.stringify(before)}`);
      assert.ok(before.api >= refused && before.metric === before.api, JSON.stringify(before));

      // SIGKILL each worker in turn, reading the totals until its replacement serves.
      for (let round = 1; round <= 2; round++) {
        const rows = await workerRows(admin);
        const victim = rows.find((w) => w.id === round)!;
        process.kill(victim.pid, 'SIGKILL');
        const deadline = Date.now() + 30_000;
        for (;;) {
          await check(`after killing worker ${victim.id} (pid ${victim.pid})`);
          const now = await workerRows(admin);
          const total = now.reduce((n, w) => n + w.restarts, 0);
          if (now.length === 2 && now.every((w) => w.state === 'serving') && total === round) break;
          assert.ok(Date.now() < deadline, `worker ${victim.id} not replaced: ${JSON.stringify(now)}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      // Both workers are new: every refusal is the retired ones'.
      const after = await check('both replaced');
      t.diagnostic(`after both workers were replaced: ${JSON.stringify(after)}`);
      assert.deepEqual(after, before);
    },
  );
});
