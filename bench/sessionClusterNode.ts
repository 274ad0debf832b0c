/**
 * One node of bench/sessionCluster.ts: a ReplicatedStore in its own Node process (started with
 * --expose-gc, so its heap can be measured after a full collection), driven by the harness over
 * the IPC channel. Every message is `{ seq, cmd }`; every answer `{ seq, ok, result | error }`.
 *
 * Sessions are numbered 0..S-1; the harness sends numbers, this process derives the id and a
 * value of exactly `size` bytes of JSON, so no session data crosses the IPC channel.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { ReplicatedStore, type ReplicatedStoreStats, type ReplicationMode } from '../src/session/index.js';

export type Command =
  | {
      op: 'start';
      mode: ReplicationMode;
      peers: string[];
      secret: string;
      sync: boolean;
      heartbeatMs: number;
    }
  | { op: 'stats' }
  | { op: 'heap' }
  /** Writes every session i with i % nodes === index (round robin's share of this node). */
  | { op: 'create'; sessions: number; nodes: number; index: number; size: number }
  /** Rewrites every session this node is the primary (all-to-all: the last writer) of. */
  | { op: 'rewrite'; sessions: number; size: number; rev: number }
  /** The sessions this node holds a value of (`values: true`) or only the id of. */
  | { op: 'list'; sessions: number; values: boolean }
  /** Reads these sessions, `concurrency` at a time; answers how many came back with `rev`. */
  | { op: 'read'; indices: number[]; concurrency: number; rev: number }
  | { op: 'write'; indices: number[]; size: number; rev: number }
  /** Reads one at a time; the first `warmup` are not timed. Answers latencies in µs. */
  | { op: 'readLatency'; indices: number[]; warmup: number; rev: number }
  /** A plain TCP echo server on loopback, as the reference for one round trip. */
  | { op: 'echoServer' }
  | { op: 'rtt'; port: number; count: number; warmup: number; bytes: number };

export interface NodeStats extends Omit<ReplicatedStoreStats, 'members'> {
  membersUp: number;
  membersNotUp: string[];
}

export interface HeapReport {
  heapUsed: number;
  heapTotal: number;
  rss: number;
  external: number;
  arrayBuffers: number;
}

export interface ReadReport {
  count: number;
  /** Came back with the expected revision. */
  matched: number;
  /** Came back empty (a lost or unreachable session). */
  missing: number;
}

export interface Results {
  start: { node: string };
  stats: NodeStats;
  heap: HeapReport;
  create: { written: number };
  rewrite: { written: number };
  list: { indices: number[] };
  read: ReadReport;
  write: { written: number };
  readLatency: ReadReport & { micros: number[] };
  echoServer: { port: number };
  rtt: { micros: number[] };
}

export type Request = { seq: number; cmd: Command };
export type Reply = { seq: number; ok: true; result: unknown } | { seq: number; ok: false; error: string };

const TTL_SECONDS = 86_400;
/** Writes issued before yielding to the event loop, so replication frames go out as they are made. */
const WRITE_BATCH = 256;

/** A 32-character id, as generateSessionId's base64url ids: the id frames' size is realistic. */
export const sessionId = (i: number): string => `bench${i.toString(36).padStart(27, '0')}`;

const EXPIRES = new Date(Date.now() + TTL_SECONDS * 1000).toISOString();

/** A signed-in user's session whose JSON is exactly `size` bytes (ASCII, so bytes = characters). */
export function sessionData(i: number, rev: number, size: number): Record<string, unknown> {
  const data: Record<string, unknown> = {
    cookie: { originalMaxAge: TTL_SECONDS * 1000, expires: EXPIRES, httpOnly: true, path: '/' },
    user: { id: i, name: `user-${i}`, email: `user-${i}@example.com`, roles: ['reader', 'writer'] },
    cart: Array.from({ length: 4 }, (_, k) => ({ sku: `SKU-${i}-${k}`, qty: (k % 3) + 1, price: 9.99 + k })),
    csrf: 'x'.repeat(43),
    rev,
    pad: '',
  };
  const missing = size - JSON.stringify(data).length;
  if (missing < 0) throw new RangeError(`a session needs at least ${size - missing} bytes, not ${size}`);
  data.pad = 'p'.repeat(missing);
  return data;
}

let store: ReplicatedStore | undefined;
let echo: net.Server | undefined;

function theStore(): ReplicatedStore {
  if (!store) throw new Error('no store yet: send start first');
  return store;
}

const yieldToIo = (): Promise<void> => new Promise((r) => setImmediate(r));

async function writeAll(indices: Iterable<number>, size: number, rev: number): Promise<number> {
  const s = theStore();
  let batch: Promise<void>[] = [];
  let written = 0;
  for (const i of indices) {
    batch.push(s.set(sessionId(i), sessionData(i, rev, size), TTL_SECONDS));
    written++;
    if (batch.length >= WRITE_BATCH) {
      await Promise.all(batch);
      batch = [];
      await yieldToIo();
    }
  }
  await Promise.all(batch);
  return written;
}

