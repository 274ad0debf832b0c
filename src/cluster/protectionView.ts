/**
 * Protection as one balancer shows it with `workers: N`: the reports of every worker merged per
 * listener. Refusals by reason are summed; a client blocked in several workers is one row with the
 * latest `until`; top talkers are merged by client (counts summed, the 10 busiest kept); a surge is
 * active if it is in any worker, with the largest rate seen. The refusals of workers gone (kept by
 * ClusterFigures from their last report) are added to the live workers' sums, so the counters never
 * go back when a worker is replaced; its blocked clients and top talkers are not kept.
 */
import type { ProtectionReport } from '../admin/protectionReport.js';
import type { Refusals } from './messages.js';

/** How many top talkers a merged report keeps. */
const TOP = 10;

/**
 * Merges the workers' reports (one list per worker) into one report per listener, adding the
 * `retired` refusals (of workers gone) to the listeners some live worker reports. A listener no
 * live worker reports (protection removed by a reload, no worker serving right now) is not shown.
 */
export function mergeProtection(perWorker: ProtectionReport[][], retired: Refusals = []): ProtectionReport[] {
  const byListener = new Map<string, ProtectionReport[]>();
  for (const reports of perWorker) {
    for (const r of reports) {
      const list = byListener.get(r.listener);
      if (list === undefined) byListener.set(r.listener, [r]);
      else list.push(r);
    }
  }
  const merged = [...byListener.values()].map(mergeListener);
  for (const [listener, reason, n] of retired) {
    const r = merged.find((x) => x.listener === listener);
    if (r !== undefined) r.rejected[reason] = (r.rejected[reason] ?? 0) + n;
  }
  return merged.sort((a, b) => a.listener.localeCompare(b.listener));
}

/** The compact form of the refusals (what a heartbeat carries): non-zero counts only. */
export function refusalsOf(
  reports: Iterable<{ listener: string; rejected: Record<string, number> }>,
): Refusals {
  const out: Refusals = [];
  for (const r of reports) {
    for (const [reason, n] of Object.entries(r.rejected)) if (n > 0) out.push([r.listener, reason, n]);
  }
  return out;
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
