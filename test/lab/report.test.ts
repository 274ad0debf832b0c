/**
 * The lab's report without running anything: statistics, the SVG charts (axes, ticks, legend,
 * whiskers, markers), and the HTML and Markdown pages built from one synthetic run.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderHtml } from '../../src/lab/report/html.js';
import { renderMarkdown } from '../../src/lab/report/markdown.js';
import type { LabReport } from '../../src/lab/report/report.js';
import { barChartSvg, lineChartSvg, niceTicks } from '../../src/lab/report/svg.js';
import type { BarChart, LineChart } from '../../src/lab/scenario.js';
import { fmtSpread, quantile, shares, spread } from '../../src/lab/stats.js';

test('stats: quantiles by nearest rank, the median of an even count averages, shares per key', () => {
  assert.equal(quantile([5, 1, 4, 2, 3], 0.5), 3);
  assert.equal(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.99), 10);
  assert.ok(Number.isNaN(quantile([], 0.5)));
  assert.deepEqual(spread([4, 2]), { median: 3, min: 2, max: 4, n: 2 });
  assert.equal(fmtSpread(spread([1, 2, 9])), '2.0 (1.0–9.0)');
  assert.equal(fmtSpread(spread([7])), '7.0');
  assert.deepEqual(
    shares(['a', 'b', 'a', 'a'], (x) => x, ['a', 'b', 'c']),
    [0.75, 0.25, 0],
  );
});

test('niceTicks: round steps covering the range', () => {
  assert.deepEqual(niceTicks(0, 100), [0, 20, 40, 60, 80, 100]);
  assert.deepEqual(niceTicks(0, 0.33), [0, 0.1, 0.2, 0.3, 0.4]);
  const t = niceTicks(0, 7);
  assert.ok(t[0] === 0 && t[t.length - 1]! >= 7);
});

const bar: BarChart = {
  kind: 'bar',
  title: 'Share <per> server',
  yLabel: 'share (%)',
  categories: ['round-robin', 'least-response-time'],
  series: [
    { name: 'fast', values: [66, 99], low: [60, 98], high: [70, 100] },
    { name: 'slow', values: [33, 1] },
  ],
};
const line: LineChart = {
  kind: 'line',
  title: 'Moved',
  xLabel: 'N',
  yLabel: '%',
  series: [
    {
      name: 'modulo',
      points: [
        [2, 50],
        [3, 66],
      ],
    },
    {
      name: 'ideal',
      points: [
        [2, 50],
        [3, 33],
      ],
      dashed: true,
    },
  ],
  markers: [{ x: 2.5, label: 'killed' }],
};

test('bar chart: one bar per value, whiskers, category and tick labels, legend, escaped text', () => {
  const svg = barChartSvg(bar);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.equal(svg.match(/<rect x=/g)?.length, 4 + 2, 'four bars and two legend swatches');
  assert.equal(svg.match(/<path d="M/g)?.length, 2, 'whiskers for the series with a spread');
  for (const text of ['round-robin', 'least-response-time', '>fast<', '>slow<', 'share (%)', '>100<'])
    assert.ok(svg.includes(text), text);
  assert.ok(svg.includes('Share &lt;per&gt; server'));
});

test('line chart: a polyline per series, points, dashed series, markers, axis titles', () => {
  const svg = lineChartSvg(line);
  assert.equal(svg.match(/<polyline/g)?.length, 2);
  assert.equal(svg.match(/<circle/g)?.length, 4);
  assert.match(svg, /stroke-dasharray="6 4"/);
  assert.ok(svg.includes('>killed<') && svg.includes('>N<') && svg.includes('>modulo<'));
});

test('the report pages: every scenario with its claim, checks, charts; skipped ones with their reason', () => {
  const report: LabReport = {
    generatedAt: '2026-01-01T00:00:00Z',
    quick: true,
    machine: 'test machine',
    seconds: 12,
    results: [
      {
        name: 'algorithms',
        title: 'Algorithms',
        claim: 'Round robin ignores slowness.',
        setup: 'Three backends.',
        status: 'ran',
        seconds: 5,
        tables: [{ caption: 'Shares', columns: ['algorithm', 'slow %'], rows: [['round-robin', '33.3']] }],
        charts: [bar, line],
        meaning: 'Adaptive algorithms avoid the slow server.',
        checks: [
          { name: 'rr about a third', ok: true, detail: '33 %' },
          { name: 'lrt smallest', ok: false, detail: '40 %' },
        ],
        figures: { 'rr.slowShare': 0.33 },
      },
      {
        name: 'redundancy',
        title: 'Redundancy',
        claim: 'A pair takes over.',
        setup: 'keepalived.',
        status: 'skipped',
        reason: 'Needs root.',
        seconds: 0,
      },
    ],
  };
  const html = renderHtml(report);
  assert.doesNotMatch(html, /<script|<link|src=/i, 'self-contained, no script');
  assert.equal(html.match(/<svg/g)?.length, 2);
  for (const text of [
    'Round robin ignores slowness.',
    'Three backends.',
    'Adaptive algorithms',
    '✘ not ok',
    '1 of 2 checks hold',
    'Needs root.',
    'not run',
  ]) {
    assert.ok(html.includes(text), text);
  }
  const md = renderMarkdown(report);
  assert.match(md, /\| round-robin \| 33\.3 \|/);
  assert.match(md, /- ❌ lrt smallest: 40 %/);
  assert.match(md, /\*\*Not run\.\*\* Needs root\./);
  assert.match(md, /\| N \| modulo \| ideal \|/, "a line chart's points are written out");
});
