/**
 * Benchmark backend: the fastest honest HTTP/1.1 server we can write with node:http.
 *
 * Every request gets the same small 200 response with a Content-Length (no chunking), keep-alive,
 * and an `x-served-by` header so the harness can check that a proxy really spreads the load.
 * Request bodies are drained and discarded.
 *
 * `GET /__bench/stats` answers `{"id": NAME, "requests": N}` (N = requests served so far, not
 * counting stats requests); the harness asks each backend directly, to see how a proxy split the load.
 *
 * Usage: node backend.js --port N [--host 127.0.0.1] [--id NAME] [--size BYTES]
 */
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    id: { type: 'string', default: 'backend' },
    size: { type: 'string' },
  },
});

const port = Number(values.port);
if (values.port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
  console.error('backend: --port N is required');
  process.exit(2);
}

const id = values.id ?? 'backend';
const host = values.host ?? '127.0.0.1';
const size = values.size === undefined ? undefined : Number(values.size);
if (size !== undefined && (!Number.isInteger(size) || size < 0)) {
  console.error('backend: --size must be a whole number of bytes');
  process.exit(2);
}
const body = size === undefined ? Buffer.from('hello from fulcrum bench\n') : Buffer.alloc(size, 'x');
const headers = {
  'content-type': 'text/plain',
  'content-length': String(body.length),
  'x-served-by': id,
};
let requests = 0;

const server = http.createServer((req, res) => {
  if (req.url === '/__bench/stats') {
    const stats = JSON.stringify({ id, requests });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(stats) });
    res.end(stats);
    return;
  }
  requests++;
  req.resume();
  res.writeHead(200, headers);
  res.end(body);
});

// Proxies keep pooled upstream connections for a long time; make sure the backend never closes an
// idle connection first while a proxy is about to reuse it (that race shows up as 502s/resets).
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;

server.listen(port, host, () => {
  const addr = server.address();
  const actual = typeof addr === 'object' && addr ? addr.port : port;
  console.log(`backend ${id} listening on ${host}:${actual}`);
});

const stop = (): void => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
