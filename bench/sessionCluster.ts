/**
 * ReplicatedStore (session clustering between the backend servers) in both modes, for clusters
 * of N nodes, each node a separate Node process (bench/sessionClusterNode.ts, run with
 * --expose-gc) on loopback, driven over IPC. Per cluster size and mode:
 *
 * 1. Start node 0 on a port from the OS, then the others with node 0 as their only peer; wait
 *    until every node sees the N-1 others up. Heap of every node after a full GC: the empty baseline.
 * 2. (a) create: S sessions of `size` bytes of JSON, session i written on node i mod N (as round
 *    robin would spread new sessions). Wait until replication has settled: every node knows every
 *    session, the cluster holds the expected number of values (all-to-all N per session,
 *    primary-backup 2), and the bytes all nodes sent equal the bytes they received, twice in a row.
 *    Then the memory of every node: the session values held and the heap after a full GC.
 * 3. (b) rewrite: each session rewritten once, on the node that is its primary (all-to-all: its
 *    last writer), as sticky sessions would.
 * 4. (c) primary-backup, N >= 3: each session read, then written, on one node that holds only its
 *    id (as after a failover or without stickiness): the read fetches the value and makes that
 *    node the primary. Measured as two settled steps, the reads and then the writes.
 * 5. Read latency on node 0, one read at a time: a local read (this node holds the value) and, in
 *    primary-backup, a read of a session it holds only the id of; and a plain TCP round trip of
 *    the same size between two of the processes, as the reference for "one loopback round trip".
 *
 * Bytes are the frames' bytes as the nodes count them (`bytesSent`, summed over the cluster),
 * heartbeats included (a dozen bytes per member every 500 ms: noise here). Every process is
 * stopped by PID at the end of its cluster, and on error or interruption.
 *
 * Usage: node <out>/bench/sessionCluster.js [--nodes 2,3,4,6,8] [--modes all-to-all,primary-backup]
 *   [--sessions 10000] [--size 1024] [--reads 2000] [--sync] [--json FILE] [--keep-tmp]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ReplicationMode } from '../src/session/index.js';
import { log, type Proc, runHarness, sleep, startProc, stopProc, tail } from './processes.js';
import type { Command, HeapReport, NodeStats, ReadReport, Reply, Results } from './sessionClusterNode.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const WORKER = path.join(here, 'sessionClusterNode.js');
const MODES: readonly ReplicationMode[] = ['all-to-all', 'primary-backup'];
const SECRET = 'bench-cluster-secret';
const MiB = 1024 * 1024;

const USAGE = `Usage: node <out>/bench/sessionCluster.js [options]
  --nodes LIST       cluster sizes (default 2,3,4,6,8)
  --modes LIST       all-to-all,primary-backup (default both)
  --sessions N       sessions created (default 10000)
  --size BYTES       serialized size of each session (default 1024)
  --reads N          timed reads per latency figure (default 2000)
  --sync             replicate synchronously (sync: true)
  --heartbeat-ms MS  the nodes' heartbeat period (default 500, the store's default)
  --json FILE        also write the results as JSON
  --keep-tmp         keep the nodes' logs
  -h, --help         this help`;

interface Options {
  nodes: number[];
  modes: ReplicationMode[];
  sessions: number;
  size: number;
  reads: number;
  sync: boolean;
  heartbeatMs: number;
  json: string | undefined;
  keepTmp: boolean;
}

class UsageError extends Error {}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      nodes: { type: 'string', default: '2,3,4,6,8' },
      modes: { type: 'string', default: MODES.join(',') },
      sessions: { type: 'string', default: '10000' },
      size: { type: 'string', default: '1024' },
      reads: { type: 'string', default: '2000' },
      sync: { type: 'boolean', default: false },
      'heartbeat-ms': { type: 'string', default: '500' },
      json: { type: 'string' },
      'keep-tmp': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, raw: string, min: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}`);
    return n;
  };
  const nodes = values.nodes.split(',').map((n) => int('nodes', n.trim(), 2));
  const modes = values.modes.split(',').map((m) => {
    const mode = m.trim() as ReplicationMode;
    if (!MODES.includes(mode)) throw new UsageError(`unknown mode "${m}" (known: ${MODES.join(', ')})`);
    return mode;
  });
  return {
    nodes,
    modes,
    sessions: int('sessions', values.sessions, 1),
    size: int('size', values.size, 256),
    reads: int('reads', values.reads, 1),
    sync: values.sync,
    heartbeatMs: int('heartbeat-ms', values['heartbeat-ms'], 10),
    json: values.json,
    keepTmp: values['keep-tmp'],
  };
}

// ---------------------------------------------------------------------------------------------
// A node: a process and its IPC channel

class ClusterNode {
  id = '';
  #seq = 0;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(readonly proc: Proc) {
    proc.child.on('message', (reply: Reply) => {
      const pending = this.#pending.get(reply.seq);
      if (!pending) return;
      this.#pending.delete(reply.seq);
      if (reply.ok) pending.resolve(reply.result);
      else pending.reject(new Error(`${this.name}: ${reply.error}`));
    });
    void proc.exited.then(() => {
      const err = new Error(`${this.name} exited (code ${proc.exitCode}):\n${tail(proc.logFile)}`);
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    });
  }

  get name(): string {
    return `${this.proc.name}${this.id ? ` (${this.id})` : ''}`;
  }

  call<K extends Command['op']>(cmd: Extract<Command, { op: K }>, timeoutMs = 120_000): Promise<Results[K]> {
    const seq = ++this.#seq;
    return new Promise<Results[K]>((resolve, reject) => {
      if (this.proc.exitCode !== undefined) {
        reject(new Error(`${this.name} is not running:\n${tail(this.proc.logFile)}`));
        return;
      }
      const timer = setTimeout(() => {
        this.#pending.delete(seq);
        reject(new Error(`${this.name}: no answer to ${cmd.op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(seq, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as Results[K]);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.proc.child.send({ seq, cmd }, (err) => {
        if (err) this.#pending.get(seq)?.reject(err);
      });
    });
  }
}

const onAll = <K extends Command['op']>(
  nodes: ClusterNode[],
  cmd: (node: ClusterNode, k: number) => Extract<Command, { op: K }>,
): Promise<Results[K][]> => Promise.all(nodes.map((n, k) => n.call<K>(cmd(n, k))));

// ---------------------------------------------------------------------------------------------
// Figures

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const avg = (xs: number[]): number => (xs.length === 0 ? Number.NaN : sum(xs) / xs.length);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

interface Latency {
  count: number;
  p50: number;
  p99: number;
  mean: number;
  max: number;
}

function latency(micros: number[]): Latency {
  const sorted = [...micros].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    mean: avg(sorted),
    max: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

interface Phase {
  /** Session writes (or reads) the phase made, cluster-wide. */
  ops: number;
  /** Bytes all nodes sent during the phase, until replication settled. */
  bytes: number;
  frames: number;
  bytesPerOp: number;
  framesPerOp: number;
  remoteFetches: number;
  /** From the first command to settled replication. */
  seconds: number;
  settled: boolean;
}

