/**
 * A raw HTTP/1.1 client for hostile requests: sends bytes as given, reads the first response (its
 * head and Content-Length body), then half-closes and waits for the server to close, noting any
 * socket error (a reset) on the way.
 */
import { connect } from 'node:net';

/** What a raw connection got: the first response, and how the connection ended. */
export interface RawAnswer {
  /** 0 when no complete response came. */
  status: number;
  headers: Record<string, string>;
  body: string;
  /** A socket error (ECONNRESET, EPIPE) or a timeout seen before the connection closed. */
  error: string | undefined;
}

/**
 * Sends `bytes` on a new connection to `port` and resolves once the server closes it (after the
 * first response, the client half-closes; with `halfClose`, right after the bytes). `head`: the
 * request is a HEAD (a response without body).
 */
export function ask(
  port: number,
  bytes: string | Buffer,
  options: { head?: boolean; waitMs?: number; halfClose?: boolean } = {},
): Promise<RawAnswer> {
  const waitMs = options.waitMs ?? 10_000;
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let error: string | undefined;
    let complete = false;
    const timer = setTimeout(() => {
      error ??= `no close within ${waitMs} ms`;
      socket.destroy();
    }, waitMs);
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (!complete && parseResponse(Buffer.concat(chunks), options.head) !== undefined) {
        complete = true;
        socket.end();
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error ??= err.code ?? err.message;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const data = Buffer.concat(chunks);
      const r = parseResponse(data, options.head);
      resolve({ status: 0, headers: {}, body: data.toString('latin1'), ...r, error });
    });
    const data = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
    if (options.halfClose === true) socket.end(data);
    else socket.write(data);
  });
}

/** The first response in `data` once complete (head and Content-Length body), else undefined. */
export function parseResponse(data: Buffer, head = false): Omit<RawAnswer, 'error'> | undefined {
  const text = data.toString('latin1');
  let at = 0;
  // Interim 1xx responses (100 Continue) come before the real one.
  for (;;) {
    const end = text.indexOf('\r\n\r\n', at);
    if (end < 0) return undefined;
    const lines = text.slice(at, end).split('\r\n');
    const status = Number(lines[0]!.split(' ')[1]);
    if (status >= 100 && status < 200) {
      at = end + 4;
      continue;
    }
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = head ? 0 : Number(headers['content-length'] ?? 0);
    if (text.length < end + 4 + length) return undefined;
    return { status, headers, body: text.slice(end + 4, end + 4 + length) };
  }
}
