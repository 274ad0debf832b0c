/**
 * `fulcrum lab --quick` for real (algorithms, ip hash): backends and balancers started by the
 * command on loopback. The figures are checked for their direction, not their value (least
 * response time gives the slow server the smallest share; consistent hashing moves about 1/N and
 * modulo far more), so a broken mechanism fails. The report page is opened in Chromium and a
 * screenshot saved to test-output/lab.png. The other scenarios: labSessions, labFailover,
 * labCluster; the command line: labCli.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { CHROMIUM, openChromium } from '../helpers/browser.js';
import { labFigures, runQuickLab } from '../helpers/lab.js';

const OUTPUT = resolve('test-output');

test('fulcrum lab --quick: algorithms and ip hash show the expected directions; the report reads in Chromium', {
  timeout: 115_000,
}, async (t) => {
  const { report, out } = await runQuickLab(t, ['algorithms', 'ip-hash'], 80_000);

  const alg = labFigures(report, 'algorithms');
  assert.ok(alg['rr.slowShare']! > 0.25, 'round robin gives the slow server its third');
  assert.ok(alg['lrt.slowShare']! < alg['rr.slowShare']!, 'least response time sends the slow server less');
  assert.ok(alg['lc.slowShare']! < alg['rr.slowShare']!, 'least connections sends the slow server less');
  assert.ok(alg['wrr.slowShare']! < alg['rr.slowShare']!, 'weights are followed');

  const hash = labFigures(report, 'ip-hash');
  for (const n of [3, 5, 10]) {
    assert.ok(hash[`ring.moved.${n}`]! < 1.6 / n, `consistent hashing moves about 1/${n}`);
    assert.ok(
      hash[`modulo.moved.${n}`]! > 1.8 * hash[`ring.moved.${n}`]!,
      `modulo moves much more at N=${n}`,
    );
  }
  assert.equal(
    hash['measured.movedFromStayers'],
    0,
    "through the balancer only the dead server's clients move",
  );

  // The report: Markdown with the same figures, and a page readable without scripts.
  const md = readFileSync(join(out, 'report.md'), 'utf8');
  const html = readFileSync(join(out, 'index.html'), 'utf8');
  assert.doesNotMatch(html, /<script/i);
  assert.match(md, /## 1\. Algorithms with one slow server among three/);
  if (!existsSync(CHROMIUM)) {
    t.diagnostic(`${CHROMIUM} missing: no screenshot`);
    return;
  }
  mkdirSync(OUTPUT, { recursive: true });
  const { page, close: closeBrowser } = await openChromium({
    viewport: { width: 1100, height: 900 },
    javaScriptEnabled: false,
    timeoutMs: 60_000,
  });
  try {
    await page.goto(pathToFileURL(join(out, 'index.html')).href);
    const charts = await page.locator('svg').count();
    assert.ok(charts >= 3, `charts drawn: ${charts}`);
    // Every chart has its axes' tick labels and a legend, drawn with a size.
    const box = await page.locator('svg').first().boundingBox();
    assert.ok(
      box !== null && box.width > 300 && box.height > 150,
      'the first chart is drawn at a readable size',
    );
    assert.ok((await page.locator('svg text').count()) > charts * 8, 'charts carry labels');
    await page.screenshot({ path: join(OUTPUT, 'lab.png'), fullPage: true });
  } finally {
    await closeBrowser();
  }
});
