import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createAccessLog } from '../../src/admin/accessLog.js';
import { startAdmin } from '../../src/admin/index.js';
import { addObserver } from '../../src/admin/observers.js';
import { LOOPBACK } from '../admin/helpers.js';
import { request, serverList, startBackends, startBalancer } from '../helpers/balancer.js';
import { runCli, tempDir } from '../helpers/processes.js';

test('operators: `fulcrum protection` lists blocked clients and top talkers and unblocks; a blocked-client gauge; the access log says why a request was refused', async () => {
  const dir = tempDir('fulcrum-protection-');
  const [backend] = await startBackends(1);
  const lb = await startBalancer(`
listeners:
  - name: web
    protocol: http
    listen: "127.0.0.1:0"
    pool: p
    protection:
      rateLimit: { requests: 3, per: 10s }
      detect: { blockFor: 10m }
      surge: { floor: 100000 }
pools:
  - name: p
    servers:
${serverList([{ id: 'a', port: backend!.port }])}
`);
  const admin = await startAdmin(lb.runtime, LOOPBACK, lb.log);
  const log = await createAccessLog({ path: join(dir.path, 'access.log') });
  const remove = addObserver(lb.runtime, log);
  const target = ['--admin', `http://127.0.0.1:${admin.address.port}`];
  try {
    // A client far past its rate limit: 3 requests served, 22 refused.
    for (let i = 0; i < 25; i++)
      await request(lb.port, {
        path: `/missing-${i}`,
        localAddress: '127.0.0.80',
        headers: { 'x-request-id': `req-${i}` },
      });
    const p = lb.runtime.listeners.get('web')!.protection!;
    assert.equal(p.rejected.rate, 22);
    await log.flush();
    const lines = readFileSync(join(dir.path, 'access.log'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { status: number; refusedBy?: string; requestId: string });
    assert.equal(lines.filter((l) => l.status === 429 && l.refusedBy === 'rate').length, 22);
    // A refused request's line carries the id the client sent, as a served one does.
    assert.deepEqual(
      lines.map((l) => l.requestId),
      Array.from({ length: 25 }, (_, i) => `req-${i}`),
    );
    assert.equal(lines.filter((l) => l.status === 200 && l.refusedBy === undefined).length, 3);

    // Top talkers and the surge state, as the CLI prints them.
    const shown = await runCli(['protection', ...target]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /listener web \(http\)/);
    assert.match(shown.stdout, /refused: rate 22/);
    assert.match(shown.stdout, /surge: none/);
    assert.match(shown.stdout, /127\.0\.0\.80\s+25\s+22\s+0/);

    // A block (the detector's own rule: an error ratio over enough answers), seen and lifted.
    for (let i = 0; i < 25; i++) p.detector!.onAnswer('127.0.0.81', 404, Date.now());
    const metrics = await (await fetch(`http://127.0.0.1:${admin.address.port}/metrics`)).text();
    assert.match(metrics, /fulcrum_protection_blocked_clients\{listener="web"\} 1/);
    assert.match(metrics, /fulcrum_protection_surge_active\{listener="web"\} 0/);
    const blocked = await runCli(['protection', ...target]);
    assert.match(blocked.stdout, /127\.0\.0\.81\s+until \S+\s+100% of \d+ answers were 401\/403\/404/);
    const json = await runCli(['protection', '--json', ...target]);
    assert.equal(JSON.parse(json.stdout).listeners[0].blocked[0].ip, '127.0.0.81');
    // The dashboard's protection panel is served (its own script, loaded by the page).
    const page = await (await fetch(`http://127.0.0.1:${admin.address.port}/`)).text();
    assert.match(page, /<section id="protection"/);
    assert.match(page, /<script src="\/dashboard\/protection\.js"><\/script>/);
    const panel = await fetch(`http://127.0.0.1:${admin.address.port}/dashboard/protection.js`);
    assert.equal(panel.status, 200);
    assert.match(await panel.text(), /\/api\/protection/);
    const lifted = await runCli(['protection', 'unblock', 'web', '127.0.0.81', ...target]);
    assert.equal(lifted.code, 0, lifted.stderr);
    assert.match(lifted.stdout, /unblocked 127\.0\.0\.81 on web/);
    assert.equal(p.blockedCount(Date.now()), 0);
    const again = await runCli(['protection', 'unblock', 'web', '127.0.0.81', ...target]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /not blocked/);
  } finally {
    remove();
    await log.close();
    await admin.close();
    await lb.stop();
    await backend!.close();
  }
});
