/**
 * Protection as one balancer shows it with `workers: N`: the reports of every worker merged per
 * listener. Refusals by reason are summed; a client blocked in several workers is one row with the
 * latest `until`; top talkers are merged by client (counts summed, the 10 busiest kept); a surge is
 * active if it is in any worker, with the largest rate seen.
 */
import type { ProtectionReport } from '../admin/protectionReport.js';

/** How many top talkers a merged report keeps. */
const TOP = 10;

/** Merges the workers' reports (one list per worker) into one report per listener. */
export function mergeProtection(perWorker: ProtectionReport[][]): ProtectionReport[] {
  const byListener = new Map<string, ProtectionReport[]>();
  for (const reports of perWorker) {
    for (const r of reports) {
      const list = byListener.get(r.listener);
      if (list === undefined) byListener.set(r.listener, [r]);
      else list.push(r);
    }
  }
  return [...byListener.values()].map(mergeListener).sort((a, b) => a.listener.localeCompare(b.listener));
}

function mergeListener(reports: ProtectionReport[]): ProtectionReport {
  const rejected: Record<string, number> = {};
  const blocked = new Map<string, ProtectionReport['blocked'][number]>();
  const top = new Map<string, ProtectionReport['top'][number]>();
  let surge: ProtectionReport['surge'] = null;
  for (const r of reports) {
    for (const [reason, n] of Object.entries(r.rejected)) rejected[reason] = (rejected[reason] ?? 0) + n;
    for (const b of r.blocked) {
      const seen = blocked.get(b.ip);
      if (seen === undefined || b.until > seen.until) blocked.set(b.ip, { ...b });
    }
    for (const t of r.top) {
      const seen = top.get(t.ip);
      if (seen === undefined) top.set(t.ip, { ...t });
      else {
        seen.requests += t.requests;
        seen.refused += t.refused;
        seen.errors += t.errors;
      }
    }
    surge = mergeSurge(surge, r.surge);
  }
  return {
    listener: reports[0]!.listener,
    protocol: reports[0]!.protocol,
    rejected,
    surge,
    blocked: [...blocked.values()].sort((a, b) => a.ip.localeCompare(b.ip)),
    top: [...top.values()].sort((a, b) => b.requests - a.requests || b.refused - a.refused).slice(0, TOP),
  };
}

/** Active if either is; the largest rate; the earliest start of an active surge. */
function mergeSurge(a: ProtectionReport['surge'], b: ProtectionReport['surge']): ProtectionReport['surge'] {
  if (a === null) return b === null ? null : { ...b };
  if (b === null) return a;
  const active = a.active || b.active;
  const starts = [a, b].filter((s) => s.active === active && s.since > 0).map((s) => s.since);
  return {
    active,
    rate: Math.max(a.rate, b.rate),
    baseline: Math.max(a.baseline, b.baseline),
    threshold: Math.max(a.threshold, b.threshold),
    since: starts.length === 0 ? Math.max(a.since, b.since) : Math.min(...starts),
  };
}
