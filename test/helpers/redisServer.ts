/**
 * A real redis-server for a test: its own process on a free loopback port (never the system's
 * 6379), no persistence unless asked, data in a temporary directory removed at exit.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ServerProcess, startServerProcess, tcpAsk } from './serverProcess.js';

export interface RedisServer extends ServerProcess {
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
}

export interface RedisServerOptions {
  /** Append-only file fsynced on every write, so data survive stop() + restart(). */
  persistent?: boolean;
  /** Extra redis-server arguments, e.g. ['--maxmemory', '10mb']. */
  args?: string[];
}

const dirs = new Set<string>();
process.on('exit', () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

export async function startRedis(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-redis-'));
  dirs.add(dir);
  const persistence = options.persistent
    ? ['--appendonly', 'yes', '--appendfsync', 'always']
    : ['--appendonly', 'no'];
  const server = await startServerProcess({
    name: 'redis-server',
    command: 'redis-server',
    args: (port) => [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--protected-mode',
      'no',
      '--daemonize',
      'no',
      '--save',
      '',
      '--dir',
      dir,
      '--loglevel',
      'warning',
      ...persistence,
      ...(options.args ?? []),
    ],
    ping: (port) => tcpAsk(port, 'PING\r\n', '+PONG'),
  });
  return Object.defineProperty(server, 'url', {
    value: `redis://127.0.0.1:${server.port}`,
    enumerable: true,
  }) as RedisServer;
}

export interface RedisCluster {
  /** The masters, each its own redis-server process. */
  readonly nodes: RedisServer[];
  stop(): Promise<void>;
}

/** A Redis Cluster of `size` masters (no replicas) on free ports, its slots assigned, state ok. */
export async function startRedisCluster(size = 3): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < size; i++) {
      nodes.push(
        await startRedis({
          args: [
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            'nodes.conf',
            '--cluster-node-timeout',
            '2000',
          ],
        }),
      );
    }
    const create = spawnSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
    if (create.status !== 0)
      throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    const deadline = Date.now() + 10_000;
    for (const node of nodes) {
      while (!(await clusterOk(node.port))) {
        if (Date.now() > deadline)
          throw new Error(`cluster node ${node.port} did not reach cluster_state:ok`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return { nodes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

function clusterOk(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 500);
    socket.on('connect', () => socket.write('CLUSTER INFO\r\n'));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
      if (answer.includes('cluster_state:')) done(answer.includes('cluster_state:ok'));
    });
    socket.on('error', () => done(false));
  });
}
