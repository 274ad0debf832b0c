/** The lab's keepalived pair in network namespaces (src/lab/pair.ts), for the tests. */
export * from '../../src/lab/pair.js';
