import { copyRange } from './headWriter.js';

/**
 * The buffer every plain (non-TLS) HTTP/1.1 client socket reads into with `onread`: one for the
 * process, since each read is handed on as a copy before the next read can happen (one thread).
 * Requests are small and a client connection may sit idle for long, so no buffer is kept per
 * connection (server connections, whose responses can be large, lend their reads instead:
 * `proxy/readBuffer.ts`). Without it Node reads into a fresh 64 KiB allocation per read, shrunk to
 * the bytes read, and pushes it through the Readable stream machinery ('data' events, nextTick)
 * before the proxy sees it. The copy of a small read comes from Node's shared slab
 * (`Buffer.allocUnsafe`), so a request of a few KiB allocates no ArrayBuffer of its own.
 */
export const SHARED_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** The `n` bytes just read into SHARED_READ_BUFFER, as a Buffer of their own. */
export function copyOfRead(n: number): Buffer {
  const chunk = Buffer.allocUnsafe(n);
  copyRange(SHARED_READ_BUFFER, 0, n, chunk, 0);
  return chunk;
}
