/**
 * Node's own HTTP server as a judge of framing: it records every request its (strict) parser
 * reads, with method, target, Host and a digest of the body, and every parse error, so that a
 * fuzz test can compare what a server behind the balancer read with what the same parser reads
 * from the client's bytes directly.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One request as the judge's parser read it. */
export interface JudgedRequest {
  method: string;
  /** The target as received (absolute-form stays absolute). */
  url: string;
  host: string | undefined;
  /** Body bytes and their digest; `complete` is false when the connection ended inside it. */
  length: number;
  digest: string;
  complete: boolean;
}

export interface Judge {
  port: number;
  /** Requests and parse errors (error codes) since the last `take`. */
  take(): { requests: JudgedRequest[]; errors: string[] };
  /** True when no connection is in the middle of a request (between its first byte and the end
   * of its response). */
  quiet(): boolean;
  close(): Promise<void>;
}

export function startJudge(): Promise<Judge> {
  let requests: JudgedRequest[] = [];
  let errors: string[] = [];
  const busy = new Set<Socket>();
  const sockets = new Set<Socket>();
  const server: Server = createServer({
    // Framing only: no Host requirement (the balancer's Host handling is checked apart), room
    // for the headers the balancer adds, no timeouts in the way.
    requireHostHeader: false,
    maxHeaderSize: 64 * 1024,
    keepAliveTimeout: 10_000,
    requestTimeout: 0,
    headersTimeout: 10_000,
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('data', () => busy.add(socket));
    socket.on('close', () => {
      busy.delete(socket);
      sockets.delete(socket);
    });
  });
  server.on('request', (req, res) => {
    const hash = createHash('sha1');
    const r: JudgedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      host: req.headers.host,
      length: 0,
      digest: '',
      complete: false,
    };
    requests.push(r);
    req.on('data', (d: Buffer) => {
      r.length += d.length;
      hash.update(d);
    });
    req.on('end', () => {
      r.complete = true;
      r.digest = hash.digest('hex').slice(0, 12);
      res.writeHead(200, { 'content-length': 2 });
      res.end('ok');
    });
    res.on('finish', () => busy.delete(req.socket));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    errors.push(err.code ?? err.message);
    busy.delete(socket);
    socket.destroy();
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as AddressInfo).port,
        take() {
          const out = { requests, errors };
          requests = [];
          errors = [];
          return out;
        },
        quiet: () => busy.size === 0,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      }),
    ),
  );
}
