/**
 * Session clusters of real `fulcrum backend --session-store cluster` processes on loopback, and a
 * `fulcrum start` balancer in front of them, for end-to-end tests. Every process is started
 * through the CLI, tracked, and stopped by its PID in `close()`; every wait is bounded.
 */
import type { ReplicatedStoreStats, ReplicationMode } from '../../src/session/index.js';
import { type CliProcess, freePort, httpGet, spawnCli, tempDir } from './processes.js';

export const CLUSTER_SECRET = 'e2e-cluster-secret';

export interface ClusterNode {
  /** Its `--id` (x-served-by, `server` in the /session answer). */
  readonly name: string;
  readonly httpPort: number;
  readonly clusterPort: number;
  /** Its id in the cluster (`--cluster-listen`): what /session's primary and backup name. */
  readonly address: string;
  readonly proc: CliProcess;
}

export interface NodeOptions {
  /** `--peers` (cluster addresses). */
  peers: readonly string[];
  sync?: boolean;
  secret?: string;
}

/** Polls `check` every 50 ms until it returns something other than undefined/false; bounded. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      throw new Error(`not within ${timeoutMs} ms: ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export class ClusterLab {
  readonly nodes: ClusterNode[] = [];
  readonly #procs = new Set<CliProcess>();
  /** Processes that were meant to end: killed by a test, or failed to start (and were retried). */
  readonly #ended = new Set<CliProcess>();
  readonly #dir = tempDir('fulcrum-cluster-');

  constructor(readonly mode: ReplicationMode) {}

  /**
   * A node on fresh ports (or the ones given); resolves once it has joined and its HTTP port is
   * open. A port taken between freePort() and the node's bind (by any socket's ephemeral port)
   * is retried on fresh ones, unless the ports were given.
   */
  async startNode(
    name: string,
    options: NodeOptions,
    ports?: { httpPort: number; clusterPort: number },
  ): Promise<ClusterNode> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#launch(name, options, ports ?? (await freshPorts()));
      } catch (err) {
        if (ports !== undefined || attempt >= 3 || !portClash(err)) throw err;
      }
    }
  }

  async #launch(
    name: string,
    options: NodeOptions,
    { httpPort, clusterPort }: { httpPort: number; clusterPort: number },
  ): Promise<ClusterNode> {
    const address = `127.0.0.1:${clusterPort}`;
    const args = [
      'backend',
      '--port',
      String(httpPort),
      '--id',
      name,
      '--session-store',
      'cluster',
      '--cluster-mode',
      this.mode,
      '--cluster-listen',
      address,
      '--cluster-secret',
      options.secret ?? CLUSTER_SECRET,
      ...(options.peers.length > 0 ? ['--peers', options.peers.join(',')] : []),
      ...(options.sync ? ['--cluster-sync'] : []),
    ];
    const proc = spawnCli(args);
    this.#procs.add(proc);
    try {
      // The backend line is logged once the node has joined and its HTTP port listens.
      await proc.waitFor(/INFO {2}backend \S+ listening on/, { timeoutMs: 15_000 });
    } catch (err) {
      this.#ended.add(proc);
      await proc.stop('SIGKILL', 1000);
      throw err;
    }
    const node = { name, httpPort, clusterPort, address, proc };
    this.nodes.push(node);
    return node;
  }

  /**
   * `n` nodes (a, b, c, ...) started together, each listing all the others; resolves once all
   * see each other. On a port clash the whole set starts again on fresh ports.
   */
  async startCluster(n: number, options: { sync?: boolean } = {}): Promise<ClusterNode[]> {
    for (let attempt = 1; ; attempt++) {
      const ports = await Promise.all(Array.from({ length: n }, freshPorts));
      const addresses = ports.map((p) => `127.0.0.1:${p.clusterPort}`);
      const started = await Promise.allSettled(
        ports.map((p, i) =>
          this.startNode(
            String.fromCharCode(97 + i),
            { peers: addresses.filter((_, j) => j !== i), sync: options.sync ?? false },
            p,
          ),
        ),
      );
      const nodes = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      const failed = started.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
      if (failed.length === 0) {
        await this.meshed(nodes);
        return nodes;
      }
      for (const node of nodes) this.nodes.splice(this.nodes.indexOf(node), 1);
      await Promise.all(nodes.map((node) => this.kill(node)));
      if (attempt >= 3 || !failed.every(portClash)) throw failed[0];
    }
  }

  /** Waits until every node of `nodes` lists every other one as up. */
  async meshed(nodes: readonly ClusterNode[], timeoutMs = 10_000): Promise<void> {
    await until(
      `${nodes.length} nodes see each other`,
      async () => {
        for (const node of nodes) {
          const up = upMembers(await this.stats(node));
          if (!nodes.every((other) => other === node || up.has(other.address))) return false;
        }
        return true;
      },
      timeoutMs,
    );
  }

  /** `GET /cluster` of a node. */
  async stats(node: ClusterNode): Promise<ReplicatedStoreStats> {
    const res = await httpGet(node.httpPort, '/cluster', { timeoutMs: 2000 });
    if (res.status !== 200) throw new Error(`GET /cluster on ${node.name}: ${res.status} ${res.body}`);
    return JSON.parse(res.body) as ReplicatedStoreStats;
  }

  /**
   * `fulcrum start` with round robin over `nodes`, health checks on /health and 2 retries;
   * resolves with its port once it accepts.
   */
  async startBalancer(nodes: readonly ClusterNode[]): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const config = this.#dir.write(
        `fulcrum-${port}.yaml`,
        `listeners:
  - name: web
    protocol: http
    listen: 127.0.0.1:${port}
    pool: web
pools:
  - name: web
    algorithm: round-robin
    servers:
${nodes.map((n) => `      - { address: "127.0.0.1:${n.httpPort}", name: ${n.name} }`).join('\n')}
    healthCheck: { type: http, path: /health, interval: 200ms, timeout: 500ms, rise: 1, fall: 1 }
    retries: { attempts: 2 }
`,
      );
      const proc = spawnCli(['start', '-c', config]);
      this.#procs.add(proc);
      try {
        await proc.waitForPort(port);
        return port;
      } catch (err) {
        this.#ended.add(proc);
        await proc.stop('SIGKILL', 1000);
        if (attempt >= 3 || !portClash(err)) throw err;
      }
    }
  }

  /** SIGKILL, and wait until the process is gone. */
  async kill(node: ClusterNode): Promise<void> {
    this.#ended.add(node.proc);
    await node.proc.stop('SIGKILL', 1000);
  }

  /** Nodes (and balancers) that exited on their own (not killed by `kill()`, started fine). */
  crashed(): CliProcess[] {
    return [...this.#procs].filter((p) => p.exited && !this.#ended.has(p));
  }

  /** Stops every process this lab started, by PID, and removes its files. */
  async close(): Promise<void> {
    await Promise.all([...this.#procs].map((p) => p.stop('SIGKILL', 1000)));
    this.#dir.remove();
  }
}

async function freshPorts(): Promise<{ httpPort: number; clusterPort: number }> {
  return { httpPort: await freePort(), clusterPort: await freePort() };
}

/** The start failed because its port was taken meanwhile. */
function portClash(err: unknown): boolean {
  return /EADDRINUSE|already in use/.test(String((err as Error)?.message ?? err));
}

/** Ids of the members a node sees up. */
export function upMembers(stats: ReplicatedStoreStats): Set<string> {
  return new Set(stats.members.filter((m) => m.state === 'up').map((m) => m.id));
}