interface Memory {
  valuesPerNode: number;
  idOnlyPerNode: number;
  valueBytesPerNode: number;
  /** Values held cluster-wide per session. */
  copies: number;
  heapEmptyPerNode: number;
  heapPerNode: number;
  heapDeltaPerNode: number;
  rssPerNode: number;
  /** (heap delta - value bytes) / sessions known per node: what a session costs beyond its text. */
  overheadBytesPerSession: number;
  perNode: {
    node: string;
    values: number;
    idOnly: number;
    valueBytes: number;
    heapEmpty: number;
    heap: number;
  }[];
}

interface ClusterResult {
  mode: ReplicationMode;
  nodes: number;
  status: 'ok' | 'failed';
  failure?: string;
  memory?: Memory;
  create?: Phase;
  rewrite?: Phase;
  takeoverRead?: Phase;
  takeoverWrite?: Phase;
  localRead?: Latency & { node: string };
  idOnlyRead?: Latency & { node: string };
  idOnlyReadPhase?: Phase;
  tcpRoundTrip?: Latency;
  copiesAtEnd?: number;
  flags: string[];
  seconds: number;
}

// ---------------------------------------------------------------------------------------------
// Settling

interface Settled {
  stats: NodeStats[];
  problem: string | undefined;
}

const allStats = (nodes: ClusterNode[]): Promise<NodeStats[]> =>
  onAll<'stats'>(nodes, () => ({ op: 'stats' }));

