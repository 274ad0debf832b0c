/**
 * A reload's summary in words, for the process log (SIGHUP) and `fulcrum reload`: what was
 * added, removed or changed, or "nothing changed".
 */
import type { ReloadSummary } from './runtime.js';

/** One line: "servers added: web/c; pools changed: web", or "nothing changed". */
export function describeReload(s: ReloadSummary & { ignored?: readonly string[] }): string {
  const parts: string[] = [];
  const say = (what: string, names: readonly string[] | undefined) => {
    if (names !== undefined && names.length > 0) parts.push(`${what} ${names.join(', ')}`);
  };
  say('listeners added:', s.listeners.added);
  say('listeners removed:', s.listeners.removed);
  say('listeners changed:', s.listeners.updated);
  say('pools added:', s.pools.added);
  say('pools removed:', s.pools.removed);
  say('pools changed:', s.pools.updated);
  say('servers added:', s.servers.added);
  say('servers removed:', s.servers.removed);
  say('settings changed:', s.settings);
  const changes = parts.length > 0 ? parts.join('; ') : 'nothing changed';
  // State file entries the file now overrides (admin/state.ts words them).
  return s.ignored !== undefined && s.ignored.length > 0
    ? `${changes}; state entries ignored: ${s.ignored.join('; ')}`
    : changes;
}
