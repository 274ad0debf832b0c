/**
 * The report's charts as inline SVG, drawn here without a library or a script: bar charts
 * (grouped, with min–max whiskers) and line charts (with vertical markers), each with axes, tick
 * labels, axis titles and a legend. Readable offline and printed.
 */
import type { BarChart, Chart, LineChart } from '../scenario.js';

const WIDTH = 720;
const HEIGHT = 340;
const MARGIN = { left: 70, right: 24, top: 58, bottom: 64 };
/** Colour-blind safe (Paul Tol's bright scheme). */
const COLORS = ['#4477AA', '#EE6677', '#228833', '#CCBB44', '#66CCEE', '#AA3377', '#BBBBBB'];

/** XML text escaping. */
export function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** About `count` round tick values covering [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (max === min) max = min + 1;
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const first = Math.floor(min / step) * step;
  const ticks: number[] = [];
  for (let v = first; v <= max + step * 0.5; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1]! < max) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

function tickText(v: number): string {
  if (Math.abs(v) >= 10_000) return `${Number((v / 1000).toPrecision(4))}k`;
  return String(Number(v.toPrecision(4)));
}

/** A bar's value label: three significant digits. */
function valueText(v: number): string {
  return tickText(Number(v.toPrecision(3)));
}

function frame(title: string, body: string, legend: string[], dashed: boolean[] = []): string {
  // Each legend entry as wide as its text (about 7 px a character at 12 px).
  let next = MARGIN.left;
  const items = legend
    .map((name, i) => {
      const x = next;
      next += 34 + name.length * 7;
      const swatch = dashed[i]
        ? `<line x1="${x}" y1="40" x2="${x + 16}" y2="40" stroke="${COLORS[i % COLORS.length]}" stroke-width="3" stroke-dasharray="4 3"/>`
        : `<rect x="${x}" y="34" width="14" height="12" fill="${COLORS[i % COLORS.length]}"/>`;
      return `${swatch}<text x="${x + 20}" y="44" font-size="12">${esc(name)}</text>`;
    })
    .join('');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${esc(title)}" font-family="sans-serif">` +
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>` +
    `<text x="${WIDTH / 2}" y="20" font-size="15" font-weight="bold" text-anchor="middle">${esc(title)}</text>` +
    items +
    body +
    '</svg>'
  );
}

function yAxis(ticks: number[], y: (v: number) => number, label: string): string {
  const plotRight = WIDTH - MARGIN.right;
  const lines = ticks
    .map(
      (t) =>
        `<line x1="${MARGIN.left}" y1="${y(t)}" x2="${plotRight}" y2="${y(t)}" stroke="#e3e3e3"/>` +
        `<text x="${MARGIN.left - 6}" y="${y(t) + 4}" font-size="11" text-anchor="end">${tickText(t)}</text>`,
    )
    .join('');
  const midY = (MARGIN.top + HEIGHT - MARGIN.bottom) / 2;
  return (
    lines +
    `<line x1="${MARGIN.left}" y1="${MARGIN.top}" x2="${MARGIN.left}" y2="${HEIGHT - MARGIN.bottom}" stroke="#333"/>` +
    `<text transform="translate(16 ${midY}) rotate(-90)" font-size="12" text-anchor="middle">${esc(label)}</text>`
  );
}

/** A grouped bar chart: one group per category, one bar per series, whiskers for min–max. */
export function barChartSvg(chart: BarChart): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  let top = 0;
  for (const s of chart.series) {
    for (let i = 0; i < s.values.length; i++) {
      const v = Math.max(s.values[i] ?? 0, s.high?.[i] ?? 0);
      if (Number.isFinite(v)) top = Math.max(top, v);
    }
  }
  const ticks = niceTicks(0, top > 0 ? top : 1);
  const yMax = ticks[ticks.length - 1]!;
  const y = (v: number) => Number((MARGIN.top + plotH - (Math.max(0, v) / yMax) * plotH).toFixed(1));
  const groupW = plotW / Math.max(1, chart.categories.length);
  const barW = Math.min(48, (groupW * 0.8) / Math.max(1, chart.series.length));
  let body = yAxis(ticks, y, chart.yLabel);
  chart.categories.forEach((cat, c) => {
    const groupX = MARGIN.left + c * groupW + (groupW - barW * chart.series.length) / 2;
    chart.series.forEach((s, k) => {
      const v = s.values[c] ?? Number.NaN;
      if (!Number.isFinite(v)) return;
      const x = Number((groupX + k * barW).toFixed(1));
      const color = COLORS[k % COLORS.length];
      body += `<rect x="${x + 1}" y="${y(v)}" width="${(barW - 2).toFixed(1)}" height="${(y(0) - y(v)).toFixed(1)}" fill="${color}"><title>${esc(`${s.name} · ${cat}: ${tickText(v)}`)}</title></rect>`;
      const lo = s.low?.[c];
      const hi = s.high?.[c];
      const cx = x + barW / 2;
      if (lo !== undefined && hi !== undefined && Number.isFinite(lo) && Number.isFinite(hi) && hi > lo) {
        body += `<path d="M${cx} ${y(lo)}V${y(hi)}M${cx - 4} ${y(lo)}H${cx + 4}M${cx - 4} ${y(hi)}H${cx + 4}" stroke="#222" stroke-width="1.2" fill="none"/>`;
      }
      const labelY = Math.min(y(v), hi === undefined ? y(v) : y(hi)) - 4;
      body += `<text x="${cx}" y="${labelY}" font-size="10" text-anchor="middle" fill="#333">${valueText(v)}</text>`;
    });
    body += `<text x="${MARGIN.left + c * groupW + groupW / 2}" y="${HEIGHT - MARGIN.bottom + 18}" font-size="12" text-anchor="middle">${esc(cat)}</text>`;
  });
  body += `<line x1="${MARGIN.left}" y1="${y(0)}" x2="${WIDTH - MARGIN.right}" y2="${y(0)}" stroke="#333"/>`;
  return frame(
    chart.title,
    body,
    chart.series.map((s) => s.name),
  );
}

/** A line chart over a numeric x axis, points marked, with labelled vertical markers. */
export function lineChartSvg(chart: LineChart): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const xs = chart.series
    .flatMap((s) => s.points.map((p) => p[0]))
    .concat((chart.markers ?? []).map((m) => m.x));
  const ys = chart.series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  let xTicks = niceTicks(Math.min(...xs), Math.max(...xs), 8);
  // Counts on the x axis (servers, nodes) get whole-number ticks only.
  if (xs.every(Number.isInteger)) xTicks = xTicks.filter(Number.isInteger);
  const yTicks = niceTicks(0, Math.max(...ys, 0) || 1);
  const xMin = xTicks[0]!;
  const xMax = xTicks[xTicks.length - 1]!;
  const yMax = yTicks[yTicks.length - 1]!;
  const x = (v: number) => Number((MARGIN.left + ((v - xMin) / (xMax - xMin)) * plotW).toFixed(1));
  const y = (v: number) => Number((MARGIN.top + plotH - (Math.max(0, v) / yMax) * plotH).toFixed(1));
  let body = yAxis(yTicks, y, chart.yLabel);
  const baseY = HEIGHT - MARGIN.bottom;
  body += `<line x1="${MARGIN.left}" y1="${baseY}" x2="${WIDTH - MARGIN.right}" y2="${baseY}" stroke="#333"/>`;
  for (const t of xTicks) {
    body += `<line x1="${x(t)}" y1="${baseY}" x2="${x(t)}" y2="${baseY + 5}" stroke="#333"/><text x="${x(t)}" y="${baseY + 18}" font-size="11" text-anchor="middle">${tickText(t)}</text>`;
  }
  body += `<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 18}" font-size="12" text-anchor="middle">${esc(chart.xLabel)}</text>`;
  // Marker labels on alternating rows, so that two markers close together stay readable.
  for (const [i, m] of (chart.markers ?? []).entries()) {
    body += `<line x1="${x(m.x)}" y1="${MARGIN.top}" x2="${x(m.x)}" y2="${baseY}" stroke="#555" stroke-dasharray="5 4"/><text x="${x(m.x) + 4}" y="${MARGIN.top + 12 + (i % 2) * 14}" font-size="11" fill="#333">${esc(m.label)}</text>`;
  }
  chart.series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    if (pts.length === 0) return;
    body += `<polyline points="${pts.map((p) => `${x(p[0])},${y(p[1])}`).join(' ')}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`;
    if (pts.length <= 40) {
      for (const p of pts)
        body += `<circle cx="${x(p[0])}" cy="${y(p[1])}" r="3" fill="${color}"><title>${esc(`${s.name}: ${tickText(p[0])}, ${tickText(p[1])}`)}</title></circle>`;
    }
  });
  return frame(
    chart.title,
    body,
    chart.series.map((s) => s.name),
    chart.series.map((s) => s.dashed === true),
  );
}

/** Either kind of chart as SVG. */
export function chartSvg(chart: Chart): string {
  return chart.kind === 'bar' ? barChartSvg(chart) : lineChartSvg(chart);
}
