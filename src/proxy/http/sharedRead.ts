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

/** Reads shorter than this (a request, a small response) are copied by a loop. */
const LOOP_COPY = 512;

/** The `n` bytes just read into SHARED_READ_BUFFER, as a Buffer of their own. */
export function copyOfRead(n: number): Buffer {
  const chunk = Buffer.allocUnsafe(n);
  if (n < LOOP_COPY) {
    // Buffer.copy of a part of its source allocates a view of that part on every call.
    const src = SHARED_READ_BUFFER;
    for (let i = 0; i < n; i++) chunk[i] = src[i]!;
  } else SHARED_READ_BUFFER.copy(chunk, 0, 0, n);
  return chunk;
}
