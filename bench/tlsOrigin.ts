/**
 * The "node" target of bench/tls.ts: a Node HTTPS server (HTTP/2 and HTTP/1.1 by ALPN, one
 * process) that answers every request itself with the bench backend's small 200. No proxying:
 * what node:tls and node:http2 cost alone, the floor under Fulcrum's figures.
 *
 * Usage: node tlsOrigin.js --port N --cert FILE --key FILE [--host 127.0.0.1]
 */
import fs from 'node:fs';
import { createSecureServer } from 'node:http2';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    cert: { type: 'string' },
    key: { type: 'string' },
  },
});
if (values.port === undefined || values.cert === undefined || values.key === undefined) {
  console.error('tlsOrigin: --port N --cert FILE --key FILE are required');
  process.exit(2);
}

const body = Buffer.from('hello from fulcrum bench\n');
const server = createSecureServer(
  {
    cert: fs.readFileSync(values.cert),
    key: fs.readFileSync(values.key),
    allowHTTP1: true,
    settings: { maxConcurrentStreams: 100 },
  },
  (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(body.length) });
    res.end(body);
  },
);
server.on('tlsClientError', (_err, socket) => socket.destroy());
server.listen(Number(values.port), values.host, () => console.log(`tls origin on ${values.port}`));
process.on('SIGTERM', () => process.exit(0));