/**
 * Polls every node until `expect` finds nothing wrong and the bytes sent cluster-wide equal the
 * bytes received, with nothing sent in between, on two polls in a row: nothing is in flight.
 */
async function settle(
  nodes: ClusterNode[],
  expect: (stats: NodeStats[]) => string | undefined,
  timeoutMs = 30_000,
): Promise<Settled> {
  const deadline = Date.now() + timeoutMs;
  let previousSent = -1;
  for (;;) {
    const stats = await allStats(nodes);
    const sent = sum(stats.map((s) => s.bytesSent));
    const received = sum(stats.map((s) => s.bytesReceived));
    const problem = expect(stats) ?? (sent === received ? undefined : `${sent - received} bytes in flight`);
    if (problem === undefined && sent === previousSent) return { stats, problem };
    previousSent = problem === undefined ? sent : -1;
    if (Date.now() > deadline) return { stats, problem: problem ?? 'traffic did not stop' };
    await sleep(problem === undefined ? 20 : 50);
  }
}

/** Every node knows every session, every node sees the others up, the cluster holds `copies` values each. */
function expectCluster(n: number, sessions: number, copies: number) {
  return (stats: NodeStats[]): string | undefined => {
    for (const s of stats) {
      if (s.membersUp !== n - 1) return `${s.node} sees ${s.membersUp} of ${n - 1} members up`;
      if (s.sessions !== sessions) return `${s.node} knows ${s.sessions} of ${sessions} sessions`;
    }
    const values = sum(stats.map((s) => s.values));
    if (values !== copies * sessions) {
      return `${values} values cluster-wide, expected ${copies * sessions} (${copies} per session)`;
    }
    return undefined;
  };
}

async function measurePhase(
  nodes: ClusterNode[],
  before: NodeStats[],
  ops: number,
  run: () => Promise<unknown>,
  expect: (stats: NodeStats[]) => string | undefined,
  flags: string[],
  label: string,
): Promise<{ phase: Phase; stats: NodeStats[] }> {
  const t = performance.now();
  await run();
  const { stats, problem } = await settle(nodes, expect);
  const seconds = (performance.now() - t) / 1000;
  if (problem) flags.push(`${label}: did not settle within 30 s: ${problem}`);
  const bytes = sum(stats.map((s) => s.bytesSent)) - sum(before.map((s) => s.bytesSent));
  const frames = sum(stats.map((s) => s.framesSent)) - sum(before.map((s) => s.framesSent));
  const remoteFetches = sum(stats.map((s) => s.remoteFetches)) - sum(before.map((s) => s.remoteFetches));
  return {
    phase: {
      ops,
      bytes,
      frames,
      bytesPerOp: bytes / ops,
      framesPerOp: frames / ops,
      remoteFetches,
      seconds,
      settled: problem === undefined,
    },
    stats,
  };
}

function checkReads(report: ReadReport, label: string, flags: string[]): void {
  if (report.missing > 0) flags.push(`${label}: ${report.missing} of ${report.count} reads found no session`);
  const stale = report.count - report.missing - report.matched;
  if (stale > 0) flags.push(`${label}: ${stale} of ${report.count} reads returned an older revision`);
}

/** The first `count` of `pool`, cycling through it if it is shorter. */
function take(pool: number[], count: number): number[] {
  if (pool.length === 0) return [];
  return Array.from({ length: count }, (_, k) => pool[k % pool.length]!);
}

