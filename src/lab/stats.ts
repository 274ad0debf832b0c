/** The lab's statistics: quantiles, a median with its min–max over repetitions, shares. */

/** The q-quantile (0..1) of `values` by nearest rank; NaN for none. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/** A figure measured over repetitions: its median, and the smallest and largest seen. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** The spread of `values` (the repetitions of one figure). */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return {
    median: sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2,
    min: Math.min(...values),
    max: Math.max(...values),
    n: values.length,
  };
}

/** The mean of `values`; NaN for none. */
export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** The fraction of `items` under each key, for every key of `keys` (0 when absent). */
export function shares<T>(
  items: readonly T[],
  keyOf: (item: T) => string,
  keys: readonly string[],
): number[] {
  const counts = new Map<string, number>();
  for (const item of items) {
    const k = keyOf(item);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const total = items.length;
  return keys.map((k) => (total === 0 ? 0 : (counts.get(k) ?? 0) / total));
}

/** `value` with `digits` significant decimals for reports ("12.3", "0.042"). */
export function fmt(value: number, digits = 1): string {
  if (!Number.isFinite(value)) return '–';
  if (value !== 0 && Math.abs(value) < 0.1) return value.toPrecision(2);
  return value.toFixed(digits);
}

/** A spread as text: "median (min–max)", or just the value when all repetitions agree. */
export function fmtSpread(s: Spread, digits = 1, unit = ''): string {
  if (s.n === 0) return '–';
  const m = `${fmt(s.median, digits)}${unit}`;
  if (s.n === 1 || s.min === s.max) return m;
  return `${m} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}
