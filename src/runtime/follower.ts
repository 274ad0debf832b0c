/**
 * Something next to the proxy that follows the config through start and every reload: the admin
 * endpoint, the access log. The runtime asks each follower to get ready for the next config
 * before it changes anything, and tells it to switch over once the whole config is in place, so
 * a start or a reload applies entirely or not at all (`Runtime.follow`).
 */
import type { ConfigDiff } from '../config/diff.js';
import type { Config } from '../config/types.js';

export interface ConfigFollower {
  /**
   * Gets ready to run `next` without giving up what runs now: binds a new socket, opens a file.
   * `changes` is what differs from the running config; undefined when the follower runs nothing
   * yet (at start, or when it joins a running runtime). Throwing (a ConfigError naming the key)
   * refuses the start or the reload. Returns undefined when `next` changes nothing for it.
   */
  prepare(next: Config, changes: ConfigDiff | undefined): Promise<PreparedChange | undefined>;
}

export interface PreparedChange {
  /** The runtime now runs the next config: switch over and let go of the old. Never throws. */
  commit(): void;
  /** The start or the reload failed after all: give back what `prepare` took. */
  abort(): Promise<void>;
}

/** Aborts every prepared change. An abort that fails is ignored: the start or reload is failing
 * with its own error already. */
export async function abortAll(prepared: readonly PreparedChange[]): Promise<void> {
  await Promise.all(prepared.map((p) => p.abort().catch(() => {})));
}
