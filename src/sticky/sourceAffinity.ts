/**
 * Source affinity: client IP → server in a stick table, for HTTP and L4 listeners alike. Clients
 * behind one NAT share an address and so a server; over HTTP, cookies spread them better.
 */
import type { Affinity } from '../core/affinity.js';
import type { Pool } from '../core/pool.js';
import type { Server } from '../core/server.js';
import type { StickTable } from './stickTable.js';

export class SourceAffinity implements Affinity {
  private readonly pool: Pool;
  readonly table: StickTable;
  private readonly usable = (id: string) => {
    const s = this.pool.find(id);
    return s !== undefined && this.pool.eligibleServers().includes(s);
  };
  private readonly resolve = (id: string | undefined) => (id === undefined ? undefined : this.pool.find(id));

  constructor(pool: Pool, table: StickTable) {
    this.pool = pool;
    this.table = table;
  }

  pinned(clientIp: string, _cookieHeader: string | null): Server | undefined | Promise<Server | undefined> {
    const found = this.table.lookup(clientIp, this.usable);
    return found instanceof Promise ? found.then(this.resolve) : this.resolve(found);
  }

  onResponse(
    clientIp: string,
    server: Server,
    pinned: Server | undefined,
    _setCookies: readonly string[],
    _secure: boolean,
  ): string {
    // A new client: the first server recorded (here or by another balancer) wins. A moved one:
    // replaced unless another balancer has already moved it.
    if (pinned === undefined) this.table.assign(clientIp, server.id, null);
    else if (pinned !== server) this.table.assign(clientIp, server.id, pinned.id);
    return '';
  }

  onConnection(clientIp: string, server: Server): void {
    const current = this.table.peek(clientIp);
    if (current === server.id) return;
    if (current === undefined) this.table.assign(clientIp, server.id, null);
    // The connection went elsewhere than the entry says: move the entry if its server cannot
    // take connections (down, draining, ejected, removed); if it can, this was a race between
    // two first connections, and the entry stays.
    else if (!this.usable(current)) this.table.assign(clientIp, server.id, current);
  }
}
