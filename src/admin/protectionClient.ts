/**
 * `fulcrum protection` and `fulcrum protection unblock LISTENER IP`: what the listeners'
 * protection does now, from the shell, through `GET /api/protection` and
 * `DELETE /api/protection/:listener/blocked/:ip`. Exit codes as in client.ts.
 */
import { run, type TargetOptions } from './client.js';

interface ProtectionView {
  listener: string;
  protocol?: string;
  rejected: Record<string, number>;
  blocked: Array<{ ip: string; until: string; reason: string }>;
  top: Array<{ ip: string; requests: number; refused: number; errors: number }>;
  surge?: { active: boolean; rate: number; baseline: number; threshold: number; since: string | null } | null;
}

/** Prints refusals, blocked clients, top talkers and surge state of every protected listener. */
export function protection(opts: TargetOptions): Promise<number> {
  return run(opts, 'GET', '/api/protection', undefined, (b) =>
    formatProtection((b as unknown as { listeners: ProtectionView[] }).listeners),
  );
}

/** Lifts the block detection put on `ip` at `listener`. */
export function unblock(listener: string, ip: string, opts: TargetOptions): Promise<number> {
  const seg = encodeURIComponent;
  return run(
    opts,
    'DELETE',
    `/api/protection/${seg(listener)}/blocked/${seg(ip)}`,
    undefined,
    () => `unblocked ${ip} on ${listener}`,
  );
}

/** The human-readable form: one block per listener. */
export function formatProtection(listeners: readonly ProtectionView[]): string {
  if (listeners.length === 0) return 'no listener has protection';
  const out: string[] = [];
  for (const l of listeners) {
    out.push(`listener ${l.listener}${l.protocol === undefined ? '' : ` (${l.protocol})`}`);
    const refused = Object.entries(l.rejected).filter(([, n]) => n > 0);
    out.push(
      `  refused: ${refused.length === 0 ? 'none' : refused.map(([reason, n]) => `${reason} ${n}`).join(', ')}`,
    );
    const s = l.surge;
    if (s != null) {
      out.push(
        s.active
          ? `  surge: ACTIVE since ${s.since}: ${s.rate} req/s above ${s.threshold} (baseline ${s.baseline} req/s), new clients get 503`
          : `  surge: none (${s.rate} req/s, sheds above ${s.threshold}, baseline ${s.baseline} req/s)`,
      );
    }
    out.push(`  blocked:${l.blocked.length === 0 ? ' none' : ''}`);
    for (const b of l.blocked) out.push(`    ${b.ip.padEnd(39)} until ${b.until}  ${b.reason}`);
    if (l.top.length > 0) {
      out.push('  top talkers (current window):');
      out.push(
        `    ${'client'.padEnd(39)} ${'requests'.padStart(9)} ${'refused'.padStart(8)} ${'errors'.padStart(7)}`,
      );
      for (const t of l.top) {
        out.push(
          `    ${t.ip.padEnd(39)} ${String(t.requests).padStart(9)} ${String(t.refused).padStart(8)} ${String(t.errors).padStart(7)}`,
        );
      }
    }
  }
  return out.join('\n');
}
