/** The lab's network-namespace hosts (src/lab/netns.ts), for the tests. */
export * from '../../src/lab/netns.js';
