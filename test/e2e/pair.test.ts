/**
 * The keepalived pair builder (src/lab/pair.ts) when its build fails halfway: every process it
 * started is stopped and every namespace it made (the bridge's too) is removed, whether the failure
 * comes early (Redis cannot start) or once the balancers and keepalived run (the client cannot
 * start). The pair's working build is exercised by the redundancy test and the lab's scenario.
 * Needs root (CAP_NET_ADMIN), keepalived and redis-server; says why and skips without them.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { buildPair, Pair, pairUnavailable } from '../helpers/pair.js';
import { tempDir } from '../helpers/processes.js';

/** Namespaces are named `fp<PID>-<host>`. */
const NS_LETTERS = 'fp';
const skip = pairUnavailable();

/** This test's namespaces that exist now. */
const mine = () =>
  (spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '')
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter((ns) => ns.startsWith(`${NS_LETTERS}${process.pid}-`));

/** Whether a process with this PID still exists. */
const exists = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('buildPair: Redis fails to start, the namespaces made so far are removed before it rejects', {
  skip,
  timeout: 60_000,
}, async () => {
  const dir = tempDir('fulcrum-pair-');
  try {
    await assert.rejects(
      buildPair({
        letters: NS_LETTERS,
        subnet: '10.76.0',
        // Redis cannot chdir into a folder that is not there: it exits at once.
        dir: path.join(dir.path, 'missing'),
        users: 2,
        shared: true,
      }),
      /redis-server .* exited before/,
    );
    assert.deepEqual(mine(), [], 'no namespace left');
  } finally {
    dir.remove();
  }
});

test('Pair.close() after a build that failed with everything but the client running stops it all', {
  skip,
  timeout: 90_000,
}, async () => {
  const dir = tempDir('fulcrum-pair-');
  const pair = new Pair({ letters: NS_LETTERS, subnet: '10.76.0', dir: dir.path, users: 2, shared: true });
  // The client is started last: failing there leaves Redis, backends, balancers and keepalived up.
  const run = pair.net.run.bind(pair.net);
  pair.net.run = (name, command) => {
    if (name === 'client') throw new Error('no client today');
    return run(name, command);
  };
  try {
    await assert.rejects(pair.build(), /no client today/);
    const started = [...pair.backends, ...pair.fulcrums.values(), ...pair.keepaliveds.values()];
    assert.equal(started.length, 7, 'three backends, two balancers, two keepaliveds');
    assert.equal(mine().length, 8, 'the switch and seven hosts');
    await pair.close();
    assert.deepEqual(mine(), [], 'no namespace left');
    for (const p of started) {
      assert.equal(p.running, false, `${p.command[0]} (${p.host}) stopped`);
      assert.equal(exists(p.pid), false, `PID ${p.pid} gone`);
    }
  } finally {
    await pair.close();
    dir.remove();
  }
});
