/**
 * The dashboard in a real browser (Debian's chromium driven by playwright-core): it loads, shows
 * every server live, turns a server red when it is killed, drains one with a click and shows its
 * traffic falling to zero. A screenshot is saved to test-output/dashboard.png.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { Agent } from 'node:http';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { startAdmin } from '../../src/admin/index.js';
import { request, serverList, startBackends, startBalancer } from '../helpers/balancer.js';
import { CHROMIUM_MISSING, openChromium } from '../helpers/browser.js';

// Globals of the functions that run in the page (the tests compile without the DOM library).
// biome-ignore lint/suspicious/noExplicitAny: browser objects
declare const document: any;
// biome-ignore lint/suspicious/noExplicitAny: browser objects
declare function getComputedStyle(element: any): { backgroundColor: string; borderLeftColor: string };

const SKIP = CHROMIUM_MISSING;
const OUTPUT = resolve('test-output');

test('the dashboard shows servers live, turns a killed one red, and drains one with a click', {
  skip: SKIP,
  timeout: 90_000,
}, async (t) => {
  const backends = await startBackends(3);
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    algorithm: round-robin
    servers:
${serverList(backends)}
    healthCheck: { type: http, path: /health, interval: 250ms, timeout: 200ms, rise: 1, fall: 1 }
    retries: { attempts: 2 }
`);
  const admin = await startAdmin(
    lb.runtime,
    { listen: { host: '127.0.0.1', port: 0, text: '127.0.0.1:0' } },
    lb.log,
    { intervalMs: 1000 },
  );
  const url = `http://127.0.0.1:${admin.address.port}/`;

  // Steady traffic: two loops of keep-alive requests, a few hundred per second.
  let running = true;
  const agent = new Agent({ keepAlive: true, maxSockets: 2 });
  const loops = [0, 1].map(async () => {
    while (running) {
      await request(lb.port, { path: '/whoami', agent }).catch(() => {});
      await new Promise((r) => setTimeout(r, 4));
    }
  });

  const { page, close: closeBrowser } = await openChromium({ viewport: { width: 1400, height: 900 } });
  const errors: string[] = [];
  try {
    page.on('pageerror', (err) => errors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(msg.text());
    });
    await page.goto(url);
    const row = (id: string) => page.locator(`tr.server[data-server="${id}"]`);
    const rate = async (id: string) => Number(await row(id).locator('td.rate').getAttribute('data-rate'));

    // Loads: every server, up, with traffic, and two charts per pool.
    await page.waitForSelector('tr.server[data-server="c"]', { timeout: 10_000 });
    await page.waitForFunction(() => document.getElementById('conn')?.dataset.state === 'open');
    for (const id of ['a', 'b', 'c']) assert.equal(await row(id).getAttribute('data-state'), 'up');
    await page.waitForFunction(
      () => [...document.querySelectorAll('td.rate')].every((td) => Number(td.dataset.rate) > 0),
      undefined,
      { timeout: 10_000 },
    );
    assert.equal(await page.locator('section.pool .uplot').count(), 2, 'a rate chart and a latency chart');
    t.diagnostic(`rates before: a=${await rate('a')} b=${await rate('b')} c=${await rate('c')} req/s`);

    // Kill b: the health checks take it down and its row turns red.
    await backends[1]!.close();
    await page.waitForSelector('tr.server[data-server="b"][data-state="down"]', { timeout: 10_000 });
    // The row flashes on the transition, then settles on red.
    await page.waitForFunction(
      () =>
        getComputedStyle(document.querySelector('tr[data-server="b"]')).backgroundColor.startsWith(
          'rgba(229, 72, 77',
        ),
      undefined,
      { timeout: 3000 },
    );
    const colors = await row('b').evaluate((tr) => ({
      background: getComputedStyle(tr).backgroundColor,
      edge: getComputedStyle(tr.querySelector('td')).borderLeftColor,
      badge: getComputedStyle(tr.querySelector('.badge')).backgroundColor,
    }));
    assert.equal(colors.edge, 'rgb(229, 72, 77)', JSON.stringify(colors));
    assert.equal(colors.badge, 'rgb(229, 72, 77)', JSON.stringify(colors));
    assert.match(colors.background, /^rgba\(229, 72, 77, 0\.2\d*\)$/, JSON.stringify(colors));
    // The state comes with the transition event at once; the health column with the next
    // snapshot (every second).
    await page.waitForFunction(
      () => document.querySelector('tr[data-server="b"] td.health')?.textContent?.includes('✗') === true,
      undefined,
      { timeout: 5000 },
    );
    assert.match((await row('b').locator('td.health').textContent()) ?? '', /✗/);

    // Drain a with a click: its state turns draining and its traffic falls to zero, c takes it all.
    await row('a').locator('button[data-action="drain"]').click();
    await page.waitForSelector('tr.server[data-server="a"][data-state="draining"]', { timeout: 5000 });
    assert.equal(lb.runtime.pools.get('web')!.find('a')!.state, 'draining');
    await page.waitForFunction(
      () => {
        const r = (id: string) =>
          Number(document.querySelector(`tr[data-server="${id}"] td.rate`).dataset.rate);
        return r('a') === 0 && r('b') === 0 && r('c') > 0;
      },
      undefined,
      { timeout: 10_000 },
    );
    assert.match((await row('c').locator('td.share-cell').textContent()) ?? '', /100%/);
    t.diagnostic(`rates after: a=${await rate('a')} b=${await rate('b')} c=${await rate('c')} req/s`);
    // Let the charts draw a few more points, then keep a picture of it.
    await page.waitForTimeout(2500);
    mkdirSync(OUTPUT, { recursive: true });
    const shot = join(OUTPUT, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`screenshot: ${shot}`);
    assert.deepEqual(errors, [], 'no errors in the page');
  } catch (err) {
    // What the page looked like, and what it said, when it went wrong.
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: join(OUTPUT, 'dashboard-failure.png'), fullPage: true }).catch(() => {});
    t.diagnostic(
      `page errors: ${JSON.stringify(errors)}; screenshot: ${join(OUTPUT, 'dashboard-failure.png')}`,
    );
    throw err;
  } finally {
    running = false;
    await closeBrowser();
    await Promise.all(loops);
    agent.destroy();
    await admin.close();
    await lb.stop();
    await Promise.all(backends.map((b) => b.close().catch(() => {})));
  }
});

test('at 420 px wide the page does not overflow; totals per listener and server; empty state changes say so', {
  skip: SKIP,
  timeout: 60_000,
}, async (t) => {
  const backends = await startBackends(2);
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    servers:
${serverList(backends)}
`);
  const admin = await startAdmin(
    lb.runtime,
    { listen: { host: '127.0.0.1', port: 0, text: '127.0.0.1:0' } },
    lb.log,
    { intervalMs: 200 },
  );
  for (let i = 0; i < 4; i++) await request(lb.port, { path: '/whoami' });
  await request(lb.port, { path: '/missing' }).catch(() => {});
  const { page, close: closeBrowser } = await openChromium({ viewport: { width: 420, height: 900 } });
  try {
    await page.goto(`http://127.0.0.1:${admin.address.port}/`);
    await page.waitForSelector('tr.server[data-server="b"]', { timeout: 10_000 });
    await page.waitForFunction(() => document.querySelector('#listeners tr td.num') !== null);
    const widths = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      view: document.documentElement.clientWidth,
    }));
    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: join(OUTPUT, 'dashboard-420.png'), fullPage: true });
    t.diagnostic(`screenshot: ${join(OUTPUT, 'dashboard-420.png')}`);
    assert.ok(widths.page <= widths.view, `the page scrolls sideways: ${JSON.stringify(widths)}`);
    assert.match(
      (await page.locator('#events').textContent()) ?? '',
      /^No state changes since this page was opened/,
    );
    const listener = await page.locator('#listeners tr[data-listener="web"] td').allTextContents();
    assert.equal(listener[4], '5', `requests: ${listener.join(' | ')}`);
    assert.match(listener[8] ?? '', /B$/);
    const total = async (id: string) =>
      Number(await page.locator(`tr.server[data-server="${id}"] td.total`).textContent());
    assert.equal((await total('a')) + (await total('b')), 5);
  } finally {
    await closeBrowser();
    await admin.close();
    await lb.stop();
    await Promise.all(backends.map((b) => b.close().catch(() => {})));
  }
});
