/**
 * Before a supervisor applies a reload, the addresses its workers will have to listen on anew are
 * tried here (bound, then let go at once): an address in use refuses the reload with the same
 * error as a single process, instead of a config the workers could not run. A runtime follower
 * (runtime/follower.ts), so it runs before anything changes.
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import type { ConfigDiff } from '../config/diff.js';
import { ConfigError } from '../config/errors.js';
import type { Config, ListenerConfig } from '../config/types.js';
import { listenError } from '../proxy/listener.js';
import type { ConfigFollower } from '../runtime/follower.js';

/** A follower that tries the new listening addresses of every reload. */
export function bindCheck(file: string, running: () => Config): ConfigFollower {
  return {
    async prepare(next: Config, changes: ConfigDiff | undefined) {
      if (changes === undefined) return undefined; // the start: the workers say it themselves
      const before = running();
      for (const [i, l] of next.listeners.entries()) {
        const old = before.listeners.find((x) => x.name === l.name);
        const moved =
          old === undefined ||
          old.protocol !== l.protocol ||
          old.listen.host !== l.listen.host ||
          old.listen.port !== l.listen.port;
        if (!moved || l.listen.port === 0) continue;
        // Another listener of the running config has the address: the workers hold it, and
        // the reload hands it over as a single process does.
        const held = before.listeners.some(
          (x) => x.listen.host === l.listen.host && x.listen.port === l.listen.port,
        );
        if (held) continue;
        try {
          await tryListen(l);
        } catch (err) {
          throw new ConfigError(file, [
            {
              path: `listeners[${i}].listen`,
              message: listenError(l.listen.host, l.listen.port, err as NodeJS.ErrnoException).message,
            },
          ]);
        }
      }
      return undefined;
    },
  };
}

/** Binds the listener's socket(s) and closes them again. */
async function tryListen(l: ListenerConfig): Promise<void> {
  const { host, port } = l.listen;
  if (l.protocol !== 'udp') {
    await new Promise<void>((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen({ host, port }, () => server.close(() => resolve()));
    });
  }
  if (l.protocol === 'udp' || l.protocol === 'dns') {
    await new Promise<void>((resolve, reject) => {
      const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      socket.once('error', (err) => {
        socket.close();
        reject(err);
      });
      socket.bind({ address: host, port }, () => socket.close(() => resolve()));
    });
  }
}
