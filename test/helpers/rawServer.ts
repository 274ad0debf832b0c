/**
 * A raw TCP server that records every byte it receives, per connection, for tests that must prove
 * what did (or did not) reach a server behind the balancer. It answers `200 ok` (no body to a
 * HEAD) once a request looks complete: at its head when it is not chunked and has no
 * Content-Length, after Content-Length bytes, or, chunked, when the bytes after the head end in
 * CRLF CRLF. It parses no more than that: what reached it is what the tests check.
 */
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';

/** One connection the raw server accepted: everything it received, and whether it has closed. */
export interface RecordedConnection {
  data: Buffer;
  closed: boolean;
  socket: Socket;
}

export interface RawServer {
  server: Server;
  port: number;
  conns: RecordedConnection[];
  /** Total bytes received so far, all connections together. */
  received(): number;
  close(): Promise<void>;
}

export function startRawServer(): Promise<RawServer> {
  const conns: RecordedConnection[] = [];
  const server = createServer((socket) => {
    const c: RecordedConnection = { data: Buffer.alloc(0), closed: false, socket };
    let from = 0; // where the request being received starts
    conns.push(c);
    socket.on('data', (d: Buffer) => {
      c.data = Buffer.concat([c.data, d]);
      for (;;) {
        const text = c.data.toString('latin1', from);
        const headEnd = text.indexOf('\r\n\r\n');
        if (headEnd < 0) return;
        const head = text.slice(0, headEnd + 2);
        let end: number;
        if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(head)) {
          const last = text.indexOf('\r\n\r\n', headEnd + 4);
          // The last chunk "0\r\n" then the empty line; a chunk of data could contain CRLF CRLF
          // too, which is fine for the tests' bodies.
          if (last < 0) return;
          end = last + 4;
        } else {
          const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
          end = headEnd + 4 + (length === null ? 0 : Number(length[1]));
          if (text.length < end) return;
        }
        from += end;
        // A response to HEAD has no body (its Content-Length is that of the GET).
        const ok = head.startsWith('HEAD ') ? '' : 'ok';
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n${ok}`);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      c.closed = true;
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        server,
        port: (server.address() as AddressInfo).port,
        conns,
        received: () => conns.reduce((n, c) => n + c.data.length, 0),
        close: () =>
          new Promise<void>((r) => {
            for (const c of conns) c.socket.destroy();
            server.close(() => r());
          }),
      }),
    ),
  );
}
