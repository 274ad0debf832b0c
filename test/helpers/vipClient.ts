/**
 * The redundancy test's client host: the lab's VIP client (src/lab/vipClient.ts), run as a
 * script (`node vipClient.js USERS PAUSE_MS TIMEOUT_MS`); importing it starts the client.
 */
import '../../src/lab/vipClient.js';

export type { ClientRecord } from '../../src/lab/vipClient.js';
