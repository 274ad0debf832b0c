/**
 * `fulcrum lab --quick` for real: backends, balancers, redis-server and memcached started by the
 * command on loopback. The figures are checked for their direction, not their value (memory
 * sessions without stickiness are lost and Redis loses none; consistent hashing moves about 1/N
 * and modulo far more; least response time gives the slow server the smallest share...), so a
 * broken mechanism fails. The report page is opened in Chromium and a screenshot saved to
 * test-output/lab.png. Ctrl-C stops every process the lab started.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import type { LabReport } from '../../src/lab/report/report.js';
import { spawnCli } from '../helpers/processes.js';

const CHROMIUM = '/usr/bin/chromium';
const OUTPUT = resolve('test-output');
const STORES = ['redis-server', 'memcached'].every((b) =>
  ['/usr/bin', '/usr/sbin', '/usr/local/bin'].some((d) => existsSync(join(d, b))),
)
  ? false
  : 'redis-server and memcached are needed (npm test installs them: scripts/test-deps.sh)';

/** Runs `fulcrum lab --quick --only NAMES` and returns its results.json; stops it on failure. */
async function runLab(
  t: { after(fn: () => unknown): void },
  only: string[],
): Promise<{ report: LabReport; out: string }> {
  const out = mkdtempSync(join(tmpdir(), 'fulcrum-lab-test-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const lab = spawnCli(['lab', '--quick', '--only', only.join(','), '--out', out]);
  t.after(() => lab.stop('SIGINT'));
  // A machine shared with other work starts processes slowly: the bound is generous.
  const exit = await lab.waitForExit(420_000);
  const report = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as LabReport;
  for (const r of report.results) {
    assert.equal(r.status, 'ran', `${r.name}: ${r.reason}\n${lab.output}`);
  }
  const bad = report.results.flatMap((r) =>
    (r.checks ?? []).filter((c) => !c.ok).map((c) => `${r.name}: ${c.name}: ${c.detail}`),
  );
  assert.deepEqual(bad, [], lab.output);
  assert.equal(exit.code, 0, lab.output);
  assert.match(lab.stderr, /\[1\/\d+\] /, 'progress lines as it goes');
  return { report, out };
}

function figures(report: LabReport, name: string): Record<string, number> {
  const r = report.results.find((x) => x.name === name);
  assert.ok(r?.figures, `${name} has figures`);
  return r.figures;
}

test('fulcrum lab --quick: algorithms, ip hash, sessions and stores show the expected directions', {
  skip: STORES,
  timeout: 480_000,
}, async (t) => {
  const { report, out } = await runLab(t, ['algorithms', 'ip-hash', 'sessions', 'store-restart']);

  const alg = figures(report, 'algorithms');
  assert.ok(alg['rr.slowShare']! > 0.25, 'round robin gives the slow server its third');
  assert.ok(alg['lrt.slowShare']! < alg['rr.slowShare']!, 'least response time sends the slow server less');
  assert.ok(alg['lc.slowShare']! < alg['rr.slowShare']!, 'least connections sends the slow server less');
  assert.ok(alg['wrr.slowShare']! < alg['rr.slowShare']!, 'weights are followed');

  const hash = figures(report, 'ip-hash');
  for (const n of [3, 5, 10]) {
    assert.ok(hash[`ring.moved.${n}`]! < 1.6 / n, `consistent hashing moves about 1/${n}`);
    assert.ok(hash[`modulo.moved.${n}`]! > 2 * hash[`ring.moved.${n}`]!, `modulo moves much more at N=${n}`);
  }
  assert.equal(
    hash['measured.movedFromStayers'],
    0,
    "through the balancer only the dead server's clients move",
  );

  const s = figures(report, 'sessions');
  assert.ok(s['memory.lostRequests']! > 0.3, 'memory sessions without stickiness are lost');
  assert.equal(s['sticky.lostRequests'], 0, 'sticky sessions are kept while servers live');
  assert.equal(
    s['sticky.lostOnKill'],
    s['sticky.pinnedToKilled'],
    "a dead server takes its sticky clients' sessions",
  );
  assert.equal(s['redis.lostOnKill'], 0, 'Redis loses none');
  assert.equal(s['redis.lostRequests'], 0, 'Redis loses none');
  assert.equal(s['memcached.lostOnKill'], 0, 'Memcached loses none while it runs');

  const st = figures(report, 'store-restart');
  assert.equal(st['redis.keptAfterRestart'], 1, 'Redis with its append-only file keeps the sessions');
  assert.equal(st['memcached.keptAfterRestart'], 0, 'a Memcached restart loses them');

  // The report: Markdown with the same figures, and a page readable without scripts.
  const md = readFileSync(join(out, 'report.md'), 'utf8');
  const html = readFileSync(join(out, 'index.html'), 'utf8');
  assert.doesNotMatch(html, /<script/i);
  assert.match(md, /## 1\. Algorithms with one slow server among three/);
  assert.match(md, /Not run/, 'scenarios that cannot run say so');
  if (!existsSync(CHROMIUM)) {
    t.diagnostic(`${CHROMIUM} missing: no screenshot`);
    return;
  }
  mkdirSync(OUTPUT, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'fulcrum-chromium-'));
  t.after(() => rmSync(profile, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    javaScriptEnabled: false,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
    ],
    viewport: { width: 1100, height: 900 },
    timeout: 60_000,
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(pathToFileURL(join(out, 'index.html')).href);
    const charts = await page.locator('svg').count();
    assert.ok(charts >= 6, `charts drawn: ${charts}`);
    // Every chart has its axes' tick labels and a legend, drawn with a size.
    const box = await page.locator('svg').first().boundingBox();
    assert.ok(
      box !== null && box.width > 300 && box.height > 150,
      'the first chart is drawn at a readable size',
    );
    assert.ok((await page.locator('svg text').count()) > charts * 8, 'charts carry labels');
    await page.screenshot({ path: join(OUTPUT, 'lab.png'), fullPage: true });
  } finally {
    await context.close();
  }
});

test('fulcrum lab --quick: failover and session clustering show the expected directions', {
  skip: STORES,
  timeout: 480_000,
}, async (t) => {
  const { report } = await runLab(t, ['failover', 'session-cluster']);
  const f = figures(report, 'failover');
  assert.ok(f['errors.noRetries']! > 0, 'without retries a dead server fails requests');
  assert.ok(f['errors.retries']! < f['errors.noRetries']!, 'retries hide them');
  assert.ok(f.servedAfterRestart! > 0, 'the server serves again once back');
  const c = figures(report, 'session-cluster');
  assert.equal(c['all-to-all.3.lost'], 0, 'all-to-all loses nothing when two of three die');
  assert.ok(c['primary-backup.3.lost']! > 0, 'primary-backup loses sessions whose two copies die');
  assert.ok(
    c['primary-backup.3.valuesPerNode']! < c['all-to-all.3.valuesPerNode']!,
    'primary-backup holds less per node',
  );
});

test('fulcrum lab: an unknown --only name is refused; Ctrl-C stops every process it started', async (t) => {
  const bad = spawnCli(['lab', '--only', 'algorithms,nope']);
  const exit = await bad.waitForExit(30_000);
  assert.equal(exit.code, 2);
  assert.match(bad.stderr, /unknown scenario nope; expected some of algorithms, ip-hash/);

  const out = mkdtempSync(join(tmpdir(), 'fulcrum-lab-test-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const lab = spawnCli(['lab', '--quick', '--only', 'algorithms', '--out', out]);
  t.after(() => lab.stop('SIGKILL'));
  await lab.waitFor(/round-robin, repetition 1/, { timeoutMs: 180_000 });
  const children = childrenOf(lab.pid);
  assert.ok(children.length >= 4, `backends and a balancer running: ${children.join(', ')}`);
  lab.signal('SIGINT');
  const stopped = await lab.waitForExit(30_000);
  assert.equal(stopped.code, 130, lab.output);
  for (const pid of children) assert.equal(alive(pid), false, `process ${pid} stopped with the lab`);
});

/** PIDs whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {}
  }
  return found;
}

/** Running (a zombie or a gone process counts as stopped). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
