/**
 * A flood of HTTP requests from a child process, so that the attackers' client work does not
 * share the event loop of the balancer under test. Run as
 * `node flooder.js PORT DURATION_MS CONCURRENCY ADDRESS...`: for DURATION_MS, CONCURRENCY
 * requests in flight per ADDRESS (its local address), keep-alive, at full speed; then one JSON
 * line on stdout: per address, the count of each status ("error" for a failed connection or
 * request) and when each status was first seen (ms from the start).
 */
import { Agent, request } from 'node:http';

interface Tally {
  counts: Record<string, number>;
  first: Record<string, number>;
}

async function flood(
  port: number,
  address: string,
  until: number,
  concurrency: number,
  start: number,
): Promise<Tally> {
  const tally: Tally = { counts: {}, first: {} };
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const note = (what: string) => {
    tally.counts[what] = (tally.counts[what] ?? 0) + 1;
    tally.first[what] ??= Date.now() - start;
  };
  const one = () =>
    new Promise<void>((resolve) => {
      const req = request(
        { host: '127.0.0.1', port, path: '/attack', agent, localAddress: address, timeout: 5000 },
        (res) => {
          res.resume();
          res.on('end', () => {
            note(String(res.statusCode));
            resolve();
          });
          res.on('error', () => {
            note('error');
            resolve();
          });
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => {
        note('error');
        // A refused connection comes back at once: a short pause keeps this from spinning.
        setTimeout(resolve, 5);
      });
      req.end();
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) await one();
    }),
  );
  agent.destroy();
  return tally;
}

const [port, duration, concurrency, ...addresses] = process.argv.slice(2);
const start = Date.now();
const until = start + Number(duration);
const results = await Promise.all(
  addresses.map((a) => flood(Number(port), a, until, Number(concurrency), start)),
);
process.stdout.write(`${JSON.stringify(Object.fromEntries(addresses.map((a, i) => [a, results[i]])))}\n`);
