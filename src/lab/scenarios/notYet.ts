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

const NOT_BUILT =
  'not built yet in this version of the lab (issue 21 lists it; the report will show it once written).';

/** Scenarios listed in the report but not run, with why. */
export const NOT_YET: Scenario[] = [
  pending(
    'l4-l7',
    8,
    'L4 vs L7: CPU per request and capabilities',
    'An L4 (tcp) balancer forwards bytes and costs less CPU per request; an L7 (http) balancer parses requests and can route by path, retry and pin by cookie.',
    'The same backends behind a tcp listener and an http listener; CPU time of the balancer per request; what each can do.',
    `${NOT_BUILT} Meanwhile bench/tcp.ts and bench/http.ts measure each path's cost.`,
  ),
  pending(
    'dns',
    9,
    "DNS balancing's coarse control",
    'Clients keep using an address they resolved until its TTL runs out, so traffic goes on reaching a dead server for up to the TTL.',
    "Fulcrum's DNS listener answering for a pool; clients that cache answers for the TTL; a server killed.",
    `${NOT_BUILT} The DNS listener exists (docs/dns.md).`,
  ),
  pending(
    'protection',
    10,
    'L7 abnormal traffic: a flood with protection off and on',
    'A flood from a few clients starves everyone behind a balancer without protection; rate limits and detection keep legitimate clients served.',
    'One flooding client and a few normal ones, through a listener without and with `protection`.',
    `${NOT_BUILT} Protection exists (listeners[].protection in docs/configuration.md).`,
  ),
  pending(
    'redundancy',
    11,
    'Redundancy: takeover time of a balancer pair',
    'With two balancers sharing a virtual address (VRRP), clients keep being served when the active one dies, after a short takeover.',
    'Two Fulcrum instances under keepalived in network namespaces; the active one killed.',
    'Needs root, network namespaces and keepalived, which a lab run on loopback does not assume: see docs/redundancy.md for the setup and its own test.',
  ),
];