// ---------------------------------------------------------------------------------------------
// One cluster

async function startCluster(
  mode: ReplicationMode,
  n: number,
  opts: Options,
  tmp: string,
): Promise<ClusterNode[]> {
  const nodes: ClusterNode[] = [];
  for (let k = 0; k < n; k++) {
    const name = `${mode} N=${n} node ${k}`;
    const logFile = path.join(tmp, `${mode}-${n}-node${k}.log`);
    const proc = startProc(name, process.execPath, ['--expose-gc', WORKER], logFile, { ipc: true });
    const node = new ClusterNode(proc);
    nodes.push(node);
    // Node 0 first, on a port from the OS; the others know only it and learn the rest from it.
    const started = await node.call<'start'>(
      {
        op: 'start',
        mode,
        peers: k === 0 ? [] : [nodes[0]!.id],
        secret: SECRET,
        sync: opts.sync,
        heartbeatMs: opts.heartbeatMs,
      },
      30_000,
    );
    node.id = started.node;
  }
  const { problem } = await settle(nodes, (stats) => {
    const short = stats.find((s) => s.membersUp !== n - 1);
    return short ? `${short.node} sees ${short.membersUp} of ${n - 1} members up` : undefined;
  });
  if (problem) throw new Error(`the cluster did not form: ${problem}`);
  return nodes;
}