function* range(from: number, to: number, step: number): Generator<number> {
  for (let i = from; i < to; i += step) yield i;
}

async function readAll(indices: number[], concurrency: number, rev: number): Promise<ReadReport> {
  const s = theStore();
  const report: ReadReport = { count: 0, matched: 0, missing: 0 };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < indices.length) {
      const i = indices[next++]!;
      const data = await s.get(sessionId(i));
      report.count++;
      if (data == null) report.missing++;
      else if (data.rev === rev) report.matched++;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return report;
}

async function readLatency(
  indices: number[],
  warmup: number,
  rev: number,
): Promise<ReadReport & { micros: number[] }> {
  const s = theStore();
  const report = { count: 0, matched: 0, missing: 0, micros: [] as number[] };
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!;
    const t = performance.now();
    const data = await s.get(sessionId(i));
    const micros = (performance.now() - t) * 1000;
    if (k < warmup) continue;
    report.micros.push(micros);
    report.count++;
    if (data == null) report.missing++;
    else if (data.rev === rev) report.matched++;
  }
  return report;
}

function heap(): HeapReport {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run this process with node --expose-gc');
  // Twice: the first collection can leave garbage that only the second finds (weak references).
  gc();
  gc();
  const m = process.memoryUsage();
  return {
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    rss: m.rss,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
  };
}

function stats(): NodeStats {
  const { members, ...rest } = theStore().stats();
  return {
    ...rest,
    membersUp: members.filter((m) => m.state === 'up').length,
    membersNotUp: members.filter((m) => m.state !== 'up').map((m) => `${m.id} ${m.state}`),
  };
}

async function rtt(port: number, count: number, warmup: number, bytes: number): Promise<number[]> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const payload = Buffer.alloc(bytes, 0x61);
  const micros: number[] = [];
  let received = 0;
  let done: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received >= bytes && done) {
      received -= bytes;
      const d = done;
      done = undefined;
      d();
    }
  });
  try {
    for (let k = 0; k < warmup + count; k++) {
      const t = performance.now();
      await new Promise<void>((resolve) => {
        done = resolve;
        socket.write(payload);
      });
      if (k >= warmup) micros.push((performance.now() - t) * 1000);
    }
  } finally {
    socket.destroy();
  }
  return micros;
}

async function handle(cmd: Command): Promise<unknown> {
  switch (cmd.op) {
    case 'start': {
      store = new ReplicatedStore({
        listen: '127.0.0.1:0',
        peers: cmd.peers,
        secret: cmd.secret,
        mode: cmd.mode,
        sync: cmd.sync,
        heartbeatMs: cmd.heartbeatMs,
        logger: { warn: (message: string) => console.error(`[${store?.node ?? 'node'}] ${message}`) },
      });
      await store.ready();
      return { node: store.node } satisfies Results['start'];
    }
    case 'stats':
      return stats();
    case 'heap':
      return heap();
    case 'create':
      return { written: await writeAll(range(cmd.index, cmd.sessions, cmd.nodes), cmd.size, 1) };
    case 'rewrite': {
      const s = theStore();
      const mine: number[] = [];
      for (let i = 0; i < cmd.sessions; i++) if (s.locate(sessionId(i))?.primary === s.node) mine.push(i);
      return { written: await writeAll(mine, cmd.size, cmd.rev) };
    }
    case 'list': {
      const s = theStore();
      const indices: number[] = [];
      for (let i = 0; i < cmd.sessions; i++) {
        const where = s.locate(sessionId(i));
        if (where && where.hasValue === cmd.values) indices.push(i);
      }
      return { indices } satisfies Results['list'];
    }
    case 'read':
      return readAll(cmd.indices, cmd.concurrency, cmd.rev);
    case 'write':
      return { written: await writeAll(cmd.indices, cmd.size, cmd.rev) };
    case 'readLatency':
      return readLatency(cmd.indices, cmd.warmup, cmd.rev);
    case 'echoServer': {
      const server = net.createServer((socket) => {
        socket.setNoDelay(true);
        socket.on('error', () => {});
        socket.pipe(socket);
      });
      echo = server;
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = server.address();
      return { port: typeof address === 'object' && address ? address.port : 0 };
    }
    case 'rtt':
      return { micros: await rtt(cmd.port, cmd.count, cmd.warmup, cmd.bytes) };
  }
}

if (process.send === undefined) {
  console.error('sessionClusterNode: run by bench/sessionCluster.js, with an IPC channel');
  process.exit(2);
}
process.on('message', (message: Request) => {
  handle(message.cmd).then(
    (result) => process.send?.({ seq: message.seq, ok: true, result } satisfies Reply),
    (err: unknown) =>
      process.send?.({
        seq: message.seq,
        ok: false,
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      } satisfies Reply),
  );
});
// The harness went away (even killed): nothing to serve any more.
process.on('disconnect', () => {
  echo?.close();
  void store?.close();
  process.exit(0);
});
