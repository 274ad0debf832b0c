import type { Logger } from '../core/log.js';

/**
 * Logs a kind of event at most once a second: the first at once, the rest counted and reported
 * together ("… (and 41 more in the last 1.0s)"). For refusals and floods of bad headers.
 */
export class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number; line: string; warn: boolean }>();

  constructor(private readonly log: Logger) {}

  note(key: string, line: string, warn = true, now = Date.now()): void {
    const e = this.last.get(key);
    if (e !== undefined && now - e.at < 1000) {
      e.suppressed++;
      e.line = line;
      return;
    }
    const more =
      e !== undefined && e.suppressed > 0 ? ` (and ${e.suppressed} more since the last report)` : '';
    this.last.set(key, { at: now, suppressed: 0, line, warn });
    if (warn) this.log.warn(line + more);
    else this.log.info(line + more);
  }

  /** Reports what was held back for more than a second (called from a sweep). */
  flush(now = Date.now()): void {
    for (const [key, e] of this.last) {
      if (now - e.at < 1000) continue;
      if (e.suppressed === 0) {
        this.last.delete(key);
        continue;
      }
      const line = `${e.line} (and ${e.suppressed - 1} more like it)`;
      if (e.warn) this.log.warn(e.suppressed === 1 ? e.line : line);
      else this.log.info(e.suppressed === 1 ? e.line : line);
      e.at = now;
      e.suppressed = 0;
    }
  }
}
