/**
 * The live event stream of the admin endpoint (`GET /api/events`, server-sent events): a
 * `snapshot` event with every pool and server once a second, and a `transition` event the moment
 * a server changes state. Browsers reconnect by themselves (`retry: 2000`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export class EventStream {
  private readonly clients = new Set<ServerResponse>();

  get size(): number {
    return this.clients.size;
  }

  /** Takes over a request: the response stays open until the client or `close()` ends it. */
  add(req: IncomingMessage, res: ServerResponse, first?: { event: string; data: unknown }): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    if (first !== undefined) res.write(frame(first.event, first.data));
    req.socket.setNoDelay(true);
    req.socket.setTimeout(0);
    this.clients.add(res);
    const drop = () => this.clients.delete(res);
    res.on('close', drop);
    res.on('error', drop);
  }

  broadcast(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    const text = frame(event, data);
    for (const res of this.clients) {
      // A client that does not read falls behind: drop it rather than buffer without end.
      if (res.writableLength > 1 << 20) res.destroy();
      else res.write(text);
    }
  }

  close(): void {
    for (const res of this.clients) res.end();
    this.clients.clear();
  }
}

function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
