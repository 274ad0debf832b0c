/**
 * The scenarios of issue 21 this version of the lab does not run yet, each with its reason, so
 * the report lists them instead of leaving them out silently.
 */
import type { Findings, Scenario } from '../scenario.js';

function pending(
  name: string,
  number: number,
  title: string,
  claim: string,
  setup: string,
  reason: string,
): Scenario {
  return {
    name,
    number,
    title,
    claim,
    setup: () => setup,
    unavailable: () => reason,
    run: (): Promise<Findings> => Promise.reject(new Error(reason)),
  };
}

/** Scenarios listed in the report but not run, with why. */
export const NOT_YET: Scenario[] = [
  pending(
    'redundancy',
    11,
    'Redundancy: takeover time of a balancer pair',
    'With two balancers sharing a virtual address (VRRP), clients keep being served when the active one dies, after a short takeover.',
    'Two Fulcrum instances under keepalived in network namespaces; the active one killed.',
    'Needs root, network namespaces and keepalived, which a lab run on loopback does not assume: see docs/redundancy.md for the setup and its own test.',
  ),
];
