import { createPolicy } from '../../src/balancing/index.js';
import type { AlgorithmName } from '../../src/balancing/registry.js';
import { createLogger, type Logger } from '../../src/core/log.js';
import { Pool } from '../../src/core/pool.js';
import { Server } from '../../src/core/server.js';

export function server(id: string, backup = false): Server {
  return new Server({ id, host: '127.0.0.1', port: 1, address: `10.0.0.${id.length}:80`, weight: 1, backup });
}

/** A pool of servers named by `ids`, without sockets. */
export function testPool(ids: string[], algorithm: AlgorithmName = 'round-robin', name = 'web'): Pool {
  const p = new Pool(
    name,
    createPolicy(algorithm),
    ids.map((id) => server(id)),
  );
  p.log = quietLog();
  return p;
}

export function quietLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return Object.assign(
    createLogger('debug', (l) => lines.push(l)),
    { lines },
  );
}

/** The `name=value` of a set-cookie header line. */
export function cookiePair(line: string): string {
  const m = /^set-cookie: ([^;]*)/.exec(line);
  if (m === null) throw new Error(`not a set-cookie line: ${JSON.stringify(line)}`);
  return m[1]!;
}
