import type { Server } from '../core/server.js';

const NONE: readonly Server[] = [];

/**
 * Whether weights decide among `eligible` minus `tried`: true when at least one of them has an
 * effective weight above 0. When none has (all ramping up from 0 in slow start, or all set to 0
 * by an operator), every algorithm counts each server as weight 1 rather than refuse them all.
 */
export function weightsApply(eligible: readonly Server[], tried: readonly Server[] = NONE): boolean {
  const filtered = tried.length > 0;
  for (let i = 0; i < eligible.length; i++) {
    const s = eligible[i]!;
    if (s.effectiveWeight > 0 && !(filtered && tried.includes(s))) return true;
  }
  return false;
}
