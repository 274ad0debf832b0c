import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Server } from '../../core/server.js';

/** How often names are looked up again: the default health check interval. */
export const HOST_REFRESH_MS = 2000;
/** A lookup slower than this keeps the previous addresses. */
const LOOKUP_TIMEOUT_MS = 1000;

interface Addresses {
  4: string[];
  6: string[];
}

const NONE: Addresses = { 4: [], 6: [] };

/**
 * The addresses of servers configured by host name ("app.internal:80"), for A and AAAA answers:
 * looked up with the system resolver in the background, every HOST_REFRESH_MS, never on the
 * query path (a query must not wait on another resolver). A name not looked up yet, or that
 * failed, has no addresses, so its server is left out of address answers until it resolves.
 * Servers with an IP address need none of this.
 */
export class HostCache {
  private readonly known = new Map<string, Addresses>();
  private timer: NodeJS.Timeout | undefined;
  private names: () => Iterable<string>;

  constructor(names: () => Iterable<string>) {
    this.names = names;
  }

  /** The addresses of `server` of family `want` (its own, for a server given by IP). */
  addresses(server: Server, want: 4 | 6): readonly string[] {
    const f = isIP(server.host);
    if (f !== 0) return f === want ? [server.host] : [];
    return (this.known.get(server.host) ?? NONE)[want];
  }

  start(): void {
    this.stop();
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), HOST_REFRESH_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Looks every current name up once; names no longer used are forgotten. */
  async refresh(): Promise<void> {
    const wanted = new Set(this.names());
    for (const name of this.known.keys()) if (!wanted.has(name)) this.known.delete(name);
    await Promise.all(
      [...wanted].map(async (name) => {
        const found = await lookupBounded(name);
        if (found !== undefined) this.known.set(name, found);
      }),
    );
  }
}

async function lookupBounded(name: string): Promise<Addresses | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), LOOKUP_TIMEOUT_MS);
  });
  try {
    const result = await Promise.race([lookup(name, { all: true }).catch(() => undefined), timeout]);
    if (result === undefined) return undefined;
    const out: Addresses = { 4: [], 6: [] };
    for (const a of result) (a.family === 6 ? out[6] : out[4]).push(a.address);
    return out;
  } finally {
    clearTimeout(timer);
  }
}
