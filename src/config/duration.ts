/**
 * Durations as written in the config: "500ms", "2s", "1.5s", "30m", "1h", "1d", or compound
 * "1m30s". A bare number (or a string of digits) means milliseconds, as in HAProxy. No spaces,
 * no sign, lower-case units only (so that "M" can never be mistaken for months).
 */
import { ValueError } from './errors.js';

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type Unit = keyof typeof UNIT_MS;

const EXPECTED = 'a duration like "500ms", "2s", "1m" or "1h"';
const NUMBER = /^\d+(?:\.\d+)?$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

/** Milliseconds for a duration; the result is rounded to a whole millisecond. */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new ValueError(EXPECTED, value);
    return Math.round(value);
  }
  if (typeof value !== 'string') throw new ValueError(EXPECTED, value);
  if (NUMBER.test(value)) return Math.round(Number(value));
  if (/\S\s+\S/.test(value)) {
    throw new ValueError(EXPECTED, value, { hint: 'write it without spaces' });
  }
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < value.length) {
    const start = PART.lastIndex;
    const match = PART.exec(value);
    if (!match || match.index !== start) throw new ValueError(EXPECTED, value);
    total += Number(match[1]) * UNIT_MS[match[2] as Unit];
  }
  if (value === '' || !Number.isSafeInteger(Math.round(total))) throw new ValueError(EXPECTED, value);
  return Math.round(total);
}

/** The shortest compound text for a number of milliseconds: 90000 → "1m30s", 0 → "0ms". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0ms';
  let rest = Math.round(ms);
  let text = '';
  for (const unit of ['d', 'h', 'm', 's', 'ms'] as const) {
    const count = Math.floor(rest / UNIT_MS[unit]);
    if (count > 0) {
      text += `${count}${unit}`;
      rest -= count * UNIT_MS[unit];
    }
  }
  return text;
}
