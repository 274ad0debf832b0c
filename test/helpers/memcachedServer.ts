/** A real memcached for a test: its own process on a free loopback port, TCP only. */
import { type ServerProcess, startServerProcess, tcpAsk } from './serverProcess.js';

export interface MemcachedServer extends ServerProcess {
  /** `127.0.0.1:PORT`, as memjs and MemcachedStore take it. */
  readonly address: string;
}

export interface MemcachedServerOptions {
  /** Memory limit in MB (default 64). */
  memoryMb?: number;
  /** Largest item, e.g. '2m' (memcached's default is 1m). */
  maxItemSize?: string;
}

export async function startMemcached(options: MemcachedServerOptions = {}): Promise<MemcachedServer> {
  // memcached refuses to run as root unless told which user to be.
  const user = process.getuid?.() === 0 ? ['-u', 'root'] : [];
  const server = await startServerProcess({
    name: 'memcached',
    command: 'memcached',
    args: (port) => [
      '-p',
      String(port),
      '-l',
      '127.0.0.1',
      '-U',
      '0',
      '-m',
      String(options.memoryMb ?? 64),
      ...(options.maxItemSize ? ['-I', options.maxItemSize] : []),
      ...user,
    ],
    ping: (port) => tcpAsk(port, 'version\r\n', 'VERSION'),
  });
  return Object.defineProperty(server, 'address', {
    value: `127.0.0.1:${server.port}`,
    enumerable: true,
  }) as MemcachedServer;
}
