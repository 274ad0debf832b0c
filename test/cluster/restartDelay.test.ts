import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSupervisorMessage, isWorkerMessage } from '../../src/cluster/messages.js';
import { nextStreak, restartDelay, STABLE_MS } from '../../src/cluster/restartDelay.js';

test('a worker that died once is replaced at once; one that keeps dying waits longer each time, bounded', () => {
  assert.equal(restartDelay(1), 0);
  assert.equal(restartDelay(2), 250);
  assert.equal(restartDelay(3), 500);
  assert.equal(restartDelay(4), 1000);
  assert.equal(restartDelay(50), 30_000);
  assert.equal(nextStreak(0, 100), 1);
  assert.equal(nextStreak(3, 100), 4);
  // One that lived long enough died of something else than its start: the backoff starts over.
  assert.equal(nextStreak(7, STABLE_MS), 1);
});

test("messages: each side takes only the other side's messages", () => {
  assert.ok(isWorkerMessage({ t: 'beat', stats: { entries: [], servers: [], listeners: [] } }));
  assert.ok(isSupervisorMessage({ t: 'states', states: {} }));
  assert.ok(!isWorkerMessage({ t: 'states', states: {} }));
  assert.ok(!isSupervisorMessage({ cmd: 'NODE_CLUSTER', act: 'online' }));
  assert.ok(!isWorkerMessage(null));
});
