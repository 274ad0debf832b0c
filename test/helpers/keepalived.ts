/** The lab's keepalived.conf maker (src/lab/keepalived.ts), for the tests. */
export * from '../../src/lab/keepalived.js';
