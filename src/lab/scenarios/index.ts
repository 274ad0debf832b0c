/** Every scenario of the lab, in the order of the report. */
import type { Scenario } from '../scenario.js';
import { algorithms } from './algorithms.js';
import { dns } from './dns.js';
import { failover } from './failover.js';
import { hotSpot } from './hotSpot.js';
import { ipHash } from './ipHash.js';
import { l4L7 } from './l4L7.js';
import { NOT_YET } from './notYet.js';
import { protection } from './protection.js';
import { redundancy } from './redundancy.js';
import { scaleOut } from './scaleOut.js';
import { sessionCluster } from './sessionCluster.js';
import { sessions } from './sessions.js';
import { storeRestart } from './storeRestart.js';

/** The lab's scenarios by issue 21's priority: those that run, then those that do not yet. */
export const SCENARIOS: Scenario[] = [
  algorithms,
  ipHash,
  failover,
  sessions,
  sessionCluster,
  storeRestart,
  hotSpot,
  scaleOut,
  l4L7,
  dns,
  protection,
  redundancy,
  ...NOT_YET,
];
