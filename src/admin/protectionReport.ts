/**
 * What `GET /api/protection` shows of one listener's protection, before dates are formatted:
 * refusals by reason, blocked clients, top talkers and surge state. A worker process sends these
 * to its supervisor (src/cluster/), which merges them; a single process shows its own.
 */

import type { SurgeState } from '../protection/surge.js';
import type { Listener } from '../proxy/listener.js';

/** One listener's protection now (`until` and `since` in ms since the epoch). */
export interface ProtectionReport {
  listener: string;
  protocol: string;
  rejected: Record<string, number>;
  surge: SurgeState | null;
  blocked: { ip: string; until: number; reason: string }[];
  top: { ip: string; requests: number; refused: number; errors: number }[];
}

/** The reports of every listener with protection. */
export function protectionReports(listeners: Iterable<Listener>, now: number): ProtectionReport[] {
  const out: ProtectionReport[] = [];
  for (const l of listeners) {
    const p = l.protection;
    if (p == null) continue;
    out.push({
      listener: l.name,
      protocol: l.protocol,
      rejected: { ...p.rejected },
      surge: p.surge?.state(now) ?? null,
      blocked: p.detector?.blocks(now) ?? [],
      top: p.topTalkers(10, now),
    });
  }
  return out;
}

/** A report as the admin API answers it (ISO dates). */
export function protectionJson(r: ProtectionReport): Record<string, unknown> {
  const surge = r.surge;
  return {
    listener: r.listener,
    protocol: r.protocol,
    rejected: r.rejected,
    surge:
      surge === null
        ? null
        : { ...surge, since: surge.since === 0 ? null : new Date(surge.since).toISOString() },
    blocked: r.blocked.map((b) => ({ ...b, until: new Date(b.until).toISOString() })),
    top: r.top,
  };
}
