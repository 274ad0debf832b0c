/**
 * `fulcrum lab` as a command: an unknown scenario name is refused with the list; Ctrl-C stops
 * every process the lab started (they are its children: none is left running).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnCli } from '../helpers/processes.js';

test('fulcrum lab: an unknown --only name is refused; Ctrl-C stops every process it started', async (t) => {
  const bad = spawnCli(['lab', '--only', 'algorithms,nope']);
  const exit = await bad.waitForExit(30_000);
  assert.equal(exit.code, 2);
  assert.match(bad.stderr, /unknown scenario nope; expected some of algorithms, ip-hash/);

  const out = mkdtempSync(join(tmpdir(), 'fulcrum-lab-test-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const lab = spawnCli(['lab', '--quick', '--only', 'algorithms', '--out', out]);
  t.after(() => lab.stop('SIGKILL'));
  await lab.waitFor(/round-robin, repetition 1/, { timeoutMs: 90_000 });
  const children = childrenOf(lab.pid);
  assert.ok(children.length >= 4, `backends and a balancer running: ${children.join(', ')}`);
  lab.signal('SIGINT');
  const stopped = await lab.waitForExit(30_000);
  assert.equal(stopped.code, 130, lab.output);
  for (const pid of children) assert.equal(alive(pid), false, `process ${pid} stopped with the lab`);
});

/** PIDs whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {}
  }
  return found;
}

/** Running (a zombie or a gone process counts as stopped). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