async function runCluster(
  mode: ReplicationMode,
  n: number,
  opts: Options,
  tmp: string,
): Promise<ClusterResult> {
  const t0 = performance.now();
  const S = opts.sessions;
  const flags: string[] = [];
  const result: ClusterResult = { mode, nodes: n, status: 'ok', flags, seconds: 0 };
  const copies = mode === 'all-to-all' ? n : 2;
  const expect = expectCluster(n, S, copies);
  let nodes: ClusterNode[] = [];
  try {
    nodes = await startCluster(mode, n, opts, tmp);
    const empty = await onAll<'heap'>(nodes, () => ({ op: 'heap' }));
    let stats = await allStats(nodes);

    // (a) create, round robin
    log(`${mode} N=${n}: creating ${S} sessions`);
    const created = await measurePhase(
      nodes,
      stats,
      S,
      () =>
        onAll<'create'>(nodes, (_, k) => ({
          op: 'create',
          sessions: S,
          nodes: n,
          index: k,
          size: opts.size,
        })),
      expect,
      flags,
      'create',
    );
    result.create = created.phase;
    stats = created.stats;
    const heaps: HeapReport[] = await onAll<'heap'>(nodes, () => ({ op: 'heap' }));
    const heapDelta = avg(heaps.map((h, k) => h.heapUsed - empty[k]!.heapUsed));
    const valueBytes = avg(stats.map((s) => s.valueBytes));
    result.memory = {
      valuesPerNode: avg(stats.map((s) => s.values)),
      idOnlyPerNode: avg(stats.map((s) => s.idOnly)),
      valueBytesPerNode: valueBytes,
      copies: sum(stats.map((s) => s.values)) / S,
      heapEmptyPerNode: avg(empty.map((h) => h.heapUsed)),
      heapPerNode: avg(heaps.map((h) => h.heapUsed)),
      heapDeltaPerNode: heapDelta,
      rssPerNode: avg(heaps.map((h) => h.rss)),
      overheadBytesPerSession: (heapDelta - valueBytes) / S,
      perNode: stats.map((s, k) => ({
        node: s.node,
        values: s.values,
        idOnly: s.idOnly,
        valueBytes: s.valueBytes,
        heapEmpty: empty[k]!.heapUsed,
        heap: heaps[k]!.heapUsed,
      })),
    };
    const heldBytes = stats.find((s) => s.values > 0);
    if (heldBytes && Math.abs(heldBytes.valueBytes / heldBytes.values - opts.size) > 1) {
      flags.push(
        `sessions are ${(heldBytes.valueBytes / heldBytes.values).toFixed(0)} bytes, not ${opts.size}`,
      );
    }

    // (b) rewrite each session on its primary / last writer
    log(`${mode} N=${n}: rewriting every session on its primary`);
    let rewritten = 0;
    const rewrite = await measurePhase(
      nodes,
      stats,
      S,
      async () => {
        const done = await onAll<'rewrite'>(nodes, () => ({
          op: 'rewrite',
          sessions: S,
          size: opts.size,
          rev: 2,
        }));
        rewritten = sum(done.map((d) => d.written));
      },
      expect,
      flags,
      'rewrite',
    );
    if (rewritten !== S) flags.push(`rewrite: ${rewritten} sessions had this node as primary, expected ${S}`);
    result.rewrite = { ...rewrite.phase, ops: rewritten, bytesPerOp: rewrite.phase.bytes / rewritten };
    stats = rewrite.stats;
    let rev = 2;

    // (c) primary-backup: read then write on a node holding only the id
    if (mode === 'primary-backup' && n >= 3) {
      log(`${mode} N=${n}: reading then writing every session on a node holding only its id`);
      const lists = await onAll<'list'>(nodes, () => ({ op: 'list', sessions: S, values: false }));
      const holders: number[][] = Array.from({ length: S }, () => []);
      lists.forEach((list, k) => {
        for (const i of list.indices) holders[i]!.push(k);
      });
      const assigned: number[][] = nodes.map(() => []);
      let odd = 0;
      holders.forEach((h, i) => {
        if (h.length !== n - 2) odd++;
        if (h.length > 0) assigned[h[i % h.length]!]!.push(i);
      });
      if (odd > 0)
        flags.push(`takeover: ${odd} sessions were held id-only by other than N-2 = ${n - 2} nodes`);
      const ops = sum(assigned.map((a) => a.length));
      const reads: ReadReport[] = [];
      const read = await measurePhase(
        nodes,
        stats,
        ops,
        async () => {
          reads.push(
            ...(await onAll<'read'>(nodes, (_, k) => ({
              op: 'read',
              indices: assigned[k]!,
              concurrency: 8,
              rev,
            }))),
          );
        },
        expect,
        flags,
        'takeover read',
      );
      for (const r of reads) checkReads(r, 'takeover read', flags);
      result.takeoverRead = read.phase;
      rev = 3;
      const write = await measurePhase(
        nodes,
        read.stats,
        ops,
        () =>
          onAll<'write'>(nodes, (_, k) => ({ op: 'write', indices: assigned[k]!, size: opts.size, rev: 3 })),
        expect,
        flags,
        'takeover write',
      );
      result.takeoverWrite = write.phase;
      stats = write.stats;
      // The reader is the primary now: nobody else should rewrite what it took over.
      const after = await onAll<'list'>(nodes, () => ({ op: 'list', sessions: S, values: false }));
      let stillIdOnly = 0;
      after.forEach((list, k) => {
        const mine = new Set(assigned[k]);
        for (const i of list.indices) if (mine.has(i)) stillIdOnly++;
      });
      if (stillIdOnly > 0)
        flags.push(`takeover: ${stillIdOnly} sessions still id-only on the node that read them`);
    }

    // Read latency on node 0
    log(`${mode} N=${n}: read latency`);
    const first = nodes[0]!;
    const warmLocal = Math.min(200, opts.reads);
    const held = await first.call<'list'>({ op: 'list', sessions: S, values: true });
    const local = await first.call<'readLatency'>({
      op: 'readLatency',
      indices: take(held.indices, warmLocal + opts.reads),
      warmup: warmLocal,
      rev,
    });
    checkReads(local, 'local read', flags);
    result.localRead = { ...latency(local.micros), node: first.id };
    if (mode === 'primary-backup' && n >= 3) {
      const idOnly = await first.call<'list'>({ op: 'list', sessions: S, values: false });
      const warm = Math.min(100, Math.floor(idOnly.indices.length / 10));
      const count = Math.min(opts.reads, idOnly.indices.length - warm);
      if (count < opts.reads) flags.push(`id-only read: only ${count} sessions held id-only on node 0`);
      // Distinct sessions: each such read takes its session over, so it is a miss only once.
      const missed = await measurePhase(
        nodes,
        stats,
        warm + count,
        async () => {
          const r = await first.call<'readLatency'>({
            op: 'readLatency',
            indices: idOnly.indices.slice(0, warm + count),
            warmup: warm,
            rev,
          });
          checkReads(r, 'id-only read', flags);
          result.idOnlyRead = { ...latency(r.micros), node: first.id };
        },
        expect,
        flags,
        'id-only read',
      );
      result.idOnlyReadPhase = missed.phase;
      stats = missed.stats;
    }
    const echo = await nodes[1]!.call<'echoServer'>({ op: 'echoServer' });
    const rtt = await first.call<'rtt'>({
      op: 'rtt',
      port: echo.port,
      count: opts.reads,
      warmup: warmLocal,
      bytes: opts.size,
    });
    result.tcpRoundTrip = latency(rtt.micros);

    // What the nodes count as trouble
    stats = await allStats(nodes);
    result.copiesAtEnd = sum(stats.map((s) => s.values)) / S;
    for (const s of stats) {
      for (const m of s.membersNotUp) flags.push(`${s.node} sees member ${m}`);
      const counters = ['lost', 'promoted', 'unacknowledged', 'refusedPeers', 'malformedFrames'] as const;
      for (const c of counters) if (s[c] > 0) flags.push(`${s.node}: ${c} = ${s[c]}`);
    }
  } catch (err) {
    result.status = 'failed';
    result.failure = err instanceof Error ? err.message : String(err);
    log(`${mode} N=${n}: FAILED: ${result.failure}`);
  } finally {
    await Promise.all(nodes.map((node) => stopProc(node.proc, 3000)));
  }
  result.seconds = (performance.now() - t0) / 1000;
  log(`${mode} N=${n}: ${result.seconds.toFixed(1)} s${flags.length > 0 ? `, ${flags.length} flag(s)` : ''}`);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Output

function markdown(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i < 2 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

const mib = (bytes: number | undefined): string => (bytes === undefined ? '-' : (bytes / MiB).toFixed(1));
const int = (x: number | undefined): string =>
  x === undefined ? '-' : Math.round(x).toLocaleString('en-US');
const micros = (x: number | undefined): string => (x === undefined ? '-' : x.toFixed(0));

function tables(results: ClusterResult[], opts: Options): string {
  const out: string[] = [];
  const ok = results.filter((r) => r.status === 'ok');
  const who = (r: ClusterResult) => [r.flags.length > 0 ? `${r.mode} !` : r.mode, String(r.nodes)];
  out.push(`Memory per node, average over the N nodes, after creating ${int(opts.sessions)} sessions`);
  out.push('');
  out.push(
    markdown(
      [
        'mode',
        'N',
        'values',
        'id only',
        'value MiB',
        'copies',
        'heap empty MiB',
        'heap MiB',
        'heap Δ MiB',
        'cluster Δ MiB',
        'Δ − values, B/session',
      ],
      ok.map((r) => {
        const m = r.memory;
        return [
          ...who(r),
          int(m?.valuesPerNode),
          int(m?.idOnlyPerNode),
          mib(m?.valueBytesPerNode),
          m ? m.copies.toFixed(2) : '-',
          mib(m?.heapEmptyPerNode),
          mib(m?.heapPerNode),
          mib(m?.heapDeltaPerNode),
          mib(m ? m.heapDeltaPerNode * r.nodes : undefined),
          int(m?.overheadBytesPerSession),
        ];
      }),
    ),
  );
  out.push('');
  out.push('Network: bytes sent cluster-wide per operation (all frames, until replication settled)');
  out.push('');
  out.push(
    markdown(
      [
        'mode',
        'N',
        '(a) create B/write',
        'frames/write',
        '(b) rewrite B/write',
        '(c) id-only read+write B/op',
        '= read',
        '+ write',
        'create s',
      ],
      ok.map((r) => {
        const read = r.takeoverRead;
        const write = r.takeoverWrite;
        return [
          ...who(r),
          int(r.create?.bytesPerOp),
          r.create ? r.create.framesPerOp.toFixed(2) : '-',
          int(r.rewrite?.bytesPerOp),
          read && write ? int(read.bytesPerOp + write.bytesPerOp) : '-',
          int(read?.bytesPerOp),
          int(write?.bytesPerOp),
          r.create ? r.create.seconds.toFixed(2) : '-',
        ];
      }),
    ),
  );
  out.push('');
  out.push(`Read latency on node 0, one read at a time, µs (${int(opts.reads)} reads each)`);
  out.push('');
  out.push(
    markdown(
      [
        'mode',
        'N',
        'local p50',
        'local p99',
        'id-only p50',
        'id-only p99',
        'id-only B/read',
        `TCP ${opts.size} B RTT p50`,
        'RTT p99',
      ],
      ok.map((r) => [
        ...who(r),
        micros(r.localRead?.p50),
        micros(r.localRead?.p99),
        micros(r.idOnlyRead?.p50),
        micros(r.idOnlyRead?.p99),
        int(r.idOnlyReadPhase?.bytesPerOp),
        micros(r.tcpRoundTrip?.p50),
        micros(r.tcpRoundTrip?.p99),
      ]),
    ),
  );
  const notes = results.flatMap((r) => [
    ...(r.status === 'failed' ? [`${r.mode} N=${r.nodes}: FAILED: ${r.failure}`] : []),
    ...r.flags.map((f) => `${r.mode} N=${r.nodes}: ${f}`),
  ]);
  if (notes.length > 0) {
    out.push('');
    out.push('Flags (a flagged row is not a clean measurement):');
    for (const note of notes) out.push(`  ! ${note}`);
  }
  out.push('');
  out.push(
    'heap = heapUsed after a full GC; heap empty = the same node with its peers connected and no session;',
  );
  out.push(
    'cluster Δ = heap Δ x N; Δ − values = what each session known to a node costs it beyond its value bytes.',
  );
  out.push(
    'copies = values held cluster-wide per session. (c) = primary-backup only, N >= 3: a read on a node holding only',
  );
  out.push(
    'the id (fetch + takeover), then a write there; id-only B/read = the bytes of the timed id-only reads.',
  );
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main

let tmpToRemove: string | undefined;

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (e) {
    console.error(`bench: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (!fs.existsSync(WORKER)) {
    console.error(`bench: ${WORKER} not found (build bench/ first)`);
    return 2;
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-cluster-bench-'));
  if (!opts.keepTmp) tmpToRemove = tmp;
  const t0 = performance.now();
  const results: ClusterResult[] = [];
  for (const mode of opts.modes) {
    for (const n of opts.nodes) results.push(await runCluster(mode, n, opts, tmp));
  }
  const seconds = (performance.now() - t0) / 1000;
  const environment = {
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? '',
    platform: `${os.platform()} ${os.release()}`,
  };
  console.log(
    `ReplicatedStore cluster benchmark: ${int(opts.sessions)} sessions of ${opts.size} B, ` +
      `${opts.sync ? 'synchronous' : 'asynchronous'} replication, one process per node on loopback, ` +
      `${environment.cpus} CPUs, node ${environment.node}, ${seconds.toFixed(0)} s`,
  );
  console.log('');
  console.log(tables(results, opts));
  if (opts.json) {
    const doc = {
      date: new Date().toISOString(),
      environment,
      options: { ...opts, json: undefined },
      seconds,
      results,
    };
    fs.writeFileSync(opts.json, `${JSON.stringify(doc, null, 2)}\n`);
    console.log(`JSON: ${opts.json}`);
  }
  const failed = results.some((r) => r.status === 'failed');
  if (failed || opts.keepTmp) {
    tmpToRemove = undefined;
    log(`the nodes' logs are in ${tmp}`);
  }
  return failed ? 1 : 0;
}

runHarness(main, { tmp: () => tmpToRemove });
