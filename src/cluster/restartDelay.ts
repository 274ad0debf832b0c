/**
 * How long a supervisor waits before replacing a worker that died: at once, unless it keeps
 * dying soon after it starts; then twice as long each time, up to a ceiling. A worker that lived
 * STABLE_MS resets the count.
 */

/** A worker that lived this long died of something else than its start: no backoff. */
export const STABLE_MS = 10_000;
const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;

/** The wait before the replacement, for the `streak`-th quick death in a row (1: the first). */
export function restartDelay(streak: number): number {
  if (streak <= 1) return 0;
  return Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (streak - 2));
}

/** The streak after a death: one more if the worker lived less than STABLE_MS, else 1. */
export function nextStreak(streak: number, livedMs: number): number {
  return livedMs < STABLE_MS ? streak + 1 : 1;
}
